-- 0005: what the prep stage records per clip (output shape, time per stage),
-- and clip_prep, a view of it for sqlite3 users.

ALTER TABLE clips ADD COLUMN out_frames INTEGER; -- frames after temporal interpolation (16)
ALTER TABLE clips ADD COLUMN out_size   INTEGER; -- aligned frames are out_size x out_size
ALTER TABLE clips ADD COLUMN decode_s   REAL;    -- seconds decoding and converting frames
ALTER TABLE clips ADD COLUMN detect_s   REAL;    -- seconds in face detection + landmarks
ALTER TABLE clips ADD COLUMN align_s    REAL;    -- seconds aligning and interpolating
ALTER TABLE clips ADD COLUMN write_s    REAL;    -- seconds writing outputs
ALTER TABLE clips ADD COLUMN prep_s     REAL;    -- the prep job's whole run
ALTER TABLE clips ADD COLUMN prepped_at REAL;    -- when the prep result was recorded

CREATE VIEW clip_prep AS
SELECT c.id                                   AS clip_id,
       c.movie_id,
       m.source                               AS movie,
       c.start_s,
       c.end_s,
       c.state,
       c.reason,
       c.frames_total,
       c.frames_face,
       round(c.face_ratio, 4)                 AS face_ratio,
       c.out_frames,
       c.out_size,
       c.output_dir,
       round(c.prep_s, 3)                     AS prep_s,
       CASE WHEN c.prep_s > 0 THEN round(c.frames_total / c.prep_s, 1) END AS frames_per_s,
       round(c.decode_s, 3)                   AS decode_s,
       round(c.detect_s, 3)                   AS detect_s,
       round(c.align_s, 3)                    AS align_s,
       round(c.write_s, 3)                    AS write_s,
       strftime('%Y-%m-%dT%H:%M:%fZ', c.prepped_at, 'unixepoch') AS prepped
FROM clips c
JOIN movies m ON m.id = c.movie_id;
