/* The file layout of clip outputs (see clipfiles.h). */
#include "clipfiles.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

void frame_list_free(struct frame_list *l)
{
    for (size_t i = 0; l->path && i < l->n; i++)
        free(l->path[i]);
    free(l->path);
    free(l->tensor);
    l->path = NULL;
    l->tensor = NULL;
    l->n = 0;
}

static void add(struct frame_list *l, char *p)
{
    l->path = xrealloc(l->path, (l->n + 1) * sizeof *l->path);
    l->path[l->n++] = p;
}

int is_frame_file(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Frame n (1-based) under naming scheme i, or -1 when there are no more schemes. */
static int tim_name(char **p, const char *dir, int scheme, size_t n)
{
    switch (scheme) {
    case 0: return asprintf(p, "%s/%02zu.png", dir, n); /* dfew prep */
    case 1: return asprintf(p, "%s/%02zu.jpg", dir, n);
    case 2: return asprintf(p, "%s/%zu.jpg", dir, n); /* DFEW release */
    case 3: return asprintf(p, "%s/%zu.png", dir, n);
    default: *p = NULL; return -1;
    }
}

int clip_tim_frames(const char *dir, struct frame_list *out)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (!dir || stat(dir, &sb) != 0)
        return dir ? -errno : -ENOENT;
    if (!S_ISDIR(sb.st_mode))
        return -ENOTDIR;
    for (int scheme = 0;; scheme++) {
        for (size_t n = 1;; n++) {
            char *p = NULL;
            if (tim_name(&p, dir, scheme, n) < 0)
                return 0;
            if (!exists(p)) {
                free(p);
                break;
            }
            add(out, p);
        }
        if (out->n)
            return 0;
    }
}

/* Natural order: frame_2 before frame_10 when the numbers are not zero-padded. */
static int by_name(const void *a, const void *b) { return strverscmp(*(char *const *)a, *(char *const *)b); }

int clip_aligned_frames(const char *output_dir, const char *aligned_dir, struct frame_list *out)
{
    memset(out, 0, sizeof *out);
    char *dir = NULL;
    if (aligned_dir && *aligned_dir)
        dir = xstrdup(aligned_dir);
    else if (!output_dir || asprintf(&dir, "%s/aligned", output_dir) < 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        int explicit_dir = aligned_dir && *aligned_dir;
        free(dir);
        if (explicit_dir || e != ENOENT)
            return -e;
        /* the prep stage's one tensor of every aligned frame */
        char *t = NULL;
        if (asprintf(&t, "%s/aligned.u8", output_dir) < 0)
            return -ENOMEM;
        if (exists(t))
            out->tensor = t;
        else
            free(t);
        return 0;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !is_frame_file(de->d_name))
            continue;
        char *p = NULL;
        if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
            break;
        add(out, p);
    }
    closedir(d);
    free(dir);
    if (out->n)
        qsort(out->path, out->n, sizeof *out->path, by_name);
    return 0;
}

int dfew_clip_name(const char *in, char *out, size_t len)
{
    size_t n = strlen(in), digits = strspn(in, "0123456789");
    if (!n || *in == '.' || n > 200 ||
        strspn(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") != n)
        return -EINVAL;
    if (digits == n && n < 5)
        snprintf(out, len, "%05d", atoi(in));
    else
        snprintf(out, len, "%s", in);
    return strlen(out) < len ? 0 : -EINVAL;
}

/* Decimal digits for a size 1..65535 at *p; moves *p past them. */
static int size_at(const char **p, int *v)
{
    const char *q = *p;
    long x = 0;
    while (*q >= '0' && *q <= '9' && q - *p < 6)
        x = x * 10 + (*q++ - '0');
    if (q == *p || q - *p > 5 || x < 1 || x > 65535)
        return -EINVAL;
    *v = (int)x;
    *p = q;
    return 0;
}

int dfew_frame_dir(const char *name, int *w, int *h, int *tim)
{
    const char *p = name;
    if (strncmp(p, "clip_", 5))
        return -EINVAL;
    p += 5;
    if (size_at(&p, w) || *p++ != 'x' || size_at(&p, h))
        return -EINVAL;
    if (!*p)
        *tim = 0;
    else if (!strcmp(p, "_16f"))
        *tim = 1;
    else
        return -EINVAL;
    return 0;
}
