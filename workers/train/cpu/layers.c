/* layers.c: the CPU reference implementation of the trainer layers declared in
 * layers.h (conv3d via tiled vol2col + OpenBLAS sgemm, batchnorm, relu,
 * pooling, linear, dropout, softmax cross entropy, SGD). The losses with their
 * equations are in losses.c. Not thread-safe per call on shared buffers; each
 * function parallelises internally (OpenMP) where it pays. */
#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

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
 * thread pool for everything: no second pool spinning against the first. The
 * split does not change any element's sum order, so the result does not
 * depend on the thread count. */
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

size_t conv3d_work_floats(const struct conv3d_shape *s, size_t max_tile_floats)
{
    if (conv3d_is_pointwise(s))
        return 0;
    size_t k = (size_t)s->c * s->kt * s->kh * s->kw;
    return k * (size_t)conv3d_tile_rows(s, max_tile_floats) * s->wo;
}

static int conv3d_rows_in_ws(const struct conv3d_shape *s, const struct conv3d_work *ws)
{
    size_t k = (size_t)s->c * s->kt * s->kh * s->kw;
    size_t rows = ws->floats / (k * (size_t)s->wo);
    size_t all = (size_t)s->to * s->ho;
    return (int)(rows > all ? all : rows);
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

void conv3d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const struct conv3d_shape *s, struct conv3d_work *ws)
{
    const int K = s->c * s->kt * s->kh * s->kw;
    const int64_t P = (int64_t)s->to * s->ho * s->wo, in_sz = (int64_t)s->c * s->t * s->h * s->w;
    const int rows_all = s->to * s->ho;
    for (int n = 0; n < s->n; n++) {
        const float *x = inp + n * in_sz;
        float *y = out + n * (int64_t)s->oc * P;
        if (conv3d_is_pointwise(s)) {
            /* y OC x P = W OC x C . x C x P */
            par_sgemm(CblasNoTrans, CblasNoTrans, s->oc, (int)P, K, 1.f, weight, K, x, (int)P,
                        0.f, y, (int)P);
        } else {
            int rows = conv3d_rows_in_ws(s, ws);
            for (int r0 = 0; r0 < rows_all; r0 += rows) {
                int r1 = r0 + rows > rows_all ? rows_all : r0 + rows;
                int pt = (r1 - r0) * s->wo;
                vol2col(ws->buf, x, s, r0, r1);
                /* y[:, tile] OC x pt = W OC x K . col K x pt */
                par_sgemm(CblasNoTrans, CblasNoTrans, s->oc, pt, K, 1.f, weight, K, ws->buf, pt,
                            0.f, y + (int64_t)r0 * s->wo, (int)P);
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
}

void conv3d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, const struct conv3d_shape *s, struct conv3d_work *ws)
{
    const int K = s->c * s->kt * s->kh * s->kw;
    const int64_t P = (int64_t)s->to * s->ho * s->wo, in_sz = (int64_t)s->c * s->t * s->h * s->w;
    const int rows_all = s->to * s->ho;
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
    for (int n = 0; n < s->n; n++) {
        const float *x = inp + n * in_sz;
        const float *g = dout + n * (int64_t)s->oc * P;
        float beta = n == 0 ? 0.f : 1.f;
        if (conv3d_is_pointwise(s)) {
            /* dW OC x C (+)= g OC x P . x^T P x C */
            par_sgemm(CblasNoTrans, CblasTrans, s->oc, K, (int)P, 1.f, g, (int)P, x, (int)P, beta,
                        dweight, K);
            if (dinp) /* dx C x P = W^T C x OC . g OC x P */
                par_sgemm(CblasTrans, CblasNoTrans, K, (int)P, s->oc, 1.f, weight, K, g, (int)P,
                            0.f, dinp + n * in_sz, (int)P);
            continue;
        }
        if (dinp)
            memset(dinp + n * in_sz, 0, sizeof(float) * in_sz);
        int rows = conv3d_rows_in_ws(s, ws);
        for (int r0 = 0; r0 < rows_all; r0 += rows) {
            int r1 = r0 + rows > rows_all ? rows_all : r0 + rows;
            int pt = (r1 - r0) * s->wo;
            const float *gt = g + (int64_t)r0 * s->wo;
            vol2col(ws->buf, x, s, r0, r1);
            /* dW OC x K (+)= g[:, tile] OC x pt . col^T pt x K */
            par_sgemm(CblasNoTrans, CblasTrans, s->oc, K, pt, 1.f, gt, (int)P, ws->buf, pt,
                        (n == 0 && r0 == 0) ? 0.f : 1.f, dweight, K);
            if (dinp) {
                /* dcol K x pt = W^T K x OC . g[:, tile] OC x pt (reuses the column buffer) */
                par_sgemm(CblasTrans, CblasNoTrans, K, pt, s->oc, 1.f, weight, K, gt, (int)P, 0.f,
                            ws->buf, pt);
                col2vol_add(dinp + n * in_sz, ws->buf, s, r0, r1);
            }
        }
    }
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
        dinp[i] = out[i] > 0.f ? dout[i] : 0.f;
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
