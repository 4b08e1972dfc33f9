/* dfewctl jobs, show, cancel and retry: looking at single jobs and the
 * user-initiated transitions (cancel, retry), which go through queue.c like
 * every other transition. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "queue.h"

static int parse_id_arg(const char *cmd, const char *s, int64_t *id)
{
    if (!s || parse_i64(s, id) || *id < 1) {
        fprintf(stderr, "dfewctl %s: '%s' is not an id (a positive number; dfewctl jobs lists them)\n", cmd,
                s ? s : "");
        return 2;
    }
    return 0;
}

int cmd_jobs(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"state", required_argument, NULL, 's'},
                                         {"kind", required_argument, NULL, 'k'},
                                         {"limit", required_argument, NULL, 'l'},
                                         CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    const char *state = NULL, *kind = NULL;
    int limit = 100, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        switch (o) {
        case 's': {
            enum job_state s;
            if (job_state_parse(optarg, &s)) {
                fprintf(stderr, "dfewctl jobs: unknown state '%s' (queued, leased, done, failed, dead, cancelled)\n",
                        optarg);
                return 2;
            }
            state = optarg;
            break;
        }
        case 'k': kind = optarg; break;
        case 'l':
            if (parse_int(optarg, &limit) || limit < 0) {
                fprintf(stderr, "dfewctl jobs: --limit wants a number >= 0 (0: all)\n");
                return 2;
            }
            break;
        case 'h':
            printf("usage: dfewctl jobs [--state S] [--kind K] [--limit N] [--json]\n\n"
                   "Lists jobs, newest first (100 by default; --limit 0 lists all).\n"
                   "States: queued, leased, done, failed (waiting to retry), dead, cancelled.\n");
            return 0;
        default: return 2;
        }
    }
    if (ctl_open(c, 0))
        return 1;
    char lim[32];
    snprintf(lim, sizeof lim, "%d", limit ? limit : -1);
    const char *binds[] = {state ? state : "", kind ? kind : "", lim, NULL};
    int n = ctl_print_query(
        c,
        "SELECT j.id, j.kind, j.state, j.attempts || '/' || j.max_attempts AS attempts, j.priority, j.movie_id AS movie,"
        " strftime('%Y-%m-%d %H:%M:%S', j.updated_at, 'unixepoch') AS updated, coalesce(j.error, '') AS error "
        "FROM jobs j WHERE (?1 = '' OR j.state = ?1) AND (?2 = '' OR j.kind = ?2) "
        "ORDER BY j.id DESC LIMIT CAST(?3 AS INTEGER)",
        binds, "no jobs");
    return n < 0 ? 1 : 0;
}

static int show_job(struct ctl *c, const char *id)
{
    const char *binds[] = {id, NULL};
    if (c->json)
        printf("{\"job\":");
    int rc = ctl_print_record(c,
                              "SELECT id, kind, state, priority, movie_id, clip_id, attempts, max_attempts, args, "
                              "result, error, progress, progress_msg, lease_owner, dedup_key, "
                              "strftime('%Y-%m-%dT%H:%M:%fZ', created_at, 'unixepoch') AS created, "
                              "strftime('%Y-%m-%dT%H:%M:%fZ', started_at, 'unixepoch') AS started, "
                              "strftime('%Y-%m-%dT%H:%M:%fZ', finished_at, 'unixepoch') AS finished, "
                              "CASE WHEN state = 'failed' THEN strftime('%Y-%m-%dT%H:%M:%fZ', run_after, 'unixepoch') "
                              "END AS retry_at FROM jobs WHERE id = ?",
                              binds);
    if (rc == -ENOENT) {
        if (c->json)
            printf("null}\n");
        fprintf(stderr, "dfewctl show: no job %s (dfewctl jobs lists them)\n", id);
        return 1;
    }
    if (c->json)
        printf(",\"events\":");
    else
        printf("\nevents:\n");
    ctl_print_query(c, "SELECT at, from_state AS 'from', to_state AS 'to', message FROM job_log WHERE job_id = ? ORDER BY event_id",
                    binds, "  (none)");
    if (c->json)
        printf("}\n");
    return rc ? 1 : 0;
}

static int show_movie(struct ctl *c, const char *id)
{
    const char *binds[] = {id, NULL};
    if (c->json)
        printf("{\"movie\":");
    int rc = ctl_print_record(c, "SELECT * FROM movie_status WHERE movie_id = ?", binds);
    if (rc == -ENOENT) {
        if (c->json)
            printf("null}\n");
        fprintf(stderr, "dfewctl show: no movie %s (dfewctl movies lists them)\n", id);
        return 1;
    }
    printf(c->json ? ",\"jobs\":" : "\njobs:\n");
    ctl_print_query(c, "SELECT id, kind, state, attempts, coalesce(error, '') AS error FROM jobs WHERE movie_id = ? ORDER BY id",
                    binds, "  (none)");
    /* automatic segmentation: its outcome, the shots, and which clips came from it */
    printf(c->json ? ",\"segmentation\":" : "\nsegmentation:\n");
    if (ctl_print_record(c, "SELECT segment_state AS state, frames, shots, candidates, clips, clips_0_2s, clips_2_5s, "
                            "clips_5s_plus, usable_clips, note, segment_error AS error, segmented FROM movie_segments "
                            "WHERE movie_id = ?",
                         binds) == -ENOENT)
        printf(c->json ? "null" : "  (none: a clip list, [segment] mode, or not probed yet)\n");
    printf(c->json ? ",\"shots\":" : "\nshots:\n");
    ctl_print_query(c, "SELECT shot, start_frame, end_frame, round(start_s, 3) AS start_s, round(end_s, 3) AS end_s, "
                       "duration_s, cut_score, sampled, face_samples, face_share, candidates, clips FROM movie_shots "
                       "WHERE movie_id = ? ORDER BY shot",
                    binds, "  (none)");
    printf(c->json ? ",\"clips\":" : "\nclips:\n");
    ctl_print_query(c, "SELECT s.clip_id, round(s.start_s, 3) AS start_s, round(s.end_s, 3) AS end_s, s.duration_s, "
                       "s.duration_bucket AS bucket, o.origin, o.shot, o.curator_label_name AS label, s.state, "
                       "s.face_ratio, s.reason FROM clip_status s JOIN clip_origin o USING (clip_id) "
                       "WHERE s.movie_id = ? ORDER BY s.start_s",
                    binds, "  (none yet)");
    if (c->json)
        printf("}\n");
    return rc ? 1 : 0;
}

