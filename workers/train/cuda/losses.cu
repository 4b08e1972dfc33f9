/* losses.cu: the feature losses of the CUDA backend on the last hidden layer's
 * features x_i (N x D, fp32): EC-STFL in the paper's L2 form and the L1
 * variant of the authors' later code, and the center loss with its centre
 * update. The equations and their gradients are written out in
 * workers/train/cpu/losses.c; these kernels compute the same quantities in
 * the same precision (double sums), in three steps: pairwise distances (one
 * block per pair), the per-pair weights and the loss (one block), the
 * gradient (one thread per feature element). Batches are small (N = 24 by
 * default), so the pair terms are cheap; N up to 1024 is supported. */
#include <math.h>

#include "layers.cuh"

namespace cu {

#define LOSS_MAXK 64 /* labels are 0..num_classes-1 <= DFEW_TRAIN_MAX_CLASSES */
#define LOSS_THREADS 256
#define LOSS_MAXN 1024

enum { FORM_L2 = 0, FORM_L1 = 1 };

/* dist[i*n + j] = ||x_i - x_j|| (L2) or sum_k |x_ik - x_jk| (L1), both orders; one block per pair i <= j */
template <int FORM>
__global__ void __launch_bounds__(128) pairdist_kernel(double *dist, const float *__restrict__ feat, int n, int d)
{
    const int i = blockIdx.y, j = blockIdx.x;
    if (j < i)
        return;
    __shared__ double sh[128];
    double acc = 0;
    if (i != j)
        for (int k = threadIdx.x; k < d; k += 128) {
            double t = (double)feat[(int64_t)i * d + k] - (double)feat[(int64_t)j * d + k];
            acc += FORM == FORM_L2 ? t * t : fabs(t);
        }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = 64; w > 0; w >>= 1) {
        if (threadIdx.x < w)
            sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        double v = FORM == FORM_L2 ? sqrt(sh[0]) : sh[0];
        dist[i * n + j] = v;
        dist[j * n + i] = v;
    }
}

/* Scratch layout (doubles): dist n*n | w n*n | rowA n | rowB n | misc 4 */
struct loss_scratch {
    double *dist, *w, *ra, *rb, *misc;
};

static int get_scratch(ctx *cx, int n, loss_scratch *s)
{
    void *p;
    TRY(ctx_scratch(cx, SCR_LOSS, sizeof(double) * ((size_t)2 * n * n + 2 * (size_t)n + 4), &p));
    s->dist = (double *)p;
    s->w = s->dist + (size_t)n * n;
    s->ra = s->w + (size_t)n * n;
    s->rb = s->ra + n;
    s->misc = s->rb + n;
    return 0;
}

/* One block: label counts, the loss, and the weight of each ordered pair for
 * the gradient (scaled by scale; grad = 0 when not active). FORM_L2, with
 * A = intra, B = inter, L = A / B (cpu/losses.c):
 *   w_ij = scale * [(a_ij + a_ji) - L (b_ij + b_ji)] / (B ||x_i - x_j||)
 * FORM_L1: P_i, R_i and c_ij of cpu/losses.c, w_ij = scale * (c_ij + c_ji). */
