/* test_cuda_layers.cu: every layer of the CUDA backend (workers/train/cuda,
 * namespace cu) against the CPU layer of the same name on random inputs:
 * forward outputs and every backward output, as the normalised squared error
 * NMSE = sum (gpu - cpu)^2 / sum cpu^2, printed for each layer with its
 * bound. fp32 bounds are near fp32 rounding; the bf16 cases compare the bf16
 * kernels with the fp32 CPU layers at bf16 rounding. The host code converts
 * between the CPU's N x C x S layout and the device's N x S x C. Also the
 * fused kernels the model uses against compositions of CPU layers.
 * Exits 77 ("skipped: no CUDA device") where no GPU is usable, 1 on a
 * mismatch. Host code only (compiled by nvcc to reach the C++ layer API). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <initializer_list>

#include "layers.cuh"
#include "model.cuh"

extern "C" {
#include "rng.h"
}

static cu::ctx g_cx;
static int g_fail, g_checks;
static double g_worst_ratio;
static char g_worst[128];
static uint64_t g_seed = 1234;

#define CK(call)                                                                                                      \
    do {                                                                                                              \
        cudaError_t e_ = (call);                                                                                      \
        if (e_ != cudaSuccess) {                                                                                      \
            printf("FAIL %s: %s at line %d\n", #call, cudaGetErrorString(e_), __LINE__);                             \
            exit(1);                                                                                                  \
        }                                                                                                             \
    } while (0)
#define OK(call)                                                                                                      \
    do {                                                                                                              \
        int rc_ = (call);                                                                                             \
        if (rc_) {                                                                                                    \
            printf("FAIL %s returned %d: %s\n", #call, rc_, g_cx.err);                                                \
            g_fail++;                                                                                                 \
            return;                                                                                                   \
        }                                                                                                             \
    } while (0)

static float *randv(int64_t n, float scale)
{
    float *v = (float *)malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * (2.f * rng_uniform(&g_seed) - 1.f);
    return v;
}

static float *zeros(int64_t n) { return (float *)calloc((size_t)(n ? n : 1), sizeof(float)); }

/* device buffers of float or bf16 from host floats, and back */
template <typename T> static T *up(const float *h, int64_t n)
{
    T *d;
    CK(cudaMalloc((void **)&d, sizeof(T) * (size_t)(n ? n : 1)));
    if (sizeof(T) == sizeof(float)) {
        CK(cudaMemcpy(d, h, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice));
    } else {
        cu::bf16 *t = (cu::bf16 *)malloc(sizeof(cu::bf16) * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++)
            t[i] = __float2bfloat16_rn(h[i]);
        CK(cudaMemcpy(d, t, sizeof(cu::bf16) * (size_t)n, cudaMemcpyHostToDevice));
        free(t);
    }
    return d;
}

template <typename T> static float *down(const T *d, int64_t n)
{
    float *h = (float *)malloc(sizeof(float) * (size_t)(n ? n : 1));
    CK(cudaStreamSynchronize(g_cx.stream));
    if (sizeof(T) == sizeof(float)) {
        CK(cudaMemcpy(h, d, sizeof(float) * (size_t)n, cudaMemcpyDeviceToHost));
    } else {
        cu::bf16 *t = (cu::bf16 *)malloc(sizeof(cu::bf16) * (size_t)(n ? n : 1));
        CK(cudaMemcpy(t, d, sizeof(cu::bf16) * (size_t)n, cudaMemcpyDeviceToHost));
        for (int64_t i = 0; i < n; i++)
            h[i] = __bfloat162float(t[i]);
        free(t);
    }
    return h;
}

/* N x C x S -> N x S x C (to_nsc) and back (to_ncs) */
static float *relayout(const float *x, int n, int c, int64_t s, int to_channels_last)
{
    float *y = (float *)malloc(sizeof(float) * (size_t)n * c * s + 4);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int64_t p = 0; p < s; p++) {
                const int64_t cf = ((int64_t)i * c + ch) * s + p, cl = ((int64_t)i * s + p) * c + ch;
                if (to_channels_last)
                    y[cl] = x[cf];
                else
                    y[cf] = x[cl];
            }
    return y;
}
static float *to_nsc(const float *x, int n, int c, int64_t s) { return relayout(x, n, c, s, 1); }
static float *to_ncs(const float *x, int n, int c, int64_t s) { return relayout(x, n, c, s, 0); }

static double nmse(const float *got, const float *want, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    if (!(num == num))
        return INFINITY;
    return den > 0 ? num / den : num;
}

static void report(const char *name, double e, double bound)
{
    g_checks++;
    int bad = !(e <= bound);
    g_fail += bad;
    double ratio = bound > 0 ? e / bound : (e > 0 ? INFINITY : 0);
    if (!(ratio <= g_worst_ratio)) {
        g_worst_ratio = ratio;
        snprintf(g_worst, sizeof g_worst, "%s (%.3g, bound %.1g)", name, e, bound);
    }
    printf("%s %-44s nmse %.3g (bound %.1g)\n", bad ? "FAIL" : "ok  ", name, e, bound);
}

