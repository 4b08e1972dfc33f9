/* The prep job: one clip of a movie from decoded frames to training input.
 * Decode [start, end) -> find the subject's face and 68 landmarks in every
 * frame -> usable when at least min_face_ratio of the frames show it ->
 * align each face frame to the five-point template -> interpolate the face
 * frames to `frames` frames (TIM or linear) -> write the frames as images,
 * faces.bin and clip.u8 into a temporary directory that is renamed into
 * place only when complete. Every parameter comes from the job's arguments
 * (fixed when it was queued), so running a job again writes the same bytes.
 * The dlib models are loaded once per worker process and kept. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include "face.h"
#include "imgenc.h"
#include "log.h"
#include "tim.h"
#include "util.h"
#include "worker.h"

/* Loaded on the first prep job, kept for the life of the worker. */
static struct {
    struct dlibc_detector *det;
    struct dlibc_predictor *sp;
    char *sp_path;
} models;

struct prep_args {
    const char *path, *out_dir, *model;
    int64_t clip_id;
    double start_s, end_s;
    int frames, size, template_size, upsample;
    int keep_aligned; /* write every aligned face frame to aligned/NNNNN.<ext> */
    double min_face_ratio;
    enum tim_mode interp;
    enum img_format format;
    double tpl[10]; /* template scaled to size */
};

struct prep_times {
    double decode, detect, align, write;
};

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
    return 0;
}

static int load_models(struct job_ctx *ctx, const char *model)
{
    char err[1024] = "";
    int rc;
    if (!models.det && (rc = dlibc_detector_new(&models.det, err, sizeof err)) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "%s", err);
        return rc;
    }
    if (models.sp && !strcmp(models.sp_path, model))
        return 0;
    dlibc_predictor_free(models.sp);
    free(models.sp_path);
    models.sp = NULL;
    models.sp_path = NULL;
    double t0 = mono_s();
    rc = dlibc_predictor_load(model, &models.sp, err, sizeof err);
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error,
                 "%s; install Debian's libdlib-data (scripts/setup-deps.sh), then 'dfewctl retry %lld' (a model "
                 "elsewhere: [prep] landmark_model in dfew.conf, for clips queued after the change)",
                 err, (long long)ctx->id);
        ctx->retryable = rc == -ENOMEM;
        return rc;
    }
    models.sp_path = xstrdup(model);
    log_info(ctx->id, "landmark model %s loaded in %.2f s (dlib %s)", model, mono_s() - t0, dlibc_version());
    return 0;
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

static int close_file(FILE *f)
{
    int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -(errno ? errno : EIO);
    if (fclose(f) != 0 && !rc)
        rc = -(errno ? errno : EIO);
    return rc;
}

/* Interpolates the n aligned face frames in `aligned` (n x size x size x 3)
 * to a->frames frames and writes them as images and as clip.u8; with
 * keep_aligned also every aligned face frame, aligned/00001.<ext> ... in time
 * order (the DFEW release's clip_<S>x<S> set, see lib/clipfiles.h). */
