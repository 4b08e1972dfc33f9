/* The prep job's scan of a long clip on several threads: the clip is split
 * into time ranges, each decoded and tracked on its own thread
 * by the one-thread scan (run_scan), and the ranges are joined where they
 * overlap. A range runs on a little (OVERLAP_S) past the next one's start;
 * on those frames both see the same pictures, so a face the two trackers
 * both follow has the same box in both, and the next range's track is the
 * same person's (never another face: two faces of one frame do not overlap
 * that much). Each range but the first starts with a whole-frame search, as
 * at a shot cut. Only the fast detection mode is split; every_frame, the
 * fidelity reference, runs as one range. A clip long enough to split
 * starts in as many even ranges as the job has threads (one, in a busy
 * queue); when dfewd's share for the job grows past the ranges at work
 * (another job ended, or a range finished first), the range with the most
 * left gives its second half to a new range. While dfewd gives the job
 * fewer threads than ranges (other jobs started), the later ranges wait. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "prep_scan.h"
#include "util.h"

#define MAX_RANGES 8
#define OVERLAP_S 0.3   /* a range runs this far into the next one (7-9 frames) */
#define JOIN_IOU 0.5    /* the same face in the same frame of two ranges */
#define GAP_IOU 0.3     /* a track missed on the overlap: its last and the next range's first box */

struct range_share {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job_ctx *ctx;
    int n, stop; /* n: ranges set up (they only grow: range k splits off the end of another) */
    int done[MAX_RANGES];
    double end; /* the clip's end */
    double from[MAX_RANGES], to[MAX_RANGES], at[MAX_RANGES];
    int64_t frames;
    double last_report, len;
};

struct range_job {
    struct range_share *sh;
    int k, rc;
    struct job_ctx ctx; /* its own error */
    struct prep_args a; /* its range, one thread */
    struct dlibc_detector *det;
    struct dlibc_predictor *sp;
    struct prep_scan *s, own;
    struct prep_times tm;
    struct scan_stats st;
    struct decoder_stats ds;
    struct track_stats ts;
    int ntracks, subject;
    char crops_name[32], recs_name[32];
};

/* Detectors keep scratch buffers: one per range thread, kept for the
 * worker's next jobs like the models (range 0 uses the worker's). */
static struct dlibc_detector *extra_det[MAX_RANGES];

int prep_ranges_plan(const struct prep_args *a)
{
    double len = a->end_s - a->start_s;
    if (a->track.detect != TRACK_FAST || a->upsample > 0 || !(a->range_min_s > 0) || !isfinite(len) ||
        len < 2 * a->range_min_s)
        return 0;
    double n = floor(len / a->range_min_s);
    if (n > a->threads)
        n = a->threads;
    if (n > MAX_RANGES)
        n = MAX_RANGES;
    return n < 2 ? 1 : (int)n;
}

/* bounds[0..n]: the ranges' starts, an even split. A range but the first
 * also decodes the frames from the keyframe before its start and drops
 * them (the decoder skips those no other picture refers to); moving its
 * start to that keyframe instead would leave it the longer range by the
 * whole distance, where the dropped frames cost only their decoding (under
 * half of a frame's work in fast mode). */
static void plan_bounds(const struct prep_args *a, int n, double *bounds)
{
    for (int k = 0; k < n; k++)
        bounds[k] = a->start_s + (a->end_s - a->start_s) * k / n;
    bounds[n] = a->end_s;
}

static double share_frac(const struct range_share *sh)
{
    double covered = 0;
    for (int k = 0; k < sh->n; k++)
        covered += sh->done[k] ? sh->to[k] - sh->from[k] : fmax(0, fmin(sh->at[k], sh->to[k]) - sh->from[k]);
    return sh->len > 0 ? covered / sh->len : 0;
}

int range_frame(struct prep_scan *s, double t)
{
    struct range_share *sh = s->share;
    pthread_mutex_lock(&sh->mu);
    sh->at[s->range] = t;
    sh->frames++;
    double now = mono_s();
    if (now - sh->last_report > 0.5) {
        sh->last_report = now;
        char msg[96];
        snprintf(msg, sizeof msg, "frame %lld (%d ranges)", (long long)sh->frames, sh->n);
        job_progress(sh->ctx, fmin(0.95, share_frac(sh)), msg);
    }
    /* no more ranges at work than the job has threads now: the later wait */
    for (;;) {
        int rank = 0;
        for (int i = 0; i < s->range; i++)
            rank += !sh->done[i];
        if (rank < job_threads() || sh->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&sh->cv, &sh->mu, &ts);
    }
    int stop = sh->stop;
    pthread_mutex_unlock(&sh->mu);
    return stop ? -ECANCELED : 0;
}

