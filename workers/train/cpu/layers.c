/* layers.c: the CPU reference implementation of the trainer layers declared in
 * layers.h (conv3d via tiled vol2col + OpenBLAS sgemm, batchnorm, relu,
 * pooling, linear, dropout, softmax cross entropy, SGD). The losses with their
 * equations are in losses.c; conv3d through oneDNN is conv_dnnl.c, which
 * conv3d_forward / conv3d_backward call first when the workspace asks for it.
 * Not thread-safe per call on shared buffers; each function parallelises
 * internally (OpenMP) where it pays. */
#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conv_dnnl.h"
#include "layers.h"
#include "rng.h"

#include <omp.h>

/* Loops over fewer elements than this run on the calling thread: a parallel
 * region costs more than it saves on small layers, and much more when the
 * cores are shared with other processes. */
#define PAR_WORTH(elements) ((elements) >= 65536)

/* C = alpha op(A) op(B) + beta C (row major), split over the OpenMP threads:
 * OpenBLAS runs single-threaded (backend.c sets it) and each thread multiplies
 * one block of rows (or of columns, whichever dimension is larger) of C. One
 * thread pool for everything: no second pool spinning against the first.
 * OpenBLAS may round a block differently from the whole (its blocking depends
 * on the sizes), so the thread count can change the last bits. */
static void par_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt <= 1 || (double)M * N * K < 262144.0) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_m = M >= N, D = split_m ? M : N;
    int chunk = (D + nt - 1) / nt;
    chunk = (chunk + 15) & ~15;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int d0 = t * chunk, d1 = d0 + chunk > D ? D : d0 + chunk;
        if (d0 >= d1)
            continue;
        if (split_m)
            cblas_sgemm(CblasRowMajor, ta, tb, d1 - d0, N, K, alpha, ta == CblasNoTrans ? A + (size_t)d0 * lda : A + d0,
                        lda, B, ldb, beta, C + (size_t)d0 * ldc, ldc);
        else
            cblas_sgemm(CblasRowMajor, ta, tb, M, d1 - d0, K, alpha, A, lda,
                        tb == CblasNoTrans ? B + d0 : B + (size_t)d0 * ldb, ldb, beta, C + d0, ldc);
    }
}

/* ---------------------------------------------------------------- conv3d */

int conv3d_shape_init(struct conv3d_shape *s)
{
    if (s->st < 1 || s->sh < 1 || s->sw < 1 || s->kt < 1 || s->kh < 1 || s->kw < 1)
        return -EINVAL;
    int tt = s->t + 2 * s->pt - s->kt, hh = s->h + 2 * s->ph - s->kh, ww = s->w + 2 * s->pw - s->kw;
    if (tt < 0 || hh < 0 || ww < 0)
        return -EINVAL;
    s->to = tt / s->st + 1;
    s->ho = hh / s->sh + 1;
    s->wo = ww / s->sw + 1;
    return 0;
}

/* A 1x1x1 stride-1 unpadded conv reads its input as the column matrix. */
static int conv3d_is_pointwise(const struct conv3d_shape *s)
{
    return s->kt == 1 && s->kh == 1 && s->kw == 1 && s->st == 1 && s->sh == 1 && s->sw == 1 && s->pt == 0 &&
           s->ph == 0 && s->pw == 0;
}

/* Output rows (t, h pairs of WO positions) per column tile. */
static int conv3d_tile_rows(const struct conv3d_shape *s, size_t max_tile_floats)
{
    size_t k = (size_t)s->c * s->kt * s->kh * s->kw;
    size_t rows = max_tile_floats / (k * (size_t)s->wo);
    size_t all = (size_t)s->to * s->ho;
    if (rows < 1)
        rows = 1;
    if (rows > all)
        rows = all;
    return (int)rows;
}

/* floats of one thread's column tile */
static size_t conv3d_tile_floats(const struct conv3d_shape *s, size_t max_tile_floats)
{
    if (conv3d_is_pointwise(s))
        return 0;
    return (size_t)s->c * s->kt * s->kh * s->kw * (size_t)conv3d_tile_rows(s, max_tile_floats) * s->wo;
}

/* A stride-1 conv's input gradient is itself a convolution: of dout with
 * the weights flipped in space and transposed in channels, padding k-1-p:
 *   dx[c][i] = sum_o sum_a dout[o][i + p - a] W[o][c][a]
 *            = sum_o sum_a' dout[o][i - (k-1-p) + a'] W[o][c][k-1-a'].
 * Computing it so (vol2col gather + sgemm with the forward's shape) avoids the
 * scatter-add of col2vol and the thin W^T . dout product. */
static int conv3d_dx_as_conv(const struct conv3d_shape *s)
{
    return !conv3d_is_pointwise(s) && s->st == 1 && s->sh == 1 && s->sw == 1 && s->pt < s->kt && s->ph < s->kh &&
           s->pw < s->kw;
}

static struct conv3d_shape conv3d_dx_shape(const struct conv3d_shape *s)
{
    struct conv3d_shape d = *s;
    d.c = s->oc, d.oc = s->c;
    d.t = s->to, d.h = s->ho, d.w = s->wo;
    d.pt = s->kt - 1 - s->pt, d.ph = s->kh - 1 - s->ph, d.pw = s->kw - 1 - s->pw;
    conv3d_shape_init(&d); /* gives back t, h, w */
    return d;
}

/* per-thread column floats: the larger of the forward's and the dx conv's */
static size_t conv3d_thread_tile(const struct conv3d_shape *s, size_t max_tile_floats)
{
    size_t tile = conv3d_tile_floats(s, max_tile_floats);
    if (conv3d_dx_as_conv(s)) {
        struct conv3d_shape d = conv3d_dx_shape(s);
        size_t td = conv3d_tile_floats(&d, max_tile_floats);
        if (td > tile)
            tile = td;
    }
    return tile;
}

/* buf: [threads column tiles][threads - 1 weight-gradient sums][flipped weights] */
size_t conv3d_work_floats(const struct conv3d_shape *s, size_t max_tile_floats, int threads)
{
    if (threads < 1)
        threads = 1;
    size_t wsize = (size_t)s->oc * s->c * s->kt * s->kh * s->kw;
    return (size_t)threads * conv3d_thread_tile(s, max_tile_floats) + (size_t)(threads - 1) * wsize +
           (conv3d_dx_as_conv(s) ? wsize : 0);
}

/* grows buf to at least floats */
static int work_reserve(struct conv3d_work *ws, size_t floats, char *why, size_t why_len)
{
    floats = (floats + 15) & ~(size_t)15;
    if (floats <= ws->floats && (ws->buf || !floats))
        return 0;
    float *b = aligned_alloc(64, sizeof(float) * floats);
    if (!b) {
        snprintf(why, why_len, "out of memory for %.1f MB of conv3d workspace", floats * 4e-6);
        return -ENOMEM;
    }
    free(ws->buf);
    ws->buf = b;
    ws->floats = floats;
    return 0;
}

int conv3d_work_plan(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, char *err, size_t err_len)
{
    char why[256];
    int rc = 0;
    if (ws->layout == LAYOUT_NCDHW) /* the reference, also a oneDNN workspace's fallback */
        rc = work_reserve(ws, conv3d_work_floats(s, ws->max_tile_floats, ws->threads), why, sizeof why);
    else if (ws->impl != CONV3D_DNNL) {
        snprintf(why, sizeof why, "the reference conv3d reads channels-first (NCDHW) activations only");
        rc = -EINVAL;
    }
    if (!rc && ws->impl == CONV3D_DNNL) {
        size_t dn;
        rc = conv3d_dnnl_plan(ws, s, bias, &dn, why, sizeof why);
        if (!rc)
            rc = work_reserve(ws, dn, why, sizeof why);
    }
    if (rc && err)
        snprintf(err, err_len, "%s", why);
    return rc;
}

void conv3d_work_release(struct conv3d_work *ws)
{
    conv3d_dnnl_release(ws);
    free(ws->buf);
    ws->buf = NULL;
    ws->floats = 0;
}

/* Whether the reference can run s with ws (after conv3d_work_plan). When
 * neither oneDNN nor it can, conv3d_* write NaN: never silently wrong
 * numbers (the model plans every shape first and reports the error). */
static int conv3d_ref_ready(const struct conv3d_shape *s, const struct conv3d_work *ws)
{
    return ws->layout == LAYOUT_NCDHW && ws->floats >= conv3d_work_floats(s, ws->max_tile_floats, ws->threads) &&
           (ws->buf || !ws->floats);
}

static void fill_nan(float *p, int64_t n)
{
    for (int64_t i = 0; p && i < n; i++)
        p[i] = NAN;
}

