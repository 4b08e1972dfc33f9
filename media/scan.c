/* The face scan (see scan.h): decoder -> cut scores -> tracker -> caller,
 * inline or with the decoding on a thread of its own. */
#include "scan.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavutil/frame.h>

#include "scene.h"

#define QUEUE 6 /* decoded frames the decoding thread may run ahead */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One decoded frame on its way to the tracker. */
struct slot {
    AVFrame *av;
    struct gray_plane g; /* converted here by the decoder, handed to the tracker */
    double t, score, dur;
    int cut;
};

/* The decoding side: next frame of the range, its grey plane and cut flag. */
struct source {
    struct decoder *dec;
    struct scene_scorer *sc;
    const struct scan_opts *o;
    int64_t n;
    double decode_s;
    int cuts, ended;
    char err[512];
};

/* 1 and s filled, 0 at the end of the range, or a negative errno. */
static int source_next(struct source *src, struct slot *s)
{
    double t0 = now_s();
    struct decoded_frame f;
    int got = decoder_next(src->dec, &f, src->err, sizeof src->err);
    double end = src->o->end_now ? fmin(src->o->end_s, src->o->end_now(src->o->end_ud)) : src->o->end_s;
    if (got <= 0 || decode_t_past(f.t, end)) {
        src->decode_s += now_s() - t0;
        src->ended = got == 0;
        return got < 0 ? got : 0;
    }
    int rc = decoder_convert_gray(src->dec, f.av, &s->g, src->err, sizeof src->err);
    if (rc)
        return rc;
    s->t = f.t;
    s->dur = f.duration;
    double score = 0;
    s->cut = 0;
    s->score = 0;
    if (src->o->cut_threshold > 0 && src->o->cut_threshold < 1) {
        if ((rc = scene_score(src->sc, f.av, &score)) != 0) {
            snprintf(src->err, sizeof src->err, "frame %lld: cannot compare it with the one before",
                     (long long)src->n);
            return rc;
        }
        s->cut = src->n > 0 && score > src->o->cut_threshold;
        s->score = score;
        src->cuts += s->cut;
    }
    av_frame_free(&s->av);
    if (!(s->av = av_frame_clone(f.av)))
        return -ENOMEM;
    src->n++;
    src->decode_s += now_s() - t0;
    return 1;
}

struct sink {
    struct tracker *tr;
    scan_frame_fn fn;
    void *ud;
    struct scan_stats *st;
    double prev_t;
};

static int drain(struct sink *k)
{
    struct track_frame f;
    for (;;) {
        double t0 = now_s();
        int got = tracker_pop(k->tr, &f);
        k->st->track_s += now_s() - t0;
        if (got <= 0)
            return got;
        t0 = now_s();
        int rc = k->fn(k->ud, &f);
        k->st->caller_s += now_s() - t0;
        if (rc)
            return rc;
    }
}

static int sink_push(struct sink *k, struct slot *s)
{
    struct scan_stats *st = k->st;
    if (st->frames == 0)
        st->first_t = s->t;
    st->last_dur = s->dur;
    st->last_t = s->t;
    k->prev_t = s->t;
    st->frames++;
    /* the tracker keeps the slot's picture and leaves a buffer of its own */
    struct track_input in = {s->g.buf, s->g.stride, s->g.width, s->g.height, s->t, s->cut, s->score, s->av, &s->g};
    double t0 = now_s();
    int rc = tracker_push(k->tr, &in);
    st->track_s += now_s() - t0;
    return rc ? rc : drain(k);
}

static int sink_finish(struct sink *k)
{
    int rc = tracker_finish(k->tr);
    return rc ? rc : drain(k);
}

/* The threaded scan: a decoding thread fills a ring of slots. */
struct pipe {
    struct source src;
    struct slot slots[QUEUE];
    int head, count, done, stop, rc;
    int waiting; /* the tracker waits for a frame */
    int (*threads_now)(void);
    int (*threads_for)(void *);
    void *threads_ud;
    pthread_mutex_t mu;
    pthread_cond_t more, room;
};