template <int FORM>
__global__ void __launch_bounds__(LOSS_THREADS)
    ecstfl_coef_kernel(float *loss, int *active, double *w, double *ra, double *rb, double *misc,
                       const double *__restrict__ dist, const int32_t *__restrict__ labels, int n, float scale)
{
    __shared__ int cnt[LOSS_MAXK];
    __shared__ int classes;
    for (int k = threadIdx.x; k < LOSS_MAXK; k += LOSS_THREADS)
        cnt[k] = 0;
    __syncthreads();
    if (threadIdx.x == 0) {
        int cl = 0;
        for (int i = 0; i < n; i++) {
            int l = labels[i] < 0 || labels[i] >= LOSS_MAXK ? 0 : labels[i];
            cl += cnt[l]++ == 0;
        }
        classes = cl;
    }
    __syncthreads();
    /* row terms */
    for (int i = threadIdx.x; i < n; i += LOSS_THREADS) {
        const int li = labels[i];
        double a = 0, b = 0;
        for (int j = 0; j < n; j++) {
            const double dij = dist[i * n + j];
            if (FORM == FORM_L2) {
                if (j == i)
                    continue;
                if (labels[j] == li)
                    a += dij / cnt[li];
                else
                    b += dij / cnt[labels[j]];
            } else {
                if (labels[j] == li)
                    a += dij;
                else
                    b += 1.0 / (dij + 1e-6);
            }
        }
        if (FORM == FORM_L1) {
            a /= cnt[li] + 1e-6;
            b /= (n - cnt[li]) + 1 + 1e-6;
        }
        ra[i] = a;
        rb[i] = b;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double A = 0, B = 0, L = 0;
        int act = 0;
        if (FORM == FORM_L2) {
            for (int i = 0; i < n; i++) {
                A += ra[i];
                B += rb[i];
            }
            act = classes >= 2 && B > 0;
            L = act ? A / B : 0;
        } else {
            for (int i = 0; i < n; i++)
                L += ra[i] * rb[i];
            act = classes >= 2;
            L = act ? L / ((double)n * n) : 0;
        }
        misc[0] = L;
        misc[1] = B;
        misc[2] = act;
        if (loss)
            *loss = (float)L;
        if (active)
            *active = act;
    }
    __syncthreads();
    if (!w)
        return;
    const int act = misc[2] != 0;
    const double L = misc[0], B = misc[1], nn = (double)n * n;
    for (int e = threadIdx.x; e < n * n; e += LOSS_THREADS) {
        const int i = e / n, j = e % n;
        double v = 0;
        if (act && i != j) {
            const int li = labels[i], lj = labels[j];
            if (FORM == FORM_L2) {
                const double dij = dist[e];
                if (dij > 0) {
                    double ww = li == lj ? 2.0 / cnt[li] : -L * (1.0 / cnt[lj] + 1.0 / cnt[li]);
                    v = scale * ww / (B * dij);
                }
            } else {
                double cij, cji;
                if (li == lj) {
                    cij = rb[i] / (cnt[li] + 1e-6) / nn;
                    cji = rb[j] / (cnt[lj] + 1e-6) / nn;
                } else {
                    const double de = dist[e] + 1e-6;
                    cij = -ra[i] / (de * de) / ((n - cnt[li]) + 1 + 1e-6) / nn;
                    cji = -ra[j] / (de * de) / ((n - cnt[lj]) + 1 + 1e-6) / nn;
                }
                v = scale * (cij + cji);
            }
        }
        w[e] = v;
    }
}

/* dfeat[i][k] += sum_j w_ij (x_ik - x_jk) (L2) or w_ij sign(x_ik - x_jk) (L1) */
template <int FORM>
__global__ void ecstfl_grad_kernel(float *dfeat, const float *__restrict__ feat, const double *__restrict__ w, int n,
                                   int d)
{
    const int i = blockIdx.y, k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= d)
        return;
    const float xi = feat[(int64_t)i * d + k];
    double acc = 0;
    for (int j = 0; j < n; j++) {
        const double wij = w[i * n + j];
        if (wij == 0)
            continue;
        const float xj = feat[(int64_t)j * d + k];
        if (FORM == FORM_L2) {
            acc += wij * ((double)xi - (double)xj);
        } else {
            const float t = xi - xj;
            acc += t > 0 ? wij : t < 0 ? -wij : 0.0;
        }
    }
    dfeat[(int64_t)i * d + k] += (float)acc;
}

template <int FORM>
static int ecstfl_run(float *loss, int *active, float *dfeat, const float *feat, const int32_t *labels, int n, int d,
                      float scale, ctx *cx)
{
    if (n < 1 || n > LOSS_MAXN || d < 1)
        return fail(cx, -EINVAL, "EC-STFL over a batch of %d (1..%d) features of %d", n, LOSS_MAXN, d);
    loss_scratch s;
    TRY(get_scratch(cx, n, &s));
    pairdist_kernel<FORM><<<dim3(n, n), 128, 0, cx->stream>>>(s.dist, feat, n, d);
    LAUNCH_TRY(cx, "pairdist_kernel");
    ecstfl_coef_kernel<FORM><<<1, LOSS_THREADS, 0, cx->stream>>>(loss, active, dfeat ? s.w : NULL, s.ra, s.rb, s.misc,
                                                                 s.dist, labels, n, scale);
    LAUNCH_TRY(cx, "ecstfl_coef_kernel");
    if (dfeat) {
        ecstfl_grad_kernel<FORM><<<dim3((d + 127) / 128, n), 128, 0, cx->stream>>>(dfeat, feat, s.w, n, d);
        LAUNCH_TRY(cx, "ecstfl_grad_kernel");
    }
    return 0;
}

