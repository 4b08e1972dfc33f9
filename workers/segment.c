/* The segment job: a movie submitted without a clip list -> its shots and
 * candidate clips. One pass over every decoded frame:
 *   - shot cuts: FFmpeg's scene score of each frame against the previous one
 *     (scene.c) above cut_threshold starts a new shot;
 *   - faces: dlib's HOG detector on a subsample of frames (the first frame
 *     of every shot, then every k-th, k = detect_interval x fps, and the
 *     last frame of every shot), at native size on the grey picture; only
 *     the sampled frames are converted from the decoder's format;
 *   - tracks and clips (segplan.c): one dominant face followed through a
 *     shot, cut into clips of min..max seconds, at most max_clips per movie
 *     spread over its length.
 * The shots and candidates go to out_dir/segments.json (written atomically,
 * layout in docs/formats.md); the result line carries its path and counts,
 * and dfewd records shots and clips from the file in the transaction that
 * marks the job done. The job never writes the database. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/frame.h>

#include "decode.h"
#include "dlibc.h"
#include "log.h"
#include "scene.h"
#include "segplan.h"
#include "util.h"
#include "worker.h"

#define MAX_FACES 32
#define SEGMENTS_VERSION 1

/* Created on the first segment job, kept for the life of the worker. */
static struct dlibc_detector *detector;

struct seg_args {
    const char *path, *out_dir;
    int64_t movie_id;
    double cut_threshold, detect_interval_s, duration_s;
    int upsample;
    struct seg_params p;
};

struct shot {
    int64_t f0, f1;
    double cut_score;
};

/* Everything one pass collects. */
struct pass {
    double *t; /* frame times, n + 1 (the end of the last frame) */
    int64_t n, cap_t;
    struct shot *shots;
    int nshots, cap_shots;
    struct seg_sample *s;
    int ns, cap_s;
    int with_face;        /* samples with any face */
    int64_t last_sampled; /* frame index of the last sample, -1 */
    double decode_s, detect_s, score_s;
};

