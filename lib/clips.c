/* Clip lists, clip rows and prep jobs (see clips.h). */
#include "clips.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "queue.h"
#include "util.h"

/* Decimal digits [ . digits ] at p (no sign, no exponent, no hex, no
 * "inf"): at most 9 digits before the point and 9 after; *end after them. */
static int parse_decimal(const char *p, int fraction_ok, double *out, const char **end)
{
    const char *q = p;
    double v = 0;
    while (*q >= '0' && *q <= '9')
        v = v * 10 + (*q++ - '0');
    if (q == p || q - p > 9)
        return -EINVAL;
    if (*q == '.' && fraction_ok) {
        const char *f = ++q;
        double scale = 0.1;
        while (*q >= '0' && *q <= '9') {
            v += (*q++ - '0') * scale;
            scale /= 10;
        }
        if (q == f || q - f > 9)
            return -EINVAL;
    }
    *out = v;
    *end = q;
    return 0;
}

/* "12.5", "01:02.5" or "1:02:03.250" into seconds: decimal digits only. */
static int parse_time(const char *s, double *out)
{
    double parts[3];
    int n = 0;
    const char *p = s;
    for (;;) {
        if (n == 3)
            return -EINVAL;
        const char *end;
        if (parse_decimal(p, 1, &parts[n++], &end))
            return -EINVAL;
        if (*end == ':') {
            if (memchr(p, '.', (size_t)(end - p)))
                return -EINVAL; /* only the seconds may have a fraction */
            p = end + 1;
            continue;
        }
        if (*end)
            return -EINVAL;
        break;
    }
    double t = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && parts[i] >= 60)
            return -EINVAL;
        t = t * 60 + parts[i];
    }
    *out = t;
    return 0;
}

/* A header names the columns: start,end[,label] (start_s, end_s and emotion
 * too, any case). */
static int is_header(char **field, int nf)
{
    return (nf == 2 || nf == 3) && str_one_of_ci(field[0], "start|start_s") && str_one_of_ci(field[1], "end|end_s") &&
           (nf == 2 || str_one_of_ci(field[2], "label|emotion"));
}

static int cmp_range(const void *a, const void *b)
{
    const struct clip_range *x = a, *y = b;
    if (x->start_s != y->start_s)
        return x->start_s < y->start_s ? -1 : 1;
    if (x->end_s != y->end_s)
        return x->end_s < y->end_s ? -1 : 1;
    return x->line - y->line;
}

int clips_parse_list(const char *path, int flags, struct clip_range **out, int *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    char *text;
    size_t len;
    int rc = read_small_file(path, CLIPS_MAX_BYTES, &text, &len);
    if (rc) {
        snprintf(err, errlen, "%s: cannot read the clip list: %s", path,
                 rc == -EFBIG ? "larger than 16 MiB; is it a clip list?" : strerror(-rc));
        return rc;
    }
    rc = clips_parse_text(path, text, len, flags, out, n, err, errlen);
    free(text);
    return rc;
}

