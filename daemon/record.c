/* What a finished job writes into the domain tables (movies, clips, ...),
 * inside the same transaction that marks the job done. One function per job
 * kind; kinds without domain effects record nothing beyond jobs.result. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "hash.h"

#include "clips.h"
#include "daemon.h"
#include "log.h"
#include "segments.h"

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return 0;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

char *result_json_from_fields(const struct kv *fields)
{
    struct sbuf b = {0};
    sbuf_addc(&b, '{');
    int n = 0;
    for (size_t i = 0; i < fields->n; i++) {
        if (!strcmp(fields->v[i].key, "id"))
            continue;
        if (n++)
            sbuf_addc(&b, ',');
        sbuf_add_json_str(&b, fields->v[i].key);
        sbuf_addc(&b, ':');
        if (is_json_number(fields->v[i].val))
            sbuf_add(&b, fields->v[i].val);
        else
            sbuf_add_json_str(&b, fields->v[i].val);
    }
    sbuf_addc(&b, '}');
    return sbuf_take(&b);
}

static int job_priority(struct daemon *d, int64_t id)
{
    int priority = 0;
    sqlite3_stmt *st = db_prepare(d->db, "SELECT priority FROM jobs WHERE id = ?");
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
        priority = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return priority;
}

static int record_probe(struct daemon *d, const struct leased_job *job, const char *result)
{
    if (job->movie_id <= 0)
        return 0;
    static const char sql[] =
        "UPDATE movies SET container = json_extract(?1, '$.container'), duration_s = json_extract(?1, '$.duration_s'),"
        " start_time_s = json_extract(?1, '$.start_time_s'), video_codec = json_extract(?1, '$.video_codec'),"
        " width = json_extract(?1, '$.width'), height = json_extract(?1, '$.height'),"
        " avg_fps = json_extract(?1, '$.avg_fps'), real_fps = json_extract(?1, '$.real_fps'),"
        " rotation = json_extract(?1, '$.rotation'), frame_count = json_extract(?1, '$.frame_count'),"
        " frame_count_note = json_extract(?1, '$.frame_count_note'), probed_at = ?2 WHERE id = ?3";
    sqlite3_stmt *st = db_prepare(d->db, sql);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, now_s());
    sqlite3_bind_int64(st, 3, job->movie_id);
    int rc = db_step_done(d->db, st);
    if (rc)
        return rc;
    /* The movie's clips can be cut now (prep jobs at the probe's priority);
     * a movie without a clip list is segmented, or is one clip, or waits. */
    int priority = job_priority(d, job->id), queued = 0, segment = 0;
    enum segment_mode mode = config_segment_mode(&d->cfg);
    rc = clips_schedule(d->db, &d->cfg, d->paths.outputs, job->movie_id, priority, mode == SEGMENT_WHOLE, &queued);
    if (!rc && mode == SEGMENT_SHOTS)
        rc = segments_queue(d->db, &d->cfg, d->paths.outputs, job->movie_id, priority, &segment);
    if (!rc && queued)
        log_info(job->id, "movie %lld: %d clip(s) queued for preprocessing", (long long)job->movie_id, queued);
    if (!rc && segment)
        log_info(job->id, "movie %lld: segment job queued (no clip list)", (long long)job->movie_id);
    return rc;
}

/* A movie's shots and candidate clips: recorded from its segments.json
 * (where dfewd expects it, whatever the result says), the chosen clips
 * queued for preprocessing. */
static int record_segment(struct daemon *d, const struct leased_job *job, char *err, size_t errlen)
{
    if (job->movie_id <= 0)
        return 0;
    char *path = segments_path(d->paths.outputs, job->movie_id);
    char *text = NULL;
    size_t len = 0;
    int rc = read_small_file(path, 256u << 20, &text, &len);
    int added = 0, queued = 0;
    if (rc)
        snprintf(err, errlen, "%s: %s (the job is run again)", path, strerror(-rc));
    else
        rc = segments_record(d->db, &d->cfg, d->paths.outputs, job->movie_id, text, job_priority(d, job->id), &added,
                             &queued, err, errlen);
    if (!rc)
        log_info(job->id, "movie %lld: %d clip(s) from segmentation, %d prep job(s) queued", (long long)job->movie_id,
                 added, queued);
    free(text);
    free(path);
    return rc;
}

