/* Storing annotators' votes and reading what they add up to: the one place
 * that writes a vote row (dfewctl labels import and dfew-web both call
 * vote_store), Fleiss' kappa over the stored votes and the paper's Table 2
 * (single-labelled clips per emotion and duration bucket). The math is
 * labels.c; this file is its database side. Not a CSV reader or a web page. */
#ifndef DFEW_VOTES_H
#define DFEW_VOTES_H

#include <stdint.h>

#include "db.h"
#include "labels.h"

#define VOTE_MAX_ANNOTATOR 128 /* bytes of UTF-8 in an annotator's name */

/* Whether name may be stored as a vote's annotator: not empty, at most
 * VOTE_MAX_ANNOTATOR bytes, not starting with '#' (reserved for anonymous
 * vote counts). 0, or -EINVAL with the reason in why. */
int vote_check_annotator(const char *name, char *why, size_t whylen);

struct vote {
    int64_t clip;
    const char *annotator;
    int emotion;        /* 1..7 */
    const char *source; /* the file, or "web" */
    int replace;        /* 1: a different stored vote of this annotator is replaced */
    int max_votes;      /* [labels] annotators_per_clip */
};

/* Stores one vote (call inside a write transaction). Returns VOTE_ADDED,
 * VOTE_UNCHANGED (the same vote was stored) or VOTE_REPLACED, or
 *   -EINVAL  bad annotator name or emotion,
 *   -EEXIST  this annotator voted otherwise for the clip and replace is 0
 *            (*stored: that emotion),
 *   -EDQUOT  the clip has max_votes votes already (*stored: its vote count),
 *   another negative errno when the database fails.
 * stored may be NULL. */
enum { VOTE_ADDED, VOTE_UNCHANGED, VOTE_REPLACED };
int vote_store(struct db *db, const struct vote *v, int *stored);

/* Copies [labels] of dfew.conf (threshold r, annotators per clip) into the
 * label_settings row when it differs, so that the clip_labels view agrees
 * with the programs. *old_r (may be NULL): the threshold stored before.
 * Returns 1 when the row changed, 0 when it already agreed, or a negative errno. */
int votes_sync_settings(struct db *db, int threshold, int annotators_per_clip, int *old_r);

/* Votes a clip has. */
int vote_count(struct db *db, int64_t clip);

/* The single-label threshold r the clip_labels view uses (label_settings);
 * a negative errno when it cannot be read. */
int votes_threshold(struct db *db);

/* The vote counts per emotion of n clips (counts[i] for ids[i]; zeros for a
 * clip without votes): what clip_labels has for them, read without
 * computing the view for every clip. 0 or a negative errno. */
int votes_of_clips(struct db *db, const int64_t *ids, int n, int (*counts)[EMOTION_COUNT]);

/* Fleiss' kappa over every annotated clip and over the single-labelled ones
 * (as the clip_labels view has them, under label_settings' threshold).
 * rc_*: 0, or -EDOM when undefined. Returns 0 or a negative errno. */
struct votes_kappa {
    struct kappa_result all, single;
    int rc_all, rc_single;
    int threshold;
};
int votes_kappa(struct db *db, struct votes_kappa *k);

/* The DFEW paper's Table 2 for the stored labels: single-labelled clips per
 * duration bucket (0-2 s, 2-5 s, 5 s+, unknown for clips imported without
 * their video) and emotion, with row, column and grand totals. */
#define TABLE2_BUCKETS 4
extern const char *const table2_bucket_names[TABLE2_BUCKETS];
struct table2 {
    long n[TABLE2_BUCKETS][EMOTION_COUNT];
    long row[TABLE2_BUCKETS], col[EMOTION_COUNT], total;
    int threshold;
};
int votes_table2(struct db *db, struct table2 *t);

#endif
