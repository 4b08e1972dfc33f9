/* The worker's dlib models (see models.h). */
#include "models.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "util.h"

static struct {
    struct dlibc_detector *det;
    struct dlibc_predictor *sp;
    char *sp_path;
} models;

int worker_models(struct job_ctx *ctx, const char *path, struct dlibc_detector **det, struct dlibc_predictor **sp)
{
    char err[1024] = "";
    int rc;
    if (!path || !*path)
        path = DFEW_LANDMARK_MODEL;
    if (!models.det && (rc = dlibc_detector_new(&models.det, err, sizeof err)) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "%s", err);
        return rc;
    }
    if (!models.sp || strcmp(models.sp_path, path)) {
        dlibc_predictor_free(models.sp);
        free(models.sp_path);
        models.sp = NULL;
        models.sp_path = NULL;
        double t0 = mono_s();
        /* through the flat cache dfewd names (HOME/cache): a second worker, or
         * this one after a restart, maps it instead of deserialising dlib's */
        rc = dlibc_predictor_open_cached(path, getenv("DFEW_CACHE_DIR"), &models.sp, err, sizeof err);
        if (rc) {
            snprintf(ctx->error, sizeof ctx->error,
                     "%s; install Debian's libdlib-data (scripts/setup-deps.sh), then 'dfewctl retry %lld' (a model "
                     "elsewhere: [prep] landmark_model in dfew.conf, for jobs queued after the change)",
                     err, (long long)ctx->id);
            ctx->retryable = rc == -ENOMEM;
            return rc;
        }
        models.sp_path = xstrdup(path);
        log_info(ctx->id, "landmark model %s loaded in %.2f s (dlib %s)", path, mono_s() - t0, dlibc_version());
    }
    *det = models.det;
    *sp = models.sp;
    return 0;
}
