/* SHA-256 of a file's content through libavutil (see hash.h). */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/mem.h>
#include <libavutil/sha.h>

#include "util.h"

struct sha256_stream *sha256_begin(void)
{
    struct AVSHA *sha = av_sha_alloc();
    if (sha)
        av_sha_init(sha, 256);
    return (struct sha256_stream *)sha;
}

void sha256_update(struct sha256_stream *s, const void *data, size_t len)
{
    av_sha_update((struct AVSHA *)s, data, len);
}

void sha256_end(struct sha256_stream *s, char hex[65])
{
    unsigned char d[32];
    av_sha_final((struct AVSHA *)s, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    av_free(s);
}

int sha256_update_from_fd(struct sha256_stream *s, int fd, uint64_t len)
{
    enum { BUF = 1 << 20 };
    unsigned char *buf = malloc(BUF);
    if (!buf)
        return -ENOMEM;
    uint64_t off = 0;
    int rc = 0;
    while (off < len) {
        size_t want = len - off < BUF ? (size_t)(len - off) : BUF;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        sha256_update(s, buf, (size_t)n);
        off += (uint64_t)n;
    }
    free(buf);
    return rc;
}

int sha256_file(const char *path, char hex[65], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct sha256_stream *s = sha256_begin();
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    int rc = sha256_update_from_fd(s, fd, (uint64_t)st.st_size);
    close(fd);
    char h[65];
    sha256_end(s, h);
    if (!rc) {
        memcpy(hex, h, 65);
        if (size)
            *size = (uint64_t)st.st_size;
    }
    return rc;
}

char *probe_args_json(const char *path, const char *sha, int64_t size, int64_t mtime_ns)
{
    struct sbuf b = {0};
    sbuf_add(&b, "{\"path\":");
    sbuf_add_json_str(&b, path);
    if (sha) {
        sbuf_add(&b, ",\"sha256\":");
        sbuf_add_json_str(&b, sha);
    }
    if (size >= 0)
        sbuf_addf(&b, ",\"size_bytes\":%lld", (long long)size);
    if (mtime_ns >= 0)
        sbuf_addf(&b, ",\"mtime_ns\":%lld", (long long)mtime_ns);
    sbuf_addc(&b, '}');
    return sbuf_take(&b);
}

char *fetch_partial_path(const char *dest_dir, const char *url)
{
    char url_hash[65];
    struct sha256_stream *uh = sha256_begin();
    sha256_update(uh, url, strlen(url));
    sha256_end(uh, url_hash);
    struct sbuf b = {0};
    sbuf_addf(&b, "%s/.partial-%.16s", dest_dir, url_hash);
    return sbuf_take(&b);
}