static int show_clip(struct ctl *c, const char *id)
{
    const char *binds[] = {id, NULL};
    if (c->json)
        printf("{\"clip\":");
    int rc = ctl_print_record(c, "SELECT * FROM clip_status WHERE clip_id = ?", binds);
    if (rc == -ENOENT) {
        if (c->json)
            printf("null}\n");
        fprintf(stderr, "dfewctl show: no clip %s (dfewctl clips lists them)\n", id);
        return 1;
    }
    printf(c->json ? ",\"jobs\":" : "\njobs:\n");
    ctl_print_query(c, "SELECT id, kind, state, attempts, coalesce(error, '') AS error FROM jobs WHERE clip_id = ? ORDER BY id",
                    binds, "  (none)");
    if (c->json)
        printf("}\n");
    return rc ? 1 : 0;
}

int cmd_show(struct ctl *c, int argc, char **argv)
{
    int rc = ctl_simple_opts(c, argc, argv,
                         "usage: dfewctl show [job|movie|clip] ID [--json]\n\n"
                         "One record with its history: a job with its events, a movie with its probe\n"
                         "facts, jobs, segmentation (shots) and clips, a clip with its jobs. A bare ID\n"
                         "is a job.\n");
    if (rc >= 0)
        return rc;
    const char *what = "job", *id = NULL;
    if (optind + 1 < argc) {
        what = argv[optind];
        id = argv[optind + 1];
    } else if (optind < argc) {
        id = argv[optind];
    }
    int64_t n;
    if ((rc = parse_id_arg("show", id, &n)) != 0)
        return rc;
    if (ctl_open(c, 0))
        return 1;
    if (!strcmp(what, "job"))
        return show_job(c, id);
    if (!strcmp(what, "movie"))
        return show_movie(c, id);
    if (!strcmp(what, "clip"))
        return show_clip(c, id);
    fprintf(stderr, "dfewctl show: '%s' is not job, movie or clip\n", what);
    return 2;
}

