/* The dlib models of a worker process: the face detector and the 68-point
 * landmark model, loaded before the first job (--preload) or by the first
 * job that needs them (the landmark model takes about a second) and kept
 * for the life of the worker. Shared by the prep and segment jobs. */
#ifndef DFEW_WORKER_MODELS_H
#define DFEW_WORKER_MODELS_H

#include "dlibc.h"
#include "worker.h"

/* Loads the default detector and the landmark model at path on a thread of
 * its own, while the worker waits for its first job (dfew-worker --preload). */
void worker_models_preload(const char *path);
/* Waits for a preload under way: the worker calls it before it returns from
 * main(), so that exit's destructors never run under a loading thread. */
void worker_models_join_preload(void);
/* Fills *det and *sp (the landmark model at path; NULL: the default).
 * 0, or a negative errno with ctx->error saying what to do. */
int worker_models(struct job_ctx *ctx, const char *path, struct dlibc_detector **det, struct dlibc_predictor **sp);

#endif
