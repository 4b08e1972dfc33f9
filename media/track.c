/* The face tracker (see track.h). */
#include "track.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavutil/frame.h>
#include <libavutil/mem.h>

#include "align.h"
#include "decode.h"

#define MAX_DET 64         /* detections taken from one frame */
#define DESC 20            /* appearance patch side */
#define NEAR_MARGIN 0.35   /* search window around a predicted box, in box sides */
#define NEAR_RANGE 1.3     /* sizes searched around a predicted box's */
#define MIN_IOU 0.25       /* a detection this close to a predicted box can continue its track */
#define MIN_NCC 0.45       /* below: not the same face (only for tracks with a history) */
#define NCC_HISTORY 3      /* detections before a track's appearance is trusted */
#define FOLLOW_SHAPE 0.08  /* a followed face's landmarks against the frame before: similarity residual, eye distances */
#define FOLLOW_SIZE 0.12   /* its size against the frame before, relative */
#define FOLLOW_NCC 0.6     /* its appearance patch against the track's */
#define FOLLOW_MOVE 0.25   /* its centre's move from the frame before, in box sides */
#define FOLLOW_CLEAR 0.5   /* no other face within this many box sides of it (crossing faces are searched) */
#define FOLLOW_SETTLED 0.85  /* the predictor's box against the box it ran in: one run is enough */
#define FOLLOW_CONVERGED 0.7 /* overlap of the boxes of the predictor's two runs */

/* The appearance patch's five points: a face aligned in a DESC x DESC square. */
static const double DESC_TPL[10] = {6.8, 9.2, 13.1, 9.2, 10.0, 12.8, 7.4, 16.5, 12.6, 16.5};

#define HIST 8 /* detections kept per track for its velocity */

struct track {
    int id;
    int active;
    struct dlibc_box box; /* last detected */
    double t_last;        /* when */
    int64_t f_last, f_prev; /* frame of the last detection, and of the one before (-1: none) */
    double vx, vy, vs;    /* centre and size velocity, per second */
    struct dlibc_box hist[HIST];
    double hist_t[HIST];
    int nhist;
    float desc[DESC * DESC];
    int has_desc, seen;
    int hit; /* matched in the frame being processed */
    /* following by landmarks (fast): */
    float pts[2 * DLIBC_LANDMARKS]; /* in the frame it was last detected or followed in */
    double rel[4];                  /* its last detected box in the frame of that detection's landmarks */
    int has_rel;
    struct dlibc_box fbox;          /* its last followed box, at frame f_follow, time t_follow */
    int64_t f_follow;               /* -1: none since its last detection */
    double t_follow;
    int nfollow;                    /* followed faces since its last detection (not confirmed yet) */
    int followed_now;               /* followed in the frame being processed */
};

struct buffered {
    int64_t index;
    double t, cut_score;
    int cut, searched;
    struct gray_plane g; /* tracker_push may swap it with the caller's */
    AVFrame *av;
    struct track_face *faces;
    int nfaces, capfaces;
};

struct tracker {
    struct dlibc_detector *det;
    struct dlibc_detector *helper; /* a second scanner for split whole-frame searches (made when first used) */
    struct dlibc_predictor *sp;
    struct track_opts o;
    struct track *tr;
    int ntr, captr;
    struct track_summary *sum;
    int nsum, capsum;
    /* frames not out yet: ring of cap, [head, head + count) */
    struct buffered *buf;
    int cap, head, count;
    struct buffered out; /* the frame handed out last (its buffers) */
    int64_t next_index;
    double last_search_t;
    int64_t last_search_f; /* -1: none */
    int finished;
    struct track_stats st;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double side(const struct dlibc_box *b) { return sqrt(fmax(0, b->x1 - b->x0) * fmax(0, b->y1 - b->y0)); }

static double iou(const struct dlibc_box *a, const struct dlibc_box *b)
{
    double w = fmin(a->x1, b->x1) - fmax(a->x0, b->x0), h = fmin(a->y1, b->y1) - fmax(a->y0, b->y0);
    if (w <= 0 || h <= 0)
        return 0;
    double i = w * h;
    double u = (a->x1 - a->x0) * (a->y1 - a->y0) + (b->x1 - b->x0) * (b->y1 - b->y0) - i;
    return u > 0 ? i / u : 0;
}

static int same_box(const struct dlibc_box *a, const struct dlibc_box *b)
{
    return a->x0 == b->x0 && a->y0 == b->y0 && a->x1 == b->x1 && a->y1 == b->y1;
}

int tracker_new(struct dlibc_detector *det, struct dlibc_predictor *sp, const struct track_opts *o,
                struct tracker **out)
{
    *out = NULL;
    if (!det || (o->landmarks && !sp) || o->lost_interval < 1 || o->max_tracks < 1 || o->max_tracks > 64 ||
        o->follow_frames < 0 || o->follow_frames >= o->lost_interval)
        return -EINVAL;
    struct tracker *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->det = det;
    t->sp = sp;
    t->o = *o;
    if (t->o.upsample > 0)
        t->o.detect = TRACK_EVERY_FRAME; /* the near search works on the picture as it is */
    t->cap = t->o.detect == TRACK_FAST ? t->o.lost_interval + 1 : 1;
    t->buf = calloc((size_t)t->cap, sizeof *t->buf);
    if (!t->buf) {
        free(t);
        return -ENOMEM;
    }
    tracker_reset(t);
    *out = t;
    return 0;
}

static void buffered_clear(struct buffered *b)
{
    av_frame_free(&b->av);
    b->nfaces = 0;
}

static void buffered_free(struct buffered *b)
{
    buffered_clear(b);
    gray_plane_free(&b->g);
    free(b->faces);
    memset(b, 0, sizeof *b);
}

void tracker_free(struct tracker *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->cap; i++)
        buffered_free(&t->buf[i]);
    buffered_free(&t->out);
    dlibc_detector_free(t->helper);
    free(t->buf);
    free(t->tr);
    free(t->sum);
    free(t);
}

