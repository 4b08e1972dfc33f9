/* dfewctl status and wait: how far the queue is. status prints job counts
 * per kind and state, what runs now and the daemon's state; on a terminal it
 * stays live with a progress bar until the work is done. wait blocks until
 * jobs end and says by its exit code whether all of them succeeded. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "queue.h"

static const char *const col_states[] = {"queued", "leased", "failed", "done", "dead", "cancelled"};

/* The first job the progress bar is about: the oldest one not yet final
 * when watching began (0 when none is active). */
static long long batch_start(struct ctl *c)
{
    sqlite3_stmt *st;
    long long id = 0;
    if (sqlite3_prepare_v2(c->db->h, "SELECT coalesce(min(id), 0) FROM jobs WHERE state IN ('queued','leased','failed')",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return id;
}

/* Jobs from `start` on: how many, how many finished, how many still active. */
static void batch_progress(struct ctl *c, long long start, long long *finished, long long *total, long long *active)
{
    *finished = *total = *active = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db->h,
                           "SELECT count(*), coalesce(sum(state IN ('done','dead','cancelled')), 0), "
                           "coalesce(sum(state IN ('queued','leased','failed')), 0) FROM jobs WHERE id >= ?",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, start);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *total = sqlite3_column_int64(st, 0);
        *finished = sqlite3_column_int64(st, 1);
        *active = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
}

/* " (Slurm job N STATE on NODE)" for a running job, from the daemon's status
 * reply (its slot's slurm_job, slurm_state and node); nothing for a local
 * worker's job or when dfewd is not up. */
static void print_slurm_where(const char *reply, long long id)
{
    char key[48];
    snprintf(key, sizeof key, "\"job\":%lld,", id); /* "slurm_job" has _ before job: no false match */
    const char *p = reply ? strstr(reply, key) : NULL;
    const char *end = p ? strchr(p, '}') : NULL;
    const char *s = p ? strstr(p, "\"slurm_job\":") : NULL;
    if (!s || !end || s > end)
        return;
    char state[32] = "", node[160] = "";
    const char *q = strstr(p, "\"slurm_state\":\"");
    if (q && q < end)
        snprintf(state, sizeof state, "%.*s", (int)strcspn(q + 15, "\""), q + 15);
    q = strstr(p, "\"node\":\"");
    if (q && q < end)
        snprintf(node, sizeof node, "%.*s", (int)strcspn(q + 8, "\""), q + 8);
    long long sid = atoll(s + 12);
    if (sid)
        printf(" (Slurm job %lld %s%s%s)", sid, state, node[0] ? " on " : "", node);
    else
        printf(" (being submitted to Slurm)");
}

static int print_status(struct ctl *c, int tty, long long start)
{
    char reply[65536];
    int req = ctl_request(c, "status", reply, sizeof reply);
    int up = req == 0 && reply[0] == '{';
    if (c->json) {
        struct sbuf b = {0};
        sbuf_addf(&b, "{\"home\":");
        sbuf_add_json_str(&b, c->paths.home);
        sbuf_add(&b, ",\"database\":");
        sbuf_add_json_str(&b, c->paths.db);
        sbuf_addf(&b, ",\"daemon\":%s,\"queue\":", up ? reply : "null");
        ctl_query_json(c, &b, "SELECT kind, state, jobs FROM queue_summary", NULL);
        sbuf_add(&b, ",\"movies\":");
        ctl_query_json(c, &b,
                       "SELECT count(*) AS total, count(probed_at) AS probed FROM movies", NULL);
        sbuf_add(&b, ",\"clips\":");
        ctl_query_json(c, &b, "SELECT state, count(*) AS clips FROM clips GROUP BY state", NULL);
        sbuf_add(&b, ",\"running\":");
        ctl_query_json(c, &b,
                       "SELECT id, kind, attempts, lease_owner, progress, progress_msg, "
                       "round((julianday('now') - 2440587.5) * 86400.0 - started_at, 3) AS running_s FROM jobs WHERE state = 'leased' "
                       "ORDER BY id",
                       NULL);
        sbuf_add(&b, "}");
        printf("%s\n", sbuf_str(&b));
        sbuf_free(&b);
        return 0;
    }
    if (up) {
        /* A few fields are enough for the headline; the JSON has the rest. */
        int busy = 0, workers = 0, tbusy = 0, trainers = 0;
        char *tr = strstr(reply, "\"trainers\":[");
        for (char *p = reply; (p = strstr(p, "\"state\":\"")); p += 9) {
            int t = tr && p > tr;
            *(t ? &trainers : &workers) += 1;
            *(t ? &tbusy : &busy) += !strncmp(p + 9, "busy", 4);
        }
        char *pid = strstr(reply, "\"pid\":");
        if (strstr(reply, "\"executor\":\"slurm\"")) {
            /* the slots are Slurm jobs in flight: dfewctl status --json shows each one's Slurm job and node */
            printf("dfewd: running (pid %d), Slurm executor: %d of at most %d job(s) in flight",
                   pid ? atoi(pid + 6) : 0, busy, workers);
            if (trainers)
                printf(", %d of at most %d train job(s)", tbusy, trainers);
            if (strstr(reply, "\"ready\":false"))
                printf(", checking shared storage from a compute node");
        } else {
            printf("dfewd: running (pid %d), %d worker(s), %d busy", pid ? atoi(pid + 6) : 0, workers, busy);
            if (trainers)
                printf("; %d trainer slot(s), %d busy", trainers, tbusy);
        }
        printf("%s\n", strstr(reply, "\"draining\":true") ? ", draining" : "");
    } else if (req == -EACCES || req == -EPERM) {
        printf("dfewd: unknown (its control socket %s is private to the daemon's user; run dfewctl as that user)\n",
               c->paths.sock);
    } else {
        printf("dfewd: not running (queued jobs wait for it: dfewd --home %s)\n", c->paths.home);
    }
    printf("home: %s\n", c->paths.home);

    /* Counts per kind and state, one row per kind. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db->h, "SELECT kind, state, jobs FROM queue_summary", -1, &st, NULL) != SQLITE_OK)
        return 1;
    struct row {
        char kind[32];
        long long n[ARRAY_LEN(col_states)];
    } rows[32];
    int nrows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        int r = 0;
        while (r < nrows && strcmp(rows[r].kind, kind))
            r++;
        if (r == nrows) {
            if (nrows == (int)ARRAY_LEN(rows))
                continue;
            memset(&rows[nrows], 0, sizeof rows[0]);
            snprintf(rows[nrows].kind, sizeof rows[0].kind, "%s", kind);
            nrows++;
        }
        for (size_t k = 0; k < ARRAY_LEN(col_states); k++)
            if (!strcmp(state, col_states[k]))
                rows[r].n[k] = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (!nrows) {
        printf("jobs: none yet (dfewctl submit MOVIE)\n");
    } else {
        printf("%-10s", "kind");
        for (size_t k = 0; k < ARRAY_LEN(col_states); k++)
            printf(" %9s", col_states[k]);
        printf("\n");
        for (int r = 0; r < nrows; r++) {
            printf("%-10s", rows[r].kind);
            for (size_t k = 0; k < ARRAY_LEN(col_states); k++)
                printf(" %9lld", rows[r].n[k]);
            printf("\n");
        }
    }
    if (sqlite3_prepare_v2(c->db->h,
                           "SELECT (SELECT count(*) FROM movies), (SELECT count(probed_at) FROM movies), "
                           "(SELECT count(*) FROM clips), (SELECT count(*) FROM clips WHERE state = 'usable')",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        printf("movies: %lld (%lld probed)   clips: %lld (%lld usable)\n", (long long)sqlite3_column_int64(st, 0),
               (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2),
               (long long)sqlite3_column_int64(st, 3));
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(c->db->h,
                           "SELECT j.id, j.kind, (julianday('now') - 2440587.5) * 86400.0 - j.started_at, j.progress, j.progress_msg, "
                           "coalesce(m.source, '') FROM jobs j LEFT JOIN movies m ON m.id = j.movie_id "
                           "WHERE j.state = 'leased' ORDER BY j.id LIMIT 20",
                           -1, &st, NULL) == SQLITE_OK) {
        int first = 1;
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (first)
                printf("running:\n");
            first = 0;
            printf("  job %-6lld %-8s %7.1f s", (long long)sqlite3_column_int64(st, 0),
                   (const char *)sqlite3_column_text(st, 1), sqlite3_column_double(st, 2));
            if (sqlite3_column_type(st, 3) != SQLITE_NULL)
                printf("  %3.0f%%", 100 * sqlite3_column_double(st, 3));
            if (sqlite3_column_text(st, 4))
                printf(" %s", (const char *)sqlite3_column_text(st, 4));
            if (up)
                print_slurm_where(reply, (long long)sqlite3_column_int64(st, 0));
            printf("  %s\n", (const char *)sqlite3_column_text(st, 5));
        }
        sqlite3_finalize(st);
    }
    long long fin, total, active;
    batch_progress(c, start, &fin, &total, &active);
    if (tty && start > 0 && total) {
        int width = 40, filled = (int)(width * fin / total);
        printf("[");
        for (int i = 0; i < width; i++)
            putchar(i < filled ? '#' : '.');
        printf("] %lld/%lld jobs finished%s\n", fin, total, active ? "" : " - all done");
    }
    return 0;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int s)
{
    (void)s;
    interrupted = 1;
}

int cmd_status(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"once", no_argument, NULL, 'o'}, CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int once = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 'o')
            once = 1;
        else if (o == 'h') {
            printf("usage: dfewctl status [--once] [--json]\n\n"
                   "Job counts per kind and state, running jobs and the daemon. On a terminal it\n"
                   "refreshes with a progress bar until no job is queued or running (Ctrl-C stops\n"
                   "watching, not the jobs); --once prints one snapshot.\n");
            return 0;
        } else
            return 2;
    }
    if (ctl_open(c, 0))
        return 1;
    int tty = isatty(STDOUT_FILENO) && !c->json;
    long long start = batch_start(c);
    if (!tty || once)
        return print_status(c, tty, start);
    signal(SIGINT, on_sigint);
    for (;;) {
        printf("\033[H\033[J");
        print_status(c, 1, start);
        fflush(stdout);
        long long fin, total, active;
        batch_progress(c, start, &fin, &total, &active);
        if (!active || interrupted)
            break;
        for (int i = 0; i < 5 && !interrupted; i++)
            usleep(100000);
    }
    return 0;
}

int cmd_wait(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"timeout", required_argument, NULL, 't'}, CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    double timeout = 0;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 't') {
            if (parse_seconds(optarg, &timeout)) {
                fprintf(stderr, "dfewctl wait: --timeout wants a duration such as 30, 90s or 5m, not '%s'\n", optarg);
                return 2;
            }
        } else if (o == 'h') {
            printf("usage: dfewctl wait [--timeout S] [JOB_ID...]\n\n"
                   "Blocks until no job (or none of the given jobs) is queued, running or\n"
                   "waiting for a retry. Exit status: 0 when all ended done (or cancelled),\n"
                   "1 when any is dead, 124 on timeout, 2 on bad usage.\n");
            return 0;
        } else
            return 2;
    }
    /* The selection: given ids as a JSON array, or every job. */
    struct sbuf ids = {0};
    sbuf_addc(&ids, '[');
    for (int i = optind; i < argc; i++) {
        int64_t id;
        if (parse_i64(argv[i], &id) || id < 1) {
            fprintf(stderr, "dfewctl wait: '%s' is not a job id\n", argv[i]);
            sbuf_free(&ids);
            return 2;
        }
        sbuf_addf(&ids, "%s%lld", i > optind ? "," : "", (long long)id);
    }
    sbuf_addc(&ids, ']');
    int all = optind >= argc;
    if (ctl_open(c, 0)) {
        sbuf_free(&ids);
        return 1;
    }
    /* Polled every 50 ms: only the active jobs are counted (through the
     * jobs_state index); the totals are read once at the end. */
    const char *active_sql = all ? "SELECT count(*) FROM jobs WHERE state IN ('queued', 'leased', 'failed')"
                                 : "SELECT count(*) FROM jobs WHERE id IN (SELECT value FROM json_each(?1)) "
                                   "AND state IN ('queued', 'leased', 'failed')";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db->h, active_sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "dfewctl wait: %s\n", db_errmsg(c->db));
        sbuf_free(&ids);
        return 1;
    }
    if (!all)
        sqlite3_bind_text(st, 1, ids.s, -1, SQLITE_TRANSIENT);
    uint64_t start = mono_ms();
    long long active = 0, done = 0, dead = 0, cancelled = 0, count = 0;
    int warned = 0, rc = 0;
    if (!all) {
        sqlite3_stmt *cnt;
        if (sqlite3_prepare_v2(c->db->h, "SELECT count(*) FROM jobs WHERE id IN (SELECT value FROM json_each(?1))", -1,
                               &cnt, NULL) == SQLITE_OK) {
            sqlite3_bind_text(cnt, 1, ids.s, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(cnt) == SQLITE_ROW)
                count = sqlite3_column_int64(cnt, 0);
        }
        sqlite3_finalize(cnt);
        if (count < argc - optind) {
            fprintf(stderr, "dfewctl wait: some of the given job ids do not exist (dfewctl jobs lists them)\n");
            sqlite3_finalize(st);
            sbuf_free(&ids);
            return 2;
        }
    }
    for (;;) {
        sqlite3_reset(st);
        if (sqlite3_step(st) == SQLITE_ROW)
            active = sqlite3_column_int64(st, 0);
        if (!active)
            break;
        if (timeout > 0 && (double)(mono_ms() - start) / 1000.0 >= timeout) {
            rc = 124;
            break;
        }
        if (!warned && mono_ms() - start > 2000) {
            char reply[64];
            if (ctl_request(c, "ping", reply, sizeof reply) != 0) {
                fprintf(stderr, "dfewctl wait: dfewd is not running on %s; nothing will move until it starts\n",
                        c->paths.home);
            }
            warned = 1;
        }
        usleep(50000);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(c->db->h,
                           "SELECT coalesce(sum(state = 'done'), 0), coalesce(sum(state = 'dead'), 0), "
                           "coalesce(sum(state = 'cancelled'), 0) FROM jobs "
                           "WHERE ?1 OR id IN (SELECT value FROM json_each(?2))",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int(st, 1, all);
        sqlite3_bind_text(st, 2, ids.s, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            done = sqlite3_column_int64(st, 0);
            dead = sqlite3_column_int64(st, 1);
            cancelled = sqlite3_column_int64(st, 2);
        }
    }
    sqlite3_finalize(st);
    sbuf_free(&ids);
    if (rc == 0)
        rc = dead ? 1 : 0;
    if (c->json)
        printf("{\"done\":%lld,\"dead\":%lld,\"cancelled\":%lld,\"unfinished\":%lld,\"timed_out\":%s}\n", done, dead,
               cancelled, active, rc == 124 ? "true" : "false");
    else if (rc == 124)
        fprintf(stderr, "dfewctl wait: timed out with %lld job(s) unfinished\n", active);
    else if (rc != 2)
        printf("%lld done, %lld dead, %lld cancelled%s\n", done, dead, cancelled,
               dead ? " (dfewctl jobs --state dead shows why)" : "");
    return rc;
}
