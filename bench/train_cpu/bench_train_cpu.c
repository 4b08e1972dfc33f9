/* bench_train_cpu.c: times training steps (forward, backward, SGD) of the
 * CPU backend on the full 3D ResNet-18 (or C3D) at 3 x 16 x 112 x 112 and
 * reports each step's seconds with the convolutions' share per direction
 * (forward, backward-data, backward-weights, their reorders included), the
 * median, and the peak resident memory; first the instruction set oneDNN
 * dispatches to, the activation layout the model chose and the
 * implementations oneDNN runs. The comparison with PyTorch is run.sh's job.
 * Not a test. The convolution implementation and layout follow
 * DFEW_TRAIN_CPU_CONV / DFEW_TRAIN_CPU_LAYOUT (workers/train/README.md);
 * it links the backend statically and reads the model's conv counters.
 * Usage: bench_train_cpu [--arch r3d18|c3d] [--batch 4] [--steps 5] [--threads 0]
 *                        [--width 1] [--loss ce|ecstfl]
 * (--steps 0: only the description: ISA, layout, implementations) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>

#include "backend.h"
#include "conv_dnnl.h"
#include "host.h"
#include "model.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* "jit:avx2 x17, x64:gemm:jit x3" of one direction's implementations over
 * the model's convs (dir 0 fwd, 1 bwd_d, 2 bwd_w) from conv3d_dnnl_describe */
static void impl_counts(struct dfew_train_model *m, int dir, char *out, size_t len)
{
    char names[MODEL_MAX_UNITS][64];
    int counts[MODEL_MAX_UNITS], k = 0, padded = 0;
    static const char *tag[3] = {"fwd ", "bwd_w ", "bwd_d "}; /* the order describe lists them */
    static const int order[3] = {0, 2, 1};
    for (int i = 0; i < m->nunits; i++) {
        char d[256], nm[64];
        if (conv3d_dnnl_describe(&m->ws, &m->units[i].cs, m->units[i].b >= 0, d, sizeof d))
            continue;
        const char *p = strstr(d, tag[order[dir]]);
        if (!p || sscanf(p + strlen(tag[order[dir]]), "%63[^ ,]", nm) != 1)
            continue;
        const char *pad = strstr(p, "(padded input");
        if (dir == 2 && pad && (!strchr(p, ',') || pad < strchr(p, ',')))
            padded++;
        int j = 0;
        while (j < k && strcmp(names[j], nm))
            j++;
        if (j == k)
            snprintf(names[k], sizeof names[k], "%s", nm), counts[k++] = 0;
        counts[j]++;
    }
    size_t o = 0;
    out[0] = 0;
    for (int j = 0; j < k && o < len; j++)
        o += snprintf(out + o, len - o, "%s%s x%d", j ? ", " : "", names[j], counts[j]);
    if (padded && o < len)
        snprintf(out + o, len - o, " (%d on a zero-padded input copy)", padded);
}

int main(int argc, char **argv)
{
    /* OpenBLAS chose its kernels when this program was loaded: when it could
     * not know this CPU, run again with OPENBLAS_CORETYPE set (see host.h) */
    if (train_openblas_coretype_env()) {
        execv("/proc/self/exe", argv);
        perror("re-executing with OPENBLAS_CORETYPE set");
    }
    struct dfew_train_config cfg;
    dfew_train_config_defaults(&cfg);
    int batch = 4, steps = 5;
    cfg.loss = DFEW_LOSS_CE;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--arch"))
            cfg.arch = !strcmp(argv[i + 1], "c3d") ? DFEW_ARCH_C3D : DFEW_ARCH_R3D18;
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            cfg.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--width"))
            cfg.width = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--loss"))
            cfg.loss = !strcmp(argv[i + 1], "ecstfl") ? DFEW_LOSS_ECSTFL : DFEW_LOSS_CE;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (steps < 0 || steps > 1000 || batch < 1) {
        fprintf(stderr, "--steps must be 0..1000 and --batch positive\n");
        return 2;
    }
    cfg.max_batch = batch;
    const struct dfew_train_backend *be = dfew_train_cpu_backend();
    struct dfew_train_model *m;
    char err[512];
    if (be->model_create(&cfg, &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct dfew_train_info info;
    be->describe(m, &info);
    size_t n = (size_t)batch * cfg.in_t * cfg.in_h * cfg.in_w * 3;
    uint8_t *u = malloc(n);
    uint64_t s = 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        u[i] = (uint8_t)(s >> 56);
    }
    int32_t *lab = malloc(sizeof(int32_t) * batch);
    for (int i = 0; i < batch; i++)
        lab[i] = i % cfg.num_classes;
    struct dfew_train_batch b = {batch, DFEW_INPUT_U8_NTHWC, u, lab};
    double *t = malloc(sizeof(double) * (steps + 1));
    printf("OpenBLAS: %s\n", openblas_get_config());
    printf("ours: %s, %lld parameters, batch %d, %dx%dx%d, params+grads+momentum %.0f MB, activations %.0f MB, "
           "conv workspace %.1f MB\n",
           info.arch, (long long)info.num_params, batch, cfg.in_t, cfg.in_h, cfg.in_w, info.param_bytes / 1e6,
           info.activation_bytes / 1e6, info.workspace_bytes / 1e6);
    printf("device: %s\n", info.device); /* says which convolution ran (DFEW_TRAIN_CPU_CONV) */
    if (m->ws.impl == CONV3D_DNNL) {
        char isa[32], impl[3][256];
        conv3d_dnnl_isa(isa, sizeof isa);
        for (int d = 0; d < 3; d++)
            impl_counts(m, d, impl[d], sizeof impl[d]);
        printf("oneDNN isa: %s; layout: %s (%s)\n", isa, conv3d_layout_name(&m->ws), m->layout_note);
        printf("oneDNN fwd: %s\noneDNN bwd_d: %s\noneDNN bwd_w: %s\n", impl[0], impl[1], impl[2]);
    } else {
        printf("conv3d: the reference (vol2col + OpenBLAS), layout %s\n", conv3d_layout_name(&m->ws));
    }
    for (int i = 0; i < steps; i++) {
        struct timespec a, z;
        struct dfew_train_losses L;
        double *cs = m->ws.seconds;
        cs[0] = cs[1] = cs[2] = 0;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (be->train_step(m, &b, &L)) {
            fprintf(stderr, "train_step: %s\n", be->last_error(m));
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &z);
        t[i] = (z.tv_sec - a.tv_sec) + (z.tv_nsec - a.tv_nsec) * 1e-9;
        printf("ours step %d: %.3f s (loss %.4f; conv fwd %.3f bwd_d %.3f bwd_w %.3f s)\n", i, t[i], L.total, cs[0],
               cs[1], cs[2]);
        fflush(stdout);
    }
    if (steps) {
        qsort(t, steps, sizeof *t, cmp);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("ours median %.3f s, peak RSS %.0f MB\n", t[steps / 2], ru.ru_maxrss / 1024.0);
    }
    be->destroy(m);
    free(u), free(lab), free(t);
    return 0;
}
