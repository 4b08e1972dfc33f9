/* Probing movie files with libavformat/libavcodec (see media.h). */
#include "media.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/log.h>

/* The last error FFmpeg logged, so that a failure can say what FFmpeg saw
 * ("moov atom not found") and not only the generic error code. */
static char last_av_error[256];

static void av_log_capture(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level <= AV_LOG_ERROR) {
        va_list copy;
        va_copy(copy, vl);
        int prefix = 0;
        av_log_format_line(avcl, level, fmt, copy, last_av_error, sizeof last_av_error, &prefix);
        va_end(copy);
        last_av_error[strcspn(last_av_error, "\n")] = '\0';
    }
    av_log_default_callback(avcl, level, fmt, vl);
}

static void add_ffmpeg_detail(char *err, size_t errlen)
{
    if (!last_av_error[0])
        return;
    size_t n = strlen(err);
    /* Drop the "[mov,mp4 @ 0x...] " prefix: the address means nothing to a user. */
    const char *msg = last_av_error;
    if (*msg == '[' && strstr(msg, "] "))
        msg = strstr(msg, "] ") + 2;
    snprintf(err + n, errlen - n, " [FFmpeg: %s]", msg);
}

int media_display_rotation(const void *matrix, size_t size)
{
    if (!matrix || size < 9 * sizeof(int32_t))
        return 0;
    double ccw = av_display_rotation_get(matrix);
    if (isnan(ccw))
        return 0;
    int cw = (int)lrint(-ccw);
    cw = ((cw % 360) + 360) % 360;
    return (cw + 45) / 90 % 4 * 90;
}

static double q2d_or0(AVRational r) { return r.den && r.num ? av_q2d(r) : 0.0; }

static int is_still_image_format(const AVInputFormat *f)
{
    size_t n = strlen(f->name);
    return !strcmp(f->name, "image2") || (n > 5 && !strcmp(f->name + n - 5, "_pipe"));
}

void media_index_scan(const struct AVStream *st, int64_t file_size, struct media_index *ix)
{
    memset(ix, 0, sizeof *ix);
    ix->entries = avformat_index_get_entries_count(st);
    for (int64_t i = 0; i < ix->entries; i++) {
        const AVIndexEntry *e = avformat_index_get_entry((AVStream *)st, (int)i);
        if (!e || (e->flags & AVINDEX_DISCARD_FRAME))
            continue;
        ix->listed++;
        if (file_size > 0 && e->pos + e->size > file_size)
            ix->past_end++;
    }
}

/* What one pass over the packets found. */
struct pass {
    int64_t frames;  /* video packets, less those the edit list discards and any flagged corrupt */
    int64_t packets; /* video packets */
    int sent;        /* packets given to the decoder */
    int got_frame;   /* the decoder gave a frame */
    int read_ret;    /* how reading ended: AVERROR_EOF, or an error */
};

/* One pass over the packets from where the file is open: decodes until the
 * first video frame (MEDIA_DECODE_FIRST) and counts the video frames
 * (MEDIA_COUNT_FRAMES). No seek back to the start between the two: in
 * FFmpeg 5.1 a seek to INT64_MIN in the default stream's time base
 * overflows in the mov demuxer when that time base is 1/1000000 or finer and
 * the stream has a PTS offset (B-frames), and "the start" becomes the last
 * sample: the count read one packet (frame_count 1 for 112 frames). */
