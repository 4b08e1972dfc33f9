/* The segment job: a movie submitted without a clip list -> its shots and
 * candidate clips. One pass over every decoded frame (media/scan.h):
 *   - shot cuts: FFmpeg's scene score of each frame against the previous one
 *     (scene.c) above cut_threshold starts a new shot;
 *   - faces: the face tracker (track.h, the prep job's) follows every face
 *     through every frame: whole-frame searches every detect_interval, at
 *     cuts and while there is no track, the followed faces looked for near
 *     their tracks in between; a track never crosses a cut;
 *   - clips (segplan.c): each track of a prominent face lasting at least
 *     min_s, cut into clips of min..max seconds, at most max_clips per movie
 *     spread over its length; each clip names its face (its box at the
 *     clip's first frame), so the prep job follows the same person.
 * The shots and candidates go to out_dir/segments.json (written atomically,
 * layout in docs/formats.md); the result line carries its path and counts,
 * and dfewd records shots and clips from the file in the transaction that
 * marks the job done. The job never writes the database. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "dlibc.h"
#include "log.h"
#include "models.h"
#include "scan.h"
#include "segplan.h"
#include "track.h"
#include "util.h"
#include "worker.h"

#define SEGMENTS_VERSION 2

struct seg_args {
    const char *path, *out_dir, *model;
    int64_t movie_id;
    double cut_threshold, detect_interval_s, duration_s, min_face_px;
    int upsample, threads;
    struct seg_params p;
};

struct shot {
    int64_t f0, f1;
    double cut_score;
    int64_t face_frames;
    int faces_max;
};

/* One detection, for the clips' counts and their subjects' boxes. */
struct det {
    int64_t frame;
    int track;
    struct dlibc_box box;
};

/* Everything the pass collects. */
struct pass {
    struct job_ctx *ctx;
    const struct seg_args *a;
    double *t; /* frame times, n + 1 (the end of the last frame) */
    int64_t n, cap_t;
    struct shot *shots;
    int64_t nshots, cap_shots;
    struct det *d;
    int64_t nd, cap_d;
    int64_t face_frames;
    double last_report;
};

static int parse_args(struct job_ctx *ctx, struct seg_args *a)
{
    const struct kv *kv = ctx->args;
    memset(a, 0, sizeof *a);
    a->path = kv_get(kv, "path");
    a->out_dir = kv_get(kv, "out_dir");
    a->model = kv_get(kv, "landmark_model");
    if (!a->path || !*a->path)
        return job_bad_arg(ctx, "no 'path'");
    if (!a->out_dir || a->out_dir[0] != '/')
        return job_bad_arg(ctx, "'out_dir' must be an absolute path");
    if (kv_get_i64(kv, "movie_id", &a->movie_id) || a->movie_id <= 0)
        return job_bad_arg(ctx, "no 'movie_id'");
    double up, max_clips;
    if (job_arg_num(ctx, "cut_threshold", 0.15, 0, 1, &a->cut_threshold) ||
        job_arg_num(ctx, "detect_interval_s", 1.0, 0, 3600, &a->detect_interval_s) ||
        job_arg_num(ctx, "min_s", 1, 0.01, 1e6, &a->p.min_s) || job_arg_num(ctx, "max_s", 10, 0.01, 1e6, &a->p.max_s) ||
        job_arg_num(ctx, "track_gap_s", 0.5, 0, 3600, &a->p.track_gap_s) ||
        job_arg_num(ctx, "max_clips", 20, 1, 1e6, &max_clips) || job_arg_num(ctx, "upsample", 0, 0, 2, &up) ||
        job_arg_num(ctx, "duration_s", 0, 0, 1e9, &a->duration_s) ||
        job_arg_num(ctx, "min_face_px", 80, 1, 100000, &a->min_face_px) ||
        job_arg_num(ctx, "min_face_ratio", 0.5, 0, 1, &a->p.min_face_share) ||
        a->p.max_s < a->p.min_s)
        return job_bad_arg(ctx, "cut_threshold, detect_interval_s, min_s, max_s, track_gap_s, max_clips, upsample, "
                                "duration_s, min_face_px or min_face_ratio out of range");
    a->p.max_clips = (int)max_clips;
    a->upsample = (int)up;
    a->threads = job_threads(); /* dfewd's share of the cores for this job */
    return 0;
}

