/* The prep job: one clip of a movie from decoded frames to training input.
 * A short driver over named stages:
 *   args     the recipe, fixed when the job was queued;
 *   scan     decode [start, end), follow every face with the tracker
 *            (media/track.h), align each face of each frame to the
 *            five-point template into a scratch file;
 *   subject  choose the clip's one subject among the tracks ([prep]
 *            subject, or the segment job's hint); its frames are the face
 *            frames, usable when at least min_face_ratio of all;
 *   outputs  faces.bin (the subject per frame, the other faces after),
 *            the subject's aligned frames interpolated to `frames` (TIM or
 *            linear) as images and clip.u8, every aligned face frame with
 *            keep_aligned (aligned.u8), all in a temporary directory synced
 *            once and renamed into place only when complete.
 * Running a job again writes the same bytes. The dlib models are loaded
 * once per worker process and kept. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "align.h"
#include "clipfmt.h"
#include "config.h"
#include "decode.h"
#include "dlibc.h"
#include "imgenc.h"
#include "log.h"
#include "models.h"
#include "scan.h"
#include "tim.h"
#include "track.h"
#include "util.h"
#include "prep_scan.h"
#include "worker.h"

static int get_int(const struct kv *kv, const char *key, int def, int lo, int hi, int *out)
{
    int64_t v = def;
    if (kv_get(kv, key) && kv_get_i64(kv, key, &v))
        return -EINVAL;
    if (v < lo || v > hi)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

/* The tracker's part of the recipe; jobs queued before these keys existed
 * get the defaults. */
