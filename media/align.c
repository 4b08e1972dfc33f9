/* Five-point similarity alignment (see align.h). */
#include "align.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>

void align_five_points(const float p[136], double out[10])
{
    double lx = 0, ly = 0, rx = 0, ry = 0;
    for (int i = 36; i <= 41; i++) {
        lx += p[2 * i];
        ly += p[2 * i + 1];
    }
    for (int i = 42; i <= 47; i++) {
        rx += p[2 * i];
        ry += p[2 * i + 1];
    }
    out[0] = lx / 6;
    out[1] = ly / 6;
    out[2] = rx / 6;
    out[3] = ry / 6;
    out[4] = p[2 * 30];
    out[5] = p[2 * 30 + 1];
    out[6] = p[2 * 48];
    out[7] = p[2 * 48 + 1];
    out[8] = p[2 * 54];
    out[9] = p[2 * 54 + 1];
}

/* Umeyama's solution in 2-D: with both point sets centred, the rotation
 * and scale come from the cross-covariance, s e^{ia} = sum conj(p) q / sum |p|^2
 * in complex notation. A reflection is never the answer for a face. */
int align_similarity(const double *src, const double *dst, int n, double m[6])
{
    if (n < 2)
        return -EINVAL;
    double sx = 0, sy = 0, dx = 0, dy = 0;
    for (int i = 0; i < n; i++) {
        sx += src[2 * i];
        sy += src[2 * i + 1];
        dx += dst[2 * i];
        dy += dst[2 * i + 1];
    }
    sx /= n;
    sy /= n;
    dx /= n;
    dy /= n;
    double var = 0, a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        double px = src[2 * i] - sx, py = src[2 * i + 1] - sy;
        double qx = dst[2 * i] - dx, qy = dst[2 * i + 1] - dy;
        var += px * px + py * py;
        a += px * qx + py * qy;
        b += px * qy - py * qx;
    }
    if (!(var > 1e-12))
        return -EINVAL;
    double c = a / var, s = b / var; /* s cos(a), s sin(a) */
    m[0] = c;
    m[1] = -s;
    m[3] = s;
    m[4] = c;
    m[2] = dx - (c * sx - s * sy);
    m[5] = dy - (s * sx + c * sy);
    return 0;
}

int align_warp_channels(const uint8_t *src, int width, int height, int stride, int channels, const double m[6],
                        uint8_t *dst, int size)
{
    double det = m[0] * m[4] - m[1] * m[3];
    if (!(fabs(det) > 1e-12) || size <= 0 || channels < 1 || channels > 4)
        return -EINVAL;
    /* inverse: (x, y) = A^-1 ((u, v) - t) */
    double i0 = m[4] / det, i1 = -m[1] / det, i3 = -m[3] / det, i4 = m[0] / det;
    for (int v = 0; v < size; v++) {
        uint8_t *out = dst + (size_t)v * size * channels;
        double du = -m[2], dv = v - m[5];
        for (int u = 0; u < size; u++, du += 1.0) {
            double x = i0 * du + i1 * dv, y = i3 * du + i4 * dv;
            double fx = floor(x), fy = floor(y);
            int x0 = (int)fx, y0 = (int)fy;
            double ax = x - fx, ay = y - fy;
            double acc[4] = {0, 0, 0, 0};
            /* the four neighbours; those outside the picture count as black */
            for (int k = 0; k < 4; k++) {
                int xx = x0 + (k & 1), yy = y0 + (k >> 1);
                double w = ((k & 1) ? ax : 1 - ax) * ((k >> 1) ? ay : 1 - ay);
                if (xx < 0 || yy < 0 || xx >= width || yy >= height || w == 0)
                    continue;
                const uint8_t *p = src + (size_t)yy * stride + (size_t)xx * channels;
                for (int c = 0; c < channels; c++)
                    acc[c] += w * p[c];
            }
            for (int c = 0; c < channels; c++) {
                double val = floor(acc[c] + 0.5);
                out[channels * u + c] = (uint8_t)(val < 0 ? 0 : val > 255 ? 255 : val);
            }
        }
    }
    return 0;
}

int align_warp(const uint8_t *src, int width, int height, int stride, const double m[6], uint8_t *dst, int size)
{
    return align_warp_channels(src, width, height, stride, 3, m, dst, size);
}