int conv3d_config_from_env(int *impl, int *layout, int *block, char *err, size_t err_len)
{
    const char *v = getenv("DFEW_TRAIN_CPU_CONV"), *l = getenv("DFEW_TRAIN_CPU_LAYOUT");
    char why[256];
    int have = conv3d_dnnl_available(why, sizeof why);
    if (!v || !*v)
        *impl = have ? CONV3D_DNNL : CONV3D_REF;
    else if (!strcmp(v, "ref"))
        *impl = CONV3D_REF;
    else if (!strcmp(v, "dnnl") && have)
        *impl = CONV3D_DNNL;
    else if (!strcmp(v, "dnnl")) {
        snprintf(err, err_len, "DFEW_TRAIN_CPU_CONV=dnnl: %s", why);
        return -EINVAL;
    } else {
        snprintf(err, err_len, "DFEW_TRAIN_CPU_CONV=%s: use ref (vol2col + OpenBLAS) or dnnl (oneDNN)", v);
        return -EINVAL;
    }
    *block = 0;
    int dnnl = *impl == CONV3D_DNNL;
    if (!l || !*l || !strcmp(l, "auto"))
        *layout = dnnl ? LAYOUT_AUTO : LAYOUT_NCDHW;
    else if (!strcmp(l, "ncdhw"))
        *layout = LAYOUT_NCDHW;
    else if (!strcmp(l, "ndhwc") && dnnl)
        *layout = LAYOUT_NDHWC;
    else if ((!strcmp(l, "nCdhw8c") || !strcmp(l, "nCdhw16c")) && dnnl) {
        *layout = LAYOUT_BLOCKED;
        *block = l[5] == '8' ? 8 : 16;
    } else {
        snprintf(err, err_len, "DFEW_TRAIN_CPU_LAYOUT=%s: use auto or ncdhw%s", l,
                 dnnl ? ", ndhwc, nCdhw8c or nCdhw16c" : " (any other needs DFEW_TRAIN_CPU_CONV=dnnl)");
        return -EINVAL;
    }
    return 0;
}

const char *conv3d_layout_name(const struct conv3d_work *ws)
{
    switch (ws->layout) {
    case LAYOUT_NCDHW:
        return "NCDHW";
    case LAYOUT_NDHWC:
        return "NDHWC";
    case LAYOUT_BLOCKED:
        return ws->block == 4 ? "nCdhw4c" : ws->block == 8 ? "nCdhw8c" : ws->block == 16 ? "nCdhw16c" : "nCdhw?c";
    }
    return "auto";
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Threads that share the batch of a conv call, whole samples per thread;
 * one for small convs (under 4M multiply-adds a parallel region costs more
 * than it saves). */
static int conv3d_threads(const struct conv3d_shape *s, const struct conv3d_work *ws)
{
    double macs = (double)s->n * s->oc * s->c * s->kt * s->kh * s->kw * s->to * s->ho * s->wo;
    int nt = omp_in_parallel() || macs < 4194304.0 ? 1 : omp_get_max_threads();
    if (nt > ws->threads)
        nt = ws->threads;
    if (nt > s->n)
        nt = s->n;
    return nt < 1 ? 1 : nt;
}

/* vol2col of one kernel offset (a, b, horizontal shift d = e - pw) when the
 * conv keeps the width and has row and column stride 1: the rows of one
 * output frame come from consecutive input rows, so they are one long copy
 * shifted by d, with the d columns that crossed a row border zeroed after. */
static void vol2col_row_runs(float *dst, const float *xc, const struct conv3d_shape *s, int r0, int r1, int a, int b,
                             int d)
{
    const int W = s->w;
    const int64_t plane = (int64_t)s->h * W;
    for (int r = r0; r < r1;) {
        int fo = r / s->ho, ho0 = r % s->ho, end = (fo + 1) * s->ho < r1 ? (fo + 1) * s->ho : r1, n = end - r;
        float *d0 = dst + (int64_t)(r - r0) * W;
        int ti = fo * s->st - s->pt + a;
        r = end;
        if (ti < 0 || ti >= s->t) {
            memset(d0, 0, sizeof(float) * n * W);
            continue;
        }
        /* output rows ho0 .. ho0+n-1 read input rows ho - ph + b; valid in [0, H) */
        int front = s->ph - b - ho0, valid;
        front = front < 0 ? 0 : front > n ? n : front;
        valid = s->h + s->ph - b - (ho0 + front);
        valid = valid < 0 ? 0 : valid > n - front ? n - front : valid;
        int back = n - front - valid;
        if (front)
            memset(d0, 0, sizeof(float) * front * W);
        if (back)
            memset(d0 + (int64_t)(front + valid) * W, 0, sizeof(float) * back * W);
        if (!valid)
            continue;
        float *dd = d0 + (int64_t)front * W;
        if (d >= W || -d >= W) { /* the kernel reaches past the whole row: padding only */
            memset(dd, 0, sizeof(float) * valid * W);
            continue;
        }
        const float *ss = xc + ti * plane + (int64_t)(ho0 + front - s->ph + b) * W;
        int64_t len = (int64_t)valid * W;
        if (d >= 0) {
            memcpy(dd, ss + d, sizeof(float) * (len - d));
            for (int q = 0; q < valid; q++)
                memset(dd + (int64_t)q * W + W - d, 0, sizeof(float) * d);
        } else {
            memcpy(dd - d, ss, sizeof(float) * (len + d));
            for (int q = 0; q < valid; q++)
                memset(dd + (int64_t)q * W, 0, sizeof(float) * -d);
        }
    }
}

/* col K x P_tile <- one sample's input C x T x H x W, output rows [r0, r1)
 * (row r = to_index * HO + ho_index), K ordered (c, a, b, e) like the weight. */
static void vol2col(float *col, const float *x, const struct conv3d_shape *s, int r0, int r1)
{
    const int kvol = s->kt * s->kh * s->kw, K = s->c * kvol, wo = s->wo;
    const int64_t pt = (int64_t)(r1 - r0) * wo, plane = (int64_t)s->h * s->w;
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)K * pt))
    for (int k = 0; k < K; k++) {
        int c = k / kvol, a = (k / (s->kh * s->kw)) % s->kt, b = (k / s->kw) % s->kh, e = k % s->kw;
        const float *xc = x + (int64_t)c * s->t * plane;
        float *dst = col + (int64_t)k * pt;
        if (s->sh == 1 && s->sw == 1 && wo == s->w) {
            vol2col_row_runs(dst, xc, s, r0, r1, a, b, e - s->pw);
            continue;
        }
        for (int r = r0; r < r1; r++, dst += wo) {
            int ti = (r / s->ho) * s->st - s->pt + a, hi = (r % s->ho) * s->sh - s->ph + b;
            if (ti < 0 || ti >= s->t || hi < 0 || hi >= s->h) {
                memset(dst, 0, sizeof(float) * wo);
                continue;
            }
            const float *src = xc + ti * plane + (int64_t)hi * s->w;
            int wi = -s->pw + e;
            if (s->sw == 1) {
                /* contiguous run with zero borders */
                int lo = wi < 0 ? -wi : 0, hiw = s->w - wi; /* valid j in [lo, hiw) */
                if (hiw > wo)
                    hiw = wo;
                if (lo > wo)
                    lo = wo;
                for (int j = 0; j < lo; j++)
                    dst[j] = 0.f;
                if (hiw > lo)
                    memcpy(dst + lo, src + wi + lo, sizeof(float) * (hiw - lo));
                for (int j = hiw > lo ? hiw : lo; j < wo; j++)
                    dst[j] = 0.f;
            } else {
                for (int j = 0; j < wo; j++, wi += s->sw)
                    dst[j] = (wi >= 0 && wi < s->w) ? src[wi] : 0.f;
            }
        }
    }
}

/* dx C x T x H x W += col2vol(dcol K x P_tile) for output rows [r0, r1).
 * One thread per input channel, so no two threads add to the same element and
 * the order of additions is fixed. */
static void col2vol_add(float *dx, const float *dcol, const struct conv3d_shape *s, int r0, int r1)
{
    const int kvol = s->kt * s->kh * s->kw, wo = s->wo;
    const int64_t pt = (int64_t)(r1 - r0) * wo, plane = (int64_t)s->h * s->w;
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)s->c * kvol * pt))
    for (int c = 0; c < s->c; c++) {
        float *xc = dx + (int64_t)c * s->t * plane;
        for (int kk = 0; kk < kvol; kk++) {
            int a = kk / (s->kh * s->kw), b = (kk / s->kw) % s->kh, e = kk % s->kw;
            const float *src = dcol + ((int64_t)c * kvol + kk) * pt;
            for (int r = r0; r < r1; r++, src += wo) {
                int ti = (r / s->ho) * s->st - s->pt + a, hi = (r % s->ho) * s->sh - s->ph + b;
                if (ti < 0 || ti >= s->t || hi < 0 || hi >= s->h)
                    continue;
                float *dst = xc + ti * plane + (int64_t)hi * s->w;
                int wi = -s->pw + e;
                for (int j = 0; j < wo; j++, wi += s->sw)
                    if (wi >= 0 && wi < s->w)
                        dst[wi] += src[j];
            }
        }
    }
}