static int parse_track_args(struct job_ctx *ctx, struct prep_args *a)
{
    const struct kv *kv = ctx->args;
    struct track_opts o = TRACK_OPTS_DEFAULT;
    const char *detect = kv_get(kv, "detect"), *subject = kv_get(kv, "subject");
    if (detect && !strcmp(detect, "every_frame"))
        o.detect = TRACK_EVERY_FRAME;
    else if (detect && strcmp(detect, "fast"))
        return job_bad_arg(ctx, "'detect' must be fast or every_frame");
    o.upsample = a->upsample;
    if (job_arg_num(ctx, "min_face_px", 80, 1, 100000, &o.min_face_px) ||
        job_arg_num(ctx, "detect_interval_s", 2.0, 0, 1e6, &o.detect_interval_s) ||
        job_arg_num(ctx, "track_gap_s", 0.5, 0, 1e6, &o.track_gap_s) ||
        job_arg_num(ctx, "cut_threshold", 0.15, 0, 1, &a->cut_threshold) ||
        job_arg_num(ctx, "range_min_s", 5.0, 0, 1e6, &a->range_min_s))
        return job_bad_arg(ctx, "min_face_px, detect_interval_s, track_gap_s, cut_threshold or range_min_s out of range");
    double follow;
    if (job_arg_num(ctx, "follow_frames", o.follow_frames, 0, o.lost_interval - 1, &follow) || follow != (int)follow)
        return job_bad_arg(ctx, "follow_frames out of range");
    o.follow_frames = (int)follow;
    if (subject_rule_parse(subject ? subject : "longest", &a->subject))
        return job_bad_arg(ctx, "'subject' must be longest or largest_first");
    const char *hint = kv_get(kv, "subject_box");
    if (hint && *hint) {
        double v[4];
        if (sscanf(hint, "%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3]) != 4 || !(v[2] > v[0]) || !(v[3] > v[1]))
            return job_bad_arg(ctx, "'subject_box' must be x0,y0,x1,y1");
        a->hint = (struct dlibc_box){v[0], v[1], v[2], v[3], 0};
        a->has_hint = 1;
    }
    o.threads_now = job_threads;
    a->track = o;
    a->threads = job_threads(); /* dfewd's share of the cores for this job (it changes as jobs come and go) */
    return 0;
}

static int parse_args(struct job_ctx *ctx, struct prep_args *a)
{
    const struct kv *kv = ctx->args;
    memset(a, 0, sizeof *a);
    a->path = kv_get(kv, "path");
    a->out_dir = kv_get(kv, "out_dir");
    a->model = kv_get(kv, "landmark_model");
    if (!a->model || !*a->model)
        a->model = DFEW_LANDMARK_MODEL;
    if (!a->path || !*a->path)
        return job_bad_arg(ctx, "no 'path'");
    if (!a->out_dir || a->out_dir[0] != '/')
        return job_bad_arg(ctx, "'out_dir' must be an absolute path");
    if (kv_get_i64(kv, "clip_id", &a->clip_id) || a->clip_id <= 0)
        return job_bad_arg(ctx, "no 'clip_id'");
    /* The job replaces and removes out_dir: it must be .../clips/<clip id>. */
    char tail[64];
    snprintf(tail, sizeof tail, "/clips/%lld", (long long)a->clip_id);
    size_t len = strlen(a->out_dir), tl = strlen(tail);
    if (len <= tl || strcmp(a->out_dir + len - tl, tail))
        return job_bad_arg(ctx, "'out_dir' must end in /clips/<clip_id>");
    if (kv_get_double(kv, "start_s", &a->start_s) || kv_get_double(kv, "end_s", &a->end_s) || a->start_s < 0 ||
        !(a->end_s > a->start_s))
        return job_bad_arg(ctx, "'start_s' and 'end_s' must be seconds with 0 <= start < end");
    if (get_int(kv, "frames", 16, 1, 1000, &a->frames) || get_int(kv, "size", 112, 16, 2048, &a->size) ||
        get_int(kv, "template_size", 112, 1, 100000, &a->template_size) ||
        get_int(kv, "upsample", 0, 0, 2, &a->upsample) || get_int(kv, "keep_aligned", 0, 0, 1, &a->keep_aligned))
        return job_bad_arg(ctx, "frames, size, template_size, upsample or keep_aligned out of range");
    a->min_face_ratio = 0.5;
    if (kv_get(kv, "min_face_ratio") &&
        (kv_get_double(kv, "min_face_ratio", &a->min_face_ratio) || a->min_face_ratio < 0 || a->min_face_ratio > 1))
        return job_bad_arg(ctx, "'min_face_ratio' must be from 0 to 1");
    const char *interp = kv_get(kv, "interp"), *fmt = kv_get(kv, "image_format");
    if (tim_mode_parse(interp ? interp : "tim", &a->interp))
        return job_bad_arg(ctx, "'interp' must be tim or linear");
    if (img_format_parse(fmt ? fmt : "png", &a->format))
        return job_bad_arg(ctx, "'image_format' must be png or jpg");
    const char *tpl = kv_get(kv, "template");
    if (parse_points(tpl ? tpl : DFEW_PREP_TEMPLATE, a->tpl, 5))
        return job_bad_arg(ctx, "'template' must be 5 points 'x,y'");
    for (int i = 0; i < 10; i++)
        a->tpl[i] *= (double)a->size / a->template_size;
    return parse_track_args(ctx, a);
}

/* Temporary directories of earlier attempts at this clip (a worker killed
 * mid-clip leaves one): only one job per clip runs at a time, so they are stale. */
static void remove_stale_tmp(const char *parent, const char *base)
{
    DIR *d = opendir(parent);
    if (!d)
        return;
    char prefix[300];
    snprintf(prefix, sizeof prefix, ".tmp-%s-", base);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)))
            continue;
        struct sbuf p = {0};
        sbuf_addf(&p, "%s/%s", parent, e->d_name);
        if (remove_tree(p.s) == 0)
            log_info(0, "removed %s, left by an earlier attempt that did not finish", p.s);
        sbuf_free(&p);
    }
    closedir(d);
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* Closes f after writing it out (no fsync: the whole directory is synced
 * at once before it is renamed into place, see sync_dir). */
static int close_file(FILE *f)
{
    int rc = fflush(f) == 0 ? 0 : -(errno ? errno : EIO);
    if (fclose(f) != 0 && !rc)
        rc = -(errno ? errno : EIO);
    return rc;
}