void tracker_reset(struct tracker *t)
{
    for (int i = 0; i < t->count; i++)
        buffered_clear(&t->buf[(t->head + i) % t->cap]);
    buffered_clear(&t->out);
    t->head = t->count = 0;
    t->ntr = t->nsum = 0;
    t->next_index = 0;
    t->last_search_f = -1;
    t->last_search_t = 0;
    t->finished = 0;
    memset(&t->st, 0, sizeof t->st);
}

const struct track_stats *tracker_stats(const struct tracker *t) { return &t->st; }

const struct track_summary *tracker_tracks(const struct tracker *t, int *n)
{
    *n = t->nsum;
    return t->sum;
}

static int add_face(struct buffered *b, const struct track_face *f)
{
    if (b->nfaces == b->capfaces) {
        int cap = b->capfaces ? 2 * b->capfaces : 4;
        struct track_face *v = realloc(b->faces, sizeof *v * (size_t)cap);
        if (!v)
            return -ENOMEM;
        b->faces = v;
        b->capfaces = cap;
    }
    b->faces[b->nfaces++] = *f;
    return 0;
}

/* The appearance patch: a DESC x DESC grey square of the face aligned by
 * its landmarks, zero mean, unit norm. (Without landmarks there is none:
 * a patch cut by the box changes too much when the box jumps by a cell.) */
static int describe(const struct buffered *b, const float *pts, float *desc)
{
    double m[6], five[10];
    align_five_points(pts, five);
    if (align_similarity(five, DESC_TPL, 5, m))
        return -EINVAL;
    uint8_t patch[DESC * DESC];
    if (align_warp_channels(b->g.buf, b->g.width, b->g.height, b->g.stride, 1, m, patch, DESC))
        return -EINVAL;
    double mean = 0, ss = 0;
    for (int i = 0; i < DESC * DESC; i++)
        mean += patch[i];
    mean /= DESC * DESC;
    for (int i = 0; i < DESC * DESC; i++) {
        desc[i] = (float)(patch[i] - mean);
        ss += desc[i] * (double)desc[i];
    }
    if (!(ss > 1e-6))
        return -EINVAL;
    float k = (float)(1 / sqrt(ss));
    for (int i = 0; i < DESC * DESC; i++)
        desc[i] *= k;
    return 0;
}

static double ncc(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < DESC * DESC; i++)
        s += a[i] * (double)b[i];
    return s;
}

/* Where and when track tr was last seen: its last detection, or its last
 * face followed by landmarks when that came later. Returns the time; box
 * and frame are optional. */
static double last_seen(const struct track *tr, const struct dlibc_box **box, int64_t *frame)
{
    int fol = tr->f_follow > tr->f_last;
    if (box)
        *box = fol ? &tr->fbox : &tr->box;
    if (frame)
        *frame = fol ? tr->f_follow : tr->f_last;
    return fol ? tr->t_follow : tr->t_last;
}

/* The frame track tr was last seen in (detected or followed). */
static int64_t last_frame(const struct track *tr)
{
    int64_t f;
    last_seen(tr, NULL, &f);
    return f;
}

/* Where track tr should be at time t: its last box moved by its velocity,
 * damped as the gap grows and never by more than half a box side (HOG boxes
 * jump by a cell, so velocities are rough). */
static struct dlibc_box predict(const struct track *tr, double t)
{
    const struct dlibc_box *box;
    double dt = t - last_seen(tr, &box, NULL);
    double damp = exp(-dt / 0.3);
    double s = side(box);
    double mx = tr->vx * dt * damp, my = tr->vy * dt * damp;
    double m = sqrt(mx * mx + my * my);
    if (m > 0.5 * s) {
        mx *= 0.5 * s / m;
        my *= 0.5 * s / m;
    }
    double cx = 0.5 * (box->x0 + box->x1) + mx, cy = 0.5 * (box->y0 + box->y1) + my;
    double k = fmax(0.8, fmin(1.25, 1 + tr->vs * dt * damp));
    double w = (box->x1 - box->x0) * k, h = (box->y1 - box->y0) * k;
    return (struct dlibc_box){cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, tr->box.score};
}