static int get_num(const struct kv *kv, const char *key, double def, double lo, double hi, double *out)
{
    double v = def;
    if (kv_get(kv, key) && kv_get_double(kv, key, &v))
        return -EINVAL;
    if (!(v >= lo && v <= hi))
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_args(struct job_ctx *ctx, struct seg_args *a)
{
    const struct kv *kv = ctx->args;
    memset(a, 0, sizeof *a);
    a->path = kv_get(kv, "path");
    a->out_dir = kv_get(kv, "out_dir");
    if (!a->path || !*a->path)
        return job_bad_arg(ctx, "no 'path'");
    if (!a->out_dir || a->out_dir[0] != '/')
        return job_bad_arg(ctx, "'out_dir' must be an absolute path");
    if (kv_get_i64(kv, "movie_id", &a->movie_id) || a->movie_id <= 0)
        return job_bad_arg(ctx, "no 'movie_id'");
    double up, max_clips;
    if (get_num(kv, "cut_threshold", 0.15, 0, 1, &a->cut_threshold) ||
        get_num(kv, "detect_interval_s", 0.2, 0, 3600, &a->detect_interval_s) ||
        get_num(kv, "min_s", 1, 0.01, 1e6, &a->p.min_s) || get_num(kv, "max_s", 10, 0.01, 1e6, &a->p.max_s) ||
        get_num(kv, "track_gap_s", 0.5, 0, 3600, &a->p.track_gap_s) ||
        get_num(kv, "max_clips", 20, 1, 1e6, &max_clips) || get_num(kv, "upsample", 0, 0, 2, &up) ||
        get_num(kv, "duration_s", 0, 0, 1e9, &a->duration_s) || a->p.max_s < a->p.min_s)
        return job_bad_arg(ctx, "cut_threshold, detect_interval_s, min_s, max_s, track_gap_s, max_clips, upsample or "
                            "duration_s out of range");
    a->p.max_clips = (int)max_clips;
    a->upsample = (int)up;
    return 0;
}

static int grow(void **v, int64_t *cap, int64_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    int64_t c = *cap ? *cap * 2 : 1024;
    while (c < need)
        c *= 2;
    void *p = realloc(*v, (size_t)c * size);
    if (!p)
        return -ENOMEM;
    *v = p;
    *cap = c;
    return 0;
}

static int push_shot(struct pass *ps, int64_t f0, int64_t f1, double score)
{
    int64_t cap = ps->cap_shots;
    if (grow((void **)&ps->shots, &cap, ps->nshots + 1, sizeof *ps->shots))
        return -ENOMEM;
    ps->cap_shots = (int)cap;
    ps->shots[ps->nshots++] = (struct shot){f0, f1, score};
    return 0;
}

/* Runs the detector on one picture (converted from the decoder's format)
 * and adds the sample for frame `index`. */
static int sample(struct decoder *dec, const AVFrame *pic, int64_t index, int upsample, struct pass *ps, char *err,
                  size_t errlen)
{
    double t0 = mono_s();
    struct decoded_frame f = {0};
    int rc = decoder_convert(dec, pic, &f, err, errlen);
    if (rc)
        return rc;
    struct dlibc_image img = {f.gray, f.width, f.height, f.gray_stride, DLIBC_GRAY8};
    struct dlibc_box boxes[MAX_FACES];
    int n = dlibc_detect(detector, &img, upsample, boxes, MAX_FACES);
    if (n < 0) {
        snprintf(err, errlen, "dlib's face detector failed on frame %lld: %s", (long long)index, strerror(-n));
        return n;
    }
    struct seg_sample s = {.frame = index, .faces = n};
    double a1 = 0, a2 = 0;
    for (int i = 0; i < n && i < MAX_FACES; i++) {
        double a = (boxes[i].x1 - boxes[i].x0) * (boxes[i].y1 - boxes[i].y0);
        if (a > a1) {
            a2 = a1;
            a1 = a;
            s.box = (struct seg_box){boxes[i].x0, boxes[i].y0, boxes[i].x1, boxes[i].y1};
        } else if (a > a2) {
            a2 = a;
        }
    }
    seg_sample_set_dominance(&s, a1, a2);
    int64_t cap = ps->cap_s;
    if (grow((void **)&ps->s, &cap, ps->ns + 1, sizeof *ps->s))
        return -ENOMEM;
    ps->cap_s = (int)cap;
    ps->s[ps->ns++] = s;
    ps->with_face += n > 0;
    ps->last_sampled = index;
    ps->detect_s += mono_s() - t0;
    return 0;
}

/* The pass over the movie: times, shots and face samples. */
static int scan(struct job_ctx *ctx, const struct seg_args *a, struct decoder *dec, struct pass *ps, char *err,
                size_t errlen)
{
    struct scene_scorer *sc = NULL;
    AVFrame *prev = NULL; /* the previous picture: sampled when a cut shows it ended a shot */
    int rc = scene_scorer_new(&sc);
    double fps = 0;
    decoder_geometry(dec, NULL, NULL, NULL, &fps);
    int64_t k = llround(a->detect_interval_s * (fps > 0 ? fps : 25));
    if (k < 1)
        k = 1;
    int64_t shot_f0 = 0;
    double shot_score = 0, last_report = mono_s();
    ps->last_sampled = -1;
    while (!rc) {
        double t0 = mono_s();
        struct decoded_frame f;
        int got = decoder_next(dec, &f, err, errlen);
        double t1 = mono_s();
        ps->decode_s += t1 - t0;
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0)
            break;
        int64_t i = ps->n;
        if ((rc = grow((void **)&ps->t, &ps->cap_t, i + 2, sizeof *ps->t)) != 0)
            break;
        ps->t[ps->n++] = f.t;
        double score = 0;
        if ((rc = scene_score(sc, f.av, &score)) != 0) {
            snprintf(err, errlen, "frame %lld: cannot compare it with the one before (%s)", (long long)i,
                     strerror(-rc));
            break;
        }
        ps->score_s += mono_s() - t1;
        if (i > 0 && score > a->cut_threshold) {
            /* a cut: the frame before ends a shot; look at it unless already done */
            if (ps->last_sampled != i - 1 && (rc = sample(dec, prev, i - 1, a->upsample, ps, err, errlen)) != 0)
                break;
            if ((rc = push_shot(ps, shot_f0, i, shot_score)) != 0)
                break;
            shot_f0 = i;
            shot_score = score;
        }
        if ((i - shot_f0) % k == 0 && (rc = sample(dec, f.av, i, a->upsample, ps, err, errlen)) != 0)
            break;
        av_frame_free(&prev);
        if (!(prev = av_frame_clone(f.av))) {
            rc = -ENOMEM;
            break;
        }
        if (t1 - last_report > 1.0) {
            last_report = t1;
            char msg[128];
            snprintf(msg, sizeof msg, "frame %lld, %d shots, a face in %d of %d sampled frames", (long long)i + 1,
                     ps->nshots + 1, ps->with_face, ps->ns);
            job_progress(ctx, a->duration_s > 0 ? fmin(0.99, f.t / a->duration_s) : 0, msg);
        }
    }
    if (!rc && ps->n > 0) {
        /* the last frame ends the last shot */
        if (ps->last_sampled != ps->n - 1)
            rc = sample(dec, prev, ps->n - 1, a->upsample, ps, err, errlen);
        if (!rc)
            rc = push_shot(ps, shot_f0, ps->n, shot_score);
        double dt = ps->n >= 2 ? ps->t[ps->n - 1] - ps->t[ps->n - 2] : 0;
        if (!(dt > 0))
            dt = 1.0 / (fps > 0 ? fps : 25);
        ps->t[ps->n] = ps->t[ps->n - 1] + dt;
    }
    av_frame_free(&prev);
    scene_scorer_free(sc);
    return rc;
}

