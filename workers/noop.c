/* The noop job: does nothing, on purpose. It measures the queue (bench/) and
 * drives failure tests: sleep_ms=N waits, fail=transient|permanent fails,
 * fail_attempts=K fails only the first K attempts, progress=N first reports
 * N progress steps 10 ms apart. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "worker.h"

int job_noop(struct job_ctx *ctx)
{
    int64_t sleep_ms = 0, fail_attempts = -1, steps = 0;
    kv_get_i64(ctx->args, "sleep_ms", &sleep_ms);
    kv_get_i64(ctx->args, "fail_attempts", &fail_attempts);
    kv_get_i64(ctx->args, "progress", &steps);
    for (int64_t i = 1; i <= steps; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "step %lld of %lld", (long long)i, (long long)steps);
        job_progress(ctx, (double)i / (double)(steps + 1), msg);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (sleep_ms > 0) {
        struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    const char *fail = kv_get(ctx->args, "fail");
    if (fail && (fail_attempts < 0 || ctx->attempt <= fail_attempts)) {
        ctx->retryable = strcmp(fail, "permanent") != 0;
        snprintf(ctx->error, sizeof ctx->error, "noop asked to fail (%s) on attempt %d", fail, ctx->attempt);
        return -EIO;
    }
    kv_setf(&ctx->result, "slept_ms", "%lld", (long long)sleep_ms);
    kv_setf(&ctx->result, "attempt", "%d", ctx->attempt);
    return 0;
}