/* The frame a face's landmarks give: their centre and spread (root mean
 * square distance from the centre). */
static void pts_frame(const float *pts, double *cx, double *cy, double *sp)
{
    double x = 0, y = 0, ss = 0;
    for (int i = 0; i < DLIBC_LANDMARKS; i++)
        x += pts[2 * i], y += pts[2 * i + 1];
    x /= DLIBC_LANDMARKS;
    y /= DLIBC_LANDMARKS;
    for (int i = 0; i < DLIBC_LANDMARKS; i++)
        ss += (pts[2 * i] - x) * (pts[2 * i] - x) + (pts[2 * i + 1] - y) * (pts[2 * i + 1] - y);
    *cx = x;
    *cy = y;
    *sp = sqrt(ss / DLIBC_LANDMARKS);
}

/* Remembers where the detector put box around landmarks pts. */
static void rel_set(struct track *tr, const struct dlibc_box *box, const float *pts)
{
    double cx, cy, sp;
    pts_frame(pts, &cx, &cy, &sp);
    tr->has_rel = sp > 1;
    if (!tr->has_rel)
        return;
    tr->rel[0] = (box->x0 - cx) / sp;
    tr->rel[1] = (box->y0 - cy) / sp;
    tr->rel[2] = (box->x1 - cx) / sp;
    tr->rel[3] = (box->y1 - cy) / sp;
}

/* The box the detector would give the face of landmarks pts (as it did at
 * the track's last detection). */
static struct dlibc_box box_from_pts(const struct track *tr, const float *pts)
{
    double cx, cy, sp;
    pts_frame(pts, &cx, &cy, &sp);
    return (struct dlibc_box){cx + tr->rel[0] * sp, cy + tr->rel[1] * sp, cx + tr->rel[2] * sp, cy + tr->rel[3] * sp,
                              tr->box.score};
}

/* How far the shape of landmarks a is from b's: a mapped onto b by the best
 * similarity, the root mean square distance left, in b's eye distances. */
static double shape_residual(const float *a, const float *b)
{
    double src[2 * DLIBC_LANDMARKS], dst[2 * DLIBC_LANDMARKS], m[6];
    for (int i = 0; i < 2 * DLIBC_LANDMARKS; i++) {
        src[i] = a[i];
        dst[i] = b[i];
    }
    if (align_similarity(src, dst, DLIBC_LANDMARKS, m))
        return INFINITY;
    double lx = 0, ly = 0, rx = 0, ry = 0, ss = 0;
    for (int i = 36; i < 42; i++)
        lx += b[2 * i] / 6.0, ly += b[2 * i + 1] / 6.0;
    for (int i = 42; i < 48; i++)
        rx += b[2 * i] / 6.0, ry += b[2 * i + 1] / 6.0;
    double eyes = hypot(rx - lx, ry - ly);
    for (int i = 0; i < DLIBC_LANDMARKS; i++) {
        double x = m[0] * src[2 * i] + m[1] * src[2 * i + 1] + m[2];
        double y = m[3] * src[2 * i] + m[4] * src[2 * i + 1] + m[5];
        ss += (x - dst[2 * i]) * (x - dst[2 * i]) + (y - dst[2 * i + 1]) * (y - dst[2 * i + 1]);
    }
    return eyes > 1 ? sqrt(ss / DLIBC_LANDMARKS) / eyes : INFINITY;
}

static struct dlibc_image gray_image(const struct buffered *b)
{
    return (struct dlibc_image){b->g.buf, b->g.width, b->g.height, b->g.stride, DLIBC_GRAY8};
}

/* A detected face: its landmarks and appearance. */
struct cand {
    struct dlibc_box box;
    float pts[2 * DLIBC_LANDMARKS];
    float desc[DESC * DESC];
    int has_desc;
    int taken;
};

static int describe_cand(struct tracker *t, const struct buffered *b, struct cand *c)
{
    if (t->o.landmarks) {
        struct dlibc_image img = gray_image(b);
        double t0 = now_s();
        int rc = dlibc_predict(t->sp, &img, &c->box, c->pts);
        t->st.landmarks_s += now_s() - t0;
        if (rc)
            return rc;
    }
    c->has_desc = t->o.landmarks && describe(b, c->pts, c->desc) == 0;
    return 0;
}

static int track_summary_add(struct tracker *t, int id, int64_t f, const struct dlibc_box *box)
{
    if (id >= t->nsum) {
        if (id >= t->capsum) {
            int cap = t->capsum ? 2 * t->capsum : 16;
            while (cap <= id)
                cap *= 2;
            struct track_summary *v = realloc(t->sum, sizeof *v * (size_t)cap);
            if (!v)
                return -ENOMEM;
            t->sum = v;
            t->capsum = cap;
        }
        for (int i = t->nsum; i <= id; i++)
            t->sum[i] = (struct track_summary){.id = i, .first = -1, .last = -1};
        t->nsum = id + 1;
    }
    struct track_summary *s = &t->sum[id];
    if (s->first < 0 || f < s->first) {
        s->first = f;
        s->first_box = *box;
    }
    if (f > s->last)
        s->last = f;
    s->frames++;
    s->size_sum += side(box);
    return 0;
}

