/* libFuzzer harness: dfew.conf (lib/config.c) from memory, over the
 * defaults, as dfewd and dfewctl read it. */
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dfew_config c;
    char err[2048];
    config_defaults(&c);
    (void)config_parse("dfew.conf", (const char *)data, size, &c, err, sizeof err);
    (void)config_limit(&c, "prep");
    (void)config_timeout(&c, "probe");
    config_free(&c);
    return 0;
}
