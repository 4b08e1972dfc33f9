/* Unit tests for lib/queue.c: every allowed transition, the refused ones,
 * events, leases (ownership, renewal, expiry, stale leases at start-up),
 * retry backoff, dead after max attempts, dedup, priorities, kind limits. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "db.h"
#include "queue.h"
#include "util.h"

static char dbdir[] = "/tmp/dfew-test-queue-XXXXXX";
static int dbn;
static const struct queue_policy pol = {.lease_s = 60, .max_attempts = 3, .retry_base_s = 10, .retry_max_s = 25};

static struct db *fresh_db(void)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/q%d.db", dbdir, dbn++);
    struct db *db = NULL;
    int rc = db_open(path, -1, 1000, &db, err, sizeof err);
    if (rc) {
        fprintf(stderr, "db_open: %s\n", err);
        abort();
    }
    return db;
}

static int64_t add(struct db *db, const char *kind, int prio, const char *dedup)
{
    struct job_spec s = {.kind = kind, .priority = prio, .dedup_key = dedup, .max_attempts = 3};
    int64_t id = 0;
    int rc = queue_enqueue(db, &s, NULL, &id);
    CHECK(rc == 1 || rc == 0);
    return id;
}

static enum job_state state(struct db *db, int64_t id)
{
    enum job_state s = JOB_STATE_COUNT;
    CHECK_EQ_INT(queue_state_of(db, id, &s), 0);
    return s;
}

static long long scalar(struct db *db, const char *sql, int64_t id)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return -2;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static double scalar_d(struct db *db, const char *sql, int64_t id)
{
    sqlite3_stmt *st;
    double v = -1;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return -2;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static long long events(struct db *db, int64_t id) { return scalar(db, "SELECT count(*) FROM events WHERE job_id = ?", id); }

/* The path of states a job went through, from its events. */
static char *trail(struct db *db, int64_t id)
{
    sqlite3_stmt *st;
    struct sbuf b = {0};
    sqlite3_prepare_v2(db->h, "SELECT to_state FROM events WHERE job_id = ? ORDER BY id", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW)
        sbuf_addf(&b, "%s%s", b.len ? " " : "", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return sbuf_take(&b);
}

static void test_happy_path(void)
{
    struct db *db = fresh_db();
    int64_t id = add(db, "noop", 0, NULL);
    CHECK_EQ_INT(state(db, id), JOB_QUEUED);
    CHECK_EQ_INT(events(db, id), 1);
    struct leased_job j;
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
    CHECK_EQ_INT(j.id, id);
    CHECK_EQ_INT(j.attempt, 1);
    CHECK_EQ_STR(j.kind, "noop");
    CHECK_EQ_INT(strlen(j.token), 32);
    CHECK_EQ_INT(state(db, id), JOB_LEASED);
    double exp = scalar_d(db, "SELECT lease_expires - started_at FROM jobs WHERE id = ?", id);
    CHECK(fabs(exp - 60) < 0.01);
    CHECK_EQ_INT(queue_complete(db, id, j.token, "{\"x\":1}"), 0);
    CHECK_EQ_INT(state(db, id), JOB_DONE);
    CHECK_EQ_INT(scalar(db, "SELECT json_extract(result, '$.x') FROM jobs WHERE id = ?", id), 1);
    CHECK_EQ_INT(scalar(db, "SELECT lease_token IS NULL FROM jobs WHERE id = ?", id), 1);
    char *t = trail(db, id);
    CHECK_EQ_STR(t, "queued leased done");
    free(t);
    /* A second completion (a duplicate result) changes nothing. */
    CHECK_EQ_INT(queue_complete(db, id, j.token, "{}"), -ESTALE);
    CHECK_EQ_INT(events(db, id), 3);
    /* Nothing left to lease. */
    struct leased_job k;
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &k), -ENOENT);
    leased_job_free(&j);
    db_close(db);
}