/* Each frame as the tracker finishes it: its time, its shot, its faces. */
static int on_frame(void *ud, const struct track_frame *f)
{
    struct pass *ps = ud;
    int64_t i = ps->n;
    if (grow_array((void **)&ps->t, &ps->cap_t, i + 2, sizeof *ps->t) ||
        grow_array((void **)&ps->shots, &ps->cap_shots, ps->nshots + 1, sizeof *ps->shots) ||
        grow_array((void **)&ps->d, &ps->cap_d, ps->nd + f->nfaces, sizeof *ps->d))
        return -ENOMEM;
    ps->t[ps->n++] = f->t;
    if (i == 0 || f->cut) {
        if (ps->nshots)
            ps->shots[ps->nshots - 1].f1 = i;
        ps->shots[ps->nshots++] = (struct shot){i, i + 1, i ? f->cut_score : 0, 0, 0};
    }
    struct shot *sh = &ps->shots[ps->nshots - 1];
    sh->f1 = i + 1;
    if (f->nfaces > 0) {
        sh->face_frames++;
        ps->face_frames++;
    }
    if (f->nfaces > sh->faces_max)
        sh->faces_max = f->nfaces;
    for (int k = 0; k < f->nfaces; k++)
        ps->d[ps->nd++] = (struct det){i, f->faces[k].track, f->faces[k].box};
    double now = mono_s();
    if (now - ps->last_report > 1.0) {
        ps->last_report = now;
        char msg[128];
        snprintf(msg, sizeof msg, "frame %lld, %lld shots, a face in %lld frames", (long long)i + 1,
                 (long long)ps->nshots, (long long)ps->face_frames);
        job_progress(ps->ctx, ps->a->duration_s > 0 ? fmin(0.99, f->t / ps->a->duration_s) : 0, msg);
    }
    return 0;
}

static int by_track_frame(const void *a, const void *b)
{
    const struct det *x = a, *y = b;
    if (x->track != y->track)
        return x->track < y->track ? -1 : 1;
    return x->frame < y->frame ? -1 : x->frame > y->frame;
}

/* The tracks as segplan sees them: their shots, mean sizes and the frames
 * they were detected in (det_frames: one array for all, by track). */
static struct seg_track *seg_tracks(const struct pass *ps, const struct track_summary *sum, int n,
                                    int64_t **det_frames)
{
    struct seg_track *v = calloc(n ? (size_t)n : 1, sizeof *v);
    struct det *byt = malloc(sizeof *byt * (size_t)(ps->nd ? ps->nd : 1));
    int64_t *frames = malloc(sizeof *frames * (size_t)(ps->nd ? ps->nd : 1));
    if (!v || !byt || !frames) {
        free(v);
        free(byt);
        free(frames);
        return NULL;
    }
    if (ps->nd) {
        memcpy(byt, ps->d, sizeof *byt * (size_t)ps->nd);
        qsort(byt, (size_t)ps->nd, sizeof *byt, by_track_frame);
    }
    for (int64_t i = 0; i < ps->nd; i++)
        frames[i] = byt[i].frame;
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        int shot = 0;
        while (shot + 1 < ps->nshots && ps->shots[shot + 1].f0 <= sum[i].first)
            shot++;
        while (at < ps->nd && byt[at].track < sum[i].id)
            at++;
        v[i] = (struct seg_track){sum[i].id, shot, sum[i].first, sum[i].last, sum[i].frames,
                                  sum[i].frames ? sum[i].size_sum / sum[i].frames : 0,
                                  at < ps->nd && byt[at].track == sum[i].id ? frames + at : NULL};
    }
    free(byt);
    *det_frames = frames;
    return v;
}

static const char *bucket(double d) { return d < 2 ? "0-2s" : d < 5 ? "2-5s" : "5s+"; }

