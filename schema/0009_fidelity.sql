-- 0009: fidelity to the file. Why a movie's frame count is not known (or
-- what is odd about it: a file cut short), and a clip's end where the
-- movie's frames really ended when that is before the end asked for (the
-- asked end kept). movie_status and clip_status show both. See schema/README.md.

ALTER TABLE movies ADD COLUMN frame_count_note TEXT; -- why frame_count is NULL, or what is odd about it; NULL: nothing
ALTER TABLE clips ADD COLUMN requested_end_s REAL;   -- the end asked for, when the frames ended before it (end_s: where they did)

DROP VIEW movie_status;
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
       m.frame_count_note,
       p.state                                AS probe_state,
       p.error                                AS probe_error,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id)                      AS clips,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id AND c.state = 'usable') AS usable_clips,
       strftime('%Y-%m-%dT%H:%M:%fZ', m.added_at, 'unixepoch') AS added
FROM movies m
LEFT JOIN jobs p ON p.id = (SELECT max(id) FROM jobs WHERE movie_id = m.id AND kind = 'probe');

DROP VIEW clip_status;
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
       c.requested_end_s,
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