int clips_parse_text(const char *path, const char *text, size_t len, int flags, struct clip_range **out, int *n,
                     char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    struct clip_range *r = NULL;
    int cap = 0, count = 0, lineno = 0, rc = 0, seen_row = 0;
    for (size_t pos = 0; !rc && pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        if (ll > CLIPS_MAX_LINE || memchr(text + pos, '\0', ll)) {
            snprintf(err, errlen, "%s:%d: %s; the whole list was rejected, nothing was added", path, lineno,
                     ll > CLIPS_MAX_LINE ? "a line longer than 1024 bytes" : "a NUL byte (is this a text file?)");
            rc = -EINVAL;
            break;
        }
        char line[CLIPS_MAX_LINE + 1];
        memcpy(line, text + pos, ll);
        line[ll] = '\0';
        pos += ll + 1;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = str_trim(line);
        if (!*s)
            continue;
        /* start,end[,label] */
        char *field[4] = {s};
        int nf = 1;
        for (char *c = s; *c && nf < 4; c++)
            if (*c == ',') {
                *c = '\0';
                field[nf++] = c + 1;
            }
        for (int i = 0; i < nf; i++)
            field[i] = str_trim(field[i]);
        double a = 0, b = 0;
        int ok = (nf == 2 || nf == 3) && parse_time(field[0], &a) == 0 && parse_time(field[1], &b) == 0;
        if (!ok) {
            /* one header line naming the columns, before the first row */
            if (!seen_row && is_header(field, nf)) {
                seen_row = 1;
                continue;
            }
            snprintf(err, errlen,
                     "%s:%d: expected 'start,end' or 'start,end,label' with times in decimal seconds (12.5) or "
                     "[HH:]MM:SS[.mmm] (00:01:02.500)%s; the whole list was rejected, nothing was added",
                     path, lineno, seen_row ? "" : " (a header line is start,end[,label])");
            rc = -EINVAL;
            break;
        }
        seen_row = 1;
        if (!(b > a)) {
            snprintf(err, errlen, "%s:%d: the end (%g s) must be after the start (%g s); the whole list was rejected",
                     path, lineno, b, a);
            rc = -EINVAL;
            break;
        }
        int label = 0;
        if (nf == 3 && *field[2] && (label = emotion_parse(field[2])) < 0) {
            snprintf(err, errlen, "%s:%d: unknown label '%.40s' (one of %s, or empty); the whole list was rejected",
                     path, lineno, field[2], EMOTION_NAMES_HELP);
            rc = -EINVAL;
            break;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            r = xrealloc(r, sizeof *r * (size_t)cap);
        }
        r[count++] = (struct clip_range){a, b, lineno, label};
    }
    if (!rc && count == 0) {
        snprintf(err, errlen, "%s: no clips in the list (rows are 'start,end' in seconds)", path);
        rc = -EINVAL;
    }
    if (!rc) {
        struct clip_range *sorted = xmalloc(sizeof *sorted * (size_t)count);
        memcpy(sorted, r, sizeof *r * (size_t)count);
        qsort(sorted, (size_t)count, sizeof *sorted, cmp_range);
        int reach = 0; /* the row reaching furthest so far */
        for (int i = 1; i < count && !rc; i++) {
            const struct clip_range *x = &sorted[i], *p = &sorted[i - 1], *q = &sorted[reach];
            if (x->start_s == p->start_s && x->end_s == p->end_s) {
                snprintf(err, errlen, "%s:%d: the same clip as line %d (%g to %g s); the whole list was rejected",
                         path, x->line, p->line, x->start_s, x->end_s);
                rc = -EINVAL;
            } else if (!(flags & CLIPS_ALLOW_OVERLAP) && x->start_s < q->end_s) {
                snprintf(err, errlen,
                         "%s:%d: the clip %g to %g s overlaps line %d (%g to %g s); the whole list was rejected "
                         "(--allow-overlap accepts overlapping clips)",
                         path, x->line, x->start_s, x->end_s, q->line, q->start_s, q->end_s);
                rc = -EINVAL;
            }
            if (x->end_s > q->end_s)
                reach = i;
        }
        free(sorted);
    }
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    *n = count;
    return 0;
}

int clips_check_inside(const char *path, const struct clip_range *r, int n, double movie_end, double slack,
                       char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        if (r[i].end_s > movie_end + slack) {
            snprintf(err, errlen,
                     "%s:%d: the clip %g to %g s ends after the movie (%.3f s); the whole list was rejected, nothing "
                     "was added",
                     path, r[i].line, r[i].start_s, r[i].end_s, movie_end);
            return -EINVAL;
        }
    return 0;
}