/* Why a movie gave no clip (or how many it gave), in one sentence. */
static void note(const struct seg_args *a, const struct pass *ps, const struct seg_stats *st, int candidates,
                 int chosen, const struct decoder_stats *ds, struct sbuf *b)
{
    if (ps->n == 0)
        sbuf_add(b, "no clip: no video frame could be decoded");
    else if (chosen > 0)
        sbuf_addf(b, "%d clip%s (of %d candidates) in %lld shot%s", chosen, chosen == 1 ? "" : "s", candidates,
                  (long long)ps->nshots, ps->nshots == 1 ? "" : "s");
    else if (st->tracks == 0)
        sbuf_addf(b, "no clip: no face in any of the %lld frames (%lld shot%s)", (long long)ps->n,
                  (long long)ps->nshots, ps->nshots == 1 ? "" : "s");
    else if (st->short_tracks == st->tracks)
        sbuf_addf(b, "no clip: %d face track%s, all shorter than %.3g s (the longest %.2f s; [segment] "
                     "min_seconds)",
                  st->tracks, st->tracks == 1 ? "" : "s", a->p.min_s, st->longest_short_s);
    else
        sbuf_addf(b, "no clip: %d face track%s: %d shorter than %.3g s, %d of faces less than half as large as "
                     "another face at the same time, %d part%s with the face in fewer than %.0f%% of the frames",
                  st->tracks, st->tracks == 1 ? "" : "s", st->short_tracks, a->p.min_s, st->small_tracks,
                  st->sparse_parts, st->sparse_parts == 1 ? "" : "s", 100 * a->p.min_face_share);
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

/* The clip's face: its track's first detection at or after the clip's
 * first frame, and how many of the clip's frames have it. */
static void clip_face(const struct pass *ps, const struct seg_clip *c, struct dlibc_box *box, int64_t *faces)
{
    int found = 0;
    *faces = 0;
    for (int64_t i = 0; i < ps->nd; i++) {
        const struct det *d = &ps->d[i];
        if (d->track != c->track || d->frame < c->f0 || d->frame >= c->f1)
            continue;
        if (!found) {
            *box = d->box;
            found = 1;
        }
        (*faces)++;
    }
}

/* segments.json: the whole outcome (layout in docs/formats.md). */
static void write_json(const struct seg_args *a, const struct pass *ps, const struct seg_clips *c,
                       const struct seg_stats *st, const char *note_text, struct sbuf *b)
{
    sbuf_addf(b, "{\"format\":\"dfew-segments\",\"version\":%d,\"movie_id\":%lld,\"path\":", SEGMENTS_VERSION,
              (long long)a->movie_id);
    sbuf_add_json_str(b, a->path);
    sbuf_addf(b, ",\"frames\":%lld,\"samples\":%lld,\"face_samples\":%lld,\"tracks\":%d,\"note\":",
              (long long)ps->n, (long long)ps->n, (long long)ps->face_frames, st->tracks);
    sbuf_add_json_str(b, note_text);
    sbuf_addf(b, ",\"params\":{\"cut_threshold\":%.17g,\"detect_interval_s\":%.17g,\"min_s\":%.17g,\"max_s\":%.17g,"
                 "\"track_gap_s\":%.17g,\"max_clips\":%d,\"upsample\":%d,\"min_face_px\":%.17g},\"shots\":[",
              a->cut_threshold, a->detect_interval_s, a->p.min_s, a->p.max_s, a->p.track_gap_s, a->p.max_clips,
              a->upsample, a->min_face_px);
    for (int64_t i = 0; i < ps->nshots; i++) {
        const struct shot *s = &ps->shots[i];
        int cands = 0, chosen = 0;
        for (int j = 0; j < c->n; j++)
            if (c->v[j].shot == i) {
                cands++;
                chosen += c->v[j].chosen;
            }
        sbuf_addf(b, "%s{\"index\":%lld,", i ? "," : "", (long long)i);
        json_times(b, ps->t, s->f0, s->f1, 0);
        sbuf_addf(b, ",\"cut_score\":");
        if (i == 0)
            sbuf_add(b, "null");
        else
            sbuf_addf(b, "%.6f", s->cut_score);
        sbuf_addf(b, ",\"sampled\":%lld,\"face_samples\":%lld,\"faces_max\":%d,\"candidates\":%d,\"clips\":%d}",
                  (long long)(s->f1 - s->f0), (long long)s->face_frames, s->faces_max, cands, chosen);
    }
    sbuf_add(b, "],\"candidates\":[");
    for (int j = 0; j < c->n; j++) {
        const struct seg_clip *x = &c->v[j];
        double d = ps->t[x->f1] - ps->t[x->f0];
        struct dlibc_box box = {0};
        int64_t faces;
        clip_face(ps, x, &box, &faces);
        sbuf_addf(b, "%s{\"shot\":%d,\"track\":%d,", j ? "," : "", x->shot, x->track);
        json_times(b, ps->t, x->f0, x->f1, 1);
        sbuf_addf(b, ",\"duration_s\":%.6f,\"bucket\":\"%s\",\"face_samples\":%lld,\"subject_box\":\"%.0f,%.0f,%.0f,"
                     "%.0f\",\"chosen\":%s}",
                  d, bucket(d), (long long)faces, box.x0, box.y0, box.x1, box.y1, x->chosen ? "true" : "false");
    }
    sbuf_add(b, "]}\n");
}

/* The pass: every frame decoded, cuts marked, faces followed. */
static int run_scan(struct job_ctx *ctx, const struct seg_args *a, struct dlibc_detector *det,
                    struct dlibc_predictor *sp, struct pass *ps, struct track_summary **sum, int *ntracks,
                    struct decoder_stats *ds, struct scan_stats *st, int64_t *searches)
{
    char err[1024] = "";
    struct decoder *dec = NULL;
    struct tracker *tr = NULL;
    /* grey only: the tracker needs nothing else */
    int rc = decoder_open_threads(a->path, DECODE_RAW | DECODE_GRAY | DECODE_NO_RGB, a->threads > 2 ? a->threads - 1 : 1, &dec, err,
                              sizeof err);
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error, "%s%s", err,
                 rc == -ENOENT ? " (moved or deleted since it was submitted? submit it again from where it is now)"
                               : "");
        ctx->retryable = rc == -ENOMEM;
        return rc;
    }
    struct track_opts to = TRACK_OPTS_DEFAULT;
    to.upsample = a->upsample;
    to.min_face_px = a->min_face_px;
    to.detect_interval_s = a->detect_interval_s;
    to.track_gap_s = a->p.track_gap_s;
    to.threads_now = job_threads;
    if ((rc = tracker_new(det, sp, &to, &tr)) != 0)
        goto out;
    struct scan_opts so = {.start_s = 0, .end_s = INFINITY, .cut_threshold = a->cut_threshold,
                           .threads = a->threads, .threads_now = job_threads};
    rc = face_scan(dec, tr, &so, on_frame, ps, st, err, sizeof err);
    *ds = *decoder_stats(dec);
    *searches = tracker_stats(tr)->full_searches;
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error, "%s: segmentation stopped after %lld frames: %s", a->path,
                 (long long)ps->n, err[0] ? err : strerror(-rc));
        ctx->retryable = rc == -ENOMEM;
        goto out;
    }
    int n;
    const struct track_summary *s = tracker_tracks(tr, &n);
    *sum = malloc(sizeof **sum * (size_t)(n ? n : 1));
    if (!*sum) {
        rc = -ENOMEM;
        goto out;
    }
    if (n)
        memcpy(*sum, s, sizeof **sum * (size_t)n);
    *ntracks = n;
    if (ps->n > 0) { /* the end of the last frame */
        double dt = st->last_dur > 0 ? st->last_dur : 0.04;
        ps->t[ps->n] = ps->t[ps->n - 1] + dt;
    }
