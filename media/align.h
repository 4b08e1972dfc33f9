/* Face alignment: five points from the 68 landmarks, the least-squares
 * similarity transform (rotation, uniform scale, translation; Umeyama 1991)
 * that maps them onto a template, and a bilinear warp of the picture into a
 * size x size square. Not detection (track.c) and not temporal (tim.c). */
#ifndef DFEW_ALIGN_H
#define DFEW_ALIGN_H

#include <stdint.h>

/* Left eye centre (mean of points 36-41), right eye centre (42-47), nose tip
 * (30), left and right mouth corner (48, 54); 0-based iBUG 300-W indices.
 * out[2*k], out[2*k+1] = x, y of point k. */
void align_five_points(const float pts68[136], double out[10]);

/* The similarity m that minimises sum |dst_i - m(src_i)|^2 over n >= 2
 * points, as x' = m[0] x + m[1] y + m[2], y' = m[3] x + m[4] y + m[5] with
 * m[0] = m[4] = s cos(a), m[3] = -m[1] = s sin(a) (no reflection).
 * -EINVAL when the source points coincide. */
int align_similarity(const double *src, const double *dst, int n, double m[6]);

/* dst (size x size RGB24, tightly packed) = src sampled bilinearly at
 * m^-1(u, v) for every output pixel (u, v); outside the source is black. */
int align_warp(const uint8_t *src, int width, int height, int stride, const double m[6], uint8_t *dst, int size);
/* The same for pictures of `channels` bytes per pixel (1: grey, 3: RGB);
 * dst is size x size x channels. */
int align_warp_channels(const uint8_t *src, int width, int height, int stride, int channels, const double m[6],
                        uint8_t *dst, int size);

#endif
