/* Decoding video frames in presentation order (see decode.h). */
#include "decode.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "align.h"
#include "media.h"

/* Frames closer than this to a range boundary count as on it (decode.h). */
#define T_EPS DECODE_T_EPS

struct plane {
    uint8_t *buf; /* coded orientation (what swscale writes) */
    uint8_t *up;  /* upright (rotated copy; == buf when rotation is 0) */
    int stride, up_stride;
    int bpp;
};

/* Turns decoded pictures into upright RGB24 and grey planes (swscale). */
struct frame_converter {
    struct SwsContext *sws_rgb, *sws_gray;
    int conv_w, conv_h, conv_fmt, conv_cs, conv_range, conv_want;
    struct plane rgb, gray;
    int rotation;
    /* faces warped straight from the YUV planes (frame_converter_warp) */
    struct SwsContext *sws_face;
    int face_size, face_cs, face_range;
    uint8_t *face_yuv; /* 3 planes of face_size^2 */
    const AVFrame *rgb_of; /* the picture rgb holds (fallback path) */
    int64_t rgb_pts;
};

struct decoder {
    AVFormatContext *fmt;
    AVCodecContext *cc;
    AVStream *vs;
    int vidx;
    AVPacket *pkt;
    AVFrame *frame;
    struct frame_converter *conv;
    int flags;
    int rotation;
    double tb;           /* stream time base, seconds */
    double origin;       /* container start_time, seconds: the timeline's 0 */
    double fps;          /* nominal, for frames without timestamps */
    double last_t;
    int have_last_t;
    int eof_sent;
    int pkt_pending; /* pkt was refused with EAGAIN and waits to be sent again */
    /* seeking */
    double skip_before;  /* frames with t < this are dropped */
    int check_seek;      /* the next decoded frame tells whether the seek landed late */
    double seek_margin;  /* how far before t0 the current seek aimed */
    int64_t index;
    int end_checked; /* the frames' end was compared with the stream's (once, at its end) */
    struct decoder_stats st;
};

static void plane_free(struct plane *p)
{
    if (p->up != p->buf)
        av_free(p->up);
    av_free(p->buf);
    memset(p, 0, sizeof *p);
}

void decoder_close(struct decoder *d)
{
    if (!d)
        return;
    frame_converter_free(d->conv);
    av_frame_free(&d->frame);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->cc);
    avformat_close_input(&d->fmt);
    free(d);
}

int decoder_open(const char *path, int flags, struct decoder **out, char *err, size_t errlen)
{
    return decoder_open_threads(path, flags, 1, out, err, errlen);
}

