/* The job queue: every job state and every transition between them, in one
 * place (beanstalkd style). The rows live in the jobs table; every transition
 * appends an events row in the same transaction.
 *
 *   queued --lease--> leased --complete--> done
 *     ^                 |  \--fail(retryable, attempts left)--> failed
 *     |                 |  \--fail(permanent or no attempts left)--> dead
 *     |                 \--release (worker died, drain, lease expired)--> queued
 *     |                                   (or dead when that used the last attempt)
 *     +--promote (backoff over)-- failed
 *   queued | leased | failed --cancel--> cancelled
 *   dead | failed | cancelled --retry--> queued (attempts start again)
 *
 * The daemon does lease, renew, complete, fail, release, expire and promote;
 * dfewctl does enqueue (submit), cancel and retry. Workers never touch it. */
#ifndef DFEW_QUEUE_H
#define DFEW_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

enum job_state { JOB_QUEUED, JOB_LEASED, JOB_DONE, JOB_FAILED, JOB_DEAD, JOB_CANCELLED, JOB_STATE_COUNT };

const char *job_state_name(enum job_state s);
int job_state_parse(const char *s, enum job_state *out);
/* done, dead and cancelled are final until someone runs `dfewctl retry`. */
int job_state_final(enum job_state s);

/* Job kinds this build knows. */
#define JOB_KINDS_HELP "noop, probe, fetch, prep, segment, tensor, train"
int job_kind_known(const char *kind);

struct queue_policy {
    double lease_s;      /* lease length; the daemon renews while a worker is busy */
    int max_attempts;    /* for new jobs */
    double retry_base_s; /* backoff after attempt 1; doubles per attempt */
    double retry_max_s;  /* backoff cap */
};

struct job_spec {
    const char *kind;
    int64_t movie_id;      /* 0: none */
    int64_t clip_id;       /* 0: none */
    const char *args_json; /* NULL: {} */
    int priority;          /* higher runs first */
    const char *dedup_key; /* NULL: never deduplicated */
    int max_attempts;      /* 0: 3 */
};

/* Adds a job in state queued. Returns 1 and the new id, or 0 and the id of the
 * existing job when dedup_key is already taken (nothing is added). */
int queue_enqueue(struct db *db, const struct job_spec *spec, const char *why, int64_t *id);

struct leased_job {
    int64_t id;
    char kind[32];
    char token[33];
    int attempt;         /* 1-based */
    int max_attempts;
    int64_t movie_id, clip_id;
    char *args_json;     /* owned; free with leased_job_free */
};
void leased_job_free(struct leased_job *j);

/* Leases the highest-priority, oldest ready job whose kind is not in
 * exclude_json (a JSON array of kind names, or NULL). -ENOENT when none. */
int queue_lease(struct db *db, const struct queue_policy *p, const char *owner, const char *exclude_json,
                struct leased_job *out);
/* The same for a slot that runs one kind only (dfewd's trainer slots): the
 * highest-priority, oldest ready job of that kind. -ENOENT when none. */
int queue_lease_kind(struct db *db, const struct queue_policy *p, const char *owner, const char *kind,
                     struct leased_job *out);
/* Pushes the lease's expiry out by lease_s. -ESTALE when the lease is no longer ours. */
int queue_renew(struct db *db, const struct queue_policy *p, int64_t id, const char *token);
/* leased -> done with the result (a JSON object). -ESTALE when the lease is
 * no longer ours (expired, cancelled): the result is then not recorded. */
int queue_complete(struct db *db, int64_t id, const char *token, const char *result_json);
/* leased -> failed (retry after backoff) or dead (permanent, or no attempts left).
 * *out_state, when given, says which. */
int queue_fail(struct db *db, const struct queue_policy *p, int64_t id, const char *token, const char *error,
               int retryable, enum job_state *out_state);
/* leased -> queued. count_attempt = 0 gives the attempt back (drain);
 * 1 keeps it used (the worker died: the job may be what killed it), and a job
 * with no attempts left becomes dead instead. */
int queue_release(struct db *db, int64_t id, const char *token, const char *why, int count_attempt,
                  enum job_state *out_state);
/* Releases leases that expired before now (count_attempt = 1). */
int queue_expire_leases(struct db *db, double now, int *released);
/* At daemon start-up: every lease belongs to a daemon that is gone. */
int queue_release_stale(struct db *db, const char *why, int *released);
/* The same for every lease but those of owner (jobs a new dfewd adopted). */
int queue_release_stale_except(struct db *db, const char *owner, const char *why, int *released);
/* At dfewd's start-up, for jobs that outlive it (Slurm jobs): takes over the
 * lease a previous dfewd held on job id with token, now held by owner and
 * renewed; out as a lease fills it (attempt: the one running). -ESTALE when
 * the job is no longer leased with that token (cancelled, expired, done). */
int queue_adopt(struct db *db, const struct queue_policy *p, const char *owner, int64_t id, const char *token,
                struct leased_job *out);
/* failed jobs whose backoff is over -> queued. */
int queue_promote_due(struct db *db, double now, int *promoted);
/* queued | leased | failed -> cancelled. -EALREADY when already final. */
int queue_cancel(struct db *db, int64_t id, const char *why, enum job_state *prev);
/* dead | failed | cancelled -> queued with attempts reset. -EALREADY for done,
 * -EBUSY for queued or leased. */
int queue_retry(struct db *db, int64_t id, const char *why);
/* Progress of a leased job (0..1 and a short message). */
int queue_progress(struct db *db, int64_t id, const char *token, double frac, const char *msg);
/* The earliest future time at which a failed job becomes due, a delayed job
 * becomes ready or a lease expires; 0 when there is none. */
int queue_next_wake(struct db *db, double now, double *when);
/* Backoff before attempt n+1 after attempt n (n >= 1) failed. */
double queue_backoff(const struct queue_policy *p, int attempts_used);
int queue_state_of(struct db *db, int64_t id, enum job_state *state);

#endif
