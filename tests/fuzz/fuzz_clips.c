/* libFuzzer harness: clip lists (`dfewctl submit --clips`, lib/clips.c)
 * from memory: every row accepted must be a finite, ordered range. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "clips.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct clip_range *r;
    int n;
    char err[1024];
    for (int flags = 0; flags <= CLIPS_ALLOW_OVERLAP; flags++) {
        if (clips_parse_text("fuzz.csv", (const char *)data, size, flags, &r, &n, err, sizeof err) == 0) {
            for (int i = 0; i < n; i++)
                if (!isfinite(r[i].start_s) || !isfinite(r[i].end_s) || !(r[i].end_s > r[i].start_s) ||
                    r[i].start_s < 0 || r[i].label < 0 || r[i].label > 7)
                    __builtin_trap();
            free(r);
        }
    }
    return 0;
}