/* Runs sql, an UPDATE of the job's clip with ?1 = the result JSON, ?2 = now
 * and ?3 = the clip's id; nothing for a job without a clip. */
static int update_clip(struct daemon *d, const struct leased_job *job, const char *result, const char *sql)
{
    if (job->clip_id <= 0)
        return 0;
    sqlite3_stmt *st = db_prepare(d->db, sql);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, now_s());
    sqlite3_bind_int64(st, 3, job->clip_id);
    return db_step_done(d->db, st);
}

/* A clip's preprocessing outcome: usable or unusable, counts, where the
 * outputs are, and how long each stage took. When the movie's frames ended
 * inside the clip (decoded_end_s before its end: a file cut short), the clip
 * ends where they did, so that its duration and bucket are those of the frames
 * it has; the end asked for stays in requested_end_s. (A clip of the movie
 * that already has that range keeps its end: ranges are unique per movie.) */
static int record_prep(struct daemon *d, const struct leased_job *job, const char *result)
{
    int rc = update_clip(
        d, job, result,
        "UPDATE clips SET state = json_extract(?1, '$.state'), reason = json_extract(?1, '$.reason'),"
        " frames_total = json_extract(?1, '$.frames_total'), frames_face = json_extract(?1, '$.frames_face'),"
        " face_ratio = json_extract(?1, '$.face_ratio'), output_dir = json_extract(?1, '$.out_dir'),"
        " out_frames = json_extract(?1, '$.out_frames'), out_size = json_extract(?1, '$.out_size'),"
        " decode_s = json_extract(?1, '$.decode_s'), detect_s = json_extract(?1, '$.detect_s'),"
        " align_s = json_extract(?1, '$.align_s'), write_s = json_extract(?1, '$.write_s'),"
        " prep_s = json_extract(?1, '$.total_s'), faces_tracked = json_extract(?1, '$.tracks'),"
        " detect_mode = json_extract(?1, '$.detect'), searches = json_extract(?1, '$.searches'),"
        " prepped_at = ?2, updated_at = ?2 WHERE id = ?3");
    if (rc)
        return rc;
    return update_clip(d, job, result,
                       "UPDATE clips SET requested_end_s = coalesce(requested_end_s, end_s),"
                       " end_s = json_extract(?1, '$.decoded_end_s'), updated_at = ?2"
                       " WHERE id = ?3 AND json_extract(?1, '$.decoded_end_s') > start_s"
                       " AND json_extract(?1, '$.decoded_end_s') < end_s - 1e-6 AND NOT EXISTS (SELECT 1 FROM clips o"
                       " WHERE o.movie_id = clips.movie_id AND o.start_s = clips.start_s"
                       " AND o.end_s = json_extract(?1, '$.decoded_end_s'))");
}

/* A clip's tensor was built from its frames (tensor job): the trainer reads it. */
static int record_tensor(struct daemon *d, const struct leased_job *job, const char *result)
{
    return update_clip(d, job, result,
                       "UPDATE clips SET tensor_path = json_extract(?1, '$.path'), updated_at = ?2 WHERE id = ?3");
}

/* A download finished: it becomes a movie (unless its content is known) and
 * continues like a submitted file, with a probe job. */