/* One sample: y OC x P = W . vol2col(x) (+ bias), tile by tile. */
static void conv_forward_sample(float *y, const float *x, const float *weight, const float *bias,
                                const struct conv3d_shape *s, float *col, size_t max_tile)
{
    const int K = s->c * s->kt * s->kh * s->kw, rows_all = s->to * s->ho;
    const int64_t P = (int64_t)rows_all * s->wo;
    if (conv3d_is_pointwise(s)) {
        /* y OC x P = W OC x C . x C x P */
        par_sgemm(CblasNoTrans, CblasNoTrans, s->oc, (int)P, K, 1.f, weight, K, x, (int)P, 0.f, y, (int)P);
    } else {
        int rows = conv3d_tile_rows(s, max_tile);
        for (int r0 = 0; r0 < rows_all; r0 += rows) {
            int r1 = r0 + rows > rows_all ? rows_all : r0 + rows, pt = (r1 - r0) * s->wo;
            vol2col(col, x, s, r0, r1);
            /* y[:, tile] OC x pt = W OC x K . col K x pt */
            par_sgemm(CblasNoTrans, CblasNoTrans, s->oc, pt, K, 1.f, weight, K, col, pt, 0.f,
                      y + (int64_t)r0 * s->wo, (int)P);
        }
    }
    if (bias) {
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)s->oc * P))
        for (int o = 0; o < s->oc; o++) {
            float *yo = y + o * P, bo = bias[o];
            for (int64_t p = 0; p < P; p++)
                yo[p] += bo;
        }
    }
}

/* Whole samples go to threads (one parallel region per call, each thread
 * with its own column tile); with fewer samples than threads, the threads
 * share each sample's products and copies instead. */
static void conv3d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                               const struct conv3d_shape *s, struct conv3d_work *ws)
{
    const int64_t P = (int64_t)s->to * s->ho * s->wo, in_sz = (int64_t)s->c * s->t * s->h * s->w;
    const size_t tile = conv3d_thread_tile(s, ws->max_tile_floats);
    int nt = conv3d_threads(s, ws);
    if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int n = 0; n < s->n; n++)
            conv_forward_sample(out + n * (int64_t)s->oc * P, inp + n * in_sz, weight, bias, s,
                                ws->buf + (size_t)omp_get_thread_num() * tile, ws->max_tile_floats);
        return;
    }
    for (int n = 0; n < s->n; n++)
        conv_forward_sample(out + n * (int64_t)s->oc * P, inp + n * in_sz, weight, bias, s, ws->buf,
                            ws->max_tile_floats);
}

void conv3d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const struct conv3d_shape *s, struct conv3d_work *ws)
{
    int planned = conv3d_work_plan(ws, s, bias != NULL, NULL, 0) == 0;
    if (planned && ws->impl == CONV3D_DNNL && conv3d_dnnl_forward(out, inp, weight, bias, s, ws) == 0)
        return;
    if (!conv3d_ref_ready(s, ws)) {
        fill_nan(out, (int64_t)s->n * s->oc * s->to * s->ho * s->wo);
        return;
    }
    const double t0 = now_s();
    conv3d_forward_ref(out, inp, weight, bias, s, ws);
    ws->seconds[CONV3D_FWD] += now_s() - t0;
}

/* One sample: dW (first ? = : +=) g . vol2col(x)^T; dx = col2vol(W^T . g)
 * (dx NULL: skipped). */
static void conv_backward_sample(float *dx, float *dw, int first, const float *g, const float *x,
                                 const float *weight, const struct conv3d_shape *s, float *col, size_t max_tile)
{
    const int K = s->c * s->kt * s->kh * s->kw, rows_all = s->to * s->ho;
    const int64_t P = (int64_t)rows_all * s->wo, in_sz = (int64_t)s->c * s->t * s->h * s->w;
    if (conv3d_is_pointwise(s)) {
        /* dW OC x C (+)= g OC x P . x^T P x C */
        par_sgemm(CblasNoTrans, CblasTrans, s->oc, K, (int)P, 1.f, g, (int)P, x, (int)P, first ? 0.f : 1.f, dw, K);
        if (dx) /* dx C x P = W^T C x OC . g OC x P */
            par_sgemm(CblasTrans, CblasNoTrans, K, (int)P, s->oc, 1.f, weight, K, g, (int)P, 0.f, dx, (int)P);
        return;
    }
    if (dx)
        memset(dx, 0, sizeof(float) * in_sz);
    int rows = conv3d_tile_rows(s, max_tile);
    for (int r0 = 0; r0 < rows_all; r0 += rows) {
        int r1 = r0 + rows > rows_all ? rows_all : r0 + rows, pt = (r1 - r0) * s->wo;
        const float *gt = g + (int64_t)r0 * s->wo;
        vol2col(col, x, s, r0, r1);
        /* dW OC x K (+)= g[:, tile] OC x pt . col^T pt x K */
        par_sgemm(CblasNoTrans, CblasTrans, s->oc, K, pt, 1.f, gt, (int)P, col, pt, (first && r0 == 0) ? 0.f : 1.f,
                  dw, K);
        if (dx) {
            /* dcol K x pt = W^T K x OC . g[:, tile] OC x pt (reuses the column buffer) */
            par_sgemm(CblasTrans, CblasNoTrans, K, pt, s->oc, 1.f, weight, K, gt, (int)P, 0.f, col, pt);
            col2vol_add(dx, col, s, r0, r1);
        }
    }
}

/* Samples are split into one contiguous run per thread; each thread sums its
 * run's weight gradient into its own buffer (thread 0 into dweight) and the
 * buffers are added in thread order: deterministic for a thread count, and
 * a different thread count changes the rounding of dweight only. */
static void conv3d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                const float *weight, const struct conv3d_shape *s, struct conv3d_work *ws)
{
    const int K = s->c * s->kt * s->kh * s->kw;
    const int64_t P = (int64_t)s->to * s->ho * s->wo, in_sz = (int64_t)s->c * s->t * s->h * s->w;
    const int64_t wsize = (int64_t)s->oc * K;
    if (dbias) {
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)s->n * s->oc * P))
        for (int o = 0; o < s->oc; o++) {
            double acc = 0;
            for (int n = 0; n < s->n; n++) {
                const float *g = dout + ((int64_t)n * s->oc + o) * P;
                for (int64_t p = 0; p < P; p++)
                    acc += g[p];
            }
            dbias[o] = (float)acc;
        }
    }
    const size_t tile = conv3d_thread_tile(s, ws->max_tile_floats);
    int nt = conv3d_threads(s, ws);
    float *partial = ws->buf + (size_t)nt * tile, *wflip = NULL;
    struct conv3d_shape d;
    if (dinp && conv3d_dx_as_conv(s)) {
        /* wflip C x OC x kT x kH x kW = W OC x C x kT x kH x kW flipped in space */
        const int kvol = s->kt * s->kh * s->kw;
        wflip = partial + (size_t)(nt - 1) * wsize;
        d = conv3d_dx_shape(s);
#pragma omp parallel for schedule(static) if(PAR_WORTH(wsize))
        for (int c = 0; c < s->c; c++)
            for (int o = 0; o < s->oc; o++)
                for (int k = 0; k < kvol; k++)
                    wflip[((int64_t)c * s->oc + o) * kvol + k] = weight[((int64_t)o * s->c + c) * kvol + kvol - 1 - k];
    }
#pragma omp parallel num_threads(nt) if(nt > 1)
    {
        int t = omp_get_thread_num(), n0 = t * s->n / nt, n1 = (t + 1) * s->n / nt;
        float *dw = t == 0 ? dweight : partial + (size_t)(t - 1) * wsize, *col = ws->buf + (size_t)t * tile;
        for (int n = n0; n < n1; n++) {
            const float *g = dout + n * (int64_t)s->oc * P;
            conv_backward_sample(dinp && !wflip ? dinp + n * in_sz : NULL, dw, n == n0, g, inp + n * in_sz, weight, s,
                                 col, ws->max_tile_floats);
            if (wflip) /* dx C x T x H x W = conv(dout OC x TO x HO x WO, wflip) */
                conv_forward_sample(dinp + n * in_sz, g, wflip, NULL, &d, col, ws->max_tile_floats);
        }
    }
    if (nt <= 1)
        return;
