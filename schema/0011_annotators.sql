-- 0011: the people who annotate through dfew-web (`dfewctl annotators add`).
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

-- Votes per clip, kept by triggers (every clip has a row, 0 without votes):
-- dfew-web hands out "clips that need votes, fewest first" by walking the
-- (votes, clip_id) index instead of counting 160,000 votes per request.
CREATE TABLE clip_vote_counts (
    clip_id  INTEGER PRIMARY KEY REFERENCES clips(id) ON DELETE CASCADE,
    votes    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX clip_vote_counts_votes ON clip_vote_counts(votes, clip_id);
INSERT INTO clip_vote_counts (clip_id, votes)
SELECT c.id, (SELECT count(*) FROM votes v WHERE v.clip_id = c.id) FROM clips c;
CREATE TRIGGER clip_vote_counts_clip AFTER INSERT ON clips
BEGIN
    INSERT OR IGNORE INTO clip_vote_counts (clip_id, votes) VALUES (NEW.id, 0);
END;
CREATE TRIGGER clip_vote_counts_add AFTER INSERT ON votes
BEGIN
    INSERT INTO clip_vote_counts (clip_id, votes) VALUES (NEW.clip_id, 1)
        ON CONFLICT (clip_id) DO UPDATE SET votes = votes + 1;
END;
CREATE TRIGGER clip_vote_counts_del AFTER DELETE ON votes
BEGIN
    UPDATE clip_vote_counts SET votes = votes - 1 WHERE clip_id = OLD.clip_id;
END;
CREATE TRIGGER clip_vote_counts_move AFTER UPDATE OF clip_id ON votes WHEN NEW.clip_id <> OLD.clip_id
BEGIN
    UPDATE clip_vote_counts SET votes = votes - 1 WHERE clip_id = OLD.clip_id;
    INSERT INTO clip_vote_counts (clip_id, votes) VALUES (NEW.clip_id, 1)
        ON CONFLICT (clip_id) DO UPDATE SET votes = votes + 1;
END;

-- dfew-web's clip list sorted by duration walks this instead of sorting every clip.
CREATE INDEX clips_duration ON clips(end_s - start_s, id);

-- An annotator's own votes (their progress, "not one they voted on").
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