static void test_wrong_token_and_renew(void)
{
    struct db *db = fresh_db();
    int64_t id = add(db, "noop", 0, NULL);
    struct leased_job j;
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
    CHECK_EQ_INT(queue_complete(db, id, "not-the-token", "{}"), -ESTALE);
    CHECK_EQ_INT(queue_renew(db, &pol, id, "not-the-token"), -ESTALE);
    CHECK_EQ_INT(state(db, id), JOB_LEASED);
    double before = scalar_d(db, "SELECT lease_expires FROM jobs WHERE id = ?", id);
    usleep(20000);
    CHECK_EQ_INT(queue_renew(db, &pol, id, j.token), 0);
    CHECK(scalar_d(db, "SELECT lease_expires FROM jobs WHERE id = ?", id) > before);
    CHECK_EQ_INT(queue_progress(db, id, j.token, 0.5, "half"), 0);
    CHECK(fabs(scalar_d(db, "SELECT progress FROM jobs WHERE id = ?", id) - 0.5) < 1e-9);
    CHECK_EQ_INT(queue_progress(db, id, "nope", 0.7, NULL), -ESTALE);
    leased_job_free(&j);
    db_close(db);
}

static void test_fail_backoff_dead(void)
{
    struct db *db = fresh_db();
    int64_t id = add(db, "noop", 0, NULL);
    double expect_backoff[] = {10, 20, 25}; /* doubling from 10, capped at 25 */
    CHECK(fabs(queue_backoff(&pol, 1) - 10) < 1e-9);
    CHECK(fabs(queue_backoff(&pol, 2) - 20) < 1e-9);
    CHECK(fabs(queue_backoff(&pol, 3) - 25) < 1e-9);
    CHECK(fabs(queue_backoff(&pol, 100) - 25) < 1e-9);
    for (int attempt = 1; attempt <= 3; attempt++) {
        struct leased_job j;
        CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
        CHECK_EQ_INT(j.attempt, attempt);
        enum job_state to;
        double t0 = now_s();
        CHECK_EQ_INT(queue_fail(db, &pol, id, j.token, "boom", 1, &to), 0);
        leased_job_free(&j);
        if (attempt < 3) {
            CHECK_EQ_INT(to, JOB_FAILED);
            double ra = scalar_d(db, "SELECT run_after FROM jobs WHERE id = ?", id);
            CHECK(fabs(ra - t0 - expect_backoff[attempt - 1]) < 1.0);
            /* Not leasable while failed, not promoted before the backoff ends. */
            struct leased_job k;
            CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &k), -ENOENT);
            int n = -1;
            CHECK_EQ_INT(queue_promote_due(db, now_s(), &n), 0);
            CHECK_EQ_INT(n, 0);
            double wake = 0;
            CHECK_EQ_INT(queue_next_wake(db, now_s(), &wake), 0);
            CHECK(fabs(wake - ra) < 1e-6);
            CHECK_EQ_INT(queue_promote_due(db, ra + 0.001, &n), 0);
            CHECK_EQ_INT(n, 1);
            CHECK_EQ_INT(state(db, id), JOB_QUEUED);
        } else {
            CHECK_EQ_INT(to, JOB_DEAD);
            CHECK_EQ_INT(state(db, id), JOB_DEAD);
        }
    }
    char *t = trail(db, id);
    CHECK_EQ_STR(t, "queued leased failed queued leased failed queued leased dead");
    free(t);
    CHECK_EQ_INT(scalar(db, "SELECT error = 'boom' FROM jobs WHERE id = ?", id), 1);
    /* retry: dead -> queued with attempts reset */
    CHECK_EQ_INT(queue_retry(db, id, NULL), 0);
    CHECK_EQ_INT(state(db, id), JOB_QUEUED);
    CHECK_EQ_INT(scalar(db, "SELECT attempts FROM jobs WHERE id = ?", id), 0);
    CHECK_EQ_INT(queue_retry(db, id, NULL), -EBUSY);
    db_close(db);
}

