/* Job states and every transition between them (see queue.h for the diagram).
 * Each public function is one write transaction: it reads the job, checks that
 * the transition is allowed, moves it and appends an event. */
#include "queue.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "util.h"

static const char *const state_names[JOB_STATE_COUNT] = {
    [JOB_QUEUED] = "queued", [JOB_LEASED] = "leased", [JOB_DONE] = "done",
    [JOB_FAILED] = "failed", [JOB_DEAD] = "dead",     [JOB_CANCELLED] = "cancelled",
};

#define BIT(s) (1u << (s))
/* The whole state machine: allowed[from] is the set of states it may move to. */
static const unsigned allowed[JOB_STATE_COUNT] = {
    [JOB_QUEUED] = BIT(JOB_LEASED) | BIT(JOB_CANCELLED),
    [JOB_LEASED] = BIT(JOB_DONE) | BIT(JOB_FAILED) | BIT(JOB_DEAD) | BIT(JOB_QUEUED) | BIT(JOB_CANCELLED),
    [JOB_FAILED] = BIT(JOB_QUEUED) | BIT(JOB_CANCELLED),
    [JOB_DEAD] = BIT(JOB_QUEUED),
    [JOB_CANCELLED] = BIT(JOB_QUEUED),
    [JOB_DONE] = 0,
};

static const char *const job_kinds[] = {"noop", "probe", "fetch", "prep", "segment", "tensor", "train"};

const char *job_state_name(enum job_state s) { return s < JOB_STATE_COUNT ? state_names[s] : "?"; }

int job_state_parse(const char *s, enum job_state *out)
{
    for (int i = 0; i < JOB_STATE_COUNT; i++)
        if (!strcmp(s, state_names[i])) {
            *out = (enum job_state)i;
            return 0;
        }
    return -EINVAL;
}

int job_state_final(enum job_state s) { return s == JOB_DONE || s == JOB_DEAD || s == JOB_CANCELLED; }

int job_kind_known(const char *kind)
{
    for (size_t i = 0; i < ARRAY_LEN(job_kinds); i++)
        if (!strcmp(kind, job_kinds[i]))
            return 1;
    return 0;
}

double queue_backoff(const struct queue_policy *p, int attempts_used)
{
    if (attempts_used < 1)
        attempts_used = 1;
    double d = p->retry_base_s * ldexp(1.0, attempts_used - 1 > 60 ? 60 : attempts_used - 1);
    return d < p->retry_max_s ? d : p->retry_max_s;
}

/* The row a transition needs to look at. */
struct job_row {
    enum job_state state;
    int attempts, max_attempts;
    char token[33];
    char kind[32];
};

static int load(struct db *db, int64_t id, struct job_row *r)
{
    static const char sql[] = "SELECT state, attempts, max_attempts, lease_token, kind FROM jobs WHERE id = ?";
    sqlite3_stmt *st = db_prepare(db, sql);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
    }
    memset(r, 0, sizeof *r);
    if (job_state_parse((const char *)sqlite3_column_text(st, 0), &r->state)) {
        sqlite3_reset(st);
        return -EINVAL;
    }
    r->attempts = sqlite3_column_int(st, 1);
    r->max_attempts = sqlite3_column_int(st, 2);
    const char *tok = (const char *)sqlite3_column_text(st, 3);
    snprintf(r->token, sizeof r->token, "%s", tok ? tok : "");
    snprintf(r->kind, sizeof r->kind, "%s", (const char *)sqlite3_column_text(st, 4));
    sqlite3_reset(st);
    return 0;
}

