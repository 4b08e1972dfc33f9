/* libFuzzer harness: the names of a DFEW release (lib/clipfiles.c): clip
 * (video) names from its annotation and split files, which become folder
 * names, frame folder names under Clip/, and frame file names. The input is
 * one name per line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clipfiles.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (char *line = s, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char out[256];
        if (dfew_clip_name(line, out, sizeof out) == 0 &&
            (!out[0] || out[0] == '.' || strchr(out, '/') || strlen(out) > 200))
            __builtin_trap(); /* a name that is not a safe folder name */
        int w, h, tim;
        if (dfew_frame_dir(line, &w, &h, &tim) == 0 && (w < 1 || h < 1 || w > 65535 || h > 65535))
            __builtin_trap();
        (void)is_frame_file(line);
    }
    free(s);
    return 0;
}
