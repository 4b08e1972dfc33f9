-- 0006: training runs. A run (model, loss, hyper-parameters, split), its folds
-- (one train job each, and the backend and device that ran it), the training
-- loss per epoch, every test clip's prediction with its 7 probabilities; and
-- the views class_recall, confusion, fold_metrics and run_summary, where the
-- paper's metrics (per-class recall, UAR, WAR, confusion matrix) are computed
-- from the stored predictions, per fold and pooled. See schema/README.md.

-- AUTOINCREMENT: a run id is never reused, so its output directory
-- (outputs/train/run-<id>) never belongs to two runs.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    split_id      INTEGER REFERENCES splits(id) ON DELETE SET NULL,
    split         TEXT NOT NULL,
    folds         TEXT NOT NULL,
    model         TEXT NOT NULL CHECK (model IN ('r3d18', 'c3d')),
    loss          TEXT NOT NULL CHECK (loss IN ('ce', 'ecstfl', 'ecstfl_l1', 'center')),
    lambda        REAL NOT NULL CHECK (lambda >= 0),
    epochs        INTEGER NOT NULL CHECK (epochs >= 1),
    batch         INTEGER NOT NULL CHECK (batch >= 1),
    lr            REAL NOT NULL CHECK (lr > 0),
    momentum      REAL NOT NULL,
    weight_decay  REAL NOT NULL,
    patience      INTEGER NOT NULL CHECK (patience >= 0),
    seed          INTEGER NOT NULL,
    width         REAL NOT NULL CHECK (width > 0),
    frames        INTEGER NOT NULL CHECK (frames >= 1),
    clip_height   INTEGER NOT NULL CHECK (clip_height >= 1),
    clip_width    INTEGER NOT NULL CHECK (clip_width >= 1),
    crop          INTEGER NOT NULL CHECK (crop >= 1),
    precision     TEXT NOT NULL CHECK (precision IN ('fp32', 'tf32', 'bf16')),
    backend       TEXT NOT NULL CHECK (backend IN ('auto', 'cpu', 'cuda')),
    threads       INTEGER NOT NULL CHECK (threads >= 0),
    out_dir       TEXT NOT NULL,
    created_at    REAL NOT NULL
);

CREATE TABLE run_folds (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    fold          INTEGER NOT NULL CHECK (fold >= 1),
    job_id        INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    train_clips   INTEGER NOT NULL,
    test_clips    INTEGER NOT NULL,
    backend       TEXT,
    device        TEXT,
    blas_core     TEXT,
    resumed_from  INTEGER,
    epochs_done   INTEGER,
    final_loss    REAL,
    final_lr      REAL,
    train_s       REAL,
    eval_s        REAL,
    clips_per_s   REAL,
    predictions   TEXT,
    finished_at   REAL,
    PRIMARY KEY (run_id, fold)
) WITHOUT ROWID;
CREATE INDEX run_folds_job ON run_folds(job_id);

