/* The scheduler: which job goes to which idle worker, and when to look again.
 * It leases from the queue, records results, renews the leases of busy
 * workers, wakes up exactly when a backoff ends or a lease expires (no
 * polling), and drains on SIGTERM. Every state change goes through queue.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"

static void on_wake(uv_timer_t *t);
static void flush_progress(struct worker *w);
static void record_pending(struct daemon *d, int busy_ms);
static int renew_late(struct daemon *d);
static int renew_kept(struct daemon *d, int all);

/* How long dfewd's loop waits for the database's write lock when it
 * records what a worker reported: it tries again later rather than block. */
#define RECORD_BUSY_MS 100
#define RECORD_RETRY_MS 250

/* A JSON array of the kinds a general worker must not lease: those at their
 * concurrency limit, and train when trainer slots run them. */
static char *excluded_kinds(struct daemon *d)
{
    struct sbuf b = {0};
    int n = 0;
    for (size_t i = 0; i < d->cfg.limits.n; i++) {
        const char *kind = d->cfg.limits.v[i].key;
        if (!strcmp(kind, "train") && pool_trainer_target(d) > 0) {
            sbuf_add(&b, n++ ? "," : "[");
            sbuf_add_json_str(&b, kind);
            continue;
        }
        int limit = config_limit(&d->cfg, kind);
        if (limit <= 0)
            continue;
        int running = 0;
        for (int k = 0; k < d->nworkers; k++)
            if (d->workers[k]->has_job && !strcmp(d->workers[k]->job.kind, kind))
                running++;
        if (running >= limit) {
            sbuf_add(&b, n++ ? "," : "[");
            sbuf_add_json_str(&b, kind);
        }
    }
    if (!n)
        return NULL;
    sbuf_add(&b, "]");
    return sbuf_take(&b);
}

static void arm_wake(struct daemon *d, double retry_in_s)
{
    double now = now_s(), when = 0;
    if (retry_in_s > 0) {
        when = now + retry_in_s;
    } else if (queue_next_wake(d->db, now, &when) != 0) {
        when = now + 1.0; /* database busy: look again soon */
    }
    if (when <= 0) {
        uv_timer_stop(&d->wake_timer);
        return;
    }
    double delay = when - now;
    if (delay < 0)
        delay = 0;
    uv_timer_start(&d->wake_timer, on_wake, (uint64_t)ceil(delay * 1000) + 1, 0);
}

void sched_kick(struct daemon *d)
{
    if (d->draining || d->shutting_down || d->starting)
        return;
    double retry = 0;
    int empty[2] = {0, 0}; /* nothing left for general workers, for trainer slots */
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state != W_IDLE || w->retiring || w->quit_sent || empty[w->trainer])
            continue;
        struct leased_job job;
        int rc;
        if (w->trainer) {
            rc = queue_lease_kind(d->db, &d->policy, d->owner, "train", &job);
        } else {
            char *exclude = excluded_kinds(d);
            rc = queue_lease(d->db, &d->policy, d->owner, exclude, &job);
            free(exclude);
        }
        if (rc == -ENOENT) {
            empty[w->trainer] = 1;
            continue;
        }
        if (rc == -EBUSY) {
            log_debug(0, "the database is busy (another process writes); leasing again shortly");
            retry = 0.5;
            break;
        }
        if (rc) {
            log_error(0, "cannot lease a job: %s (%s); trying again shortly", strerror(-rc), db_errmsg(d->db));
            retry = 0.5;
            break;
        }
        pool_dispatch(w, &job);
    }
    arm_wake(d, retry);
}

/* Something was due (a backoff ended, a lease expired) or the safety-net
 * sweep fired: settle it, then look for work. */
