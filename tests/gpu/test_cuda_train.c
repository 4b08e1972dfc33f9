/* test_cuda_train.c: the CUDA backend against the CPU backend through the
 * plugin ABI, on small 3D ResNet-18 and C3D models (C3D with dropout, whose
 * masks the CUDA backend draws exactly as the CPU does):
 *  - the same seed gives the same initial tensors (layout round trip);
 *  - one forward_backward per loss (CE, EC-STFL, EC-STFL-L1, center) on the
 *    uint8 input path: logits, loss parts, every gradient, the buffers after;
 *  - a single-class batch leaves EC-STFL inactive on both;
 *  - ten SGD steps follow the CPU backend's losses; evaluation after them,
 *    with a batch smaller than max_batch;
 *  - checkpoints move between the backends both ways;
 *  - TF32 and bf16 stay near fp32 and learn;
 *  - a full small training run (moving patterns, 7 classes) gives the same
 *    accuracy and UAR as the CPU backend within noise;
 *  - bad batches are refused with a message.
 * Prints every number it compares; exits 77 ("skipped: no CUDA device")
 * without a usable GPU, 1 on a mismatch. Usage: test_cuda_train [TMPDIR] */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "augment.h"
#include "cpu/backend.h"
#include "cuda/backend.h"
#include "host.h"
#include "metrics.h"
#include "patterns.h"
#include "refload.h"
#include "rng.h"

static const struct dfew_train_backend *cpu, *gpu;
static int failures, checks;
static char tmpdir[512];

static void note(const char *what, double e, double tol)
{
    checks++;
    int bad = !(e <= tol);
    failures += bad;
    printf("%s %-58s %.3g (tol %.1g)\n", bad ? "FAIL" : "ok  ", what, e, tol);
}

static double relerr(const float *got, const float *want, int64_t n) { return ref_relerr(got, want, n, 1e-6); }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void small_cfg(struct dfew_train_config *c, int arch, int loss)
{
    dfew_train_config_defaults(c);
    c->arch = arch;
    c->loss = loss;
    c->lambda = loss == DFEW_LOSS_ECSTFL ? 10.f : loss == DFEW_LOSS_CENTER ? 0.1f : 1.f;
    c->width = 0.125f;
    c->max_batch = 6;
    c->seed = 5;
    c->lr = 0.01f;
    if (arch == DFEW_ARCH_R3D18)
        c->in_t = 4, c->in_h = 32, c->in_w = 32;
    else
        c->in_t = 16, c->in_h = 16, c->in_w = 16, c->dropout = 0.5f;
}

static struct dfew_train_model *make(const struct dfew_train_backend *be, const struct dfew_train_config *c)
{
    struct dfew_train_model *m = NULL;
    char err[512];
    if (be->model_create(c, &m, err, sizeof err)) {
        printf("FAIL %s model_create: %s\n", be->name, err);
        failures++;
        return NULL;
    }
    return m;
}

static uint8_t *rand_clips(const struct dfew_train_config *c, int n, uint64_t seed)
{
    size_t bytes = (size_t)n * c->in_t * c->in_h * c->in_w * 3;
    uint8_t *u = malloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        u[i] = (uint8_t)rng_below(&seed, 256);
    return u;
}

static const char *arch_name(int a) { return a == DFEW_ARCH_R3D18 ? "r3d18" : "c3d"; }
static const char *loss_name(int l)
{
    static const char *n[] = {"ce", "ecstfl", "ecstfl_l1", "center"};
    return n[l];
}

/* every tensor (part) of a against b: the worst relative error and its name */
static double compare_tensors(const struct dfew_train_backend *ba, struct dfew_train_model *a,
                              const struct dfew_train_backend *bb, struct dfew_train_model *b, int kind, int part,
                              char *worst_name, size_t wlen)
{
    struct dfew_train_info info;
    ba->describe(a, &info);
    double worst = 0;
    snprintf(worst_name, wlen, "-");
    for (int64_t i = 0; i < info.num_tensors; i++) {
        struct dfew_train_tensor_info ti;
        ba->tensor_info(a, i, &ti);
        if (ti.kind != kind)
            continue;
        float *x = malloc(sizeof(float) * ti.numel), *y = malloc(sizeof(float) * ti.numel);
        int r1 = ba->tensor_read(a, i, part, x), r2 = bb->tensor_read(b, i, part, y);
        double e = r1 || r2 ? INFINITY : relerr(x, y, ti.numel);
        if (!(e <= worst)) {
            worst = e;
            snprintf(worst_name, wlen, "%s", ti.name);
        }
        free(x), free(y);
    }
    return worst;
}

