/* Ordered key=value list used for protocol payloads, config and job arguments. */
#include "kv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void kv_set(struct kv *kv, const char *key, const char *val)
{
    for (size_t i = 0; i < kv->n; i++) {
        if (!strcmp(kv->v[i].key, key)) {
            free(kv->v[i].val);
            kv->v[i].val = xstrdup(val);
            return;
        }
    }
    if (kv->n == kv->cap) {
        kv->cap = kv->cap ? kv->cap * 2 : 8;
        kv->v = xrealloc(kv->v, kv->cap * sizeof *kv->v);
    }
    kv->v[kv->n].key = xstrdup(key);
    kv->v[kv->n].val = xstrdup(val);
    kv->n++;
}

void kv_setf(struct kv *kv, const char *key, const char *fmt, ...)
{
    struct sbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sbuf_vaddf(&b, fmt, ap);
    va_end(ap);
    kv_set(kv, key, sbuf_str(&b));
    sbuf_free(&b);
}

const char *kv_get(const struct kv *kv, const char *key)
{
    for (size_t i = 0; i < kv->n; i++)
        if (!strcmp(kv->v[i].key, key))
            return kv->v[i].val;
    return NULL;
}

int kv_get_i64(const struct kv *kv, const char *key, int64_t *out)
{
    const char *v = kv_get(kv, key);
    return v ? parse_i64(v, out) : -ENOENT;
}

int kv_get_double(const struct kv *kv, const char *key, double *out)
{
    const char *v = kv_get(kv, key);
    return v ? parse_double(v, out) : -ENOENT;
}

void kv_clear(struct kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->v[i].key);
        free(kv->v[i].val);
    }
    kv->n = 0;
}

void kv_free(struct kv *kv)
{
    kv_clear(kv);
    free(kv->v);
    kv->v = NULL;
    kv->cap = 0;
}
