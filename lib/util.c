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
#include <strings.h>
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

/* A name no one can guess, for temporaries: pid, clock and a counter mixed
 * (splitmix64) into 12 letters and digits. */
static void temp_suffix(char out[13])
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)getpid() << 40) ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^
                 (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 0x9e3779b97f4a7c15ull) ^ (uintptr_t)out;
    for (int i = 0; i < 12; i++) {
        x += 0x9e3779b97f4a7c15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        out[i] = abc[z % (sizeof abc - 1)];
    }
    out[12] = '\0';
}

/* Creates path.tmp-PID-XXXXXXXXXXXX (a file with O_EXCL, or a directory)
 * under a fresh unguessable name: a name someone planted, a symbolic link
 * included, is never opened or followed. The pid tells dfewd whose it is
 * when a worker dies mid-write (daemon/pool.c sweeps them). */
static int create_temp(const char *path, int dir, unsigned mode, char **tmp_out)
{
    for (int tries = 0; tries < 100; tries++) {
        char sfx[13];
        temp_suffix(sfx);
        char *tmp;
        if (asprintf(&tmp, "%s.tmp-%d-%s", path, (int)getpid(), sfx) < 0)
            return -ENOMEM;
        int fd;
        if (dir)
            fd = mkdir(tmp, mode) == 0 ? 0 : -1;
        else
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        int e = errno;
        free(tmp);
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

int open_temp_beside(const char *path, unsigned mode, char **tmp_out)
{
    *tmp_out = NULL;
    return create_temp(path, 0, mode, tmp_out);
}

int mkdir_temp_beside(const char *path, unsigned mode, char **tmp_out)
{
    *tmp_out = NULL;
    int rc = create_temp(path, 1, mode, tmp_out);
    return rc < 0 ? rc : 0;
}

int str_one_of_ci(const char *s, const char *list)
{
    size_t n = strlen(s);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, "|");
        if (len == n && !strncasecmp(p, s, n))
            return 1;
        p += len + (p[len] == '|');
    }
    return 0;
}

size_t utf8_bad_at(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return i;
        if (len - i <= n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i; /* overlong, too large, a surrogate */
        i += n + 1;
    }
    return len;
}

size_t utf8_chars(const char *str, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)str[i] & 0xc0) != 0x80;
    return n;
}

int text_check(const char *s, size_t len, size_t max, char *why, size_t whylen)
{
    if (len > max) {
        snprintf(why, whylen, "%zu bytes long, more than the %zu allowed", len, max);
        return -EINVAL;
    }
    size_t bad = utf8_bad_at(s, len);
    if (bad < len) {
        snprintf(why, whylen, "not UTF-8 at column %zu (byte 0x%02x); save the file as UTF-8", utf8_chars(s, bad) + 1,
                 (unsigned char)s[bad]);
        return -EILSEQ;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(why, whylen, "a control character (0x%02x) at column %zu", c, utf8_chars(s, i) + 1);
            return -EINVAL;
        }
    }
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len)
{
    char *tmp;
    int rc = 0, fd = open_temp_beside(path, 0644, &tmp);
    if (fd < 0)
        return fd;
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
    if (!rc && rename(tmp, path) != 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
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
    free(tmp);
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
