/* TIM and linear temporal interpolation weights (see tim.h). */
#include "tim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int tim_mode_parse(const char *s, enum tim_mode *out)
{
    if (!strcmp(s, "tim"))
        *out = TIM_DCT;
    else if (!strcmp(s, "linear"))
        *out = TIM_LINEAR;
    else
        return -EINVAL;
    return 0;
}

const char *tim_mode_name(enum tim_mode m) { return m == TIM_DCT ? "tim" : "linear"; }

double tim_position(int n, int m, int j)
{
    return m > 1 ? 1.0 + (double)(n - 1) * j / (m - 1) : 1.0;
}

/* sum_{k=1}^{K} cos(k x) = sin((K + 1/2) x) / (2 sin(x/2)) - 1/2 (Dirichlet);
 * K where sin(x/2) = 0. */
static double cos_sum(int K, double x)
{
    double h = sin(0.5 * x);
    if (fabs(h) < 1e-12)
        return K;
    return sin((K + 0.5) * x) / (2.0 * h) - 0.5;
}

int tim_weights_at(int n, const double *s, int m, enum tim_mode mode, double *w)
{
    if (n < 1 || m < 1)
        return -EINVAL;
    for (int j = 0; j < m; j++) {
        double *row = w + (size_t)j * n;
        if (mode == TIM_LINEAR) {
            memset(row, 0, sizeof *row * (size_t)n);
            double p = fmin(fmax(s[j], 1.0), (double)n) - 1.0; /* 0-based */
            int lo = (int)floor(p);
            if (lo >= n - 1) {
                row[n - 1] = 1;
            } else {
                double f = p - lo;
                row[lo] = 1 - f;
                row[lo + 1] = f;
            }
            continue;
        }
        /* w_ji = (1/N) (1 + 2 sum_k cos(k a_i) cos(k b_j)), a_i = pi (i + 1/2)/N,
         * b_j = pi (s_j - 1/2)/N; the sum in closed form, so the cost is
         * O(N) per output frame even for whole-movie clips. */
        double b = M_PI * (s[j] - 0.5) / n;
        for (int i = 0; i < n; i++) {
            double a = M_PI * (i + 0.5) / n;
            row[i] = (1.0 + cos_sum(n - 1, a - b) + cos_sum(n - 1, a + b)) / n;
        }
    }
    return 0;
}

int tim_weights(int n, int m, enum tim_mode mode, double *w)
{
    if (n < 1 || m < 1)
        return -EINVAL;
    double *s = malloc(sizeof *s * (size_t)m);
    if (!s)
        return -ENOMEM;
    for (int j = 0; j < m; j++)
        s[j] = tim_position(n, m, j);
    int rc = tim_weights_at(n, s, m, mode, w);
    free(s);
    return rc;
}