static int read_pass(AVFormatContext *fmt, int vidx, int flags, int64_t file_size,
                     void (*progress)(void *ud, double frac), void *ud, struct pass *ps, char *err, size_t errlen)
{
    memset(ps, 0, sizeof *ps);
    ps->read_ret = AVERROR_EOF;
    AVStream *vs = fmt->streams[vidx];
    const AVCodec *dec = NULL;
    AVCodecContext *cc = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    int rc = -ENOMEM;
    if (!pkt || !frame)
        goto out;
    if (flags & MEDIA_DECODE_FIRST) {
        dec = avcodec_find_decoder(vs->codecpar->codec_id);
        if (!dec) {
            snprintf(err, errlen, "this FFmpeg has no decoder for the video codec %s",
                     avcodec_get_name(vs->codecpar->codec_id));
            rc = -EINVAL;
            goto out;
        }
        if (!(cc = avcodec_alloc_context3(dec)))
            goto out;
        if (avcodec_parameters_to_context(cc, vs->codecpar) < 0 || avcodec_open2(cc, dec, NULL) < 0) {
            snprintf(err, errlen, "cannot open the %s decoder", dec->name);
            rc = -EINVAL;
            goto out;
        }
    }
    int decoding = cc != NULL, counting = flags & MEDIA_COUNT_FRAMES;
    int64_t last_report = 0;
    while (decoding || counting) {
        int ret = av_read_frame(fmt, pkt);
        if (ret < 0) {
            ps->read_ret = ret;
            break;
        }
        if (pkt->stream_index == vidx) {
            ps->packets++;
            /* Packets an edit list discards never become frames. */
            if (!(pkt->flags & (AV_PKT_FLAG_DISCARD | AV_PKT_FLAG_CORRUPT)))
                ps->frames++;
            if (decoding) {
                ps->sent++;
                if (avcodec_send_packet(cc, pkt) >= 0 && avcodec_receive_frame(cc, frame) >= 0) {
                    ps->got_frame = 1;
                    decoding = 0;
                } else if (ps->sent >= 512) {
                    decoding = counting = 0; /* plenty for any decoder delay: it does not decode */
                }
            }
        }
        if (progress && counting && pkt->pos > 0 && pkt->pos - last_report > (1 << 24)) {
            last_report = pkt->pos;
            progress(ud, (double)pkt->pos / (double)file_size);
        }
        av_packet_unref(pkt);
    }
    if (decoding && avcodec_send_packet(cc, NULL) >= 0 && avcodec_receive_frame(cc, frame) >= 0)
        ps->got_frame = 1;
    rc = 0;
    if (cc && !ps->got_frame) {
        snprintf(err, errlen, "no video frame could be decoded (%d %s packets read): the file is damaged or truncated",
                 ps->sent, dec->name);
        rc = -EINVAL;
    }
out:
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    return rc;
}

/* The frame count from a pass, checked against the stream's index where the
 * index lists every frame (MP4/MOV: as many entries as the header's frame
 * count): a file cut short keeps the frames it holds, with a note; a count
 * that disagrees with a complete index, or a read that failed midway, leaves
 * it unknown (-1), with the reason. */
static void set_frame_count(AVStream *vs, int64_t file_size, const struct pass *ps, struct media_info *mi)
{
    char aerr[AV_ERROR_MAX_STRING_SIZE];
    struct media_index ix;
    media_index_scan(vs, file_size, &ix);
    int complete = vs->nb_frames > 0 && ix.entries == vs->nb_frames;
    mi->frame_count = ps->frames;
    if (ix.past_end > 0) {
        snprintf(mi->frame_count_note, sizeof mi->frame_count_note,
                 "the file is cut short: its index lists %lld frames, %lld of them lie past its end; %lld frames "
                 "can be read",
                 (long long)ix.listed, (long long)ix.past_end, (long long)ps->frames);
    } else if (ps->read_ret != AVERROR_EOF) {
        av_strerror(ps->read_ret, aerr, sizeof aerr);
        mi->frame_count = -1;
        int n = snprintf(mi->frame_count_note, sizeof mi->frame_count_note,
                         "not known: reading the file failed after %lld frames (%s)", (long long)ps->frames, aerr);
        if (complete && n > 0 && (size_t)n < sizeof mi->frame_count_note)
            snprintf(mi->frame_count_note + n, sizeof mi->frame_count_note - n, "; its index lists %lld",
                     (long long)ix.listed);
    } else if (complete && ps->frames != ix.listed) {
        mi->frame_count = -1;
        snprintf(mi->frame_count_note, sizeof mi->frame_count_note,
                 "not known: %lld video packets were read (%lld of them frames), but the index lists %lld frames; "
                 "ffprobe -count_frames shows what FFmpeg decodes",
                 (long long)ps->packets, (long long)ps->frames, (long long)ix.listed);
    }
}