/* Makes every file written in dir durable before dir is renamed into place:
 * one syncfs of its filesystem instead of an fsync per file (an fsync costs
 * a journal commit, more than encoding a 112 px PNG), then the directory. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = syncfs(fd) == 0 && fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int pwrite_all(int fd, const void *buf, size_t n, off_t at)
{
    ssize_t w = pwrite(fd, buf, n, at);
    return w == (ssize_t)n ? 0 : -(w < 0 ? errno : ENOSPC);
}

static int pread_all(int fd, void *buf, size_t n, off_t at)
{
    ssize_t r = pread(fd, buf, n, at);
    return r == (ssize_t)n ? 0 : r < 0 ? -errno : -EIO;
}

/* A scratch file in dir, gone with its descriptor. */
static int scratch_file(const char *dir, const char *name, int *fd)
{
    struct sbuf p = {0};
    sbuf_addf(&p, "%s/%s", dir, name);
    *fd = open(p.s, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = *fd < 0 ? -errno : 0;
    if (!rc)
        unlink(p.s);
    sbuf_free(&p);
    return rc;
}

void scratch_init(struct scratch *s, const char *dir, const char *name, size_t rec)
{
    memset(s, 0, sizeof *s);
    s->dir = dir;
    s->name = name;
    s->rec = rec;
    s->limit = SCRATCH_MEM / rec * rec;
    s->fd = -1;
}

void scratch_free(struct scratch *s)
{
    free(s->mem);
    if (s->fd >= 0)
        close(s->fd);
    s->mem = NULL;
    s->fd = -1;
}

/* Record i (rec bytes) from buf. */
int scratch_put(struct scratch *s, int64_t i, const void *buf)
{
    size_t at = (size_t)i * s->rec;
    if (at < s->limit) {
        if (at + s->rec > s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 16 * s->rec;
            while (cap < at + s->rec)
                cap *= 2;
            if (cap > s->limit)
                cap = s->limit;
            uint8_t *m = realloc(s->mem, cap);
            if (!m)
                return -ENOMEM;
            s->mem = m;
            s->cap = cap;
        }
        memcpy(s->mem + at, buf, s->rec);
        return 0;
    }
    int rc = s->fd < 0 ? scratch_file(s->dir, s->name, &s->fd) : 0;
    return rc ? rc : pwrite_all(s->fd, buf, s->rec, (off_t)(at - s->limit));
}

int scratch_get(const struct scratch *s, int64_t i, void *buf)
{
    size_t at = (size_t)i * s->rec;
    if (at < s->limit) {
        if (at + s->rec > s->cap)
            return -EIO;
        memcpy(buf, s->mem + at, s->rec);
        return 0;
    }
    return s->fd < 0 ? -EIO : pread_all(s->fd, buf, s->rec, (off_t)(at - s->limit));
}

/* --- stage: scan --- */

/* Each frame as the tracker finishes it: every face aligned into the
 * scratch files. */
int on_frame(void *ud, const struct track_frame *f)
{
    struct prep_scan *s = ud;
    const struct prep_args *a = s->a;
    int rc = grow_array((void **)&s->frames, &s->capframes, s->nframes + 1, sizeof *s->frames);
    if (rc)
        return rc;
    s->frames[s->nframes] = (struct frame_info){f->t, f->nfaces};
    int share = job_threads();
    if (share < s->threads_min)
        s->threads_min = share;
    s->width = f->width;
    s->height = f->height;
    for (int i = 0; i < f->nfaces; i++) {
        const struct track_face *tf = &f->faces[i];
        double t0 = mono_s();
        double five[10], m[6];
        align_five_points(tf->pts, five);
        /* the face warped from the decoded picture's planes: the picture is
         * never converted to RGB whole */
        int ok = align_similarity(five, a->tpl, 5, m) == 0;
        if (ok) {
            rc = frame_converter_warp(s->conv, f->av, m, a->size, s->crop, s->err, sizeof s->err);
            if (rc == -ENOMEM || (rc && rc != -EINVAL))
                return rc;
            ok = rc == 0;
        }
        double t1 = mono_s();
        s->tm->align += t1 - t0;
        if ((rc = grow_array((void **)&s->refs, &s->caprefs, s->nrefs + 1, sizeof *s->refs)) != 0)
            return rc;
        struct face_scratch fs = {tf->track, {(float)tf->box.x0, (float)tf->box.y0, (float)tf->box.x1,
                                              (float)tf->box.y1},
                                  (float)tf->box.score, {0}};
        memcpy(fs.pts, tf->pts, sizeof fs.pts);
        /* degenerate landmarks (all on one point) are not a usable face */
        if ((ok && (rc = scratch_put(&s->crops, s->nrefs, s->crop)) != 0) ||
            (rc = scratch_put(&s->recs, s->nrefs, &fs)) != 0)
            return rc;
        s->refs[s->nrefs++] = (struct face_ref){f->index, tf->track, ok};
        s->tm->write += mono_s() - t1;
    }
    s->nframes++;
    if (s->share)
        return range_frame(s, f->t); /* the whole clip's progress, and the wait for a core */
    double now = mono_s();
    if (now - s->last_report > 0.5) {
        s->last_report = now;
        char msg[96];
        snprintf(msg, sizeof msg, "frame %lld, %lld faces", (long long)s->nframes, (long long)s->nrefs);
        job_progress(s->ctx, fmin(0.95, (f->t - a->start_s) / (a->end_s - a->start_s)), msg);
    }
    return 0;
}

/* --- stage: outputs --- */

/* Writes a clip.u8-format tensor of frames (n x size x size x 3) to path. */
static FILE *tensor_open(const char *path, int n, int size, int *rc)
{
    FILE *f = fopen(path, "wb");
    *rc = f ? clip_write_header(f, n, size, size, 3) : -errno;
    return f;
}

/* Interpolates the subject's n aligned face frames (crops `crop_at`, in the
 * crops scratch file) to a->frames frames and writes them as images and as
 * clip.u8; with keep_aligned also every aligned face frame, in time order,
 * as aligned.u8 (the clip.u8 format; the DFEW release's clip_<S>x<S> set,
 * which dfewctl export writes as JPEG: an image file per frame here cost
 * more than the rest of the job, see lib/clipfiles.h). */
static int write_frames(const struct prep_args *a, const struct scratch *crops, const int64_t *crop_at, int n,
                        const char *tmp, struct prep_times *tm)
{
    const size_t P = (size_t)a->size * a->size * 3;
    const int M = a->frames;
    double t0 = mono_s();
    double *w = malloc(sizeof *w * (size_t)M * n);
    float *acc = calloc((size_t)M * P, sizeof *acc);
    uint8_t *frame = malloc(P);
    uint8_t *out = malloc(P * M);
    int rc = !w || !acc || !frame || !out ? -ENOMEM : tim_weights(n, M, a->interp, w);
    struct img_encoder *enc = NULL;
    struct sbuf path = {0};
    FILE *aligned = NULL;
    double t_aligned = 0;
    if (!rc)
        rc = img_encoder_new(a->format, &enc);
    if (!rc && a->keep_aligned) {
        sbuf_addf(&path, "%s/aligned.u8", tmp);
        aligned = tensor_open(path.s, n, a->size, &rc);
    }
    /* acc[j] += w[j][i] * frame_i, one input frame at a time (memory: M frames) */
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = scratch_get(crops, crop_at[i], frame)) != 0)
            break;
        if (aligned) {
            double ta = mono_s();
            if (fwrite(frame, 1, P, aligned) != P)
                rc = -(errno ? errno : EIO);
            t_aligned += mono_s() - ta;
            if (rc)
                break;
        }
        for (int j = 0; j < M; j++) {
            float wj = (float)w[(size_t)j * n + i];
            if (wj == 0)
                continue;
            float *aj = acc + (size_t)j * P;
            for (size_t p = 0; p < P; p++)
                aj[p] += wj * frame[p];
        }
    }
    if (aligned) {
        int c = close_file(aligned);
        rc = rc ? rc : c;
    }
    for (size_t p = 0; !rc && p < P * M; p++) {
        float v = floorf(acc[p] + 0.5f);
        out[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    tm->align += mono_s() - t0 - t_aligned;
    tm->write += t_aligned;
    t0 = mono_s();
    int digits = M >= 100 ? (M >= 1000 ? 4 : 3) : 2;
    for (int j = 0; j < M && !rc; j++) {
        sbuf_reset(&path);
        sbuf_addf(&path, "%s/%0*d.%s", tmp, digits, j + 1, img_format_ext(a->format));
        rc = img_write_file_nosync(enc, path.s, out + (size_t)j * P, a->size, a->size, a->size * 3);
    }
    img_encoder_free(enc);
    if (!rc) {
        sbuf_reset(&path);
        sbuf_addf(&path, "%s/clip.u8", tmp);
        FILE *f = tensor_open(path.s, M, a->size, &rc);
        if (!rc && fwrite(out, 1, P * M, f) != P * M)
            rc = -(errno ? errno : EIO);
        if (f) {
            int c = close_file(f);
            rc = rc ? rc : c;
        }
    }
    sbuf_free(&path);
    free(w);
    free(acc);
    free(frame);
    free(out);
    tm->write += mono_s() - t0;
    return rc;
}

/* faces.bin: one record per frame for the subject (found or not), then the
 * other tracks' faces. end_s: the clip's end (where the frames ended, when
 * before the end asked for). */
static int write_faces(const struct prep_args *a, const struct prep_scan *s, int subject, double end_s,
                       const char *tmp)
{
    struct sbuf p = {0};
    sbuf_addf(&p, "%s/faces.bin", tmp);
    FILE *f = fopen(p.s, "wb");
    sbuf_free(&p);
    if (!f)
        return -errno;
    struct faces_header fh = {(uint32_t)s->width, (uint32_t)s->height, 0, a->start_s, end_s, FACES_VERSION,
                              subject < 0 ? FACES_NO_TRACK : (uint32_t)subject, 0};
    int rc = faces_write_header(f, &fh);
    struct face_scratch fs;
    int64_t r = 0;
    for (int64_t i = 0; i < s->nframes && !rc; i++) {
        struct face_record rec = {(uint32_t)i, 0, s->frames[i].t, {0}, 0, (uint32_t)s->frames[i].faces, {0}};
        for (; r < s->nrefs && s->refs[r].frame == i; r++) {
            if (s->refs[r].track != subject || !s->refs[r].aligned)
                continue;
            if ((rc = scratch_get(&s->recs, r, &fs)) != 0)
                break;
            rec.found = 1;
            memcpy(rec.box, fs.box, sizeof rec.box);
            rec.score = fs.score;
            memcpy(rec.pts, fs.pts, sizeof rec.pts);
        }
        if (!rc)
            rc = faces_write_record(f, &rec);
    }
    for (int64_t i = 0; i < s->nrefs && !rc; i++) {
        if (s->refs[i].track == subject && s->refs[i].aligned)
            continue;
        if ((rc = scratch_get(&s->recs, i, &fs)) != 0)
            break;
        struct face_other o = {(uint32_t)s->refs[i].frame, (uint32_t)s->refs[i].track,
                               {fs.box[0], fs.box[1], fs.box[2], fs.box[3]}, fs.score};
        rc = faces_write_other(f, &o);
        fh.others++;
    }
    fh.records = (uint64_t)s->nframes;
    if (!rc)
        rc = faces_finish(f, &fh);
    int c = close_file(f);
    return rc ? rc : c;
}

/* Puts tmp in place of final: atomically exchanged when final exists (a
 * finished earlier run), else renamed. The old directory is then removed. */
static int publish(const char *tmp, const char *final)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0)
        return remove_tree(tmp); /* tmp now holds the old output */
    if (errno != ENOENT && errno != EINVAL && errno != ENOSYS)
        return -errno;
    if (rename(tmp, final) != 0)
        return -errno;
    return 0;
}

