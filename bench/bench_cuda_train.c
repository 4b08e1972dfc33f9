/* bench_cuda_train.c: training throughput of the CUDA backend: the full 3D
 * ResNet-18 (r3d_18 shapes, 7 classes) at batch 24, 3 x 16 x 112 x 112,
 * train_step (uint8 upload + normalisation on the device, forward, CE loss,
 * backward, SGD with momentum and weight decay) in each precision. Warm-up
 * steps (cuDNN algorithm search) first, then rounds of timed steps ended by a
 * device synchronisation; the median round gives clips/s. Also the device
 * memory the model takes: its own allocations (parameters, gradients,
 * momentum, activations, workspace) and the growth of the device's used
 * memory from before the model to after the timed steps. The PyTorch baseline
 * is bench/bench_torch_r3d18.py, run beside it by tests/gpu/check.sh.
 * One JSON object per precision on stdout (and a readable line on stderr).
 * Usage: bench_cuda_train [--precisions fp32,tf32,bf16] [--batch 24]
 *        [--frames 16] [--size 112] [--warmup 4] [--steps 8] [--rounds 3]
 *        [--loss ce|ecstfl] */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/backend.h"
#include "host.h"
#include "rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run(const struct dfew_train_backend *be, const char *prec_name, int prec, int batch, int frames, int size,
               int warmup, int steps, int rounds, int loss)
{
    size_t free0 = 0, total = 0, free1 = 0;
    cudaDeviceSynchronize();
    cudaMemGetInfo(&free0, &total);
    struct dfew_train_config cfg;
    dfew_train_config_defaults(&cfg);
    cfg.max_batch = batch, cfg.in_t = frames, cfg.in_h = cfg.in_w = size;
    cfg.loss = loss, cfg.lambda = loss == DFEW_LOSS_ECSTFL ? 10.f : 0.f;
    cfg.precision = prec;
    struct dfew_train_model *m = NULL;
    char err[512];
    double t_create = now();
    if (be->model_create(&cfg, &m, err, sizeof err)) {
        fprintf(stderr, "bench_cuda_train %s: %s\n", prec_name, err);
        printf("{\"impl\": \"dfew-cuda\", \"precision\": \"%s\", \"error\": \"model_create failed\"}\n", prec_name);
        return 1;
    }
    t_create = now() - t_create;
    const size_t clip = (size_t)frames * size * size * 3;
    uint8_t *u = malloc(clip * batch);
    uint64_t seed = 42;
    for (size_t i = 0; i < clip * batch; i += 8) {
        uint64_t r = rng_next(&seed);
        memcpy(u + i, &r, clip * batch - i < 8 ? clip * batch - i : 8);
    }
    int32_t lab[1024];
    for (int i = 0; i < batch; i++)
        lab[i] = i % cfg.num_classes;
    struct dfew_train_batch b = {batch, DFEW_INPUT_U8_NTHWC, u, lab};
    struct dfew_train_losses L;
    int rc = 0;
    double t_warm = now();
    for (int s = 0; s < warmup && !rc; s++)
        rc = be->train_step(m, &b, &L);
    cudaDeviceSynchronize();
    t_warm = now() - t_warm;
    double *rate = calloc(rounds, sizeof(double));
    for (int r = 0; r < rounds && !rc; r++) {
        double t0 = now();
        for (int s = 0; s < steps && !rc; s++)
            rc = be->train_step(m, &b, &L);
        cudaError_t e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            fprintf(stderr, "bench_cuda_train: device error %s\n", cudaGetErrorString(e));
            rc = -1;
        }
        rate[r] = steps * batch / (now() - t0);
    }
    if (rc) {
        fprintf(stderr, "bench_cuda_train %s: train_step failed: %s\n", prec_name, be->last_error(m));
        printf("{\"impl\": \"dfew-cuda\", \"precision\": \"%s\", \"error\": \"train_step failed\"}\n", prec_name);
        be->destroy(m);
        free(u), free(rate);
        return 1;
    }
    cudaMemGetInfo(&free1, &total);
    struct dfew_train_info info;
    be->describe(m, &info);
    qsort(rate, rounds, sizeof(double), cmp_double);
    double med = rate[rounds / 2], own = (double)(info.param_bytes + info.activation_bytes + info.workspace_bytes);
    double used = free0 > free1 ? (double)(free0 - free1) : 0;
    fprintf(stderr,
            "dfew-cuda %-5s %s: %.1f clips/s (median of %d rounds of %d steps; min %.1f max %.1f), loss %.4f, "
            "own memory %.2f GiB (params %.2f, activations %.2f, workspace %.2f), device used +%.2f GiB, create "
            "%.1f s, warm-up %.1f s\n",
            prec_name, info.device, med, rounds, steps, rate[0], rate[rounds - 1], L.total, own / 1073741824.0,
            info.param_bytes / 1073741824.0, info.activation_bytes / 1073741824.0,
            info.workspace_bytes / 1073741824.0, used / 1073741824.0, t_create, t_warm);
    /* the convolution policy the environment chose (layers.cu reads the same variables) */
    const char *api = getenv("DFEW_CUDA_CONV_API"), *fc = getenv("DFEW_CUDA_FP32_CONV");
    const char *cf = getenv("DFEW_CUDA_CONV_NCDHW");
    char variant[64];
    snprintf(variant, sizeof variant, "%s%s%s", api && *api ? api : "legacy", fc && !strcmp(fc, "fast") ? "+fast" : "",
             cf && !strcmp(cf, "1") ? "+ncdhw" : "");
    printf("{\"impl\": \"dfew-cuda\", \"variant\": \"%s\", \"precision\": \"%s\", \"device\": \"%s\", \"batch\": %d, \"clips_per_s\": %.2f, "
           "\"clips_per_s_min\": %.2f, \"clips_per_s_max\": %.2f, \"rounds\": %d, \"steps\": %d, \"loss\": %.5f, "
           "\"mem_own_bytes\": %.0f, \"mem_used_delta_bytes\": %.0f, \"param_bytes\": %lld, \"activation_bytes\": %lld, "
           "\"workspace_bytes\": %lld, \"create_s\": %.2f, \"warmup_s\": %.2f}\n",
           variant, prec_name, info.device, batch, med, rate[0], rate[rounds - 1], rounds, steps, L.total, own, used,
           (long long)info.param_bytes, (long long)info.activation_bytes, (long long)info.workspace_bytes, t_create,
           t_warm);
    fflush(stdout);
    be->destroy(m);
    free(u), free(rate);
    return 0;
}