#pragma omp parallel for schedule(static) if(PAR_WORTH(wsize))
    for (int64_t i = 0; i < wsize; i++) {
        float v = dweight[i];
        for (int t = 1; t < nt; t++)
            v += partial[(size_t)(t - 1) * wsize + i];
        dweight[i] = v;
    }
}

void conv3d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, const struct conv3d_shape *s, struct conv3d_work *ws)
{
    int planned = conv3d_work_plan(ws, s, dbias != NULL, NULL, 0) == 0;
    if (planned && ws->impl == CONV3D_DNNL &&
        conv3d_dnnl_backward(dinp, dweight, dbias, dout, inp, weight, s, ws) == 0)
        return;
    if (!conv3d_ref_ready(s, ws)) {
        fill_nan(dinp, (int64_t)s->n * s->c * s->t * s->h * s->w);
        fill_nan(dweight, (int64_t)s->oc * s->c * s->kt * s->kh * s->kw);
        fill_nan(dbias, dbias ? s->oc : 0);
        return;
    }
    const double t0 = now_s();
    conv3d_backward_ref(dinp, dweight, dbias, dout, inp, weight, s, ws);
    ws->seconds[CONV3D_BWD_WEIGHTS] += now_s() - t0;
}


/* ---------------------------------------------------------------- batchnorm3d */

void batchnorm3d_forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean,
                               float *running_var, const float *inp, const float *gamma, const float *beta,
                               int n, int c, int64_t s, float momentum, float eps)
{
    const double m = (double)n * s;
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)n * c * s))
    for (int ch = 0; ch < c; ch++) {
        double sum = 0, sq = 0;
        for (int i = 0; i < n; i++) {
            const float *x = inp + ((int64_t)i * c + ch) * s;
            for (int64_t p = 0; p < s; p++)
                sum += x[p];
        }
        double mean = sum / m;
        for (int i = 0; i < n; i++) {
            const float *x = inp + ((int64_t)i * c + ch) * s;
            for (int64_t p = 0; p < s; p++) {
                double d = x[p] - mean;
                sq += d * d;
            }
        }
        double var = sq / m;
        float rstd = (float)(1.0 / sqrt(var + eps));
        save_mean[ch] = (float)mean;
        save_rstd[ch] = rstd;
        running_mean[ch] = (1.f - momentum) * running_mean[ch] + momentum * (float)mean;
        running_var[ch] = (1.f - momentum) * running_var[ch] + momentum * (float)(m > 1 ? sq / (m - 1) : var);
        float sc = gamma[ch] * rstd, sh = beta[ch] - (float)mean * sc;
        for (int i = 0; i < n; i++) {
            const float *x = inp + ((int64_t)i * c + ch) * s;
            float *y = out + ((int64_t)i * c + ch) * s;
            for (int64_t p = 0; p < s; p++)
                y[p] = x[p] * sc + sh;
        }
    }
}

void batchnorm3d_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var, int n, int c, int64_t s,
                              float eps)
{
#pragma omp parallel for schedule(static) collapse(2) if(PAR_WORTH((int64_t)n * c * s))
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            float sc = gamma[ch] / sqrtf(running_var[ch] + eps), sh = beta[ch] - running_mean[ch] * sc;
            const float *x = inp + ((int64_t)i * c + ch) * s;
            float *y = out + ((int64_t)i * c + ch) * s;
            for (int64_t p = 0; p < s; p++)
                y[p] = x[p] * sc + sh;
        }
}

void batchnorm3d_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                          const float *gamma, const float *save_mean, const float *save_rstd, int n, int c,
                          int64_t s)
{
    const double m = (double)n * s;
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)n * c * s))
    for (int ch = 0; ch < c; ch++) {
        double sg = 0, sgx = 0;
        const float mean = save_mean[ch], rstd = save_rstd[ch];
        for (int i = 0; i < n; i++) {
            const float *x = inp + ((int64_t)i * c + ch) * s, *g = dout + ((int64_t)i * c + ch) * s;
            for (int64_t p = 0; p < s; p++) {
                sg += g[p];
                sgx += g[p] * ((x[p] - mean) * rstd);
            }
        }
        dbeta[ch] = (float)sg;
        dgamma[ch] = (float)sgx;
        /* dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat)) */
        const float k = gamma[ch] * rstd, mg = (float)(sg / m), mgx = (float)(sgx / m);
        for (int i = 0; i < n; i++) {
            const float *x = inp + ((int64_t)i * c + ch) * s, *g = dout + ((int64_t)i * c + ch) * s;
            float *dx = dinp + ((int64_t)i * c + ch) * s;
            for (int64_t p = 0; p < s; p++)
                dx[p] = k * (g[p] - mg - (x[p] - mean) * rstd * mgx);
        }
    }
}

/* Channel-blocked batchnorm (channels-last is blk = c): each block of blk
 * channels holds, per sample, S rows of blk lanes; a channel's rows are the
 * N*S rows of its block in (sample, position) order. The per-channel sums
 * are taken over fixed runs of BN_ROWS of those rows (each run's partial sums
 * in double, runs and channel blocks in parallel), then added run by run in
 * order: the same order whatever the thread count, and for blk = c the
 * order the channels-last layers have always had. */
#define BN_ROWS 256

/* The channels per block, the blocks and the padded channel count of a
 * blocked tensor; and the lanes of block cb that are channels (the rest is
 * padding). */
struct blk_geom {
    int blk, nb, cp;
};
static struct blk_geom blk_geom(int c, int blk)
{
    struct blk_geom g = {blk, (c + blk - 1) / blk, 0};
    g.cp = g.nb * blk;
    return g;
}
static inline int blk_lanes(int c, int blk, int cb)
{
    return c - cb * blk < blk ? c - cb * blk : blk;
}

/* The first moment sums of a run: part[r * 2cp + ch] = the sum over run r
 * of the rows of x[ch] - pivot[ch], part[r * 2cp + cp + ch] that of its
 * square (pivot: cp entries, a value of each channel, which keeps the
 * one-pass variance as accurate as the two-pass one in double) */
static void blk_moment_sums(double *part, const float *x, int n, int64_t s, struct blk_geom g, const float *pivot)
{
    const int64_t rows = (int64_t)n * s, runs = (rows + BN_ROWS - 1) / BN_ROWS;
    const int blk = g.blk;
#pragma omp parallel for schedule(static) collapse(2) if(PAR_WORTH(rows * g.cp))
    for (int64_t r = 0; r < runs; r++)
        for (int cb = 0; cb < g.nb; cb++) {
            double *a1 = part + r * 2 * g.cp + (int64_t)cb * blk, *a2 = a1 + g.cp;
            const float *pv = pivot + (int64_t)cb * blk;
            for (int j = 0; j < blk; j++)
                a1[j] = a2[j] = 0;
            const int64_t r0 = r * BN_ROWS, r1 = r0 + BN_ROWS < rows ? r0 + BN_ROWS : rows;
            int64_t i = r0 / s, p = r0 % s;
            for (int64_t q = r0; q < r1; q++) {
                const float *xr = x + ((i * g.nb + cb) * s + p) * blk;
#pragma omp simd
                for (int j = 0; j < blk; j++) {
                    double d = (double)xr[j] - pv[j];
                    a1[j] += d;
                    a2[j] += d * d;
                }
                if (++p == s)
                    p = 0, i++;
            }
        }
}

/* out[ch] = the sum over runs of part[r * stride + ch], in run order */
static void bn_combine(double *out, const double *part, int64_t runs, int64_t stride, int c)
{
    for (int ch = 0; ch < c; ch++)
        out[ch] = 0;
    for (int64_t r = 0; r < runs; r++)
        for (int ch = 0; ch < c; ch++)
            out[ch] += part[r * stride + ch];
}

/* out = x * sc + sh per channel, plus res (NULL: none), then relu (with
 * relu); padding lanes written zero. In place allowed. */
static void bn_apply_blk(float *out, const float *inp, const float *res, const float *sc, const float *sh, int n,
                         int c, int64_t s, int blk, int relu)
{
    const struct blk_geom g = blk_geom(c, blk);
    /* rows of blk lanes: (sample, block, position) */
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)n * g.cp * s))
    for (int64_t q = 0; q < (int64_t)n * g.nb * s; q++) {
        const int cb = (int)(q / s % g.nb), lanes = blk_lanes(c, blk, cb);
        const float *x = inp + q * blk, *a = sc + cb * blk, *b = sh + cb * blk, *rr = res ? res + q * blk : NULL;
        float *y = out + q * blk;
        if (rr) {
#pragma omp simd
            for (int j = 0; j < lanes; j++) {
                float v = (x[j] * a[j] + b[j]) + rr[j];
                y[j] = relu && !(v > 0.f) ? 0.f : v;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < lanes; j++) {
                float v = x[j] * a[j] + b[j];
                y[j] = relu && !(v > 0.f) ? 0.f : v;
            }
        }
        for (int j = lanes; j < blk; j++)
            y[j] = 0.f;
    }
}

