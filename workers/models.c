/* The worker's dlib models (see models.h). */
#include "models.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
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

/* The models are loaded once per worker process: by the preload thread
 * (dfewd's --preload, while the worker waits for its first job) or by the
 * first job that needs them; a job waits for a preload under way. */
static pthread_mutex_t models_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t preload_th;
static bool preload_started;

static int load_models(const char *path, char *err, size_t errlen, int64_t job)
{
    int rc;
    if (!models.det && (rc = dlibc_detector_new(&models.det, err, errlen)) != 0)
        return rc;
    if (models.sp && !strcmp(models.sp_path, path))
        return 0;
    dlibc_predictor_free(models.sp);
    free(models.sp_path);
    models.sp = NULL;
    models.sp_path = NULL;
    double t0 = mono_s();
    /* through the flat cache dfewd names (HOME/cache): a second worker, or
     * this one after a restart, maps it instead of deserialising dlib's */
    if ((rc = dlibc_predictor_open_cached(path, getenv("DFEW_CACHE_DIR"), &models.sp, err, errlen)) != 0)
        return rc;
    models.sp_path = xstrdup(path);
    log_info(job, "landmark model %s loaded in %.2f s (dlib %s)%s", path, mono_s() - t0, dlibc_version(),
             job ? "" : " before the first job");
    return 0;
}

static void *preload_thread(void *arg)
{
    char *path = arg, err[1024] = "";
    pthread_mutex_lock(&models_mu);
    if (load_models(path, err, sizeof err, 0) != 0) /* the first job that needs them says why */
        log_warn(0, "cannot load the models before the first job: %s", err);
    pthread_mutex_unlock(&models_mu);
    free(path);
    return NULL;
}

void worker_models_preload(const char *path)
{
    char *p = xstrdup(path && *path ? path : DFEW_LANDMARK_MODEL);
    if (preload_started || pthread_create(&preload_th, NULL, preload_thread, p) != 0) {
        free(p);
        return;
    }
    preload_started = true;
}

void worker_models_join_preload(void)
{
    /* joinable, not detached: a worker told to quit while dlib still reads
     * its model would otherwise run exit's destructors under that thread
     * (ASan caught the SEGV at a drain right after start) */
    if (preload_started)
        pthread_join(preload_th, NULL);
    preload_started = false;
}

int worker_models(struct job_ctx *ctx, const char *path, struct dlibc_detector **det, struct dlibc_predictor **sp)
{
    char err[1024] = "";
    if (!path || !*path)
        path = DFEW_LANDMARK_MODEL;
    pthread_mutex_lock(&models_mu);
    int rc = load_models(path, err, sizeof err, ctx->id);
    *det = models.det;
    *sp = models.sp;
    pthread_mutex_unlock(&models_mu);
    if (rc && !models.det) {
        snprintf(ctx->error, sizeof ctx->error, "%s", err);
        return rc;
    }
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error,
                 "%s; install Debian's libdlib-data (scripts/setup-deps.sh), then 'dfewctl retry %lld' (a model "
                 "elsewhere: [prep] landmark_model in dfew.conf, for jobs queued after the change)",
                 err, (long long)ctx->id);
        ctx->retryable = rc == -ENOMEM;
        return rc;
    }
    return 0;
}
