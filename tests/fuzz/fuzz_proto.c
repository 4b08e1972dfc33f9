/* libFuzzer harness: the line protocol between dfewd and its workers
 * (lib/proto.c): a line is parsed, formatted again and parsed again, and
 * must give the same message. */
#include <stdint.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_msg m = {0}, m2 = {0};
    if (proto_parse((const char *)data, size, &m) == 0) {
        struct sbuf b = {0};
        if (proto_format(&b, m.verb, &m.kv) == 0) {
            if (b.len == 0 || b.s[b.len - 1] != '\n' || proto_parse(b.s, b.len - 1, &m2) != 0)
                __builtin_trap(); /* what we write we must read */
            if (strcmp(m.verb, m2.verb) || m.kv.n != m2.kv.n)
                __builtin_trap();
            for (size_t i = 0; i < m.kv.n; i++)
                if (strcmp(m.kv.v[i].key, m2.kv.v[i].key) || strcmp(m.kv.v[i].val, m2.kv.v[i].val))
                    __builtin_trap();
            proto_msg_free(&m2);
        }
        sbuf_free(&b);
        proto_msg_free(&m);
    }
    return 0;
}
