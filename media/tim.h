/* Temporal interpolation of a clip's N face frames to M frames (16 by
 * default), as weights: output frame j = sum_i w[j*n + i] * input frame i,
 * applied per pixel and channel. Two modes:
 *
 *   TIM (Zhou et al. 2011, the DFEW authors' preprocessing): the authors'
 *   mean removal + SVD + path-graph Laplacian embedding, resampled at
 *   t = linspace(1/N, 1, M), is per pixel the DCT-II cosine interpolation
 *     x(s) = mean + sum_{k=1}^{N-1} a_k cos(pi k (s - 1/2) / N),
 *     a_k  = (2/N) sum_{i=1}^{N} x_i cos(pi k (i - 1/2) / N),
 *   evaluated at s_j = 1 + (N - 1)(j - 1)/(M - 1), j = 1..M (s = 1..N gives
 *   back the inputs). tests/unit/tim_reference.py checks this against the
 *   SVD formulation.
 *
 *   linear: x(s) between the two nearest input frames, same s_j.
 *
 * Fewer than M input frames are interpolated up the same way. Not a
 * resampler of time stamps: only the order of the face frames matters. */
#ifndef DFEW_TIM_H
#define DFEW_TIM_H

enum tim_mode { TIM_DCT, TIM_LINEAR };

/* "tim" or "linear". */
int tim_mode_parse(const char *s, enum tim_mode *out);
const char *tim_mode_name(enum tim_mode m);

/* The sample positions s_j (1-based frame units) for n inputs, m outputs. */
double tim_position(int n, int m, int j);
/* w: m x n weights for the positions s[0..m-1] (1-based). -EINVAL for n < 1. */
int tim_weights_at(int n, const double *s, int m, enum tim_mode mode, double *w);
/* w: m x n weights at s_j = tim_position(n, m, j). */
int tim_weights(int n, int m, enum tim_mode mode, double *w);

#endif