static void set_io_error(struct job_ctx *ctx, int rc, const char *what, const char *path)
{
    snprintf(ctx->error, sizeof ctx->error, "%s %s: %s%s", what, path, strerror(-rc),
             rc == -ENOSPC ? " (the disk is full: free space, the job is retried)" : "");
    ctx->retryable = rc != -EACCES && rc != -EROFS && rc != -EINVAL;
}

/* --- the driver --- */

/* The scan stage: decoding, tracking and aligning every face. */
int run_scan(struct job_ctx *ctx, const struct prep_args *a, struct dlibc_detector *det,
                    struct dlibc_predictor *sp, struct prep_scan *s, struct scan_stats *st, struct decoder_stats *ds,
                    struct track_stats *ts, int *ntracks_out, int *subject_out)
{
    char err[1024] = "";
    struct decoder *dec = NULL;
    struct tracker *tr = NULL;
    int rc;
    /* with 2 threads: the decoding thread and the tracker's; FFmpeg's own
     * frame threads only beyond that. Grey only: the aligned faces are
     * warped from the decoded planes (frame_converter_warp), so an RGB
     * picture of the whole frame would be made for nothing */
    rc = decoder_open_threads(a->path, DECODE_RAW | DECODE_GRAY | DECODE_NO_RGB, a->threads > 2 ? a->threads - 1 : 1, &dec, err,
                              sizeof err);
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error, "%s%s", err,
                 rc == -ENOENT ? " (moved or deleted since it was submitted? submit it again from where it is now)"
                               : "");
        ctx->retryable = rc == -EIO || rc == -ENOMEM;
        return rc;
    }
    int rotation = 0;
    decoder_geometry(dec, NULL, NULL, &rotation, NULL);
    if ((rc = frame_converter_new(rotation, &s->conv)) != 0 ||
        (rc = tracker_new(det, sp, &a->track, &tr)) != 0)
        goto out;
    /* The scan decodes on its own thread even when the job starts with one:
     * while its share of the cores is one thread, the decoding runs only
     * while the tracker waits; when the share grows (another job ended),
     * the two overlap. A range of a split clip has the job's share less
     * one thread for each other range at work, and its end can move. */
    struct scan_opts so = {.start_s = a->start_s, .end_s = a->end_s, .cut_threshold = a->cut_threshold,
                           .threads = a->threads > 2 ? a->threads : 2, .threads_now = job_threads};
    if (s->share) {
        so.threads_for = range_threads;
        so.threads_ud = s;
        so.end_now = range_end;
        so.end_ud = s;
    }
    rc = face_scan(dec, tr, &so, on_frame, s, st, err, sizeof err);
    *ds = *decoder_stats(dec);
    *ts = *tracker_stats(tr);
    if (rc == -ENOSPC || rc == -EDQUOT || rc == -EIO) {
        set_io_error(ctx, rc, "cannot write scratch files in", a->out_dir);
    } else if (rc) {
        snprintf(ctx->error, sizeof ctx->error, "%s: the face scan stopped after %lld frames of the clip: %s", a->path,
                 (long long)s->nframes, err[0] ? err : s->err[0] ? s->err : strerror(-rc));
        ctx->retryable = rc == -ENOMEM;
    } else {
        int n;
        const struct track_summary *sum = tracker_tracks(tr, &n);
        *ntracks_out = n;
        *subject_out = track_choose_subject(sum, n, a->subject, a->has_hint ? &a->hint : NULL, 0);
    }
