/* Random tokens and the admin token file of dfew-web (see webtoken.h). */
#include "webtoken.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "util.h"

int web_token_new(char out[WEB_TOKEN_LEN + 1])
{
    unsigned char r[WEB_TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

int web_token_valid(const char *s)
{
    return s && strlen(s) == WEB_TOKEN_LEN && strspn(s, "0123456789abcdef") == WEB_TOKEN_LEN;
}

void web_token_hash(const char *token, char hex[65])
{
    struct sha256_stream *s = sha256_begin();
    sha256_update(s, token, strlen(token));
    sha256_end(s, hex);
}

int web_token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
    return diff == 0;
}

static int create_token_file(const char *path, char out[WEB_TOKEN_LEN + 1])
{
    int rc = web_token_new(out);
    if (rc)
        return rc;
    char *tmp;
    int fd = open_temp_beside(path, 0600, &tmp);
    if (fd < 0)
        return fd;
    char line[WEB_TOKEN_LEN + 2];
    snprintf(line, sizeof line, "%s\n", out);
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line) || fsync(fd))
        rc = -(errno ? errno : EIO);
    if (close(fd) && !rc)
        rc = -errno;
    /* link() and not rename(): two programs making the file at once agree on one token */
    if (!rc && link(tmp, path))
        rc = -errno;
    unlink(tmp);
    free(tmp);
    return rc;
}

int web_admin_token(const char *home, int create, char out[WEB_TOKEN_LEN + 1], char *why, size_t whylen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", home, WEB_TOKEN_FILE);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            int rc = create_token_file(path, out);
            if (rc == -EEXIST)
                continue; /* someone else made it: read theirs */
            if (rc)
                snprintf(why, whylen, "cannot create %s: %s", path, strerror(-rc));
            return rc;
        }
        if (fd < 0) {
            int e = errno;
            snprintf(why, whylen, "cannot read %s: %s%s", path, strerror(e),
                     e == ENOENT ? " (dfewctl web token makes it)" : "");
            return -e;
        }
        struct stat st;
        char buf[128] = "";
        ssize_t n = fstat(fd, &st) ? -1 : read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 0) {
            snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
            return -EIO;
        }
        if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid()) {
            snprintf(why, whylen, "%s must be a file of this user that only it can read and write "
                     "(mode 0600, it is %04o): chmod 600 %s, or delete it and run dfewctl web token for a new one",
                     path, (unsigned)(st.st_mode & 07777), path);
            return -EPERM;
        }
        buf[n] = '\0';
        char *t = str_trim(buf);
        if (!web_token_valid(t)) {
            snprintf(why, whylen, "%s does not hold a token (%d lowercase hex digits): delete it and run "
                     "dfewctl web token for a new one", path, WEB_TOKEN_LEN);
            return -EINVAL;
        }
        memcpy(out, t, WEB_TOKEN_LEN + 1);
        return 0;
    }
    snprintf(why, whylen, "cannot read or create %s", path);
    return -EIO;
}
