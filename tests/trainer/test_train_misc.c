/* test_train_misc.c: the trainer's pieces around the model: UAR / WAR /
 * per-class recall against scikit-learn's values (metrics_ref.txt, written by
 * make_reference.py), pooling folds, the plateau schedule, augmentation,
 * uint8 input normalisation, determinism, the single-class EC-STFL batch
 * through the model, checkpoints (exact resume, refusal of corrupt or
 * mismatched files) and the plugin loader (the real dfew-train-cpu.so by
 * dlopen; a module with a wrong api_version is refused).
 * Usage: test_train_misc REFDIR CPU_MODULE.so BAD_ABI_MODULE.so TMPDIR */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "augment.h"
#include "backend.h"
#include "check.h"
#include "conv_dnnl.h"
#include "host.h"
#include "metrics.h"
#include "plateau.h"
#include "rng.h"

static const char *refdir, *cpu_so, *bad_so, *tmpdir;
static const struct dfew_train_backend *be;

static void test_metrics_vs_sklearn(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics_ref.txt", refdir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char line[256];
    CHECK(fgets(line, sizeof line, f) != NULL); /* comment */
    int n, k, cases = 0;
    int64_t pooled[7 * 7] = {0}, total_correct = 0, total = 0;
    while (fscanf(f, "%d %d", &n, &k) == 2) {
        int32_t *t = malloc(sizeof(int32_t) * n), *p = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++)
            CHECK(fscanf(f, "%d", &t[i]) == 1);
        for (int i = 0; i < n; i++)
            CHECK(fscanf(f, "%d", &p[i]) == 1);
        double uar, war, rec[16];
        CHECK(fscanf(f, "%lf %lf", &uar, &war) == 2);
        for (int j = 0; j < k; j++)
            CHECK(fscanf(f, "%lf", &rec[j]) == 1);
        int64_t conf[16 * 16] = {0};
        CHECK(metrics_confusion_add(conf, t, p, n, k) == 0);
        struct metrics m;
        metrics_from_confusion(&m, conf, k);
        CHECK(fabs(m.uar - uar) < 1e-6);
        CHECK(fabs(m.war - war) < 1e-6);
        for (int j = 0; j < k; j++)
            CHECK(fabs(m.recall[j] - rec[j]) < 1e-6);
        if (k == 7) {
            metrics_confusion_add(pooled, t, p, n, k);
            total_correct += m.correct;
            total += m.total;
        }
        free(t), free(p);
        cases++;
    }
    fclose(f);
    CHECK_EQ_INT(cases, 5);
    /* pooled folds: WAR of the pooled matrix = all correct / all clips */
    struct metrics pm;
    metrics_from_confusion(&pm, pooled, 7);
    CHECK_EQ_INT(pm.total, total);
    CHECK(fabs(pm.war - (double)total_correct / total) < 1e-6);
    /* a label out of range is refused and adds nothing */
    int32_t bt[2] = {0, 9}, bp[2] = {0, 0};
    int64_t c2[49] = {0};
    CHECK(metrics_confusion_add(c2, bt, bp, 2, 7) == -EINVAL);
    CHECK(c2[0] == 0);
    /* argmax */
    float pr[2 * 3] = {0.1f, 0.7f, 0.2f, 0.5f, 0.2f, 0.3f};
    int32_t pred[2];
    metrics_predict(pred, pr, 2, 3);
    CHECK(pred[0] == 1 && pred[1] == 0);
}