static void test_permanent_failure(void)
{
    struct db *db = fresh_db();
    int64_t id = add(db, "probe", 0, NULL);
    struct leased_job j;
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
    enum job_state to;
    CHECK_EQ_INT(queue_fail(db, &pol, id, j.token, "not a video", 0, &to), 0);
    CHECK_EQ_INT(to, JOB_DEAD);
    CHECK_EQ_INT(scalar(db, "SELECT attempts FROM jobs WHERE id = ?", id), 1);
    CHECK(scalar(db, "SELECT finished_at IS NOT NULL FROM jobs WHERE id = ?", id) == 1);
    leased_job_free(&j);
    db_close(db);
}

static void test_release(void)
{
    struct db *db = fresh_db();
    int64_t id = add(db, "noop", 0, NULL);
    struct leased_job j;
    /* A drain gives the attempt back... */
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
    enum job_state to;
    CHECK_EQ_INT(queue_release(db, id, j.token, "drain", 0, &to), 0);
    CHECK_EQ_INT(to, JOB_QUEUED);
    CHECK_EQ_INT(scalar(db, "SELECT attempts FROM jobs WHERE id = ?", id), 0);
    leased_job_free(&j);
    /* ...a dead worker does not, and the last attempt makes the job dead. */
    for (int i = 1; i <= 3; i++) {
        CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
        CHECK_EQ_INT(j.attempt, i);
        CHECK_EQ_INT(queue_release(db, id, j.token, "worker killed by signal 9", 1, &to), 0);
        CHECK_EQ_INT(to, i < 3 ? JOB_QUEUED : JOB_DEAD);
        leased_job_free(&j);
    }
    CHECK_EQ_INT(state(db, id), JOB_DEAD);
    CHECK_EQ_INT(queue_release(db, id, "x", "again", 1, &to), -ESTALE);
    db_close(db);
}