/* out = batchnorm(inp) [+ res] [then relu]: the statistics in one pass over
 * the rows (moments about a pivot), the normalisation in a second */
static void bn_train_blk(float *out, float *save_mean, float *save_rstd, float *running_mean, float *running_var,
                         const float *inp, const float *res, const float *gamma, const float *beta, int n, int c,
                         int64_t s, float momentum, float eps, int relu, int blk)
{
    const struct blk_geom g = blk_geom(c, blk);
    const int64_t rows = (int64_t)n * s, runs = (rows + BN_ROWS - 1) / BN_ROWS;
    const double m = (double)rows;
    double *part = malloc(sizeof(double) * 2 * (size_t)(runs * g.cp)), *sum = malloc(sizeof(double) * 2 * (size_t)g.cp);
    float *sc = malloc(sizeof(float) * 3 * (size_t)g.cp), *sh = sc + g.cp, *pivot = sh + g.cp;
    if (!part || !sum || !sc) { /* a few hundred KB; NaN rather than silently wrong */
        free(part), free(sum), free(sc);
        fill_nan(out, (int64_t)n * g.cp * s);
        return;
    }
    for (int ch = 0; ch < g.cp; ch++) /* sample 0, position 0 */
        pivot[ch] = ch < c ? inp[(int64_t)(ch / blk) * s * blk + ch % blk] : 0.f;
    blk_moment_sums(part, inp, n, s, g, pivot);
    bn_combine(sum, part, runs, 2 * g.cp, 2 * g.cp);
    for (int ch = 0; ch < g.cp; ch++) {
        sc[ch] = sh[ch] = 0.f; /* padding */
        if (ch >= c)
            continue;
        double d = sum[ch] / m, mean = pivot[ch] + d;
        double sq = sum[g.cp + ch] - sum[ch] * d; /* the squared deviations from the mean */
        if (sq < 0)
            sq = 0;
        double var = sq / m;
        float rstd = (float)(1.0 / sqrt(var + eps));
        save_mean[ch] = (float)mean;
        save_rstd[ch] = rstd;
        running_mean[ch] = (1.f - momentum) * running_mean[ch] + momentum * (float)mean;
        running_var[ch] = (1.f - momentum) * running_var[ch] + momentum * (float)(m > 1 ? sq / (m - 1) : var);
        sc[ch] = gamma[ch] * rstd;
        sh[ch] = beta[ch] - (float)mean * sc[ch];
    }
    bn_apply_blk(out, inp, res, sc, sh, n, c, s, blk, relu);
    free(part), free(sum), free(sc);
}

void batchnorm3d_forward_train_blk(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                   float *running_var, const float *inp, const float *gamma, const float *beta,
                                   int n, int c, int64_t s, float momentum, float eps, int blk)
{
    bn_train_blk(out, save_mean, save_rstd, running_mean, running_var, inp, NULL, gamma, beta, n, c, s, momentum, eps,
                 0, blk);
}

void batchnorm3d_relu_forward_train_blk(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                        float *running_var, const float *inp, const float *gamma,
                                        const float *beta, int n, int c, int64_t s, float momentum, float eps,
                                        int blk)
{
    bn_train_blk(out, save_mean, save_rstd, running_mean, running_var, inp, NULL, gamma, beta, n, c, s, momentum, eps,
                 1, blk);
}

void batchnorm3d_add_relu_forward_train_blk(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                            float *running_var, const float *inp, const float *res,
                                            const float *gamma, const float *beta, int n, int c, int64_t s,
                                            float momentum, float eps, int blk)
{
    bn_train_blk(out, save_mean, save_rstd, running_mean, running_var, inp, res, gamma, beta, n, c, s, momentum, eps,
                 1, blk);
}

static void bn_eval_blk(float *out, const float *inp, const float *res, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, int n, int c, int64_t s, float eps,
                        int relu, int blk)
{
    const struct blk_geom g = blk_geom(c, blk);
    float *sc = malloc(sizeof(float) * 2 * (size_t)g.cp), *sh = sc + g.cp;
    if (!sc) {
        fill_nan(out, (int64_t)n * g.cp * s);
        return;
    }
    for (int ch = 0; ch < g.cp; ch++) {
        sc[ch] = ch < c ? gamma[ch] / sqrtf(running_var[ch] + eps) : 0.f;
        sh[ch] = ch < c ? beta[ch] - running_mean[ch] * sc[ch] : 0.f;
    }
    bn_apply_blk(out, inp, res, sc, sh, n, c, s, blk, relu);
    free(sc);
}

void batchnorm3d_forward_eval_blk(float *out, const float *inp, const float *gamma, const float *beta,
                                  const float *running_mean, const float *running_var, int n, int c, int64_t s,
                                  float eps, int blk)
{
    bn_eval_blk(out, inp, NULL, gamma, beta, running_mean, running_var, n, c, s, eps, 0, blk);
}

void batchnorm3d_relu_forward_eval_blk(float *out, const float *inp, const float *gamma, const float *beta,
                                       const float *running_mean, const float *running_var, int n, int c,
                                       int64_t s, float eps, int blk)
{
    bn_eval_blk(out, inp, NULL, gamma, beta, running_mean, running_var, n, c, s, eps, 1, blk);
}

void batchnorm3d_add_relu_forward_eval_blk(float *out, const float *inp, const float *res, const float *gamma,
                                           const float *beta, const float *running_mean, const float *running_var,
                                           int n, int c, int64_t s, float eps, int blk)
{
    bn_eval_blk(out, inp, res, gamma, beta, running_mean, running_var, n, c, s, eps, 1, blk);
}

/* The batchnorm backward's loops go by chunks of BN_CHUNK lanes in blocks
 * of at most 2 * BN_CHUNK channels (oneDNN's 8 and 16): a chunk's sums and
 * coefficients stay in registers while the loop walks the rows. Wider
 * blocks (channels-last) are walked whole, row by row. Either way each lane
 * sums its rows in the same order. */
#define BN_CHUNK 8
/* rows per tile of the input gradient's loop: a tile stays in cache while
 * the loop walks its chunks */
#define BN_TILE 64

/* g where v (the relu's input) is positive, or everywhere when relu is 0;
 * else +0. A bit mask rather than `v > 0 ? g : 0`, whose conditional read
 * GCC neither vectorizes nor if-converts: with the relu masks of training
 * (half the lanes, at random) the branch costs 5x in the backward passes. */
static inline __attribute__((always_inline)) float relu_pass(float g, float v, int relu)
{
    uint32_t gb, mask = -(uint32_t)((v > 0.f) | !relu);
    memcpy(&gb, &g, sizeof gb);
    gb &= mask;
    memcpy(&g, &gb, sizeof g);
    return g;
}

/* Per channel (cp entries, padding zero): mean, rstd, gamma * rstd (the
 * forward's sc), the forward's sh, mean(g), mean(g * xhat). */
struct bn_coef {
    float *mu, *rs, *a, *b, *mg, *mgx;
};

/* the backward's sums over rows r0..r1 of block cb for lanes j0..j0+nl:
 * ag = sum g, agx = sum g * xhat, g masked by the recomputed relu (relu) */
static inline __attribute__((always_inline)) void bn_bwd_sums(double *restrict ag, double *restrict agx,
                                                              const float *restrict dout,
                                                              const float *restrict inp, struct bn_coef k,
                                                              int64_t r0, int64_t r1, int64_t s, struct blk_geom g,
                                                              int cb, int j0, int nl, int relu)
{
    const float *restrict mu = k.mu + cb * g.blk + j0, *restrict rs = k.rs + cb * g.blk + j0;
    const float *restrict a = k.a + cb * g.blk + j0, *restrict b = k.b + cb * g.blk + j0;
    for (int j = 0; j < nl; j++)
        ag[j] = agx[j] = 0;
    int64_t i = r0 / s, p = r0 % s;
    for (int64_t q = r0; q < r1; q++) {
        const int64_t at = ((i * g.nb + cb) * s + p) * g.blk + j0;
        const float *x = inp + at, *d = dout + at;
#pragma omp simd
        for (int j = 0; j < nl; j++) {
            const float gv = relu_pass(d[j], x[j] * a[j] + b[j], relu);
            ag[j] += gv;
            agx[j] += gv * ((x[j] - mu[j]) * rs[j]);
        }
        if (++p == s)
            p = 0, i++;
    }
}