static void on_wake(uv_timer_t *t)
{
    struct daemon *d = t->data;
    int n = 0;
    /* Results and running jobs first: a lease that could not be renewed
     * while another process held the database (or the disk was full) is
     * not ours to lose. While one of our renewals still fails, expiry waits:
     * it would give a job that still runs here to another worker. */
    if (d->pending)
        record_pending(d, RECORD_BUSY_MS);
    int late = renew_late(d);
    double now = now_s();
    if (late)
        log_debug(0, "%d of our leases could not be renewed; expired leases stay until they are", late);
    else if (queue_expire_leases(d->db, now, &n) == 0 && n)
        log_warn(0, "%d expired lease(s) returned to the queue", n);
    if (queue_promote_due(d->db, now, &n) == 0 && n)
        log_debug(0, "%d failed job(s) back in the queue after their backoff", n);
    sched_kick(d);
}

static void on_sweep(uv_timer_t *t) { on_wake(t); }

/* Pushes out the leases of kept results (all, or those not renewed for
 * half a lease) and of running jobs the renew timer could not renew on time
 * because the database was held: before expired leases go back to the
 * queue, those that are ours are renewed. */
static int renew_kept(struct daemon *d, int all)
{
    double now = now_s();
    int failed = 0;
    for (struct pending_result *p = d->pending; p; p = p->next) {
        if (!all && now - p->renewed_at < d->policy.lease_s / 2)
            continue;
        int rc = queue_renew(d->db, &d->policy, p->job.id, p->job.token);
        if (rc == 0)
            p->renewed_at = now;
        else if (rc != -ESTALE)
            failed++;
    }
    return failed;
}

/* Returns how many of the late renewals failed (the lease gone counts as
 * settled: the renew timer stops that worker). */
static int renew_late(struct daemon *d)
{
    double now = now_s();
    int failed = renew_kept(d, 0);
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state != W_BUSY || !w->has_job || now - w->lease_renewed_at < d->policy.lease_s / 2)
            continue;
        int rc = queue_renew(d->db, &d->policy, w->job.id, w->job.token);
        if (rc == 0)
            w->lease_renewed_at = now;
        else if (rc != -ESTALE)
            failed++;
    }
    return failed;
}

static void on_renew(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (d->pending) {
        record_pending(d, RECORD_BUSY_MS);
        renew_kept(d, 1);
    }
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state != W_BUSY || !w->has_job)
            continue;
        flush_progress(w);
        int rc = queue_renew(d->db, &d->policy, w->job.id, w->job.token);
        if (rc == 0)
            w->lease_renewed_at = now_s();
        if (rc == -ESTALE) {
            log_warn(w->job.id, "lease on the job is gone (cancelled or expired); stopping worker %d", w->slot);
            pool_kill(w, KILL_LEASE_LOST);
        } else if (rc) {
            log_warn(w->job.id, "cannot renew the lease now: %s%s", db_errmsg(d->db),
                     rc == -EBUSY ? " (another process holds the database; renewed when it is free)" : "");
        }
    }
}

static void job_release_slot(struct worker *w)
{
    free(w->pending_msg);
    w->pending_msg = NULL;
    w->pending_frac = -1;
    leased_job_free(&w->job);
    memset(&w->job, 0, sizeof w->job);
    w->has_job = 0;
    w->threads = 0;
    pool_share_threads(w->d); /* the jobs still running may use its cores */
}


/* Records a finished job's result: the job done and its domain rows, in one
 * transaction. -EBUSY when another process holds the database (nothing was
 * written: try again later); other outcomes are settled and logged here. */
static int record_done(struct daemon *d, struct leased_job *job, const char *result, double took, int busy_ms)
{
    db_busy_timeout(d->db, busy_ms);
    int recorded = 1;
    char rerr[512] = "";
    int rc = db_begin(d->db);
    if (!rc) {
        rc = queue_complete(d->db, job->id, job->token, result);
        if (!rc && (rc = record_result(d, job, result, rerr, sizeof rerr)) != 0) {
            db_rollback(d->db);
            if (rc != -EBUSY) {
                char why[1024];
                snprintf(why, sizeof why, "the result could not be recorded: %s", rerr[0] ? rerr : db_errmsg(d->db));
                log_error(job->id, "%s", why);
                queue_fail(d->db, &d->policy, job->id, job->token, why, 1, NULL);
                d->jobs_failed++;
                recorded = 0;
            }
        } else if (!rc) {
            rc = db_commit(d->db);
            if (rc)
                db_rollback(d->db);
        } else {
            db_rollback(d->db);
        }
    }
    db_busy_timeout(d->db, -1);
    if (!recorded || rc == -EBUSY)
        return recorded ? rc : 0;
    if (rc == 0) {
        d->jobs_done++;
        log_info(job->id, "%s done in %.3f s", job->kind, took);
    } else if (rc == -ESTALE) {
        log_warn(job->id, "%s finished after its lease was lost (cancelled or expired); result not recorded",
                 job->kind);
    } else {
        log_error(job->id, "recording the %s result failed: %s; the lease will expire and the job run again",
                  job->kind, strerror(-rc));
    }
    return 0;
}