/* NMSE of all the gradients of a against b taken as one vector: sums that
 * nearly cancel (batchnorm biases) make a per-tensor measure meaningless at
 * bf16 rounding, the whole gradient's direction and size are what training uses */
static double grad_nmse(const struct dfew_train_backend *be, struct dfew_train_model *a, struct dfew_train_model *b)
{
    struct dfew_train_info info;
    be->describe(a, &info);
    double num = 0, den = 0;
    for (int64_t i = 0; i < info.num_tensors; i++) {
        struct dfew_train_tensor_info ti;
        be->tensor_info(a, i, &ti);
        if (ti.kind != DFEW_TENSOR_PARAM)
            continue;
        float *x = malloc(sizeof(float) * ti.numel), *y = malloc(sizeof(float) * ti.numel);
        if (be->tensor_read(a, i, DFEW_PART_GRAD, x) || be->tensor_read(b, i, DFEW_PART_GRAD, y))
            num = INFINITY;
        for (int64_t k = 0; k < ti.numel; k++) {
            double d = (double)x[k] - y[k];
            num += d * d;
            den += (double)y[k] * y[k];
        }
        free(x), free(y);
    }
    return num == num && den > 0 ? num / den : INFINITY;
}

/* ------------------------------------------------------------ init */

static void test_init_equal(int arch)
{
    struct dfew_train_config c;
    small_cfg(&c, arch, DFEW_LOSS_CENTER); /* with the centres buffer */
    struct dfew_train_model *a = make(cpu, &c), *b = make(gpu, &c);
    if (!a || !b)
        goto out;
    char wn[80], what[160];
    double e = compare_tensors(cpu, a, gpu, b, DFEW_TENSOR_PARAM, DFEW_PART_VALUE, wn, sizeof wn);
    snprintf(what, sizeof what, "%s init: parameters equal (worst %s)", arch_name(arch), wn);
    note(what, e, 0);
    e = compare_tensors(cpu, a, gpu, b, DFEW_TENSOR_BUFFER, DFEW_PART_VALUE, wn, sizeof wn);
    snprintf(what, sizeof what, "%s init: buffers equal (worst %s)", arch_name(arch), wn);
    note(what, e, 0);
    struct dfew_train_info ia, ib;
    cpu->describe(a, &ia);
    gpu->describe(b, &ib);
    snprintf(what, sizeof what, "%s describe: cuda on \"%.60s\", %lld params (cpu %lld)", arch_name(arch), ib.device,
             (long long)ib.num_params, (long long)ia.num_params);
    note(what, (strcmp(ib.backend, "cuda") != 0) + (ib.device[0] == 0) + (ia.num_params != ib.num_params), 0);
out:
    if (a)
        cpu->destroy(a);
    if (b)
        gpu->destroy(b);
}

/* ------------------------------------------------------------ one step per loss */