static void test_plateau(void)
{
    struct plateau_cfg c = {.patience = 2, .threshold = 1e-4f, .factor = 0.1f, .min_lr = 1e-6f};
    float best = INFINITY, lr = 0.01f;
    int bad = 0;
    lr = plateau_step(&c, &best, &bad, 1.0f, lr); /* improves */
    CHECK(lr == 0.01f && best == 1.0f && bad == 0);
    lr = plateau_step(&c, &best, &bad, 0.99995f, lr); /* below the relative threshold: not better */
    CHECK(lr == 0.01f && bad == 1);
    lr = plateau_step(&c, &best, &bad, 1.2f, lr);
    CHECK(lr == 0.01f && bad == 2);
    lr = plateau_step(&c, &best, &bad, 1.1f, lr); /* third bad epoch > patience: / 10 */
    CHECK(fabsf(lr - 0.001f) < 1e-9f && bad == 0);
    lr = plateau_step(&c, &best, &bad, 0.5f, lr);
    CHECK(fabsf(lr - 0.001f) < 1e-9f && best == 0.5f);
    for (int i = 0; i < 30; i++)
        lr = plateau_step(&c, &best, &bad, 0.6f, lr);
    CHECK(fabsf(lr - 1e-6f) < 1e-12f); /* floored at min_lr */
}

static void test_augment(void)
{
    int t = 2, h = 6, w = 5;
    uint8_t src[2 * 6 * 5 * 3], a[2 * 4 * 3 * 3], b[2 * 4 * 3 * 3];
    for (int i = 0; i < (int)sizeof src; i++)
        src[i] = (uint8_t)i;
    uint64_t r1 = 9, r2 = 9;
    struct augment_choice c1, c2;
    int flips = 0, xs[3] = {0};
    for (int rep = 0; rep < 200; rep++) {
        CHECK(augment_clip(a, src, t, h, w, 4, 3, 1, &r1, &c1) == 0);
        CHECK(augment_clip(b, src, t, h, w, 4, 3, 1, &r2, &c2) == 0);
        CHECK(!memcmp(a, b, sizeof a)); /* same seed, same clips */
        CHECK(c1.y >= 0 && c1.y <= 2 && c1.x >= 0 && c1.x <= 2);
        flips += c1.flip;
        xs[c1.x]++;
        /* pixel (f=1, y=2, x=0) of the crop */
        int sx = c1.flip ? c1.x + 2 : c1.x;
        const uint8_t *want = src + ((1 * h + c1.y + 2) * w + sx) * 3;
        const uint8_t *got = a + ((1 * 4 + 2) * 3 + 0) * 3;
        CHECK(!memcmp(want, got, 3));
    }
    CHECK(flips > 70 && flips < 130);
    CHECK(xs[0] > 30 && xs[1] > 30 && xs[2] > 30);
    CHECK(augment_clip(a, src, t, h, w, 7, 3, 1, &r1, NULL) == -EINVAL);
    CHECK(center_crop_clip(a, src, t, h, w, 4, 3) == 0);
    CHECK(!memcmp(a, src + ((0 * h + 1) * w + 1) * 3, 3));
}

static struct dfew_train_config small_cfg(int loss)
{
    struct dfew_train_config c;
    dfew_train_config_defaults(&c);
    c.width = 1.f / 32, c.in_t = 4, c.in_h = 16, c.in_w = 16, c.max_batch = 4;
    c.loss = loss;
    c.lr = 0.01f;
    c.seed = 3;
    return c;
}

static uint8_t *clips_u8(int n, const struct dfew_train_config *c, uint64_t s)
{
    size_t sz = (size_t)n * c->in_t * c->in_h * c->in_w * 3;
    uint8_t *u = malloc(sz);
    for (size_t i = 0; i < sz; i++)
        u[i] = (uint8_t)(rng_next(&s) >> 56);
    return u;
}

static int params_equal(struct dfew_train_model *a, struct dfew_train_model *b)
{
    struct dfew_train_info ia;
    be->describe(a, &ia);
    int same = 1;
    for (int64_t i = 0; i < ia.num_tensors && same; i++) {
        struct dfew_train_tensor_info ti;
        be->tensor_info(a, i, &ti);
        float *x = malloc(sizeof(float) * ti.numel), *y = malloc(sizeof(float) * ti.numel);
        be->tensor_read(a, i, DFEW_PART_VALUE, x);
        be->tensor_read(b, i, DFEW_PART_VALUE, y);
        same = !memcmp(x, y, sizeof(float) * ti.numel);
        free(x), free(y);
    }
    return same;
}

