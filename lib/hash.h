/* SHA-256 of a file's content (libavutil's implementation), the identity of
 * a movie: the same bytes under another name are the same movie. */
#ifndef DFEW_HASH_H
#define DFEW_HASH_H

#include <stddef.h>
#include <stdint.h>

/* hex receives 64 lowercase hex digits and a NUL. size (optional) the bytes read. */
int sha256_file(const char *path, char hex[65], uint64_t *size);

/* Streaming: for content that arrives in pieces (downloads). */
struct sha256_stream;
struct sha256_stream *sha256_begin(void);
void sha256_update(struct sha256_stream *s, const void *data, size_t len);
/* Writes the digest and frees the stream. */
void sha256_end(struct sha256_stream *s, char hex[65]);
/* Feeds the first `len` bytes of an open file (from its start) into s. */
int sha256_update_from_fd(struct sha256_stream *s, int fd, uint64_t len);

#endif
