/* SHA-256 of a file's content through libavutil (see hash.h). */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <libavutil/mem.h>
#include <libavutil/sha.h>

int sha256_file(const char *path, char hex[65], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct AVSHA *sha = av_sha_alloc();
    enum { BUF = 1 << 20 };
    unsigned char *buf = malloc(BUF);
    if (!sha || !buf) {
        av_free(sha);
        free(buf);
        close(fd);
        return -ENOMEM;
    }
    av_sha_init(sha, 256);
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, BUF);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        av_sha_update(sha, buf, (size_t)n);
        total += (uint64_t)n;
    }
    close(fd);
    if (!rc) {
        unsigned char d[32];
        av_sha_final(sha, d);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        if (size)
            *size = total;
    }
    av_free(sha);
    free(buf);
    return rc;
}