int decoder_open_threads(const char *path, int flags, int threads, struct decoder **out, char *err, size_t errlen)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, e == ENOENT ? "no such file" : strerror(e));
        return -e;
    }
    if (av_log_get_level() > AV_LOG_ERROR)
        av_log_set_level(AV_LOG_ERROR);
    struct decoder *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->flags = flags;
    d->skip_before = -INFINITY;
    d->st.frames_end = NAN;
    d->st.stream_end = NAN;
    char aerr[AV_ERROR_MAX_STRING_SIZE];
    int ret = avformat_open_input(&d->fmt, path, NULL, NULL);
    if (ret < 0) {
        av_strerror(ret, aerr, sizeof aerr);
        snprintf(err, errlen, "%s: FFmpeg cannot open it (%s): not a video or image, or damaged", path, aerr);
        free(d);
        return ret == AVERROR(EACCES) ? -EACCES : -EINVAL;
    }
    int rc = -EINVAL;
    if ((ret = avformat_find_stream_info(d->fmt, NULL)) < 0) {
        av_strerror(ret, aerr, sizeof aerr);
        snprintf(err, errlen, "%s: FFmpeg cannot read the stream information (%s): damaged or truncated", path, aerr);
        goto fail;
    }
    d->vidx = -1;
    for (unsigned i = 0; i < d->fmt->nb_streams; i++) {
        AVStream *s = d->fmt->streams[i];
        if (s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(s->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
            d->vidx = (int)i;
            break;
        }
    }
    if (d->vidx < 0) {
        snprintf(err, errlen, "%s: no video stream", path);
        goto fail;
    }
    for (unsigned i = 0; i < d->fmt->nb_streams; i++)
        if ((int)i != d->vidx)
            d->fmt->streams[i]->discard = AVDISCARD_ALL;
    d->vs = d->fmt->streams[d->vidx];
    const AVCodec *dec = avcodec_find_decoder(d->vs->codecpar->codec_id);
    if (!dec) {
        snprintf(err, errlen, "%s: this FFmpeg has no decoder for %s", path,
                 avcodec_get_name(d->vs->codecpar->codec_id));
        goto fail;
    }
    d->cc = avcodec_alloc_context3(dec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->cc || !d->pkt || !d->frame) {
        rc = -ENOMEM;
        goto fail;
    }
    /* One decoding thread unless asked: dfew runs one worker process per
     * core, and a job given more cores decodes on frame threads. */
    d->cc->thread_count = threads > 1 ? threads : 1;
    if (threads > 1)
        d->cc->thread_type = FF_THREAD_FRAME;
    if (avcodec_parameters_to_context(d->cc, d->vs->codecpar) < 0 || avcodec_open2(d->cc, dec, NULL) < 0) {
        snprintf(err, errlen, "%s: cannot open the %s decoder", path, dec->name);
        goto fail;
    }
    d->tb = av_q2d(d->vs->time_base);
    d->origin = d->fmt->start_time != AV_NOPTS_VALUE ? (double)d->fmt->start_time / AV_TIME_BASE : 0.0;
    AVRational r = d->vs->avg_frame_rate.num ? d->vs->avg_frame_rate : d->vs->r_frame_rate;
    d->fps = r.num && r.den ? av_q2d(r) : 25.0;
    if (d->vs->duration != AV_NOPTS_VALUE && d->vs->duration > 0)
        d->st.stream_end =
            (double)((d->vs->start_time != AV_NOPTS_VALUE ? d->vs->start_time : 0) + d->vs->duration) * d->tb -
            d->origin;
    size_t sdsize = 0;
    const uint8_t *sd = av_stream_get_side_data(d->vs, AV_PKT_DATA_DISPLAYMATRIX, &sdsize);
    d->rotation = media_display_rotation(sd, sdsize);
    if ((rc = frame_converter_new(d->rotation, &d->conv)) != 0)
        goto fail;
    *out = d;
    return 0;
fail:
    decoder_close(d);
    return rc;
}

const struct decoder_stats *decoder_stats(const struct decoder *d) { return &d->st; }

void decoder_geometry(const struct decoder *d, int *width, int *height, int *rotation, double *fps)
{
    int w = d->vs->codecpar->width, h = d->vs->codecpar->height;
    int swap = d->rotation == 90 || d->rotation == 270;
    if (width)
        *width = swap ? h : w;
    if (height)
        *height = swap ? w : h;
    if (rotation)
        *rotation = d->rotation;
    if (fps)
        *fps = d->fps;
}

static int seek_to(struct decoder *d, double target)
{
    avcodec_flush_buffers(d->cc);
    av_packet_unref(d->pkt);
    d->pkt_pending = 0;
    d->eof_sent = 0;
    int ret;
    if (target <= d->origin + T_EPS) {
        int64_t first = d->vs->start_time != AV_NOPTS_VALUE ? d->vs->start_time : 0;
        ret = av_seek_frame(d->fmt, d->vidx, first, AVSEEK_FLAG_BACKWARD);
        if (ret < 0)
            ret = av_seek_frame(d->fmt, -1, 0, AVSEEK_FLAG_BYTE);
        d->seek_margin = INFINITY; /* from the start: cannot land late */
        return ret < 0 ? -EIO : 0;
    }
    int64_t ts = llround(target / d->tb);
    ret = av_seek_frame(d->fmt, d->vidx, ts, AVSEEK_FLAG_BACKWARD);
    if (ret < 0)
        return seek_to(d, d->origin);
    return 0;
}

int decoder_seek(struct decoder *d, double t0, char *err, size_t errlen)
{
    av_frame_unref(d->frame);
    d->skip_before = t0 - T_EPS;
    d->index = 0;
    d->have_last_t = 0;
    d->st.frames_end = NAN;
    d->seek_margin = 0;
    d->check_seek = 1;
    if (seek_to(d, t0 + d->origin) != 0) {
        snprintf(err, errlen, "cannot seek in the file (not seekable?)");
        return -EIO;
    }
    return 0;
}

