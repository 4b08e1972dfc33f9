-- 0002: read-only views for people who query the database with sqlite3.
-- They are a public interface: change them only by adding a migration.

CREATE VIEW queue_summary AS
SELECT kind,
       state,
       count(*)                                                    AS jobs,
       sum(attempts)                                               AS attempts,
       strftime('%Y-%m-%dT%H:%M:%fZ', min(created_at), 'unixepoch') AS oldest,
       strftime('%Y-%m-%dT%H:%M:%fZ', max(updated_at), 'unixepoch') AS last_change
FROM jobs
GROUP BY kind, state
ORDER BY kind, CASE state WHEN 'leased' THEN 0 WHEN 'queued' THEN 1 WHEN 'failed' THEN 2
                          WHEN 'dead' THEN 3 WHEN 'cancelled' THEN 4 ELSE 5 END;

CREATE VIEW clip_status AS
SELECT c.id                                   AS clip_id,
       c.movie_id,
       m.source                               AS movie,
       c.start_s,
       c.end_s,
       round(c.end_s - c.start_s, 3)          AS duration_s,
       CASE WHEN c.end_s - c.start_s < 2 THEN '0-2s'
            WHEN c.end_s - c.start_s < 5 THEN '2-5s'
            ELSE '5s+' END                    AS duration_bucket,
       c.state,
       c.reason,
       c.frames_total,
       c.frames_face,
       c.face_ratio,
       c.output_dir,
       j.id                                   AS job_id,
       j.state                                AS job_state,
       strftime('%Y-%m-%dT%H:%M:%fZ', c.updated_at, 'unixepoch') AS updated
FROM clips c
JOIN movies m ON m.id = c.movie_id
LEFT JOIN jobs j ON j.id = (SELECT max(id) FROM jobs WHERE clip_id = c.id);

CREATE VIEW movie_status AS
SELECT m.id                                   AS movie_id,
       m.source,
       m.sha256,
       m.size_bytes,
       m.container,
       m.video_codec,
       m.width,
       m.height,
       m.avg_fps,
       m.real_fps,
       m.duration_s,
       m.start_time_s,
       m.rotation,
       m.frame_count,
       p.state                                AS probe_state,
       p.error                                AS probe_error,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id)                      AS clips,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id AND c.state = 'usable') AS usable_clips,
       strftime('%Y-%m-%dT%H:%M:%fZ', m.added_at, 'unixepoch') AS added
FROM movies m
LEFT JOIN jobs p ON p.id = (SELECT max(id) FROM jobs WHERE movie_id = m.id AND kind = 'probe');

CREATE VIEW job_log AS
SELECT e.id                                   AS event_id,
       e.job_id,
       j.kind,
       strftime('%Y-%m-%dT%H:%M:%fZ', e.at, 'unixepoch') AS at,
       e.from_state,
       e.to_state,
       e.message
FROM events e
JOIN jobs j ON j.id = e.job_id;