/* Records face c as track tr's in frame b (and its motion). */
static int record(struct tracker *t, struct buffered *b, struct track *tr, const struct cand *c, int back)
{
    struct track_face f = {.track = tr->id, .box = c->box, .back = back};
    if (t->o.landmarks)
        memcpy(f.pts, c->pts, sizeof f.pts);
    int rc = add_face(b, &f);
    if (!rc)
        rc = track_summary_add(t, tr->id, b->index, &c->box);
    if (rc || back)
        return rc;
    /* velocity over the detections of the last quarter second or so */
    if (tr->nhist == HIST) {
        memmove(tr->hist, tr->hist + 1, sizeof tr->hist[0] * (HIST - 1));
        memmove(tr->hist_t, tr->hist_t + 1, sizeof tr->hist_t[0] * (HIST - 1));
        tr->nhist--;
    }
    tr->hist[tr->nhist] = c->box;
    tr->hist_t[tr->nhist++] = b->t;
    int r = 0;
    while (r < tr->nhist - 2 && b->t - tr->hist_t[r + 1] >= 0.25)
        r++;
    double dt = b->t - tr->hist_t[r];
    if (r < tr->nhist - 1 && dt > 1e-6) {
        const struct dlibc_box *o = &tr->hist[r];
        tr->vx = (0.5 * (c->box.x0 + c->box.x1) - 0.5 * (o->x0 + o->x1)) / dt;
        tr->vy = (0.5 * (c->box.y0 + c->box.y1) - 0.5 * (o->y0 + o->y1)) / dt;
        tr->vs = (side(&c->box) / fmax(1, side(o)) - 1) / dt;
    } else {
        tr->vx = tr->vy = tr->vs = 0;
    }
    /* followed faces up to the frame before are confirmed by this detection */
    tr->f_prev = -1;
    if (tr->seen)
        last_seen(tr, NULL, &tr->f_prev);
    tr->f_follow = -1;
    tr->nfollow = 0;
    if (t->o.landmarks) {
        memcpy(tr->pts, c->pts, sizeof tr->pts);
        rel_set(tr, &c->box, c->pts);
    }
    tr->box = c->box;
    tr->t_last = b->t;
    tr->f_last = b->index;
    tr->seen++;
    tr->hit = 1;
    if (c->has_desc) {
        if (!tr->has_desc) {
            memcpy(tr->desc, c->desc, sizeof tr->desc);
        } else { /* a slow average, renormalised */
            double ss = 0;
            for (int i = 0; i < DESC * DESC; i++) {
                tr->desc[i] = 0.8f * tr->desc[i] + 0.2f * c->desc[i];
                ss += tr->desc[i] * (double)tr->desc[i];
            }
            float k = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
            for (int i = 0; i < DESC * DESC; i++)
                tr->desc[i] *= k;
        }
        tr->has_desc = 1;
    }
    return 0;
}

static struct track *new_track(struct tracker *t)
{
    int active = 0;
    for (int i = 0; i < t->ntr; i++)
        active += t->tr[i].active;
    if (active >= t->o.max_tracks)
        return NULL;
    if (t->ntr == t->captr) {
        int cap = t->captr ? 2 * t->captr : 16;
        struct track *v = realloc(t->tr, sizeof *v * (size_t)cap);
        if (!v)
            return NULL;
        t->tr = v;
        t->captr = cap;
    }
    struct track *tr = &t->tr[t->ntr];
    memset(tr, 0, sizeof *tr);
    tr->id = t->nsum; /* ids follow the summaries: one per track ever started */
    tr->active = 1;
    tr->f_follow = -1;
    t->ntr++;
    t->st.tracks++;
    return tr;
}

static double centre_distance(const struct dlibc_box *a, const struct dlibc_box *b)
{
    double dx = 0.5 * (a->x0 + a->x1 - b->x0 - b->x1), dy = 0.5 * (a->y0 + a->y1 - b->y0 - b->y1);
    return sqrt(dx * dx + dy * dy) / fmax(1, side(a));
}

/* How well candidate c continues track tr (predicted box p): -1 when it
 * cannot: it must overlap the predicted or the last box, or lie within
 * about half a side of either at a similar size, and look like the track. */
static double affinity(const struct track *tr, const struct dlibc_box *p, const struct cand *c)
{
    double o = fmax(iou(p, &c->box), iou(&tr->box, &c->box));
    double dist = fmin(centre_distance(p, &c->box), centre_distance(&tr->box, &c->box));
    double ratio = side(&c->box) / fmax(1, side(p));
    if (o < MIN_IOU && !(dist < 0.6 && ratio > 0.67 && ratio < 1.5))
        return -1;
    double a = o + 0.5 * (1 - fmin(1, dist));
    if (tr->has_desc && c->has_desc) {
        double n = ncc(tr->desc, c->desc);
        /* appearance vetoes only what the boxes leave open: a face that
         * overlaps the track's box by half is the same face even when it
         * turned or the light changed (the patch of a face in profile
         * correlates 0.3 with its frontal view) */
        if (tr->seen >= NCC_HISTORY && n < MIN_NCC && o < 0.5)
            return -1;
        a += n;
    }
    return a;
}

