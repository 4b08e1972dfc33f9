/* losses.c: the auxiliary feature losses of the trainer, forward and backward,
 * on the last hidden layer's features x_i (the classifier's input), N x D:
 * EC-STFL as in the DFEW paper, the L1 variant of the authors' later code,
 * and the center loss with its centre update. Softmax cross entropy is in
 * layers.c. Sums are in double and in index order (deterministic). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

#define MAXK 64 /* labels are 0..num_classes-1 <= DFEW_TRAIN_MAX_CLASSES */

/* counts[k] = samples with label k; returns the number of distinct labels. */
static int label_counts(const int32_t *labels, int n, int *counts)
{
    memset(counts, 0, sizeof(int) * MAXK);
    int classes = 0;
    for (int i = 0; i < n; i++) {
        int l = labels[i] < 0 || labels[i] >= MAXK ? 0 : labels[i];
        classes += counts[l]++ == 0;
    }
    return classes;
}

static double l2_dist(const float *a, const float *b, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++) {
        double t = (double)a[k] - b[k];
        s += t * t;
    }
    return sqrt(s);
}

/* EC-STFL, DFEW paper (Jiang et al., ACM MM 2020) eq. (9), over a mini-batch
 * of N features x_i with labels l_i, N_{x_i} = number of samples in the batch
 * with the label of x_i (x_i included), ||.|| the Euclidean (L2) norm:
 *
 *            sum_i sum_{j != i, l_j == l_i}  (1 / N_{x_i}) ||x_i - x_j||
 *   L = ---------------------------------------------------------------
 *            sum_i sum_{j,      l_j != l_i}  (1 / N_{x_j}) ||x_i - x_j||
 *
 * The numerator pulls samples of one expression together (each class weighted
 * by the inverse of its size, so large classes do not dominate); the
 * denominator pushes different expressions apart. With a single class in the
 * batch the denominator is empty: the term is skipped (active = 0, loss 0, no
 * backward), as the paper says. */
float ecstfl_forward(const float *feat, const int32_t *labels, int n, int d, int *active)
{
    int cnt[MAXK];
    *active = 0;
    if (label_counts(labels, n, cnt) < 2)
        return 0.f;
    double intra = 0, inter = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (j == i)
                continue;
            double dij = l2_dist(feat + (int64_t)i * d, feat + (int64_t)j * d, d);
            if (labels[i] == labels[j])
                intra += dij / cnt[labels[i]];
            else
                inter += dij / cnt[labels[j]];
        }
    if (!(inter > 0))
        return 0.f;
    *active = 1;
    return (float)(intra / inter);
}

/* With A = intra, B = inter, L = A / B and a_ij, b_ij the weights of the
 * ordered pair (i, j) above:
 *   dL/dx_i = sum_{j != i} [(a_ij + a_ji) - L (b_ij + b_ji)] / B * (x_i - x_j) / ||x_i - x_j||
 * with a_ij = a_ji = 1/N_{x_i} for equal labels, b_ij = 1/N_{x_j} and
 * b_ji = 1/N_{x_i} for different labels; coinciding points contribute 0. */
void ecstfl_backward_add(float *dfeat, const float *feat, const int32_t *labels, int n, int d, float scale)
{
    int cnt[MAXK];
    if (label_counts(labels, n, cnt) < 2)
        return;
    double *dist = malloc(sizeof(double) * n * n);
    if (!dist)
        return;
    double intra = 0, inter = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double dij = j == i ? 0 : l2_dist(feat + (int64_t)i * d, feat + (int64_t)j * d, d);
            dist[i * n + j] = dij;
            if (j == i)
                continue;
            if (labels[i] == labels[j])
                intra += dij / cnt[labels[i]];
            else
                inter += dij / cnt[labels[j]];
        }
    if (inter > 0) {
        double L = intra / inter;
        for (int i = 0; i < n; i++) {
            float *g = dfeat + (int64_t)i * d;
            const float *xi = feat + (int64_t)i * d;
            for (int j = 0; j < n; j++) {
                double dij = dist[i * n + j];
                if (j == i || dij <= 0)
                    continue;
                double w = labels[i] == labels[j] ? 2.0 / cnt[labels[i]]
                                                  : -L * (1.0 / cnt[labels[j]] + 1.0 / cnt[labels[i]]);
                double f = scale * w / (inter * dij);
                const float *xj = feat + (int64_t)j * d;
                for (int k = 0; k < d; k++)
                    g[k] += (float)(f * ((double)xi[k] - xj[k]));
            }
        }
    }
    free(dist);
}

/* The authors' later public code (an option, not the paper's form): with the
 * L1 distance D_ij = sum_k |x_ik - x_jk|, eps = 1e-6, S_i = N_{x_i} same-label
 * samples (i included) and O_i = N - S_i the others:
 *   P_i = sum_{j: l_j == l_i} D_ij / (S_i + eps)          (attract)
 *   R_i = sum_{j: l_j != l_i} 1 / (D_ij + eps) / (O_i + 1 + eps)   (repel)
 *   L   = (1/N) sum_i P_i R_i / N
 * (their code divides by the batch size and then takes the mean). A single
 * class gives R_i = 0 and L = 0; it is reported as not active. */
