/* Small helpers shared by every dfew program: growable strings, JSON string
 * escaping, strict number parsing, clocks, paths. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int sbuf_grow(struct sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
        return -ENOMEM;
    b->s = s;
    b->cap = cap;
    return 0;
}

int sbuf_addn(struct sbuf *b, const char *s, size_t n)
{
    int rc = sbuf_grow(b, n);
    if (rc)
        return rc;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

int sbuf_add(struct sbuf *b, const char *s) { return sbuf_addn(b, s, strlen(s)); }

int sbuf_addc(struct sbuf *b, char c) { return sbuf_addn(b, &c, 1); }

int sbuf_vaddf(struct sbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    int rc = sbuf_grow(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int sbuf_addf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sbuf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int sbuf_add_json_str(struct sbuf *b, const char *s)
{
    if (!s)
        return sbuf_add(b, "null");
    int rc = sbuf_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
        switch (*p) {
        case '"': rc = sbuf_add(b, "\\\""); break;
        case '\\': rc = sbuf_add(b, "\\\\"); break;
        case '\n': rc = sbuf_add(b, "\\n"); break;
        case '\r': rc = sbuf_add(b, "\\r"); break;
        case '\t': rc = sbuf_add(b, "\\t"); break;
        default:
            if (*p < 0x20)
                rc = sbuf_addf(b, "\\u%04x", *p);
            else
                rc = sbuf_addc(b, (char)*p);
        }
    }
    return rc ? rc : sbuf_addc(b, '"');
}

const char *sbuf_str(const struct sbuf *b) { return b->s ? b->s : ""; }

char *sbuf_take(struct sbuf *b)
{
    char *s = b->s ? b->s : xstrdup("");
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

void sbuf_reset(struct sbuf *b)
{
    b->len = 0;
    if (b->s)
        b->s[0] = '\0';
}

void sbuf_free(struct sbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    if (*end || end == s)
        return -EINVAL;
    *out = v;
    return 0;
}

int parse_int(const char *s, int *out)
{
    int64_t v;
    int rc = parse_i64(s, &v);
    if (rc)
        return rc;
    if (v < INT_MIN || v > INT_MAX)
        return -ERANGE;
    *out = (int)v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE)
        return -ERANGE;
    if (*end || end == s || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

char *str_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int parse_points(const char *s, double *out, int n)
{
    const char *p = s;
    for (int k = 0; k < n; k++) {
        char *end;
        while (*p == ' ' || *p == '\t')
            p++;
        out[2 * k] = strtod(p, &end);
        if (end == p || *end != ',')
            return -EINVAL;
        p = end + 1;
        out[2 * k + 1] = strtod(p, &end);
        if (end == p || !isfinite(out[2 * k]) || !isfinite(out[2 * k + 1]))
            return -EINVAL;
        p = end;
        if (k + 1 < n && *p != ' ' && *p != '\t')
            return -EINVAL;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    return *p ? -EINVAL : 0;
}

/* A finite number >= 0 at the start of s (strtod); *end after it. */
static int parse_leading_nonneg(const char *s, double *v, char **end)
{
    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    *v = strtod(s, end);
    return errno || *end == s || !isfinite(*v) || *v < 0 ? -EINVAL : 0;
}

int parse_seconds(const char *s, double *out)
{
    char *end;
    double v;
    if (parse_leading_nonneg(s, &v, &end))
        return -EINVAL;
    double mul;
    if (!*end || !strcmp(end, "s"))
        mul = 1;
    else if (!strcmp(end, "ms"))
        mul = 0.001;
    else if (!strcmp(end, "m") || !strcmp(end, "min"))
        mul = 60;
    else if (!strcmp(end, "h"))
        mul = 3600;
    else
        return -EINVAL;
    *out = v * mul;
    return 0;
}

int parse_bytes(const char *s, int64_t *out)
{
    char *end;
    double v;
    if (parse_leading_nonneg(s, &v, &end))
        return -EINVAL;
    double mul = 1;
    if (*end) {
        const char *units = "KMGT";
        const char *u = strchr(units, *end == 'k' ? 'K' : *end);
        if (!u || !*u)
            return -EINVAL;
        mul = ldexp(1.0, 10 * (int)(u - units + 1));
        end++;
        if (*end == 'i')
            end++;
        if (*end == 'B')
            end++;
        if (*end)
            return -EINVAL;
    }
    v *= mul;
    if (v > 9.2e18)
        return -ERANGE;
    *out = (int64_t)v;
    return 0;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void format_time_iso(double t, char *buf, size_t len)
{
    time_t sec = (time_t)t;
    int ms = (int)((t - (double)sec) * 1000.0);
    if (ms < 0)
        ms = 0;
    if (ms > 999)
        ms = 999;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char tmp[32];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", tmp, ms);
}

int mkdir_p(const char *path, unsigned mode)
{
    char *tmp = xstrdup(path);
    int rc = 0;
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    if (!rc) {
        struct stat st;
        if (stat(path, &st) != 0)
            rc = -errno;
        else if (!S_ISDIR(st.st_mode))
            rc = -ENOTDIR;
    }
    free(tmp);
    return rc;
}

int str_one_of(const char *s, const char *list)
{
    size_t n = strlen(s);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, "|");
        if (len == n && !strncmp(p, s, n))
            return 1;
        p += len + (p[len] == '|');
    }
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len)
{
    struct sbuf tmp = {0};
    sbuf_addf(&tmp, "%s.tmp-%d", path, (int)getpid());
    int rc = 0, fd = open(tmp.s, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        sbuf_free(&tmp);
        return rc;
    }
    for (const char *p = data; !rc && len > 0;) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = n < 0 ? -errno : -EIO;
        else {
            p += n;
            len -= (size_t)n;
        }
    }
    if (!rc && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && !rc)
        rc = -errno;
    if (!rc && rename(tmp.s, path) != 0)
        rc = -errno;
    if (rc) {
        unlink(tmp.s);
    } else {
        char *dir = xstrdup(path), *slash = strrchr(dir, '/');
        if (slash) {
            *(slash == dir ? slash + 1 : slash) = '\0';
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
        free(dir);
    }
    sbuf_free(&tmp);
    return rc;
}

int read_small_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct sbuf b = {0};
    char buf[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > max) {
            rc = -EFBIG;
            break;
        }
        sbuf_addn(&b, buf, (size_t)n);
    }
    close(fd);
    if (rc) {
        sbuf_free(&b);
        return rc;
    }
    *len = b.len;
    *out = sbuf_take(&b);
    return 0;
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p) == 0 || errno == ENOENT ? 0 : -errno;
}

int remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? 0 : -errno;
    int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc < 0 ? -errno : rc;
}

int abs_path(const char *path, char **out)
{
    char *r = realpath(path, NULL);
    if (!r)
        return -errno;
    *out = r;
    return 0;
}

static void out_of_memory(void)
{
    fputs("dfew: out of memory\n", stderr);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        out_of_memory();
    return p;
}

int grow_array(void **v, int64_t *cap, int64_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    int64_t c = *cap ? 2 * *cap : 1024;
    while (c < need)
        c *= 2;
    void *p = realloc(*v, (size_t)c * size);
    if (!p)
        return -ENOMEM;
    *v = p;
    *cap = c;
    return 0;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        out_of_memory();
    return p;
}