static void test_u8_input_and_determinism(void)
{
    struct dfew_train_config c = small_cfg(DFEW_LOSS_ECSTFL);
    struct dfew_train_model *a, *b;
    char err[256];
    CHECK(be->model_create(&c, &a, err, sizeof err) == 0);
    CHECK(be->model_create(&c, &b, err, sizeof err) == 0);
    CHECK(params_equal(a, b)); /* same seed, same init */
    int32_t lab[4] = {0, 1, 1, 2};
    uint8_t *u = clips_u8(4, &c, 1);
    /* uint8 NTHWC == the float NCTHW it normalises to */
    int64_t S = (int64_t)c.in_t * c.in_h * c.in_w;
    float *x = malloc(sizeof(float) * 4 * 3 * S);
    for (int n = 0; n < 4; n++)
        for (int ch = 0; ch < 3; ch++)
            for (int64_t p = 0; p < S; p++)
                x[(n * 3 + ch) * S + p] = (u[(n * S + p) * 3 + ch] / 255.f - c.mean[ch]) / c.std[ch];
    struct dfew_train_batch bu = {4, DFEW_INPUT_U8_NTHWC, u, lab}, bf = {4, DFEW_INPUT_F32_NCTHW, x, lab};
    float pu[28], pf[28];
    CHECK(be->evaluate(a, &bu, pu, NULL) == 0);
    CHECK(be->evaluate(a, &bf, pf, NULL) == 0);
    double md = 0;
    for (int i = 0; i < 28; i++)
        md = fmax(md, fabs(pu[i] - pf[i]));
    CHECK(md < 1e-5);
    /* three steps on both: bitwise the same */
    for (int s = 0; s < 3; s++) {
        struct dfew_train_losses la, lb;
        CHECK(be->train_step(a, &bu, &la) == 0);
        CHECK(be->train_step(b, &bu, &lb) == 0);
        CHECK(la.total == lb.total && la.aux_active == 1);
    }
    CHECK(params_equal(a, b));
    /* bad batches are refused with a message */
    int32_t badlab[4] = {0, 1, 7, 2};
    struct dfew_train_batch bb = {4, DFEW_INPUT_U8_NTHWC, u, badlab};
    CHECK(be->train_step(a, &bb, NULL) == -EINVAL);
    CHECK(strstr(be->last_error(a), "outside 0..6") != NULL);
    bb.labels = lab, bb.n = 5;
    CHECK(be->train_step(a, &bb, NULL) == -EINVAL);
    CHECK(strstr(be->last_error(a), "max_batch") != NULL);
    be->destroy(a), be->destroy(b);
    free(u), free(x);
}

/* Sets or (v NULL) unsets an environment variable */
static void env_set(const char *k, const char *v)
{
    if (v)
        setenv(k, v, 1);
    else
        unsetenv(k);
}

/* The largest per-tensor difference of two models' parameters (and
 * buffers), max |a - b| / max |a| per tensor; *worst names that tensor. */
static double params_relerr(struct dfew_train_model *a, struct dfew_train_model *b, char *worst, size_t worst_len)
{
    struct dfew_train_info ia;
    be->describe(a, &ia);
    double w = 0;
    snprintf(worst, worst_len, "-");
    for (int64_t i = 0; i < ia.num_tensors; i++) {
        struct dfew_train_tensor_info ti;
        be->tensor_info(a, i, &ti);
        float *x = malloc(sizeof(float) * ti.numel), *y = malloc(sizeof(float) * ti.numel);
        be->tensor_read(a, i, DFEW_PART_VALUE, x);
        be->tensor_read(b, i, DFEW_PART_VALUE, y);
        double md = 0, mx = 1e-6;
        for (int64_t j = 0; j < ti.numel; j++)
            md = fmax(md, fabs(x[j] - y[j])), mx = fmax(mx, fabs(x[j]));
        if (!(md / mx <= w)) { /* NaN counts as worst */
            w = isnan(md) ? INFINITY : md / mx;
            snprintf(worst, worst_len, "%s", ti.name);
        }
        free(x), free(y);
    }
    return w;
}

/* The convolution implementations and activation layouts a model can run
 * (DFEW_TRAIN_CPU_CONV, DFEW_TRAIN_CPU_LAYOUT), and what describe() says:
 * the reference, then oneDNN in the layout it picks on this CPU (the
 * default), then in each layout by name. */