static void l1_terms(const float *feat, const int32_t *labels, int n, int d, const int *cnt, double *dist,
                     double *P, double *R)
{
    for (int i = 0; i < n; i++) {
        P[i] = R[i] = 0;
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < d; k++)
                s += fabs((double)feat[(int64_t)i * d + k] - feat[(int64_t)j * d + k]);
            dist[i * n + j] = s;
            if (labels[i] == labels[j])
                P[i] += s;
            else
                R[i] += 1.0 / (s + 1e-6);
        }
        P[i] /= cnt[labels[i]] + 1e-6;
        R[i] /= (n - cnt[labels[i]]) + 1 + 1e-6;
    }
}

float ecstfl_l1_forward(const float *feat, const int32_t *labels, int n, int d, int *active)
{
    int cnt[MAXK];
    *active = label_counts(labels, n, cnt) >= 2;
    if (!*active)
        return 0.f;
    double *dist = malloc(sizeof(double) * (n * n + 2 * n));
    if (!dist) {
        *active = 0;
        return 0.f;
    }
    double *P = dist + n * n, *R = P + n, L = 0;
    l1_terms(feat, labels, n, d, cnt, dist, P, R);
    for (int i = 0; i < n; i++)
        L += P[i] * R[i];
    free(dist);
    return (float)(L / ((double)n * n));
}

/* dL/dD_ij through row i: c_ij = [R_i / S_i (same label) or
 * -P_i / ((D_ij + eps)^2 (O_i + 1)) (different)] / N^2;
 * dL/dx_i = sum_j (c_ij + c_ji) sign(x_i - x_j) (sign(0) = 0). */
void ecstfl_l1_backward_add(float *dfeat, const float *feat, const int32_t *labels, int n, int d, float scale)
{
    int cnt[MAXK];
    if (label_counts(labels, n, cnt) < 2)
        return;
    double *dist = malloc(sizeof(double) * (2 * n * n + 2 * n));
    if (!dist)
        return;
    double *P = dist + n * n, *R = P + n, *c = R + n;
    l1_terms(feat, labels, n, d, cnt, dist, P, R);
    const double nn = (double)n * n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (labels[i] == labels[j])
                c[i * n + j] = R[i] / (cnt[labels[i]] + 1e-6) / nn;
            else {
                double de = dist[i * n + j] + 1e-6;
                c[i * n + j] = -P[i] / (de * de) / ((n - cnt[labels[i]]) + 1 + 1e-6) / nn;
            }
        }
    for (int i = 0; i < n; i++) {
        float *g = dfeat + (int64_t)i * d;
        const float *xi = feat + (int64_t)i * d;
        for (int j = 0; j < n; j++) {
            if (j == i)
                continue;
            double w = scale * (c[i * n + j] + c[j * n + i]);
            const float *xj = feat + (int64_t)j * d;
            for (int k = 0; k < d; k++) {
                float t = xi[k] - xj[k];
                g[k] += t > 0 ? (float)w : t < 0 ? (float)-w : 0.f;
            }
        }
    }
    free(dist);
}

/* Center loss (Wen et al., ECCV 2016, eq. 2), averaged over the batch like the
 * cross entropy it is added to: L_C = 1/(2N) sum_i ||x_i - c_{y_i}||^2. The
 * centres are not learned by SGD; center_update moves them (eq. 4) after the
 * loss and its gradient were computed with the old centres. */
float center_loss_forward(const float *feat, const float *centers, const int32_t *labels, int n, int d)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        double t = l2_dist(feat + (int64_t)i * d, centers + (int64_t)labels[i] * d, d);
        s += t * t;
    }
    return (float)(s / (2.0 * n));
}

void center_loss_backward_add(float *dfeat, const float *feat, const float *centers, const int32_t *labels,
                              int n, int d, float scale)
{
    const float f = scale / (float)n;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++)
            dfeat[(int64_t)i * d + k] += f * (feat[(int64_t)i * d + k] - centers[(int64_t)labels[i] * d + k]);
}

/* Wen et al. eq. (4): delta c_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j),
 * c_j <- c_j - alpha * delta c_j. */
void center_update(float *centers, const float *feat, const int32_t *labels, int n, int d, int k, float alpha)
{
    for (int j = 0; j < k; j++) {
        int nj = 0;
        for (int i = 0; i < n; i++)
            nj += labels[i] == j;
        if (!nj)
            continue;
        float *c = centers + (int64_t)j * d;
        for (int q = 0; q < d; q++) {
            double delta = 0;
            for (int i = 0; i < n; i++)
                if (labels[i] == j)
                    delta += (double)c[q] - feat[(int64_t)i * d + q];
            c[q] -= (float)(alpha * delta / (1.0 + nj));
        }
    }
}