/* the same for BN_CHUNK lanes, the sums in registers */
static void bn_bwd_sums_chunk(double *ag, double *agx, const float *dout, const float *inp, struct bn_coef k,
                              int64_t r0, int64_t r1, int64_t s, struct blk_geom g, int cb, int j0, int relu)
{
    double sg[BN_CHUNK], sgx[BN_CHUNK];
    bn_bwd_sums(sg, sgx, dout, inp, k, r0, r1, s, g, cb, j0, BN_CHUNK, relu);
    for (int j = 0; j < BN_CHUNK; j++)
        ag[j] = sg[j], agx[j] = sgx[j];
}

/* dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat)) for rows q0..q1
 * (rows of the blocked tensor, all in block cb) and lanes j0..j0+nl */
static inline __attribute__((always_inline)) void bn_bwd_dx(float *restrict dinp, const float *restrict dout,
                                                            const float *restrict inp, struct bn_coef k, int64_t q0,
                                                            int64_t q1, int blk, int cb, int j0, int nl, int relu)
{
    const int64_t o = (int64_t)cb * blk + j0;
    const float *restrict mu = k.mu + o, *restrict rs = k.rs + o, *restrict a = k.a + o, *restrict b = k.b + o;
    const float *restrict mg = k.mg + o, *restrict mgx = k.mgx + o;
    for (int64_t q = q0; q < q1; q++) {
        const int64_t at = q * blk + j0;
        const float *x = inp + at, *d = dout + at;
        float *dx = dinp + at;
#pragma omp simd
        for (int j = 0; j < nl; j++) {
            const float gv = relu_pass(d[j], x[j] * a[j] + b[j], relu);
            dx[j] = a[j] * (gv - mg[j] - (x[j] - mu[j]) * rs[j] * mgx[j]);
        }
    }
}

static void bn_bwd_dx_chunk(float *dinp, const float *dout, const float *inp, struct bn_coef k, int64_t q0,
                            int64_t q1, int blk, int cb, int j0, int relu)
{
    bn_bwd_dx(dinp, dout, inp, k, q0, q1, blk, cb, j0, BN_CHUNK, relu);
}

/* beta NULL: batchnorm's backward; else that of relu(batchnorm(.)): the
 * gradient passes where the forward's value before the relu, inp * sc + sh
 * with sc = gamma * rstd and sh = beta - mean * sc, was positive (recomputed
 * with the forward's arithmetic, so the same mask as its output's, without
 * reading that output) */
static void bn_backward_blk(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                            const float *gamma, const float *beta, const float *save_mean, const float *save_rstd,
                            int n, int c, int64_t s, int blk)
{
    const struct blk_geom g = blk_geom(c, blk);
    const int64_t rows = (int64_t)n * s, runs = (rows + BN_ROWS - 1) / BN_ROWS, cp2 = 2 * (int64_t)g.cp;
    const int chunk = blk <= 2 * BN_CHUNK ? BN_CHUNK : blk, chunks = (blk + chunk - 1) / chunk;
    const double m = (double)rows;
    const int relu = beta != NULL;
    double *part = malloc(sizeof(double) * (size_t)(runs * cp2)), *sg = malloc(sizeof(double) * (size_t)cp2);
    double *sgx = sg + g.cp;
    float *kf = calloc(6 * (size_t)g.cp, sizeof(float));
    if (!part || !sg || !kf) {
        free(part), free(sg), free(kf);
        fill_nan(dinp, (int64_t)n * g.cp * s), fill_nan(dgamma, c), fill_nan(dbeta, c);
        return;
    }
    struct bn_coef k = {kf, kf + g.cp, kf + 2 * g.cp, kf + 3 * g.cp, kf + 4 * g.cp, kf + 5 * g.cp};
    for (int ch = 0; ch < c; ch++) {
        k.mu[ch] = save_mean[ch];
        k.rs[ch] = save_rstd[ch];
        k.a[ch] = gamma[ch] * k.rs[ch];
        k.b[ch] = relu ? beta[ch] - k.mu[ch] * k.a[ch] : 0.f;
    }
    const int par = PAR_WORTH(rows * g.cp);
#pragma omp parallel for schedule(static) collapse(2) if(par)
    for (int64_t r = 0; r < runs; r++)
        for (int cb = 0; cb < g.nb; cb++) {
            const int64_t r0 = r * BN_ROWS, r1 = r0 + BN_ROWS < rows ? r0 + BN_ROWS : rows;
            for (int h = 0; h < chunks; h++) {
                const int j0 = h * chunk, nl = blk - j0 < chunk ? blk - j0 : chunk;
                double *ag = part + r * cp2 + (int64_t)cb * blk + j0, *agx = ag + g.cp;
                if (nl == BN_CHUNK)
                    bn_bwd_sums_chunk(ag, agx, dout, inp, k, r0, r1, s, g, cb, j0, relu);
                else
                    bn_bwd_sums(ag, agx, dout, inp, k, r0, r1, s, g, cb, j0, nl, relu);
            }
        }
    bn_combine(sg, part, runs, cp2, g.cp);
    bn_combine(sgx, part + g.cp, runs, cp2, g.cp);
    for (int ch = 0; ch < c; ch++) {
        dbeta[ch] = (float)sg[ch];
        dgamma[ch] = (float)sgx[ch];
        k.mg[ch] = (float)(sg[ch] / m);
        k.mgx[ch] = (float)(sgx[ch] / m);
    }
    /* tiles of rows of a (sample, block) slab; padding lanes written zero */
    const int64_t tiles = (s + BN_TILE - 1) / BN_TILE;
#pragma omp parallel for schedule(static) if(par)
    for (int64_t t = 0; t < (int64_t)n * g.nb * tiles; t++) {
        const int64_t slab = t / tiles, p0 = t % tiles * BN_TILE, p1 = p0 + BN_TILE < s ? p0 + BN_TILE : s;
        const int cb = (int)(slab % g.nb), lanes = blk_lanes(c, blk, cb);
        const int64_t q0 = slab * s + p0, q1 = slab * s + p1;
        for (int h = 0; h < chunks; h++) {
            const int j0 = h * chunk, nl = blk - j0 < chunk ? blk - j0 : chunk;
            if (nl == BN_CHUNK)
                bn_bwd_dx_chunk(dinp, dout, inp, k, q0, q1, blk, cb, j0, relu);
            else
                bn_bwd_dx(dinp, dout, inp, k, q0, q1, blk, cb, j0, nl, relu);
        }
        if (lanes < blk)
            for (int64_t q = q0; q < q1; q++)
                for (int j = lanes; j < blk; j++)
                    dinp[q * blk + j] = 0.f;
    }
    free(part), free(sg), free(kf);
}

void batchnorm3d_backward_blk(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                              const float *gamma, const float *save_mean, const float *save_rstd, int n, int c,
                              int64_t s, int blk)
{
    bn_backward_blk(dinp, dgamma, dbeta, dout, inp, gamma, NULL, save_mean, save_rstd, n, c, s, blk);
}

void batchnorm3d_relu_backward_blk(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                   const float *gamma, const float *beta, const float *save_mean,
                                   const float *save_rstd, int n, int c, int64_t s, int blk)
{
    bn_backward_blk(dinp, dgamma, dbeta, dout, inp, gamma, beta, save_mean, save_rstd, n, c, s, blk);
}

/* the channels-last twins: one block of c channels */
void batchnorm3d_forward_train_cl(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                  float *running_var, const float *inp, const float *gamma, const float *beta,
                                  int n, int c, int64_t s, float momentum, float eps)
{
    bn_train_blk(out, save_mean, save_rstd, running_mean, running_var, inp, NULL, gamma, beta, n, c, s, momentum, eps,
                 0, c);
}

void batchnorm3d_relu_forward_train_cl(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                       float *running_var, const float *inp, const float *gamma, const float *beta,
                                       int n, int c, int64_t s, float momentum, float eps)
{
    bn_train_blk(out, save_mean, save_rstd, running_mean, running_var, inp, NULL, gamma, beta, n, c, s, momentum, eps,
                 1, c);
}

void batchnorm3d_forward_eval_cl(float *out, const float *inp, const float *gamma, const float *beta,
                                 const float *running_mean, const float *running_var, int n, int c, int64_t s,
                                 float eps)
{
    bn_eval_blk(out, inp, NULL, gamma, beta, running_mean, running_var, n, c, s, eps, 0, c);
}

void batchnorm3d_relu_forward_eval_cl(float *out, const float *inp, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var, int n, int c, int64_t s,
                                      float eps)
{
    bn_eval_blk(out, inp, NULL, gamma, beta, running_mean, running_var, n, c, s, eps, 1, c);
}

void batchnorm3d_backward_cl(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                             const float *gamma, const float *save_mean, const float *save_rstd, int n, int c,
                             int64_t s)
{
    bn_backward_blk(dinp, dgamma, dbeta, dout, inp, gamma, NULL, save_mean, save_rstd, n, c, s, c);
}

