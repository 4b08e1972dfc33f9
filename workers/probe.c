/* The probe job: opens a movie with libavformat and reports its container,
 * duration, start time, video codec, size, frame rates, rotation and frame
 * count (or why the count is not known, or what is odd about it: a file cut
 * short). Proves the video decodes by decoding its first frame. A file that
 * is not a readable video fails permanently, with the reason. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "media.h"
#include "worker.h"

static void on_progress(void *ud, double frac) { job_progress(ud, frac, "counting frames"); }

int job_probe(struct job_ctx *ctx)
{
    const char *path = kv_get(ctx->args, "path");
    if (!path || !*path) {
        snprintf(ctx->error, sizeof ctx->error, "probe job has no 'path' argument");
        ctx->retryable = 0;
        return -EINVAL;
    }
    struct media_info mi;
    char why[1024] = "";
    int rc = media_probe(path, MEDIA_COUNT_FRAMES | MEDIA_DECODE_FIRST, &mi, on_progress, ctx, why, sizeof why);
    if (rc) {
        /* Damaged input, a missing file or a wrong type will not get better by retrying. */
        ctx->retryable = rc == -EIO || rc == -ENOMEM;
        snprintf(ctx->error, sizeof ctx->error, "%s: %s%s", path, why,
                 rc == -ENOENT ? " (moved or deleted since it was submitted? submit it again from where it is now)"
                 : ctx->retryable ? "" : "; check the file (ffprobe shows what FFmpeg sees) and submit a readable video");
        return rc;
    }
    kv_set(&ctx->result, "container", mi.container);
    kv_setf(&ctx->result, "duration_s", "%.6f", mi.duration_s);
    kv_setf(&ctx->result, "start_time_s", "%.6f", mi.start_time_s);
    kv_set(&ctx->result, "video_codec", mi.video_codec);
    kv_setf(&ctx->result, "width", "%d", mi.width);
    kv_setf(&ctx->result, "height", "%d", mi.height);
    kv_setf(&ctx->result, "avg_fps", "%.6f", mi.avg_fps);
    kv_setf(&ctx->result, "real_fps", "%.6f", mi.real_fps);
    kv_setf(&ctx->result, "rotation", "%d", mi.rotation);
    if (mi.frame_count >= 0) /* absent: not known (the note says why) */
        kv_setf(&ctx->result, "frame_count", "%lld", (long long)mi.frame_count);
    if (mi.frame_count_note[0])
        kv_set(&ctx->result, "frame_count_note", mi.frame_count_note);
    kv_setf(&ctx->result, "audio_streams", "%d", mi.audio_streams);
    return 0;
}
