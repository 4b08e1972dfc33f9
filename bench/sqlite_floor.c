/* sqlite_floor: the SQLite floor under the queue benchmark (bench/README.md).
 * Pushes N no-op jobs through a fresh database with the real schema and
 * pragmas (db_open: WAL, synchronous=NORMAL, foreign keys, busy_timeout), in
 * this process, with no daemon, no workers and no pipes. Modes:
 *
 *   bare    the least a queue can do: per job one INSERT, one UPDATE to
 *           'leased' and one UPDATE to 'done', each in its own
 *           BEGIN IMMEDIATE transaction, prepared statements, known ids.
 *   bare-ev bare, plus the events row each transition appends in the real
 *           queue (same three transactions).
 *   queue   the real state machine: queue_enqueue, then queue_lease +
 *           queue_complete until the queue is empty (lib/queue.c as is).
 *   sched   queue, plus the other SQL dfewd runs per job (daemon/sched.c and
 *           pool.c): queue_promote_due and queue_next_wake on every kick, the
 *           json_each over the job's args in pool_dispatch, and the complete
 *           wrapped in an outer transaction; enqueue batched in one
 *           transaction like `dfewctl noop --count N`. It is dfewd's SQL
 *           without the loop, the pipes and the worker processes.
 *
 * Prints one JSON line. It is not a test and asserts nothing about speed;
 * it exits 1 when the jobs did not all end done. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "queue.h"
#include "util.h"

static const char noop_args[] = "{\"sleep_ms\":0}";
static const char noop_result[] = "{\"slept_ms\":0,\"attempt\":1}";

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

static sqlite3_stmt *prep(struct db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite_floor: cannot prepare %s: %s\n", sql, sqlite3_errmsg(db->h));
        return NULL;
    }
    return st;
}

static int step(struct db *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "sqlite_floor: %s\n", sqlite3_errmsg(db->h));
        return -1;
    }
    return 0;
}

struct phase_times {
    double enqueue_s, run_s;
    /* queue and sched: seconds spent in each call of the per-job loop */
    double promote_s, lease_s, args_s, next_wake_s, complete_s;
};