/* The options of cancel and retry: one JOB_ID, or --run RUN for every job
 * of a training run's folds. Returns -1 to go on, else the exit status. */
static int job_or_run(struct ctl *c, int argc, char **argv, const char *cmd, const char *usage_text, int64_t *id,
                      int64_t *run)
{
    static const struct option opts[] = {{"run", required_argument, NULL, 'r'}, CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    const char *run_arg = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 'r') {
            run_arg = optarg;
        } else if (o == 'h') {
            printf("%s", usage_text);
            return 0;
        } else {
            return 2;
        }
    }
    *id = *run = 0;
    if (run_arg && optind < argc) {
        fprintf(stderr, "dfewctl %s: give a JOB_ID or --run RUN, not both\n", cmd);
        return 2;
    }
    if (run_arg) {
        if (parse_i64(run_arg, run) || *run < 1) {
            fprintf(stderr, "dfewctl %s: --run '%s' is not a run id (dfewctl runs lists them)\n", cmd, run_arg);
            return 2;
        }
        return -1;
    }
    int rc = parse_id_arg(cmd, optind < argc ? argv[optind] : NULL, id);
    return rc ? rc : -1;
}

/* The jobs of a run's folds, in fold order; -ENOENT when there is no such run. */
static int run_jobs(struct ctl *c, int64_t run, int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = db_prepare(c->db, "SELECT (SELECT count(*) FROM runs WHERE id = ?1), f.job_id FROM "
                                         "(SELECT 1) LEFT JOIN run_folds f ON f.run_id = ?1 AND f.job_id IS NOT NULL "
                                         "ORDER BY f.fold");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, run);
    int exists = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        exists = sqlite3_column_int(st, 0);
        if (sqlite3_column_type(st, 1) == SQLITE_NULL)
            continue;
        *ids = xrealloc(*ids, (*n + 1) * sizeof **ids);
        (*ids)[(*n)++] = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return -EIO;
    return exists ? 0 : -ENOENT;
}

/* Cancels one job; a running one's worker is asked to stop (*stopped). */
static int cancel_one(struct ctl *c, int64_t id, enum job_state *prev, int *stopped)
{
    *prev = JOB_QUEUED;
    *stopped = 0;
    int rc = queue_cancel(c->db, id, "cancelled by dfewctl", prev);
    if (rc == 0 && *prev == JOB_LEASED) {
        char req[64], reply[128];
        snprintf(req, sizeof req, "cancel %lld", (long long)id);
        *stopped = ctl_request(c, req, reply, sizeof reply) == 0 && !strcmp(reply, "ok stopped");
    }
    return rc;
}

/* cancel or retry every job of a run: what happened to each, then a total */
static int for_run(struct ctl *c, const char *cmd, int64_t run)
{
    int64_t *ids;
    size_t n;
    int rc = run_jobs(c, run, &ids, &n);
    if (rc) {
        fprintf(stderr, "dfewctl %s: %s\n", cmd,
                rc == -ENOENT ? "no such run (dfewctl runs lists them)" : db_errmsg(c->db));
        return 1;
    }
    const int cancel = !strcmp(cmd, "cancel");
    int changed = 0, stopped = 0, failed = 0;
    struct sbuf json = {0};
    for (size_t i = 0; i < n; i++) {
        enum job_state prev = JOB_QUEUED;
        int st = 0;
        rc = cancel ? cancel_one(c, ids[i], &prev, &st)
                    : queue_retry(c->db, ids[i], "retry of its run requested with dfewctl");
        const char *what = rc == 0 ? (cancel ? "cancelled" : "queued") : rc == -EALREADY || rc == -EBUSY ? "unchanged"
                                                                                                           : "error";
        if (rc == 0)
            changed++, stopped += st;
        else if (what[0] == 'e')
            failed++;
        sbuf_addf(&json, "%s{\"id\":%lld,\"result\":\"%s\"}", i ? "," : "", (long long)ids[i], what);
        if (!c->json)
            printf("job %lld: %s%s\n", (long long)ids[i],
                   rc == 0 ? what : rc == -EALREADY ? (cancel ? "already ended" : "done, nothing to retry")
                                  : rc == -EBUSY ? "still queued or running" : db_errmsg(c->db),
                   st ? " (its worker was stopped)" : "");
    }
    int up = !cancel && changed ? ctl_wake(c) : -1;
    if (c->json)
        printf("{\"run\":%lld,\"jobs\":[%s],\"%s\":%d,\"workers_stopped\":%d}\n", (long long)run, sbuf_str(&json),
               cancel ? "cancelled" : "queued", changed, stopped);
    else
        printf("run %lld: %d of %zu fold jobs %s%s\n", (long long)run, changed, n,
               cancel ? "cancelled" : "queued again", up == 0 ? " (dfewd is not running; they wait for it)" : "");
    sbuf_free(&json);
    free(ids);
    return failed ? 1 : 0;
}