out:
    tracker_free(tr);
    decoder_close(dec);
    return rc;
}

/* Where the clip's frames end: its end, unless the movie's frames ended
 * inside it by more than a frame (a file cut short, a clip past the last
 * frame); then where they did (dfewd records that as the clip's end). */
static double decoded_end(const struct prep_args *a, const struct scan_stats *st)
{
    double last_end = st->last_t + st->last_dur;
    if (st->stream_ended && st->frames > 0 && last_end < a->end_s - st->last_dur)
        return last_end;
    return a->end_s;
}

static void describe_result(const struct prep_args *a, int64_t total, int64_t nface, int ntracks,
                            const struct decoder_stats *st, double end_s, struct sbuf *reason)
{
    double ratio = total ? (double)nface / total : 0;
    if (total == 0)
        sbuf_addf(reason, "no video frames in [%.3f, %.3f) s", a->start_s, a->end_s);
    else
        sbuf_addf(reason, "face in %lld of %lld frames (%.1f%%)", (long long)nface, (long long)total, 100 * ratio);
    if (ntracks > 1)
        sbuf_addf(reason, ", one subject of %d faces followed", ntracks);
    if (total && !(nface > 0 && ratio >= a->min_face_ratio))
        sbuf_addf(reason, ", below the minimum of %.0f%% ([prep] min_face_ratio)", 100 * a->min_face_ratio);
    if (st->read_error)
        sbuf_addf(reason, "; the file ends early (%s)", st->read_error_msg);
    if (st->decode_errors)
        sbuf_addf(reason, "; %lld damaged packets skipped", (long long)st->decode_errors);
    if (end_s < a->end_s && !st->read_error)
        sbuf_addf(reason, "; the frames end at %.3f s, before the clip's end (%.3f s)", end_s, a->end_s);
}