/* Records a failure the worker reported; -EBUSY as record_done. */
static int record_fail(struct daemon *d, struct leased_job *job, const char *err, int retryable, double took,
                       int busy_ms)
{
    db_busy_timeout(d->db, busy_ms);
    enum job_state to = JOB_FAILED;
    int rc = queue_fail(d->db, &d->policy, job->id, job->token, err, retryable, &to);
    db_busy_timeout(d->db, -1);
    if (rc == -EBUSY)
        return rc;
    d->jobs_failed++;
    if (rc == -ESTALE)
        log_warn(job->id, "%s failed after its lease was lost; nothing recorded", job->kind);
    else if (rc)
        log_error(job->id, "recording the failure failed: %s", strerror(-rc));
    else
        log_msg(to == JOB_DEAD ? LOG_ERROR : LOG_WARN, job->id, "%s %s after %.3f s (attempt %d of %d): %s",
                job->kind, job_state_name(to), took, job->attempt, job->max_attempts, err);
    if (!rc && to == JOB_DEAD)
        record_dead_fetch(d, job);
    return 0;
}

static int record_kept(struct daemon *d, struct pending_result *p, int busy_ms)
{
    return p->failed ? record_fail(d, &p->job, p->result, p->retryable, p->took_s, busy_ms)
                     : record_done(d, &p->job, p->result, p->took_s, busy_ms);
}

static void pending_free(struct pending_result *p)
{
    leased_job_free(&p->job);
    free(p->result);
    free(p);
}

static void on_record_timer(uv_timer_t *t);

/* Records the kept results in the order they came; the record timer comes
 * back while some are left. busy_ms: how long each may wait for the lock. */
static void record_pending(struct daemon *d, int busy_ms)
{
    while (d->pending) {
        struct pending_result *p = d->pending;
        p->tries++;
        if (record_kept(d, p, busy_ms) == -EBUSY)
            break; /* still held: the others would wait too */
        log_info(p->job.id, "the kept %s %s was recorded %.1f s after it arrived (%d tries)", p->job.kind,
                 p->failed ? "failure" : "result", now_s() - p->kept_at, p->tries);
        d->pending = p->next;
        pending_free(p);
    }
    if (d->pending && !d->shutting_down)
        uv_timer_start(&d->record_timer, on_record_timer, RECORD_RETRY_MS, 0);
    else
        uv_timer_stop(&d->record_timer);
}

static void on_record_timer(uv_timer_t *t)
{
    struct daemon *d = t->data;
    record_pending(d, RECORD_BUSY_MS);
    if (!d->pending) {
        sched_maybe_finish(d);
        sched_kick(d);
    }
}

/* Keeps what a worker reported while the database could not take it; the
 * record timer records it, and its lease is renewed meanwhile. Takes the
 * job and text. */
static void keep_result(struct daemon *d, struct leased_job *job, int failed, char *text, int retryable, double took)
{
    struct pending_result *p = xcalloc(1, sizeof *p);
    p->job = *job;
    memset(job, 0, sizeof *job);
    p->failed = failed;
    p->result = text;
    p->retryable = retryable;
    p->took_s = took;
    p->kept_at = p->renewed_at = now_s();
    struct pending_result **pp = &d->pending;
    while (*pp)
        pp = &(*pp)->next;
    *pp = p;
    log_warn(p->job.id,
             "the database is busy (another process holds its write lock); the %s %s is kept until the database is "
             "free and recorded then",
             p->job.kind, failed ? "failure" : "result");
    if (!uv_is_active((uv_handle_t *)&d->record_timer))
        uv_timer_start(&d->record_timer, on_record_timer, RECORD_RETRY_MS, 0);
}

