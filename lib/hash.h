/* SHA-256 of a file's content (libavutil's implementation), the identity of
 * a movie: the same bytes under another name are the same movie. */
#ifndef DFEW_HASH_H
#define DFEW_HASH_H

#include <stddef.h>
#include <stdint.h>

/* hex receives 64 lowercase hex digits and a NUL. size (optional) the bytes read. */
int sha256_file(const char *path, char hex[65], uint64_t *size);

/* The probe job's arguments for a movie file: its path and what it was when
 * it became a movie (content hash, size, modification time in ns; mtime_ns
 * < 0 leaves it out), so that the probe can tell when the file changed
 * since. JSON text the caller frees. */
char *probe_args_json(const char *path, const char *sha, int64_t size, int64_t mtime_ns);

/* Where a fetch job keeps what it downloaded so far: dest_dir/.partial-<16
 * hex digits of the URL's SHA-256>, so that a retry finds it, and beside it
 * (suffix ".validator") the ETag or Last-Modified of the first response,
 * which a resumed request must match (If-Range). Caller frees. */
char *fetch_partial_path(const char *dest_dir, const char *url);
#define FETCH_VALIDATOR_SUFFIX ".validator"

/* Streaming: for content that arrives in pieces (downloads). */
struct sha256_stream;
struct sha256_stream *sha256_begin(void);
void sha256_update(struct sha256_stream *s, const void *data, size_t len);
/* Writes the digest and frees the stream. */
void sha256_end(struct sha256_stream *s, char hex[65]);
/* Feeds the first `len` bytes of an open file (from its start) into s. */
int sha256_update_from_fd(struct sha256_stream *s, int fd, uint64_t len);

#endif
