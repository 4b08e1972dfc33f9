/* Face tracks -> candidate clips -> the clips a movie keeps (see segplan.h). */
#include "segplan.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T_EPS 1e-6

void seg_sample_set_dominance(struct seg_sample *s, double largest_area, double second_area)
{
    s->dominant = s->faces == 1 || (s->faces > 1 && largest_area >= SEG_DOMINANCE * second_area);
}

static double area(const struct seg_box *b) { return fmax(0, b->x1 - b->x0) * fmax(0, b->y1 - b->y0); }

static double iou(const struct seg_box *a, const struct seg_box *b)
{
    double w = fmin(a->x1, b->x1) - fmax(a->x0, b->x0), h = fmin(a->y1, b->y1) - fmax(a->y0, b->y0);
    if (w <= 0 || h <= 0)
        return 0;
    double i = w * h;
    return i / (area(a) + area(b) - i);
}

static int push(struct seg_clips *out, const struct seg_clip *c)
{
    if (out->n == out->cap) {
        int cap = out->cap ? out->cap * 2 : 32;
        struct seg_clip *v = realloc(out->v, sizeof *v * (size_t)cap);
        if (!v)
            return -ENOMEM;
        out->v = v;
        out->cap = cap;
    }
    out->v[out->n++] = *c;
    return 0;
}

/* The first frame in [lo, hi] whose time is >= target (hi when none). */
static int64_t frame_at(const double *t, int64_t lo, int64_t hi, double target)
{
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (t[mid] >= target - T_EPS)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Cuts frames [a, b) into parts of min_s..max_s: equal parts when frame
 * times allow, else parts of max_s from the start (the rest, shorter than
 * min_s, is left out). Returns the number of parts in bounds[0..n]. */
static int split_track(const struct seg_params *p, const double *t, int64_t a, int64_t b, int64_t *bounds, int max)
{
    double d = t[b] - t[a];
    for (int n = (int)ceil(d / p->max_s - T_EPS); n >= 1 && n < max && d / n >= p->min_s - T_EPS; n++) {
        bounds[0] = a;
        bounds[n] = b;
        for (int i = 1; i < n; i++)
            bounds[i] = frame_at(t, bounds[i - 1] + 1, b - 1, t[a] + d * i / n);
        int ok = 1;
        for (int i = 0; i < n && ok; i++) {
            double len = t[bounds[i + 1]] - t[bounds[i]];
            ok = bounds[i + 1] > bounds[i] && len <= p->max_s + T_EPS && len >= p->min_s - T_EPS;
        }
        if (ok)
            return n;
    }
    int n = 0;
    bounds[0] = a;
    while (n + 1 < max) {
        /* the last frame end that keeps the part within max_s */
        int64_t e = frame_at(t, bounds[n] + 1, b, t[bounds[n]] + p->max_s + 2 * T_EPS);
        if (e > b || t[e] - t[bounds[n]] > p->max_s + T_EPS)
            e--;
        if (e <= bounds[n] || t[e] - t[bounds[n]] < p->min_s - T_EPS)
            break;
        bounds[++n] = e;
    }
    return n;
}

/* Closes the track of samples s[js..je] (frames start..last). */
static int close_track(const struct seg_params *p, const double *t, int shot, const struct seg_sample *s, int js,
                       int je, struct seg_clips *out, struct seg_stats *st)
{
    int64_t a = s[js].frame, b = s[je].frame + 1;
    double d = t[b] - t[a];
    st->tracks++;
    int track = out->tracks++;
    if (d < p->min_s - T_EPS) {
        st->short_tracks++;
        if (d > st->longest_short_s)
            st->longest_short_s = d;
        return 0;
    }
    int64_t bounds[65];
    int n = split_track(p, t, a, b, bounds, 64);
    for (int i = 0; i < n; i++) {
        struct seg_clip c = {bounds[i], bounds[i + 1], shot, track, 0, 0};
        for (int j = js; j <= je; j++)
            c.samples += s[j].faces > 0 && s[j].dominant && s[j].frame >= c.f0 && s[j].frame < c.f1;
        if (push(out, &c))
            return -ENOMEM;
    }
    return 0;
}

int seg_shot_clips(const struct seg_params *p, const double *t, int shot, int64_t f0, int64_t f1,
                   const struct seg_sample *s, int ns, struct seg_clips *out, struct seg_stats *st)
{
    int first = -1, prev = -1; /* the open track's first and last sample */
    for (int j = 0; j < ns; j++) {
        const struct seg_sample *x = &s[j];
        if (x->frame < f0 || x->frame >= f1)
            continue;
        st->samples++;
        int face = x->faces > 0 && x->dominant;
        if (face)
            st->face_samples++;
        else if (x->faces > 0)
            st->ambiguous_samples++;
        int gap_over = first >= 0 && t[x->frame] - t[s[prev].frame] > p->track_gap_s + T_EPS;
        if (face && first >= 0 && !gap_over && iou(&x->box, &s[prev].box) >= SEG_MIN_IOU) {
            prev = j; /* the track goes on */
            continue;
        }
        /* a face elsewhere, two similar faces, or the face gone for longer
         * than a miss end the open track; a dominant face starts one */
        if (first >= 0 && (face || x->faces > 0 || gap_over)) {
            if (close_track(p, t, shot, s, first, prev, out, st))
                return -ENOMEM;
            first = -1;
        }
        if (face)
            first = prev = j;
    }
    if (first >= 0 && close_track(p, t, shot, s, first, prev, out, st))
        return -ENOMEM;
    return 0;
}

int seg_choose(const struct seg_params *p, const double *t, struct seg_clip *c, int n)
{
    const int k = p->max_clips;
    for (int i = 0; i < n; i++)
        c[i].chosen = n <= k;
    if (n <= k)
        return n;
    /* targets evenly from the first candidate's midpoint to the last's;
     * cost[j][i]: the least sum of |midpoint - target| over targets 0..j
     * with target j taking candidate i (candidates taken in time order) */
    double *m = malloc(sizeof *m * (size_t)n), *prev = malloc(sizeof *prev * (size_t)n),
           *cur = malloc(sizeof *cur * (size_t)n);
    int *from = malloc(sizeof *from * (size_t)n * (size_t)k);
    if (!m || !prev || !cur || !from) {
        free(m);
        free(prev);
        free(cur);
        free(from);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++)
        m[i] = 0.5 * (t[c[i].f0] + t[c[i].f1]);
    for (int j = 0; j < k; j++) {
        double target = k > 1 ? m[0] + (m[n - 1] - m[0]) * j / (k - 1) : 0.5 * (m[0] + m[n - 1]);
        double best = INFINITY;
        int best_i = -1;
        /* target j can take candidates j .. n - k + j (the others need the rest) */
        for (int i = j; i <= n - k + j; i++) {
            if (j > 0 && (prev[i - 1] < best || best_i < 0)) {
                best = prev[i - 1];
                best_i = i - 1;
            }
            cur[i] = fabs(m[i] - target) + (j > 0 ? best : 0);
            from[(size_t)j * n + i] = best_i;
        }
        double *x = prev;
        prev = cur;
        cur = x;
    }
    int last = k - 1;
    for (int i = k; i <= n - 1; i++)
        if (prev[i] < prev[last])
            last = i;
    for (int j = k - 1; j >= 0; j--) {
        c[last].chosen = 1;
        last = from[(size_t)j * n + last];
    }
    free(m);
    free(prev);
    free(cur);
    free(from);
    return k;
}

void seg_clips_free(struct seg_clips *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}