/* The one place a job changes state: checks the machine, updates, logs an event. */
static int move(struct db *db, int64_t id, enum job_state from, enum job_state to, const char *msg)
{
    if (!(allowed[from] & BIT(to))) {
        log_error(id, "refused transition %s -> %s", state_names[from], state_names[to]);
        return -EINVAL;
    }
    double t = now_s();
    static const char upd[] = "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ? AND state = ?";
    sqlite3_stmt *st = db_prepare(db, upd);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, state_names[to], -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, t);
    sqlite3_bind_int64(st, 3, id);
    sqlite3_bind_text(st, 4, state_names[from], -1, SQLITE_STATIC);
    int rc = db_step_done(db, st);
    if (rc)
        return rc;
    if (sqlite3_changes(db->h) != 1)
        return -ESTALE;
    static const char ev[] = "INSERT INTO events (job_id, at, from_state, to_state, message) VALUES (?, ?, ?, ?, ?)";
    st = db_prepare(db, ev);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_double(st, 2, t);
    sqlite3_bind_text(st, 3, state_names[from], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, state_names[to], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, msg, -1, SQLITE_TRANSIENT);
    return db_step_done(db, st);
}

/* Runs an UPDATE on one job with the given binds: "d" double, "i" int64,
 * "t" text (NULL allowed), "n" null. The job id is bound last. */
static int set_fields(struct db *db, const char *sql, int64_t id, const char *types, ...)
{
    sqlite3_stmt *st = db_prepare(db, sql);
    if (!st)
        return -EIO;
    va_list ap;
    va_start(ap, types);
    int i = 1;
    for (const char *t = types; *t; t++, i++) {
        switch (*t) {
        case 'd': sqlite3_bind_double(st, i, va_arg(ap, double)); break;
        case 'i': sqlite3_bind_int64(st, i, va_arg(ap, int64_t)); break;
        case 't': {
            const char *s = va_arg(ap, const char *);
            if (s)
                sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(st, i);
            break;
        }
        case 'n': sqlite3_bind_null(st, i); break;
        }
    }
    va_end(ap);
    sqlite3_bind_int64(st, i, id);
    return db_step_done(db, st);
}

static int finish(struct db *db, int rc)
{
    if (rc) {
        db_rollback(db);
        return rc;
    }
    rc = db_commit(db);
    if (rc)
        db_rollback(db);
    return rc;
}