int cmd_cancel(struct ctl *c, int argc, char **argv)
{
    int64_t id, run;
    int rc = job_or_run(c, argc, argv, "cancel", "usage: dfewctl cancel JOB_ID | --run RUN\n\n"
                                                 "Cancels a queued, running or failed job (--run: every job of a\n"
                                                 "training run's folds). A running job's worker is stopped.\n"
                                                 "'dfewctl retry' queues it again; a train job resumes from its\n"
                                                 "last checkpoint.\n",
                        &id, &run);
    if (rc >= 0)
        return rc;
    if (ctl_open(c, 0))
        return 1;
    if (run)
        return for_run(c, "cancel", run);
    enum job_state prev;
    int stopped;
    rc = cancel_one(c, id, &prev, &stopped);
    if (rc == -ENOENT) {
        fprintf(stderr, "dfewctl cancel: no job %lld\n", (long long)id);
        return 1;
    }
    if (rc == -EALREADY) {
        fprintf(stderr, "dfewctl cancel: job %lld is already %s; nothing to cancel\n", (long long)id,
                job_state_name(prev));
        return 1;
    }
    if (rc) {
        fprintf(stderr, "dfewctl cancel: %s\n", db_errmsg(c->db));
        return 1;
    }
    if (c->json)
        printf("{\"id\":%lld,\"was\":\"%s\",\"state\":\"cancelled\",\"worker_stopped\":%s}\n", (long long)id,
               job_state_name(prev), stopped ? "true" : "false");
    else
        printf("job %lld cancelled (was %s%s)\n", (long long)id, job_state_name(prev),
               stopped ? "; its worker was stopped" : "");
    return 0;
}

int cmd_retry(struct ctl *c, int argc, char **argv)
{
    int64_t id, run;
    int rc = job_or_run(c, argc, argv, "retry", "usage: dfewctl retry JOB_ID | --run RUN\n\n"
                                               "Queues a dead, failed or cancelled job again, with its attempts reset\n"
                                               "(--run: every such job of a training run's folds).\n",
                        &id, &run);
    if (rc >= 0)
        return rc;
    if (ctl_open(c, 0))
        return 1;
    if (run)
        return for_run(c, "retry", run);
    rc = queue_retry(c->db, id, "retry requested with dfewctl");
    if (rc == -ENOENT) {
        fprintf(stderr, "dfewctl retry: no job %lld\n", (long long)id);
        return 1;
    }
    if (rc == -EALREADY) {
        fprintf(stderr, "dfewctl retry: job %lld is done; there is nothing to retry\n", (long long)id);
        return 1;
    }
    if (rc == -EBUSY) {
        fprintf(stderr, "dfewctl retry: job %lld is still queued or running\n", (long long)id);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "dfewctl retry: %s\n", db_errmsg(c->db));
        return 1;
    }
    int up = ctl_wake(c);
    if (c->json)
        printf("{\"id\":%lld,\"state\":\"queued\",\"daemon_running\":%s}\n", (long long)id, up ? "true" : "false");
    else
        printf("job %lld queued again%s\n", (long long)id, up ? "" : " (dfewd is not running; it waits for it)");
    return 0;
}
