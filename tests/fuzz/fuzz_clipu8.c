/* libFuzzer harness: the clip.u8 tensor reader (media/clipfmt.c) on a file
 * in memory: the dimensions it accepts must describe exactly the bytes
 * there are, as the trainer then reads frames * height * width * channels. */
#include <stdint.h>

#include "clipfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int t, h, w, c;
    size_t at;
    char err[512];
    if (clip_parse(data, size, "clip.u8", &t, &h, &w, &c, &at, err, sizeof err) == 0) {
        if (t < 1 || h < 1 || w < 1 || c < 1)
            __builtin_trap();
        size_t n = (size_t)t * (size_t)h * (size_t)w * (size_t)c; /* what a reader allocates and reads */
        if (at + n != size)
            __builtin_trap();
        volatile uint8_t last = data[at + n - 1];
        (void)last;
    }
    return 0;
}