static int ensure_plane(struct plane *p, int w, int h, int bpp, int rotation)
{
    int stride = FFALIGN(w * bpp, 64);
    if (p->buf && p->stride == stride && p->bpp == bpp)
        return 0;
    plane_free(p);
    p->bpp = bpp;
    p->stride = stride;
    p->buf = av_malloc((size_t)stride * h + 64);
    if (!p->buf)
        return -ENOMEM;
    if (rotation == 0) {
        p->up = p->buf;
        p->up_stride = stride;
        return 0;
    }
    int uw = rotation == 180 ? w : h, uh = rotation == 180 ? h : w;
    p->up_stride = FFALIGN(uw * bpp, 64);
    p->up = av_malloc((size_t)p->up_stride * uh + 64);
    return p->up ? 0 : -ENOMEM;
}

/* Copies the coded-orientation picture into the upright one. */
static void rotate_plane(struct plane *p, int w, int h, int rotation)
{
    const int bpp = p->bpp;
    for (int y = 0; y < h; y++) {
        const uint8_t *src = p->buf + (size_t)y * p->stride;
        for (int x = 0; x < w; x++) {
            int ox, oy; /* where source (x, y) lands upright */
            if (rotation == 90) {
                ox = h - 1 - y;
                oy = x;
            } else if (rotation == 180) {
                ox = w - 1 - x;
                oy = h - 1 - y;
            } else {
                ox = y;
                oy = w - 1 - x;
            }
            memcpy(p->up + (size_t)oy * p->up_stride + (size_t)ox * bpp, src + (size_t)x * bpp, bpp);
        }
    }
}

void frame_converter_free(struct frame_converter *c)
{
    if (!c)
        return;
    sws_freeContext(c->sws_rgb);
    sws_freeContext(c->sws_gray);
    sws_freeContext(c->sws_face);
    free(c->face_yuv);
    plane_free(&c->rgb);
    plane_free(&c->gray);
    free(c);
}

int frame_converter_new(int rotation, struct frame_converter **out)
{
    *out = NULL;
    if (rotation != 0 && rotation != 90 && rotation != 180 && rotation != 270)
        return -EINVAL;
    struct frame_converter *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->rotation = rotation;
    c->conv_fmt = -1;
    *out = c;
    return 0;
}

/* want: CONVERT_RGB and/or CONVERT_GRAY */
enum { CONVERT_RGB = 1, CONVERT_GRAY = 2 };

/* The swscale contexts for fr's size, format, matrix and range. */
static int converter_setup(struct frame_converter *c, const AVFrame *fr, int want, char *err, size_t errlen)
{
    int w = fr->width, h = fr->height;
    int cs = fr->colorspace, range = fr->color_range;
    if (w != c->conv_w || h != c->conv_h || fr->format != c->conv_fmt || cs != c->conv_cs ||
        range != c->conv_range || (want & ~c->conv_want)) {
        /* Bicubic, the frame's own matrix and range: what `ffmpeg -i X out.png` does. */
        want |= c->conv_want;
        if (want & CONVERT_RGB)
            c->sws_rgb = sws_getCachedContext(c->sws_rgb, w, h, fr->format, w, h, AV_PIX_FMT_RGB24, SWS_BICUBIC,
                                              NULL, NULL, NULL);
        if (want & CONVERT_GRAY)
            c->sws_gray = sws_getCachedContext(c->sws_gray, w, h, fr->format, w, h, AV_PIX_FMT_GRAY8, SWS_BICUBIC,
                                               NULL, NULL, NULL);
        if (((want & CONVERT_RGB) && !c->sws_rgb) || ((want & CONVERT_GRAY) && !c->sws_gray)) {
            snprintf(err, errlen, "cannot convert %s %dx%d pictures to %s", av_get_pix_fmt_name(fr->format), w, h,
                     (want & CONVERT_RGB) && !c->sws_rgb ? "RGB" : "grey");
            return -EINVAL;
        }
        int src_cs = cs == AVCOL_SPC_UNSPECIFIED || cs == AVCOL_SPC_RGB ? SWS_CS_DEFAULT : cs;
        int full = range == AVCOL_RANGE_JPEG;
        struct SwsContext *ctxs[2] = {(want & CONVERT_RGB) ? c->sws_rgb : NULL,
                                      (want & CONVERT_GRAY) ? c->sws_gray : NULL};
        for (int i = 0; i < 2; i++) {
            int *inv, *tab, srcr, dstr, bri, con, sat;
            if (ctxs[i] && sws_getColorspaceDetails(ctxs[i], &inv, &srcr, &tab, &dstr, &bri, &con, &sat) >= 0)
                sws_setColorspaceDetails(ctxs[i], sws_getCoefficients(src_cs), full || srcr, tab, dstr, bri, con,
                                         sat);
        }
        c->conv_w = w;
        c->conv_h = h;
        c->conv_fmt = fr->format;
        c->conv_cs = cs;
        c->conv_range = range;
        c->conv_want = want;
    }
    return 0;
}

