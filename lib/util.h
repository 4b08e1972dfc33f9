/* Small helpers shared by every dfew program: growable strings, JSON string
 * escaping, strict number parsing, clocks, paths. No policy lives here. */
#ifndef DFEW_UTIL_H
#define DFEW_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A growable, always NUL-terminated string. A zeroed struct is an empty one. */
struct sbuf {
    char *s;
    size_t len, cap;
};

int sbuf_add(struct sbuf *b, const char *s);
int sbuf_addn(struct sbuf *b, const char *s, size_t n);
int sbuf_addc(struct sbuf *b, char c);
int sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sbuf_vaddf(struct sbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal, quotes included. NULL appends null. */
int sbuf_add_json_str(struct sbuf *b, const char *s);
/* Returns the string (never NULL) and leaves b owning it. */
const char *sbuf_str(const struct sbuf *b);
/* Hands the string to the caller (who frees it) and resets b. */
char *sbuf_take(struct sbuf *b);
void sbuf_reset(struct sbuf *b);
void sbuf_free(struct sbuf *b);

/* Strips leading and trailing white space in place; returns the first kept char. */
char *str_trim(char *s);

/* Whether s is one of the '|'-separated words of list ("a|b|c"). */
int str_one_of(const char *s, const char *list);
/* The same, ignoring ASCII case. */
int str_one_of_ci(const char *s, const char *list);
/* Where the first byte that is not part of valid UTF-8 is (no overlong
 * forms, surrogates or code points past U+10FFFF); len when all is valid. */
size_t utf8_bad_at(const char *s, size_t len);
/* Characters (code points) in the first len bytes of valid UTF-8. */
size_t utf8_chars(const char *s, size_t len);
/* Text from a file that is to enter the database: at most max bytes, valid
 * UTF-8, no control characters but tab. 0, or -EINVAL/-EILSEQ with why
 * ("not UTF-8 at column 3 (byte 0xfc); ...", column counted in characters). */
int text_check(const char *s, size_t len, size_t max, char *why, size_t whylen);

/* Strict parsing: the whole string must be a number in range. 0 or -EINVAL/-ERANGE. */
int parse_i64(const char *s, int64_t *out);
int parse_int(const char *s, int *out);
int parse_double(const char *s, double *out);
/* n points "x,y x,y ..." (spaces between points, no spaces inside one) into
 * out[2n]; exactly n, all finite. 0 or -EINVAL. */
int parse_points(const char *s, double *out, int n);
/* Durations such as "30", "30s", "5m", "2h", "1.5s", "250ms" into seconds. */
int parse_seconds(const char *s, double *out);
/* Sizes such as "1048576", "500K", "20M", "1.5G", "2T" (binary units) into bytes. */
int parse_bytes(const char *s, int64_t *out);

/* Wall-clock seconds since the epoch, with sub-second precision. */
double now_s(void);
/* Monotonic milliseconds, for measuring intervals. */
uint64_t mono_ms(void);
/* Monotonic seconds with sub-microsecond precision, for timing stages. */
double mono_s(void);
/* ISO-8601 UTC with milliseconds, e.g. 2026-11-27T19:50:01.123Z. */
void format_time_iso(double t, char *buf, size_t len);

/* mkdir -p with the given mode for directories it creates. */
int mkdir_p(const char *path, unsigned mode);
/* Writes len bytes to path atomically: a new temporary beside it
 * (open_temp_beside), fsync, rename over path, fsync of the folder. Readers
 * see the old file or the whole new one; on failure nothing is left behind.
 * 0 or -errno. */
int write_file_atomic(const char *path, const void *data, size_t len);
/* Creates a new file path.tmp-XXXXXXXXXXXX beside path for writing
 * (O_CREAT | O_EXCL | O_NOFOLLOW, mkstemp-style: an existing name, a planted
 * symbolic link included, is never opened; the name is not predictable).
 * Returns the descriptor and the name in *tmp (the caller frees it), or -errno. */
int open_temp_beside(const char *path, unsigned mode, char **tmp);
/* The same for a new directory path.tmp-XXXXXXXXXXXX; 0 or -errno. */
int mkdir_temp_beside(const char *path, unsigned mode, char **tmp);
/* rm -rf: removes a file or a directory tree (symbolic links are removed,
 * not followed). 0 when path is gone, else -errno. */
int remove_tree(const char *path);
/* Reads a whole file of at most max bytes into a NUL-terminated buffer the
 * caller frees. -errno, or -EFBIG when it is larger. */
int read_small_file(const char *path, size_t max, char **out, size_t *len);
/* Absolute, normalised path of an existing file (realpath); caller frees. */
int abs_path(const char *path, char **out);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
/* Grows the array *v of *cap elements of `size` bytes (doubling, at least
 * 1024) so that it holds need; 0 or -ENOMEM (*v unchanged). */
int grow_array(void **v, int64_t *cap, int64_t need, size_t size);
char *xstrdup(const char *s);

#endif
