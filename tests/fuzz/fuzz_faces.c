/* libFuzzer harness: the faces.bin reader (media/clipfmt.c, versions 1 and
 * 2 with the other faces after the records) on a file in memory. Every
 * record and other face it returns is read, so ASan sees any overrun. */
#include <stdint.h>
#include <stdlib.h>

#include "clipfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct faces_header h;
    struct face_record *r;
    struct face_other *o;
    char err[512];
    if (faces_parse(data, size, "faces.bin", &h, &r, &o, err, sizeof err) == 0) {
        volatile float sum = 0;
        for (uint64_t i = 0; i < h.records; i++)
            sum += r[i].pts[2 * FACES_LANDMARKS - 1] + (float)r[i].index;
        for (uint32_t i = 0; i < h.others; i++)
            sum += o[i].score + (float)o[i].track;
        (void)sum;
        free(r);
        free(o);
    }
    return 0;
}