static const char *bucket(double d) { return d < 2 ? "0-2s" : d < 5 ? "2-5s" : "5s+"; }

/* Why a movie gave no clip (or how many it gave), in one sentence. */
static void note(const struct seg_args *a, const struct pass *ps, const struct seg_stats *st, int candidates,
                 int chosen, const struct decoder_stats *ds, struct sbuf *b)
{
    if (ps->n == 0)
        sbuf_add(b, "no clip: no video frame could be decoded");
    else if (chosen > 0)
        sbuf_addf(b, "%d clip%s (of %d candidates) in %d shot%s", chosen, chosen == 1 ? "" : "s", candidates,
                  ps->nshots, ps->nshots == 1 ? "" : "s");
    else if (st->face_samples == 0 && st->ambiguous_samples == 0)
        sbuf_addf(b, "no clip: no face in any of the %d sampled frames (%lld frames, %d shot%s)", st->samples,
                  (long long)ps->n, ps->nshots, ps->nshots == 1 ? "" : "s");
    else if (st->face_samples == 0)
        sbuf_addf(b, "no clip: faces in %d sampled frames, but never one clearly larger than the others (at least "
                     "%.0fx the area of the next)",
                  st->ambiguous_samples, SEG_DOMINANCE);
    else
        sbuf_addf(b, "no clip: %d face track%s, all shorter than %.3g s (the longest %.2f s; [segment] "
                     "min_seconds)",
                  st->tracks, st->tracks == 1 ? "" : "s", a->p.min_s, st->longest_short_s);
    if (ds->read_error)
        sbuf_addf(b, "; the file ends early (%s)", ds->read_error_msg);
    if (ds->decode_errors)
        sbuf_addf(b, "; %lld damaged packets skipped", (long long)ds->decode_errors);
}

