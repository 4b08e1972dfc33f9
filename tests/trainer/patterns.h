/* patterns.h: the trainer tests' generated 7-class set of moving patterns: a
 * bright square moving right, left, down, up, along a diagonal, standing still
 * or blinking; random start, noise; uint8 clips T x H x W x 3 (grey). Left and
 * right differ only in time, so a model must use its temporal convolutions.
 * Used by test_train_learn (the CPU backend learns) and tests/gpu's learning
 * run (the CUDA backend learns like the CPU backend). Test helper only. */
#ifndef DFEW_TEST_PATTERNS_H
#define DFEW_TEST_PATTERNS_H

#include <stdint.h>
#include <stdlib.h>

#include "rng.h"

#define PATTERN_CLASSES 7

/* clip t x h x w x 3 of class cls (0..6); the square starts near (8..12, 8..12) */
static inline void pattern_clip(uint8_t *clip, int cls, int t, int h, int w, uint64_t *rng)
{
    int y = 8 + (int)rng_below(rng, 5), x = 8 + (int)rng_below(rng, 5);
    static const int dy[PATTERN_CLASSES] = {0, 0, 1, -1, 1, 0, 0}, dx[PATTERN_CLASSES] = {1, -1, 0, 0, 1, 0, 0};
    for (int f = 0; f < t; f++) {
        int cy = y + dy[cls] * (f - t / 2), cx = x + dx[cls] * (f - t / 2); /* one pixel a frame */
        int on = cls != 6 || (f & 1);
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int inside = on && abs(i - cy) <= 2 && abs(j - cx) <= 2;
                int v = (inside ? 200 : 40) + (int)rng_below(rng, 40);
                uint8_t *p = clip + (((size_t)f * h + i) * w + j) * 3;
                p[0] = p[1] = p[2] = (uint8_t)v;
            }
    }
}

#endif