int sched_pending_results(const struct daemon *d)
{
    int n = 0;
    for (const struct pending_result *p = d->pending; p; p = p->next)
        n++;
    return n;
}

void sched_job_finished(struct worker *w, const char *verb, const struct kv *fields)
{
    struct daemon *d = w->d;
    struct leased_job *job = &w->job;
    double took = now_s() - w->job_started;
    int failed = strcmp(verb, "done") != 0, retryable = 0, rc = 0;
    char *text;
    if (!failed) {
        text = result_json_from_fields(fields);
    } else {
        const char *err = kv_get(fields, "error"), *retry = kv_get(fields, "retry");
        text = xstrdup(err ? err : "(no reason given)");
        retryable = !retry || strcmp(retry, "0");
    }
    /* Kept results go first: a job's report never overtakes an older one. */
    if (!d->pending)
        rc = failed ? record_fail(d, job, text, retryable, took, RECORD_BUSY_MS)
                    : record_done(d, job, text, took, RECORD_BUSY_MS);
    if (d->pending || rc == -EBUSY)
        keep_result(d, job, failed, text, retryable, took);
    else
        free(text);
    job_release_slot(w);
    w->state = W_IDLE;
    sched_kick(d);
}

void sched_job_lost(struct worker *w, const char *why, int count_attempt)
{
    struct daemon *d = w->d;
    enum job_state to = JOB_QUEUED;
    int rc = queue_release(d->db, w->job.id, w->job.token, why, count_attempt, &to);
    if (rc == -ESTALE)
        log_info(w->job.id, "%s (the job was no longer ours: cancelled or expired)", why);
    else if (rc)
        log_error(w->job.id, "cannot requeue after '%s': %s; its lease will expire", why, strerror(-rc));
    else {
        d->jobs_requeued++;
        log_msg(to == JOB_DEAD ? LOG_ERROR : LOG_WARN, w->job.id, "%s; job %s", why,
                to == JOB_DEAD ? "is dead (no attempts left)" : "requeued");
        if (to == JOB_DEAD)
            record_dead_fetch(d, &w->job);
    }
    job_release_slot(w);
    sched_kick(d);
}

static void write_progress(struct worker *w, double frac, const char *msg)
{
    w->last_progress_db = now_s();
    queue_progress(w->d->db, w->job.id, w->job.token, frac, msg);
}

/* Progress of a running job: written at most once a second per job; a
 * report that comes sooner is kept and written by the next report or the
 * next lease renewal, so the last word of a job that then goes quiet (a
 * long epoch) is not lost. */
void sched_progress(struct worker *w, const struct kv *fields)
{
    double frac = 0;
    if (kv_get_double(fields, "frac", &frac))
        return;
    const char *msg = kv_get(fields, "msg");
    free(w->pending_msg);
    w->pending_msg = NULL;
    w->pending_frac = -1;
    if (now_s() - w->last_progress_db < 1.0 && frac < 1.0) {
        w->pending_frac = frac;
        w->pending_msg = msg ? xstrdup(msg) : NULL;
        return;
    }
    write_progress(w, frac, msg);
}

static void flush_progress(struct worker *w)
{
    if (w->pending_frac >= 0 && w->has_job)
        write_progress(w, w->pending_frac, w->pending_msg);
    free(w->pending_msg);
    w->pending_msg = NULL;
    w->pending_frac = -1;
}

static void on_drain_deadline(uv_timer_t *t)
{
    struct daemon *d = t->data;
    int busy = 0;
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state == W_BUSY || w->state == W_SPAWNING || (w->state == W_IDLE && w->quit_sent)) {
            busy += w->state == W_BUSY;
            pool_kill(w, KILL_DRAIN);
        }
    }
    if (busy)
        log_warn(0, "drain deadline reached: stopped %d running job(s); they go back to the queue", busy);
    if (d->pending) {
        /* A last try that may wait as long as any other write; a result
         * still not recorded is not lost: its job keeps its lease, which
         * the next dfewd releases at start-up, and runs again. */
        record_pending(d, -1);
        for (struct pending_result *p; (p = d->pending);) {
            log_error(p->job.id, "stopping: the database is still busy; the %s %s was not recorded and the job "
                                 "runs again when dfewd starts", p->job.kind, p->failed ? "failure" : "result");
            d->pending = p->next;
            pending_free(p);
        }
        sched_maybe_finish(d);
    }
}