static void check(const char *name, const float *got, const float *want, int64_t n, double bound)
{
    report(name, nmse(got, want, n), bound);
}

/* ---------------------------------------------------------------- conv3d */

template <typename T> static void conv_case(const char *name, conv3d_shape s, int bias, double bound)
{
    if (conv3d_shape_init(&s)) {
        printf("FAIL %s: bad shape\n", name);
        g_fail++;
        return;
    }
    const int64_t S = (int64_t)s.t * s.h * s.w, SO = (int64_t)s.to * s.ho * s.wo;
    const int64_t xn = s.n * s.c * S, yn = s.n * s.oc * SO, wn = (int64_t)s.oc * s.c * s.kt * s.kh * s.kw;
    float *x = randv(xn, 1.f), *w = randv(wn, 0.3f), *b = bias ? randv(s.oc, 0.5f) : NULL, *dy = randv(yn, 1.f);
    /* CPU */
    conv3d_work ws = {}; /* the reference convolution (impl and layout zero) */
    ws.threads = 1, ws.max_tile_floats = 1u << 20;
    float *y = zeros(yn), *dx = zeros(xn), *dw = zeros(wn), *db = zeros(s.oc);
    conv3d_forward(y, x, w, b, &s, &ws);
    conv3d_backward(dx, dw, bias ? db : NULL, dy, x, w, &s, &ws);
    /* GPU */
    dfew_train_tensor_info ti;
    memset(&ti, 0, sizeof ti);
    ti.ndim = 5, ti.shape[0] = s.oc, ti.shape[1] = s.c, ti.shape[2] = s.kt, ti.shape[3] = s.kh, ti.shape[4] = s.kw;
    ti.numel = wn;
    float *wd = zeros(wn), *xh = to_nsc(x, s.n, s.c, S), *dyh = to_nsc(dy, s.n, s.oc, SO);
    cu::tensor_layout(wd, w, &ti, 1);
    T *gx = up<T>(xh, xn), *gw = up<T>(wd, wn), *gy = up<T>(y, yn), *gdy = up<T>(dyh, yn), *gdx = up<T>(xh, xn);
    float *gb = bias ? up<float>(b, s.oc) : NULL, *gdw = up<float>(wd, wn), *gdb = up<float>(b ? b : wd, s.oc);
    char nm[96];
    OK(cu::conv3d_forward<T>(gy, gx, gw, gb, &s, &g_cx));
    float *r = down<T>(gy, yn), *rr = to_ncs(r, s.n, s.oc, SO);
    snprintf(nm, sizeof nm, "conv3d %s forward", name);
    check(nm, rr, y, yn, bound);
    OK(cu::conv3d_backward<T>(gdx, gdw, bias ? gdb : NULL, gdy, gx, gw, &s, &g_cx, 0));
    float *rdx = down<T>(gdx, xn), *rdxc = to_ncs(rdx, s.n, s.c, S), *rdw = down<float>(gdw, wn), *rdwh = zeros(wn);
    cu::tensor_layout(rdwh, rdw, &ti, 0);
    snprintf(nm, sizeof nm, "conv3d %s backward dinp", name);
    check(nm, rdxc, dx, xn, bound);
    snprintf(nm, sizeof nm, "conv3d %s backward dweight", name);
    check(nm, rdwh, dw, wn, bound);
    if (bias) {
        float *rdb = down<float>(gdb, s.oc);
        snprintf(nm, sizeof nm, "conv3d %s backward dbias", name);
        check(nm, rdb, db, s.oc, bound);
        free(rdb);
    }
    /* accumulate: dinp += the input gradient (the residual sums of r3d18) */
    OK(cu::conv3d_backward<T>(gdx, gdw, NULL, gdy, gx, gw, &s, &g_cx, 1));
    float *acc = down<T>(gdx, xn), *accc = to_ncs(acc, s.n, s.c, S);
    for (int64_t i = 0; i < xn; i++)
        accc[i] *= 0.5f;
    snprintf(nm, sizeof nm, "conv3d %s backward accumulate", name);
    check(nm, accc, dx, xn, bound);
    free(acc), free(accc), free(rdx), free(rdxc), free(rdw), free(rdwh), free(r), free(rr);
    conv3d_work_release(&ws);
    cudaFree(gx), cudaFree(gw), cudaFree(gy), cudaFree(gdy), cudaFree(gdx), cudaFree(gb), cudaFree(gdw), cudaFree(gdb);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db), free(wd), free(xh), free(dyh);
}

static conv3d_shape shape(int n, int c, int t, int h, int w, int oc, int k0, int k1, int s0, int s1, int p0, int p1)
{
    conv3d_shape s;
    memset(&s, 0, sizeof s);
    s.n = n, s.c = c, s.t = t, s.h = h, s.w = w, s.oc = oc;
    s.kt = k0, s.kh = s.kw = k1, s.st = s0, s.sh = s.sw = s1, s.pt = p0, s.ph = s.pw = p1;
    return s;
}