/* A clip's start is clamped at 0 (clips start at 0 or later): a first
 * frame a hair before the timeline's 0 (-2e-7 s in movie-hello.mp4) is
 * still inside [0, end) for the prep job, which allows 1e-6 s. */
static void json_times(struct sbuf *b, const double *t, int64_t f0, int64_t f1, int clip)
{
    sbuf_addf(b, "\"start_frame\":%lld,\"end_frame\":%lld,\"start_s\":%.17g,\"end_s\":%.17g", (long long)f0,
              (long long)f1, clip && t[f0] < 0 ? 0 : t[f0], t[f1]);
}

/* segments.json: the whole outcome (layout in docs/formats.md). */
static void write_json(const struct seg_args *a, const struct pass *ps, const struct seg_clips *c,
                       const struct seg_stats *st, const char *note_text, struct sbuf *b)
{
    sbuf_addf(b, "{\"format\":\"dfew-segments\",\"version\":%d,\"movie_id\":%lld,\"path\":", SEGMENTS_VERSION,
              (long long)a->movie_id);
    sbuf_add_json_str(b, a->path);
    sbuf_addf(b, ",\"frames\":%lld,\"samples\":%d,\"face_samples\":%d,\"tracks\":%d,\"note\":", (long long)ps->n,
              st->samples, st->face_samples, st->tracks);
    sbuf_add_json_str(b, note_text);
    sbuf_addf(b, ",\"params\":{\"cut_threshold\":%.17g,\"detect_interval_s\":%.17g,\"min_s\":%.17g,\"max_s\":%.17g,"
                 "\"track_gap_s\":%.17g,\"max_clips\":%d,\"upsample\":%d},\"shots\":[",
              a->cut_threshold, a->detect_interval_s, a->p.min_s, a->p.max_s, a->p.track_gap_s, a->p.max_clips,
              a->upsample);
    for (int i = 0; i < ps->nshots; i++) {
        const struct shot *s = &ps->shots[i];
        int sampled = 0, face = 0, most = 0, cands = 0, chosen = 0;
        for (int j = 0; j < ps->ns; j++)
            if (ps->s[j].frame >= s->f0 && ps->s[j].frame < s->f1) {
                sampled++;
                face += ps->s[j].faces > 0 && ps->s[j].dominant;
                if (ps->s[j].faces > most)
                    most = ps->s[j].faces;
            }
        for (int j = 0; j < c->n; j++)
            if (c->v[j].shot == i) {
                cands++;
                chosen += c->v[j].chosen;
            }
        sbuf_addf(b, "%s{\"index\":%d,", i ? "," : "", i);
        json_times(b, ps->t, s->f0, s->f1, 0);
        sbuf_addf(b, ",\"cut_score\":");
        if (i == 0)
            sbuf_add(b, "null");
        else
            sbuf_addf(b, "%.6f", s->cut_score);
        sbuf_addf(b, ",\"sampled\":%d,\"face_samples\":%d,\"faces_max\":%d,\"candidates\":%d,\"clips\":%d}", sampled,
                  face, most, cands, chosen);
    }
    sbuf_add(b, "],\"candidates\":[");
    for (int j = 0; j < c->n; j++) {
        const struct seg_clip *x = &c->v[j];
        double d = ps->t[x->f1] - ps->t[x->f0];
        sbuf_addf(b, "%s{\"shot\":%d,\"track\":%d,", j ? "," : "", x->shot, x->track);
        json_times(b, ps->t, x->f0, x->f1, 1);
        sbuf_addf(b, ",\"duration_s\":%.6f,\"bucket\":\"%s\",\"face_samples\":%d,\"chosen\":%s}", d, bucket(d),
                  x->samples, x->chosen ? "true" : "false");
    }
    sbuf_add(b, "]}\n");
}

