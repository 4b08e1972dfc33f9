/* What the dataset commands of dfewctl share (labels.c, folds.c, report.c,
 * export.c, import.c): opening the home with the [labels] settings copied
 * into the database, finding clips by id or DFEW name, storing a clip's vote
 * counts, Fleiss' kappa over the stored votes, and picking a split. These
 * commands work on the database directly; no daemon job is involved. */
#ifndef DFEW_CTL_DATASET_H
#define DFEW_CTL_DATASET_H

#include <stdint.h>

#include "ctl.h"
#include "labels.h"
#include "votes.h"

/* ctl_open with the config required, then copies [labels] of dfew.conf into
 * the label_settings table when they differ (so that the clip_labels view
 * agrees with dfewctl). Prints the reason and returns non-zero on failure. */
int ds_open(struct ctl *c, int flags);

/* A clip named by a label file or the command line: its DFEW name when a clip
 * has that name, else its id ("id:N" is always the id). Returns the id, 0 when
 * there is none, or minus
 * the id of another clip when a short number could mean both (id 42, and the
 * clip named 00042: spreadsheets drop leading zeros). */
int64_t ds_find_clip(struct ctl *c, const char *ident);

/* Stores a clip's vote counts as anonymous votes (annotators "#1".."#n").
 * Counts equal to the stored distribution change nothing; a clip with other
 * votes is refused unless replace is set. Returns DS_ADDED, DS_UNCHANGED or
 * DS_REPLACED, or a negative errno with a reason in why. Call inside a
 * transaction. */
enum { DS_ADDED, DS_UNCHANGED, DS_REPLACED };
int ds_set_counts(struct ctl *c, int64_t clip, const int counts[EMOTION_COUNT], int replace, const char *source,
                  char *why, size_t whylen);

/* Fleiss' kappa over every annotated clip and over the single-labelled ones
 * (votes_kappa of lib/votes.c). */
int ds_kappa(struct ctl *c, struct votes_kappa *k);

/* The split called name; when name is NULL, the official split DS_OFFICIAL_SPLIT
 * (what `import dfew` stores) when there is one, else the only split. Several
 * splits, none of them the official one, is an error: the caller must name
 * one (a newer `folds make` experiment must not silently replace the split a
 * user trains or exports). Returns its id and its name (caller frees), 0
 * when there is none or it is ambiguous (a message is printed). */
#define DS_OFFICIAL_SPLIT "dfew"
int64_t ds_split(struct ctl *c, const char *cmd, const char *name, char **name_out);

/* Prints the header line and per-fold table of a split (also --json). */
int ds_print_split(struct ctl *c, int64_t split_id);

/* Where the columns of a vote-count table are, from its header line (the
 * release's annotation, a `labels import` file): seven vote counts named by
 * their emotion ("happy", "vote_happy", "1happy", "Happy" ...; "anger" for
 * angry), the clip's name ("clip", "clip_name", "video_name", "name",
 * "order", "id" ...) and, when asked for, its label ("annotation", "label"),
 * in any order. Columns without a name are left alone; so are named ones that
 * are not needed, once everything needed is placed. */
enum { DS_COL_NONE = -1 };
struct ds_vote_cols {
    int vote[EMOTION_COUNT], name, label; /* 0-based columns; label DS_COL_NONE unless placed */
    int need;                             /* fields a row must have: the last placed column + 1 */
};
/* 0 when the counts, the name and (want_label) the label are placed; else
 * -EINVAL with why naming what has no column and each column that could not
 * be placed, with its header text. */
int ds_vote_header(char *const *field, int nfield, int want_label, struct ds_vote_cols *m, char *why, size_t len);
/* Whether a field names one of the seven emotions (1..7), as ds_vote_header
 * reads headers; 0 for none. */
int ds_header_emotion(const char *field);

/* Errors found in input files, collected so that a rejected file lists every
 * bad line at once (the first DS_SHOWN_ERRORS of them). */
#define DS_SHOWN_ERRORS 20
struct ds_errors {
    int n;
    struct sbuf text, json;
};
void ds_error(struct ds_errors *e, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prints "what rejected, nothing was stored" and the lines to stderr, and with
 * --json {"rejected":true,"error_count":N,"errors":[{file,line,reason}]} on
 * stdout. Frees the list. */
void ds_errors_report(struct ctl *c, struct ds_errors *e, const char *what);
void ds_errors_free(struct ds_errors *e);

/* Runs a sub-command: argv[0] is the group ("labels"), argv[1] names one of
 * subs (a table ending with a NULL name); the handler gets argv + 1. Prints
 * usage_text for no or an unknown sub-command (exit code 2) and --help (0). */
struct ds_sub {
    const char *name;
    int (*fn)(struct ctl *, int, char **);
};
int ds_dispatch(struct ctl *c, int argc, char **argv, const struct ds_sub *subs, const char *usage_text);

#endif
