/* Shot cuts from frame differences: FFmpeg's scene score, computed the way
 * its `select` filter computes `scene` (so that a cut here is a frame
 * `ffmpeg -vf "select='gt(scene,T)'"` selects, for the same T):
 *
 *   sad    = sum of |this - previous| over the luma plane (YUV and grey
 *            pictures) or over the R, G, B bytes (RGB pictures)
 *   mafd   = sad / number of samples compared (scaled to 8 bits)
 *   score  = clip(min(mafd, |mafd - previous mafd|) / 100, 0, 1)
 *
 * The min() with the change of mafd keeps steady motion (high but even
 * differences) from reading as a cut; a cut is a sudden jump. The first
 * picture scores 0; so does a picture whose size differs from the previous
 * one (as in FFmpeg). Luma planes of 8 bits, or up to 16 little-endian,
 * are compared as decoded; pictures in other formats are converted first
 * (yuv420p for YUV, RGB24 for RGB), as FFmpeg converts them to a format its
 * filter takes, so their scores may differ slightly from FFmpeg's.
 * Not a shot list: segment.c decides what a cut is. */
#ifndef DFEW_SCENE_H
#define DFEW_SCENE_H

#include <stdint.h>

struct AVFrame;
struct scene_scorer;

int scene_scorer_new(struct scene_scorer **out);
void scene_scorer_free(struct scene_scorer *s);
/* The score of pic against the picture passed before (which it keeps a
 * reference to; pic itself is not changed). 0 or a negative errno. */
int scene_score(struct scene_scorer *s, const struct AVFrame *pic, double *score);

/* Sums of absolute differences of two w x h planes (strides in bytes). */
uint64_t scene_sad8(const uint8_t *a, int astride, const uint8_t *b, int bstride, int w, int h);
uint64_t scene_sad16(const uint8_t *a, int astride, const uint8_t *b, int bstride, int w, int h);

#endif