CREATE TABLE train_epochs (
    run_id        INTEGER NOT NULL,
    fold          INTEGER NOT NULL,
    epoch         INTEGER NOT NULL CHECK (epoch >= 1),
    loss          REAL NOT NULL,
    ce            REAL NOT NULL,
    aux           REAL NOT NULL,
    accuracy      REAL NOT NULL,
    lr            REAL NOT NULL,
    seconds       REAL NOT NULL,
    PRIMARY KEY (run_id, fold, epoch),
    FOREIGN KEY (run_id, fold) REFERENCES run_folds(run_id, fold) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE predictions (
    run_id        INTEGER NOT NULL,
    fold          INTEGER NOT NULL,
    clip_id       INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
    label         INTEGER NOT NULL REFERENCES emotions(id),
    pred          INTEGER NOT NULL REFERENCES emotions(id),
    p_happy       REAL NOT NULL,
    p_sad         REAL NOT NULL,
    p_neutral     REAL NOT NULL,
    p_angry       REAL NOT NULL,
    p_surprise    REAL NOT NULL,
    p_disgust     REAL NOT NULL,
    p_fear        REAL NOT NULL,
    PRIMARY KEY (run_id, clip_id),
    FOREIGN KEY (run_id, fold) REFERENCES run_folds(run_id, fold) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX predictions_fold ON predictions(run_id, fold, label);

-- Per class: test clips (support), correctly classified, predicted as it, and
-- recall (NULL when the class has no test clip); per fold, and pooled over
-- the run's finished folds (fold NULL). Only folds with predictions appear.
CREATE VIEW class_recall AS
WITH units AS (
    SELECT DISTINCT run_id, fold FROM predictions
    UNION ALL
    SELECT DISTINCT run_id, NULL FROM predictions
), truth AS (
    SELECT run_id, fold, label AS cls, count(*) AS clips, sum(pred = label) AS correct
    FROM predictions GROUP BY run_id, fold, label
    UNION ALL
    SELECT run_id, NULL, label, count(*), sum(pred = label) FROM predictions GROUP BY run_id, label
), guessed AS (
    SELECT run_id, fold, pred AS cls, count(*) AS n FROM predictions GROUP BY run_id, fold, pred
    UNION ALL
    SELECT run_id, NULL, pred, count(*) FROM predictions GROUP BY run_id, pred
)
SELECT u.run_id,
       u.fold,
       e.id                                   AS label,
       e.name                                 AS label_name,
       coalesce(t.clips, 0)                   AS clips,
       coalesce(t.correct, 0)                 AS correct,
       coalesce(g.n, 0)                       AS predicted,
       CASE WHEN t.clips > 0 THEN 1.0 * t.correct / t.clips END AS recall
FROM units u
CROSS JOIN emotions e
LEFT JOIN truth t ON t.run_id = u.run_id AND t.fold IS u.fold AND t.cls = e.id
LEFT JOIN guessed g ON g.run_id = u.run_id AND g.fold IS u.fold AND g.cls = e.id;

-- The confusion matrix: one row per true label, one column per predicted
-- label (clip counts); per fold, and pooled (fold NULL).
CREATE VIEW confusion AS
WITH units AS (
    SELECT DISTINCT run_id, fold FROM predictions
    UNION ALL
    SELECT DISTINCT run_id, NULL FROM predictions
)
SELECT u.run_id,
       u.fold,
       e.id                                   AS label,
       e.name                                 AS label_name,
       coalesce(sum(p.pred = 1), 0)           AS happy,
       coalesce(sum(p.pred = 2), 0)           AS sad,
       coalesce(sum(p.pred = 3), 0)           AS neutral,
       coalesce(sum(p.pred = 4), 0)           AS angry,
       coalesce(sum(p.pred = 5), 0)           AS surprise,
       coalesce(sum(p.pred = 6), 0)           AS disgust,
       coalesce(sum(p.pred = 7), 0)           AS fear,
       count(p.clip_id)                       AS clips
FROM units u
CROSS JOIN emotions e
LEFT JOIN predictions p ON p.run_id = u.run_id AND (u.fold IS NULL OR p.fold = u.fold) AND p.label = e.id
GROUP BY u.run_id, u.fold, e.id;

-- One row per finished fold: the paper's Table 4 row (recall per emotion,
-- UAR = mean recall over the classes with test clips, WAR = accuracy) and
-- what ran it.
CREATE VIEW fold_metrics AS
SELECT c.run_id,
       c.fold,
       sum(c.clips)                           AS clips,
       sum(c.correct)                         AS correct,
       max(CASE c.label WHEN 1 THEN c.recall END) AS happy,
       max(CASE c.label WHEN 2 THEN c.recall END) AS sad,
       max(CASE c.label WHEN 3 THEN c.recall END) AS neutral,
       max(CASE c.label WHEN 4 THEN c.recall END) AS angry,
       max(CASE c.label WHEN 5 THEN c.recall END) AS surprise,
       max(CASE c.label WHEN 6 THEN c.recall END) AS disgust,
       max(CASE c.label WHEN 7 THEN c.recall END) AS fear,
       avg(c.recall)                          AS uar,
       1.0 * sum(c.correct) / sum(c.clips)    AS war,
       f.backend,
       f.device,
       f.epochs_done,
       f.final_loss,
       f.train_s,
       f.clips_per_s
FROM class_recall c
JOIN run_folds f ON f.run_id = c.run_id AND f.fold = c.fold
WHERE c.fold IS NOT NULL
GROUP BY c.run_id, c.fold;

-- One row per run: what it is, where it stands (from its jobs), and the
-- metrics pooled over its finished folds (the paper pools all five).
CREATE VIEW run_summary AS
WITH js AS (
    SELECT f.run_id,
           count(*)                               AS folds,
           coalesce(sum(j.state = 'done'), 0)     AS done,
           coalesce(sum(j.state = 'leased'), 0)   AS running,
           coalesce(sum(j.state IN ('queued', 'failed')), 0) AS waiting,
           coalesce(sum(j.state = 'cancelled'), 0) AS cancelled,
           min(j.started_at)                      AS started_at,
           max(j.finished_at)                     AS finished_at,
           group_concat(DISTINCT f.backend)       AS backends,
           group_concat(DISTINCT f.device)        AS devices
    FROM run_folds f
    LEFT JOIN jobs j ON j.id = f.job_id
    GROUP BY f.run_id
), pooled AS (
    SELECT run_id,
           sum(clips)                             AS clips,
           max(CASE label WHEN 1 THEN recall END) AS happy,
           max(CASE label WHEN 2 THEN recall END) AS sad,
           max(CASE label WHEN 3 THEN recall END) AS neutral,
           max(CASE label WHEN 4 THEN recall END) AS angry,
           max(CASE label WHEN 5 THEN recall END) AS surprise,
           max(CASE label WHEN 6 THEN recall END) AS disgust,
           max(CASE label WHEN 7 THEN recall END) AS fear,
           avg(recall)                            AS uar,
           1.0 * sum(correct) / sum(clips)        AS war
    FROM class_recall
    WHERE fold IS NULL
    GROUP BY run_id
)
SELECT r.id                                   AS run_id,
       r.split,
       r.model,
       r.loss,
       r.lambda,
       r.epochs,
       r.batch,
       r.lr,
       r.seed,
       r.width,
       r.frames || 'x' || r.crop || 'x' || r.crop AS input,
       r.precision,
       CASE WHEN js.done = js.folds THEN 'done'
            WHEN js.running > 0 THEN 'running'
            WHEN js.waiting > 0 THEN CASE WHEN js.done > 0 THEN 'running' ELSE 'queued' END
            WHEN js.cancelled > 0 AND js.cancelled + js.done = js.folds THEN 'cancelled'
            ELSE 'failed' END                 AS state,
       js.folds,
       js.done                                AS folds_done,
       js.backends                            AS backend,
       js.devices                             AS device,
       p.clips,
       p.happy, p.sad, p.neutral, p.angry, p.surprise, p.disgust, p.fear,
       p.uar,
       p.war,
       strftime('%Y-%m-%dT%H:%M:%fZ', r.created_at, 'unixepoch') AS created,
       CASE WHEN js.done = js.folds THEN strftime('%Y-%m-%dT%H:%M:%fZ', js.finished_at, 'unixepoch') END AS finished
FROM runs r
JOIN js ON js.run_id = r.id
LEFT JOIN pooled p ON p.run_id = r.id;