int clips_add(struct db *db, int64_t movie_id, const struct clip_range *r, int n, int *added)
{
    *added = 0;
    static const char sql[] = "INSERT INTO clips (movie_id, start_s, end_s, created_at, updated_at, origin, "
                              "curator_label) VALUES (?, ?, ?, ?, ?, 'list', ?) "
                              "ON CONFLICT (movie_id, start_s, end_s) DO NOTHING";
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st = db_prepare(db, sql);
        if (!st)
            return -EIO;
        double t = now_s();
        sqlite3_bind_int64(st, 1, movie_id);
        sqlite3_bind_double(st, 2, r[i].start_s);
        sqlite3_bind_double(st, 3, r[i].end_s);
        sqlite3_bind_double(st, 4, t);
        sqlite3_bind_double(st, 5, t);
        if (r[i].label > 0)
            sqlite3_bind_int(st, 6, r[i].label);
        else
            sqlite3_bind_null(st, 6);
        int rc = db_step_done(db, st);
        if (rc)
            return rc;
        *added += sqlite3_changes(db->h);
    }
    return 0;
}

static char *prep_args(const struct dfew_config *cfg, const char *outputs_dir, const char *path, int64_t clip,
                       double start, double end, const char *subject_box)
{
    struct sbuf b = {0};
    sbuf_add(&b, "{\"path\":");
    sbuf_add_json_str(&b, path);
    sbuf_addf(&b, ",\"clip_id\":%lld,\"start_s\":%.17g,\"end_s\":%.17g,\"out_dir\":", (long long)clip, start, end);
    struct sbuf dir = {0};
    sbuf_addf(&dir, "%s/clips/%lld", outputs_dir, (long long)clip);
    sbuf_add_json_str(&b, dir.s);
    sbuf_free(&dir);
    sbuf_addf(&b, ",\"frames\":%d,\"size\":%d,\"min_face_ratio\":%.17g,\"interp\":", cfg->prep_frames,
              cfg->prep_size, cfg->prep_min_face_ratio);
    sbuf_add_json_str(&b, cfg->prep_interp ? cfg->prep_interp : "tim");
    sbuf_add(&b, ",\"image_format\":");
    sbuf_add_json_str(&b, cfg->prep_image_format ? cfg->prep_image_format : "png");
    sbuf_add(&b, ",\"template\":");
    sbuf_add_json_str(&b, cfg->prep_template ? cfg->prep_template : DFEW_PREP_TEMPLATE);
    sbuf_addf(&b, ",\"template_size\":%d,\"upsample\":%d,\"keep_aligned\":%d,\"landmark_model\":",
              cfg->prep_template_size, cfg->prep_upsample, cfg->prep_keep_aligned);
    sbuf_add_json_str(&b, cfg->prep_landmark_model ? cfg->prep_landmark_model : DFEW_LANDMARK_MODEL);
    sbuf_add(&b, ",\"detect\":");
    sbuf_add_json_str(&b, cfg->prep_detect ? cfg->prep_detect : "fast");
    sbuf_add(&b, ",\"subject\":");
    sbuf_add_json_str(&b, cfg->prep_subject ? cfg->prep_subject : "longest");
    sbuf_addf(&b, ",\"min_face_px\":%.17g,\"detect_interval_s\":%.17g,\"track_gap_s\":%.17g,\"cut_threshold\":%.17g",
              cfg->prep_min_face_px, cfg->prep_detect_interval_s, cfg->prep_track_gap_s, cfg->segment_cut_threshold);
    sbuf_addf(&b, ",\"range_min_s\":%.17g,\"follow_frames\":%d", cfg->prep_range_min_s, cfg->prep_follow_frames);
    if (subject_box && *subject_box) {
        sbuf_add(&b, ",\"subject_box\":");
        sbuf_add_json_str(&b, subject_box);
    }
    sbuf_addc(&b, '}');
    return sbuf_take(&b);
}