int media_probe(const char *path, int flags, struct media_info *mi, void (*progress)(void *ud, double frac), void *ud,
                char *err, size_t errlen)
{
    memset(mi, 0, sizeof *mi);
    mi->frame_count = -1;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s", e == ENOENT ? "no such file" : strerror(e));
        return -e;
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "is a directory, not a video file");
        return -EISDIR;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        return -EINVAL;
    }
    if (sb.st_size == 0) {
        snprintf(err, errlen, "the file is empty (0 bytes): not a video");
        return -EINVAL;
    }

    if (av_log_get_level() > AV_LOG_ERROR)
        av_log_set_level(AV_LOG_ERROR);
    av_log_set_callback(av_log_capture);
    last_av_error[0] = '\0';
    AVFormatContext *fmt = NULL;
    char aerr[AV_ERROR_MAX_STRING_SIZE];
    int ret = avformat_open_input(&fmt, path, NULL, NULL);
    if (ret < 0) {
        av_strerror(ret, aerr, sizeof aerr);
        if (ret == AVERROR(EACCES) || ret == AVERROR(ENOENT)) {
            snprintf(err, errlen, "cannot open: %s", aerr);
            return ret;
        }
        snprintf(err, errlen, "FFmpeg cannot read it as a video (%s): not a video, or damaged/truncated", aerr);
        add_ffmpeg_detail(err, errlen);
        return -EINVAL;
    }
    int rc = 0;
    if (is_still_image_format(fmt->iformat)) {
        snprintf(err, errlen, "a still image (%s), not a video", fmt->iformat->name);
        rc = -EINVAL;
        goto out;
    }
    ret = avformat_find_stream_info(fmt, NULL);
    if (ret < 0) {
        av_strerror(ret, aerr, sizeof aerr);
        snprintf(err, errlen, "FFmpeg cannot read the stream information (%s): the file is damaged or truncated", aerr);
        add_ffmpeg_detail(err, errlen);
        rc = -EINVAL;
        goto out;
    }
    int vidx = -1;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        AVStream *s = fmt->streams[i];
        if (s->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
            mi->audio_streams++;
        if (s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(s->disposition & AV_DISPOSITION_ATTACHED_PIC) &&
            vidx < 0)
            vidx = (int)i;
    }
    if (vidx < 0) {
        snprintf(err, errlen, "no video stream (%u stream%s, %d audio): not a video", fmt->nb_streams,
                 fmt->nb_streams == 1 ? "" : "s", mi->audio_streams);
        rc = -EINVAL;
        goto out;
    }
    AVStream *vs = fmt->streams[vidx];
    if (vs->codecpar->width <= 0 || vs->codecpar->height <= 0) {
        snprintf(err, errlen, "the video stream has no picture size: the file is damaged or truncated");
        rc = -EINVAL;
        goto out;
    }
    snprintf(mi->container, sizeof mi->container, "%s", fmt->iformat->name);
    snprintf(mi->video_codec, sizeof mi->video_codec, "%s", avcodec_get_name(vs->codecpar->codec_id));
    mi->width = vs->codecpar->width;
    mi->height = vs->codecpar->height;
    mi->avg_fps = q2d_or0(vs->avg_frame_rate);
    mi->real_fps = q2d_or0(vs->r_frame_rate);
    if (vs->start_time != AV_NOPTS_VALUE)
        mi->start_time_s = vs->start_time * av_q2d(vs->time_base);
    else if (fmt->start_time != AV_NOPTS_VALUE)
        mi->start_time_s = (double)fmt->start_time / AV_TIME_BASE;
    if (vs->duration != AV_NOPTS_VALUE && vs->duration > 0)
        mi->duration_s = vs->duration * av_q2d(vs->time_base);
    else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
        mi->duration_s = (double)fmt->duration / AV_TIME_BASE;
    size_t sdsize = 0;
    const uint8_t *sd = av_stream_get_side_data(vs, AV_PKT_DATA_DISPLAYMATRIX, &sdsize);
    mi->rotation = media_display_rotation(sd, sdsize);

    if (flags & (MEDIA_DECODE_FIRST | MEDIA_COUNT_FRAMES)) {
        struct pass ps;
        rc = read_pass(fmt, vidx, flags, sb.st_size, progress, ud, &ps, err, errlen);
        if (rc) {
            add_ffmpeg_detail(err, errlen);
            goto out;
        }
        if ((flags & MEDIA_COUNT_FRAMES) && ps.read_ret != AVERROR_EOF && ps.frames == 0) {
            av_strerror(ps.read_ret, aerr, sizeof aerr);
            snprintf(err, errlen, "reading the video failed before the first frame: %s", aerr);
            rc = -EIO;
            goto out;
        }
        if (flags & MEDIA_COUNT_FRAMES)
            set_frame_count(vs, sb.st_size, &ps, mi);
    }
out:
    avformat_close_input(&fmt);
    return rc;
}
