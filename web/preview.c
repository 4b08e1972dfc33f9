/* The preview an annotator watches: exactly a clip's frame range of its
 * source movie (the frames with start_s <= t < end_s, as the prep job
 * decodes them, upright), scaled down, encoded as H.264 (libavcodec's
 * libx264, else its other H.264 encoder) in an MP4 with its index first
 * (faststart), so a browser plays it at once. No audio: votes are on faces.
 * Written to a temporary name beside the target, then renamed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "decode.h"
#include "util.h"
#include "web.h"

struct enc {
    AVFormatContext *oc;
    AVCodecContext *cc;
    AVStream *st;
    AVFrame *yuv;
    AVPacket *pkt;
    struct SwsContext *sws;
    int64_t last_pts;
    int64_t last_dur; /* the last frame sent's duration, ms */
};

static int drain(struct enc *e)
{
    int rc;
    while ((rc = avcodec_receive_packet(e->cc, e->pkt)) == 0) {
        /* without a duration the MP4's edit list ends where the last frame
         * starts, and players and ffprobe drop that frame */
        if (e->pkt->duration <= 0)
            e->pkt->duration = e->last_dur;
        av_packet_rescale_ts(e->pkt, e->cc->time_base, e->st->time_base);
        e->pkt->stream_index = e->st->index;
        if ((rc = av_interleaved_write_frame(e->oc, e->pkt)) < 0)
            return rc;
    }
    return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
}

static int open_encoder(struct enc *e, const char *tmp, int w, int h, double fps, char *err, size_t errlen)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (!codec)
        codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!codec) {
        snprintf(err, errlen, "this FFmpeg has no H.264 encoder (Debian's libavcodec has libx264)");
        return -ENOSYS;
    }
    int rc = avformat_alloc_output_context2(&e->oc, NULL, "mp4", tmp);
    if (rc < 0 || !(e->st = avformat_new_stream(e->oc, NULL)) || !(e->cc = avcodec_alloc_context3(codec))) {
        snprintf(err, errlen, "cannot set up the MP4 muxer");
        return -ENOMEM;
    }
    e->cc->width = w;
    e->cc->height = h;
    e->cc->pix_fmt = AV_PIX_FMT_YUV420P;
    e->cc->time_base = (AVRational){1, 1000};
    e->cc->framerate = av_d2q(fps > 0 && fps < 1000 ? fps : 25, 1000);
    e->cc->gop_size = 48;
    e->cc->max_b_frames = 0;
    e->cc->thread_count = 1;
    if (e->oc->oformat->flags & AVFMT_GLOBALHEADER)
        e->cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(e->cc->priv_data, "preset", "veryfast", 0);
    av_opt_set(e->cc->priv_data, "crf", "26", 0);
    av_opt_set(e->cc->priv_data, "profile", "main", 0);
    if ((rc = avcodec_open2(e->cc, codec, NULL)) < 0 ||
        (rc = avcodec_parameters_from_context(e->st->codecpar, e->cc)) < 0) {
        snprintf(err, errlen, "cannot open the %s encoder: %s", codec->name, av_err2str(rc));
        return -EIO;
    }
    e->st->time_base = e->cc->time_base;
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "movflags", "+faststart", 0);
    if ((rc = avio_open(&e->oc->pb, tmp, AVIO_FLAG_WRITE)) < 0 || (rc = avformat_write_header(e->oc, &opts)) < 0) {
        av_dict_free(&opts);
        snprintf(err, errlen, "cannot write %s: %s", tmp, av_err2str(rc));
        return -EIO;
    }
    av_dict_free(&opts);
    e->yuv = av_frame_alloc();
    e->pkt = av_packet_alloc();
    if (!e->yuv || !e->pkt)
        return -ENOMEM;
    e->yuv->format = AV_PIX_FMT_YUV420P;
    e->yuv->width = w;
    e->yuv->height = h;
    if (av_frame_get_buffer(e->yuv, 0) < 0)
        return -ENOMEM;
    e->last_pts = -1;
    return 0;
}