int clips_schedule(struct db *db, const struct dfew_config *cfg, const char *outputs_dir, int64_t movie_id,
                   int priority, int whole_movie, int *queued)
{
    *queued = 0;
    sqlite3_stmt *st = db_prepare(db, "SELECT path, start_time_s, duration_s, avg_fps FROM movies "
                                      "WHERE id = ? AND probed_at IS NOT NULL");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, movie_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return 0; /* not probed (yet): the probe's completion schedules */
    }
    char *path = xstrdup(sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
    /* The last frame's time is below the video's start + duration on the
     * timeline (which starts at the container start, <= the video start). */
    double end = sqlite3_column_double(st, 1) + sqlite3_column_double(st, 2);
    double fps = sqlite3_column_double(st, 3);
    sqlite3_reset(st);
    double slack = fps > 0 ? 1.0 / fps : 0.05;
    int rc = 0;
    if (!(end > 0)) {
        free(path);
        return 0; /* no duration known: nothing to check against, nothing to cut */
    }

    st = db_prepare(db, "UPDATE clips SET state = 'failed', updated_at = ?1, reason = printf("
                        "'the clip [%.3f, %.3f) s reaches past the end of the movie (%.3f s); fix the clip list and "
                        "submit it again', start_s, end_s, ?2) WHERE movie_id = ?3 AND state = 'pending' AND "
                        "end_s > ?2 + ?4 AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.clip_id = clips.id)");
    if (!st) {
        free(path);
        return -EIO;
    }
    sqlite3_bind_double(st, 1, now_s());
    sqlite3_bind_double(st, 2, end);
    sqlite3_bind_int64(st, 3, movie_id);
    sqlite3_bind_double(st, 4, slack);
    rc = db_step_done(db, st);

    if (!rc && whole_movie) {
        st = db_prepare(db, "INSERT INTO clips (movie_id, start_s, end_s, created_at, updated_at, origin) "
                            "SELECT ?1, 0, ?2, ?3, ?3, 'whole' WHERE NOT EXISTS (SELECT 1 FROM clips WHERE movie_id = ?1)");
        if (!st) {
            rc = -EIO;
        } else {
            sqlite3_bind_int64(st, 1, movie_id);
            sqlite3_bind_double(st, 2, end);
            sqlite3_bind_double(st, 3, now_s());
            rc = db_step_done(db, st);
        }
    }

    /* the clips that still need their prep job */
    int64_t *ids = NULL;
    double *range = NULL;
    char **hint = NULL;
    int n = 0, cap = 0;
    if (!rc) {
        st = db_prepare(db, "SELECT id, start_s, end_s, subject_box FROM clips WHERE movie_id = ? AND state = 'pending' AND "
                            "NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.clip_id = clips.id) ORDER BY start_s, id");
        if (!st)
            rc = -EIO;
        else {
            sqlite3_bind_int64(st, 1, movie_id);
            int s;
            while ((s = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    ids = xrealloc(ids, sizeof *ids * (size_t)cap);
                    range = xrealloc(range, sizeof *range * 2 * (size_t)cap);
                    hint = xrealloc(hint, sizeof *hint * (size_t)cap);
                }
                hint[n] = sqlite3_column_text(st, 3) ? xstrdup((const char *)sqlite3_column_text(st, 3)) : NULL;
                ids[n] = sqlite3_column_int64(st, 0);
                range[2 * n] = sqlite3_column_double(st, 1);
                range[2 * n + 1] = sqlite3_column_double(st, 2);
                n++;
            }
            if (s != SQLITE_DONE)
                rc = db_errno(s);
            sqlite3_reset(st);
        }
    }
    for (int i = 0; i < n && !rc; i++) {
        char *args = prep_args(cfg, outputs_dir, path, ids[i], range[2 * i], range[2 * i + 1], hint[i]);
        char key[64];
        snprintf(key, sizeof key, "prep:%lld", (long long)ids[i]);
        struct job_spec spec = {.kind = "prep", .movie_id = movie_id, .clip_id = ids[i], .args_json = args,
                                .priority = priority, .dedup_key = key, .max_attempts = cfg->max_attempts};
        int64_t job;
        int created = queue_enqueue(db, &spec, "clip ready for preprocessing", &job);
        if (created < 0)
            rc = created;
        else
            *queued += created;
        free(args);
    }
    for (int i = 0; i < n; i++)
        free(hint[i]);
    free(hint);
    free(ids);
    free(range);
    free(path);
    return rc;
}
