/* Decoding images and encoding JPEGs with FFmpeg (see image.h). */
#include "image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "util.h"

static void quiet_ffmpeg(void)
{
    if (av_log_get_level() > AV_LOG_ERROR)
        av_log_set_level(AV_LOG_ERROR);
}

static const char *averr(int rc, char *buf, size_t len)
{
    av_strerror(rc, buf, len);
    return buf;
}

void image_free(struct image *img)
{
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

/* Converts a decoded frame into img (packed RGB24). */
static int frame_to_rgb(const AVFrame *fr, struct image *img, char *err, size_t errlen)
{
    struct SwsContext *sws = sws_getContext(fr->width, fr->height, fr->format, fr->width, fr->height, AV_PIX_FMT_RGB24,
                                            SWS_POINT, NULL, NULL, NULL);
    if (!sws) {
        snprintf(err, errlen, "cannot convert pixel format %s to RGB", av_get_pix_fmt_name(fr->format));
        return -EINVAL;
    }
    img->w = fr->width;
    img->h = fr->height;
    img->rgb = xmalloc((size_t)fr->width * (size_t)fr->height * 3);
    uint8_t *dst[4] = {img->rgb};
    int stride[4] = {fr->width * 3};
    sws_scale(sws, (const uint8_t *const *)fr->data, fr->linesize, 0, fr->height, dst, stride);
    sws_freeContext(sws);
    return 0;
}

int image_load_rgb(const char *path, struct image *img, char *err, size_t errlen)
{
    char ebuf[128];
    memset(img, 0, sizeof *img);
    quiet_ffmpeg();
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    fclose(probe);
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    int rc = avformat_open_input(&fmt, path, NULL, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "%s is not an image FFmpeg reads: %s", path, averr(rc, ebuf, sizeof ebuf));
        rc = -EINVAL;
        goto out;
    }
    if (fmt->nb_streams < 1 || fmt->streams[0]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) {
        snprintf(err, errlen, "%s holds no picture", path);
        rc = -EINVAL;
        goto out;
    }
    const AVCodec *codec = avcodec_find_decoder(fmt->streams[0]->codecpar->codec_id);
    dec = codec ? avcodec_alloc_context3(codec) : NULL;
    if (!dec || avcodec_parameters_to_context(dec, fmt->streams[0]->codecpar) < 0 ||
        avcodec_open2(dec, codec, NULL) < 0) {
        snprintf(err, errlen, "%s: no decoder for its %s picture", path,
                 avcodec_get_name(fmt->streams[0]->codecpar->codec_id));
        rc = -EINVAL;
        goto out;
    }
    rc = AVERROR(EAGAIN);
    while (rc == AVERROR(EAGAIN)) {
        int r = av_read_frame(fmt, pkt);
        rc = avcodec_send_packet(dec, r < 0 ? NULL : pkt);
        av_packet_unref(pkt);
        if (rc < 0 && rc != AVERROR_EOF)
            break;
        rc = avcodec_receive_frame(dec, fr);
        if (rc == AVERROR(EAGAIN) && r < 0)
            break;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot decode the picture: %s", path, averr(rc, ebuf, sizeof ebuf));
        rc = -EINVAL;
        goto out;
    }
    rc = frame_to_rgb(fr, img, err, errlen);
out:
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    return rc;
}

int image_save_jpeg(const char *path, const struct image *img, int quality, char *err, size_t errlen)
{
    char ebuf[128];
    quiet_ffmpeg();
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (!codec) {
        snprintf(err, errlen, "this FFmpeg has no MJPEG encoder");
        return -ENOSYS;
    }
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    AVFrame *fr = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    struct SwsContext *sws = NULL;
    FILE *f = NULL;
    int rc;
    enc->width = img->w;
    enc->height = img->h;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->color_range = AVCOL_RANGE_JPEG; /* full-range YUV, as JPEG files are */
    enc->time_base = (AVRational){1, 25};
    enc->flags |= AV_CODEC_FLAG_QSCALE;
    enc->global_quality = FF_QP2LAMBDA * quality;
    rc = avcodec_open2(enc, codec, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the JPEG encoder for %dx%d: %s", img->w, img->h,
                 averr(rc, ebuf, sizeof ebuf));
        rc = -EINVAL;
        goto out;
    }
    fr->format = enc->pix_fmt;
    fr->width = img->w;
    fr->height = img->h;
    fr->color_range = AVCOL_RANGE_JPEG;
    fr->quality = enc->global_quality;
    fr->pict_type = AV_PICTURE_TYPE_I;
    if (av_frame_get_buffer(fr, 0) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    sws = sws_getContext(img->w, img->h, AV_PIX_FMT_RGB24, img->w, img->h, AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL,
                         NULL, NULL);
    if (!sws) {
        rc = -EINVAL;
        snprintf(err, errlen, "cannot convert RGB to YUV");
        goto out;
    }
    /* Full range out, so that the colours survive the JPEG round trip. */
    const int *coef = sws_getCoefficients(SWS_CS_ITU601);
    sws_setColorspaceDetails(sws, coef, 1, coef, 1, 0, 1 << 16, 1 << 16);
    const uint8_t *src[4] = {img->rgb};
    int sstride[4] = {img->w * 3};
    sws_scale(sws, src, sstride, 0, img->h, fr->data, fr->linesize);
    rc = avcodec_send_frame(enc, fr);
    if (rc >= 0)
        rc = avcodec_send_frame(enc, NULL);
    if (rc >= 0)
        rc = avcodec_receive_packet(enc, pkt);
    if (rc < 0) {
        snprintf(err, errlen, "JPEG encoding failed: %s", averr(rc, ebuf, sizeof ebuf));
        rc = -EIO;
        goto out;
    }
    f = fopen(path, "wbx"); /* a new file: never through a planted link */
    if (!f || fwrite(pkt->data, 1, (size_t)pkt->size, f) != (size_t)pkt->size || fflush(f) != 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f && fclose(f) != 0 && rc == 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&fr);
    avcodec_free_context(&enc);
    return rc;
}