int job_prep(struct job_ctx *ctx)
{
    struct prep_args a;
    int rc = parse_args(ctx, &a);
    if (rc)
        return rc;
    struct dlibc_detector *det;
    struct dlibc_predictor *sp;
    if ((rc = worker_models(ctx, a.model, &det, &sp)) != 0) /* once per worker, not the job's time */
        return rc;
    double t_start = mono_s();
    struct prep_times tm = {0};
    char *dup1 = xstrdup(a.out_dir), *dup2 = xstrdup(a.out_dir);
    const char *parent = dirname(dup1), *base = basename(dup2);
    struct sbuf tmp = {0}, reason = {0};
    sbuf_addf(&tmp, "%s/.tmp-%s-%d", parent, base, (int)getpid());
    struct prep_scan s = {.ctx = ctx, .a = &a, .tm = &tm, .threads_min = a.threads};
    scratch_init(&s.crops, tmp.s, ".crops", (size_t)a.size * a.size * 3);
    scratch_init(&s.recs, tmp.s, ".faces", sizeof(struct face_scratch));
    s.crop = xmalloc((size_t)a.size * a.size * 3);
    int64_t *crop_at = NULL;

    if ((rc = mkdir_p(parent, 0755)) != 0) {
        set_io_error(ctx, rc, "cannot create the output directory", parent);
        goto out;
    }
    remove_stale_tmp(parent, base);
    if (mkdir(tmp.s, 0755) != 0) {
        rc = -errno;
        set_io_error(ctx, rc, "cannot create", tmp.s);
        goto out;
    }

    /* scan */
    struct scan_stats st;
    struct decoder_stats ds = {0};
    struct track_stats ts = {0};
    int ntracks = 0, subject = -1;
    int nranges = prep_ranges_plan(&a), used = 1;
    if (nranges > 0)
        rc = run_scan_ranges(ctx, &a, nranges, det, sp, &s, &st, &ds, &ts, &ntracks, &subject, &used);
    else
        rc = run_scan(ctx, &a, det, sp, &s, &st, &ds, &ts, &ntracks, &subject);
    if (rc)
        goto out;
    tm.decode = st.decode_s;
    tm.detect = st.track_s;

    /* subject */
    int64_t nface = 0;
    crop_at = xmalloc(sizeof *crop_at * (size_t)(s.nframes + 1));
    for (int64_t i = 0; i < s.nrefs; i++)
        if (s.refs[i].track == subject && s.refs[i].aligned)
            crop_at[nface++] = i;
    int64_t total = s.nframes;
    double ratio = total ? (double)nface / total : 0;
    int usable = total > 0 && nface > 0 && ratio >= a.min_face_ratio;
    double end_s = decoded_end(&a, &st);
    describe_result(&a, total, nface, ntracks, &ds, end_s, &reason);

    /* outputs */
    if (usable) {
        double t0 = mono_s();
        rc = write_faces(&a, &s, subject, end_s, tmp.s);
        tm.write += mono_s() - t0;
        if (!rc)
            rc = write_frames(&a, &s.crops, crop_at, (int)nface, tmp.s, &tm);
        t0 = mono_s();
        if (!rc)
            rc = sync_dir(tmp.s);
        if (!rc)
            rc = publish(tmp.s, a.out_dir);
        if (!rc)
            rc = fsync_path(parent);
        tm.write += mono_s() - t0;
        if (rc) {
            set_io_error(ctx, rc, "cannot write the clip's outputs to", a.out_dir);
            goto out;
        }
    } else {
        /* nothing to keep; an output from an older run of this clip must not
         * contradict its new state */
        remove_tree(a.out_dir);
    }

    kv_set(&ctx->result, "state", usable ? "usable" : "unusable");
    kv_set(&ctx->result, "reason", reason.s);
    kv_setf(&ctx->result, "frames_total", "%lld", (long long)total);
    kv_setf(&ctx->result, "frames_face", "%lld", (long long)nface);
    kv_setf(&ctx->result, "face_ratio", "%.6f", ratio);
    if (usable) {
        kv_set(&ctx->result, "out_dir", a.out_dir);
        kv_setf(&ctx->result, "out_frames", "%d", a.frames);
        kv_setf(&ctx->result, "out_size", "%d", a.size);
    }
    if (total) {
        kv_setf(&ctx->result, "decoded_start_s", "%.17g", st.first_t);
        kv_setf(&ctx->result, "decoded_end_s", "%.17g", end_s);
    }
    kv_setf(&ctx->result, "tracks", "%d", ntracks);
    kv_setf(&ctx->result, "searches", "%lld", (long long)ts.full_searches);
    kv_setf(&ctx->result, "near_searches", "%lld", (long long)ts.near_searches);
    kv_setf(&ctx->result, "followed", "%lld", (long long)ts.followed);
    kv_setf(&ctx->result, "follow_dropped", "%lld", (long long)ts.follow_dropped);
    kv_setf(&ctx->result, "search_s", "%.4f", ts.search_s);
    kv_setf(&ctx->result, "near_s", "%.4f", ts.near_s);
    kv_setf(&ctx->result, "landmarks_s", "%.4f", ts.landmarks_s);
    kv_set(&ctx->result, "detect", a.track.detect == TRACK_EVERY_FRAME ? "every_frame" : "fast");
    kv_setf(&ctx->result, "threads", "%d", a.threads);
    kv_setf(&ctx->result, "threads_min", "%d", s.threads_min);
    kv_setf(&ctx->result, "ranges", "%d", used);
    kv_setf(&ctx->result, "decode_s", "%.4f", tm.decode);
    kv_setf(&ctx->result, "detect_s", "%.4f", tm.detect);
    kv_setf(&ctx->result, "align_s", "%.4f", tm.align);
    kv_setf(&ctx->result, "write_s", "%.4f", tm.write);
    kv_setf(&ctx->result, "total_s", "%.4f", mono_s() - t_start);
    kv_setf(&ctx->result, "decode_errors", "%lld", (long long)ds.decode_errors);
    kv_setf(&ctx->result, "preroll_packets", "%lld", (long long)ds.preroll_packets);
    rc = 0;
out:
    scratch_free(&s.crops);
    scratch_free(&s.recs);
    remove_tree(tmp.s); /* after a successful publish it holds nothing (or is gone) */
    frame_converter_free(s.conv);
    free(s.crop);
    free(s.refs);
    free(s.frames);
    free(crop_at);
    free(dup1);
    free(dup2);
    sbuf_free(&tmp);
    sbuf_free(&reason);
    return rc;
}