/* Matches the frame's candidates to the active tracks (best pairs first),
 * records them, starts tracks for the rest. */
static int associate(struct tracker *t, struct buffered *b, struct cand *c, int nc)
{
    int nt = t->ntr;
    struct dlibc_box pred[64];
    double aff[64][MAX_DET];
    if (nt > 64)
        nt = 64;
    for (int i = 0; i < nt; i++) {
        t->tr[i].hit = t->tr[i].followed_now; /* found by its landmarks: takes no detection */
        if (t->tr[i].active)
            pred[i] = predict(&t->tr[i], b->t);
        for (int j = 0; j < nc; j++)
            aff[i][j] = t->tr[i].active ? affinity(&t->tr[i], &pred[i], &c[j]) : -1;
    }
    for (;;) {
        int bi = -1, bj = -1;
        double best = -1;
        for (int i = 0; i < nt; i++)
            if (!t->tr[i].hit)
                for (int j = 0; j < nc; j++)
                    if (!c[j].taken && aff[i][j] > best) {
                        best = aff[i][j];
                        bi = i;
                        bj = j;
                    }
        if (bi < 0)
            break;
        c[bj].taken = 1;
        int rc = record(t, b, &t->tr[bi], &c[bj], 0);
        if (rc)
            return rc;
    }
    /* new faces, largest first */
    for (;;) {
        int bj = -1;
        for (int j = 0; j < nc; j++)
            if (!c[j].taken && (bj < 0 || side(&c[j].box) > side(&c[bj].box)))
                bj = j;
        if (bj < 0)
            break;
        c[bj].taken = 1;
        /* not a face followed by its landmarks in this frame (another
         * track's near search can find it) */
        int followed = 0;
        for (int k = 0; k < b->nfaces && !followed; k++)
            followed = b->faces[k].followed && iou(&b->faces[k].box, &c[bj].box) > 0.3;
        if (followed)
            continue;
        struct track *tr = new_track(t);
        if (!tr)
            continue;
        int rc = record(t, b, tr, &c[bj], 0);
        if (rc)
            return rc;
    }
    return 0;
}

static int verify_followed(struct tracker *t, int pos, struct track *tr);

/* Tracks not detected for longer than the gap end; at a cut, all do (their
 * followed faces checked first). pos: the frame being processed. */
static int expire(struct tracker *t, int pos, double now, int cut)
{
    int k = 0;
    for (int i = 0; i < t->ntr; i++) {
        struct track *tr = &t->tr[i];
        if (cut || now - last_seen(tr, NULL, NULL) > t->o.track_gap_s + 1e-6) {
            int rc = tr->nfollow ? verify_followed(t, pos, tr) : 0;
            if (rc)
                return rc;
            tr->active = 0;
        }
        if (tr->active)
            t->tr[k++] = *tr;
    }
    t->ntr = k;
    return 0;
}

/* Adds the detections in boxes (n) to cands, dropping exact repeats. */
static int add_cands(struct cand *c, int nc, const struct dlibc_box *boxes, int n)
{
    for (int i = 0; i < n && nc < MAX_DET; i++) {
        int dup = 0;
        for (int j = 0; j < nc && !dup; j++)
            dup = same_box(&c[j].box, &boxes[i]);
        if (!dup) {
            memset(&c[nc], 0, sizeof c[nc]);
            c[nc++].box = boxes[i];
        }
    }
    return nc;
}

/* dlibc_detect_near on frame b, counted in the stats. */
static int search_near(struct tracker *t, const struct buffered *b, const struct dlibc_box *near, double margin,
                       struct dlibc_box *found)
{
    struct dlibc_image img = gray_image(b);
    double t0 = now_s();
    int n = dlibc_detect_near(t->det, &img, near, margin, NEAR_RANGE, found, MAX_DET);
    t->st.near_s += now_s() - t0;
    t->st.near_searches++;
    return n < MAX_DET ? n : MAX_DET;
}

/* Follows track tr, detected in buffered frame pos after frames without
 * it, back through those frames while it is found near its box: a face the
 * searches found late, or one that moved out of its search window for a
 * few frames. Stops at its previous detection and at a frame whose whole
 * picture was searched (it was not there). */