#define CONV_MODES 6
static const char *conv_modes[CONV_MODES][3] = {{"ref", "", "conv3d reference, NCDHW"},
                                                {"dnnl", "", " (auto: "},
                                                {"dnnl", "ncdhw", ", NCDHW (DFEW_TRAIN_CPU_LAYOUT)"},
                                                {"dnnl", "ndhwc", ", NDHWC (DFEW_TRAIN_CPU_LAYOUT)"},
                                                {"dnnl", "nCdhw8c", ", nCdhw8c (DFEW_TRAIN_CPU_LAYOUT)"},
                                                {"dnnl", "nCdhw16c", ", nCdhw16c (DFEW_TRAIN_CPU_LAYOUT)"}};

/* A model of c at `threads` threads, two SGD steps on b; their losses. The
 * thread count is process-wide (model_create sets OpenMP's), so a model
 * takes its steps before the next one is created. */
static struct dfew_train_model *threads_model(struct dfew_train_config c, int threads,
                                              const struct dfew_train_batch *b, float loss[2])
{
    struct dfew_train_model *m = NULL;
    char err[256];
    c.threads = threads;
    CHECK(be->model_create(&c, &m, err, sizeof err) == 0);
    for (int s = 0; s < 2 && m; s++) {
        struct dfew_train_losses L;
        CHECK(be->train_step(m, b, &L) == 0);
        loss[s] = L.total;
    }
    return m;
}

/* The parallel paths (layers above the PAR_WORTH size, conv samples per
 * thread, split products, oneDNN's threads), in every convolution mode:
 * - a thread count is bitwise reproducible: two models at 2 threads give
 *   the same losses and parameters;
 * - 1 and 2 threads agree to rounding, not bitwise (DESIGN.md: BLAS and
 *   oneDNN choose kernels and splits per CPU and thread count; OpenBLAS's
 *   Haswell kernels, those of AMD's AVX2 CPUs, round a split product
 *   differently from the whole product even in the forward pass).
 * The bounds: about 30x the worst difference seen with OpenBLAS's SkylakeX,
 * Haswell, Zen, Sandybridge and Prescott kernels and oneDNN capped at
 * AVX-512, AVX2, AVX and SSE4.1 (losses 3.5e-7 relative, the forward's
 * alone 7.5e-8; parameters, which take the conv weight gradients'
 * per-thread sums, 2.9e-6); a lost or doubled sample or column of a
 * thread's share, or two threads on one column buffer, moves the losses by
 * 0.07 or more and the parameters by 0.5 or more. */
static void test_threads(void)
{
    char *old_conv = getenv("DFEW_TRAIN_CPU_CONV"), *old_layout = getenv("DFEW_TRAIN_CPU_LAYOUT");
    old_conv = old_conv ? strdup(old_conv) : NULL, old_layout = old_layout ? strdup(old_layout) : NULL;
    char why[256];
    int have = conv3d_dnnl_available(why, sizeof why);
    struct dfew_train_config c = small_cfg(DFEW_LOSS_ECSTFL);
    c.width = 1.f / 8, c.in_t = 8, c.in_h = 32, c.in_w = 32;
    int32_t lab[4] = {0, 1, 1, 2};
    uint8_t *u = clips_u8(4, &c, 4);
    struct dfew_train_batch bu = {4, DFEW_INPUT_U8_NTHWC, u, lab};
    for (int k = 0; k < (have ? CONV_MODES : 1); k++) {
        env_set("DFEW_TRAIN_CPU_CONV", conv_modes[k][0]);
        env_set("DFEW_TRAIN_CPU_LAYOUT", conv_modes[k][1]);
        float l1[2] = {0}, l2[2] = {0}, l2b[2] = {0};
        struct dfew_train_model *m1 = threads_model(c, 1, &bu, l1), *m2 = threads_model(c, 2, &bu, l2);
        struct dfew_train_model *m2b = threads_model(c, 2, &bu, l2b);
        if (m1 && m2 && m2b) {
            CHECK(l2[0] == l2b[0] && l2[1] == l2b[1] && params_equal(m2, m2b));
            char worst[DFEW_TRAIN_NAME_MAX + 8];
            double e0 = fabs((double)l1[0] - l2[0]) / fabs(l1[0]), e1 = fabs((double)l1[1] - l2[1]) / fabs(l1[1]);
            double ep = params_relerr(m1, m2, worst, sizeof worst);
            printf("  %s %s, 1 vs 2 threads: losses %.9g, %.9g vs %.9g, %.9g (%.2g, %.2g), parameters %.2g (%s)\n",
                   conv_modes[k][0], conv_modes[k][1][0] ? conv_modes[k][1] : k ? "auto" : "ncdhw", l1[0], l1[1],
                   l2[0], l2[1], e0, e1, ep, worst);
            CHECK(e0 <= 1e-5 && e1 <= 1e-5 && ep <= 1e-4);
        }
        be->destroy(m1), be->destroy(m2), be->destroy(m2b);
    }
    env_set("DFEW_TRAIN_CPU_CONV", old_conv);
    env_set("DFEW_TRAIN_CPU_LAYOUT", old_layout);
    free(old_conv), free(old_layout);
    free(u);
}

