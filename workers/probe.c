/* The probe job: opens a movie with libavformat and reports its container,
 * duration, start time, video codec, size, frame rates, rotation and frame
 * count (or why the count is not known, or what is odd about it: a file cut
 * short). Proves the video decodes by decoding its first frame. A file that
 * is not a readable video fails permanently, with the reason, and so does a
 * file that is not the content submitted: its size and modification time
 * are checked against the submission's (then its SHA-256 when they differ),
 * before and after probing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"

#include "media.h"
#include "worker.h"

static int64_t mtime_ns_of(const struct stat *sb) { return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec; }

/* Fails the job (permanently) when path is not what was submitted. *sb
 * receives what it is now. Jobs queued by an older dfew carry no facts to
 * check: nothing is checked then. */
static int check_unchanged(struct job_ctx *ctx, const char *path, struct stat *sb)
{
    const char *sha = kv_get(ctx->args, "sha256");
    int64_t size = -1, mtime = -1;
    kv_get_i64(ctx->args, "size_bytes", &size);
    kv_get_i64(ctx->args, "mtime_ns", &mtime);
    if (stat(path, sb) != 0)
        return 0; /* media_probe says what is wrong with the path */
    const char *what = NULL;
    char facts[160] = "";
    if (size >= 0 && sb->st_size != size) {
        what = "its size";
        snprintf(facts, sizeof facts, "%lld bytes when submitted, %lld now", (long long)size,
                 (long long)sb->st_size);
    } else if (sha && (mtime < 0 || mtime_ns_of(sb) != mtime)) {
        char now[65];
        uint64_t n = 0;
        int rc = sha256_file(path, now, &n);
        if (rc)
            return 0; /* unreadable: media_probe says so */
        if (strcmp(now, sha)) {
            what = "its content";
            snprintf(facts, sizeof facts, "SHA-256 %.16s... when submitted, %.16s... now", sha, now);
        }
    }
    if (!what)
        return 0;
    ctx->retryable = 0;
    snprintf(ctx->error, sizeof ctx->error,
             "%s changed since it was submitted (%s: %s); nothing was recorded. Submit the file again to add what it "
             "holds now; submitting the original content again (from any path) probes that",
             path, what, facts);
    return -ESTALE;
}

static void on_progress(void *ud, double frac) { job_progress(ud, frac, "counting frames"); }

int job_probe(struct job_ctx *ctx)
{
    const char *path = kv_get(ctx->args, "path");
    if (!path || !*path) {
        snprintf(ctx->error, sizeof ctx->error, "probe job has no 'path' argument");
        ctx->retryable = 0;
        return -EINVAL;
    }
    struct stat before, after;
    int rc = check_unchanged(ctx, path, &before);
    if (rc)
        return rc;
    struct media_info mi;
    char why[1024] = "";
    rc = media_probe(path, MEDIA_COUNT_FRAMES | MEDIA_DECODE_FIRST, &mi, on_progress, ctx, why, sizeof why);
    if (rc) {
        /* Damaged input, a missing file or a wrong type will not get better by retrying. */
        ctx->retryable = rc == -EIO || rc == -ENOMEM;
        snprintf(ctx->error, sizeof ctx->error, "%s: %s%s", path, why,
                 rc == -ENOENT ? " (moved or deleted since it was submitted? submit it again from where it is now)"
                 : ctx->retryable ? "" : "; check the file (ffprobe shows what FFmpeg sees) and submit a readable video");
        return rc;
    }
    /* The facts are those of the file checked above only if it did not
     * change while it was read. */
    if (stat(path, &after) != 0 || after.st_ino != before.st_ino || after.st_dev != before.st_dev ||
        after.st_size != before.st_size || mtime_ns_of(&after) != mtime_ns_of(&before)) {
        ctx->retryable = 1;
        snprintf(ctx->error, sizeof ctx->error,
                 "%s changed while it was probed (is it still being written?); the probe runs again", path);
        return -EAGAIN;
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