static int load_detector(struct job_ctx *ctx)
{
    char err[1024] = "";
    if (!detector && dlibc_detector_new(&detector, err, sizeof err) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "%s", err);
        return -ENOMEM;
    }
    return 0;
}

int job_segment(struct job_ctx *ctx)
{
    struct seg_args a;
    int rc = parse_args(ctx, &a);
    if (rc)
        return rc;
    if ((rc = load_detector(ctx)) != 0)
        return rc;
    double t_start = mono_s();
    char err[1024] = "";
    struct decoder *dec = NULL;
    struct pass ps = {0};
    struct seg_clips clips = {0};
    struct seg_stats st = {0};
    struct sbuf json = {0}, path = {0}, why = {0};

    rc = decoder_open(a.path, DECODE_RAW | DECODE_GRAY | DECODE_NO_RGB, &dec, err, sizeof err);
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error, "%s%s", err,
                 rc == -ENOENT ? " (moved or deleted since it was submitted? submit it again from where it is now)"
                               : "");
        ctx->retryable = rc == -ENOMEM;
        goto out;
    }
    if ((rc = scan(ctx, &a, dec, &ps, err, sizeof err)) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "%s: segmentation stopped after %lld frames: %s", a.path,
                 (long long)ps.n, err);
        ctx->retryable = rc == -ENOMEM;
        goto out;
    }
    for (int i = 0; i < ps.nshots && !rc; i++)
        rc = seg_shot_clips(&a.p, ps.t, i, ps.shots[i].f0, ps.shots[i].f1, ps.s, ps.ns, &clips, &st);
    int chosen = rc ? 0 : seg_choose(&a.p, ps.t, clips.v, clips.n);
    if (rc || chosen < 0) {
        rc = -ENOMEM;
        goto out;
    }
    note(&a, &ps, &st, clips.n, chosen, decoder_stats(dec), &why);
    write_json(&a, &ps, &clips, &st, why.s, &json);
    sbuf_addf(&path, "%s/segments.json", a.out_dir);
    if ((rc = mkdir_p(a.out_dir, 0755)) != 0 || (rc = write_file_atomic(path.s, json.s, json.len)) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "cannot write %s: %s%s", path.s, strerror(-rc),
                 rc == -ENOSPC ? " (the disk is full: free space, the job is retried)" : "");
        ctx->retryable = rc != -EACCES && rc != -EROFS;
        goto out;
    }
    kv_set(&ctx->result, "segments", path.s);
    kv_setf(&ctx->result, "frames", "%lld", (long long)ps.n);
    kv_setf(&ctx->result, "shots", "%d", ps.nshots);
    kv_setf(&ctx->result, "samples", "%d", st.samples);
    kv_setf(&ctx->result, "face_samples", "%d", st.face_samples);
    kv_setf(&ctx->result, "tracks", "%d", st.tracks);
    kv_setf(&ctx->result, "candidates", "%d", clips.n);
    kv_setf(&ctx->result, "clips", "%d", chosen);
    kv_set(&ctx->result, "note", why.s);
    kv_setf(&ctx->result, "decode_s", "%.4f", ps.decode_s);
    kv_setf(&ctx->result, "score_s", "%.4f", ps.score_s);
    kv_setf(&ctx->result, "detect_s", "%.4f", ps.detect_s);
    kv_setf(&ctx->result, "total_s", "%.4f", mono_s() - t_start);
    kv_setf(&ctx->result, "decode_errors", "%lld", (long long)decoder_stats(dec)->decode_errors);
    log_info(ctx->id, "movie %lld: %s (%lld frames in %.2f s)", (long long)a.movie_id, why.s, (long long)ps.n,
             mono_s() - t_start);
out:
    decoder_close(dec);
    free(ps.t);
    free(ps.shots);
    free(ps.s);
    seg_clips_free(&clips);
    sbuf_free(&json);
    sbuf_free(&path);
    sbuf_free(&why);
    return rc;
}