/* ---------------------------------------------------------------- batchnorm (+ residual + relu) */

/* relu_bound: the backward through a ReLU whose mask is recomputed on the device. In bf16 an
 * activation within rounding of zero can land on the other side of it, and each such flip moves
 * a whole dy element (measured on an H200: NMSE 5.7e-4 for dinp, 2.7e-4 for dbeta), so bf16
 * needs a looser bound there than elsewhere. */
template <typename T> static void bn_case(int n, int c, int64_t S, double bound, double relu_bound, const char *tag)
{
    const int64_t cnt = (int64_t)n * c * S;
    const float mom = 0.1f, eps = 1e-5f;
    float *x = randv(cnt, 2.f), *g = randv(c, 1.f), *be = randv(c, 0.5f), *res = randv(cnt, 1.f), *dy = randv(cnt, 1.f);
    for (int64_t i = 0; i < cnt; i++)
        x[i] += 0.7f; /* a mean away from 0 */
    float *rm = randv(c, 0.1f), *rv = randv(c, 0.2f);
    for (int i = 0; i < c; i++)
        rv[i] += 1.f;
    /* CPU: out = relu(bn(x) + res); backward through relu, bn */
    float *y = zeros(cnt), *sm = zeros(c), *sr = zeros(c), *rm1 = (float *)malloc(4 * c), *rv1 = (float *)malloc(4 * c);
    memcpy(rm1, rm, 4 * c), memcpy(rv1, rv, 4 * c);
    batchnorm3d_forward_train(y, sm, sr, rm1, rv1, x, g, be, n, c, S, mom, eps);
    float *yb = (float *)malloc(4 * cnt);
    memcpy(yb, y, 4 * cnt);
    float *yr = zeros(cnt);
    for (int64_t i = 0; i < cnt; i++)
        yr[i] = y[i] + res[i];
    relu_forward(yr, yr, cnt);
    float *dx = zeros(cnt), *dg = zeros(c), *dbe = zeros(c);
    batchnorm3d_backward(dx, dg, dbe, dy, x, g, sm, sr, n, c, S);
    float *yrel = zeros(cnt), *dyr = zeros(cnt), *dxr = zeros(cnt), *dgr = zeros(c), *dber = zeros(c);
    relu_forward(yrel, yb, cnt);
    relu_backward(dyr, dy, yrel, cnt);
    batchnorm3d_backward(dxr, dgr, dber, dyr, x, g, sm, sr, n, c, S);
    float *ye = zeros(cnt);
    batchnorm3d_forward_eval(ye, x, g, be, rm, rv, n, c, S, eps);

    float *xh = to_nsc(x, n, c, S), *resh = to_nsc(res, n, c, S), *dyh = to_nsc(dy, n, c, S);
    T *gx = up<T>(xh, cnt), *gres = up<T>(resh, cnt), *gdy = up<T>(dyh, cnt), *gy = up<T>(xh, cnt), *gdx = up<T>(xh, cnt);
    float *gg = up<float>(g, c), *gbe = up<float>(be, c), *grm = up<float>(rm, c), *grv = up<float>(rv, c);
    float *gsm = up<float>(g, c), *gsr = up<float>(g, c), *gdg = up<float>(g, c), *gdbe = up<float>(g, c);
    char nm[96];
    /* plain train forward and backward (the CPU's functions) */
    OK(cu::batchnorm3d_forward_train<T>(gy, gsm, gsr, grm, grv, gx, gg, gbe, n, c, S, mom, eps, &g_cx));
    float *r = down<T>(gy, cnt), *rc = to_ncs(r, n, c, S);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d forward_train", tag, c);
    check(nm, rc, y, cnt, bound);
    float *rsm = down<float>(gsm, c), *rsr = down<float>(gsr, c), *rrm = down<float>(grm, c), *rrv = down<float>(grv, c);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d save_mean", tag, c);
    check(nm, rsm, sm, c, bound);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d save_rstd", tag, c);
    check(nm, rsr, sr, c, bound);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d running_mean", tag, c);
    check(nm, rrm, rm1, c, bound);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d running_var", tag, c);
    check(nm, rrv, rv1, c, bound);
    OK(cu::batchnorm3d_backward<T>(gdx, gdg, gdbe, gdy, gx, gg, gsm, gsr, n, c, S, &g_cx));
    float *rdx = down<T>(gdx, cnt), *rdxc = to_ncs(rdx, n, c, S), *rdg = down<float>(gdg, c), *rdb = down<float>(gdbe, c);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d backward dinp", tag, c);
    check(nm, rdxc, dx, cnt, bound);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d backward dgamma", tag, c);
    check(nm, rdg, dg, c, bound);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d backward dbeta", tag, c);
    check(nm, rdb, dbe, c, bound);
    free(r), free(rc), free(rdx), free(rdxc), free(rdg), free(rdb);
    /* eval */
    OK(cu::batchnorm3d_forward_eval<T>(gy, gx, gg, gbe, grm, grv, n, c, S, eps, &g_cx));
    /* grm / grv were updated by the train pass: compare against the CPU's eval with the updated ones */
    float *ye1 = zeros(cnt);
    batchnorm3d_forward_eval(ye1, x, g, be, rm1, rv1, n, c, S, eps);
    r = down<T>(gy, cnt), rc = to_ncs(r, n, c, S);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d forward_eval", tag, c);
    check(nm, rc, ye1, cnt, bound);
    free(r), free(rc), free(ye1);
    /* fused: relu(bn(x) + res), and the backward of relu(bn(x)) with the mask recomputed */
    OK(cu::batchnorm3d_act_forward_train<T>(gy, gsm, gsr, grm, grv, gx, gg, gbe, gres, 1, n, c, S, mom, eps, &g_cx));
    r = down<T>(gy, cnt), rc = to_ncs(r, n, c, S);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d +residual+relu fused", tag, c);
    check(nm, rc, yr, cnt, bound);
    free(r), free(rc);
    OK(cu::batchnorm3d_act_backward<T>(gdx, gdg, gdbe, gdy, gx, gg, gbe, gsm, gsr, 1, n, c, S, &g_cx));
    rdx = down<T>(gdx, cnt), rdxc = to_ncs(rdx, n, c, S), rdg = down<float>(gdg, c), rdb = down<float>(gdbe, c);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d relu backward dinp", tag, c);
    check(nm, rdxc, dxr, cnt, relu_bound);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d relu backward dgamma", tag, c);
    check(nm, rdg, dgr, c, relu_bound);
    snprintf(nm, sizeof nm, "batchnorm3d %s c%d relu backward dbeta", tag, c);
    check(nm, rdb, dber, c, relu_bound);
    free(rdx), free(rdxc), free(rdg), free(rdb), free(rsm), free(rsr), free(rrm), free(rrv);
    cudaFree(gx), cudaFree(gres), cudaFree(gdy), cudaFree(gy), cudaFree(gdx), cudaFree(gg), cudaFree(gbe);
    cudaFree(grm), cudaFree(grv), cudaFree(gsm), cudaFree(gsr), cudaFree(gdg), cudaFree(gdbe);
    free(x), free(g), free(be), free(res), free(dy), free(rm), free(rv), free(y), free(sm), free(sr), free(rm1);
    free(rv1), free(yb), free(yr), free(dx), free(dg), free(dbe), free(yrel), free(dyr), free(dxr), free(dgr);
    free(dber), free(ye), free(xh), free(resh), free(dyh);
}

