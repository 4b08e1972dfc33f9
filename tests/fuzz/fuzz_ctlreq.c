/* libFuzzer harness: requests on dfewd's control socket (ctl_request_parse
 * in lib/proto.c), one line as dfewd cuts it from what a client sent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    char *nl = strchr(line, '\n'); /* dfewd answers the first line */
    if (nl)
        *nl = '\0';
    int64_t id;
    /* a cancel is "cancel" and a positive decimal id, nothing after it
     * (`cancel 12abc` was once cancel 12: corpus/ctlreq/regress-cancel-12abc) */
    if (ctl_request_parse(line, &id) == CTLREQ_CANCEL &&
        (id <= 0 || strspn(line + 7, "0123456789") != strlen(line + 7)))
        __builtin_trap();
    free(line);
    return 0;
}
