-- 0010: one subject per clip, followed by the face tracker. The segment job
-- names each clip's face (its box at the clip's first frame) so that the
-- prep job follows that person; the prep job records how many faces it
-- followed, how it looked for them and how many whole-frame searches that
-- took. clip_prep gains those columns. See schema/README.md.

ALTER TABLE clips ADD COLUMN subject_box   TEXT;    -- origin 'segment': the clip's face at its first frame, "x0,y0,x1,y1" (pixels)
ALTER TABLE clips ADD COLUMN faces_tracked INTEGER; -- faces the prep job followed in the clip (its subject is one of them)
ALTER TABLE clips ADD COLUMN detect_mode   TEXT;    -- 'fast' or 'every_frame' ([prep] detect when the job was queued)
ALTER TABLE clips ADD COLUMN searches      INTEGER; -- frames whose whole picture the face detector searched

DROP VIEW clip_prep;
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
       strftime('%Y-%m-%dT%H:%M:%fZ', c.prepped_at, 'unixepoch') AS prepped,
       c.detect_mode,
       c.faces_tracked,
       c.searches
FROM clips c
JOIN movies m ON m.id = c.movie_id;
