/* libFuzzer harness: the .xlsx reader (ctl/xlsx.c: libzip and expat) on an
 * archive in memory, then its CSV through the CSV reader, as
 * `dfewctl import dfew` reads annotation.xlsx. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "csv.h"
#include "xlsx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = NULL;
    size_t len = 0;
    char err[1024];
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return 0;
    int rc = xlsx_to_csv_buffer(data, size, "annotation.xlsx", mem, err, sizeof err);
    fclose(mem);
    if (!rc && len) {
        FILE *f = fmemopen(buf, len, "r");
        if (f) {
            struct csv_reader r;
            csv_open_stream(&r, f);
            while (csv_next(&r) > 0) {
            }
            csv_close(&r);
        }
    }
    free(buf);
    return 0;
}