static void test_lease_expiry_and_stale(void)
{
    struct db *db = fresh_db();
    struct queue_policy shortp = pol;
    shortp.lease_s = 5;
    int64_t a = add(db, "noop", 0, NULL), b = add(db, "noop", 0, NULL);
    struct leased_job ja, jb;
    CHECK_EQ_INT(queue_lease(db, &shortp, "t", NULL, &ja), 0);
    CHECK_EQ_INT(queue_lease(db, &shortp, "t", NULL, &jb), 0);
    int n = -1;
    CHECK_EQ_INT(queue_expire_leases(db, now_s(), &n), 0);
    CHECK_EQ_INT(n, 0);
    double wake = 0;
    CHECK_EQ_INT(queue_next_wake(db, now_s(), &wake), 0);
    CHECK(wake > now_s() + 4 && wake < now_s() + 6);
    /* Renew one; at a time past the first expiry only the other expires. */
    usleep(10000);
    CHECK_EQ_INT(queue_renew(db, &shortp, b, jb.token), 0);
    double ea = scalar_d(db, "SELECT lease_expires FROM jobs WHERE id = ?", a);
    CHECK_EQ_INT(queue_expire_leases(db, ea + 0.005, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(state(db, a), JOB_QUEUED);
    CHECK_EQ_INT(state(db, b), JOB_LEASED);
    /* The old holder of a's lease can no longer complete it. */
    CHECK_EQ_INT(queue_complete(db, a, ja.token, "{}"), -ESTALE);
    /* Start-up: every lease is stale. */
    CHECK_EQ_INT(queue_release_stale(db, "daemon restarted", &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(state(db, b), JOB_QUEUED);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM jobs WHERE state = 'leased'", 0), 0);
    leased_job_free(&ja);
    leased_job_free(&jb);
    db_close(db);
}

static void test_cancel(void)
{
    struct db *db = fresh_db();
    int64_t q = add(db, "noop", 0, NULL), l = add(db, "noop", 0, NULL), f = add(db, "noop", 0, NULL);
    enum job_state prev;
    CHECK_EQ_INT(queue_cancel(db, q, NULL, &prev), 0);
    CHECK_EQ_INT(prev, JOB_QUEUED);
    struct leased_job j;
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
    CHECK_EQ_INT(j.id, l);
    CHECK_EQ_INT(queue_cancel(db, l, NULL, &prev), 0);
    CHECK_EQ_INT(prev, JOB_LEASED);
    /* The worker's late result is not recorded. */
    CHECK_EQ_INT(queue_complete(db, l, j.token, "{}"), -ESTALE);
    CHECK_EQ_INT(state(db, l), JOB_CANCELLED);
    leased_job_free(&j);
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
    CHECK_EQ_INT(queue_fail(db, &pol, f, j.token, "x", 1, NULL), 0);
    CHECK_EQ_INT(queue_cancel(db, f, NULL, &prev), 0);
    CHECK_EQ_INT(prev, JOB_FAILED);
    leased_job_free(&j);
    CHECK_EQ_INT(queue_cancel(db, f, NULL, &prev), -EALREADY);
    CHECK_EQ_INT(queue_cancel(db, 9999, NULL, &prev), -ENOENT);
    /* cancelled -> queued by retry */
    CHECK_EQ_INT(queue_retry(db, q, NULL), 0);
    CHECK_EQ_INT(state(db, q), JOB_QUEUED);
    db_close(db);
}

static void test_done_is_final(void)
{
    struct db *db = fresh_db();
    int64_t id = add(db, "noop", 0, NULL);
    struct leased_job j;
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
    CHECK_EQ_INT(queue_complete(db, id, j.token, NULL), 0);
    enum job_state prev;
    CHECK_EQ_INT(queue_cancel(db, id, NULL, &prev), -EALREADY);
    CHECK_EQ_INT(queue_retry(db, id, NULL), -EALREADY);
    CHECK_EQ_INT(queue_release(db, id, j.token, "x", 1, NULL), -ESTALE);
    CHECK_EQ_INT(queue_fail(db, &pol, id, j.token, "x", 1, NULL), -ESTALE);
    CHECK_EQ_INT(state(db, id), JOB_DONE);
    CHECK_EQ_INT(events(db, id), 3);
    /* The events log refuses edits. */
    CHECK(sqlite3_exec(db->h, "UPDATE events SET message = 'x'", NULL, NULL, NULL) != SQLITE_OK);
    leased_job_free(&j);
    db_close(db);
}

static void test_priority_order_dedup(void)
{
    struct db *db = fresh_db();
    int64_t low1 = add(db, "noop", 0, NULL), high = add(db, "noop", 5, NULL), low2 = add(db, "noop", 0, NULL);
    int64_t d1 = add(db, "probe", -1, "probe:1");
    int64_t d2 = add(db, "probe", -1, "probe:1");
    CHECK_EQ_INT(d1, d2);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM jobs WHERE dedup_key = 'probe:1'", 0), 1);
    CHECK_EQ_INT(events(db, d1), 1);
    int64_t order[] = {high, low1, low2, d1};
    for (int i = 0; i < 4; i++) {
        struct leased_job j;
        CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
        CHECK_EQ_INT(j.id, order[i]);
        leased_job_free(&j);
    }
    db_close(db);
}

static void test_kind_exclusion(void)
{
    struct db *db = fresh_db();
    int64_t t = add(db, "probe", 9, NULL), n = add(db, "noop", 0, NULL);
    struct leased_job j;
    CHECK_EQ_INT(queue_lease(db, &pol, "t", "[\"probe\"]", &j), 0);
    CHECK_EQ_INT(j.id, n);
    leased_job_free(&j);
    CHECK_EQ_INT(queue_lease(db, &pol, "t", "[\"probe\",\"noop\"]", &j), -ENOENT);
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &j), 0);
    CHECK_EQ_INT(j.id, t);
    leased_job_free(&j);
    db_close(db);
}

/* A movie of w x h and a clip of it lasting secs; returns the clip's id. */
static int64_t add_clip(struct db *db, int n, int w, int h, double secs)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO movies (id, sha256, source, added_at, width, height) VALUES (%d, printf('%%064d', %d), 'x', 0, "
             "%d, %d); INSERT INTO clips (id, movie_id, start_s, end_s, created_at, updated_at) "
             "VALUES (%d, %d, 1, %.17g, 0, 0)",
             n, n, w, h, n, n, 1 + secs);
    CHECK_EQ_INT(sqlite3_exec(db->h, sql, NULL, NULL, NULL), SQLITE_OK);
    return n;
}

static int64_t add_prep(struct db *db, int64_t clip, int prio)
{
    struct job_spec s = {.kind = "prep", .clip_id = clip, .priority = prio, .max_attempts = 3};
    int64_t id = 0;
    CHECK_EQ_INT(queue_enqueue(db, &s, NULL, &id), 1);
    return id;
}

static int64_t lease_id(struct db *db)
{
    struct leased_job j;
    int rc = queue_lease(db, &pol, "t", NULL, &j);
    CHECK_EQ_INT(rc, 0);
    if (rc)
        return rc;
    leased_job_free(&j);
    return j.id;
}

/* The lease order: by priority; among jobs queued within a minute of the
 * oldest, other kinds before prep, and prep jobs longest first (seconds
 * times pixels), then by age; a job queued more than a minute after the
 * oldest waits for its turn by age. */
static void test_lease_longest_prep_first(void)
{
    struct db *db = fresh_db();
    int64_t small = add_prep(db, add_clip(db, 1, 640, 360, 10), 0);   /* 2.3 Mpx s */
    int64_t big = add_prep(db, add_clip(db, 2, 1920, 1080, 5), 0);    /* 10.4 Mpx s */
    int64_t mid = add_prep(db, add_clip(db, 3, 1280, 720, 4), 0);     /* 3.7 Mpx s */
    int64_t tie = add_prep(db, add_clip(db, 4, 1280, 720, 4), 0);     /* as mid, queued later */
    int64_t urgent = add_prep(db, add_clip(db, 5, 256, 256, 1), 1);   /* the smallest, but a higher priority */
    int64_t probe = add(db, "probe", 0, NULL);                         /* queued last */
    int64_t order[] = {urgent, probe, big, mid, tie, small};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(lease_id(db), order[i]);
    CHECK_EQ_INT(queue_lease(db, &pol, "t", NULL, &(struct leased_job){0}), -ENOENT);

    /* queued 2 minutes after the oldest: no longer ahead of it */
    small = add_prep(db, add_clip(db, 6, 640, 360, 10), 0);
    big = add_prep(db, add_clip(db, 7, 1920, 1080, 5), 0);
    probe = add(db, "probe", 0, NULL);
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE jobs SET created_at = created_at - 120 WHERE id = %lld", (long long)small);
    CHECK_EQ_INT(sqlite3_exec(db->h, sql, NULL, NULL, NULL), SQLITE_OK);
    int64_t late[] = {small, probe, big};
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(lease_id(db), late[i]);
    db_close(db);
}

/* A trainer slot leases its kind only: by priority, then age; not before
 * its backoff ends; never another kind. */
static void test_lease_one_kind(void)
{
    struct db *db = fresh_db();
    int64_t p = add(db, "prep", 9, NULL), t1 = add(db, "train", 0, NULL), t2 = add(db, "train", 5, NULL);
    struct leased_job j;
    CHECK_EQ_INT(queue_lease_kind(db, &pol, "t", "train", &j), 0);
    CHECK_EQ_INT(j.id, t2);
    CHECK_EQ_STR(j.kind, "train");
    CHECK_EQ_INT(queue_fail(db, &pol, j.id, j.token, "x", 1, NULL), 0); /* backoff: not ready */
    leased_job_free(&j);
    CHECK_EQ_INT(queue_lease_kind(db, &pol, "t", "train", &j), 0);
    CHECK_EQ_INT(j.id, t1);
    leased_job_free(&j);
    CHECK_EQ_INT(queue_lease_kind(db, &pol, "t", "train", &j), -ENOENT);
    CHECK_EQ_INT(queue_lease_kind(db, &pol, "t", "noop", &j), -ENOENT);
    CHECK_EQ_INT(state(db, p), JOB_QUEUED);
    CHECK_EQ_INT(queue_lease(db, &pol, "t", "[\"train\"]", &j), 0);
    CHECK_EQ_INT(j.id, p);
    leased_job_free(&j);
    CHECK(job_kind_known("train"));
    db_close(db);
}

static void test_names(void)
{
    enum job_state s;
    for (int i = 0; i < JOB_STATE_COUNT; i++) {
        CHECK_EQ_INT(job_state_parse(job_state_name((enum job_state)i), &s), 0);
        CHECK_EQ_INT(s, i);
    }
    CHECK_EQ_INT(job_state_parse("running", &s), -EINVAL);
    CHECK(job_kind_known("probe"));
    CHECK(!job_kind_known("prob"));
    CHECK(job_state_final(JOB_DONE) && job_state_final(JOB_DEAD) && job_state_final(JOB_CANCELLED));
    CHECK(!job_state_final(JOB_FAILED) && !job_state_final(JOB_QUEUED) && !job_state_final(JOB_LEASED));
}

/* A restarted dfewd takes over the leases of jobs still running in Slurm
 * (queue_adopt) and releases only the others. */
static void test_adopt(void)
{
    struct db *db = fresh_db();
    int64_t a = add(db, "noop", 0, NULL), b = add(db, "noop", 0, NULL), c = add(db, "noop", 0, NULL);
    struct leased_job ja, jb, jc, got;
    CHECK_EQ_INT(queue_lease(db, &pol, "old", NULL, &ja), 0);
    CHECK_EQ_INT(queue_lease(db, &pol, "old", NULL, &jb), 0);
    CHECK_EQ_INT(queue_lease(db, &pol, "old", NULL, &jc), 0);
    double before = scalar_d(db, "SELECT lease_expires FROM jobs WHERE id = ?", a);
    usleep(10000);
    CHECK_EQ_INT(queue_adopt(db, &pol, "new", a, "not-the-token", &got), -ESTALE);
    CHECK_EQ_INT(queue_adopt(db, &pol, "new", a, ja.token, &got), 0);
    CHECK(got.id == a);
    CHECK_EQ_INT(got.attempt, 1);
    CHECK(!strcmp(got.kind, "noop") && !strcmp(got.token, ja.token));
    CHECK(scalar_d(db, "SELECT lease_expires FROM jobs WHERE id = ?", a) > before);
    leased_job_free(&got);
    /* a cancelled job is not adopted */
    enum job_state prev;
    CHECK_EQ_INT(queue_cancel(db, c, NULL, &prev), 0);
    CHECK_EQ_INT(queue_adopt(db, &pol, "new", c, jc.token, &got), -ESTALE);
    int n = -1;
    CHECK_EQ_INT(queue_release_stale_except(db, "new", "restarted", &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(state(db, a), JOB_LEASED);
    CHECK_EQ_INT(state(db, b), JOB_QUEUED);
    CHECK_EQ_INT(queue_complete(db, a, ja.token, "{}"), 0);
    CHECK_EQ_INT(state(db, a), JOB_DONE);
    leased_job_free(&ja);
    leased_job_free(&jb);
    leased_job_free(&jc);
    db_close(db);
}

int main(void)
{
    if (!mkdtemp(dbdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_names);
    RUN(test_happy_path);
    RUN(test_wrong_token_and_renew);
    RUN(test_fail_backoff_dead);
    RUN(test_permanent_failure);
    RUN(test_release);
    RUN(test_lease_expiry_and_stale);
    RUN(test_adopt);
    RUN(test_cancel);
    RUN(test_done_is_final);
    RUN(test_priority_order_dedup);
    RUN(test_kind_exclusion);
    RUN(test_lease_one_kind);
    RUN(test_lease_longest_prep_first);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dbdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dbdir);
    return check_report();
}