void batchnorm3d_relu_backward_cl(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                  const float *gamma, const float *beta, const float *save_mean,
                                  const float *save_rstd, int n, int c, int64_t s)
{
    bn_backward_blk(dinp, dgamma, dbeta, dout, inp, gamma, beta, save_mean, save_rstd, n, c, s, c);
}

/* ---------------------------------------------------------------- relu */

void relu_forward(float *out, const float *inp, int64_t count)
{
#pragma omp parallel for schedule(static) if(PAR_WORTH(count))
    for (int64_t i = 0; i < count; i++)
        out[i] = inp[i] > 0.f ? inp[i] : 0.f;
}

void relu_backward(float *dinp, const float *dout, const float *out, int64_t count)
{
#pragma omp parallel for schedule(static) if(PAR_WORTH(count))
    for (int64_t i = 0; i < count; i++)
        dinp[i] = relu_pass(dout[i], out[i], 1);
}

void add_relu_backward(float *dinp, const float *dadd, const float *out, int64_t count)
{
#pragma omp parallel for schedule(static) if(PAR_WORTH(count))
    for (int64_t i = 0; i < count; i++) {
        dinp[i] = relu_pass(dinp[i] + dadd[i], out[i], 1);
    }
}

/* ---------------------------------------------------------------- maxpool3d */

void maxpool3d_forward(float *out, int32_t *argmax, const float *inp, const struct conv3d_shape *s)
{
    const int64_t plane = (int64_t)s->t * s->h * s->w, oplane = (int64_t)s->to * s->ho * s->wo;
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)s->n * s->c * plane))
    for (int64_t nc = 0; nc < (int64_t)s->n * s->c; nc++) {
        const float *x = inp + nc * plane;
        float *y = out + nc * oplane;
        int32_t *am = argmax + nc * oplane;
        for (int ot = 0; ot < s->to; ot++)
            for (int oh = 0; oh < s->ho; oh++)
                for (int ow = 0; ow < s->wo; ow++) {
                    float best = -INFINITY;
                    int32_t bi = -1;
                    for (int a = 0; a < s->kt; a++) {
                        int ti = ot * s->st - s->pt + a;
                        if (ti < 0 || ti >= s->t)
                            continue;
                        for (int b = 0; b < s->kh; b++) {
                            int hi = oh * s->sh - s->ph + b;
                            if (hi < 0 || hi >= s->h)
                                continue;
                            for (int e = 0; e < s->kw; e++) {
                                int wi = ow * s->sw - s->pw + e;
                                if (wi < 0 || wi >= s->w)
                                    continue;
                                int32_t idx = (ti * s->h + hi) * s->w + wi;
                                float v = x[idx];
                                if (v > best || bi < 0 || isnan(v)) {
                                    best = v;
                                    bi = idx;
                                }
                            }
                        }
                    }
                    int64_t o = ((int64_t)ot * s->ho + oh) * s->wo + ow;
                    y[o] = best;
                    am[o] = bi;
                }
    }
}

void maxpool3d_backward(float *dinp, const float *dout, const int32_t *argmax, const struct conv3d_shape *s)
{
    const int64_t plane = (int64_t)s->t * s->h * s->w, oplane = (int64_t)s->to * s->ho * s->wo;
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)s->n * s->c * plane))
    for (int64_t nc = 0; nc < (int64_t)s->n * s->c; nc++) {
        float *dx = dinp + nc * plane;
        memset(dx, 0, sizeof(float) * plane);
        const float *g = dout + nc * oplane;
        const int32_t *am = argmax + nc * oplane;
        for (int64_t o = 0; o < oplane; o++)
            if (am[o] >= 0)
                dx[am[o]] += g[o];
    }
}

/* A window position's taps in window order, -1 for padding: the common
 * walk of both maxpool layouts. Returns the count (kt*kh*kw). */
static int pool_taps(int32_t *idx, const struct conv3d_shape *s, int ot, int oh, int ow)
{
    int k = 0;
    for (int a = 0; a < s->kt; a++)
        for (int b = 0; b < s->kh; b++)
            for (int e = 0; e < s->kw; e++) {
                int ti = ot * s->st - s->pt + a, hi = oh * s->sh - s->ph + b, wi = ow * s->sw - s->pw + e;
                idx[k++] = ti < 0 || ti >= s->t || hi < 0 || hi >= s->h || wi < 0 || wi >= s->w
                               ? -1
                               : (ti * s->h + hi) * s->w + wi;
            }
    return k;
}

/* Each thread takes whole output positions of a block's lanes; per lane
 * the same comparisons in the same order as maxpool3d_forward. */
void maxpool3d_forward_blk(float *out, int32_t *argmax, const float *inp, const struct conv3d_shape *s, int blk)
{
    const struct blk_geom g = blk_geom(s->c, blk);
    const int64_t plane = (int64_t)s->t * s->h * s->w, oplane = (int64_t)s->to * s->ho * s->wo;
#pragma omp parallel if(PAR_WORTH((int64_t)s->n * g.cp * plane))
    {
        int32_t *idx = __builtin_alloca(sizeof(int32_t) * (size_t)s->kt * s->kh * s->kw);
#pragma omp for schedule(static)
        for (int64_t q = 0; q < (int64_t)s->n * g.nb * oplane; q++) {
            const int64_t slab = q / oplane, o = q % oplane; /* slab: (sample, block) */
            const int ow = (int)(o % s->wo), oh = (int)(o / s->wo % s->ho), ot = (int)(o / ((int64_t)s->wo * s->ho));
            const int taps = pool_taps(idx, s, ot, oh, ow);
            float *y = out + q * blk;
            int32_t *am = argmax + q * blk;
            for (int j = 0; j < blk; j++)
                y[j] = -INFINITY, am[j] = -1;
            for (int k = 0; k < taps; k++) {
                if (idx[k] < 0)
                    continue;
                const float *x = inp + (slab * plane + idx[k]) * blk;
                for (int j = 0; j < blk; j++) {
                    float v = x[j];
                    if (v > y[j] || am[j] < 0 || isnan(v)) {
                        y[j] = v;
                        am[j] = idx[k];
                    }
                }
            }
        }
    }
}

/* Whole (sample, block) slabs per thread: the scatter-adds of one slab never
 * meet another thread's; per lane in output order, as maxpool3d_backward. */
void maxpool3d_backward_blk(float *dinp, const float *dout, const int32_t *argmax, const struct conv3d_shape *s,
                            int blk)
{
    const struct blk_geom g = blk_geom(s->c, blk);
    const int64_t plane = (int64_t)s->t * s->h * s->w, oplane = (int64_t)s->to * s->ho * s->wo;
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)s->n * g.cp * plane))
    for (int64_t slab = 0; slab < (int64_t)s->n * g.nb; slab++) {
        float *dx = dinp + slab * plane * blk;
        memset(dx, 0, sizeof(float) * (size_t)(plane * blk));
        for (int64_t o = 0; o < oplane; o++) {
            const float *gr = dout + (slab * oplane + o) * blk;
            const int32_t *am = argmax + (slab * oplane + o) * blk;
            for (int j = 0; j < blk; j++)
                if (am[j] >= 0)
                    dx[(int64_t)am[j] * blk + j] += gr[j];
        }
    }
}

void maxpool3d_forward_cl(float *out, int32_t *argmax, const float *inp, const struct conv3d_shape *s)
{
    maxpool3d_forward_blk(out, argmax, inp, s, s->c);
}

void maxpool3d_backward_cl(float *dinp, const float *dout, const int32_t *argmax, const struct conv3d_shape *s)
{
    maxpool3d_backward_blk(dinp, dout, argmax, s, s->c);
}

/* ---------------------------------------------------------------- global average pool */

void avgpool_global_forward(float *out, const float *inp, int n, int c, int64_t s)
{
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)n * c * s))
    for (int64_t i = 0; i < (int64_t)n * c; i++) {
        double acc = 0;
        for (int64_t p = 0; p < s; p++)
            acc += inp[i * s + p];
        out[i] = (float)(acc / (double)s);
    }
}

void avgpool_global_backward(float *dinp, const float *dout, int n, int c, int64_t s)
{
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)n * c * s))
    for (int64_t i = 0; i < (int64_t)n * c; i++) {
        float g = dout[i] / (float)s;
        for (int64_t p = 0; p < s; p++)
            dinp[i * s + p] = g;
    }
}

/* a task of avgpool_global_forward_blk: one sample's run of up to CL_CHUNK
 * lanes of a block (a 64-byte line of each row) through its positions in
 * order, as the channels-first sum */
#define CL_CHUNK 16

