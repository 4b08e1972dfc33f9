/* augment.h: training-time data augmentation on uint8 clips as the
 * preprocessing stage stores them (T x H x W x 3): a random crop (the same
 * window for every frame) and a random horizontal flip, drawn from a seeded
 * stream so an epoch's augmentation is reproducible; plus the centre crop for
 * evaluation. Not normalisation (the backends do that). */
#ifndef DFEW_TRAIN_AUGMENT_H
#define DFEW_TRAIN_AUGMENT_H

#include <stdint.h>

struct augment_choice {
    int y, x; /* top-left corner of the crop */
    int flip; /* 1 = mirrored left-right */
};

/* dst T x ch x cw x 3 <- src T x h x w x 3. Draws y in [0, h - ch],
 * x in [0, w - cw] and (when allow_flip) flip with probability 1/2 from *rng,
 * in that order. Returns 0, or -EINVAL when the crop is larger than the clip.
 * *chosen (may be NULL) receives what was drawn. */
int augment_clip(uint8_t *dst, const uint8_t *src, int t, int h, int w, int ch, int cw, int allow_flip,
                 uint64_t *rng, struct augment_choice *chosen);
/* The deterministic evaluation view: the centred ch x cw window, no flip. */
int center_crop_clip(uint8_t *dst, const uint8_t *src, int t, int h, int w, int ch, int cw);

#endif
