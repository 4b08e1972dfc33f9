/* Face tracks -> candidate clips -> the clips a movie keeps (see segplan.h). */
#include "segplan.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T_EPS 1e-6

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

static int by_first(const void *a, const void *b)
{
    const struct seg_clip *x = a, *y = b;
    return x->f0 < y->f0 ? -1 : x->f0 > y->f0 ? 1 : x->track - y->track;
}

int seg_track_clips(const struct seg_params *p, const double *t, const struct seg_track *tr, int n,
                    struct seg_clips *out, struct seg_stats *st)
{
    int first_new = out->n;
    for (int i = 0; i < n; i++) {
        const struct seg_track *x = &tr[i];
        st->tracks++;
        int64_t a = x->first, b = x->last + 1;
        double d = t[b] - t[a];
        if (d < p->min_s - T_EPS) {
            st->short_tracks++;
            if (d > st->longest_short_s)
                st->longest_short_s = d;
            continue;
        }
        /* the largest face at the same time (tracks of one shot overlap or not) */
        double largest = x->mean_side;
        for (int j = 0; j < n; j++)
            if (j != i && tr[j].first <= x->last && x->first <= tr[j].last && tr[j].mean_side > largest)
                largest = tr[j].mean_side;
        if (x->mean_side < SEG_MIN_SIZE * largest) {
            st->small_tracks++;
            continue;
        }
        int64_t bounds[65];
        int k = split_track(p, t, a, b, bounds, 64);
        for (int j = 0; j < k; j++) {
            struct seg_clip c = {bounds[j], bounds[j + 1], x->shot, x->id, 0, 0};
            if (x->det) { /* frames with the face */
                for (int64_t q = 0; q < x->frames; q++)
                    c.faces += x->det[q] >= c.f0 && x->det[q] < c.f1;
            } else {
                c.faces = (int64_t)llround((double)x->frames * (double)(c.f1 - c.f0) / (double)(b - a));
            }
            if (c.faces < p->min_face_share * (double)(c.f1 - c.f0) - 1e-9) {
                st->sparse_parts++;
                continue;
            }
            if (push(out, &c))
                return -ENOMEM;
        }
    }
    if (out->n > first_new)
        qsort(out->v + first_new, (size_t)(out->n - first_new), sizeof *out->v, by_first);
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