static int follow_back(struct tracker *t, int pos, struct track *tr)
{
    struct track back = *tr;
    back.vx = back.vy = back.vs = 0;
    for (int p = pos - 1; p >= 0; p--) {
        struct buffered *b = &t->buf[(t->head + p) % t->cap];
        int mine = 0;
        for (int k = 0; k < b->nfaces && !mine; k++)
            mine = b->faces[k].track == tr->id;
        if (b->index <= tr->f_prev || b->searched || mine)
            break;
        struct dlibc_box found[MAX_DET];
        int n = search_near(t, b, &back.box, NEAR_MARGIN, found);
        if (n < 0)
            return n;
        struct cand cs[MAX_DET];
        int nc = add_cands(cs, 0, found, n), best = -1;
        double best_a = -1;
        for (int j = 0; j < nc; j++) {
            /* not a face another track already has in that frame */
            int other = 0;
            for (int k = 0; k < b->nfaces && !other; k++)
                other = iou(&b->faces[k].box, &cs[j].box) > 0.3;
            if (other)
                continue;
            int rc = describe_cand(t, b, &cs[j]);
            if (rc)
                return rc;
            double a = affinity(&back, &back.box, &cs[j]);
            if (a > best_a) {
                best_a = a;
                best = j;
            }
        }
        if (best < 0)
            break;
        int rc = record(t, b, tr, &cs[best], 1);
        if (rc)
            return rc;
        t->st.back_frames++;
        back.box = cs[best].box;
    }
    return 0;
}

/* Another active track's predicted box within FOLLOW_CLEAR sides of tr's. */
static int others_near(const struct tracker *t, const struct track *tr, double now)
{
    struct dlibc_box p = predict(tr, now);
    double m = FOLLOW_CLEAR * side(&p);
    struct dlibc_box g = {p.x0 - m, p.y0 - m, p.x1 + m, p.y1 + m, 0};
    for (int i = 0; i < t->ntr; i++) {
        const struct track *o = &t->tr[i];
        if (o == tr || !o->active || now - last_seen(o, NULL, NULL) > t->o.track_gap_s + 1e-6)
            continue;
        struct dlibc_box q = predict(o, now);
        if (iou(&g, &q) > 0)
            return 1;
    }
    return 0;
}

/* Follows track tr into frame b by its landmarks alone (see track.h);
 * sets tr->followed_now when the checks pass. */
static int try_follow(struct tracker *t, struct buffered *b, struct track *tr)
{
    struct dlibc_image img = gray_image(b);
    struct dlibc_box p = predict(tr, b->t);
    struct cand c;
    float pts1[2 * DLIBC_LANDMARKS];
    memset(&c, 0, sizeof c);
    double t0 = now_s();
    int rc = dlibc_predict(t->sp, &img, &p, pts1);
    struct dlibc_box box1 = box_from_pts(tr, pts1);
    if (!rc && iou(&p, &box1) >= FOLLOW_SETTLED) {
        memcpy(c.pts, pts1, sizeof c.pts); /* the landmarks put the face where it was looked for */
        c.box = box1;
    } else if (!rc) { /* again, in the box they gave */
        rc = dlibc_predict(t->sp, &img, &box1, c.pts);
        c.box = box_from_pts(tr, c.pts);
    }
    t->st.landmarks_s += now_s() - t0;
    if (rc)
        return rc;
    const struct dlibc_box *last;
    last_seen(tr, &last, NULL);
    double cx = 0.5 * (c.box.x0 + c.box.x1), cy = 0.5 * (c.box.y0 + c.box.y1), sd = side(&c.box);
    int ok = iou(&box1, &c.box) >= FOLLOW_CONVERGED && fabs(sd / fmax(1, side(last)) - 1) <= FOLLOW_SIZE &&
             centre_distance(last, &c.box) <= FOLLOW_MOVE && cx - 0.25 * sd >= 0 && cy - 0.25 * sd >= 0 &&
             cx + 0.25 * sd <= b->g.width && cy + 0.25 * sd <= b->g.height &&
             shape_residual(c.pts, tr->pts) <= FOLLOW_SHAPE && describe(b, c.pts, c.desc) == 0 &&
             ncc(tr->desc, c.desc) >= FOLLOW_NCC;
    if (!ok) {
        t->st.follow_refused++;
        return 0;
    }
    struct track_face f = {.track = tr->id, .box = c.box, .followed = 1};
    memcpy(f.pts, c.pts, sizeof f.pts);
    if ((rc = add_face(b, &f)) != 0 || (rc = track_summary_add(t, tr->id, b->index, &c.box)) != 0)
        return rc;
    memcpy(tr->pts, c.pts, sizeof tr->pts);
    tr->fbox = c.box;
    tr->f_follow = b->index;
    tr->t_follow = b->t;
    tr->nfollow++;
    tr->followed_now = 1;
    t->st.followed++;
    return 0;
}

/* Track tr's followed faces were not confirmed (a near search after them
 * found nothing, or the track ends): each is searched near its box, from
 * the last back to the track's last detection; the first the detector
 * finds confirms itself and those before it, and becomes the detection
 * (its box and landmarks as every_frame would have them); those after it
 * are dropped. pos: the frame being processed (not searched here). */
