-- 0001: the core tables: movies, clips, jobs, events, and the batch scan cache.
-- Times are Unix epoch seconds (REAL, UTC); the views (0002) show them as ISO-8601.

CREATE TABLE movies (
    id            INTEGER PRIMARY KEY,
    sha256        TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
    source        TEXT NOT NULL,
    path          TEXT,
    size_bytes    INTEGER,
    added_at      REAL NOT NULL,
    container     TEXT,
    duration_s    REAL,
    start_time_s  REAL,
    video_codec   TEXT,
    width         INTEGER,
    height        INTEGER,
    avg_fps       REAL,
    real_fps      REAL,
    rotation      INTEGER,
    frame_count   INTEGER,
    probed_at     REAL
);

CREATE TABLE clips (
    id            INTEGER PRIMARY KEY,
    movie_id      INTEGER NOT NULL REFERENCES movies(id) ON DELETE CASCADE,
    start_s       REAL NOT NULL CHECK (start_s >= 0),
    end_s         REAL NOT NULL CHECK (end_s > start_s),
    state         TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'usable', 'unusable', 'failed')),
    reason        TEXT,
    frames_total  INTEGER,
    frames_face   INTEGER,
    face_ratio    REAL,
    output_dir    TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    UNIQUE (movie_id, start_s, end_s)
);
CREATE INDEX clips_movie ON clips(movie_id);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'leased', 'done', 'failed', 'dead', 'cancelled')),
    priority      INTEGER NOT NULL DEFAULT 0,
    movie_id      INTEGER REFERENCES movies(id) ON DELETE CASCADE,
    clip_id       INTEGER REFERENCES clips(id) ON DELETE CASCADE,
    dedup_key     TEXT UNIQUE,
    args          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(args)),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_after     REAL NOT NULL DEFAULT 0,
    lease_token   TEXT,
    lease_owner   TEXT,
    lease_expires REAL,
    progress      REAL,
    progress_msg  TEXT,
    result        TEXT CHECK (result IS NULL OR json_valid(result)),
    error         TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL
);
CREATE INDEX jobs_ready ON jobs(priority DESC, id) WHERE state = 'queued';
CREATE INDEX jobs_state ON jobs(state, kind);
CREATE INDEX jobs_movie ON jobs(movie_id);
CREATE INDEX jobs_clip ON jobs(clip_id);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at          REAL NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    message     TEXT
);
CREATE INDEX events_job ON events(job_id, id);
CREATE TRIGGER events_append_only BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is an append-only log');
END;

CREATE TABLE seen_files (
    path        TEXT PRIMARY KEY,
    size_bytes  INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    sha256      TEXT,
    is_video    INTEGER NOT NULL,
    seen_at     REAL NOT NULL
);
