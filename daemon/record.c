/* What a finished job writes into the domain tables (movies, clips, ...),
 * inside the same transaction that marks the job done. One function per job
 * kind; kinds without domain effects record nothing beyond jobs.result. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        " probed_at = ?2 WHERE id = ?3";
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

/* A clip's preprocessing outcome: usable or unusable, counts, where the
 * outputs are, and how long each stage took. */
static int record_prep(struct daemon *d, const struct leased_job *job, const char *result)
{
    if (job->clip_id <= 0)
        return 0;
    static const char sql[] =
        "UPDATE clips SET state = json_extract(?1, '$.state'), reason = json_extract(?1, '$.reason'),"
        " frames_total = json_extract(?1, '$.frames_total'), frames_face = json_extract(?1, '$.frames_face'),"
        " face_ratio = json_extract(?1, '$.face_ratio'), output_dir = json_extract(?1, '$.out_dir'),"
        " out_frames = json_extract(?1, '$.out_frames'), out_size = json_extract(?1, '$.out_size'),"
        " decode_s = json_extract(?1, '$.decode_s'), detect_s = json_extract(?1, '$.detect_s'),"
        " align_s = json_extract(?1, '$.align_s'), write_s = json_extract(?1, '$.write_s'),"
        " prep_s = json_extract(?1, '$.total_s'), prepped_at = ?2, updated_at = ?2 WHERE id = ?3";
    sqlite3_stmt *st = db_prepare(d->db, sql);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, now_s());
    sqlite3_bind_int64(st, 3, job->clip_id);
    return db_step_done(d->db, st);
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
    char *old_path = NULL, *new_path = NULL;
    st = db_prepare(d->db, "SELECT m.id, m.path, json_extract(?1, '$.path') FROM movies m "
                           "WHERE m.sha256 = json_extract(?1, '$.sha256')");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        movie = sqlite3_column_int64(st, 0);
        old_path = xstrdup((const char *)sqlite3_column_text(st, 1));
        new_path = xstrdup((const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_reset(st);
    if (!movie) {
        free(old_path);
        free(new_path);
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
        struct sbuf args = {0}, key = {0};
        sbuf_add(&args, "{\"path\":");
        sbuf_add_json_str(&args, is_new || access(old_path, R_OK) != 0 ? new_path : old_path);
        sbuf_addc(&args, '}');
        sbuf_addf(&key, "probe:%lld", (long long)movie);
        struct job_spec spec = {.kind = "probe", .movie_id = movie, .args_json = args.s, .dedup_key = key.s,
                                .max_attempts = d->cfg.max_attempts};
        char why[64];
        snprintf(why, sizeof why, "queued by fetch job %lld", (long long)job->id);
        int64_t probe;
        int r = queue_enqueue(d->db, &spec, why, &probe);
        rc = r < 0 ? r : 0;
        if (r == 1)
            log_info(probe, "probe queued for movie %lld, downloaded by job %lld", (long long)movie,
                     (long long)job->id);
        sbuf_free(&args);
        sbuf_free(&key);
    }
    free(old_path);
    free(new_path);
    return rc;
}

int record_result(struct daemon *d, const struct leased_job *job, const char *result_json, char *err, size_t errlen)
{
    if (!strcmp(job->kind, "probe"))
        return record_probe(d, job, result_json);
    if (!strcmp(job->kind, "fetch"))
        return record_fetch(d, job, result_json);
    if (!strcmp(job->kind, "prep"))
        return record_prep(d, job, result_json);
    if (!strcmp(job->kind, "segment"))
        return record_segment(d, job, err, errlen);
    return 0;
}