void avgpool_global_forward_blk(float *out, const float *inp, int n, int c, int64_t s, int blk)
{
    const struct blk_geom g = blk_geom(c, blk);
    const int chunks = (blk + CL_CHUNK - 1) / CL_CHUNK;
#pragma omp parallel for schedule(static) collapse(3) if(PAR_WORTH((int64_t)n * g.cp * s))
    for (int i = 0; i < n; i++)
        for (int cb = 0; cb < g.nb; cb++)
            for (int k = 0; k < chunks; k++) {
                const int j0 = k * CL_CHUNK, lanes = blk_lanes(c, blk, cb);
                const int nc = lanes - j0 < CL_CHUNK ? lanes - j0 : CL_CHUNK;
                double acc[CL_CHUNK] = {0};
                for (int64_t p = 0; p < s; p++) {
                    const float *x = inp + (((int64_t)i * g.nb + cb) * s + p) * blk + j0;
                    for (int j = 0; j < nc; j++)
                        acc[j] += x[j];
                }
                for (int j = 0; j < nc; j++)
                    out[(int64_t)i * c + cb * blk + j0 + j] = (float)(acc[j] / (double)s);
            }
}

void avgpool_global_backward_blk(float *dinp, const float *dout, int n, int c, int64_t s, int blk)
{
    const struct blk_geom g = blk_geom(c, blk);
#pragma omp parallel for schedule(static) if(PAR_WORTH((int64_t)n * g.cp * s))
    for (int64_t q = 0; q < (int64_t)n * g.nb * s; q++) {
        const int64_t i = q / s / g.nb;
        const int cb = (int)(q / s % g.nb), lanes = blk_lanes(c, blk, cb);
        const float *gr = dout + i * c + cb * blk;
        for (int j = 0; j < lanes; j++)
            dinp[q * blk + j] = gr[j] / (float)s;
        for (int j = lanes; j < blk; j++)
            dinp[q * blk + j] = 0.f;
    }
}

void avgpool_global_forward_cl(float *out, const float *inp, int n, int c, int64_t s)
{
    avgpool_global_forward_blk(out, inp, n, c, s, c);
}

void avgpool_global_backward_cl(float *dinp, const float *dout, int n, int c, int64_t s)
{
    avgpool_global_backward_blk(dinp, dout, n, c, s, c);
}

/* ---------------------------------------------------------------- layout changes */

/* dst = the transpose of each sample's rows x cols matrix src, by 16 x 16 tiles */
static void transpose_samples(float *dst, const float *src, int n, int64_t rows, int64_t cols)
{
#pragma omp parallel for schedule(static) collapse(2) if(PAR_WORTH((int64_t)n * rows * cols))
    for (int i = 0; i < n; i++)
        for (int64_t r0 = 0; r0 < rows; r0 += 16) {
            const float *x = src + (int64_t)i * rows * cols;
            float *y = dst + (int64_t)i * rows * cols;
            for (int64_t c0 = 0; c0 < cols; c0 += 16)
                for (int64_t r = r0; r < r0 + 16 && r < rows; r++)
                    for (int64_t k = c0; k < c0 + 16 && k < cols; k++)
                        y[k * rows + r] = x[r * cols + k];
        }
}

void layout_ncs_to_nsc(float *dst, const float *src, int n, int c, int64_t s)
{
    transpose_samples(dst, src, n, c, s);
}

void layout_nsc_to_ncs(float *dst, const float *src, int n, int c, int64_t s)
{
    transpose_samples(dst, src, n, s, c);
}

/* Each (sample, block) slab is the transpose of the block's lanes' rows of
 * the channels-first sample, by 16-position tiles; to_blk 1: into the
 * blocked layout (padding zeroed), 0: out of it. */
static void blk_transpose(float *blkd, float *ncs, int n, int c, int64_t s, int blk, int to_blk)
{
    const struct blk_geom g = blk_geom(c, blk);
#pragma omp parallel for schedule(static) collapse(2) if(PAR_WORTH((int64_t)n * g.cp * s))
    for (int i = 0; i < n; i++)
        for (int cb = 0; cb < g.nb; cb++) {
            const int lanes = blk_lanes(c, blk, cb);
            float *b = blkd + ((int64_t)i * g.nb + cb) * s * blk, *f = ncs + ((int64_t)i * c + cb * blk) * s;
            for (int64_t p0 = 0; p0 < s; p0 += 16) {
                const int64_t p1 = p0 + 16 < s ? p0 + 16 : s;
                for (int j = 0; j < lanes; j++)
                    for (int64_t p = p0; p < p1; p++)
                        if (to_blk)
                            b[p * blk + j] = f[j * s + p];
                        else
                            f[j * s + p] = b[p * blk + j];
                if (to_blk)
                    for (int64_t p = p0; p < p1; p++)
                        for (int j = lanes; j < blk; j++)
                            b[p * blk + j] = 0.f;
            }
        }
}

void layout_ncs_to_blk(float *dst, const float *src, int n, int c, int64_t s, int blk)
{
    if (blk == c)
        transpose_samples(dst, src, n, c, s);
    else
        blk_transpose(dst, (float *)src, n, c, s, blk, 1);
}

void layout_blk_to_ncs(float *dst, const float *src, int n, int c, int64_t s, int blk)
{
    if (blk == c)
        transpose_samples(dst, src, n, s, c);
    else
        blk_transpose((float *)src, dst, n, c, s, blk, 0);
}

/* ---------------------------------------------------------------- linear */

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n, int c, int oc)
{
    /* out N x OC = inp N x C . W^T C x OC */
    par_sgemm(CblasNoTrans, CblasTrans, n, oc, c, 1.f, inp, c, weight, c, 0.f, out, oc);
    if (bias)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < oc; o++)
                out[(int64_t)i * oc + o] += bias[o];
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int n, int c, int oc)
{
    /* dW OC x C = dout^T OC x N . inp N x C */
    par_sgemm(CblasTrans, CblasNoTrans, oc, c, n, 1.f, dout, oc, inp, c, 0.f, dweight, c);
    if (dinp) /* dinp N x C = dout N x OC . W OC x C */
        par_sgemm(CblasNoTrans, CblasNoTrans, n, c, oc, 1.f, dout, oc, weight, c, 0.f, dinp, c);
    if (dbias)
        for (int o = 0; o < oc; o++) {
            double acc = 0;
            for (int i = 0; i < n; i++)
                acc += dout[(int64_t)i * oc + o];
            dbias[o] = (float)acc;
        }
}

/* ---------------------------------------------------------------- dropout */

void dropout_forward(float *out, uint8_t *mask, const float *inp, int64_t count, float p, uint64_t *rng)
{
    const float scale = p < 1.f ? 1.f / (1.f - p) : 0.f;
    for (int64_t i = 0; i < count; i++) {
        mask[i] = rng_uniform(rng) >= p;
        out[i] = mask[i] ? inp[i] * scale : 0.f;
    }
}

void dropout_backward(float *dinp, const float *dout, const uint8_t *mask, int64_t count, float p)
{
    const float scale = p < 1.f ? 1.f / (1.f - p) : 0.f;
    for (int64_t i = 0; i < count; i++)
        dinp[i] = mask[i] ? dout[i] * scale : 0.f;
}

/* ---------------------------------------------------------------- softmax cross entropy */

float softmax_crossentropy_forward(float *probs, const float *logits, const int32_t *labels, int n, int k,
                                   int *correct)
{
    double loss = 0;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (int64_t)i * k;
        float *pr = probs + (int64_t)i * k;
        int am = 0;
        float mx = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > mx) {
                mx = z[j];
                am = j;
            }
        double sum = 0;
        for (int j = 0; j < k; j++)
            sum += exp((double)z[j] - mx);
        for (int j = 0; j < k; j++)
            pr[j] = (float)(exp((double)z[j] - mx) / sum);
        if (labels) {
            loss += log(sum) - ((double)z[labels[i]] - mx);
            ok += am == labels[i];
        }
    }
    if (correct)
        *correct = ok;
    return (float)(loss / n);
}

void softmax_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, int n, int k,
                                   float scale)
{
    const float f = scale / (float)n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            dlogits[(int64_t)i * k + j] = f * (probs[(int64_t)i * k + j] - (j == labels[i] ? 1.f : 0.f));
}

/* ---------------------------------------------------------------- SGD */

void sgd_update(float *w, float *v, const float *grad, int64_t count, float lr, float momentum, float wd,
                int first)
{
#pragma omp parallel for schedule(static) if(PAR_WORTH(count))
    for (int64_t i = 0; i < count; i++) {
        float g = grad[i] + wd * w[i];
        float vi = first ? g : momentum * v[i] + g;
        v[i] = vi;
        w[i] -= lr * vi;
    }
}
