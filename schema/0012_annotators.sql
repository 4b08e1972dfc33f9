-- 0012: the people who annotate through dfew-web (`dfewctl annotators add`).
-- Their votes are ordinary votes rows whose annotator is the name here.

CREATE TABLE annotators (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64 AND substr(name, 1, 1) <> '#'),
    -- SHA-256 (hex) of the annotator's secret token: the token itself is shown once and never stored
    token_sha256 TEXT NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    created_at  REAL NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);

-- Clips an annotator chose to skip in dfew-web: they are not handed to them again.
CREATE TABLE annotator_skips (
    annotator_id INTEGER NOT NULL REFERENCES annotators(id) ON DELETE CASCADE,
    clip_id      INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    at           REAL NOT NULL,
    PRIMARY KEY (annotator_id, clip_id)
) WITHOUT ROWID;

-- Speeds up "clips that need votes, fewest first" (dfew-web's hand-out).
CREATE INDEX votes_annotator ON votes(annotator, clip_id);

CREATE VIEW annotator_progress AS
SELECT a.id                                   AS annotator_id,
       a.name,
       a.disabled,
       (SELECT count(*) FROM votes v WHERE v.annotator = a.name) AS votes,
       (SELECT count(*) FROM annotator_skips s WHERE s.annotator_id = a.id) AS skipped,
       strftime('%Y-%m-%dT%H:%M:%fZ', (SELECT max(added_at) FROM votes v WHERE v.annotator = a.name), 'unixepoch')
                                              AS last_vote,
       strftime('%Y-%m-%dT%H:%M:%fZ', a.created_at, 'unixepoch') AS created
FROM annotators a;
