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
    if (d->draining || d->shutting_down)
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
        if (rc) {
            log_error(0, "cannot lease a job: %s (%s); trying again shortly", strerror(-rc), db_errmsg(d->db));
            retry = 0.5;
            break;
        }
        pool_dispatch(w, &job);
    }
    arm_wake(d, retry);
}

/* Renews the leases of the busy workers' jobs (and writes their pending
 * progress); stops a worker whose lease is gone. Returns the renewals that
 * failed. */
static int renew_leases(struct daemon *d)
{
    int failed = 0;
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state != W_BUSY || !w->has_job)
            continue;
        flush_progress(w);
        int rc = queue_renew(d->db, &d->policy, w->job.id, w->job.token);
        if (rc == -ESTALE) {
            log_warn(w->job.id, "lease on the job is gone (cancelled or expired); stopping worker %d", w->slot);
            pool_kill(w, KILL_LEASE_LOST);
        } else if (rc) {
            log_warn(w->job.id, "cannot renew the lease: %s", db_errmsg(d->db));
            failed++;
        }
    }
    return failed;
}

static void on_renew(uv_timer_t *t) { renew_leases(t->data); }

/* Something was due (a backoff ended, a lease expired) or the safety-net
 * sweep fired: settle it, then look for work. */
static void on_wake(uv_timer_t *t)
{
    struct daemon *d = t->data;
    int n = 0;
    /* Our running jobs' leases first: after their renewals failed (a full
     * disk, a database locked too long) they may look expired, and the
     * expiry would give a job that still runs here to another worker. While
     * a renewal fails, expiry waits (it writes the same database). */
    if (renew_leases(d) == 0 && queue_expire_leases(d->db, now_s(), &n) == 0 && n)
        log_warn(0, "%d expired lease(s) returned to the queue", n);
    if (queue_promote_due(d->db, now_s(), &n) == 0 && n)
        log_debug(0, "%d failed job(s) back in the queue after their backoff", n);
    sched_kick(d);
}

static void on_sweep(uv_timer_t *t) { on_wake(t); }

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

void sched_job_finished(struct worker *w, const char *verb, const struct kv *fields)
{
    struct daemon *d = w->d;
    struct leased_job *job = &w->job;
    double took = now_s() - w->job_started;
    if (!strcmp(verb, "done")) {
        char *result = result_json_from_fields(fields);
        int recorded = 1;
        int rc = db_begin(d->db);
        if (!rc) {
            rc = queue_complete(d->db, job->id, job->token, result);
            char rerr[512] = "";
            if (!rc && (rc = record_result(d, job, result, rerr, sizeof rerr)) != 0) {
                char why[1024];
                snprintf(why, sizeof why, "the result could not be recorded: %s", rerr[0] ? rerr : db_errmsg(d->db));
                db_rollback(d->db);
                log_error(job->id, "%s", why);
                queue_fail(d->db, &d->policy, job->id, job->token, why, 1, NULL);
                d->jobs_failed++;
                recorded = 0;
            } else if (!rc) {
                rc = db_commit(d->db);
                if (rc)
                    db_rollback(d->db);
            } else {
                db_rollback(d->db);
            }
        }
        if (!recorded) {
            /* logged and failed above */
        } else if (rc == 0) {
            d->jobs_done++;
            log_info(job->id, "%s done in %.3f s", job->kind, took);
        } else if (rc == -ESTALE) {
            log_warn(job->id, "%s finished after its lease was lost (cancelled or expired); result not recorded",
                     job->kind);
        } else {
            log_error(job->id, "recording the %s result failed: %s; the lease will expire and the job run again",
                      job->kind, strerror(-rc));
        }
        free(result);
    } else {
        const char *err = kv_get(fields, "error");
        const char *retry = kv_get(fields, "retry");
        enum job_state to = JOB_FAILED;
        int rc = queue_fail(d->db, &d->policy, job->id, job->token, err ? err : "(no reason given)",
                            !retry || strcmp(retry, "0"), &to);
        d->jobs_failed++;
        if (rc == -ESTALE)
            log_warn(job->id, "%s failed after its lease was lost; nothing recorded", job->kind);
        else if (rc)
            log_error(job->id, "recording the failure failed: %s", strerror(-rc));
        else
            log_msg(to == JOB_DEAD ? LOG_ERROR : LOG_WARN, job->id, "%s %s after %.3f s (attempt %d of %d): %s",
                    job->kind, job_state_name(to), took, job->attempt, job->max_attempts,
                    err ? err : "(no reason)");
    }
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
    if (!d->draining || d->shutting_down || pool_alive(d) > 0)
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
    d->wake_timer.data = d->renew_timer.data = d->sweep_timer.data = d->drain_timer.data = d;
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
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
}
