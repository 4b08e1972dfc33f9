-- 0004: labels and folds: the seven emotions, annotators' votes per clip, the
-- single-label settings, named fold splits, DFEW names of clips; and the views
-- clip_labels, fold_clips and fold_summary. See schema/README.md.

CREATE TABLE emotions (
    id    INTEGER PRIMARY KEY CHECK (id BETWEEN 1 AND 7),
    name  TEXT NOT NULL UNIQUE
);
INSERT INTO emotions (id, name) VALUES
    (1, 'happy'), (2, 'sad'), (3, 'neutral'), (4, 'angry'), (5, 'surprise'), (6, 'disgust'), (7, 'fear');

-- The DFEW video name of a clip (e.g. '00042'), a second identifier for label
-- files; where its aligned frames before temporal interpolation are; and
-- whether start_s/end_s are real (0: placeholders of a clip imported without
-- its original video).
ALTER TABLE clips ADD COLUMN name TEXT;
ALTER TABLE clips ADD COLUMN aligned_dir TEXT;
ALTER TABLE clips ADD COLUMN duration_known INTEGER NOT NULL DEFAULT 1 CHECK (duration_known IN (0, 1));
CREATE UNIQUE INDEX clips_name ON clips(name) WHERE name IS NOT NULL;

CREATE TABLE votes (
    clip_id    INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    annotator  TEXT NOT NULL CHECK (length(annotator) > 0),
    emotion    INTEGER NOT NULL REFERENCES emotions(id),
    source     TEXT,
    added_at   REAL NOT NULL,
    PRIMARY KEY (clip_id, annotator)
) WITHOUT ROWID;

-- One row: the single-label threshold r and the annotators per clip, copied
-- from dfew.conf [labels] by dfewctl so that the views agree with it.
CREATE TABLE label_settings (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    threshold            INTEGER NOT NULL CHECK (threshold >= 0),
    annotators_per_clip  INTEGER NOT NULL CHECK (annotators_per_clip >= 1),
    updated_at           REAL NOT NULL
);
INSERT INTO label_settings (id, threshold, annotators_per_clip, updated_at) VALUES (1, 6, 10, 0);

-- AUTOINCREMENT: a split id is never reused, so fold_members rows left by a
-- DELETE without foreign keys (a sqlite3 shell) never join a newer split.
CREATE TABLE splits (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    k           INTEGER NOT NULL CHECK (k >= 2),
    seed        INTEGER,
    by_movie    INTEGER NOT NULL DEFAULT 0 CHECK (by_movie IN (0, 1)),
    threshold   INTEGER,
    source      TEXT NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE fold_members (
    split_id  INTEGER NOT NULL REFERENCES splits(id) ON DELETE CASCADE,
    clip_id   INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    fold      INTEGER NOT NULL CHECK (fold >= 1),
    label     INTEGER NOT NULL REFERENCES emotions(id),
    PRIMARY KEY (split_id, clip_id)
) WITHOUT ROWID;
CREATE INDEX fold_members_clip ON fold_members(clip_id);

CREATE VIEW clip_labels AS
WITH d AS (
    SELECT clip_id,
           sum(emotion = 1) AS happy, sum(emotion = 2) AS sad, sum(emotion = 3) AS neutral,
           sum(emotion = 4) AS angry, sum(emotion = 5) AS surprise, sum(emotion = 6) AS disgust,
           sum(emotion = 7) AS fear, count(*) AS votes
    FROM votes GROUP BY clip_id
), m AS (
    SELECT d.*, max(happy, sad, neutral, angry, surprise, disgust, fear) AS top,
           (happy = max(happy, sad, neutral, angry, surprise, disgust, fear)) +
           (sad = max(happy, sad, neutral, angry, surprise, disgust, fear)) +
           (neutral = max(happy, sad, neutral, angry, surprise, disgust, fear)) +
           (angry = max(happy, sad, neutral, angry, surprise, disgust, fear)) +
           (surprise = max(happy, sad, neutral, angry, surprise, disgust, fear)) +
           (disgust = max(happy, sad, neutral, angry, surprise, disgust, fear)) +
           (fear = max(happy, sad, neutral, angry, surprise, disgust, fear)) AS tops
    FROM d
), l AS (
    SELECT m.*,
           CASE WHEN top > (SELECT threshold FROM label_settings WHERE id = 1) AND tops = 1 THEN
               CASE top WHEN happy THEN 1 WHEN sad THEN 2 WHEN neutral THEN 3 WHEN angry THEN 4
                        WHEN surprise THEN 5 WHEN disgust THEN 6 ELSE 7 END
           END AS label
    FROM m
)
SELECT l.clip_id,
       c.name,
       c.movie_id,
       c.state,
       CASE WHEN c.duration_known THEN round(c.end_s - c.start_s, 3) END AS duration_s,
       l.happy, l.sad, l.neutral, l.angry, l.surprise, l.disgust, l.fear,
       l.votes,
       l.label,
       coalesce(e.name, 'ambiguous')          AS label_name
FROM l
JOIN clips c ON c.id = l.clip_id
LEFT JOIN emotions e ON e.id = l.label;

CREATE VIEW fold_clips AS
SELECT s.name                                 AS split,
       f.fold,
       f.clip_id,
       c.name,
       c.movie_id,
       f.label,
       e.name                                 AS label_name,
       c.state,
       c.output_dir
FROM fold_members f
JOIN splits s ON s.id = f.split_id
JOIN clips c ON c.id = f.clip_id
JOIN emotions e ON e.id = f.label;

CREATE VIEW fold_summary AS
SELECT s.name                                 AS split,
       f.fold,
       count(*)                               AS clips,
       sum(f.label = 1) AS happy, sum(f.label = 2) AS sad, sum(f.label = 3) AS neutral,
       sum(f.label = 4) AS angry, sum(f.label = 5) AS surprise, sum(f.label = 6) AS disgust,
       sum(f.label = 7) AS fear,
       count(DISTINCT c.movie_id)             AS movies
FROM fold_members f
JOIN splits s ON s.id = f.split_id
JOIN clips c ON c.id = f.clip_id
GROUP BY s.id, f.fold;