static void test_single_class_batch_model(void)
{
    /* EC-STFL with one class in the batch: skipped, so the gradients are the
     * cross entropy's exactly */
    struct dfew_train_config ce = small_cfg(DFEW_LOSS_CE), ec = small_cfg(DFEW_LOSS_ECSTFL);
    struct dfew_train_model *a, *b;
    char err[256];
    CHECK(be->model_create(&ce, &a, err, sizeof err) == 0);
    CHECK(be->model_create(&ec, &b, err, sizeof err) == 0);
    int32_t lab[4] = {5, 5, 5, 5};
    uint8_t *u = clips_u8(4, &ce, 2);
    struct dfew_train_batch bu = {4, DFEW_INPUT_U8_NTHWC, u, lab};
    struct dfew_train_losses la, lb;
    CHECK(be->forward_backward(a, &bu, &la, NULL) == 0);
    CHECK(be->forward_backward(b, &bu, &lb, NULL) == 0);
    CHECK(lb.aux_active == 0 && lb.aux == 0.f && lb.total == la.total);
    struct dfew_train_info ia;
    be->describe(a, &ia);
    int same = 1;
    for (int64_t i = 0; i < ia.num_tensors; i++) {
        struct dfew_train_tensor_info ti;
        be->tensor_info(a, i, &ti);
        if (ti.kind != DFEW_TENSOR_PARAM)
            continue;
        float *x = malloc(sizeof(float) * ti.numel), *y = malloc(sizeof(float) * ti.numel);
        be->tensor_read(a, i, DFEW_PART_GRAD, x);
        be->tensor_read(b, i, DFEW_PART_GRAD, y);
        same &= !memcmp(x, y, sizeof(float) * ti.numel);
        free(x), free(y);
    }
    CHECK(same);
    be->destroy(a), be->destroy(b);
    free(u);
}

