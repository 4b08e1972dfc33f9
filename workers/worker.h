/* The dfew-worker side of a job: the context a job handler gets and the table
 * of handlers, one per job kind (one file each: noop.c, probe.c, ...). A
 * handler reads its arguments, writes its outputs atomically, fills result
 * fields, and never touches the database. */
#ifndef DFEW_WORKER_H
#define DFEW_WORKER_H

#include <stdint.h>

#include "kv.h"

struct job_ctx {
    int64_t id;
    const char *kind;
    int attempt;
    int max_attempts;      /* 0: not known (an older dfewd) */
    const struct kv *args; /* from the job's JSON arguments */
    struct kv result;      /* fields of the "done" message */
    char error[2048];      /* for a failure: what is wrong and what to do */
    int retryable;         /* failure: 1 = transient (retry), 0 = permanent */
};

/* A number argument: def when absent; -EINVAL when not a number or outside
 * [lo, hi]. */
int job_arg_num(const struct job_ctx *ctx, const char *key, double def, double lo, double hi, double *out);

/* Fails the job because its arguments are wrong (permanently): "<kind>
 * job arguments: <what>; was this job queued by another dfew version?". */
int job_bad_arg(struct job_ctx *ctx, const char *what);

/* The threads the running job may use now (at least 1): its share of the
 * cores, which dfewd changes while the job runs as other jobs start and end. */
int job_threads(void);

/* Reports progress to the daemon (frac in 0..1; msg may be NULL). */
void job_progress(struct job_ctx *ctx, double frac, const char *msg);

/* 0 on success (result filled), negative errno on failure (error filled). */
typedef int (*job_handler)(struct job_ctx *ctx);

int job_noop(struct job_ctx *ctx);
int job_probe(struct job_ctx *ctx);
int job_fetch(struct job_ctx *ctx);
int job_prep(struct job_ctx *ctx);
int job_train(struct job_ctx *ctx);
int job_segment(struct job_ctx *ctx);
int job_tensor(struct job_ctx *ctx);

#endif