int queue_enqueue(struct db *db, const struct job_spec *s, const char *why, int64_t *id)
{
    int rc = db_begin(db);
    if (rc)
        return rc;
    static const char ins[] =
        "INSERT INTO jobs (kind, priority, movie_id, clip_id, dedup_key, args, max_attempts, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING";
    sqlite3_stmt *st = db_prepare(db, ins);
    if (!st)
        return finish(db, -EIO);
    double t = now_s();
    sqlite3_bind_text(st, 1, s->kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, s->priority);
    if (s->movie_id > 0)
        sqlite3_bind_int64(st, 3, s->movie_id);
    if (s->clip_id > 0)
        sqlite3_bind_int64(st, 4, s->clip_id);
    if (s->dedup_key)
        sqlite3_bind_text(st, 5, s->dedup_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, s->args_json ? s->args_json : "{}", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 7, s->max_attempts > 0 ? s->max_attempts : 3);
    sqlite3_bind_double(st, 8, t);
    sqlite3_bind_double(st, 9, t);
    rc = db_step_done(db, st);
    if (rc)
        return finish(db, rc);
    if (sqlite3_changes(db->h) == 0) {
        static const char find[] = "SELECT id FROM jobs WHERE dedup_key = ?";
        st = db_prepare(db, find);
        if (!st)
            return finish(db, -EIO);
        sqlite3_bind_text(st, 1, s->dedup_key, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -EIO;
        if (!rc)
            *id = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        rc = finish(db, rc);
        return rc ? rc : 0;
    }
    *id = sqlite3_last_insert_rowid(db->h);
    static const char ev[] = "INSERT INTO events (job_id, at, from_state, to_state, message) VALUES (?, ?, NULL, 'queued', ?)";
    st = db_prepare(db, ev);
    if (!st)
        return finish(db, -EIO);
    sqlite3_bind_int64(st, 1, *id);
    sqlite3_bind_double(st, 2, t);
    sqlite3_bind_text(st, 3, why ? why : "submitted", -1, SQLITE_TRANSIENT);
    rc = finish(db, db_step_done(db, st));
    return rc ? rc : 1;
}

void leased_job_free(struct leased_job *j)
{
    free(j->args_json);
    j->args_json = NULL;
}

static void new_token(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* Uniqueness is what matters; fall back to time and address bits. */
        uint64_t a = mono_ms() ^ (uint64_t)(uintptr_t)out, b = (uint64_t)(now_s() * 1e6);
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* The lease order's bounds (see lease()): jobs looked at, and how much
 * later than the oldest of them a job may be queued and still go first. */
#define LEASE_WINDOW_SQL "64"
#define LEASE_REORDER_S_SQL "60.0"
/* A job that may be leased now (?1), of a kind not in the JSON array ?2. */
#define READY_SQL                                                                                              \
    "state = 'queued' AND run_after <= ?1 AND (?2 IS NULL OR kind NOT IN (SELECT value FROM json_each(?2)))"

/* Runs one of lease()'s queries: SQLITE_ROW with *st on the job's row
 * (id, kind, attempts, max_attempts, movie_id, clip_id, args), else the
 * step's code (*st reset). NULL *st: it could not be prepared. */
static int pick_step(struct db *db, const char *sql, double t, const char *arg2, sqlite3_stmt **st)
{
    if (!(*st = db_prepare(db, sql)))
        return SQLITE_ERROR;
    sqlite3_bind_double(*st, 1, t);
    if (arg2)
        sqlite3_bind_text(*st, 2, arg2, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(*st);
    if (rc != SQLITE_ROW)
        sqlite3_reset(*st);
    return rc;
}

/* Leases one job: any kind but those in exclude_json, or (kind set) only that kind. */
static int lease(struct db *db, const struct queue_policy *p, const char *owner, const char *exclude_json,
                 const char *kind, struct leased_job *out)
{
    memset(out, 0, sizeof *out);
    int rc = db_begin(db);
    if (rc)
        return rc;
    double t = now_s();
    /* The lease order (schema/README.md, "Lease order"): by priority, then
     * age, except when that first ready job is a prep job: then the first
     * LEASE_WINDOW_SQL ready jobs decide. Among them the highest priority;
     * then jobs queued more than LEASE_REORDER_S_SQL seconds after the
     * window's first one wait their turn (so no job is passed over for
     * long); then every kind but prep (probes, fetches and segment jobs make
     * the later work); then prep jobs longest first (the clip's seconds times
     * its movie's pixels: a long job started last would keep one worker busy
     * alone at the end of a batch); then age. The window costs about 0.1 ms
     * a lease (bench/queue_bench.py), so queues of other kinds skip it.
     * INDEXED BY: without statistics SQLite picks jobs_state and sorts every
     * queued job to return one (1.35 ms per job at 10,000 queued). */
    static const char pick[] =
        "SELECT id, kind, attempts, max_attempts, movie_id, clip_id, args FROM jobs INDEXED BY jobs_ready "
        "WHERE " READY_SQL " ORDER BY priority DESC, id LIMIT 1";
    static const char pick_window[] =
        "WITH w AS (SELECT id, kind, priority, created_at, clip_id FROM jobs INDEXED BY jobs_ready "
        "  WHERE " READY_SQL " ORDER BY priority DESC, id LIMIT " LEASE_WINDOW_SQL "), "
        "w0 AS (SELECT created_at AS t0 FROM w ORDER BY priority DESC, id LIMIT 1), "
        "best AS (SELECT w.id FROM w CROSS JOIN w0 LEFT JOIN clips c ON w.kind = 'prep' AND c.id = w.clip_id "
        "  LEFT JOIN movies m ON m.id = c.movie_id "
        "  ORDER BY w.priority DESC, w.created_at > w0.t0 + " LEASE_REORDER_S_SQL ", w.kind = 'prep', "
        "  (c.end_s - c.start_s) * m.width * m.height DESC, w.id LIMIT 1) "
        "SELECT id, kind, attempts, max_attempts, movie_id, clip_id, args FROM jobs WHERE id = (SELECT id FROM best)";
    /* One kind: its few queued jobs through jobs_state, not a walk over
     * every queued job of the other kinds. */
    static const char pick_kind[] =
        "SELECT id, kind, attempts, max_attempts, movie_id, clip_id, args FROM jobs INDEXED BY jobs_state "
        "WHERE state = 'queued' AND kind = ?2 AND run_after <= ?1 ORDER BY priority DESC, id LIMIT 1";
    const char *arg2 = kind ? kind : exclude_json;
    sqlite3_stmt *st;
    rc = pick_step(db, kind ? pick_kind : pick, t, arg2, &st);
    if (rc == SQLITE_ROW && !kind && !strcmp((const char *)sqlite3_column_text(st, 1), "prep")) {
        sqlite3_reset(st);
        rc = pick_step(db, pick_window, t, arg2, &st);
    }
    if (!st)
        return finish(db, -EIO);
    if (rc != SQLITE_ROW) {
        finish(db, 0);
        return rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
    }
    snprintf(out->kind, sizeof out->kind, "%s", (const char *)sqlite3_column_text(st, 1));
    out->id = sqlite3_column_int64(st, 0);
    out->attempt = sqlite3_column_int(st, 2) + 1;
    out->max_attempts = sqlite3_column_int(st, 3);
    out->movie_id = sqlite3_column_int64(st, 4);
    out->clip_id = sqlite3_column_int64(st, 5);
    out->args_json = xstrdup((const char *)sqlite3_column_text(st, 6));
    sqlite3_reset(st);
    new_token(out->token);

    char msg[256];
    snprintf(msg, sizeof msg, "leased by %s (attempt %d of %d)", owner, out->attempt, out->max_attempts);
    rc = move(db, out->id, JOB_QUEUED, JOB_LEASED, msg);
    if (!rc)
        rc = set_fields(db,
                        "UPDATE jobs SET attempts = attempts + 1, lease_token = ?, lease_owner = ?, "
                        "lease_expires = ?, started_at = ?, progress = NULL, progress_msg = NULL WHERE id = ?",
                        out->id, "ttdd", out->token, owner, t + p->lease_s, t);
    rc = finish(db, rc);
    if (rc)
        leased_job_free(out);
    return rc;
}

int queue_lease(struct db *db, const struct queue_policy *p, const char *owner, const char *exclude_json,
                struct leased_job *out)
{
    return lease(db, p, owner, exclude_json, NULL, out);
}

int queue_lease_kind(struct db *db, const struct queue_policy *p, const char *owner, const char *kind,
                     struct leased_job *out)
{
    return lease(db, p, owner, NULL, kind, out);
}

/* Loads a job and checks that its lease is the caller's. */
static int load_leased(struct db *db, int64_t id, const char *token, struct job_row *r)
{
    int rc = load(db, id, r);
    if (rc)
        return rc;
    if (r->state != JOB_LEASED || strcmp(r->token, token))
        return -ESTALE;
    return 0;
}

int queue_renew(struct db *db, const struct queue_policy *p, int64_t id, const char *token)
{
    static const char sql[] =
        "UPDATE jobs SET lease_expires = ? WHERE id = ? AND state = 'leased' AND lease_token = ?";
    sqlite3_stmt *st = db_prepare(db, sql);
    if (!st)
        return -EIO;
    sqlite3_bind_double(st, 1, now_s() + p->lease_s);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_text(st, 3, token, -1, SQLITE_TRANSIENT);
    int rc = db_step_done(db, st);
    if (!rc && sqlite3_changes(db->h) != 1)
        rc = -ESTALE;
    return rc;
}

static const char clear_lease[] =
    "UPDATE jobs SET lease_token = NULL, lease_owner = NULL, lease_expires = NULL WHERE id = ?";

int queue_complete(struct db *db, int64_t id, const char *token, const char *result_json)
{
    int rc = db_begin(db);
    if (rc)
        return rc;
    struct job_row r;
    rc = load_leased(db, id, token, &r);
    if (!rc)
        rc = move(db, id, JOB_LEASED, JOB_DONE, "done");
    if (!rc)
        rc = set_fields(db,
                        "UPDATE jobs SET result = ?, error = NULL, finished_at = ?, progress = 1, "
                        "lease_token = NULL, lease_owner = NULL, lease_expires = NULL WHERE id = ?",
                        id, "td", result_json ? result_json : "{}", now_s());
    return finish(db, rc);
}

int queue_fail(struct db *db, const struct queue_policy *p, int64_t id, const char *token, const char *error,
               int retryable, enum job_state *out_state)
{
    int rc = db_begin(db);
    if (rc)
        return rc;
    struct job_row r;
    rc = load_leased(db, id, token, &r);
    if (rc)
        return finish(db, rc);
    char msg[1024];
    enum job_state to;
    double t = now_s();
    if (!retryable) {
        to = JOB_DEAD;
        snprintf(msg, sizeof msg, "dead (will not retry: the error is permanent): %s", error);
    } else if (r.attempts >= r.max_attempts) {
        to = JOB_DEAD;
        snprintf(msg, sizeof msg, "dead after %d of %d attempts: %s", r.attempts, r.max_attempts, error);
    } else {
        to = JOB_FAILED;
        snprintf(msg, sizeof msg, "failed (attempt %d of %d), retry in %.1f s: %s", r.attempts, r.max_attempts,
                 queue_backoff(p, r.attempts), error);
    }
    rc = move(db, id, JOB_LEASED, to, msg);
    if (!rc)
        rc = set_fields(db, clear_lease, id, "");
    if (!rc && to == JOB_FAILED)
        rc = set_fields(db, "UPDATE jobs SET error = ?, run_after = ? WHERE id = ?", id, "td", error,
                        t + queue_backoff(p, r.attempts));
    if (!rc && to == JOB_DEAD)
        rc = set_fields(db, "UPDATE jobs SET error = ?, finished_at = ? WHERE id = ?", id, "td", error, t);
    if (!rc && out_state)
        *out_state = to;
    return finish(db, rc);
}

/* leased -> queued, or dead when the attempt counts and none are left. Runs
 * inside the caller's transaction. */
static int release_one(struct db *db, int64_t id, const struct job_row *r, const char *why, int count_attempt,
                       enum job_state *out_state)
{
    char msg[1024];
    enum job_state to = JOB_QUEUED;
    if (count_attempt && r->attempts >= r->max_attempts) {
        to = JOB_DEAD;
        snprintf(msg, sizeof msg, "dead after %d of %d attempts: %s", r->attempts, r->max_attempts, why);
    } else {
        snprintf(msg, sizeof msg, "requeued%s: %s", count_attempt ? "" : " (attempt not counted)", why);
    }
    int rc = move(db, id, JOB_LEASED, to, msg);
    if (!rc)
        rc = set_fields(db, clear_lease, id, "");
    if (!rc && !count_attempt)
        rc = set_fields(db, "UPDATE jobs SET attempts = max(attempts - 1, 0) WHERE id = ?", id, "");
    if (!rc && to == JOB_DEAD)
        rc = set_fields(db, "UPDATE jobs SET error = ?, finished_at = ? WHERE id = ?", id, "td", why, now_s());
    else if (!rc && count_attempt)
        rc = set_fields(db, "UPDATE jobs SET error = ? WHERE id = ?", id, "t", why);
    if (!rc && out_state)
        *out_state = to;
    return rc;
}

int queue_release(struct db *db, int64_t id, const char *token, const char *why, int count_attempt,
                  enum job_state *out_state)
{
    int rc = db_begin(db);
    if (rc)
        return rc;
    struct job_row r;
    rc = load_leased(db, id, token, &r);
    if (!rc)
        rc = release_one(db, id, &r, why, count_attempt, out_state);
    return finish(db, rc);
}

/* The ids a query returns (its one optional parameter bound to text, else now). */
static int select_ids(struct db *db, const char *select_sql, double now, const char *text, int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = db_prepare(db, select_sql);
    if (!st)
        return -EIO;
    if (sqlite3_bind_parameter_count(st) > 0 && text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    else if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_double(st, 1, now);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *ids = xrealloc(*ids, cap * sizeof **ids);
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_errno(rc);
}

/* Releases every leased job matching the query (which selects ids). */
static int release_where(struct db *db, const char *select_sql, double now, const char *text, const char *why,
                         int count_attempt, int *released)
{
    *released = 0;
    int rc = db_begin(db);
    if (rc)
        return rc;
    int64_t *ids;
    size_t n;
    rc = select_ids(db, select_sql, now, text, &ids, &n);
    for (size_t i = 0; i < n && !rc; i++) {
        struct job_row r;
        rc = load(db, ids[i], &r);
        if (!rc) {
            enum job_state to;
            rc = release_one(db, ids[i], &r, why, count_attempt, &to);
            if (!rc)
                log_warn(ids[i], "%s job %s: %s", to == JOB_DEAD ? "gave up on" : "requeued", r.kind, why);
        }
    }
    free(ids);
    rc = finish(db, rc);
    if (!rc)
        *released = (int)n;
    return rc;
}

int queue_expire_leases(struct db *db, double now, int *released)
{
    return release_where(db, "SELECT id FROM jobs WHERE state = 'leased' AND lease_expires < ? ORDER BY id", now, NULL,
                         "lease expired (no result and no renewal in time)", 1, released);
}

int queue_release_stale(struct db *db, const char *why, int *released)
{
    return release_where(db, "SELECT id FROM jobs WHERE state = 'leased' ORDER BY id", 0, NULL, why, 1, released);
}

int queue_release_stale_except(struct db *db, const char *owner, const char *why, int *released)
{
    return release_where(db, "SELECT id FROM jobs WHERE state = 'leased' AND lease_owner IS NOT ? ORDER BY id", 0,
                         owner, why, 1, released);
}

int queue_adopt(struct db *db, const struct queue_policy *p, const char *owner, int64_t id, const char *token,
                struct leased_job *out)
{
    memset(out, 0, sizeof *out);
    int rc = db_begin(db);
    if (rc)
        return rc;
    static const char sql[] = "SELECT kind, attempts, max_attempts, movie_id, clip_id, args FROM jobs "
                              "WHERE id = ? AND state = 'leased' AND lease_token = ?";
    sqlite3_stmt *st = db_prepare(db, sql);
    if (!st)
        return finish(db, -EIO);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, token, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        finish(db, 0);
        return rc == SQLITE_DONE ? -ESTALE : db_errno(rc);
    }
    out->id = id;
    snprintf(out->kind, sizeof out->kind, "%s", (const char *)sqlite3_column_text(st, 0));
    out->attempt = sqlite3_column_int(st, 1);
    out->max_attempts = sqlite3_column_int(st, 2);
    out->movie_id = sqlite3_column_int64(st, 3);
    out->clip_id = sqlite3_column_int64(st, 4);
    out->args_json = xstrdup((const char *)sqlite3_column_text(st, 5));
    snprintf(out->token, sizeof out->token, "%s", token);
    sqlite3_reset(st);
    rc = set_fields(db, "UPDATE jobs SET lease_owner = ?, lease_expires = ? WHERE id = ?", id, "td", owner,
                    now_s() + p->lease_s);
    rc = finish(db, rc);
    if (rc)
        leased_job_free(out);
    return rc;
}

int queue_promote_due(struct db *db, double now, int *promoted)
{
    *promoted = 0;
    int rc = db_begin(db);
    if (rc)
        return rc;
    int64_t *ids;
    size_t n;
    rc = select_ids(db, "SELECT id FROM jobs WHERE state = 'failed' AND run_after <= ? ORDER BY id", now, NULL, &ids,
                    &n);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = move(db, ids[i], JOB_FAILED, JOB_QUEUED, "backoff over, queued for another attempt");
        if (!rc) /* ready now, whatever clock the caller used */
            rc = set_fields(db, "UPDATE jobs SET run_after = 0 WHERE id = ?", ids[i], "");
    }
    free(ids);
    rc = finish(db, rc);
    if (!rc)
        *promoted = (int)n;
    return rc;
}

int queue_cancel(struct db *db, int64_t id, const char *why, enum job_state *prev)
{
    int rc = db_begin(db);
    if (rc)
        return rc;
    struct job_row r;
    rc = load(db, id, &r);
    if (!rc && prev)
        *prev = r.state;
    if (!rc && job_state_final(r.state))
        rc = -EALREADY;
    if (!rc)
        rc = move(db, id, r.state, JOB_CANCELLED, why ? why : "cancelled");
    if (!rc)
        rc = set_fields(db,
                        "UPDATE jobs SET finished_at = ?, lease_token = NULL, lease_owner = NULL, "
                        "lease_expires = NULL WHERE id = ?",
                        id, "d", now_s());
    return finish(db, rc);
}

int queue_retry(struct db *db, int64_t id, const char *why)
{
    int rc = db_begin(db);
    if (rc)
        return rc;
    struct job_row r;
    rc = load(db, id, &r);
    if (!rc && r.state == JOB_DONE)
        rc = -EALREADY;
    else if (!rc && (r.state == JOB_QUEUED || r.state == JOB_LEASED))
        rc = -EBUSY;
    if (!rc)
        rc = move(db, id, r.state, JOB_QUEUED, why ? why : "retry requested");
    if (!rc)
        rc = set_fields(db, "UPDATE jobs SET attempts = 0, run_after = 0, finished_at = NULL WHERE id = ?", id, "");
    return finish(db, rc);
}

int queue_progress(struct db *db, int64_t id, const char *token, double frac, const char *msg)
{
    static const char sql[] = "UPDATE jobs SET progress = ?, progress_msg = ?, updated_at = ? "
                              "WHERE id = ? AND state = 'leased' AND lease_token = ?";
    sqlite3_stmt *st = db_prepare(db, sql);
    if (!st)
        return -EIO;
    sqlite3_bind_double(st, 1, frac < 0 ? 0 : frac > 1 ? 1 : frac);
    if (msg)
        sqlite3_bind_text(st, 2, msg, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, now_s());
    sqlite3_bind_int64(st, 4, id);
    sqlite3_bind_text(st, 5, token, -1, SQLITE_TRANSIENT);
    int rc = db_step_done(db, st);
    if (!rc && sqlite3_changes(db->h) != 1)
        rc = -ESTALE;
    return rc;
}

int queue_next_wake(struct db *db, double now, double *when)
{
    static const char sql[] =
        "SELECT min(t) FROM ("
        " SELECT min(run_after) AS t FROM jobs WHERE state = 'failed'"
        " UNION ALL SELECT min(run_after) FROM jobs WHERE state = 'queued' AND run_after > ?1"
        " UNION ALL SELECT min(lease_expires) FROM jobs WHERE state = 'leased')";
    sqlite3_stmt *st = db_prepare(db, sql);
    if (!st)
        return -EIO;
    sqlite3_bind_double(st, 1, now);
    int rc = sqlite3_step(st);
    *when = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *when = sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

int queue_state_of(struct db *db, int64_t id, enum job_state *state)
{
    struct job_row r;
    int rc = load(db, id, &r);
    if (!rc)
        *state = r.state;
    return rc;
}
