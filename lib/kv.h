/* An ordered list of key=value string pairs: the payload of protocol lines,
 * parsed config sections and job arguments. Not a hash table: lists are short. */
#ifndef DFEW_KV_H
#define DFEW_KV_H

#include <stddef.h>
#include <stdint.h>

struct kv_pair {
    char *key;
    char *val;
};

struct kv {
    struct kv_pair *v;
    size_t n, cap;
};

/* Replaces the value of an existing key, else appends. */
void kv_set(struct kv *kv, const char *key, const char *val);
void kv_setf(struct kv *kv, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *kv_get(const struct kv *kv, const char *key);
/* -ENOENT when absent, -EINVAL when not a number. */
int kv_get_i64(const struct kv *kv, const char *key, int64_t *out);
int kv_get_double(const struct kv *kv, const char *key, double *out);
void kv_clear(struct kv *kv);
void kv_free(struct kv *kv);

#endif
