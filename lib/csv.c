/* CSV reading and writing (see csv.h). */
#include "csv.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

int csv_open(struct csv_reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->f = fopen(path, "r");
    return r->f ? 0 : -errno;
}

void csv_open_stream(struct csv_reader *r, FILE *f)
{
    memset(r, 0, sizeof *r);
    r->f = f;
}

void csv_close(struct csv_reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->buf);
    free(r->field);
    memset(r, 0, sizeof *r);
}

static void add_field(struct csv_reader *r, char *s)
{
    if (r->nfield == r->capf) {
        r->capf = r->capf ? 2 * r->capf : 16;
        r->field = xrealloc(r->field, (size_t)r->capf * sizeof *r->field);
    }
    r->field[r->nfield++] = s;
}

/* Splits r->buf in place. */
static int split(struct csv_reader *r)
{
    char *p = r->buf;
    r->nfield = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) {
                    snprintf(r->err, sizeof r->err, "a quoted field is not closed (quotes inside a field are doubled: \"\")");
                    return -EINVAL;
                }
                if (*p == '"') {
                    if (p[1] == '"') {
                        *out++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *out++ = *p++;
            }
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p && *p != ',') {
                snprintf(r->err, sizeof r->err, "text after a closing quote");
                return -EINVAL;
            }
        } else {
            while (*p && *p != ',')
                p++;
            out = p;
            while (out > start && isspace((unsigned char)out[-1]))
                out--;
        }
        char sep = *p;
        *out = '\0';
        add_field(r, start);
        if (!sep)
            return 0;
        p++;
    }
}

int csv_next(struct csv_reader *r)
{
    for (;;) {
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0)
            return ferror(r->f) ? -EIO : 0;
        r->line++;
        if ((size_t)n != strlen(r->buf)) {
            snprintf(r->err, sizeof r->err, "the line holds a NUL byte (is this a text CSV file?)");
            return -EINVAL;
        }
        char *s = r->buf;
        if (r->line == 1 && !strncmp(s, "\xef\xbb\xbf", 3))
            memmove(s, s + 3, strlen(s + 3) + 1);
        s[strcspn(s, "\r\n")] = '\0';
        size_t len = strlen(s);
        if (len > CSV_MAX_LINE) {
            snprintf(r->err, sizeof r->err, "the line is %zu bytes long, more than %d", len, CSV_MAX_LINE);
            return -EINVAL;
        }
        char why[96];
        if (text_check(s, len, CSV_MAX_LINE, why, sizeof why)) {
            snprintf(r->err, sizeof r->err, "%s", why);
            return -EINVAL;
        }
        const char *q = s;
        while (isspace((unsigned char)*q))
            q++;
        if (!*q)
            continue;
        int rc = split(r);
        for (int i = 0; !rc && i < r->nfield; i++)
            if (strlen(r->field[i]) > CSV_MAX_FIELD) {
                snprintf(r->err, sizeof r->err, "field %d is %zu bytes long, more than %d", i + 1,
                         strlen(r->field[i]), CSV_MAX_FIELD);
                rc = -EINVAL;
            }
        return rc ? rc : 1;
    }
}

void csv_put(FILE *f, const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
