/* Reading and writing faces.bin and clip.u8 (layouts in clipfmt.h). Fields
 * are packed byte by byte, so the files are little-endian on any host. */
#include "clipfmt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(p, v);
}

static void put_f64(uint8_t *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(p, v);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static float get_f32(const uint8_t *p)
{
    uint32_t v = get_u32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static double get_f64(const uint8_t *p)
{
    uint64_t v = get_u64(p);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static int put(FILE *f, const uint8_t *b, size_t n) { return fwrite(b, 1, n, f) == n ? 0 : -(errno ? errno : EIO); }

static void faces_pack_header(uint8_t *b, const struct faces_header *h)
{
    memset(b, 0, FACES_HEADER_SIZE);
    memcpy(b, FACES_MAGIC, 8);
    put_u32(b + 8, FACES_VERSION);
    put_u32(b + 12, FACES_HEADER_SIZE);
    put_u32(b + 16, FACES_RECORD_SIZE);
    put_u32(b + 20, FACES_LANDMARKS);
    put_u32(b + 24, h->width);
    put_u32(b + 28, h->height);
    put_u64(b + 32, h->records);
    put_f64(b + 40, h->start_s);
    put_f64(b + 48, h->end_s);
    put_u32(b + 56, h->subject_track);
    put_u32(b + 60, h->others);
}

int faces_write_header(FILE *f, const struct faces_header *h)
{
    uint8_t b[FACES_HEADER_SIZE];
    faces_pack_header(b, h);
    return put(f, b, sizeof b);
}

int faces_write_record(FILE *f, const struct face_record *r)
{
    uint8_t b[FACES_RECORD_SIZE];
    memset(b, 0, sizeof b);
    put_u32(b, r->index);
    put_u32(b + 4, r->found ? 1 : 0);
    put_f64(b + 8, r->t);
    for (int i = 0; i < 4; i++)
        put_f32(b + 16 + 4 * i, r->box[i]);
    put_f32(b + 32, r->score);
    put_u32(b + 36, r->faces_in_frame);
    for (int i = 0; i < 2 * FACES_LANDMARKS; i++)
        put_f32(b + 40 + 4 * i, r->pts[i]);
    return put(f, b, sizeof b);
}

int faces_write_other(FILE *f, const struct face_other *o)
{
    uint8_t b[FACES_OTHER_SIZE];
    memset(b, 0, sizeof b);
    put_u32(b, o->index);
    put_u32(b + 4, o->track);
    for (int i = 0; i < 4; i++)
        put_f32(b + 8 + 4 * i, o->box[i]);
    put_f32(b + 24, o->score);
    return put(f, b, sizeof b);
}

int faces_finish(FILE *f, const struct faces_header *h)
{
    uint8_t b[FACES_HEADER_SIZE];
    faces_pack_header(b, h);
    if (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0)
        return -(errno ? errno : EIO);
    int rc = put(f, b, sizeof b);
    if (!rc && (fflush(f) != 0 || fseek(f, 0, SEEK_END) != 0))
        rc = -(errno ? errno : EIO);
    return rc;
}

static int read_all(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *b = malloc(cap);
    int rc = b ? 0 : -ENOMEM;
    while (!rc && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(b, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
            } else {
                b = nb;
                cap *= 2;
            }
        }
    }
    if (!rc && ferror(f))
        rc = -EIO;
    fclose(f);
    if (rc) {
        free(b);
        snprintf(err, errlen, "%s: %s", path, rc == -EIO ? "read error" : "out of memory");
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

int faces_read_all(const char *path, struct faces_header *h, struct face_record **recs, struct face_other **others,
                   char *err, size_t errlen)
{
    *recs = NULL;
    if (others)
        *others = NULL;
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = read_all(path, &b, &n, err, errlen);
    if (rc)
        return rc;
    rc = faces_parse(b, n, path, h, recs, others, err, errlen);
    free(b);
    return rc;
}

int faces_parse(const uint8_t *b, size_t n, const char *path, struct faces_header *h, struct face_record **recs,
                struct face_other **others, char *err, size_t errlen)
{
    *recs = NULL;
    if (others)
        *others = NULL;
    int rc = -EINVAL;
    if (n < FACES_HEADER_SIZE || memcmp(b, FACES_MAGIC, 8)) {
        snprintf(err, errlen, "%s: not a dfew faces file (no %s magic)", path, FACES_MAGIC);
        goto out;
    }
    uint32_t version = get_u32(b + 8);
    if ((version != 1 && version != FACES_VERSION) || get_u32(b + 12) != FACES_HEADER_SIZE ||
        get_u32(b + 16) != FACES_RECORD_SIZE || get_u32(b + 20) != FACES_LANDMARKS) {
        snprintf(err, errlen, "%s: faces file version %u, this dfew reads versions 1 and %d; run the clip's prep again",
                 path, version, FACES_VERSION);
        goto out;
    }
    h->version = version;
    h->width = get_u32(b + 24);
    h->height = get_u32(b + 28);
    h->records = get_u64(b + 32);
    h->start_s = get_f64(b + 40);
    h->end_s = get_f64(b + 48);
    h->subject_track = version >= 2 ? get_u32(b + 56) : FACES_NO_TRACK;
    h->others = version >= 2 ? get_u32(b + 60) : 0;
    if (h->records > (n - FACES_HEADER_SIZE) / FACES_RECORD_SIZE ||
        n != FACES_HEADER_SIZE + h->records * FACES_RECORD_SIZE + (uint64_t)h->others * FACES_OTHER_SIZE) {
        snprintf(err, errlen, "%s: truncated or damaged (%zu bytes for %llu records and %u other faces)", path, n,
                 (unsigned long long)h->records, h->others);
        goto out;
    }
    struct face_record *r = calloc(h->records ? h->records : 1, sizeof *r);
    if (!r) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < h->records; i++) {
        const uint8_t *p = b + FACES_HEADER_SIZE + i * FACES_RECORD_SIZE;
        r[i].index = get_u32(p);
        r[i].found = get_u32(p + 4) & 1;
        r[i].t = get_f64(p + 8);
        for (int k = 0; k < 4; k++)
            r[i].box[k] = get_f32(p + 16 + 4 * k);
        r[i].score = get_f32(p + 32);
        r[i].faces_in_frame = get_u32(p + 36);
        for (int k = 0; k < 2 * FACES_LANDMARKS; k++)
            r[i].pts[k] = get_f32(p + 40 + 4 * k);
    }
    if (others) {
        struct face_other *o = calloc(h->others ? h->others : 1, sizeof *o);
        if (!o) {
            free(r);
            rc = -ENOMEM;
            goto out;
        }
        const uint8_t *base = b + FACES_HEADER_SIZE + h->records * FACES_RECORD_SIZE;
        for (uint32_t i = 0; i < h->others; i++) {
            const uint8_t *p = base + (size_t)i * FACES_OTHER_SIZE;
            o[i].index = get_u32(p);
            o[i].track = get_u32(p + 4);
            for (int k = 0; k < 4; k++)
                o[i].box[k] = get_f32(p + 8 + 4 * k);
            o[i].score = get_f32(p + 24);
        }
        *others = o;
    }
    *recs = r;
    rc = 0;
out:
    return rc;
}

int faces_read(const char *path, struct faces_header *h, struct face_record **recs, char *err, size_t errlen)
{
    return faces_read_all(path, h, recs, NULL, err, errlen);
}

int clip_write_header(FILE *f, int frames, int height, int width, int channels)
{
    uint8_t b[CLIP_HEADER_SIZE] = {0};
    memcpy(b, CLIP_MAGIC, 8);
    put_u32(b + 8, CLIP_VERSION);
    put_u32(b + 12, CLIP_HEADER_SIZE);
    put_u32(b + 16, (uint32_t)frames);
    put_u32(b + 20, (uint32_t)height);
    put_u32(b + 24, (uint32_t)width);
    put_u32(b + 28, (uint32_t)channels);
    return put(f, b, sizeof b);
}

/* The four dimensions of a clip.u8 header, each from 1 to INT_MAX, and
 * their product (the pixel bytes) without overflowing; 0 when not. */
static uint64_t clip_bytes(const uint8_t *b, uint32_t dims[4])
{
    uint64_t need = 1;
    for (int i = 0; i < 4; i++) {
        dims[i] = get_u32(b + 16 + 4 * i);
        if (!dims[i] || dims[i] > INT32_MAX || need > (UINT64_C(1) << 48) / dims[i])
            return 0;
        need *= dims[i];
    }
    return need;
}

int clip_read(const char *path, int *frames, int *height, int *width, int *channels, uint8_t **data, char *err,
              size_t errlen)
{
    *data = NULL;
    uint8_t *b;
    size_t n;
    int rc = read_all(path, &b, &n, err, errlen);
    if (rc)
        return rc;
    size_t off;
    rc = clip_parse(b, n, path, frames, height, width, channels, &off, err, errlen);
    if (rc) {
        free(b);
        return rc;
    }
    memmove(b, b + off, n - off);
    *data = b;
    return 0;
}

int clip_parse(const uint8_t *b, size_t n, const char *path, int *frames, int *height, int *width, int *channels,
               size_t *pixels_at, char *err, size_t errlen)
{
    if (n < CLIP_HEADER_SIZE || memcmp(b, CLIP_MAGIC, 8) || get_u32(b + 8) != CLIP_VERSION) {
        snprintf(err, errlen, "%s: not a dfew clip tensor (version %d)", path, CLIP_VERSION);
        return -EINVAL;
    }
    uint32_t d[4];
    uint64_t need = clip_bytes(b, d);
    if (get_u32(b + 12) != CLIP_HEADER_SIZE || n - CLIP_HEADER_SIZE != need || !need) {
        snprintf(err, errlen, "%s: truncated or damaged (%zu bytes for %ux%ux%ux%u)", path, n, get_u32(b + 16),
                 get_u32(b + 20), get_u32(b + 24), get_u32(b + 28));
        return -EINVAL;
    }
    *frames = (int)d[0];
    *height = (int)d[1];
    *width = (int)d[2];
    *channels = (int)d[3];
    *pixels_at = CLIP_HEADER_SIZE;
    return 0;
}

/* Reads the header from an open clip.u8 and checks it against the file size. */
static int clip_header(FILE *f, const char *path, uint32_t dims[4], char *err, size_t errlen)
{
    uint8_t b[CLIP_HEADER_SIZE];
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    if (fread(b, 1, sizeof b, f) != sizeof b || memcmp(b, CLIP_MAGIC, 8) || get_u32(b + 8) != CLIP_VERSION ||
        get_u32(b + 12) != CLIP_HEADER_SIZE) {
        snprintf(err, errlen, "%s: not a dfew clip tensor (version %d); run the clip's prep again", path,
                 CLIP_VERSION);
        return -EINVAL;
    }
    uint64_t need = clip_bytes(b, dims);
    if (!need || (uint64_t)st.st_size != CLIP_HEADER_SIZE + need) {
        snprintf(err, errlen, "%s: truncated or damaged (%lld bytes for %ux%ux%ux%u)", path, (long long)st.st_size,
                 get_u32(b + 16), get_u32(b + 20), get_u32(b + 24), get_u32(b + 28));
        return -EINVAL;
    }
    return 0;
}

/* Opens a clip.u8 and reads its header; NULL with the reason in err. */
static FILE *clip_open(const char *path, uint32_t dims[4], int *rc, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-*rc));
        return NULL;
    }
    if ((*rc = clip_header(f, path, dims, err, errlen)) != 0) {
        fclose(f);
        return NULL;
    }
    return f;
}