static int verify_followed(struct tracker *t, int pos, struct track *tr)
{
    struct track_summary *s = &t->sum[tr->id];
    for (int p = pos - 1; p >= 0; p--) {
        struct buffered *b = &t->buf[(t->head + p) % t->cap];
        if (b->index <= tr->f_last)
            break;
        int k = -1;
        for (int i = 0; i < b->nfaces && k < 0; i++)
            if (b->faces[i].track == tr->id && b->faces[i].followed)
                k = i;
        if (k < 0)
            break;
        struct dlibc_box found[MAX_DET];
        int n = search_near(t, b, &b->faces[k].box, NEAR_MARGIN, found), best = -1;
        if (n < 0)
            return n;
        double best_o = 0.5;
        for (int j = 0; j < n; j++)
            if (iou(&found[j], &b->faces[k].box) > best_o) {
                best_o = iou(&found[j], &b->faces[k].box);
                best = j;
            }
        if (best >= 0) {
            struct cand c;
            memset(&c, 0, sizeof c);
            c.box = found[best];
            int rc = describe_cand(t, b, &c);
            if (rc)
                return rc;
            s->size_sum += side(&c.box) - side(&b->faces[k].box);
            b->faces[k].box = c.box;
            memcpy(b->faces[k].pts, c.pts, sizeof c.pts);
            b->faces[k].followed = 0;
            tr->box = c.box;
            tr->t_last = b->t;
            tr->f_last = b->index;
            break;
        }
        s->frames--;
        s->size_sum -= side(&b->faces[k].box);
        b->faces[k] = b->faces[--b->nfaces];
        t->st.follow_dropped++;
    }
    s->last = tr->f_last;
    tr->f_follow = -1;
    tr->nfollow = 0;
    return 0;
}

static int process(struct tracker *t, int pos)
{
    struct buffered *b = &t->buf[(t->head + pos) % t->cap];
    struct dlibc_image img = gray_image(b);
    int rc = expire(t, pos, b->t, b->cut);
    if (rc)
        return rc;
    /* lost: no track left (none seen within track_gap_s). A track missed
     * for a few frames is still looked for near its box below, in a window
     * that grows while it is unseen; new faces come from the periodic
     * searches, as while a face is followed */
    int lost = t->ntr == 0;
    int fast = t->o.detect == TRACK_FAST;
    int search = !fast || b->cut || t->last_search_f < 0 ||
                 b->t - t->last_search_t >= t->o.detect_interval_s - 1e-6 ||
                 (lost && b->index - t->last_search_f >= t->o.lost_interval);
    struct cand *c = malloc(sizeof *c * MAX_DET);
    if (!c)
        return -ENOMEM;
    int nc = 0;
    struct dlibc_box found[MAX_DET];
    if (search) {
        double t0 = now_s();
        struct dlibc_detector *helper = NULL;
        if (fast && t->o.threads_now && t->o.threads_now() >= 2) {
            if (!t->helper && dlibc_detector_clone(t->det, &t->helper) != 0)
                t->helper = NULL; /* then on one thread */
            helper = t->helper;
        }
        int n = fast ? dlibc_detect_min2(t->det, helper, &img, t->o.min_face_px, found, MAX_DET)
                     : dlibc_detect(t->det, &img, t->o.upsample, found, MAX_DET);
        t->st.search_s += now_s() - t0;
        t->st.full_searches++;
        if (n < 0) {
            rc = n;
            goto out;
        }
        nc = add_cands(c, nc, found, n);
        b->searched = 1;
        t->last_search_f = b->index;
        t->last_search_t = b->t;
    }
    /* faces seen in the frame before, between near searches: by their
     * landmarks alone, when no other face is near */
    for (int i = 0; i < t->ntr; i++) {
        struct track *tr = &t->tr[i];
        tr->followed_now = 0;
        if (fast && !search && t->o.landmarks && tr->nfollow < t->o.follow_frames && tr->has_rel &&
            tr->has_desc && tr->seen >= NCC_HISTORY &&
            last_frame(tr) == b->index - 1 && !others_near(t, tr, b->t) &&
            (rc = try_follow(t, b, tr)) != 0)
            goto out;
    }
    /* followed faces near their predicted boxes (a whole-frame search
     * already covered those of at least min_face_px); the window grows
     * while a face is not seen */
    for (int i = 0; fast && i < t->ntr; i++) {
        struct track *tr = &t->tr[i];
        if (tr->followed_now || (search && side(&tr->box) >= 1.5 * t->o.min_face_px))
            continue;
        struct dlibc_box p = predict(tr, b->t);
        int n = search_near(t, b, &p, fmin(1.0, NEAR_MARGIN + 1.5 * (b->t - last_seen(tr, NULL, NULL))), found);
        if (n < 0) {
            rc = n;
            goto out;
        }
        nc = add_cands(c, nc, found, n);
    }
    for (int j = 0; j < nc && !rc; j++)
        rc = describe_cand(t, b, &c[j]);
    if (!rc)
        rc = associate(t, b, c, nc);
    /* followed faces the detector did not confirm here */
    for (int i = 0; !rc && i < t->ntr; i++) {
        struct track *tr = &t->tr[i];
        if (tr->nfollow && !tr->followed_now && tr->f_last != b->index)
            rc = verify_followed(t, pos, tr);
    }
    /* faces detected after frames without them: look for them back in time */
    for (int i = 0; fast && !rc && i < t->ntr; i++) {
        struct track *tr = &t->tr[i];
        if (tr->f_last == b->index && tr->f_prev != b->index - 1)
            rc = follow_back(t, pos, tr);
    }
out:
    free(c);
    return rc;
}