static void test_fwd_bwd(int arch, int loss, int single_class)
{
    struct dfew_train_config c;
    small_cfg(&c, arch, loss);
    const int n = c.max_batch, K = c.num_classes;
    struct dfew_train_model *a = make(cpu, &c), *b = make(gpu, &c);
    uint8_t *u = rand_clips(&c, n, 100 + arch * 10 + loss);
    int32_t lab[64];
    for (int i = 0; i < n; i++)
        lab[i] = single_class ? 2 : i % 4;
    float la[64 * 16], lb[64 * 16];
    struct dfew_train_batch bt = {n, DFEW_INPUT_U8_NTHWC, u, lab};
    struct dfew_train_losses A, B;
    char what[200], wn[80];
    const char *tag = single_class ? " one-class" : "";
    if (!a || !b)
        goto out;
    if (cpu->forward_backward(a, &bt, &A, la) || gpu->forward_backward(b, &bt, &B, lb)) {
        printf("FAIL %s %s forward_backward: %s\n", arch_name(arch), loss_name(loss), gpu->last_error(b));
        failures++;
        goto out;
    }
    snprintf(what, sizeof what, "%s %s%s: logits", arch_name(arch), loss_name(loss), tag);
    note(what, relerr(lb, la, (int64_t)n * K), 1e-4);
    float pa[4] = {A.ce, A.aux, A.total, (float)A.aux_active}, pb[4] = {B.ce, B.aux, B.total, (float)B.aux_active};
    snprintf(what, sizeof what, "%s %s%s: loss parts (ce %.4f aux %.4f active %d)", arch_name(arch), loss_name(loss),
             tag, B.ce, B.aux, B.aux_active);
    note(what, relerr(pb, pa, 4), 1e-4);
    if (single_class && (loss == DFEW_LOSS_ECSTFL || loss == DFEW_LOSS_ECSTFL_L1)) {
        snprintf(what, sizeof what, "%s %s one-class: aux inactive on both", arch_name(arch), loss_name(loss));
        note(what, A.aux_active + B.aux_active, 0);
    }
    double e = compare_tensors(gpu, b, cpu, a, DFEW_TENSOR_PARAM, DFEW_PART_GRAD, wn, sizeof wn);
    snprintf(what, sizeof what, "%s %s%s: gradients (worst %s)", arch_name(arch), loss_name(loss), tag, wn);
    note(what, e, 2e-3);
    e = compare_tensors(gpu, b, cpu, a, DFEW_TENSOR_BUFFER, DFEW_PART_VALUE, wn, sizeof wn);
    snprintf(what, sizeof what, "%s %s%s: buffers after the step (worst %s)", arch_name(arch), loss_name(loss), tag, wn);
    note(what, e, 1e-4);
out:
    free(u);
    if (a)
        cpu->destroy(a);
    if (b)
        gpu->destroy(b);
}

/* ------------------------------------------------------------ ten SGD steps, then eval */

/* Parameters, momentum and eval probabilities of the two backends after `steps`
 * steps (eval on a batch smaller than max_batch: a new batch size for cuDNN). */
static void compare_models(struct dfew_train_model *a, struct dfew_train_model *b, const struct dfew_train_config *c,
                           const uint8_t *u, int steps, int checked)
{
    const int n = c->max_batch, K = c->num_classes, m = n - 2;
    char what[200], wn[80];
    double e = compare_tensors(gpu, b, cpu, a, DFEW_TENSOR_PARAM, DFEW_PART_VALUE, wn, sizeof wn);
    snprintf(what, sizeof what, "%s %s: parameters after %d steps (worst %s)", arch_name(c->arch), loss_name(c->loss),
             steps, wn);
    checked ? note(what, e, 2e-2) : (void)printf("     %-58s %.3g (not checked)\n", what, e);
    e = compare_tensors(gpu, b, cpu, a, DFEW_TENSOR_PARAM, DFEW_PART_MOMENTUM, wn, sizeof wn);
    snprintf(what, sizeof what, "%s %s: momentum after %d steps (worst %s)", arch_name(c->arch), loss_name(c->loss),
             steps, wn);
    checked ? note(what, e, 5e-2) : (void)printf("     %-58s %.3g (not checked)\n", what, e);
    float pa[64 * 16], pb[64 * 16], la[64 * 16], lb[64 * 16];
    struct dfew_train_batch bt = {m, DFEW_INPUT_U8_NTHWC, u, NULL};
    if (cpu->evaluate(a, &bt, pa, la) || gpu->evaluate(b, &bt, pb, lb)) {
        printf("FAIL evaluate: %s\n", gpu->last_error(b));
        failures++;
        return;
    }
    snprintf(what, sizeof what, "%s %s: eval probabilities after %d steps, batch %d of %d", arch_name(c->arch),
             loss_name(c->loss), steps, m, n);
    e = relerr(pb, pa, (int64_t)m * K);
    checked ? note(what, e, 1e-2) : (void)printf("     %-58s %.3g (not checked)\n", what, e);
}