int clip_read_header(const char *path, int *frames, int *height, int *width, int *channels, char *err,
                     size_t errlen)
{
    uint32_t d[4];
    int rc;
    FILE *f = clip_open(path, d, &rc, err, errlen);
    if (!f)
        return rc;
    fclose(f);
    *frames = (int)d[0];
    *height = (int)d[1];
    *width = (int)d[2];
    *channels = (int)d[3];
    return 0;
}

int clip_read_into(const char *path, int frames, int height, int width, uint8_t *dst, char *err, size_t errlen)
{
    uint32_t d[4];
    int rc;
    FILE *f = clip_open(path, d, &rc, err, errlen);
    if (!f)
        return rc;
    if (d[0] != (uint32_t)frames || d[1] != (uint32_t)height || d[2] != (uint32_t)width || d[3] != 3) {
        snprintf(err, errlen, "%s: a %ux%ux%ux%u clip, the run expects %dx%dx%dx3 (all clips of a run have one size)",
                 path, d[0], d[1], d[2], d[3], frames, height, width);
        rc = -EINVAL;
    }
    size_t n = (size_t)frames * height * width * 3;
    if (!rc && fread(dst, 1, n, f) != n) {
        snprintf(err, errlen, "%s: read error", path);
        rc = -EIO;
    }
    fclose(f);
    return rc;
}