int main(int argc, char **argv)
{
    const char *precs = "fp32,tf32,bf16";
    int batch = 24, frames = 16, size = 112, warmup = 4, steps = 8, rounds = 3, loss = DFEW_LOSS_CE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "%s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--precisions"))
            precs = v;
        else if (!strcmp(a, "--batch"))
            batch = atoi(v);
        else if (!strcmp(a, "--frames"))
            frames = atoi(v);
        else if (!strcmp(a, "--size"))
            size = atoi(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(a, "--loss"))
            loss = !strcmp(v, "ecstfl") ? DFEW_LOSS_ECSTFL : DFEW_LOSS_CE;
        else {
            fprintf(stderr, "unknown option %s (see the comment at the top of bench_cuda_train.c)\n", a);
            return 2;
        }
        i++;
    }
    if (batch < 1 || batch > 1024 || rounds < 1 || steps < 1 || warmup < 0) {
        fprintf(stderr, "bad sizes\n");
        return 2;
    }
    const struct dfew_train_backend *be = dfew_train_cuda_backend();
    struct dfew_train_device dev;
    if (be->device_probe(&dev) != 1) {
        fprintf(stderr, "skipped: no CUDA device (%s)\n", dev.name);
        return 77;
    }
    cudaFree(0); /* the context exists before the first measurement */
    int failed = 0;
    char list[128];
    snprintf(list, sizeof list, "%s", precs);
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int prec = !strcmp(p, "fp32") ? DFEW_PRECISION_FP32 : !strcmp(p, "tf32") ? DFEW_PRECISION_TF32
                                                           : !strcmp(p, "bf16") ? DFEW_PRECISION_BF16 : -1;
        if (prec < 0) {
            fprintf(stderr, "unknown precision %s (fp32, tf32, bf16)\n", p);
            return 2;
        }
        failed += run(be, p, prec, batch, frames, size, warmup, steps, rounds, loss) != 0;
    }
    return failed ? 1 : 0;
}