static int record_fetch(struct daemon *d, const struct leased_job *job, const char *result)
{
    sqlite3_stmt *st = db_prepare(d->db, "INSERT INTO movies (sha256, source, path, size_bytes, added_at) "
                                         "VALUES (json_extract(?1, '$.sha256'), json_extract(?1, '$.url'), "
                                         "json_extract(?1, '$.path'), json_extract(?1, '$.size_bytes'), ?2) "
                                         "ON CONFLICT (sha256) DO NOTHING");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, now_s());
    int rc = db_step_done(d->db, st);
    if (rc)
        return rc;
    int is_new = sqlite3_changes(d->db->h) == 1;
    int64_t movie = 0;
    char *old_path = NULL, *new_path = NULL, *sha = NULL;
    st = db_prepare(d->db, "SELECT m.id, m.path, json_extract(?1, '$.path'), m.sha256 FROM movies m "
                           "WHERE m.sha256 = json_extract(?1, '$.sha256')");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        movie = sqlite3_column_int64(st, 0);
        old_path = xstrdup((const char *)sqlite3_column_text(st, 1));
        new_path = xstrdup((const char *)sqlite3_column_text(st, 2));
        sha = xstrdup((const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_reset(st);
    if (!movie) {
        free(old_path);
        free(new_path);
        free(sha);
        return -EIO;
    }
    if (!is_new && strcmp(old_path, new_path)) {
        if (access(old_path, R_OK) == 0) {
            /* Same bytes as a movie we have: keep one copy. */
            log_info(job->id, "downloaded content is already movie %lld (%s); removing the duplicate download",
                     (long long)movie, old_path);
            unlink(new_path);
        } else {
            st = db_prepare(d->db, "UPDATE movies SET path = ? WHERE id = ?");
            sqlite3_bind_text(st, 1, new_path, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, movie);
            rc = db_step_done(d->db, st);
        }
    }
    if (!rc) {
        st = db_prepare(d->db, "UPDATE jobs SET movie_id = ? WHERE id = ?");
        sqlite3_bind_int64(st, 1, movie);
        sqlite3_bind_int64(st, 2, job->id);
        rc = db_step_done(d->db, st);
    }
    if (!rc) {
        struct sbuf key = {0};
        const char *probe_path = is_new || access(old_path, R_OK) != 0 ? new_path : old_path;
        struct stat sb;
        int64_t size = -1, mtime_ns = -1;
        if (stat(probe_path, &sb) == 0) {
            size = sb.st_size;
            mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        }
        char *args = probe_args_json(probe_path, sha, size, mtime_ns);
        sbuf_addf(&key, "probe:%lld", (long long)movie);
        struct job_spec spec = {.kind = "probe", .movie_id = movie, .args_json = args, .dedup_key = key.s,
                                .max_attempts = d->cfg.max_attempts};
        char why[64];
        snprintf(why, sizeof why, "queued by fetch job %lld", (long long)job->id);
        int64_t probe;
        int r = queue_enqueue(d->db, &spec, why, &probe);
        rc = r < 0 ? r : 0;
        if (r == 1)
            log_info(probe, "probe queued for movie %lld, downloaded by job %lld", (long long)movie,
                     (long long)job->id);
        free(args);
        sbuf_free(&key);
    }
    free(old_path);
    free(new_path);
    free(sha);
    return rc;
}

/* The lines of a text file the train job wrote: its first line must be
 * "<magic> 1", its second the column names; calls row() for each further
 * line split at tabs. Returns the rows, or negative (logged). */
static int read_rows(int64_t job_id, const char *path, const char *magic, int ncols,
                     int (*row)(void *arg, char **cols), void *arg)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) {
        log_error(job_id, "train result: cannot read %s: %s", path ? path : "(no file named)", strerror(errno));
        return -ENOENT;
    }
    char *line = NULL, *cols[16];
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rows = 0, rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        if (lineno == 1) {
            size_t m = strlen(magic);
            if (strncmp(line, magic, m) || strcmp(line + m, " 1"))
                rc = -EINVAL;
            continue;
        }
        if (lineno == 2)
            continue;
        int n = 0;
        for (char *save = NULL, *t = strtok_r(line, "\t", &save); t && n < 16; t = strtok_r(NULL, "\t", &save))
            cols[n++] = t;
        rc = n == ncols ? row(arg, cols) : -EINVAL;
        rows++;
    }
    free(line);
    fclose(f);
    if (rc)
        log_error(job_id, "train result: %s:%d is not a %s version 1 line%s", path, lineno, magic,
                  rc == -EINVAL ? "" : " (the database refused it)");
    return rc ? rc : rows;
}

