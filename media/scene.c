/* FFmpeg's scene score between consecutive pictures (see scene.h). */
#include "scene.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

struct scene_scorer {
    AVFrame *prev;    /* the previous picture, as compared (a reference or our conversion) */
    AVFrame *spare;   /* a conversion buffer for the next picture */
    int prev_ours;    /* prev is a conversion: its buffer can take the next one */
    double prev_mafd;
    struct SwsContext *sws;
};

int scene_scorer_new(struct scene_scorer **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

void scene_scorer_free(struct scene_scorer *s)
{
    if (!s)
        return;
    av_frame_free(&s->prev);
    av_frame_free(&s->spare);
    sws_freeContext(s->sws);
    free(s);
}

uint64_t scene_sad8(const uint8_t *a, int astride, const uint8_t *b, int bstride, int w, int h)
{
    uint64_t sum = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *p = a + (ptrdiff_t)y * astride, *q = b + (ptrdiff_t)y * bstride;
        uint32_t row = 0; /* w * 255 fits */
        for (int x = 0; x < w; x++)
            row += (uint32_t)abs((int)p[x] - (int)q[x]);
        sum += row;
    }
    return sum;
}

uint64_t scene_sad16(const uint8_t *a, int astride, const uint8_t *b, int bstride, int w, int h)
{
    uint64_t sum = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *p = a + (ptrdiff_t)y * astride, *q = b + (ptrdiff_t)y * bstride;
        for (int x = 0; x < w; x++) {
            uint16_t u, v;
            memcpy(&u, p + 2 * x, 2);
            memcpy(&v, q + 2 * x, 2);
            sum += (uint64_t)abs((int)u - (int)v);
        }
    }
    return sum;
}

/* How FFmpeg's filter compares pictures of this format: its luma plane
 * (YUV, grey), or the packed bytes (RGB24 and kin); 0: convert first. */
enum layout { CONVERT, LUMA8, LUMA16, PACKED8 };

static enum layout layout_of(const AVPixFmtDescriptor *d)
{
    if (!d || (d->flags & (AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_HWACCEL |
                           AV_PIX_FMT_FLAG_FLOAT | AV_PIX_FMT_FLAG_BE)))
        return CONVERT;
    const AVComponentDescriptor *y = &d->comp[0];
    if (d->flags & AV_PIX_FMT_FLAG_RGB) {
        /* the packed RGB formats FFmpeg's filter takes: every byte counts */
        static const char *const packed[] = {"rgb24", "bgr24", "rgba", "abgr", "bgra"};
        for (size_t i = 0; i < sizeof packed / sizeof *packed; i++)
            if (!strcmp(d->name, packed[i]))
                return PACKED8;
        return CONVERT;
    }
    int planar_yuv = (d->flags & AV_PIX_FMT_FLAG_PLANAR) && d->nb_components >= 3;
    int grey = d->nb_components <= 2;
    if (!planar_yuv && !grey)
        return CONVERT; /* packed YUV (yuyv422, ...) */
    if (y->plane != 0 || y->shift || y->offset)
        return CONVERT;
    if (y->depth == 8 && y->step == 1)
        return LUMA8;
    if (y->depth > 8 && y->depth <= 16 && y->step == 2)
        return LUMA16;
    return CONVERT;
}

/* pic in s->spare as yuv420p (from YUV and grey: the luma samples are
 * copied as they are, where a conversion to grey would rescale them) or
 * RGB24. */
static int convert(struct scene_scorer *s, const AVFrame *pic)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(pic->format);
    int to = d && (d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P;
    if (!s->spare && !(s->spare = av_frame_alloc()))
        return -ENOMEM;
    if (s->spare->width != pic->width || s->spare->height != pic->height || s->spare->format != to ||
        !s->spare->data[0]) {
        av_frame_unref(s->spare);
        s->spare->format = to;
        s->spare->width = pic->width;
        s->spare->height = pic->height;
        if (av_frame_get_buffer(s->spare, 0) < 0)
            return -ENOMEM;
    }
    s->sws = sws_getCachedContext(s->sws, pic->width, pic->height, pic->format, pic->width, pic->height, to,
                                  SWS_BICUBIC, NULL, NULL, NULL);
    if (!s->sws)
        return -EINVAL;
    sws_scale(s->sws, (const uint8_t *const *)pic->data, pic->linesize, 0, pic->height, s->spare->data,
              s->spare->linesize);
    return 0;
}

int scene_score(struct scene_scorer *s, const AVFrame *pic, double *score)
{
    *score = 0;
    AVFrame *cur;
    int ours = layout_of(av_pix_fmt_desc_get(pic->format)) == CONVERT;
    if (!ours) {
        if (!(cur = av_frame_clone(pic)))
            return -ENOMEM;
    } else {
        int rc = convert(s, pic);
        if (rc)
            return rc;
        cur = s->spare;
        s->spare = NULL;
    }
    AVFrame *prev = s->prev;
    if (prev && prev->width == cur->width && prev->height == cur->height && prev->format == cur->format) {
        const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(cur->format);
        enum layout l = layout_of(d);
        uint64_t sad, count;
        double scale = 1;
        if (l == LUMA16) {
            sad = scene_sad16(cur->data[0], cur->linesize[0], prev->data[0], prev->linesize[0], cur->width,
                              cur->height);
            scale = (double)(1u << (d->comp[0].depth - 8));
            count = (uint64_t)cur->width * cur->height;
        } else {
            int w = l == PACKED8 ? cur->width * d->comp[0].step : cur->width;
            sad = scene_sad8(cur->data[0], cur->linesize[0], prev->data[0], prev->linesize[0], w, cur->height);
            count = (uint64_t)w * cur->height;
        }
        double mafd = count ? (double)sad / count / scale : 0;
        double diff = fabs(mafd - s->prev_mafd);
        double v = fmin(mafd, diff) / 100.0;
        *score = v < 0 ? 0 : v > 1 ? 1 : v;
        s->prev_mafd = mafd;
    }
    /* a conversion's buffer takes the next conversion */
    if (prev && s->prev_ours && !s->spare)
        s->spare = prev;
    else
        av_frame_free(&prev);
    s->prev = cur;
    s->prev_ours = ours;
    return 0;
}