static int encode_frame(struct enc *e, const struct decoded_frame *f, double start_s)
{
    if (!e->sws)
        e->sws = sws_getContext(f->width, f->height, AV_PIX_FMT_RGB24, e->cc->width, e->cc->height,
                                AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
    if (!e->sws || av_frame_make_writable(e->yuv) < 0)
        return -ENOMEM;
    const uint8_t *src[1] = {f->rgb};
    int stride[1] = {f->rgb_stride};
    sws_scale(e->sws, src, stride, 0, f->height, e->yuv->data, e->yuv->linesize);
    int64_t pts = llround((f->t - start_s) * 1000);
    if (pts <= e->last_pts)
        pts = e->last_pts + 1;
    e->last_pts = pts;
    e->last_dur = f->duration > 0 ? llround(f->duration * 1000) : 1;
    if (e->last_dur < 1)
        e->last_dur = 1;
    e->yuv->pts = pts;
    int rc = avcodec_send_frame(e->cc, e->yuv);
    return rc < 0 ? rc : drain(e);
}

static void close_encoder(struct enc *e)
{
    if (e->oc && e->oc->pb)
        avio_closep(&e->oc->pb);
    avformat_free_context(e->oc);
    avcodec_free_context(&e->cc);
    av_frame_free(&e->yuv);
    av_packet_free(&e->pkt);
    sws_freeContext(e->sws);
}

int preview_make(const char *movie, double start_s, double end_s, int max_h, const char *out, char *err,
                 size_t errlen)
{
    struct decoder *d;
    int rc = decoder_open(movie, 0, &d, err, errlen);
    if (rc)
        return rc;
    int w, h, rot;
    double fps;
    decoder_geometry(d, &w, &h, &rot, &fps);
    int oh = h < max_h ? h : max_h;
    oh &= ~1;
    int ow = (int)lround((double)w * oh / h) & ~1;
    if (ow < 2 || oh < 2) {
        decoder_close(d);
        snprintf(err, errlen, "the movie's pictures are too small (%dx%d)", w, h);
        return -EINVAL;
    }
    char *tmp = NULL;
    int fd = open_temp_beside(out, 0644, &tmp);
    if (fd < 0) {
        decoder_close(d);
        snprintf(err, errlen, "cannot create a file beside %s: %s", out, strerror(-fd));
        return fd;
    }
    close(fd);
    struct enc e = {0};
    int frames = 0;
    rc = open_encoder(&e, tmp, ow, oh, fps, err, errlen);
    if (!rc && start_s > 0) /* as the prep job's scan (media/scan.c): the same frames */
        rc = decoder_seek(d, start_s, err, errlen);
    struct decoded_frame f;
    while (!rc) {
        int got = decoder_next(d, &f, err, errlen);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (decode_t_past(f.t, end_s))
            break;
        if (start_s > 0 && decode_t_before(f.t, start_s))
            continue;
        if ((rc = encode_frame(&e, &f, start_s)) < 0)
            snprintf(err, errlen, "encoding frame %d failed: %s", frames, av_err2str(rc));
        frames++;
    }
    if (!rc && !frames) {
        snprintf(err, errlen, "no frame of the movie lies in %.3f-%.3f s", start_s, end_s);
        rc = -ENODATA;
    }
    if (!rc && ((rc = avcodec_send_frame(e.cc, NULL)) < 0 || (rc = drain(&e)) < 0 ||
                (rc = av_write_trailer(e.oc)) < 0))
        snprintf(err, errlen, "finishing the MP4 failed: %s", av_err2str(rc));
    close_encoder(&e);
    decoder_close(d);
    if (rc > 0)
        rc = 0;
    if (!rc && rename(tmp, out)) {
        rc = -errno;
        snprintf(err, errlen, "cannot rename to %s: %s", out, strerror(errno));
    }
    if (rc) {
        unlink(tmp);
        rc = rc < 0 && rc > -4096 ? rc : -EIO;
    }
    free(tmp);
    return rc;
}