static void test_checkpoint(void)
{
    struct dfew_train_config c = small_cfg(DFEW_LOSS_CENTER);
    c.lambda = 0.1f;
    struct dfew_train_model *a, *b;
    char err[256], path[1024];
    /* the process's own name: the test runs in several modes at once, all
     * with the same TMPDIR */
    snprintf(path, sizeof path, "%s/ckpt-%ld.bin", tmpdir, (long)getpid());
    CHECK(be->model_create(&c, &a, err, sizeof err) == 0);
    CHECK(be->model_create(&c, &b, err, sizeof err) == 0);
    int32_t lab[4] = {0, 1, 1, 2};
    uint8_t *u = clips_u8(4, &c, 3);
    struct dfew_train_batch bu = {4, DFEW_INPUT_U8_NTHWC, u, lab};
    for (int s = 0; s < 3; s++)
        CHECK(be->train_step(a, &bu, NULL) == 0);
    struct dfew_train_progress p = {.epoch = 2, .step = 3, .lr = 0.005f, .best_loss = 1.5f, .bad_epochs = 1};
    CHECK(be->set_lr(a, 0.005f) == 0);
    /* a symbolic link planted at the old, predictable temporary name
     * (path.tmp) is not followed: its target keeps its bytes, the checkpoint
     * is written all the same and no temporary is left */
    char tmp[1100], victim[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(victim, sizeof victim, "%s.victim", path);
    unlink(tmp), unlink(path);
    static const char untouched[] = "not a checkpoint: must stay as it is\n";
    FILE *vf = fopen(victim, "wb");
    CHECK(vf != NULL);
    if (vf) {
        fputs(untouched, vf);
        fclose(vf);
    }
    CHECK(symlink(victim, tmp) == 0);
    CHECK(be->save(a, path, &p) == 0);
    char got[128] = {0};
    vf = fopen(victim, "rb");
    CHECK(vf != NULL);
    if (vf) {
        size_t n = fread(got, 1, sizeof got - 1, vf);
        got[n] = '\0';
        fclose(vf);
    }
    CHECK(strcmp(got, untouched) == 0);
    struct stat st;
    CHECK(lstat(tmp, &st) == 0 && S_ISLNK(st.st_mode)); /* the planted link is left alone */
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > (off_t)sizeof untouched);
    unlink(tmp), unlink(victim);
    /* renamed into place: no path.tmp* beside it */
    char dirbuf[1024];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    char *base = strrchr(dirbuf, '/');
    *base++ = '\0';
    char prefix[1100];
    snprintf(prefix, sizeof prefix, "%s.tmp", base);
    DIR *d = opendir(dirbuf);
    CHECK(d != NULL);
    int leftovers = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        leftovers += !strncmp(de->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    CHECK(leftovers == 0);
    for (int s = 0; s < 2; s++)
        CHECK(be->train_step(a, &bu, NULL) == 0);
    /* a fresh model resumes from the checkpoint and follows bitwise */
    struct dfew_train_progress q;
    CHECK(be->load(b, path, &q) == 0);
    CHECK(q.epoch == 2 && q.step == 3 && q.lr == 0.005f && q.best_loss == 1.5f && q.bad_epochs == 1);
    for (int s = 0; s < 2; s++)
        CHECK(be->train_step(b, &bu, NULL) == 0);
    CHECK(params_equal(a, b));

    /* corrupt: flip a byte in the middle -> refused, model unchanged */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) {
        be->destroy(a), be->destroy(b);
        free(u);
        return;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, size / 2, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    CHECK(be->load(b, path, &q) == -EINVAL);
    CHECK(strstr(be->last_error(b), "checksum") != NULL);
    CHECK(params_equal(a, b));
    /* truncated */
    CHECK(truncate(path, size / 3) == 0);
    CHECK(be->load(b, path, &q) < 0);
    CHECK(strstr(be->last_error(b), "truncated") != NULL);
    /* another model's checkpoint */
    CHECK(be->save(a, path, NULL) == 0);
    struct dfew_train_config c2 = c;
    c2.num_classes = 5;
    struct dfew_train_model *other;
    CHECK(be->model_create(&c2, &other, err, sizeof err) == 0);
    CHECK(be->load(other, path, &q) == -EINVAL);
    CHECK(strstr(be->last_error(other), "another model") != NULL);
    /* not a checkpoint */
    f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("hello", f);
        fclose(f);
    }
    CHECK(be->load(other, path, &q) == -EINVAL);
    CHECK(strstr(be->last_error(other), "magic") != NULL);
    /* unwritable directory */
    CHECK(be->save(a, "/nonexistent-dir/ckpt.bin", NULL) < 0);
    CHECK(strstr(be->last_error(a), "cannot write checkpoint") != NULL);
    unlink(path);
    be->destroy(a), be->destroy(b), be->destroy(other);
    free(u);
}

