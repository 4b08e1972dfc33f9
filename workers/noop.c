/* The noop job: does nothing, on purpose. It measures the queue (bench/) and
 * drives failure tests: sleep_ms=N waits, fail=transient|permanent fails,
 * fail_attempts=K fails only the first K attempts. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "worker.h"

int job_noop(struct job_ctx *ctx)
{
    int64_t sleep_ms = 0, fail_attempts = -1;
    kv_get_i64(ctx->args, "sleep_ms", &sleep_ms);
    kv_get_i64(ctx->args, "fail_attempts", &fail_attempts);
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
