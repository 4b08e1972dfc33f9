/* Segment jobs in the database (see segments.h). */
#include "segments.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clips.h"
#include "queue.h"
#include "util.h"

char *segments_path(const char *outputs_dir, int64_t movie_id)
{
    struct sbuf b = {0};
    sbuf_addf(&b, "%s/movies/%lld/segments.json", outputs_dir, (long long)movie_id);
    return sbuf_take(&b);
}

int segments_queue(struct db *db, const struct dfew_config *cfg, const char *outputs_dir, int64_t movie_id,
                   int priority, int *queued)
{
    *queued = 0;
    sqlite3_stmt *st = db_prepare(db, "SELECT path, duration_s, (SELECT count(*) FROM clips WHERE movie_id = ?1) "
                                      "FROM movies WHERE id = ?1 AND probed_at IS NOT NULL");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, movie_id);
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 2) > 0) {
        sqlite3_reset(st);
        return 0; /* not probed, or it has clips (a clip list): nothing to find */
    }
    struct sbuf args = {0}, dir = {0};
    sbuf_add(&args, "{\"path\":");
    sbuf_add_json_str(&args, sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
    double duration = sqlite3_column_double(st, 1);
    sqlite3_reset(st);
    sbuf_addf(&dir, "%s/movies/%lld", outputs_dir, (long long)movie_id);
    sbuf_addf(&args, ",\"movie_id\":%lld,\"out_dir\":", (long long)movie_id);
    sbuf_add_json_str(&args, dir.s);
    sbuf_add(&args, ",\"landmark_model\":");
    sbuf_add_json_str(&args, cfg->prep_landmark_model ? cfg->prep_landmark_model : DFEW_LANDMARK_MODEL);
    sbuf_addf(&args,
              ",\"duration_s\":%.17g,\"cut_threshold\":%.17g,\"detect_interval_s\":%.17g,\"min_s\":%.17g,"
              "\"max_s\":%.17g,\"track_gap_s\":%.17g,\"max_clips\":%d,\"upsample\":%d,\"min_face_px\":%.17g,"
              "\"min_face_ratio\":%.17g}",
              duration, cfg->segment_cut_threshold, cfg->segment_detect_interval_s, cfg->segment_min_s,
              cfg->segment_max_s, cfg->segment_track_gap_s, cfg->segment_max_clips, cfg->prep_upsample,
              cfg->prep_min_face_px, cfg->prep_min_face_ratio);
    char key[64];
    snprintf(key, sizeof key, "segment:%lld", (long long)movie_id);
    struct job_spec spec = {.kind = "segment", .movie_id = movie_id, .args_json = args.s, .priority = priority,
                            .dedup_key = key, .max_attempts = cfg->max_attempts};
    int64_t job;
    int created = queue_enqueue(db, &spec, "movie without a clip list: find its shots and face tracks", &job);
    sbuf_free(&args);
    sbuf_free(&dir);
    if (created < 0)
        return created;
    *queued = created;
    return 0;
}

int segments_record(struct db *db, const struct dfew_config *cfg, const char *outputs_dir, int64_t movie_id,
                    const char *json, int priority, int *clips_added, int *prep_queued, char *err, size_t errlen)
{
    *clips_added = *prep_queued = 0;
    sqlite3_stmt *st = db_prepare(db, "SELECT json_valid(?1) AND json_extract(?1, '$.format') = 'dfew-segments' "
                                      "AND json_extract(?1, '$.version') IN (1, 2) AND json_extract(?1, '$.movie_id') = ?2");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, movie_id);
    int ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    if (!ok) {
        snprintf(err, errlen, "not a dfew-segments file (version 1 or 2) of movie %lld", (long long)movie_id);
        return -EINVAL;
    }
    static const char *const sql[] = {
        "DELETE FROM shots WHERE movie_id = ?2",
        "INSERT INTO shots (movie_id, shot, start_frame, end_frame, start_s, end_s, cut_score, sampled, "
        "face_samples, faces_max, candidates) SELECT ?2, json_extract(value, '$.index'), "
        "json_extract(value, '$.start_frame'), json_extract(value, '$.end_frame'), json_extract(value, '$.start_s'), "
        "json_extract(value, '$.end_s'), json_extract(value, '$.cut_score'), json_extract(value, '$.sampled'), "
        "json_extract(value, '$.face_samples'), json_extract(value, '$.faces_max'), "
        "json_extract(value, '$.candidates') FROM json_each(?1, '$.shots')",
        "UPDATE movies SET segmented_at = ?3, segment_frames = json_extract(?1, '$.frames'), "
        "segment_candidates = json_array_length(?1, '$.candidates'), segment_note = json_extract(?1, '$.note') "
        "WHERE id = ?2",
        "INSERT INTO clips (movie_id, start_s, end_s, created_at, updated_at, origin, shot, track, subject_box) "
        "SELECT ?2, json_extract(value, '$.start_s'), json_extract(value, '$.end_s'), ?3, ?3, 'segment', "
        "json_extract(value, '$.shot'), json_extract(value, '$.track'), json_extract(value, '$.subject_box') "
        "FROM json_each(?1, '$.candidates') "
        "WHERE json_extract(value, '$.chosen') ON CONFLICT (movie_id, start_s, end_s) DO NOTHING",
    };
    double now = now_s();
    for (size_t i = 0; i < ARRAY_LEN(sql); i++) {
        if (!(st = db_prepare(db, sql[i])))
            return -EIO;
        sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, movie_id);
        sqlite3_bind_double(st, 3, now);
        int rc = db_step_done(db, st);
        if (rc)
            return rc;
        if (i == ARRAY_LEN(sql) - 1)
            *clips_added = sqlite3_changes(db->h);
    }
    return clips_schedule(db, cfg, outputs_dir, movie_id, priority, 0, prep_queued);
}