static void test_bad_config(void)
{
    struct dfew_train_config c = small_cfg(DFEW_LOSS_CE);
    struct dfew_train_model *m = (void *)1;
    char err[256];
    c.arch = DFEW_ARCH_C3D; /* 4 x 16 x 16 is too short for C3D's four temporal pools */
    CHECK(be->model_create(&c, &m, err, sizeof err) == -EINVAL);
    CHECK(m == NULL && strstr(err, "too small") != NULL);
    c = small_cfg(DFEW_LOSS_CE);
    c.num_classes = 1;
    CHECK(be->model_create(&c, &m, err, sizeof err) == -EINVAL);
    CHECK(strstr(err, "num_classes") != NULL);
}

/* The model with each convolution implementation and activation layout:
 * oneDNN in the layout it picks (the default with oneDNN), in each layout by
 * name, and the reference agree over three SGD steps to fp32 rounding, for
 * both models; describe() says which ran; the layout picked is the one of
 * the kernels oneDNN 2.6 runs: nCdhw8c on AVX2 (its jit kernels' blocks;
 * avx2.sh caps it so), channels-last on AVX-512 (its brgemm kernels); bad
 * settings are refused with a message. */
static void test_conv_implementations(void)
{
    char *old_conv = getenv("DFEW_TRAIN_CPU_CONV"), *old_layout = getenv("DFEW_TRAIN_CPU_LAYOUT");
    old_conv = old_conv ? strdup(old_conv) : NULL, old_layout = old_layout ? strdup(old_layout) : NULL;
    char why[256], err[256];
    int have = conv3d_dnnl_available(why, sizeof why);
    const char *(*modes)[3] = conv_modes;
    for (int arch = DFEW_ARCH_R3D18; arch <= DFEW_ARCH_C3D; arch++) {
        struct dfew_train_config c = small_cfg(DFEW_LOSS_CE);
        c.arch = arch;
        if (arch == DFEW_ARCH_C3D)
            c.in_t = 16, c.width = 1.f / 16, c.dropout = 0.f;
        int32_t lab[4] = {0, 1, 1, 2};
        uint8_t *u = clips_u8(4, &c, 5);
        struct dfew_train_batch bu = {4, DFEW_INPUT_U8_NTHWC, u, lab};
        struct dfew_train_model *m[CONV_MODES] = {NULL};
        float loss[CONV_MODES][3];
        for (int k = 0; k < (have ? CONV_MODES : 1); k++) {
            env_set("DFEW_TRAIN_CPU_CONV", modes[k][0]);
            env_set("DFEW_TRAIN_CPU_LAYOUT", modes[k][1]);
            CHECK(be->model_create(&c, &m[k], err, sizeof err) == 0);
            if (!m[k])
                continue;
            struct dfew_train_info info;
            be->describe(m[k], &info);
            CHECK(strstr(info.device, modes[k][2]) != NULL);
            if (k == 1) {
                char isa[32];
                conv3d_dnnl_isa(isa, sizeof isa);
                const char *want = !strcmp(isa, "avx2") ? ", nCdhw8c (" : !strncmp(isa, "avx512_core", 11) ? ", NDHWC (" : NULL;
                printf("  oneDNN on %s: %s\n", isa, info.device);
                if (want)
                    CHECK(strstr(info.device, want) != NULL);
            }
            for (int st = 0; st < 3; st++) {
                struct dfew_train_losses L;
                CHECK(be->train_step(m[k], &bu, &L) == 0);
                loss[k][st] = L.total;
            }
            if (k == 0)
                continue;
            double wl = 0;
            for (int st = 0; st < 3; st++)
                wl = fmax(wl, fabs(loss[k][st] - loss[0][st]) / fabs(loss[0][st]));
            double worst = params_relerr(m[0], m[k], why, sizeof why);
            printf("  %s, %s %s vs reference: losses %.2g, parameters %.2g (%s)\n", arch == DFEW_ARCH_C3D ? "c3d" : "r3d18",
                   modes[k][0], modes[k][1][0] ? modes[k][1] : "auto", wl, worst, why);
            /* the parameters' bound as test_train_ref's for gradients: batchnorm
             * biases of the tiny model are sums that nearly cancel */
            CHECK(wl < 1e-5 && worst < 5e-4);
        }
        for (int k = 0; k < CONV_MODES; k++)
            be->destroy(m[k]);
        free(u);
    }
    struct dfew_train_config c = small_cfg(DFEW_LOSS_CE);
    struct dfew_train_model *m = (void *)1;
    env_set("DFEW_TRAIN_CPU_CONV", "fast");
    env_set("DFEW_TRAIN_CPU_LAYOUT", NULL);
    CHECK(be->model_create(&c, &m, err, sizeof err) == -EINVAL);
    CHECK(m == NULL && strstr(err, "use ref") != NULL);
    env_set("DFEW_TRAIN_CPU_CONV", "ref");
    env_set("DFEW_TRAIN_CPU_LAYOUT", "ndhwc");
    CHECK(be->model_create(&c, &m, err, sizeof err) == -EINVAL);
    CHECK(strstr(err, "needs DFEW_TRAIN_CPU_CONV=dnnl") != NULL);
    if (!have) {
        env_set("DFEW_TRAIN_CPU_CONV", "dnnl");
        env_set("DFEW_TRAIN_CPU_LAYOUT", NULL);
        CHECK(be->model_create(&c, &m, err, sizeof err) == -EINVAL);
        CHECK(strstr(err, "no oneDNN") != NULL);
        printf("  oneDNN: %s\n", why);
    }
    env_set("DFEW_TRAIN_CPU_CONV", old_conv);
    env_set("DFEW_TRAIN_CPU_LAYOUT", old_layout);
    free(old_conv), free(old_layout);
}

