/* libFuzzer harness: the CSV reader behind `dfewctl labels import` and the
 * DFEW release's annotation and split files (lib/csv.c), with the UTF-8 and
 * length checks of every field, read from memory. Not the database part. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "csv.h"
#include "labels.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    struct csv_reader r;
    csv_open_stream(&r, f);
    int got;
    while ((got = csv_next(&r)) > 0) {
        for (int i = 0; i < r.nfield; i++) {
            size_t n = strlen(r.field[i]);
            if (n > CSV_MAX_FIELD || utf8_bad_at(r.field[i], n) != n)
                __builtin_trap(); /* csv_next let through what it promises to refuse */
            (void)emotion_parse(r.field[i]);
        }
    }
    csv_close(&r);
    return 0;
}