static void test_sgd_steps(int arch, int loss)
{
    struct dfew_train_config c;
    small_cfg(&c, arch, loss);
    /* At this rate (chosen to move the losses visibly) r3d18 with EC-STFL is
     * chaotic: on an H200 its losses followed the CPU's to 4 digits for six
     * steps, then rounding differences grew (parameters 4% apart after ten).
     * So the state is compared strictly after three steps and the losses over
     * ten, which is what the issue asks: ten steps follow the CPU's losses. */
    c.lr = 0.02f;
    const int n = c.max_batch;
    struct dfew_train_model *a = make(cpu, &c), *b = make(gpu, &c);
    uint8_t *u0 = rand_clips(&c, n, 7), *u1 = rand_clips(&c, n, 8);
    int32_t lab0[64], lab1[64];
    for (int i = 0; i < n; i++)
        lab0[i] = i % 3, lab1[i] = (i + 1) % 5;
    float sa[10], sb[10];
    char what[200];
    if (!a || !b)
        goto out;
    for (int s = 0; s < 10; s++) {
        struct dfew_train_batch bt = {n, DFEW_INPUT_U8_NTHWC, s & 1 ? u1 : u0, s & 1 ? lab1 : lab0};
        struct dfew_train_losses A, B;
        if (cpu->train_step(a, &bt, &A) || gpu->train_step(b, &bt, &B)) {
            printf("FAIL train_step: %s\n", gpu->last_error(b));
            failures++;
            goto out;
        }
        sa[s] = A.total, sb[s] = B.total;
        if (s == 2)
            compare_models(a, b, &c, u1, 3, 1);
    }
    printf("     %s %s losses cpu:", arch_name(arch), loss_name(loss));
    for (int s = 0; s < 10; s++)
        printf(" %.4f", sa[s]);
    printf("\n     %s %s losses gpu:", arch_name(arch), loss_name(loss));
    for (int s = 0; s < 10; s++)
        printf(" %.4f", sb[s]);
    printf("\n");
    snprintf(what, sizeof what, "%s %s: ten SGD steps follow the CPU's losses", arch_name(arch), loss_name(loss));
    note(what, relerr(sb, sa, 10), 5e-3);
    compare_models(a, b, &c, u1, 10, 0);
out:
    free(u0), free(u1);
    if (a)
        cpu->destroy(a);
    if (b)
        gpu->destroy(b);
}

/* ------------------------------------------------------------ checkpoints */