struct train_rows {
    struct daemon *d;
    int64_t run;
    int fold;
};

static int prediction_row(void *arg, char **c)
{
    struct train_rows *t = arg;
    sqlite3_stmt *st = db_prepare(t->d->db, "INSERT INTO predictions (run_id, fold, clip_id, label, pred, p_happy, "
                                            "p_sad, p_neutral, p_angry, p_surprise, p_disgust, p_fear) "
                                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, t->run);
    sqlite3_bind_int(st, 2, t->fold);
    for (int i = 0; i < 10; i++) {
        double v;
        if (parse_double(c[i], &v) || (i < 3 && v != floor(v))) {
            sqlite3_reset(st);
            return -EINVAL;
        }
        if (i < 3)
            sqlite3_bind_int64(st, 3 + i, (int64_t)v);
        else
            sqlite3_bind_double(st, 3 + i, v);
    }
    return db_step_done(t->d->db, st);
}

static int epoch_row(void *arg, char **c)
{
    struct train_rows *t = arg;
    sqlite3_stmt *st = db_prepare(t->d->db, "INSERT INTO train_epochs (run_id, fold, epoch, loss, ce, aux, accuracy, "
                                            "lr, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, t->run);
    sqlite3_bind_int(st, 2, t->fold);
    for (int i = 0; i < 7; i++) {
        double v;
        if (parse_double(c[i], &v)) {
            sqlite3_reset(st);
            return -EINVAL;
        }
        sqlite3_bind_double(st, 3 + i, v);
    }
    return db_step_done(t->d->db, st);
}

/* A fold of a training run finished: what ran it (backend, device), how the
 * training went, its epochs, and every test clip's prediction, read from the
 * files the job wrote. The run and fold come from the job's own arguments. */
static int record_train(struct daemon *d, const struct leased_job *job, const char *result)
{
    sqlite3_stmt *st = db_prepare(d->db, "SELECT json_extract(?1, '$.run_id'), json_extract(?1, '$.fold'), "
                                         "json_extract(?2, '$.predictions'), json_extract(?2, '$.history'), "
                                         "(SELECT test_clips FROM run_folds WHERE run_id = json_extract(?1, '$.run_id') "
                                         "AND fold = json_extract(?1, '$.fold'))");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, job->args_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, result, -1, SQLITE_STATIC);
    struct train_rows t = {d, 0, 0};
    char *pred = NULL, *hist = NULL;
    int test_clips = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        t.run = sqlite3_column_int64(st, 0);
        t.fold = sqlite3_column_int(st, 1);
        if (sqlite3_column_text(st, 2))
            pred = xstrdup((const char *)sqlite3_column_text(st, 2));
        if (sqlite3_column_text(st, 3))
            hist = xstrdup((const char *)sqlite3_column_text(st, 3));
        if (sqlite3_column_type(st, 4) != SQLITE_NULL)
            test_clips = sqlite3_column_int(st, 4);
    }
    sqlite3_reset(st);
    int rc = 0;
    if (test_clips < 0) {
        log_warn(job->id, "train job for run %lld fold %d finished, but the run is gone; nothing recorded",
                 (long long)t.run, t.fold);
        goto out;
    }
    st = db_prepare(d->db,
                    "UPDATE run_folds SET backend = json_extract(?1, '$.backend'), device = json_extract(?1, '$.device'),"
                    " blas_core = json_extract(?1, '$.blas_core'), resumed_from = json_extract(?1, '$.resumed_from'),"
                    " epochs_done = json_extract(?1, '$.epochs_done'), final_loss = json_extract(?1, '$.final_loss'),"
                    " final_lr = json_extract(?1, '$.final_lr'), train_s = json_extract(?1, '$.train_s'),"
                    " eval_s = json_extract(?1, '$.eval_s'), clips_per_s = json_extract(?1, '$.clips_per_s'),"
                    " predictions = json_extract(?1, '$.predictions'), finished_at = ?2 WHERE run_id = ?3 AND fold = ?4");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, now_s());
    sqlite3_bind_int64(st, 3, t.run);
    sqlite3_bind_int(st, 4, t.fold);
    if ((rc = db_step_done(d->db, st)) != 0)
        goto out;
    st = db_prepare(d->db, "DELETE FROM predictions WHERE run_id = ? AND fold = ?");
    sqlite3_bind_int64(st, 1, t.run);
    sqlite3_bind_int(st, 2, t.fold);
    if ((rc = db_step_done(d->db, st)) != 0)
        goto out;
    st = db_prepare(d->db, "DELETE FROM train_epochs WHERE run_id = ? AND fold = ?");
    sqlite3_bind_int64(st, 1, t.run);
    sqlite3_bind_int(st, 2, t.fold);
    if ((rc = db_step_done(d->db, st)) != 0)
        goto out;
    int n = read_rows(job->id, pred, "dfew-predictions", 10, prediction_row, &t);
    if (n >= 0 && n != test_clips) {
        log_error(job->id, "train result: %s holds %d predictions, fold %d has %d test clips", pred, n, t.fold,
                  test_clips);
        n = -EINVAL;
    }
    rc = n < 0 ? n : 0;
    if (!rc && hist && (n = read_rows(job->id, hist, "dfew-train-history", 7, epoch_row, &t)) < 0)
        rc = n;
    if (!rc)
        log_info(job->id, "run %lld fold %d: %d predictions recorded", (long long)t.run, t.fold, test_clips);