/* ---------------------------------------------------------------- pools, relu, linear, misc */

static void pool_case(const char *name, conv3d_shape s)
{
    conv3d_shape_init(&s);
    const int64_t S = (int64_t)s.t * s.h * s.w, SO = (int64_t)s.to * s.ho * s.wo;
    const int64_t xn = (int64_t)s.n * s.c * S, yn = (int64_t)s.n * s.c * SO;
    float *x = randv(xn, 1.f), *dy = randv(yn, 1.f), *y = zeros(yn), *dx = zeros(xn);
    int32_t *am = (int32_t *)malloc(4 * yn);
    maxpool3d_forward(y, am, x, &s);
    maxpool3d_backward(dx, dy, am, &s);
    float *xh = to_nsc(x, s.n, s.c, S), *dyh = to_nsc(dy, s.n, s.c, SO);
    float *gx = up<float>(xh, xn), *gy = up<float>(y, yn), *gdy = up<float>(dyh, yn), *gdx = up<float>(xh, xn);
    int32_t *gam;
    CK(cudaMalloc((void **)&gam, 4 * yn));
    char nm[96];
    OK(cu::maxpool3d_forward<float>(gy, gam, gx, &s, &g_cx));
    float *r = down<float>(gy, yn), *rc = to_ncs(r, s.n, s.c, SO);
    snprintf(nm, sizeof nm, "maxpool3d %s forward", name);
    check(nm, rc, y, yn, 0);
    int32_t *ram = (int32_t *)malloc(4 * yn);
    CK(cudaMemcpy(ram, gam, 4 * yn, cudaMemcpyDeviceToHost));
    int64_t bad = 0;
    for (int i = 0; i < s.n; i++)
        for (int ch = 0; ch < s.c; ch++)
            for (int64_t p = 0; p < SO; p++)
                bad += ram[((int64_t)i * SO + p) * s.c + ch] != am[((int64_t)i * s.c + ch) * SO + p];
    snprintf(nm, sizeof nm, "maxpool3d %s argmax (wrong indices)", name);
    report(nm, (double)bad, 0);
    OK(cu::maxpool3d_backward<float>(gdx, gdy, gam, &s, &g_cx));
    float *rdx = down<float>(gdx, xn), *rdxc = to_ncs(rdx, s.n, s.c, S);
    snprintf(nm, sizeof nm, "maxpool3d %s backward", name);
    check(nm, rdxc, dx, xn, 1e-12);
    free(r), free(rc), free(ram), free(rdx), free(rdxc), free(x), free(dy), free(y), free(dx), free(am), free(xh), free(dyh);
    cudaFree(gx), cudaFree(gy), cudaFree(gdy), cudaFree(gdx), cudaFree(gam);
}

