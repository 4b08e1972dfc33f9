/* Finding and following the subject's face (see face.h). */
#include "face.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FACES 32

struct face_tracker {
    struct dlibc_detector *det;
    struct dlibc_predictor *sp;
    struct face_opts o;
    int have_track;
    struct dlibc_box last; /* the subject's last box */
    double last_t;         /* when it was seen */
};

int face_tracker_new(struct dlibc_detector *det, struct dlibc_predictor *sp, const struct face_opts *o,
                     struct face_tracker **out)
{
    struct face_tracker *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->det = det;
    t->sp = sp;
    t->o = *o;
    *out = t;
    return 0;
}

void face_tracker_free(struct face_tracker *t) { free(t); }

void face_tracker_reset(struct face_tracker *t) { t->have_track = 0; }

static double area(const struct dlibc_box *b) { return (b->x1 - b->x0) * (b->y1 - b->y0); }

static double iou(const struct dlibc_box *a, const struct dlibc_box *b)
{
    double w = fmin(a->x1, b->x1) - fmax(a->x0, b->x0), h = fmin(a->y1, b->y1) - fmax(a->y0, b->y0);
    if (w <= 0 || h <= 0)
        return 0;
    double i = w * h;
    return i / (area(a) + area(b) - i);
}

int face_locate(struct face_tracker *t, const struct decoded_frame *f, struct face_obs *obs)
{
    memset(obs, 0, sizeof *obs);
    struct dlibc_image img = f->gray ? (struct dlibc_image){f->gray, f->width, f->height, f->gray_stride, DLIBC_GRAY8}
                                     : (struct dlibc_image){f->rgb, f->width, f->height, f->rgb_stride, DLIBC_RGB24};
    struct dlibc_box boxes[MAX_FACES];
    int n = dlibc_detect(t->det, &img, t->o.upsample, boxes, MAX_FACES);
    if (n < 0)
        return n;
    obs->faces_in_frame = n;
    if (n > MAX_FACES)
        n = MAX_FACES;
    int pick = -1;
    double best = 0;
    if (t->have_track && f->t - t->last_t <= t->o.track_keep_s) {
        for (int i = 0; i < n; i++) {
            double o = iou(&boxes[i], &t->last);
            if (o >= t->o.min_iou && o > best) {
                pick = i;
                best = o;
            }
        }
    }
    if (pick < 0) /* no face continues the track: the largest one is the subject */
        for (int i = 0; i < n; i++)
            if (pick < 0 || area(&boxes[i]) > area(&boxes[pick]))
                pick = i;
    if (pick < 0)
        return 0;
    int rc = dlibc_predict(t->sp, &img, &boxes[pick], obs->pts);
    if (rc)
        return rc;
    obs->found = 1;
    obs->box = boxes[pick];
    t->have_track = 1;
    t->last = boxes[pick];
    t->last_t = f->t;
    return 0;
}