static void test_checkpoints(int arch)
{
    struct dfew_train_config c;
    small_cfg(&c, arch, DFEW_LOSS_ECSTFL);
    const int n = c.max_batch, K = c.num_classes;
    struct dfew_train_model *g = make(gpu, &c), *a = make(cpu, &c), *g2 = NULL;
    uint8_t *u = rand_clips(&c, n, 31);
    int32_t lab[64];
    for (int i = 0; i < n; i++)
        lab[i] = i % 4;
    struct dfew_train_batch bt = {n, DFEW_INPUT_U8_NTHWC, u, lab}, be = {n, DFEW_INPUT_U8_NTHWC, u, NULL};
    struct dfew_train_losses L, L2;
    struct dfew_train_progress pr = {.epoch = 3, .step = 2, .lr = 0.02f}, pr2;
    char path[600], what[200], wn[80];
    float pa[64 * 16], pb[64 * 16];
    if (!g || !a)
        goto out;
    /* CUDA trains two steps and saves; the CPU loads and evaluates the same */
    for (int s = 0; s < 2; s++)
        if (gpu->train_step(g, &bt, &L)) {
            printf("FAIL train_step: %s\n", gpu->last_error(g));
            failures++;
            goto out;
        }
    snprintf(path, sizeof path, "%s/cuda-%s.ckpt", tmpdir, arch_name(arch));
    if (gpu->save(g, path, &pr) || cpu->load(a, path, &pr2)) {
        printf("FAIL checkpoint cuda -> cpu: %s / %s\n", gpu->last_error(g), cpu->last_error(a));
        failures++;
        goto out;
    }
    note("checkpoint cuda -> cpu: progress restored", (pr2.epoch != 3) + (pr2.step != 2) + (pr2.lr != 0.02f), 0);
    double e = compare_tensors(gpu, g, cpu, a, DFEW_TENSOR_PARAM, DFEW_PART_MOMENTUM, wn, sizeof wn);
    snprintf(what, sizeof what, "%s checkpoint cuda -> cpu: momentum equal (worst %s)", arch_name(arch), wn);
    note(what, e, 0);
    if (cpu->evaluate(a, &be, pa, NULL) || gpu->evaluate(g, &be, pb, NULL)) {
        failures++;
        goto out;
    }
    snprintf(what, sizeof what, "%s checkpoint cuda -> cpu: same predictions", arch_name(arch));
    note(what, relerr(pb, pa, (int64_t)n * K), 1e-3);
    /* the CPU trains on and saves; a fresh CUDA model loads it and both continue alike */
    if (cpu->train_step(a, &bt, &L)) {
        failures++;
        goto out;
    }
    snprintf(path, sizeof path, "%s/cpu-%s.ckpt", tmpdir, arch_name(arch));
    g2 = make(gpu, &c);
    if (!g2 || cpu->save(a, path, &pr) || gpu->load(g2, path, &pr2)) {
        printf("FAIL checkpoint cpu -> cuda: %s\n", g2 ? gpu->last_error(g2) : "no model");
        failures++;
        goto out;
    }
    e = compare_tensors(gpu, g2, cpu, a, DFEW_TENSOR_PARAM, DFEW_PART_VALUE, wn, sizeof wn);
    snprintf(what, sizeof what, "%s checkpoint cpu -> cuda: parameters equal (worst %s)", arch_name(arch), wn);
    note(what, e, 0);
    if (cpu->train_step(a, &bt, &L) || gpu->train_step(g2, &bt, &L2)) {
        failures++;
        goto out;
    }
    snprintf(what, sizeof what, "%s checkpoint cpu -> cuda: next step's loss (%.5f vs %.5f)", arch_name(arch), L2.total,
             L.total);
    note(what, fabs(L2.total - L.total) / fmax(fabs(L.total), 1e-6), 1e-4);
    /* a checkpoint of another model is refused and changes nothing */
    {
        struct dfew_train_config o;
        small_cfg(&o, arch == DFEW_ARCH_R3D18 ? DFEW_ARCH_C3D : DFEW_ARCH_R3D18, DFEW_LOSS_ECSTFL);
        struct dfew_train_model *other = make(gpu, &o);
        if (other) {
            int rc = gpu->load(other, path, NULL);
            snprintf(what, sizeof what, "checkpoint of another model refused (%.60s)", gpu->last_error(other));
            note(what, rc == 0, 0);
            gpu->destroy(other);
        }
    }
out:
    free(u);
    if (g)
        gpu->destroy(g);
    if (g2)
        gpu->destroy(g2);
    if (a)
        cpu->destroy(a);
}

/* ------------------------------------------------------------ TF32 and bf16 */

static void test_precisions(void)
{
    struct dfew_train_config c;
    small_cfg(&c, DFEW_ARCH_R3D18, DFEW_LOSS_ECSTFL);
    const int n = c.max_batch;
    uint8_t *u = rand_clips(&c, n, 55);
    int32_t lab[64];
    for (int i = 0; i < n; i++)
        lab[i] = i % 3;
    struct dfew_train_batch bt = {n, DFEW_INPUT_U8_NTHWC, u, lab};
    struct dfew_train_model *ref = make(gpu, &c);
    struct dfew_train_losses R;
    if (!ref || gpu->forward_backward(ref, &bt, &R, NULL)) {
        failures++;
        goto out;
    }
    static const char *pname[] = {"fp32", "tf32", "bf16"};
    static const double tol_loss[] = {0, 1e-2, 4e-2};
    for (int p = DFEW_PRECISION_TF32; p <= DFEW_PRECISION_BF16; p++) {
        struct dfew_train_config cp = c;
        cp.precision = p;
        struct dfew_train_model *m = make(gpu, &cp);
        struct dfew_train_losses L, first = {0}, last = {0};
        char what[200], wn[80];
        if (!m)
            continue;
        if (gpu->forward_backward(m, &bt, &L, NULL)) {
            printf("FAIL %s forward_backward: %s\n", pname[p], gpu->last_error(m));
            failures++;
            gpu->destroy(m);
            continue;
        }
        snprintf(what, sizeof what, "r3d18 %s: loss near fp32's (%.5f vs %.5f)", pname[p], L.total, R.total);
        note(what, fabs(L.total - R.total) / fabs(R.total), tol_loss[p]);
        /* The small model's gradient drift is printed; the full model's is
         * checked against PyTorch's own drift below (test_precision_drift). */
        double e = compare_tensors(gpu, m, gpu, ref, DFEW_TENSOR_PARAM, DFEW_PART_GRAD, wn, sizeof wn);
        printf("     r3d18 small %s: gradient NMSE to fp32 %.3g, worst tensor %s %.3g (not checked)\n", pname[p],
               grad_nmse(gpu, m, ref), wn, e);
        int bad = 0;
        for (int s = 0; s < 15; s++) {
            if (gpu->train_step(m, &bt, &L)) {
                bad = 1;
                break;
            }
            if (s == 0)
                first = L;
            last = L;
        }
        snprintf(what, sizeof what, "r3d18 %s: fifteen steps lower the loss (%.4f -> %.4f)", pname[p], first.total,
                 last.total);
        note(what, bad || !isfinite(last.total) || !(last.total < first.total), 0);
        gpu->destroy(m);
    }
out:
    free(u);
    if (ref)
        gpu->destroy(ref);
}