static void misc_cases(void)
{
    char nm[96];
    /* relu */
    for (int64_t cnt : {1001, 1024}) {
        float *x = randv(cnt, 1.f), *dy = randv(cnt, 1.f), *y = zeros(cnt), *dx = zeros(cnt);
        relu_forward(y, x, cnt);
        relu_backward(dx, dy, y, cnt);
        float *gx = up<float>(x, cnt), *gdy = up<float>(dy, cnt), *gy = up<float>(x, cnt), *gdx = up<float>(x, cnt);
        OK(cu::relu_forward<float>(gy, gx, cnt, &g_cx));
        OK(cu::relu_backward<float>(gdx, gdy, gy, cnt, &g_cx));
        float *r = down<float>(gy, cnt), *rd = down<float>(gdx, cnt);
        snprintf(nm, sizeof nm, "relu forward (%lld)", (long long)cnt);
        check(nm, r, y, cnt, 0);
        snprintf(nm, sizeof nm, "relu backward (%lld)", (long long)cnt);
        check(nm, rd, dx, cnt, 0);
        free(x), free(dy), free(y), free(dx), free(r), free(rd);
        cudaFree(gx), cudaFree(gdy), cudaFree(gy), cudaFree(gdx);
    }
    /* global average pool */
    {
        int n = 3, c = 40;
        int64_t S = 98, cnt = n * c * S;
        float *x = randv(cnt, 1.f), *dy = randv(n * c, 1.f), *y = zeros(n * c), *dx = zeros(cnt);
        avgpool_global_forward(y, x, n, c, S);
        avgpool_global_backward(dx, dy, n, c, S);
        float *xh = to_nsc(x, n, c, S), *gx = up<float>(xh, cnt), *gy = up<float>(y, n * c), *gdy = up<float>(dy, n * c);
        float *gdx = up<float>(xh, cnt);
        OK(cu::avgpool_global_forward<float>(gy, gx, n, c, S, &g_cx));
        OK(cu::avgpool_global_backward<float>(gdx, gdy, n, c, S, &g_cx));
        float *r = down<float>(gy, n * c), *rd = down<float>(gdx, cnt), *rdc = to_ncs(rd, n, c, S);
        check("avgpool_global forward", r, y, n * c, 1e-13);
        check("avgpool_global backward", rdc, dx, cnt, 1e-13);
        free(x), free(dy), free(y), free(dx), free(xh), free(r), free(rd), free(rdc);
        cudaFree(gx), cudaFree(gy), cudaFree(gdy), cudaFree(gdx);
    }
    /* linear */
    {
        int n = 5, c = 37, oc = 11;
        float *x = randv(n * c, 1.f), *w = randv(oc * c, 0.5f), *b = randv(oc, 0.5f), *dy = randv(n * oc, 1.f);
        float *y = zeros(n * oc), *dx = zeros(n * c), *dw = zeros(oc * c), *db = zeros(oc);
        linear_forward(y, x, w, b, n, c, oc);
        linear_backward(dx, dw, db, dy, x, w, n, c, oc);
        float *gx = up<float>(x, n * c), *gw = up<float>(w, oc * c), *gb = up<float>(b, oc), *gdy = up<float>(dy, n * oc);
        float *gy = up<float>(y, n * oc), *gdx = up<float>(x, n * c), *gdw = up<float>(w, oc * c), *gdb = up<float>(b, oc);
        OK(cu::linear_forward(gy, gx, gw, gb, n, c, oc, &g_cx));
        OK(cu::linear_backward(gdx, gdw, gdb, gdy, gx, gw, n, c, oc, &g_cx));
        float *r = down<float>(gy, n * oc), *rdx = down<float>(gdx, n * c), *rdw = down<float>(gdw, oc * c);
        float *rdb = down<float>(gdb, oc);
        check("linear forward", r, y, n * oc, 1e-11);
        check("linear backward dinp", rdx, dx, n * c, 1e-11);
        check("linear backward dweight", rdw, dw, oc * c, 1e-11);
        check("linear backward dbias", rdb, db, oc, 1e-11);
        free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db), free(r), free(rdx), free(rdw), free(rdb);
        cudaFree(gx), cudaFree(gw), cudaFree(gb), cudaFree(gdy), cudaFree(gy), cudaFree(gdx), cudaFree(gdw), cudaFree(gdb);
    }
    /* dropout: the same masks as the CPU from the same state */
    {
        const int64_t cnt = 4099;
        const float p = 0.3f;
        float *x = randv(cnt, 1.f), *dy = randv(cnt, 1.f), *y = zeros(cnt), *dx = zeros(cnt);
        uint8_t *mask = (uint8_t *)malloc(cnt), *gm;
        uint64_t r1 = 777, r2 = 777;
        dropout_forward(y, mask, x, cnt, p, &r1);
        dropout_backward(dx, dy, mask, cnt, p);
        float *gx = up<float>(x, cnt), *gy = up<float>(x, cnt), *gdy = up<float>(dy, cnt), *gdx = up<float>(x, cnt);
        CK(cudaMalloc((void **)&gm, cnt));
        OK(cu::dropout_forward(gy, gm, gx, cnt, p, &r2, &g_cx));
        OK(cu::dropout_backward(gdx, gdy, gm, cnt, p, &g_cx));
        float *r = down<float>(gy, cnt), *rd = down<float>(gdx, cnt);
        uint8_t *rm = (uint8_t *)malloc(cnt);
        CK(cudaMemcpy(rm, gm, cnt, cudaMemcpyDeviceToHost));
        check("dropout forward", r, y, cnt, 0);
        check("dropout backward", rd, dx, cnt, 0);
        report("dropout mask + rng state (differences)", (double)(memcmp(rm, mask, cnt) != 0) + (r1 != r2), 0);
        free(x), free(dy), free(y), free(dx), free(mask), free(r), free(rd), free(rm);
        cudaFree(gx), cudaFree(gy), cudaFree(gdy), cudaFree(gdx), cudaFree(gm);
    }
    /* SGD, first step and a later one */
    for (int first = 1; first >= 0; first--) {
        const int64_t cnt = 3001;
        float *w = randv(cnt, 1.f), *v = randv(cnt, 1.f), *g = randv(cnt, 1.f);
        float *gw = up<float>(w, cnt), *gv = up<float>(v, cnt), *gg = up<float>(g, cnt);
        sgd_update(w, v, g, cnt, 0.05f, 0.9f, 5e-4f, first);
        OK(cu::sgd_update(gw, gv, gg, cnt, 0.05f, 0.9f, 5e-4f, first, &g_cx));
        float *rw = down<float>(gw, cnt), *rv = down<float>(gv, cnt);
        snprintf(nm, sizeof nm, "sgd_update first=%d weights", first);
        check(nm, rw, w, cnt, 0);
        snprintf(nm, sizeof nm, "sgd_update first=%d momentum", first);
        check(nm, rv, v, cnt, 0);
        free(w), free(v), free(g), free(rw), free(rv);
        cudaFree(gw), cudaFree(gv), cudaFree(gg);
    }
    /* uint8 clip normalisation into channels-last */
    {
        const int n = 2;
        const int64_t S = 4 * 6 * 5, cnt = n * S * 3;
        uint8_t *u = (uint8_t *)malloc(cnt), *gu;
        for (int64_t i = 0; i < cnt; i++)
            u[i] = (uint8_t)rng_below(&g_seed, 256);
        const float mean[3] = {0.43216f, 0.394666f, 0.37645f}, sd[3] = {0.22803f, 0.22145f, 0.216989f};
        float *want = zeros(cnt); /* the CPU's model_set_input: N x 3 x S */
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++) {
                float sc = 1.f / (255.f * sd[ch]), sh = -mean[ch] / sd[ch];
                for (int64_t p = 0; p < S; p++)
                    want[((int64_t)i * 3 + ch) * S + p] = u[((int64_t)i * S + p) * 3 + ch] * sc + sh;
            }
        CK(cudaMalloc((void **)&gu, cnt));
        CK(cudaMemcpy(gu, u, cnt, cudaMemcpyHostToDevice));
        float *gx = up<float>(want, cnt);
        OK(cu::input_from_u8<float>(gx, gu, cnt, mean, sd, &g_cx));
        float *r = down<float>(gx, cnt), *rc = to_ncs(r, n, 3, S);
        check("input_from_u8 (normalise + layout)", rc, want, cnt, 0);
        float *gf = up<float>(want, cnt);
        OK(cu::input_from_f32_ncs<float>(gx, gf, n, S, &g_cx));
        free(r), free(rc);
        r = down<float>(gx, cnt), rc = to_ncs(r, n, 3, S);
        check("input_from_f32_ncs (layout)", rc, want, cnt, 0);
        /* and the C3D flatten, there and back */
        float *gt = up<float>(want, cnt);
        OK(cu::nsc_to_ncs_f32<float>(gt, gx, n, 3, S, &g_cx));
        float *rt = down<float>(gt, cnt);
        check("nsc_to_ncs_f32", rt, want, cnt, 0);
        OK(cu::ncs_f32_to_nsc<float>(gf, gt, n, 3, S, &g_cx));
        float *rb = down<float>(gf, cnt), *rbc = to_ncs(rb, n, 3, S);
        check("ncs_f32_to_nsc", rbc, want, cnt, 0);
        free(u), free(want), free(r), free(rc), free(rt), free(rb), free(rbc);
        cudaFree(gu), cudaFree(gx), cudaFree(gf), cudaFree(gt);
    }
}