/* The threads the scan may use now (2 when nothing says: no limit). */
static int pipe_threads(const struct pipe *p)
{
    return p->threads_for ? p->threads_for(p->threads_ud) : p->threads_now ? p->threads_now() : 2;
}

static void *decode_thread(void *arg)
{
    struct pipe *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        /* with one thread to use, decode only while the tracker waits */
        while (!p->stop && (p->count == QUEUE || (pipe_threads(p) <= 1 && !(p->waiting && p->count == 0))))
            pthread_cond_wait(&p->room, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        struct slot *s = &p->slots[(p->head + p->count) % QUEUE];
        pthread_mutex_unlock(&p->mu);
        int got = source_next(&p->src, s); /* the slot is not the reader's until counted */
        pthread_mutex_lock(&p->mu);
        if (got == 1) {
            p->count++;
        } else {
            p->done = 1;
            p->rc = got;
        }
        pthread_cond_signal(&p->more);
        pthread_mutex_unlock(&p->mu);
        if (got != 1)
            break;
    }
    return NULL;
}

static int scan_threaded(struct pipe *p, struct sink *k)
{
    pthread_t th;
    if (pthread_create(&th, NULL, decode_thread, p) != 0)
        return -EAGAIN;
    int rc = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->count == 0 && !p->done) {
            p->waiting = 1;
            pthread_cond_signal(&p->room);
            while (p->count == 0 && !p->done)
                pthread_cond_wait(&p->more, &p->mu);
            p->waiting = 0;
        }
        if (p->count == 0) {
            rc = p->rc;
            pthread_mutex_unlock(&p->mu);
            break;
        }
        struct slot *s = &p->slots[p->head];
        pthread_mutex_unlock(&p->mu);
        rc = sink_push(k, s);
        pthread_mutex_lock(&p->mu);
        p->head = (p->head + 1) % QUEUE;
        p->count--;
        pthread_cond_signal(&p->room);
        pthread_mutex_unlock(&p->mu);
        if (rc)
            break;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->room);
    pthread_mutex_unlock(&p->mu);
    pthread_join(th, NULL);
    return rc;
}

int face_scan(struct decoder *dec, struct tracker *tr, const struct scan_opts *o, scan_frame_fn fn, void *ud,
              struct scan_stats *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    struct pipe *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->src = (struct source){.dec = dec, .o = o};
    p->threads_now = o->threads_now;
    p->threads_for = o->threads_for;
    p->threads_ud = o->threads_ud;
    int rc = scene_scorer_new(&p->src.sc);
    if (!rc && o->start_s > 0)
        rc = decoder_seek(dec, o->start_s, p->src.err, sizeof p->src.err);
    struct sink k = {tr, fn, ud, st, 0};
    if (!rc && o->threads > 1) {
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->more, NULL);
        pthread_cond_init(&p->room, NULL);
        rc = scan_threaded(p, &k);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->more);
        pthread_cond_destroy(&p->room);
    } else if (!rc) {
        for (;;) {
            int got = source_next(&p->src, &p->slots[0]);
            if (got <= 0) {
                rc = got;
                break;
            }
            if ((rc = sink_push(&k, &p->slots[0])) != 0)
                break;
        }
    }
    if (!rc)
        rc = sink_finish(&k);
    st->decode_s = p->src.decode_s;
    st->cuts = p->src.cuts;
    st->stream_ended = p->src.ended;
    if (rc && p->src.err[0])
        snprintf(err, errlen, "%s", p->src.err);
    for (int i = 0; i < QUEUE; i++) {
        av_frame_free(&p->slots[i].av);
        gray_plane_free(&p->slots[i].g);
    }
    scene_scorer_free(p->src.sc);
    free(p);
    return rc;
}