/* The full r3d18 (16 x 112 x 112, batch 4, cross entropy): how far TF32 and
 * bf16 gradients are from fp32, against how far PyTorch's are from its own
 * fp32 on torchvision's r3d_18 (tests/gpu/torch_grad_precision.py, passed in
 * by check.sh as DFEW_TORCH_GRAD_NMSE_TF32 / _BF16). Reduced precision must
 * not drift more than 3x PyTorch's. Without the numbers it only reports. */
static void test_precision_drift(void)
{
    struct dfew_train_config c;
    dfew_train_config_defaults(&c);
    c.arch = DFEW_ARCH_R3D18;
    c.loss = DFEW_LOSS_CE;
    c.max_batch = 4;
    c.seed = 9;
    const int n = c.max_batch;
    uint8_t *u = rand_clips(&c, n, 77);
    int32_t lab[64];
    for (int i = 0; i < n; i++)
        lab[i] = (i * 3) % 7;
    struct dfew_train_batch bt = {n, DFEW_INPUT_U8_NTHWC, u, lab};
    struct dfew_train_model *ref = make(gpu, &c);
    struct dfew_train_losses R;
    if (!ref || gpu->forward_backward(ref, &bt, &R, NULL)) {
        failures++;
        goto out;
    }
    static const char *pname[] = {"fp32", "tf32", "bf16"}, *envname[] = {"", "DFEW_TORCH_GRAD_NMSE_TF32",
                                                                          "DFEW_TORCH_GRAD_NMSE_BF16"};
    for (int p = DFEW_PRECISION_TF32; p <= DFEW_PRECISION_BF16; p++) {
        struct dfew_train_config cp = c;
        cp.precision = p;
        struct dfew_train_model *m = make(gpu, &cp);
        struct dfew_train_losses L;
        if (!m)
            continue;
        if (gpu->forward_backward(m, &bt, &L, NULL)) {
            printf("FAIL %s forward_backward: %s\n", pname[p], gpu->last_error(m));
            failures++;
            gpu->destroy(m);
            continue;
        }
        double ours = grad_nmse(gpu, m, ref);
        const char *env = getenv(envname[p]);
        char what[200];
        if (env && *env) {
            double torch = strtod(env, NULL);
            snprintf(what, sizeof what, "r3d18 full %s: gradient NMSE to fp32 %.3g, PyTorch's %.3g; ratio", pname[p],
                     ours, torch);
            note(what, torch > 0 ? ours / torch : INFINITY, 3.0);
        } else {
            printf("     r3d18 full %s: gradient NMSE to fp32 %.3g (no PyTorch baseline given; not checked)\n",
                   pname[p], ours);
        }
        gpu->destroy(m);
    }
out:
    free(u);
    if (ref)
        gpu->destroy(ref);
}

/* ------------------------------------------------------------ learning run */