/* ---------------------------------------------------------------- losses */

static void loss_cases(void)
{
    const int n = 12, d = 40, k = 7;
    int32_t lab[n], one[n], *glab, *gone;
    for (int i = 0; i < n; i++)
        lab[i] = i % 5, one[i] = 3;
    CK(cudaMalloc((void **)&glab, sizeof lab));
    CK(cudaMalloc((void **)&gone, sizeof one));
    CK(cudaMemcpy(glab, lab, sizeof lab, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(gone, one, sizeof one, cudaMemcpyHostToDevice));
    float *gl;
    int *gi;
    CK(cudaMalloc((void **)&gl, 16));
    CK(cudaMalloc((void **)&gi, 16));
    float lossv;
    int iv;
    char nm[96];
    /* softmax cross entropy */
    {
        float *z = randv(n * k, 3.f), *pr = zeros(n * k), *dz = zeros(n * k);
        int correct = 0;
        float L = softmax_crossentropy_forward(pr, z, lab, n, k, &correct);
        softmax_crossentropy_backward(dz, pr, lab, n, k, 0.7f);
        float *gz = up<float>(z, n * k), *gp = up<float>(pr, n * k), *gdz = up<float>(z, n * k);
        OK(cu::softmax_crossentropy_forward(gl, gp, gz, glab, n, k, gi, &g_cx));
        OK(cu::softmax_crossentropy_backward(gdz, gp, glab, n, k, 0.7f, &g_cx));
        float *rp = down<float>(gp, n * k), *rd = down<float>(gdz, n * k);
        CK(cudaMemcpy(&lossv, gl, 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(&iv, gi, 4, cudaMemcpyDeviceToHost));
        check("softmax_crossentropy loss", &lossv, &L, 1, 1e-12);
        check("softmax_crossentropy probs", rp, pr, n * k, 1e-12);
        report("softmax_crossentropy correct (difference)", fabs((double)iv - correct), 0);
        check("softmax_crossentropy backward", rd, dz, n * k, 1e-12);
        free(z), free(pr), free(dz), free(rp), free(rd);
        cudaFree(gz), cudaFree(gp), cudaFree(gdz);
    }
    /* EC-STFL (paper, L2), its L1 variant, both with a single-class batch */
    for (int form = 0; form < 2; form++)
        for (int single = 0; single < 2; single++) {
            const int32_t *L = single ? one : lab;
            float *f = randv(n * d, 1.f), *g0 = randv(n * d, 0.1f), *g = (float *)malloc(4 * n * d);
            memcpy(g, g0, 4 * n * d);
            int act = -1;
            float want = form ? ecstfl_l1_forward(f, L, n, d, &act) : ecstfl_forward(f, L, n, d, &act);
            if (act) {
                if (form)
                    ecstfl_l1_backward_add(g, f, L, n, d, 3.f);
                else
                    ecstfl_backward_add(g, f, L, n, d, 3.f);
            }
            float *gf = up<float>(f, n * d), *gg = up<float>(g0, n * d);
            const int32_t *gL = single ? gone : glab;
            if (form) {
                OK(cu::ecstfl_l1_forward(gl, gf, gL, n, d, gi, &g_cx));
                OK(cu::ecstfl_l1_backward_add(gg, gf, gL, n, d, 3.f, &g_cx));
            } else {
                OK(cu::ecstfl_forward(gl, gf, gL, n, d, gi, &g_cx));
                OK(cu::ecstfl_backward_add(gg, gf, gL, n, d, 3.f, &g_cx));
            }
            float *rg = down<float>(gg, n * d);
            CK(cudaMemcpy(&lossv, gl, 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(&iv, gi, 4, cudaMemcpyDeviceToHost));
            const char *fn = form ? "ecstfl_l1" : "ecstfl";
            snprintf(nm, sizeof nm, "%s%s loss", fn, single ? " one-class" : "");
            check(nm, &lossv, &want, 1, 1e-12);
            snprintf(nm, sizeof nm, "%s%s active (difference)", fn, single ? " one-class" : "");
            report(nm, fabs((double)iv - act), 0);
            snprintf(nm, sizeof nm, "%s%s backward_add", fn, single ? " one-class" : "");
            check(nm, rg, g, n * d, 1e-11);
            free(f), free(g0), free(g), free(rg);
            cudaFree(gf), cudaFree(gg);
        }
    /* center loss and the centre update */
    {
        float *f = randv(n * d, 1.f), *c = randv(k * d, 1.f), *g0 = randv(n * d, 0.1f), *g = (float *)malloc(4 * n * d);
        memcpy(g, g0, 4 * n * d);
        float want = center_loss_forward(f, c, lab, n, d);
        center_loss_backward_add(g, f, c, lab, n, d, 2.f);
        float *c1 = (float *)malloc(4 * k * d);
        memcpy(c1, c, 4 * k * d);
        center_update(c1, f, lab, n, d, k, 0.5f);
        float *gf = up<float>(f, n * d), *gc = up<float>(c, k * d), *gg = up<float>(g0, n * d);
        OK(cu::center_loss_forward(gl, gf, gc, glab, n, d, &g_cx));
        OK(cu::center_loss_backward_add(gg, gf, gc, glab, n, d, 2.f, &g_cx));
        OK(cu::center_update(gc, gf, glab, n, d, k, 0.5f, &g_cx));
        float *rg = down<float>(gg, n * d), *rc = down<float>(gc, k * d);
        CK(cudaMemcpy(&lossv, gl, 4, cudaMemcpyDeviceToHost));
        check("center_loss forward", &lossv, &want, 1, 1e-12);
        check("center_loss backward_add", rg, g, n * d, 1e-12);
        check("center_update", rc, c1, k * d, 1e-12);
        free(f), free(c), free(g0), free(g), free(c1), free(rg), free(rc);
        cudaFree(gf), cudaFree(gc), cudaFree(gg);
    }
    cudaFree(glab), cudaFree(gone), cudaFree(gl), cudaFree(gi);
}

int main(void)
{
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev < 1) {
        printf("skipped: no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return 77;
    }
    for (int prec = 0; prec < 2; prec++) {
        /* fp32 first; then the bf16 kernels, whose context allows tensor-core convolutions */
        if (cu::ctx_init(&g_cx, 0, prec ? DFEW_PRECISION_BF16 : DFEW_PRECISION_FP32)) {
            printf("FAIL context: %s\n", g_cx.err);
            return 1;
        }
        if (!prec) {
            int drv = 0, rt = 0, blas = 0;
            cudaDriverGetVersion(&drv);
            cudaRuntimeGetVersion(&rt);
            cublasGetVersion(g_cx.blas, &blas);
            printf("CUDA driver %d, runtime %d (static), cuDNN %zu at run time (headers %d), cuBLAS %d, %d SMs%s\n",
                   drv, rt, cudnnGetVersion(), CUDNN_VERSION, blas, g_cx.sm_count,
                   getenv("DFEW_CUDA_CONV_NCDHW") ? "; every conv channels-first (DFEW_CUDA_CONV_NCDHW)" : "");
            printf("-- fp32: CUDA layers against the CPU layers (NMSE)\n");
            conv_case<float>("stem 3x7x7 s1x2x2", shape(2, 3, 4, 16, 16, 8, 3, 7, 1, 2, 1, 3), 0, 1e-10);
            conv_case<float>("3x3x3 s1", shape(2, 8, 4, 8, 8, 8, 3, 3, 1, 1, 1, 1), 0, 1e-10);
            conv_case<float>("3x3x3 s2", shape(2, 8, 4, 8, 8, 16, 3, 3, 2, 2, 1, 1), 0, 1e-10);
            conv_case<float>("1x1x1 s2 (downsample)", shape(2, 8, 4, 8, 8, 16, 1, 1, 2, 2, 0, 0), 0, 1e-10);
            conv_case<float>("3x3x3 bias c3 (C3D conv1)", shape(2, 3, 4, 6, 6, 5, 3, 3, 1, 1, 1, 1), 1, 1e-10);
            conv_case<float>("3x3x3 bias c6", shape(3, 6, 4, 5, 7, 10, 3, 3, 1, 1, 1, 1), 1, 1e-10);
            bn_case<float>(3, 24, 50, 1e-11, 1e-11, "fp32");
            bn_case<float>(2, 5, 37, 1e-11, 1e-11, "fp32");
            pool_case("1x2x2 (C3D pool1)", shape(2, 4, 3, 6, 6, 4, 1, 2, 1, 2, 0, 0));
            pool_case("2x2x2 pad 0x1x1 (C3D pool5)", shape(2, 4, 2, 5, 5, 4, 2, 2, 2, 2, 0, 1));
            pool_case("3x3x3 s2 pad 1 (overlapping)", shape(2, 3, 5, 7, 7, 3, 3, 3, 2, 2, 1, 1));
            misc_cases();
            loss_cases();
        } else {
            printf("-- bf16 kernels against the fp32 CPU layers (NMSE at bf16 rounding)\n");
            conv_case<cu::bf16>("bf16 3x3x3 s1", shape(2, 16, 4, 8, 8, 16, 3, 3, 1, 1, 1, 1), 0, 1e-4);
            conv_case<cu::bf16>("bf16 stem 3x7x7", shape(2, 3, 4, 16, 16, 8, 3, 7, 1, 2, 1, 3), 0, 1e-4);
            conv_case<cu::bf16>("bf16 1x1x1 s2", shape(2, 8, 4, 8, 8, 16, 1, 1, 2, 2, 0, 0), 0, 1e-4);
            bn_case<cu::bf16>(3, 32, 50, 1e-4, 2e-3, "bf16");
        }
        cu::ctx_destroy(&g_cx);
    }
    cudaError_t last = cudaDeviceSynchronize();
    if (last != cudaSuccess) {
        printf("FAIL device error at the end: %s\n", cudaGetErrorString(last));
        g_fail++;
    }
    printf("cuda layers: %d checks, %d failed; worst (error / bound) %s\n", g_checks, g_fail, g_worst);
    return g_fail ? 1 : 0;
}
