/* augment.c: random crop + horizontal flip of uint8 clips (see augment.h). */
#include <errno.h>
#include <string.h>

#include "augment.h"
#include "rng.h"

static void crop_flip(uint8_t *dst, const uint8_t *src, int t, int h, int w, int ch, int cw, int y0, int x0, int flip)
{
    for (int f = 0; f < t; f++)
        for (int y = 0; y < ch; y++) {
            const uint8_t *row = src + (((int64_t)f * h + y0 + y) * w + x0) * 3;
            uint8_t *out = dst + ((int64_t)f * ch + y) * cw * 3;
            if (!flip) {
                memcpy(out, row, (size_t)cw * 3);
                continue;
            }
            for (int x = 0; x < cw; x++)
                memcpy(out + (size_t)x * 3, row + (size_t)(cw - 1 - x) * 3, 3);
        }
}

int augment_clip(uint8_t *dst, const uint8_t *src, int t, int h, int w, int ch, int cw, int allow_flip,
                 uint64_t *rng, struct augment_choice *chosen)
{
    if (ch < 1 || cw < 1 || ch > h || cw > w || t < 1)
        return -EINVAL;
    struct augment_choice c;
    c.y = (int)rng_below(rng, (uint32_t)(h - ch + 1));
    c.x = (int)rng_below(rng, (uint32_t)(w - cw + 1));
    c.flip = allow_flip ? (int)(rng_next(rng) >> 63) : 0;
    crop_flip(dst, src, t, h, w, ch, cw, c.y, c.x, c.flip);
    if (chosen)
        *chosen = c;
    return 0;
}

int center_crop_clip(uint8_t *dst, const uint8_t *src, int t, int h, int w, int ch, int cw)
{
    if (ch < 1 || cw < 1 || ch > h || cw > w || t < 1)
        return -EINVAL;
    crop_flip(dst, src, t, h, w, ch, cw, (h - ch) / 2, (w - cw) / 2, 0);
    return 0;
}