static void *range_thread(void *arg)
{
    struct range_job *r = arg;
    r->rc = run_scan(&r->ctx, &r->a, r->det, r->sp, r->s, &r->st, &r->ds, &r->ts, &r->ntracks, &r->subject);
    struct range_share *sh = r->sh;
    pthread_mutex_lock(&sh->mu);
    sh->done[r->k] = 1;
    if (r->rc)
        sh->stop = 1;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

/* ---- joining ---- */

static double box_iou(const float *a, const float *b)
{
    double w = fmin(a[2], b[2]) - fmax(a[0], b[0]), h = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    if (w <= 0 || h <= 0)
        return 0;
    double i = w * h, u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i;
    return u > 0 ? i / u : 0;
}

struct pair {
    int a, b;    /* joined track (global id), next range's track (its own id) */
    double vote; /* overlap frames with the same box; or the gap rule's IoU */
};

static int cmp_pair(const void *x, const void *y)
{
    const struct pair *p = x, *q = y;
    return p->vote < q->vote ? 1 : p->vote > q->vote ? -1 : p->a != q->a ? p->a - q->a : p->b - q->b;
}

static int add_vote(struct pair **v, int64_t *n, int64_t *cap, int a, int b, double w)
{
    for (int64_t i = 0; i < *n; i++)
        if ((*v)[i].a == a && (*v)[i].b == b) {
            (*v)[i].vote += w;
            return 0;
        }
    int rc = grow_array((void **)v, cap, *n + 1, sizeof **v);
    if (!rc)
        (*v)[(*n)++] = (struct pair){a, b, w};
    return rc;
}

/* Joins the pairs best first, each track at most once. */
static void assign(struct pair *v, int64_t nv, int *map, int *taken)
{
    qsort(v, (size_t)nv, sizeof *v, cmp_pair);
    for (int64_t i = 0; i < nv; i++)
        if (map[v[i].b] < 0 && !taken[v[i].a]) {
            map[v[i].b] = v[i].a;
            taken[v[i].a] = 1;
        }
}

/* The first ref of frame i or later (refs are in frame order). */
static int64_t ref_at(const struct prep_scan *s, int64_t i)
{
    int64_t lo = 0, hi = s->nrefs;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (s->refs[mid].frame < i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Appends range b's frames to m (ranges before, tracks with global ids)
 * from b's first frame on, m's own frames from there dropped. -EAGAIN when
 * they do not meet (frames between them that neither range has). */
static int join_range(struct prep_scan *m, const struct prep_scan *b, double gap_s, int *next_id)
{
    int rc = 0;
    if (b->nframes == 0)
        return 0;
    double t0 = b->frames[0].t;
    int64_t keep = 0;
    while (keep < m->nframes && m->frames[keep].t < t0 - 1e-6)
        keep++;
    if (m->nframes > 0 && keep == m->nframes) {
        double step = m->nframes > 1 ? m->frames[m->nframes - 1].t - m->frames[m->nframes - 2].t : 0;
        if (t0 - m->frames[m->nframes - 1].t > 1.5 * step + 1e-6)
            return -EAGAIN;
    }
    int nb = 0;
    for (int64_t r = 0; r < b->nrefs; r++)
        nb = b->refs[r].track + 1 > nb ? b->refs[r].track + 1 : nb;
    int *map = malloc(sizeof *map * (size_t)(nb ? nb : 1));
    int *taken = calloc((size_t)(*next_id ? *next_id : 1), sizeof *taken);
    struct pair *v = NULL;
    int64_t nv = 0, capv = 0;
    if (!map || !taken) {
        rc = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < nb; i++)
        map[i] = -1;
    struct face_scratch fa, fb;
    /* the overlap: the same frames in both */
    int64_t j = 0;
    for (int64_t i = keep; i < m->nframes && !rc; i++) {
        while (j < b->nframes && b->frames[j].t < m->frames[i].t - 1e-6)
            j++;
        if (j >= b->nframes)
            break;
        if (fabs(b->frames[j].t - m->frames[i].t) > 1e-6)
            continue;
        int64_t ra1 = ref_at(m, i), ra2 = ref_at(m, i + 1), rb1 = ref_at(b, j), rb2 = ref_at(b, j + 1);
        for (int64_t ra = ra1; ra < ra2 && !rc; ra++) {
            if ((rc = scratch_get(&m->recs, ra, &fa)) != 0)
                break;
            for (int64_t rb = rb1; rb < rb2 && !rc; rb++) {
                if ((rc = scratch_get(&b->recs, rb, &fb)) != 0)
                    break;
                if (box_iou(fa.box, fb.box) >= JOIN_IOU)
                    rc = add_vote(&v, &nv, &capv, m->refs[ra].track, b->refs[rb].track, 1);
            }
        }
    }
    if (rc)
        goto out;
    assign(v, nv, map, taken);
    /* a face missed on the overlap: a track that ended before b's start
     * and one of b's that starts after it, at most gap_s apart, in about
     * the same place (the tracker's own rule across a gap) */
    nv = 0;
    for (int64_t ra = ref_at(m, keep) - 1; ra >= 0 && m->frames[m->refs[ra].frame].t >= t0 - gap_s && !rc; ra--) {
        int a = m->refs[ra].track;
        if (taken[a])
            continue;
        /* its last box only */
        int later = 0;
        for (int64_t q = ra + 1; q < ref_at(m, keep); q++)
            later |= m->refs[q].track == a;
        if (later || (rc = scratch_get(&m->recs, ra, &fa)) != 0)
            continue;
        for (int64_t rb = 0; rb < b->nrefs && b->frames[b->refs[rb].frame].t <= t0 + gap_s && !rc; rb++) {
            int bt = b->refs[rb].track, first = 1;
            for (int64_t q = 0; q < rb; q++)
                first &= b->refs[q].track != bt;
            if (!first || map[bt] >= 0 || (rc = scratch_get(&b->recs, rb, &fb)) != 0)
                continue;
            /* the gap itself, from its last detection in m to its first in
             * b, no longer than one tracker would bridge */
            double gap = b->frames[b->refs[rb].frame].t - m->frames[m->refs[ra].frame].t;
            double o = box_iou(fa.box, fb.box);
            if (o >= GAP_IOU && gap <= gap_s + 1e-6)
                rc = add_vote(&v, &nv, &capv, a, bt, o);
        }
    }
    if (rc)
        goto out;
    assign(v, nv, map, taken);
    for (int i = 0; i < nb; i++)
        if (map[i] < 0)
            map[i] = (*next_id)++;
    /* m's frames from b's first on give way to b's */
    m->nframes = keep;
    m->nrefs = ref_at(m, keep);
    if ((rc = grow_array((void **)&m->frames, &m->capframes, keep + b->nframes, sizeof *m->frames)) != 0 ||
        (rc = grow_array((void **)&m->refs, &m->caprefs, m->nrefs + b->nrefs, sizeof *m->refs)) != 0)
        goto out;
    memcpy(m->frames + keep, b->frames, sizeof *b->frames * (size_t)b->nframes);
    m->nframes = keep + b->nframes;
    for (int64_t r = 0; r < b->nrefs && !rc; r++) {
        struct face_ref ref = b->refs[r];
        if ((rc = scratch_get(&b->recs, r, &fb)) != 0)
            break;
        ref.frame += keep;
        ref.track = map[ref.track];
        fb.track = ref.track;
        if ((rc = scratch_put(&m->recs, m->nrefs, &fb)) != 0)
            break;
        if (ref.aligned && ((rc = scratch_get(&b->crops, r, m->crop)) != 0 ||
                            (rc = scratch_put(&m->crops, m->nrefs, m->crop)) != 0))
            break;
        m->refs[m->nrefs++] = ref;
    }
    m->width = b->width;
    m->height = b->height;
out:
    free(v);
    free(taken);
    free(map);
    return rc;
}

/* Track ids in the order the tracks start (as one tracker numbers them),
 * and their summaries for choosing the subject. */
static int renumber(struct prep_scan *m, int nid, struct track_summary **sum_out, int *n_out)
{
    int *first = malloc(sizeof *first * (size_t)(nid ? nid : 1)), *map = NULL;
    int rc = first ? 0 : -ENOMEM;
    int n = 0;
    struct track_summary *sum = NULL;
    if (!rc) {
        for (int i = 0; i < nid; i++)
            first[i] = -1;
        for (int64_t r = 0; r < m->nrefs; r++)
            if (first[m->refs[r].track] < 0)
                first[m->refs[r].track] = n++; /* refs are in frame order */
        map = first;
        sum = calloc((size_t)(n ? n : 1), sizeof *sum);
        if (!sum)
            rc = -ENOMEM;
    }
    for (int i = 0; !rc && i < n; i++)
        sum[i] = (struct track_summary){.id = i, .first = -1, .last = -1};
    struct face_scratch fs;
    for (int64_t r = 0; r < m->nrefs && !rc; r++) {
        int id = map[m->refs[r].track];
        m->refs[r].track = id;
        if ((rc = scratch_get(&m->recs, r, &fs)) != 0)
            break;
        fs.track = id;
        if ((rc = scratch_put(&m->recs, r, &fs)) != 0)
            break;
        struct track_summary *t = &sum[id];
        struct dlibc_box box = {fs.box[0], fs.box[1], fs.box[2], fs.box[3], fs.score};
        if (t->first < 0) {
            t->first = m->refs[r].frame;
            t->first_box = box;
        }
        t->last = m->refs[r].frame;
        t->frames++;
        t->size_sum += sqrt(fmax(0, box.x1 - box.x0) * fmax(0, box.y1 - box.y0));
    }
    free(first);
    if (rc) {
        free(sum);
        return rc;
    }
    *sum_out = sum;
    *n_out = n;
    return 0;
}

static void add_stats(struct range_job *r, struct scan_stats *st, struct decoder_stats *ds, struct track_stats *ts,
                      struct prep_times *tm, int first)
{
    if (first) {
        *st = r->st;
        *ds = r->ds;
        *ts = r->ts;
        return;
    }
    if (r->st.frames > 0) {
        if (st->frames == 0)
            st->first_t = r->st.first_t;
        st->last_t = r->st.last_t;
        st->last_dur = r->st.last_dur;
    }
    st->stream_ended = r->st.stream_ended;
    st->decode_s += r->st.decode_s;
    st->track_s += r->st.track_s;
    st->caller_s += r->st.caller_s;
    st->cuts += r->st.cuts;
    ds->packets += r->ds.packets;
    ds->decode_errors += r->ds.decode_errors;
    ds->preroll_packets += r->ds.preroll_packets;
    if (r->ds.read_error && !ds->read_error) {
        ds->read_error = 1;
        snprintf(ds->read_error_msg, sizeof ds->read_error_msg, "%s", r->ds.read_error_msg);
    }
    ds->frames_end = r->ds.frames_end;
    if (!isnan(r->ds.stream_end))
        ds->stream_end = r->ds.stream_end;
    ts->frames += r->ts.frames;
    ts->full_searches += r->ts.full_searches;
    ts->near_searches += r->ts.near_searches;
    ts->back_frames += r->ts.back_frames;
    ts->followed += r->ts.followed;
    ts->follow_refused += r->ts.follow_refused;
    ts->follow_dropped += r->ts.follow_dropped;
    ts->search_s += r->ts.search_s;
    ts->near_s += r->ts.near_s;
    ts->landmarks_s += r->ts.landmarks_s;
    tm->align += r->tm.align;
    tm->write += r->tm.write;
}

static void clear_scan(struct prep_scan *s)
{
    frame_converter_free(s->conv);
    s->conv = NULL;
    s->nframes = 0;
    s->nrefs = 0;
    s->share = NULL;
    s->range = 0;
}

/* Sets up range k over [from, to) (its end moves earlier when it is split
 * again: range_end). Range 0 scans into s with the worker's detector. */
static int range_setup(struct range_job *rj, int k, struct range_share *sh, struct job_ctx *ctx,
                       const struct prep_args *a, struct dlibc_detector *det, struct dlibc_predictor *sp,
                       struct prep_scan *s, double from, double to)
{
    struct range_job *r = &rj[k];
    r->sh = sh;
    r->k = k;
    r->ctx = (struct job_ctx){.id = ctx->id, .kind = ctx->kind, .attempt = ctx->attempt,
                              .max_attempts = ctx->max_attempts, .args = ctx->args};
    r->a = *a;
    r->a.start_s = from;
    r->a.end_s = a->end_s; /* and range_end's */
    r->a.threads = 1;
    r->a.track.threads_now = NULL;
    r->a.has_hint = k == 0 && a->has_hint;
    r->sp = sp;
    sh->from[k] = from;
    sh->to[k] = to;
    sh->at[k] = from;
    if (k == 0) {
        r->det = det;
        r->s = s;
    } else {
        int rc;
        if (!extra_det[k] && (rc = dlibc_detector_clone(det, &extra_det[k])) != 0) {
            snprintf(ctx->error, sizeof ctx->error, "cannot make a face detector for range %d of the clip: %s", k,
                     strerror(-rc));
            ctx->retryable = 1;
            return rc;
        }
        r->det = extra_det[k];
        r->s = &r->own;
        *r->s = (struct prep_scan){.ctx = ctx, .a = &r->a, .tm = &r->tm, .threads_min = 1};
        snprintf(r->crops_name, sizeof r->crops_name, ".crops-%d", k);
        snprintf(r->recs_name, sizeof r->recs_name, ".faces-%d", k);
        scratch_init(&r->s->crops, s->crops.dir, r->crops_name, s->crops.rec);
        scratch_init(&r->s->recs, s->recs.dir, r->recs_name, s->recs.rec);
        r->s->crop = malloc(s->crops.rec);
        if (!r->s->crop)
            return -ENOMEM;
    }
    r->s->share = sh;
    r->s->range = k;
    return 0;
}

double range_end(void *ud)
{
    const struct prep_scan *s = ud;
    struct range_share *sh = s->share;
    pthread_mutex_lock(&sh->mu);
    double to = sh->to[s->range], end = to >= sh->end - 1e-9 ? INFINITY : to + OVERLAP_S;
    pthread_mutex_unlock(&sh->mu);
    return end;
}

int range_threads(void *ud)
{
    const struct prep_scan *s = ud;
    struct range_share *sh = s->share;
    pthread_mutex_lock(&sh->mu);
    int others = 0;
    for (int k = 0; k < sh->n; k++)
        others += k != s->range && !sh->done[k];
    pthread_mutex_unlock(&sh->mu);
    int n = job_threads() - others;
    return n < 1 ? 1 : n;
}

/* With sh->mu held: the range with the most left to scan, when that is at
 * least twice range_min, gives its second half to a new range (it stops
 * OVERLAP_S past the new one's start, as an even split's ranges do).
 * Returns the new range's index, or -1. */
static int split_one(struct range_share *sh, double range_min, double *from, double *to)
{
    int best = -1;
    double left = 0;
    for (int k = 0; k < sh->n; k++) {
        if (sh->done[k])
            continue;
        double l = sh->to[k] - fmax(sh->at[k], sh->from[k]);
        if (l > left) {
            left = l;
            best = k;
        }
    }
    if (best < 0 || sh->n >= MAX_RANGES || left < 2 * range_min)
        return -1;
    *from = sh->to[best] - left / 2;
    *to = sh->to[best];
    sh->to[best] = *from;
    return sh->n;
}

static int by_start(const void *x, const void *y, void *arg)
{
    const struct range_share *sh = arg;
    int a = *(const int *)x, b = *(const int *)y;
    return (sh->from[a] > sh->from[b]) - (sh->from[a] < sh->from[b]);
}

int run_scan_ranges(struct job_ctx *ctx, const struct prep_args *a, int n, struct dlibc_detector *det,
                    struct dlibc_predictor *sp, struct prep_scan *s, struct scan_stats *st, struct decoder_stats *ds,
                    struct track_stats *ts, int *ntracks_out, int *subject_out, int *used_out)
{
    double bounds[MAX_RANGES + 1];
    if (n < 1 || n > MAX_RANGES)
        return -EINVAL;
    plan_bounds(a, n, bounds);
    struct range_share sh = {.ctx = ctx, .n = 0, .len = a->end_s - a->start_s, .end = a->end_s};
    struct range_job *rj = calloc(MAX_RANGES, sizeof *rj);
    pthread_t th[MAX_RANGES];
    int started[MAX_RANGES] = {0}, order[MAX_RANGES];
    int rc = rj ? 0 : -ENOMEM;
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cv, NULL);
    for (int k = 0; k < n && !rc; k++)
        if ((rc = range_setup(rj, k, &sh, ctx, a, det, sp, s, bounds[k], bounds[k + 1])) == 0)
            sh.n = k + 1;
    if (rc)
        goto out;
    if (n > 1) {
        struct sbuf at = {0};
        for (int k = 1; k < n; k++)
            sbuf_addf(&at, "%s%.3f", k > 1 ? ", " : "", bounds[k]);
        log_info(ctx->id, "the clip (%.1f s) is scanned in %d ranges from %s s on, one thread each", sh.len, n,
                 at.s ? at.s : "");
        sbuf_free(&at);
    }
    /* Start the ranges, then watch the job's share of the cores: when it
     * grows past the ranges at work (another job ended: a short queue), the
     * range with the most left gives its second half to a new one. */
    int failed_start = 0;
    pthread_mutex_lock(&sh.mu);
    for (;;) {
        int live = 0;
        for (int k = 0; k < sh.n; k++) {
            if (!started[k] && !failed_start && !sh.stop) {
                if (pthread_create(&th[k], NULL, range_thread, &rj[k]) != 0) {
                    failed_start = 1;
                    sh.stop = 1;
                } else {
                    started[k] = 1;
                }
            }
            live += started[k] && !sh.done[k];
        }
        if (!live)
            break;
        double from, to;
        int k;
        if (!sh.stop && job_threads() > live && (k = split_one(&sh, a->range_min_s, &from, &to)) >= 0) {
            if ((rc = range_setup(rj, k, &sh, ctx, a, det, sp, s, from, to)) != 0) {
                sh.stop = 1; /* the job fails: the other ranges stop */
            } else {
                sh.n = k + 1;
                log_info(ctx->id, "the job's share of the cores grew: the clip from %.3f s on is a new range (%d)",
                         from, sh.n);
            }
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&sh.cv, &sh.mu, &until);
    }
    pthread_mutex_unlock(&sh.mu);
    for (int k = 0; k < sh.n; k++)
        if (started[k])
            pthread_join(th[k], NULL);
    n = sh.n;
    for (int k = 0; k < n; k++)
        order[k] = k;
    qsort_r(order, (size_t)n, sizeof *order, by_start, &sh);
    if (rc)
        goto out;
    if (failed_start) {
        rc = -EAGAIN;
    } else {
        /* the first failure that is not another range's stop */
        for (int k = 0; k < n && !rc; k++)
            if (rj[k].rc && rj[k].rc != -ECANCELED) {
                rc = rj[k].rc;
                snprintf(ctx->error, sizeof ctx->error, "%s", rj[k].ctx.error);
                ctx->retryable = rj[k].ctx.retryable;
            }
        if (!rc)
            for (int k = 0; k < n && !rc; k++)
                rc = rj[k].rc;
        if (rc)
            goto out;
    }
    if (n == 1 && !failed_start) {
        /* never split: range 0's scan is the clip's, as run_scan leaves it */
        add_stats(&rj[0], st, ds, ts, s->tm, 1);
        *ntracks_out = rj[0].ntracks;
        *subject_out = rj[0].subject;
        *used_out = 1;
        goto out;
    }
    /* join the ranges */
    int nid = 0;
    for (int64_t r = 0; !rc && !failed_start && r < s->nrefs; r++)
        nid = s->refs[r].track + 1 > nid ? s->refs[r].track + 1 : nid;
    for (int i = 1; i < n && !rc && !failed_start; i++)
        rc = join_range(s, rj[order[i]].s, a->track.track_gap_s, &nid);
    if (failed_start || rc == -EAGAIN) {
        /* ranges that do not meet (a stream whose timestamps jump) or no
         * thread: the clip again as one range */
        log_warn(ctx->id, "%s; the clip is scanned again as one range",
                 failed_start ? "cannot start a thread for each range" : "the ranges' frames do not meet");
        clear_scan(s);
        *used_out = 1;
        rc = run_scan(ctx, a, det, sp, s, st, ds, ts, ntracks_out, subject_out);
        goto out;
    }
    if (rc)
        goto out;
    struct track_summary *sum = NULL;
    int nsum = 0;
    if ((rc = renumber(s, nid, &sum, &nsum)) != 0)
        goto out;
    for (int i = 0; i < n; i++)
        add_stats(&rj[order[i]], st, ds, ts, s->tm, i == 0);
    st->frames = s->nframes;
    ts->tracks = nsum;
    *ntracks_out = nsum;
    *subject_out = track_choose_subject(sum, nsum, a->subject, a->has_hint ? &a->hint : NULL, 0);
    *used_out = n;
    free(sum);
out:
    pthread_mutex_destroy(&sh.mu);
    pthread_cond_destroy(&sh.cv);
    s->share = NULL;
    for (int k = 1; rj && k < MAX_RANGES; k++) {
        if (rj[k].s != &rj[k].own)
            continue;
        scratch_free(&rj[k].own.crops);
        scratch_free(&rj[k].own.recs);
        free(rj[k].own.crop);
        free(rj[k].own.refs);
        free(rj[k].own.frames);
        frame_converter_free(rj[k].own.conv);
    }
    free(rj);
    return rc;
}