static void test_host_loader(void)
{
    struct train_backend_handle h;
    char err[512];
    CHECK(train_backend_open(cpu_so, &h, err, sizeof err) == 0);
    if (h.be) {
        CHECK_EQ_STR(h.be->name, "cpu");
        CHECK(h.be->api_version == DFEW_TRAIN_API_VERSION);
        struct dfew_train_device dev;
        CHECK(h.be->device_probe(&dev) == 1 && dev.compute_units >= 1 && dev.name[0]);
        /* the module's model behaves as the linked one */
        struct dfew_train_config c = small_cfg(DFEW_LOSS_CE);
        struct dfew_train_model *m;
        CHECK(h.be->model_create(&c, &m, err, sizeof err) == 0);
        struct dfew_train_info info;
        h.be->describe(m, &info);
        CHECK_EQ_STR(info.backend, "cpu");
        CHECK(info.num_params > 1000);
        h.be->destroy(m);
        train_backend_close(&h);
    }
    CHECK(train_backend_open(bad_so, &h, err, sizeof err) == -EPROTO);
    CHECK(strstr(err, "API version 2") && strstr(err, "speaks version 1") && strstr(err, "rebuild"));
    printf("  refused: %s\n", err);
    CHECK(train_backend_open("/nonexistent/dfew-train-cpu.so", &h, err, sizeof err) == -ENOENT);
    /* choose from a directory: no CUDA module there -> CPU */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", cpu_so);
    *strrchr(dir, '/') = 0;
    struct dfew_train_device dev;
    char note[512];
    CHECK(train_backend_choose(dir, &h, &dev, note, sizeof note, err, sizeof err) == 0);
    if (h.be) {
        CHECK_EQ_STR(h.be->name, "cpu");
        CHECK(strstr(note, "dfew-train-cuda.so") != NULL);
        train_backend_close(&h);
    }
    CHECK(train_backend_choose("/nonexistent", &h, &dev, note, sizeof note, err, sizeof err) < 0);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s REFDIR CPU_MODULE BAD_MODULE TMPDIR\n", argv[0]);
        return 2;
    }
    refdir = argv[1], cpu_so = argv[2], bad_so = argv[3], tmpdir = argv[4];
    be = dfew_train_cpu_backend();
    RUN(test_metrics_vs_sklearn);
    RUN(test_plateau);
    RUN(test_augment);
    RUN(test_u8_input_and_determinism);
    RUN(test_threads);
    RUN(test_single_class_batch_model);
    RUN(test_checkpoint);
    RUN(test_bad_config);
    RUN(test_conv_implementations);
    RUN(test_host_loader);
    return check_report();
}