static int convert(struct frame_converter *c, const AVFrame *fr, int want, char *err, size_t errlen)
{
    int w = fr->width, h = fr->height;
    int rc = converter_setup(c, fr, want, err, errlen);
    if (rc)
        return rc;
    if (((want & CONVERT_RGB) && ensure_plane(&c->rgb, w, h, 3, c->rotation)) ||
        ((want & CONVERT_GRAY) && ensure_plane(&c->gray, w, h, 1, c->rotation)))
        return -ENOMEM;
    uint8_t *dst[4] = {c->rgb.buf};
    int dst_stride[4] = {c->rgb.stride};
    if (want & CONVERT_RGB) {
        sws_scale(c->sws_rgb, (const uint8_t *const *)fr->data, fr->linesize, 0, h, dst, dst_stride);
        if (c->rotation)
            rotate_plane(&c->rgb, w, h, c->rotation);
    }
    if (want & CONVERT_GRAY) {
        dst[0] = c->gray.buf;
        dst_stride[0] = c->gray.stride;
        sws_scale(c->sws_gray, (const uint8_t *const *)fr->data, fr->linesize, 0, h, dst, dst_stride);
        if (c->rotation)
            rotate_plane(&c->gray, w, h, c->rotation);
    }
    return 0;
}

/* Points f at the converted planes of a w x h (coded) picture. */
static void fill_pixels(const struct frame_converter *c, int w, int h, int want, struct decoded_frame *f)
{
    int swap = c->rotation == 90 || c->rotation == 270;
    f->width = swap ? h : w;
    f->height = swap ? w : h;
    f->rgb = (want & CONVERT_RGB) ? c->rgb.up : NULL;
    f->rgb_stride = (want & CONVERT_RGB) ? c->rgb.up_stride : 0;
    f->gray = (want & CONVERT_GRAY) ? c->gray.up : NULL;
    f->gray_stride = (want & CONVERT_GRAY) ? c->gray.up_stride : 0;
}

static int decoder_want(const struct decoder *d)
{
    int rgb = !(d->flags & DECODE_NO_RGB) || !(d->flags & DECODE_GRAY);
    return (rgb ? CONVERT_RGB : 0) | ((d->flags & DECODE_GRAY) ? CONVERT_GRAY : 0);
}

int frame_converter_run(struct frame_converter *c, const AVFrame *av, int flags, struct decoded_frame *f, char *err,
                        size_t errlen)
{
    int want = (flags & DECODE_NO_RGB) ? 0 : CONVERT_RGB;
    if (flags & DECODE_GRAY)
        want |= CONVERT_GRAY;
    if (!want)
        return -EINVAL;
    int rc = convert(c, av, want, err, errlen);
    if (rc)
        return rc;
    fill_pixels(c, av->width, av->height, want, f);
    return 0;
}

