/* Clip rows and their prep jobs: what `dfewctl submit --clips` and dfewd
 * (when a probe finishes) both do. A clip is a [start, end) range in seconds
 * on the movie's timeline; its prep job carries the whole recipe from the
 * [prep] config section, fixed when it is queued, so a re-run writes the
 * same files. Not the prep work itself (workers/prep.c). */
#ifndef DFEW_CLIPS_H
#define DFEW_CLIPS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"

struct clip_range {
    double start_s, end_s;
    int line;  /* in the clip list file */
    int label; /* the list's label column: emotion 1..7, 0 when none */
};

enum clips_parse_flags {
    CLIPS_ALLOW_OVERLAP = 1, /* rows may overlap (identical rows are still refused) */
};

/* Reads a clip list: one `start,end[,label]` row per line, times in
 * decimal seconds ("12.5") or [HH:]MM:SS[.mmm] (digits only: no sign,
 * exponent or hex), label an emotion name or 1..7 (labels.h; stored as the
 * clip's curator_label, not as a vote); blank lines, '#' comments and one
 * header line naming the columns (start,end[,label]) are allowed. Any bad row
 * (unreadable, end <= start, negative, an unknown label, a duplicate, one
 * that overlaps another unless CLIPS_ALLOW_OVERLAP) rejects the whole file:
 * -EINVAL with "FILE:LINE: what" in err. */
int clips_parse_list(const char *path, int flags, struct clip_range **out, int *n, char *err, size_t errlen);
/* The same for a list already read (path only names it in messages). */
int clips_parse_text(const char *path, const char *text, size_t len, int flags, struct clip_range **out, int *n,
                     char *err, size_t errlen);
#define CLIPS_MAX_LINE 1024
#define CLIPS_MAX_BYTES (16u << 20)
/* Rows that end after movie_end + slack (seconds on the movie's timeline)
 * reject the whole list, like a bad row: -EINVAL with "FILE:LINE: what". */
int clips_check_inside(const char *path, const struct clip_range *r, int n, double movie_end, double slack,
                       char *err, size_t errlen);

/* Adds clips (state pending) to a movie; rows it already has are skipped.
 * *added counts the new ones. Call inside a transaction. */
int clips_add(struct db *db, int64_t movie_id, const struct clip_range *r, int n, int *added);

/* Once the movie's probe facts are known: clips that reach past its end
 * become 'failed' with the reason; with whole_movie, a movie without clips
 * gets one clip [0, end); every pending clip without a job gets a prep job
 * (dedup key prep:<clip id>). *queued counts the new jobs. Outputs go to
 * outputs_dir/clips/<clip id>. Call inside a transaction. */
int clips_schedule(struct db *db, const struct dfew_config *cfg, const char *outputs_dir, int64_t movie_id,
                   int priority, int whole_movie, int *queued);

#endif
