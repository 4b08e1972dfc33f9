/* SHA-256 of a file's content (libavutil's implementation), the identity of
 * a movie: the same bytes under another name are the same movie. */
#ifndef DFEW_HASH_H
#define DFEW_HASH_H

#include <stdint.h>

/* hex receives 64 lowercase hex digits and a NUL. size (optional) the bytes read. */
int sha256_file(const char *path, char hex[65], uint64_t *size);

#endif