int tracker_push(struct tracker *t, const struct track_input *in)
{
    if (!in->gray || in->width <= 0 || in->height <= 0 || in->stride < in->width)
        return -EINVAL;
    if (t->count == t->cap)
        return -EAGAIN; /* pop first */
    struct buffered *b = &t->buf[(t->head + t->count) % t->cap];
    if (in->pass && in->pass->buf == in->gray) {
        /* handed over: the caller gets this slot's old buffer */
        struct gray_plane keep = b->g;
        b->g = *in->pass;
        *in->pass = keep;
    } else {
        if (gray_plane_reserve(&b->g, in->width, in->height, in->width))
            return -ENOMEM;
        for (int y = 0; y < in->height; y++)
            memcpy(b->g.buf + (size_t)y * in->width, in->gray + (size_t)y * in->stride, (size_t)in->width);
    }
    b->t = in->t;
    b->cut = in->cut;
    b->cut_score = in->cut_score;
    b->searched = 0;
    b->index = t->next_index++;
    b->nfaces = 0;
    av_frame_free(&b->av);
    if (in->av && !(b->av = av_frame_clone(in->av)))
        return -ENOMEM;
    t->count++;
    t->st.frames++;
    /* a cut: the frames before can no longer gain a face */
    int rc = process(t, t->count - 1);
    return rc;
}

int tracker_finish(struct tracker *t)
{
    if (t->finished)
        return 0;
    t->finished = 1;
    /* followed faces no near search came after */
    for (int i = 0; i < t->ntr; i++)
        if (t->tr[i].nfollow) {
            int rc = verify_followed(t, t->count, &t->tr[i]);
            if (rc)
                return rc;
        }
    return 0;
}

int tracker_pop(struct tracker *t, struct track_frame *out)
{
    if (t->count == 0)
        return 0;
    /* the oldest frame is final once no later frame can follow a face back
     * into it: lost_interval frames later, or at the end */
    struct buffered *b = &t->buf[t->head];
    if (!t->finished && t->count < t->cap)
        return 0;
    /* hand out b; keep its buffers as `out` until the next call */
    struct buffered tmp = t->out;
    t->out = *b;
    *b = tmp;
    buffered_clear(b);
    t->head = (t->head + 1) % t->cap;
    t->count--;
    const struct buffered *o = &t->out;
    *out = (struct track_frame){o->index, o->t, o->cut, o->cut_score, o->searched, o->nfaces, o->faces, o->av,
                                o->g.buf, o->g.stride, o->g.width, o->g.height};
    return 1;
}

int subject_rule_parse(const char *s, enum subject_rule *out)
{
    if (!strcmp(s, "longest"))
        *out = SUBJECT_LONGEST;
    else if (!strcmp(s, "largest_first"))
        *out = SUBJECT_LARGEST_FIRST;
    else
        return -EINVAL;
    return 0;
}

const char *subject_rule_name(enum subject_rule r) { return r == SUBJECT_LARGEST_FIRST ? "largest_first" : "longest"; }

int track_choose_subject(const struct track_summary *tr, int n, enum subject_rule rule, const struct dlibc_box *hint,
                         int64_t hint_frame)
{
    int best = -1;
    if (hint) {
        double bo = 0.3;
        for (int i = 0; i < n; i++)
            if (tr[i].frames > 0 && tr[i].first <= hint_frame + 2) {
                double o = iou(&tr[i].first_box, hint);
                if (o > bo) {
                    bo = o;
                    best = i;
                }
            }
        if (best >= 0)
            return tr[best].id;
    }
    if (rule == SUBJECT_LARGEST_FIRST) {
        int64_t first = -1;
        for (int i = 0; i < n; i++)
            if (tr[i].frames > 0 && (first < 0 || tr[i].first < first))
                first = tr[i].first;
        for (int i = 0; i < n; i++)
            if (tr[i].frames > 0 && tr[i].first == first &&
                (best < 0 || side(&tr[i].first_box) > side(&tr[best].first_box)))
                best = i;
        return best < 0 ? -1 : tr[best].id;
    }
    /* longest, among faces at least half the size of the largest; a tie
     * (within 2 %) goes to the larger face */
    double largest = 0;
    for (int i = 0; i < n; i++)
        if (tr[i].frames > 0)
            largest = fmax(largest, tr[i].size_sum / tr[i].frames);
    for (int i = 0; i < n; i++) {
        if (tr[i].frames <= 0 || tr[i].size_sum / tr[i].frames < 0.5 * largest)
            continue;
        if (best < 0) {
            best = i;
            continue;
        }
        double a = (double)tr[i].frames, b = (double)tr[best].frames;
        if (a > 1.02 * b || (a >= b / 1.02 && tr[i].size_sum / a > tr[best].size_sum / b))
            best = i;
    }
    return best < 0 ? -1 : tr[best].id;
}
