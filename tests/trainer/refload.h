/* refload.h: reads the reference files written by
 * workers/train/ref/make_reference.py (magic "DFEWREF\0", version 1, named
 * float32 records) and compares tensors the way the trainer tests report them
 * (worst relative error, the tensor's name). Test helper only. */
#ifndef DFEW_TEST_REFLOAD_H
#define DFEW_TEST_REFLOAD_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ref_rec {
    char name[64];
    int64_t numel;
    float *data;
};
struct ref_file {
    int n;
    struct ref_rec *recs;
};

static inline int ref_load(struct ref_file *rf, const char *path)
{
    memset(rf, 0, sizeof *rf);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open reference file %s (regenerate with workers/train/ref/make_reference.py)\n", path);
        return -1;
    }
    char magic[8];
    uint32_t ver, cnt;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "DFEWREF", 8) || fread(&ver, 4, 1, f) != 1 ||
        fread(&cnt, 4, 1, f) != 1 || ver != 1) {
        fprintf(stderr, "%s: not a version-1 dfew reference file\n", path);
        fclose(f);
        return -1;
    }
    rf->recs = calloc(cnt, sizeof *rf->recs);
    for (uint32_t i = 0; i < cnt; i++) {
        struct ref_rec *r = &rf->recs[i];
        if (fread(r->name, 1, 64, f) != 64 || fread(&r->numel, 8, 1, f) != 1 || r->numel < 0 ||
            r->numel > (1 << 26)) {
            fprintf(stderr, "%s: truncated at record %u\n", path, i);
            fclose(f);
            return -1;
        }
        r->name[63] = 0;
        r->data = malloc(sizeof(float) * (size_t)(r->numel ? r->numel : 1));
        if (fread(r->data, sizeof(float), (size_t)r->numel, f) != (size_t)r->numel) {
            fprintf(stderr, "%s: truncated in %s\n", path, r->name);
            fclose(f);
            return -1;
        }
        rf->n++;
    }
    fclose(f);
    return 0;
}

static inline const struct ref_rec *ref_get(const struct ref_file *rf, const char *name)
{
    for (int i = 0; i < rf->n; i++)
        if (!strcmp(rf->recs[i].name, name))
            return &rf->recs[i];
    return NULL;
}

static inline void ref_free(struct ref_file *rf)
{
    for (int i = 0; i < rf->n; i++)
        free(rf->recs[i].data);
    free(rf->recs);
    memset(rf, 0, sizeof *rf);
}

/* Error of got against want, relative to the tensor's scale:
 * max_i |got_i - want_i| / max(max_i |want_i|, floor). */
static inline double ref_relerr(const float *got, const float *want, int64_t n, double floor_)
{
    double md = 0, mw = floor_;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= md)) /* NaN counts as worst */
            md = isnan(d) ? INFINITY : d;
        if (fabs(want[i]) > mw)
            mw = fabs(want[i]);
    }
    return md / mw;
}

#endif