/* bare and bare-ev: three transactions per job, nothing else. */
static int run_bare(struct db *db, int n, int events, struct phase_times *pt)
{
    sqlite3_stmt *begin = prep(db, "BEGIN IMMEDIATE"), *commit = prep(db, "COMMIT");
    sqlite3_stmt *ins = prep(db, "INSERT INTO jobs (kind, args, created_at, updated_at) VALUES ('noop', ?1, ?2, ?2)");
    sqlite3_stmt *lease = prep(db, "UPDATE jobs SET state = 'leased', attempts = attempts + 1, lease_token = ?2, "
                                   "lease_expires = ?3, updated_at = ?3 WHERE id = ?1");
    sqlite3_stmt *done = prep(db, "UPDATE jobs SET state = 'done', result = ?2, finished_at = ?3, updated_at = ?3, "
                                  "lease_token = NULL, lease_expires = NULL WHERE id = ?1");
    sqlite3_stmt *ev = prep(db, "INSERT INTO events (job_id, at, from_state, to_state, message) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!begin || !commit || !ins || !lease || !done || !ev)
        return -1;
    int64_t *ids = xcalloc((size_t)n, sizeof *ids);
    int rc = 0;
    double t0 = mono();
    for (int i = 0; i < n && !rc; i++) {
        double t = now_s();
        rc = step(db, begin);
        sqlite3_bind_text(ins, 1, noop_args, -1, SQLITE_STATIC);
        sqlite3_bind_double(ins, 2, t);
        rc = rc ? rc : step(db, ins);
        ids[i] = sqlite3_last_insert_rowid(db->h);
        if (events && !rc) {
            sqlite3_bind_int64(ev, 1, ids[i]);
            sqlite3_bind_double(ev, 2, t);
            sqlite3_bind_null(ev, 3);
            sqlite3_bind_text(ev, 4, "queued", -1, SQLITE_STATIC);
            sqlite3_bind_text(ev, 5, "submitted", -1, SQLITE_STATIC);
            rc = step(db, ev);
        }
        rc = rc ? rc : step(db, commit);
    }
    double t1 = mono();
    for (int i = 0; i < n && !rc; i++) {
        double t = now_s();
        rc = step(db, begin);
        sqlite3_bind_int64(lease, 1, ids[i]);
        sqlite3_bind_text(lease, 2, "0123456789abcdef0123456789abcdef", -1, SQLITE_STATIC);
        sqlite3_bind_double(lease, 3, t + 60);
        rc = rc ? rc : step(db, lease);
        if (events && !rc) {
            sqlite3_bind_int64(ev, 1, ids[i]);
            sqlite3_bind_double(ev, 2, t);
            sqlite3_bind_text(ev, 3, "queued", -1, SQLITE_STATIC);
            sqlite3_bind_text(ev, 4, "leased", -1, SQLITE_STATIC);
            sqlite3_bind_text(ev, 5, "leased by sqlite_floor (attempt 1 of 3)", -1, SQLITE_STATIC);
            rc = step(db, ev);
        }
        rc = rc ? rc : step(db, commit);

        t = now_s();
        rc = rc ? rc : step(db, begin);
        sqlite3_bind_int64(done, 1, ids[i]);
        sqlite3_bind_text(done, 2, noop_result, -1, SQLITE_STATIC);
        sqlite3_bind_double(done, 3, t);
        rc = rc ? rc : step(db, done);
        if (events && !rc) {
            sqlite3_bind_int64(ev, 1, ids[i]);
            sqlite3_bind_double(ev, 2, t);
            sqlite3_bind_text(ev, 3, "leased", -1, SQLITE_STATIC);
            sqlite3_bind_text(ev, 4, "done", -1, SQLITE_STATIC);
            sqlite3_bind_text(ev, 5, "done", -1, SQLITE_STATIC);
            rc = step(db, ev);
        }
        rc = rc ? rc : step(db, commit);
    }
    double t2 = mono();
    pt->enqueue_s = t1 - t0;
    pt->run_s = t2 - t1;
    free(ids);
    sqlite3_stmt *all[] = {begin, commit, ins, lease, done, ev};
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        sqlite3_finalize(all[i]);
    return rc;
}

/* queue and sched: lib/queue.c as dfewd and dfewctl use it. */
static int run_queue(struct db *db, int n, int sched, int batch_enqueue, struct phase_times *pt)
{
    struct queue_policy pol = {.lease_s = 60, .max_attempts = 3, .retry_base_s = 10, .retry_max_s = 3600};
    char owner[64];
    snprintf(owner, sizeof owner, "dfewd[%d]", (int)getpid());
    int rc = 0;
    double t0 = mono();
    if (batch_enqueue)
        rc = db_begin(db);
    for (int i = 0; i < n && !rc; i++) {
        struct job_spec spec = {.kind = "noop", .args_json = noop_args, .max_attempts = 3};
        int64_t id;
        int r = queue_enqueue(db, &spec, "submitted by dfewctl noop", &id);
        rc = r < 0 ? r : 0;
    }
    if (batch_enqueue)
        rc = rc ? rc : db_commit(db);
    if (rc) {
        fprintf(stderr, "sqlite_floor: enqueue: %s\n", strerror(-rc));
        return rc;
    }
    double t1 = mono();
    for (;;) {
        double a = mono(), b;
        if (sched) {
            int promoted = 0;
            queue_promote_due(db, now_s(), &promoted); /* sched_kick */
            b = mono();
            pt->promote_s += b - a;
            a = b;
        }
        struct leased_job job;
        rc = queue_lease(db, &pol, owner, NULL, &job);
        b = mono();
        pt->lease_s += b - a;
        a = b;
        if (rc == -ENOENT) {
            rc = 0;
            break;
        }
        if (rc) {
            fprintf(stderr, "sqlite_floor: lease: %s (%s)\n", strerror(-rc), db_errmsg(db));
            break;
        }
        if (sched) {
            /* pool_dispatch: the args travel as key=value fields. */
            sqlite3_stmt *st = db_prepare(db, "SELECT key, value FROM json_each(?)");
            if (st) {
                sqlite3_bind_text(st, 1, job.args_json, -1, SQLITE_STATIC);
                while (sqlite3_step(st) == SQLITE_ROW) {
                }
                sqlite3_reset(st);
            }
            b = mono();
            pt->args_s += b - a;
            a = b;
            double when = 0; /* arm_wake */
            queue_next_wake(db, now_s(), &when);
            b = mono();
            pt->next_wake_s += b - a;
            a = b;
            /* sched_job_finished: complete (+ record_result) in one transaction. */
            rc = db_begin(db);
            rc = rc ? rc : queue_complete(db, job.id, job.token, noop_result);
            rc = rc ? rc : db_commit(db);
            if (rc)
                db_rollback(db);
        } else {
            rc = queue_complete(db, job.id, job.token, noop_result);
        }
        pt->complete_s += mono() - a;
        leased_job_free(&job);
        if (rc) {
            fprintf(stderr, "sqlite_floor: complete: %s (%s)\n", strerror(-rc), db_errmsg(db));
            break;
        }
    }
    if (sched && !rc) {
        /* The kick after the last job finds nothing and arms no timer. */
        double when = 0, a = mono();
        queue_next_wake(db, now_s(), &when);
        pt->next_wake_s += mono() - a;
    }
    double t2 = mono();
    pt->enqueue_s = t1 - t0;
    pt->run_s = t2 - t1;
    return rc;
}

static long long count(struct db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sqlite_floor [--mode bare|bare-ev|queue|sched] [--jobs N] [--dir DIR]\n"
               "                    [--enqueue-tx job|batch] [--keep]\n\n"
               "Pushes N no-op jobs through a fresh dfew database in DIR (default: a new\n"
               "directory under $TMPDIR or /tmp, removed afterwards unless --keep) and prints\n"
               "one JSON line with the wall and CPU time. See bench/README.md.\n"
               "--enqueue-tx: one transaction per enqueue (default for bare, bare-ev, queue)\n"
               "or one for all of them, as dfewctl noop does (default for sched).\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", required_argument, NULL, 'm'}, {"jobs", required_argument, NULL, 'n'},
        {"dir", required_argument, NULL, 'd'},  {"enqueue-tx", required_argument, NULL, 'e'},
        {"keep", no_argument, NULL, 'k'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *mode = "bare", *dir = NULL, *etx = NULL;
    int n = 10000, keep = 0, o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'm': mode = optarg; break;
        case 'n':
            if (parse_int(optarg, &n) || n < 1) {
                fprintf(stderr, "sqlite_floor: --jobs wants a number >= 1, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'd': dir = optarg; break;
        case 'e': etx = optarg; break;
        case 'k': keep = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int m_bare = !strcmp(mode, "bare"), m_ev = !strcmp(mode, "bare-ev"), m_queue = !strcmp(mode, "queue"),
        m_sched = !strcmp(mode, "sched");
    if (!(m_bare || m_ev || m_queue || m_sched) || optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!etx)
        etx = m_sched ? "batch" : "job";
    if (strcmp(etx, "job") && strcmp(etx, "batch")) {
        fprintf(stderr, "sqlite_floor: --enqueue-tx wants job or batch, not '%s'\n", etx);
        return 2;
    }
    if ((m_bare || m_ev) && !strcmp(etx, "batch")) {
        fprintf(stderr, "sqlite_floor: the bare modes enqueue one transaction per job\n");
        return 2;
    }
    log_init("sqlite_floor", stderr, LOG_WARN);

    char tmpl[4096], *made = NULL;
    if (!dir) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/dfew-floor.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "sqlite_floor: mkdtemp %s: %s\n", tmpl, strerror(errno));
            return 1;
        }
        dir = made = tmpl;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/floor-%s-%d.db", dir, mode, (int)getpid());
    struct db *db = NULL;
    char err[1024];
    if (db_open(path, -1, 5000, &db, err, sizeof err)) {
        fprintf(stderr, "sqlite_floor: %s\n", err);
        return 1;
    }

    struct phase_times pt = {0};
    double c0 = cpu_self(), w0 = mono();
    int rc = (m_bare || m_ev) ? run_bare(db, n, m_ev, &pt) : run_queue(db, n, m_sched, !strcmp(etx, "batch"), &pt);
    double wall = mono() - w0, cpu = cpu_self() - c0;

    long long done = count(db, "SELECT count(*) FROM jobs WHERE state = 'done'");
    long long jobs = count(db, "SELECT count(*) FROM jobs");
    long long done_ev = count(db, "SELECT count(*) FROM events WHERE to_state = 'done'");
    int ok = !rc && done == n && jobs == n && (m_bare || done_ev == n);
    printf("{\"mode\":\"%s\",\"jobs\":%d,\"enqueue_tx\":\"%s\",\"sqlite\":\"%s\",\"wall_s\":%.6f,\"enqueue_s\":%.6f,"
           "\"run_s\":%.6f,\"cpu_s\":%.6f,\"per_job_ms\":%.6f,\"cpu_per_job_ms\":%.6f,\"jobs_per_s\":%.1f,"
           "\"done\":%lld,\"done_events\":%lld,\"ok\":%s",
           mode, n, etx, sqlite3_libversion(), wall, pt.enqueue_s, pt.run_s, cpu, wall * 1e3 / n, cpu * 1e3 / n,
           n / wall, done, done_ev, ok ? "true" : "false");
    if (m_queue || m_sched)
        printf(",\"ms_per_job\":{\"promote_due\":%.6f,\"lease\":%.6f,\"args_json_each\":%.6f,\"next_wake\":%.6f,"
               "\"complete\":%.6f}",
               pt.promote_s * 1e3 / n, pt.lease_s * 1e3 / n, pt.args_s * 1e3 / n, pt.next_wake_s * 1e3 / n,
               pt.complete_s * 1e3 / n);
    printf("}\n");
    db_close(db);
    if (!keep) {
        const char *sfx[] = {"", "-wal", "-shm"};
        for (size_t i = 0; i < ARRAY_LEN(sfx); i++) {
            char p[4300];
            snprintf(p, sizeof p, "%s%s", path, sfx[i]);
            unlink(p);
        }
        if (made)
            rmdir(made);
    }
    return ok ? 0 : 1;
}