static int write_outputs(const struct prep_args *a, int aligned_fd, int n, const char *tmp, struct prep_times *tm)
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
    double t_aligned = 0;
    if (!rc)
        rc = img_encoder_new(a->format, &enc);
    if (!rc && a->keep_aligned) {
        sbuf_addf(&path, "%s/aligned", tmp);
        if (mkdir(path.s, 0755) != 0)
            rc = -errno;
    }
    /* acc[j] += w[j][i] * frame_i, one input frame at a time (memory: M frames) */
    for (int i = 0; i < n && !rc; i++) {
        ssize_t got = pread(aligned_fd, frame, P, (off_t)i * P);
        if (got != (ssize_t)P) {
            rc = got < 0 ? -errno : -EIO;
            break;
        }
        if (a->keep_aligned) {
            double ta = mono_s();
            sbuf_reset(&path);
            sbuf_addf(&path, "%s/aligned/%05d.%s", tmp, i + 1, img_format_ext(a->format));
            rc = img_write_file(enc, path.s, frame, a->size, a->size, a->size * 3);
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
        rc = img_write_file(enc, path.s, out + (size_t)j * P, a->size, a->size, a->size * 3);
    }
    img_encoder_free(enc);
    if (!rc) {
        sbuf_reset(&path);
        sbuf_addf(&path, "%s/clip.u8", tmp);
        FILE *f = fopen(path.s, "wb");
        rc = f ? clip_write_header(f, M, a->size, a->size, 3) : -errno;
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

int job_prep(struct job_ctx *ctx)
{
    struct prep_args a;
    int rc = parse_args(ctx, &a);
    if (rc)
        return rc;
    if ((rc = load_models(ctx, a.model)) != 0)
        return rc;
    double t_start = mono_s();
    struct prep_times tm = {0};

    char *dup1 = xstrdup(a.out_dir), *dup2 = xstrdup(a.out_dir);
    const char *parent = dirname(dup1), *base = basename(dup2);
    struct sbuf tmp = {0}, p = {0};
    sbuf_addf(&tmp, "%s/.tmp-%s-%d", parent, base, (int)getpid());
    struct decoder *dec = NULL;
    struct face_tracker *tr = NULL;
    FILE *faces = NULL;
    int aligned_fd = -1;
    uint8_t *aligned = xmalloc((size_t)a.size * a.size * 3);
    char err[1024] = "";

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

    rc = decoder_open(a.path, DECODE_GRAY, &dec, err, sizeof err);
    if (!rc)
        rc = decoder_seek(dec, a.start_s, err, sizeof err);
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error, "%s%s", err,
                 rc == -ENOENT ? " (moved or deleted since it was submitted? submit it again from where it is now)"
                               : "");
        ctx->retryable = rc == -EIO || rc == -ENOMEM;
        goto out;
    }
    int width = 0, height = 0;
    decoder_geometry(dec, &width, &height, NULL, NULL);
    struct face_opts fo = FACE_OPTS_DEFAULT;
    fo.upsample = a.upsample;
    if ((rc = face_tracker_new(models.det, models.sp, &fo, &tr)) != 0)
        goto out;

    sbuf_addf(&p, "%s/faces.bin", tmp.s);
    faces = fopen(p.s, "wb");
    struct faces_header fh = {(uint32_t)width, (uint32_t)height, 0, a.start_s, a.end_s};
    rc = faces ? faces_write_header(faces, &fh) : -errno;
    sbuf_reset(&p);
    sbuf_addf(&p, "%s/.aligned", tmp.s);
    if (!rc && (aligned_fd = open(p.s, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        rc = -errno;
    if (rc) {
        set_io_error(ctx, rc, "cannot write in", tmp.s);
        goto out;
    }
    unlink(p.s); /* scratch space: gone with the descriptor */

    int64_t total = 0, nface = 0;
    double last_report = mono_s();
    double first_t = a.start_s, last_end = a.start_s, last_dur = 0; /* the decoded frames' range */
    int at_end = 0; /* the movie's frames ended inside the clip */
    for (;;) {
        double t0 = mono_s();
        struct decoded_frame f;
        int got = decoder_next(dec, &f, err, sizeof err);
        double t1 = mono_s();
        tm.decode += t1 - t0;
        if (got < 0) {
            snprintf(ctx->error, sizeof ctx->error, "%s: decoding failed after %lld frames of the clip: %s", a.path,
                     (long long)total, err);
            ctx->retryable = got == -ENOMEM;
            rc = got;
            goto out;
        }
        if (got == 0 || f.t >= a.end_s - 1e-6) {
            at_end = got == 0;
            break;
        }
        if (total == 0)
            first_t = f.t;
        last_end = f.t + f.duration;
        last_dur = f.duration;
        struct face_obs obs;
        if ((rc = face_locate(tr, &f, &obs)) != 0) {
            snprintf(ctx->error, sizeof ctx->error, "dlib failed on frame %lld (t = %.3f s): %s", (long long)total,
                     f.t, strerror(-rc));
            ctx->retryable = rc == -ENOMEM;
            goto out;
        }
        double t2 = mono_s();
        tm.detect += t2 - t1;
        struct face_record rec = {(uint32_t)total, (uint32_t)obs.found, f.t, {0}, 0, (uint32_t)obs.faces_in_frame,
                                  {0}};
        if (obs.found) {
            rec.box[0] = (float)obs.box.x0;
            rec.box[1] = (float)obs.box.y0;
            rec.box[2] = (float)obs.box.x1;
            rec.box[3] = (float)obs.box.y1;
            rec.score = (float)obs.box.score;
            memcpy(rec.pts, obs.pts, sizeof rec.pts);
            double five[10], m[6];
            align_five_points(obs.pts, five);
            rc = align_similarity(five, a.tpl, 5, m);
            if (!rc)
                rc = align_warp(f.rgb, f.width, f.height, f.rgb_stride, m, aligned, a.size);
            if (rc) {
                /* degenerate landmarks (all on one point): not a usable face */
                rec.found = 0;
                rc = 0;
            }
        }
        double t3 = mono_s();
        tm.align += t3 - t2;
        if (rec.found) {
            size_t P = (size_t)a.size * a.size * 3;
            if (pwrite(aligned_fd, aligned, P, (off_t)(nface * P)) != (ssize_t)P)
                rc = -(errno ? errno : ENOSPC);
            nface++;
        }
        if (!rc)
            rc = faces_write_record(faces, &rec);
        if (rc) {
            set_io_error(ctx, rc, "cannot write in", tmp.s);
            goto out;
        }
        tm.write += mono_s() - t3;
        total++;
        if (t3 - last_report > 0.5) {
            last_report = t3;
            char msg[96];
            snprintf(msg, sizeof msg, "face in %lld of %lld frames", (long long)nface, (long long)total);
            job_progress(ctx, fmin(0.99, (f.t - a.start_s) / (a.end_s - a.start_s)), msg);
        }
    }
    const struct decoder_stats *st = decoder_stats(dec);
    double ratio = total ? (double)nface / total : 0;
    int usable = total > 0 && nface > 0 && ratio >= a.min_face_ratio;
    struct sbuf reason = {0};
    if (total == 0)
        sbuf_addf(&reason, "no video frames in [%.3f, %.3f) s", a.start_s, a.end_s);
    else
        sbuf_addf(&reason, "face in %lld of %lld frames (%.1f%%)", (long long)nface, (long long)total, 100 * ratio);
    if (total && !usable)
        sbuf_addf(&reason, ", below the minimum of %.0f%% ([prep] min_face_ratio)", 100 * a.min_face_ratio);
    if (st->read_error)
        sbuf_addf(&reason, "; the file ends early (%s)", st->read_error_msg);
    if (st->decode_errors)
        sbuf_addf(&reason, "; %lld damaged packets skipped", (long long)st->decode_errors);
    /* The frames cover the clip to its end unless the movie's ended inside it
     * by more than a frame (a file cut short, a clip past the last frame):
     * then the clip ends where they did (dfewd records it as the clip's end). */
    double decoded_end = a.end_s;
    if (at_end && total > 0 && last_end < a.end_s - last_dur) {
        decoded_end = last_end;
        if (!st->read_error)
            sbuf_addf(&reason, "; the frames end at %.3f s, before the clip's end (%.3f s)", last_end, a.end_s);
    }

    if (usable) {
        fh.records = (uint64_t)total;
        fh.end_s = decoded_end;
        double t0 = mono_s();
        rc = faces_finish(faces, &fh);
        int c = close_file(faces);
        faces = NULL;
        rc = rc ? rc : c;
        tm.write += mono_s() - t0;
        if (!rc)
            rc = write_outputs(&a, aligned_fd, (int)nface, tmp.s, &tm);
        t0 = mono_s();
        if (!rc)
            rc = fsync_path(tmp.s);
        if (!rc)
            rc = publish(tmp.s, a.out_dir);
        if (!rc)
            rc = fsync_path(parent);
        tm.write += mono_s() - t0;
        if (rc) {
            set_io_error(ctx, rc, "cannot write the clip's outputs to", a.out_dir);
            sbuf_free(&reason);
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
    if (total > 0) {
        kv_setf(&ctx->result, "decoded_start_s", "%.17g", first_t);
        kv_setf(&ctx->result, "decoded_end_s", "%.17g", decoded_end);
    }
    if (usable) {
        kv_set(&ctx->result, "out_dir", a.out_dir);
        kv_setf(&ctx->result, "out_frames", "%d", a.frames);
        kv_setf(&ctx->result, "out_size", "%d", a.size);
    }
    kv_setf(&ctx->result, "decode_s", "%.4f", tm.decode);
    kv_setf(&ctx->result, "detect_s", "%.4f", tm.detect);
    kv_setf(&ctx->result, "align_s", "%.4f", tm.align);
    kv_setf(&ctx->result, "write_s", "%.4f", tm.write);
    kv_setf(&ctx->result, "total_s", "%.4f", mono_s() - t_start);
    kv_setf(&ctx->result, "decode_errors", "%lld", (long long)st->decode_errors);
    sbuf_free(&reason);
    rc = 0;
out:
    if (faces)
        fclose(faces);
    if (aligned_fd >= 0)
        close(aligned_fd);
    remove_tree(tmp.s); /* after a successful publish it holds nothing (or is gone) */
    face_tracker_free(tr);
    decoder_close(dec);
    free(aligned);
    free(dup1);
    free(dup2);
    sbuf_free(&tmp);
    sbuf_free(&p);
    return rc;
}