#define LT 8
#define LH 20
#define LC 16
#define LK PATTERN_CLASSES
#define NTRAIN 210
#define NTEST 70
#define LBATCH 14

struct run_result {
    struct metrics mt;
    float first_loss, last_loss;
    double seconds;
};

static int train_run(const struct dfew_train_backend *be, const uint8_t *train, const int32_t *ytrain,
                     const uint8_t *test, const int32_t *ytest, int steps, struct run_result *out)
{
    const size_t clip = (size_t)LT * LH * LH * 3, crop = (size_t)LT * LC * LC * 3;
    struct dfew_train_config c;
    dfew_train_config_defaults(&c);
    c.width = 1.f / 16, c.in_t = LT, c.in_h = LC, c.in_w = LC, c.max_batch = LBATCH, c.lr = 0.02f, c.seed = 7;
    c.threads = 1; /* the CPU backend's fastest for these small layers (test_train_learn.c) */
    struct dfew_train_model *m = make(be, &c);
    if (!m)
        return -1;
    uint8_t *batch = malloc(crop * LBATCH);
    int32_t lab[LBATCH], pred[LBATCH], order[NTRAIN];
    for (int i = 0; i < NTRAIN; i++)
        order[i] = i;
    uint64_t aug = 11;
    double t0 = now();
    int step = 0, rc = 0;
    while (step < steps && !rc) {
        for (int i = NTRAIN - 1; i > 0; i--) {
            int j = (int)rng_below(&aug, (uint32_t)(i + 1)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (int b0 = 0; b0 + LBATCH <= NTRAIN && step < steps; b0 += LBATCH, step++) {
            for (int i = 0; i < LBATCH; i++) {
                augment_clip(batch + i * crop, train + order[b0 + i] * clip, LT, LH, LH, LC, LC, 0, &aug, NULL);
                lab[i] = ytrain[order[b0 + i]];
            }
            struct dfew_train_batch b = {LBATCH, DFEW_INPUT_U8_NTHWC, batch, lab};
            struct dfew_train_losses L;
            if ((rc = be->train_step(m, &b, &L)) != 0) {
                printf("FAIL %s train_step: %s\n", be->name, be->last_error(m));
                break;
            }
            if (step == 0)
                out->first_loss = L.total;
            out->last_loss = L.total;
        }
    }
    int64_t conf[LK * LK] = {0};
    for (int b0 = 0; b0 < NTEST && !rc; b0 += LBATCH) {
        for (int i = 0; i < LBATCH; i++)
            center_crop_clip(batch + i * crop, test + (b0 + i) * clip, LT, LH, LH, LC, LC);
        struct dfew_train_batch b = {LBATCH, DFEW_INPUT_U8_NTHWC, batch, NULL};
        float probs[LBATCH * LK];
        if ((rc = be->evaluate(m, &b, probs, NULL)) != 0)
            break;
        metrics_predict(pred, probs, LBATCH, LK);
        metrics_confusion_add(conf, ytest + b0, pred, LBATCH, LK);
    }
    metrics_from_confusion(&out->mt, conf, LK);
    out->seconds = now() - t0;
    be->destroy(m);
    free(batch);
    return rc;
}

static void test_learning_run(void)
{
    const size_t clip = (size_t)LT * LH * LH * 3;
    uint8_t *train = malloc(clip * NTRAIN), *test = malloc(clip * NTEST);
    int32_t ytrain[NTRAIN], ytest[NTEST];
    uint64_t rng = 2020;
    for (int i = 0; i < NTRAIN; i++)
        pattern_clip(train + i * clip, ytrain[i] = i % LK, LT, LH, LH, &rng);
    for (int i = 0; i < NTEST; i++)
        pattern_clip(test + i * clip, ytest[i] = i % LK, LT, LH, LH, &rng);
    struct run_result rc_, rg_;
    memset(&rc_, 0, sizeof rc_);
    memset(&rg_, 0, sizeof rg_);
    const int steps = 225; /* 15 epochs of 15 batches */
    int e1 = train_run(cpu, train, ytrain, test, ytest, steps, &rc_);
    int e2 = train_run(gpu, train, ytrain, test, ytest, steps, &rg_);
    printf("     learning run, %d steps: cpu WAR %.3f UAR %.3f loss %.3f -> %.3f (%.1f s); "
           "cuda WAR %.3f UAR %.3f loss %.3f -> %.3f (%.1f s)\n",
           steps, rc_.mt.war, rc_.mt.uar, rc_.first_loss, rc_.last_loss, rc_.seconds, rg_.mt.war, rg_.mt.uar,
           rg_.first_loss, rg_.last_loss, rg_.seconds);
    note("learning run: both backends ran", (e1 != 0) + (e2 != 0), 0);
    note("learning run: |WAR cuda - WAR cpu|", fabs(rg_.mt.war - rc_.mt.war), 0.1);
    note("learning run: |UAR cuda - UAR cpu|", fabs(rg_.mt.uar - rc_.mt.uar), 0.1);
    note("learning run: cuda test accuracy below 0.85 by", fmax(0, 0.85 - rg_.mt.war), 0);
    free(train), free(test);
}

/* ------------------------------------------------------------ refusals */

static void test_refusals(void)
{
    struct dfew_train_config c;
    small_cfg(&c, DFEW_ARCH_R3D18, DFEW_LOSS_CE);
    struct dfew_train_model *m = make(gpu, &c);
    if (!m)
        return;
    uint8_t *u = rand_clips(&c, c.max_batch + 1, 3);
    int32_t lab[64] = {0};
    struct dfew_train_batch big = {c.max_batch + 1, DFEW_INPUT_U8_NTHWC, u, lab};
    struct dfew_train_losses L;
    int rc = gpu->train_step(m, &big, &L);
    char what[200];
    snprintf(what, sizeof what, "batch above max_batch refused: %.70s", gpu->last_error(m));
    note(what, !(rc == -EINVAL && strstr(gpu->last_error(m), "max_batch")), 0);
    lab[1] = c.num_classes;
    struct dfew_train_batch badlab = {2, DFEW_INPUT_U8_NTHWC, u, lab};
    rc = gpu->train_step(m, &badlab, &L);
    snprintf(what, sizeof what, "label out of range refused: %.70s", gpu->last_error(m));
    note(what, !(rc == -EINVAL && strstr(gpu->last_error(m), "outside")), 0);
    struct dfew_train_config bad = c;
    bad.precision = 7;
    struct dfew_train_model *x = NULL;
    char err[512] = "";
    rc = gpu->model_create(&bad, &x, err, sizeof err);
    snprintf(what, sizeof what, "unknown precision refused: %.70s", err);
    note(what, !(rc == -EINVAL && x == NULL), 0);
    free(u);
    gpu->destroy(m);
}

int main(int argc, char **argv)
{
    cpu = dfew_train_cpu_backend();
    gpu = dfew_train_cuda_backend();
    struct dfew_train_device dev;
    if (gpu->device_probe(&dev) != 1) {
        printf("skipped: no CUDA device (%s)\n", dev.name);
        return 77;
    }
    printf("device: %s, %d SMs, %.1f GiB\n", dev.name, dev.compute_units, dev.memory_bytes / 1073741824.0);
    const char *base = argc > 1 ? argv[1] : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/dfew-cuda-test-XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "cannot make a temporary directory under %s: %s\n", base, strerror(errno));
        return 1;
    }
    for (int arch = 0; arch < 2; arch++)
        test_init_equal(arch);
    for (int arch = 0; arch < 2; arch++)
        for (int loss = 0; loss < 4; loss++)
            test_fwd_bwd(arch, loss, 0);
    test_fwd_bwd(DFEW_ARCH_R3D18, DFEW_LOSS_ECSTFL, 1);
    test_fwd_bwd(DFEW_ARCH_R3D18, DFEW_LOSS_ECSTFL_L1, 1);
    test_sgd_steps(DFEW_ARCH_R3D18, DFEW_LOSS_CE);
    test_sgd_steps(DFEW_ARCH_R3D18, DFEW_LOSS_ECSTFL);
    test_sgd_steps(DFEW_ARCH_C3D, DFEW_LOSS_CE);
    for (int arch = 0; arch < 2; arch++)
        test_checkpoints(arch);
    test_precisions();
    test_precision_drift();
    test_refusals();
    test_learning_run();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("cuda train: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