out:
    free(pred);
    free(hist);
    return rc;
}

int record_result(struct daemon *d, const struct leased_job *job, const char *result_json, char *err, size_t errlen)
{
    int rc = 0;
    if (!strcmp(job->kind, "train"))
        rc = record_train(d, job, result_json);
    else if (!strcmp(job->kind, "probe"))
        rc = record_probe(d, job, result_json);
    else if (!strcmp(job->kind, "fetch"))
        rc = record_fetch(d, job, result_json);
    else if (!strcmp(job->kind, "prep"))
        rc = record_prep(d, job, result_json);
    else if (!strcmp(job->kind, "tensor"))
        rc = record_tensor(d, job, result_json);
    else if (!strcmp(job->kind, "segment"))
        rc = record_segment(d, job, err, errlen);
    if (rc && errlen && !err[0])
        snprintf(err, errlen, "%s (dfewd's log has the details)", strerror(-rc));
    return rc;
}

void record_dead_fetch(struct daemon *d, const struct leased_job *job)
{
    if (strcmp(job->kind, "fetch") || !job->args_json)
        return;
    sqlite3_stmt *st = db_prepare(d->db, "SELECT json_extract(?1, '$.url'), json_extract(?1, '$.dest_dir')");
    if (!st)
        return;
    sqlite3_bind_text(st, 1, job->args_json, -1, SQLITE_STATIC);
    char *url = NULL, *dir = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) && sqlite3_column_text(st, 1)) {
        url = xstrdup((const char *)sqlite3_column_text(st, 0));
        dir = xstrdup((const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    if (url && dir) {
        char *partial = fetch_partial_path(dir, url);
        struct sbuf v = {0};
        sbuf_addf(&v, "%s%s", partial, FETCH_VALIDATOR_SUFFIX);
        if (unlink(partial) == 0)
            log_info(job->id, "the dead download's partial file %s was removed", partial);
        unlink(v.s);
        sbuf_free(&v);
        free(partial);
    }
    free(url);
    free(dir);
}