int ecstfl_forward(float *loss, const float *feat, const int32_t *labels, int n, int d, int *active, ctx *cx)
{
    return ecstfl_run<FORM_L2>(loss, active, NULL, feat, labels, n, d, 0.f, cx);
}

int ecstfl_backward_add(float *dfeat, const float *feat, const int32_t *labels, int n, int d, float scale, ctx *cx)
{
    return ecstfl_run<FORM_L2>(NULL, NULL, dfeat, feat, labels, n, d, scale, cx);
}

int ecstfl_l1_forward(float *loss, const float *feat, const int32_t *labels, int n, int d, int *active, ctx *cx)
{
    return ecstfl_run<FORM_L1>(loss, active, NULL, feat, labels, n, d, 0.f, cx);
}

int ecstfl_l1_backward_add(float *dfeat, const float *feat, const int32_t *labels, int n, int d, float scale,
                           ctx *cx)
{
    return ecstfl_run<FORM_L1>(NULL, NULL, dfeat, feat, labels, n, d, scale, cx);
}

/* ---------------------------------------------------------------- center loss */

__global__ void __launch_bounds__(LOSS_THREADS)
    center_fwd_kernel(float *loss, const float *__restrict__ feat, const float *__restrict__ centers,
                      const int32_t *__restrict__ labels, int n, int d)
{
    __shared__ double sh[LOSS_THREADS];
    double acc = 0;
    const int64_t total = (int64_t)n * d;
    for (int64_t e = threadIdx.x; e < total; e += LOSS_THREADS) {
        const int64_t i = e / d, k = e % d;
        double t = (double)feat[e] - (double)centers[(int64_t)labels[i] * d + k];
        acc += t * t;
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = LOSS_THREADS / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w)
            sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        *loss = (float)(sh[0] / (2.0 * n));
}

__global__ void center_bwd_kernel(float *dfeat, const float *__restrict__ feat, const float *__restrict__ centers,
                                  const int32_t *__restrict__ labels, int d, int64_t total, float f)
{
    GRID_STRIDE(e, total)
    {
        const int64_t i = e / d, k = e % d;
        dfeat[e] += f * (feat[e] - centers[(int64_t)labels[i] * d + k]);
    }
}

/* Wen et al. eq. (4), one thread per centre element; reads the old centre only */
__global__ void center_update_kernel(float *centers, const float *__restrict__ feat, const int32_t *__restrict__ labels,
                                     int n, int d, int64_t total, float alpha)
{
    GRID_STRIDE(e, total)
    {
        const int j = (int)(e / d);
        const int64_t q = e % d;
        int nj = 0;
        double delta = 0;
        const float c = centers[e];
        for (int i = 0; i < n; i++)
            if (labels[i] == j) {
                nj++;
                delta += (double)c - (double)feat[(int64_t)i * d + q];
            }
        if (nj)
            centers[e] = c - (float)(alpha * delta / (1.0 + nj));
    }
}

int center_loss_forward(float *loss, const float *feat, const float *centers, const int32_t *labels, int n, int d,
                        ctx *cx)
{
    center_fwd_kernel<<<1, LOSS_THREADS, 0, cx->stream>>>(loss, feat, centers, labels, n, d);
    LAUNCH_TRY(cx, "center_fwd_kernel");
    return 0;
}

int center_loss_backward_add(float *dfeat, const float *feat, const float *centers, const int32_t *labels, int n,
                             int d, float scale, ctx *cx)
{
    const int64_t total = (int64_t)n * d;
    center_bwd_kernel<<<grid_for(cx, total), ELT_THREADS, 0, cx->stream>>>(dfeat, feat, centers, labels, d, total,
                                                                          scale / (float)n);
    LAUNCH_TRY(cx, "center_bwd_kernel");
    return 0;
}

int center_update(float *centers, const float *feat, const int32_t *labels, int n, int d, int k, float alpha, ctx *cx)
{
    const int64_t total = (int64_t)k * d;
    center_update_kernel<<<grid_for(cx, total), ELT_THREADS, 0, cx->stream>>>(centers, feat, labels, n, d, total,
                                                                             alpha);
    LAUNCH_TRY(cx, "center_update_kernel");
    return 0;
}

} // namespace cu