void sched_start_drain(struct daemon *d, const char *why)
{
    if (d->draining) {
        log_info(0, "%s again: stopping running jobs now", why);
        uv_timer_start(&d->drain_timer, on_drain_deadline, 0, 0);
        return;
    }
    d->draining = 1;
    int busy = 0;
    for (int i = 0; i < d->nworkers; i++)
        busy += d->workers[i]->state == W_BUSY;
    log_info(0, "%s: draining; %d running job(s) may finish within %.0f s, nothing new starts", why, busy,
             d->cfg.drain_s);
    uv_timer_stop(&d->wake_timer);
    uv_timer_stop(&d->sweep_timer);
    for (int i = 0; i < d->nworkers; i++)
        uv_timer_stop(&d->workers[i]->respawn_timer);
    uv_timer_start(&d->drain_timer, on_drain_deadline, (uint64_t)(d->cfg.drain_s * 1000), 0);
    pool_quit_idle(d);
    sched_maybe_finish(d);
}

void sched_maybe_finish(struct daemon *d)
{
    if (!d->draining || d->shutting_down || pool_alive(d) > 0 || d->pending)
        return;
    d->shutting_down = 1;
    log_info(0, "all workers stopped; %llu job(s) done, %llu failed, %llu requeued since start; exiting",
             (unsigned long long)d->jobs_done, (unsigned long long)d->jobs_failed,
             (unsigned long long)d->jobs_requeued);
    sched_close(d);
    ctlsock_close(d);
    pool_close(d);
}

void sched_apply_config(struct daemon *d)
{
    d->policy.lease_s = d->cfg.lease_s;
    d->policy.max_attempts = d->cfg.max_attempts;
    d->policy.retry_base_s = d->cfg.retry_base_s;
    d->policy.retry_max_s = d->cfg.retry_max_s;
    uint64_t renew_ms = (uint64_t)(d->cfg.lease_s * 1000 / 3);
    uv_timer_start(&d->renew_timer, on_renew, renew_ms, renew_ms);
    uint64_t sweep_ms = (uint64_t)(d->cfg.sweep_s * 1000);
    if (!d->draining)
        uv_timer_start(&d->sweep_timer, on_sweep, sweep_ms, sweep_ms);
}

int sched_init(struct daemon *d)
{
    uv_timer_init(&d->loop, &d->wake_timer);
    uv_timer_init(&d->loop, &d->renew_timer);
    uv_timer_init(&d->loop, &d->sweep_timer);
    uv_timer_init(&d->loop, &d->drain_timer);
    uv_timer_init(&d->loop, &d->record_timer);
    d->wake_timer.data = d->renew_timer.data = d->sweep_timer.data = d->drain_timer.data = d;
    d->record_timer.data = d;
    sched_apply_config(d);
    return 0;
}

int sched_recover(struct daemon *d)
{
    /* Only one dfewd runs per home (the lock), so any lease left in the
     * database belongs to a daemon that is gone. */
    int n = 0;
    int rc = queue_release_stale(d->db, "the daemon that leased it stopped without finishing it", &n);
    if (rc)
        return rc;
    if (n)
        log_warn(0, "%d job(s) leased by a previous dfewd went back to the queue", n);
    return 0;
}

void sched_close(struct daemon *d)
{
    uv_close((uv_handle_t *)&d->wake_timer, NULL);
    uv_close((uv_handle_t *)&d->renew_timer, NULL);
    uv_close((uv_handle_t *)&d->sweep_timer, NULL);
    uv_close((uv_handle_t *)&d->drain_timer, NULL);
    uv_close((uv_handle_t *)&d->record_timer, NULL);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
}