/* Bilinear sample of a w x h plane at (x, y); outside it, `black`. */
static inline double sample_plane(const uint8_t *src, int stride, int w, int h, double x, double y, uint8_t black)
{
    double fx = floor(x), fy = floor(y);
    int x0 = (int)fx, y0 = (int)fy;
    double ax = x - fx, ay = y - fy;
    if (x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h) {
        const uint8_t *p = src + (size_t)y0 * stride + x0;
        return (1 - ay) * ((1 - ax) * p[0] + ax * p[1]) + ay * ((1 - ax) * p[stride] + ax * p[stride + 1]);
    }
    double acc = 0;
    for (int k = 0; k < 4; k++) {
        int xx = x0 + (k & 1), yy = y0 + (k >> 1);
        double wgt = ((k & 1) ? ax : 1 - ax) * ((k >> 1) ? ay : 1 - ay);
        if (wgt != 0)
            acc += wgt * (xx < 0 || yy < 0 || xx >= w || yy >= h ? black : src[(size_t)yy * stride + xx]);
    }
    return acc;
}

static inline uint8_t to_u8(double v)
{
    double q = floor(v + 0.5);
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

int frame_converter_warp(struct frame_converter *c, const AVFrame *av, const double m[6], int size, uint8_t *rgb,
                         char *err, size_t errlen)
{
    double det = m[0] * m[4] - m[1] * m[3];
    if (!(fabs(det) > 1e-12) || size <= 0)
        return -EINVAL;
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(av->format);
    int planar_yuv = desc && !(desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BE)) &&
                     (desc->flags & AV_PIX_FMT_FLAG_PLANAR) && desc->nb_components == 3 &&
                     desc->comp[0].depth == 8 && desc->comp[1].plane == 1 && desc->comp[2].plane == 2 &&
                     desc->log2_chroma_w <= 1 && desc->log2_chroma_h <= 1;
    if (!planar_yuv || c->rotation) {
        /* other pictures: the whole picture in RGB (once per picture), then the warp */
        struct decoded_frame f;
        if (c->rgb_of != av || c->rgb_pts != av->pts) {
            int rc = convert(c, av, CONVERT_RGB, err, errlen);
            if (rc)
                return rc;
            c->rgb_of = av;
            c->rgb_pts = av->pts;
        }
        fill_pixels(c, av->width, av->height, CONVERT_RGB, &f);
        return align_warp(f.rgb, f.width, f.height, f.rgb_stride, m, rgb, size);
    }
    /* the face straight from the Y, U and V planes, then only its pixels to RGB */
    const double inv[6] = {m[4] / det, -m[1] / det, (m[1] * m[5] - m[4] * m[2]) / det,
                           -m[3] / det, m[0] / det, (m[3] * m[2] - m[0] * m[5]) / det};
    int full = av->color_range == AVCOL_RANGE_JPEG || av->format == AV_PIX_FMT_YUVJ420P ||
               av->format == AV_PIX_FMT_YUVJ422P || av->format == AV_PIX_FMT_YUVJ444P;
    size_t n = (size_t)size * size;
    if (c->face_size != size) {
        free(c->face_yuv);
        c->face_yuv = malloc(3 * n);
        c->face_size = c->face_yuv ? size : 0;
        if (!c->face_yuv)
            return -ENOMEM;
    }
    int cw = desc->log2_chroma_w, ch = desc->log2_chroma_h;
    /* chroma siting: where chroma sample (i, j) sits on the luma grid,
     * (2i + hoff, 2j + voff); H.264/MPEG-2's (left, centre) unless the
     * stream says otherwise */
    enum AVChromaLocation loc = av->chroma_location;
    double hoff = loc == AVCHROMA_LOC_CENTER || loc == AVCHROMA_LOC_TOP || loc == AVCHROMA_LOC_BOTTOM ? 0.5 : 0;
    double voff = loc == AVCHROMA_LOC_TOPLEFT || loc == AVCHROMA_LOC_TOP      ? 0
                  : loc == AVCHROMA_LOC_BOTTOMLEFT || loc == AVCHROMA_LOC_BOTTOM ? 1
                                                                                 : 0.5;
    int cwid = AV_CEIL_RSHIFT(av->width, cw), chei = AV_CEIL_RSHIFT(av->height, ch);
    const double csx = 1.0 / (1 << cw), csy = 1.0 / (1 << ch), cox = cw ? -hoff / 2 : 0, coy = ch ? -voff / 2 : 0;
    const uint8_t yblack = full ? 0 : 16;
    uint8_t *py = c->face_yuv, *pu = py + n, *pv = pu + n;
    for (int v = 0; v < size; v++)
        for (int u = 0; u < size; u++) {
            double X = inv[0] * u + inv[1] * v + inv[2], Y = inv[3] * u + inv[4] * v + inv[5];
            size_t o = (size_t)v * size + u;
            py[o] = to_u8(sample_plane(av->data[0], av->linesize[0], av->width, av->height, X, Y, yblack));
            double cx = X * csx + cox, cy = Y * csy + coy;
            pu[o] = to_u8(sample_plane(av->data[1], av->linesize[1], cwid, chei, cx, cy, 128));
            pv[o] = to_u8(sample_plane(av->data[2], av->linesize[2], cwid, chei, cx, cy, 128));
        }
    int cs = av->colorspace;
    if (!c->sws_face || c->face_cs != cs || c->face_range != full) {
        c->sws_face = sws_getCachedContext(c->sws_face, size, size, full ? AV_PIX_FMT_YUVJ444P : AV_PIX_FMT_YUV444P,
                                           size, size, AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
        if (!c->sws_face) {
            snprintf(err, errlen, "cannot convert %dx%d faces to RGB", size, size);
            return -EINVAL;
        }
        int *inv_t, *tab, srcr, dstr, bri, con, sat;
        int src_cs = cs == AVCOL_SPC_UNSPECIFIED || cs == AVCOL_SPC_RGB ? SWS_CS_DEFAULT : cs;
        if (sws_getColorspaceDetails(c->sws_face, &inv_t, &srcr, &tab, &dstr, &bri, &con, &sat) >= 0)
            sws_setColorspaceDetails(c->sws_face, sws_getCoefficients(src_cs), full || srcr, tab, dstr, bri, con,
                                     sat);
        c->face_cs = cs;
        c->face_range = full;
    }
    const uint8_t *src[4] = {c->face_yuv, c->face_yuv + n, c->face_yuv + 2 * n, NULL};
    int src_stride[4] = {size, size, size, 0};
    uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
    int dst_stride[4] = {3 * size, 0, 0, 0};
    sws_scale(c->sws_face, src, src_stride, 0, size, dst, dst_stride);
    return 0;
}

int decoder_convert(struct decoder *d, const AVFrame *av, struct decoded_frame *f, char *err, size_t errlen)
{
    int want = decoder_want(d);
    int rc = convert(d->conv, av, want, err, errlen);
    if (rc)
        return rc;
    fill_pixels(d->conv, av->width, av->height, want, f);
    return 0;
}

int gray_plane_reserve(struct gray_plane *g, int width, int height, int stride)
{
    size_t need = (size_t)stride * height + 64;
    if (g->cap < need) {
        gray_plane_free(g);
        if (!(g->buf = av_malloc(need)))
            return -ENOMEM;
        g->cap = need;
    }
    g->stride = stride;
    g->width = width;
    g->height = height;
    return 0;
}

void gray_plane_free(struct gray_plane *g)
{
    av_freep(&g->buf);
    g->cap = 0;
}

int decoder_convert_gray(struct decoder *d, const AVFrame *av, struct gray_plane *g, char *err, size_t errlen)
{
    struct frame_converter *c = d->conv;
    int swap = c->rotation == 90 || c->rotation == 270;
    int uw = swap ? av->height : av->width, uh = swap ? av->width : av->height;
    int stride = FFALIGN(uw, 64); /* swscale's fast paths want aligned rows */
    if (gray_plane_reserve(g, uw, uh, stride))
        return -ENOMEM;
    if (c->rotation == 0) {
        int rc = converter_setup(c, av, CONVERT_GRAY, err, errlen);
        if (rc)
            return rc;
        uint8_t *dst[4] = {g->buf};
        int dst_stride[4] = {stride};
        sws_scale(c->sws_gray, (const uint8_t *const *)av->data, av->linesize, 0, av->height, dst, dst_stride);
        return 0;
    }
    /* a rotated picture: through the converter's planes */
    int rc = convert(c, av, CONVERT_GRAY, err, errlen);
    if (rc)
        return rc;
    for (int y = 0; y < uh; y++)
        memcpy(g->buf + (size_t)y * stride, c->gray.up + (size_t)y * c->gray.up_stride, (size_t)uw);
    return 0;
}

static double frame_duration(const struct decoder *d, const AVFrame *fr)
{
    return fr->pkt_duration > 0 ? fr->pkt_duration * d->tb : 1.0 / d->fps;
}

/* At the end of the stream: was the file cut short? An MP4 whose index is
 * at the front still lists the lost packets; reading them just fails at the
 * end of the file and libavformat reports a clean end ("partial file" in its
 * log only). Two signs, either is enough: index entries that lie past the
 * end of the file, or frames that end well before the end the container
 * gives the video stream (by more than two frames and half a second: an
 * estimated duration, as Ogg's, can be a few frames long). Recorded as a
 * read error, once. */
static void check_end(struct decoder *d)
{
    if (d->end_checked)
        return;
    d->end_checked = 1;
    struct media_index ix;
    media_index_scan(d->vs, d->fmt->pb ? avio_size(d->fmt->pb) : -1, &ix);
    /* nothing decoded since a seek: the frames end where it aimed */
    double reached = isfinite(d->st.frames_end) ? d->st.frames_end : isfinite(d->skip_before) ? d->skip_before : 0;
    double short_by = d->st.stream_end - reached; /* NAN when the stream's end is not known */
    if (ix.past_end == 0 && !(short_by > fmax(2.0 / d->fps, 0.5)))
        return;
    size_t n = strlen(d->st.read_error_msg);
    char *m = d->st.read_error_msg + n;
    size_t left = sizeof d->st.read_error_msg - n;
    int k = 0;
    if (ix.past_end > 0)
        k = snprintf(m, left, "%scut short: %lld frames its index lists lie past the end of the file; ", n ? "; " : "",
                     (long long)ix.past_end);
    else
        k = snprintf(m, left, "%s", n ? "; " : "");
    if (k >= 0 && (size_t)k < left) {
        if (isfinite(d->st.stream_end))
            snprintf(m + k, left - k, "the frames end at %.3f s, the video stream says %.3f s", reached,
                     d->st.stream_end);
        else
            snprintf(m + k, left - k, "the frames end at %.3f s", reached);
    }
    d->st.read_error = 1;
}

static double frame_time(struct decoder *d, const AVFrame *fr)
{
    int64_t pts = fr->best_effort_timestamp;
    double t;
    if (pts != AV_NOPTS_VALUE)
        t = pts * d->tb - d->origin;
    else if (d->have_last_t)
        t = d->last_t + 1.0 / d->fps;
    else
        t = 0;
    d->last_t = t;
    d->have_last_t = 1;
    return t;
}

/* The next decoded frame of the stream (dropping nothing), or 0 at the end. */
static int next_raw(struct decoder *d)
{
    char aerr[AV_ERROR_MAX_STRING_SIZE];
    for (;;) {
        int ret = avcodec_receive_frame(d->cc, d->frame);
        if (ret == 0)
            return 1;
        if (ret == AVERROR_EOF)
            return 0;
        if (ret != AVERROR(EAGAIN)) {
            d->st.decode_errors++; /* a damaged picture: go on with the next packet */
            if (d->eof_sent)
                continue;
        }
        if (d->eof_sent)
            return 0;
        if (d->pkt_pending) {
            /* the decoder was full: it has given out a frame since, resend */
            ret = avcodec_send_packet(d->cc, d->pkt);
            if (ret == AVERROR(EAGAIN))
                continue;
            d->pkt_pending = 0;
            av_packet_unref(d->pkt);
            if (ret < 0 && ret != AVERROR_EOF)
                d->st.decode_errors++;
            continue;
        }
        ret = av_read_frame(d->fmt, d->pkt);
        if (ret < 0) {
            if (ret != AVERROR_EOF) {
                av_strerror(ret, aerr, sizeof aerr);
                d->st.read_error = 1;
                snprintf(d->st.read_error_msg, sizeof d->st.read_error_msg, "%s", aerr);
            }
            avcodec_send_packet(d->cc, NULL); /* drain what the decoder holds */
            d->eof_sent = 1;
            continue;
        }
        if (d->pkt->stream_index != d->vidx) {
            av_packet_unref(d->pkt);
            continue;
        }
        d->st.packets++;
        /* Pre-roll after a seek: a picture no other one refers to, shown
         * before the first wanted frame, would be dropped after decoding;
         * the decoder skips it instead (most B-frames: about half the frames
         * of the long bench clip). The frames that come out are the same. */
        d->cc->skip_frame = d->pkt->pts != AV_NOPTS_VALUE && d->pkt->pts * d->tb - d->origin < d->skip_before
                                ? AVDISCARD_NONREF
                                : AVDISCARD_DEFAULT;
        if (d->cc->skip_frame == AVDISCARD_NONREF)
            d->st.preroll_packets++;
        /* Packets an edit list discards still go in (they can be reference
         * pictures); the decoder drops the frames they produce. */
        ret = avcodec_send_packet(d->cc, d->pkt);
        if (ret == AVERROR(EAGAIN)) {
            d->pkt_pending = 1;
            continue;
        }
        av_packet_unref(d->pkt);
        if (ret < 0 && ret != AVERROR_EOF)
            d->st.decode_errors++;
    }
}

int decoder_next(struct decoder *d, struct decoded_frame *f, char *err, size_t errlen)
{
    av_frame_unref(d->frame); /* the DECODE_RAW picture returned last time */
    for (;;) {
        int got = next_raw(d);
        if (got == 0)
            check_end(d);
        if (got <= 0)
            return got;
        double t = frame_time(d, d->frame), dur = frame_duration(d, d->frame);
        if (!(d->st.frames_end >= t + dur))
            d->st.frames_end = t + dur;
        if (d->check_seek) {
            d->check_seek = 0;
            /* A seek must land on or before t0; when it landed late, aim
             * further back (1 s, 4 s, 16 s, ..., then the very start). */
            if (t > d->skip_before + 2 * T_EPS && isfinite(d->skip_before) && d->seek_margin != INFINITY) {
                d->seek_margin = d->seek_margin > 0 ? d->seek_margin * 4 : 1.0;
                double t0 = d->skip_before + T_EPS;
                av_frame_unref(d->frame);
                d->check_seek = 1;
                d->have_last_t = 0;
                if (seek_to(d, t0 - d->seek_margin + d->origin) != 0) {
                    snprintf(err, errlen, "cannot seek in the file");
                    return -EIO;
                }
                continue;
            }
        }
        if (t < d->skip_before) {
            av_frame_unref(d->frame);
            continue;
        }
        int w = d->frame->width, h = d->frame->height;
        if (d->flags & DECODE_RAW) {
            /* kept until the next call; no pixels converted */
            int swap = d->rotation == 90 || d->rotation == 270;
            f->width = swap ? h : w;
            f->height = swap ? w : h;
            f->rgb = f->gray = NULL;
            f->rgb_stride = f->gray_stride = 0;
            f->av = d->frame;
        } else {
            int want = decoder_want(d);
            int rc = convert(d->conv, d->frame, want, err, errlen);
            av_frame_unref(d->frame);
            if (rc)
                return rc;
            fill_pixels(d->conv, w, h, want, f);
            f->av = NULL;
        }
        f->t = t;
        f->duration = dur;
        f->index = d->index++;
        return 1;
    }
}

int image_read_rgb(const char *path, uint8_t **rgb, int *width, int *height, char *err, size_t errlen)
{
    *rgb = NULL;
    struct decoder *d;
    int rc = decoder_open(path, 0, &d, err, errlen);
    if (rc)
        return rc;
    struct decoded_frame f;
    rc = decoder_next(d, &f, err, errlen);
    if (rc == 0) {
        snprintf(err, errlen, "%s: no picture could be decoded", path);
        rc = -EINVAL;
    } else if (rc == 1) {
        *rgb = malloc((size_t)f.width * f.height * 3);
        if (!*rgb) {
            rc = -ENOMEM;
        } else {
            for (int y = 0; y < f.height; y++)
                memcpy(*rgb + (size_t)y * f.width * 3, f.rgb + (size_t)y * f.rgb_stride, (size_t)f.width * 3);
            *width = f.width;
            *height = f.height;
            rc = 0;
        }
    }
    decoder_close(d);
    return rc;
}
