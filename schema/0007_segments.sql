-- 0007: automatic segmentation. The shots the segment job found in a movie,
-- what it concluded per movie, where each clip came from (a clip list, the
-- segment job, or the whole movie) and a clip list's label column; the views
-- movie_shots, movie_segments and clip_origin. See schema/README.md.

CREATE TABLE shots (
    movie_id      INTEGER NOT NULL REFERENCES movies(id) ON DELETE CASCADE,
    shot          INTEGER NOT NULL CHECK (shot >= 0),  -- 0, 1, ... in time order
    start_frame   INTEGER NOT NULL CHECK (start_frame >= 0),
    end_frame     INTEGER NOT NULL CHECK (end_frame > start_frame),
    start_s       REAL NOT NULL,
    end_s         REAL NOT NULL,
    cut_score     REAL,              -- FFmpeg scene score of the cut that starts it; NULL for the first shot
    sampled       INTEGER NOT NULL,  -- frames the face detector looked at
    face_samples  INTEGER NOT NULL,  -- of those, with one dominant face
    faces_max     INTEGER NOT NULL,  -- most faces in one sampled frame
    candidates    INTEGER NOT NULL,  -- candidate clips in the shot (before the per-movie limit)
    PRIMARY KEY (movie_id, shot)
) WITHOUT ROWID;

ALTER TABLE movies ADD COLUMN segmented_at       REAL;    -- when the segment result was recorded
ALTER TABLE movies ADD COLUMN segment_frames     INTEGER; -- frames the segment job decoded
ALTER TABLE movies ADD COLUMN segment_candidates INTEGER; -- candidate clips, before the per-movie limit
ALTER TABLE movies ADD COLUMN segment_note       TEXT;    -- the outcome in a sentence (why no clip, when none)

ALTER TABLE clips ADD COLUMN origin TEXT CHECK (origin IN ('list', 'segment', 'whole')); -- NULL: before 0006
ALTER TABLE clips ADD COLUMN shot   INTEGER; -- origin 'segment': the shot it lies in
ALTER TABLE clips ADD COLUMN track  INTEGER; -- origin 'segment': its face track (parts of one track share it)
ALTER TABLE clips ADD COLUMN curator_label INTEGER REFERENCES emotions(id); -- a clip list's label column

CREATE VIEW movie_shots AS
SELECT s.movie_id,
       m.source                               AS movie,
       s.shot,
       s.start_frame,
       s.end_frame,
       s.end_frame - s.start_frame            AS frames,
       s.start_s,
       s.end_s,
       round(s.end_s - s.start_s, 3)          AS duration_s,
       round(s.cut_score, 4)                  AS cut_score,
       s.sampled,
       s.face_samples,
       CASE WHEN s.sampled > 0 THEN round(1.0 * s.face_samples / s.sampled, 3) END AS face_share,
       s.faces_max,
       s.candidates,
       (SELECT count(*) FROM clips c WHERE c.movie_id = s.movie_id AND c.origin = 'segment' AND c.shot = s.shot)
                                              AS clips
FROM shots s
JOIN movies m ON m.id = s.movie_id;

CREATE VIEW movie_segments AS
SELECT m.id                                   AS movie_id,
       m.source,
       j.state                                AS segment_state,
       j.error                                AS segment_error,
       m.segment_frames                       AS frames,
       (SELECT count(*) FROM shots s WHERE s.movie_id = m.id) AS shots,
       m.segment_candidates                   AS candidates,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id AND c.origin = 'segment') AS clips,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id AND c.origin = 'segment'
                                       AND c.end_s - c.start_s < 2) AS clips_0_2s,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id AND c.origin = 'segment'
                                       AND c.end_s - c.start_s >= 2 AND c.end_s - c.start_s < 5) AS clips_2_5s,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id AND c.origin = 'segment'
                                       AND c.end_s - c.start_s >= 5) AS clips_5s_plus,
       (SELECT count(*) FROM clips c WHERE c.movie_id = m.id AND c.origin = 'segment' AND c.state = 'usable')
                                              AS usable_clips,
       m.segment_note                         AS note,
       strftime('%Y-%m-%dT%H:%M:%fZ', m.segmented_at, 'unixepoch') AS segmented
FROM movies m
LEFT JOIN jobs j ON j.id = (SELECT max(id) FROM jobs WHERE movie_id = m.id AND kind = 'segment')
WHERE j.id IS NOT NULL OR m.segmented_at IS NOT NULL;

CREATE VIEW clip_origin AS
SELECT s.clip_id,
       s.movie_id,
       s.movie,
       c.origin,
       c.shot,
       c.track,
       s.start_s,
       s.end_s,
       s.duration_s,
       s.duration_bucket,
       c.curator_label,
       e.name                                 AS curator_label_name,
       s.state
FROM clip_status s
JOIN clips c ON c.id = s.clip_id
LEFT JOIN emotions e ON e.id = c.curator_label;
