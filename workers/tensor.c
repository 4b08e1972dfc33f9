/* The tensor job: a clip's training tensor (clip.u8) from frames that are
 * already aligned and interpolated, as in a DFEW release's
 * Clip/clip_<S>x<S>_16f/<name>/1.jpg .. 16.jpg. Each frame is decoded by
 * FFmpeg (lib/image.c), scaled to size x size RGB by libswscale (area
 * averaging when it shrinks, as the release's 224 -> 112 needs), and the
 * frames are written as one clip.u8 into out_dir atomically (temporary
 * name, fsync, rename). The frames stay where they are. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libswscale/swscale.h>

#include "clipfiles.h"
#include "clipfmt.h"
#include "image.h"
#include "util.h"
#include "worker.h"

struct tensor_args {
    const char *frames_dir, *out_dir;
    int64_t clip_id;
    int size;
};

static int parse_args(struct job_ctx *ctx, struct tensor_args *a)
{
    const struct kv *kv = ctx->args;
    memset(a, 0, sizeof *a);
    a->frames_dir = kv_get(kv, "frames_dir");
    a->out_dir = kv_get(kv, "out_dir");
    int64_t size = 112;
    if (!a->frames_dir || a->frames_dir[0] != '/')
        return job_bad_arg(ctx, "'frames_dir' must be an absolute path");
    if (!a->out_dir || a->out_dir[0] != '/')
        return job_bad_arg(ctx, "'out_dir' must be an absolute path");
    if (kv_get_i64(kv, "clip_id", &a->clip_id) || a->clip_id <= 0)
        return job_bad_arg(ctx, "no 'clip_id'");
    if (kv_get(kv, "size") && (kv_get_i64(kv, "size", &size) || size < 16 || size > 2048))
        return job_bad_arg(ctx, "'size' must be 16 to 2048 pixels");
    a->size = (int)size;
    return 0;
}

/* img scaled to size x size RGB into dst (size * size * 3 bytes). */
static int scale_rgb(const struct image *img, int size, uint8_t *dst)
{
    if (img->w == size && img->h == size) {
        memcpy(dst, img->rgb, (size_t)size * size * 3);
        return 0;
    }
    int flags = img->w >= size && img->h >= size ? SWS_AREA : SWS_BICUBIC;
    struct SwsContext *sws = sws_getContext(img->w, img->h, AV_PIX_FMT_RGB24, size, size, AV_PIX_FMT_RGB24,
                                            flags | SWS_ACCURATE_RND, NULL, NULL, NULL);
    if (!sws)
        return -ENOMEM;
    const uint8_t *src[4] = {img->rgb, NULL, NULL, NULL};
    const int src_stride[4] = {img->w * 3, 0, 0, 0};
    uint8_t *out[4] = {dst, NULL, NULL, NULL};
    const int out_stride[4] = {size * 3, 0, 0, 0};
    int rows = sws_scale(sws, src, src_stride, 0, img->h, out, out_stride);
    sws_freeContext(sws);
    return rows == size ? 0 : -EIO;
}

int job_tensor(struct job_ctx *ctx)
{
    struct tensor_args a;
    int rc = parse_args(ctx, &a);
    if (rc)
        return rc;
    double t0 = mono_s();
    struct frame_list fl = {0};
    rc = clip_tim_frames(a.frames_dir, &fl);
    if (rc || fl.n == 0) {
        snprintf(ctx->error, sizeof ctx->error,
                 "no frames in %s (%s): was the DFEW release moved or deleted since it was imported? import it again "
                 "from where it is now (dfewctl import dfew DIR)",
                 a.frames_dir, rc ? strerror(-rc) : "no 1.jpg, 2.jpg, ... there");
        ctx->retryable = 0;
        frame_list_free(&fl);
        return rc ? rc : -ENOENT;
    }
    const size_t frame_bytes = (size_t)a.size * a.size * 3;
    uint8_t *pixels = xmalloc(frame_bytes * fl.n);
    int src_w = 0, src_h = 0;
    for (size_t i = 0; i < fl.n && !rc; i++) {
        struct image img = {0};
        char err[512] = "";
        rc = image_load_rgb(fl.path[i], &img, err, sizeof err);
        if (rc) {
            if (!err[0]) /* image_load_rgb names the file in err */
                snprintf(err, sizeof err, "%s: %s", fl.path[i], strerror(-rc));
            snprintf(ctx->error, sizeof ctx->error, "frame %zu of clip %lld, %s; replace the file and "
                     "'dfewctl retry %lld'", i + 1, (long long)a.clip_id, err, (long long)ctx->id);
            ctx->retryable = 0;
            break;
        }
        if (i == 0)
            src_w = img.w, src_h = img.h;
        rc = scale_rgb(&img, a.size, pixels + i * frame_bytes);
        image_free(&img);
        if (rc)
            snprintf(ctx->error, sizeof ctx->error, "cannot scale %s to %dx%d (libswscale)", fl.path[i], a.size,
                     a.size);
    }
    char *buf = NULL;
    size_t len = 0;
    struct sbuf path = {0};
    if (!rc) {
        FILE *mem = open_memstream(&buf, &len);
        rc = mem ? clip_write_header(mem, (int)fl.n, a.size, a.size, 3) : -ENOMEM;
        if (!rc && fwrite(pixels, 1, frame_bytes * fl.n, mem) != frame_bytes * fl.n)
            rc = -ENOMEM;
        if (mem && fclose(mem) != 0 && !rc)
            rc = -ENOMEM;
        if (rc)
            snprintf(ctx->error, sizeof ctx->error, "out of memory for the tensor of clip %lld", (long long)a.clip_id);
    }
    if (!rc) {
        sbuf_addf(&path, "%s/clip.u8", a.out_dir);
        rc = mkdir_p(a.out_dir, 0755);
        if (!rc)
            rc = write_file_atomic(path.s, buf, len);
        if (rc) {
            snprintf(ctx->error, sizeof ctx->error, "cannot write %s: %s%s", path.s, strerror(-rc),
                     rc == -ENOSPC ? " (the disk is full: free space, the job is retried)" : "");
            ctx->retryable = rc != -EACCES && rc != -EROFS;
        }
    }
    if (!rc) {
        kv_set(&ctx->result, "path", path.s);
        kv_setf(&ctx->result, "frames", "%zu", fl.n);
        kv_setf(&ctx->result, "size", "%d", a.size);
        kv_setf(&ctx->result, "src_width", "%d", src_w);
        kv_setf(&ctx->result, "src_height", "%d", src_h);
        kv_setf(&ctx->result, "total_s", "%.4f", mono_s() - t0);
    }
    sbuf_free(&path);
    free(buf);
    free(pixels);
    frame_list_free(&fl);
    return rc;
}