out:
    tracker_free(tr);
    decoder_close(dec);
    return rc;
}

int job_segment(struct job_ctx *ctx)
{
    struct seg_args a;
    int rc = parse_args(ctx, &a);
    if (rc)
        return rc;
    struct dlibc_detector *det;
    struct dlibc_predictor *sp;
    if ((rc = worker_models(ctx, a.model, &det, &sp)) != 0) /* once per worker, not the job's time */
        return rc;
    double t_start = mono_s();
    struct pass ps = {.ctx = ctx, .a = &a};
    struct seg_clips clips = {0};
    struct seg_stats st = {0};
    struct track_summary *sum = NULL;
    struct seg_track *tracks = NULL;
    int64_t *det_frames = NULL;
    struct decoder_stats ds = {0};
    struct scan_stats ss = {0};
    struct sbuf json = {0}, path = {0}, why = {0};
    int ntracks = 0;
    int64_t searches = 0;
    if ((rc = run_scan(ctx, &a, det, sp, &ps, &sum, &ntracks, &ds, &ss, &searches)) != 0)
        goto out;
    if (!(tracks = seg_tracks(&ps, sum, ntracks, &det_frames)) ||
        seg_track_clips(&a.p, ps.t, tracks, ntracks, &clips, &st)) {
        rc = -ENOMEM;
        goto out;
    }
    int chosen = seg_choose(&a.p, ps.t, clips.v, clips.n);
    if (chosen < 0) {
        rc = -ENOMEM;
        goto out;
    }
    note(&a, &ps, &st, clips.n, chosen, &ds, &why);
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
    kv_setf(&ctx->result, "shots", "%lld", (long long)ps.nshots);
    kv_setf(&ctx->result, "samples", "%lld", (long long)ps.n);
    kv_setf(&ctx->result, "face_samples", "%lld", (long long)ps.face_frames);
    kv_setf(&ctx->result, "tracks", "%d", st.tracks);
    kv_setf(&ctx->result, "searches", "%lld", (long long)searches);
    kv_setf(&ctx->result, "candidates", "%d", clips.n);
    kv_setf(&ctx->result, "clips", "%d", chosen);
    kv_set(&ctx->result, "note", why.s);
    kv_setf(&ctx->result, "decode_s", "%.4f", ss.decode_s);
    kv_setf(&ctx->result, "score_s", "%.4f", 0.0);
    kv_setf(&ctx->result, "detect_s", "%.4f", ss.track_s);
    kv_setf(&ctx->result, "total_s", "%.4f", mono_s() - t_start);
    kv_setf(&ctx->result, "decode_errors", "%lld", (long long)ds.decode_errors);
    log_info(ctx->id, "movie %lld: %s (%lld frames in %.2f s)", (long long)a.movie_id, why.s, (long long)ps.n,
             mono_s() - t_start);
out:
    free(ps.t);
    free(ps.shots);
    free(ps.d);
    free(sum);
    free(tracks);
    free(det_frames);
    seg_clips_free(&clips);
    sbuf_free(&json);
    sbuf_free(&path);
    sbuf_free(&why);
    return rc;
}
