// dlibc.cpp: the implementation of dlibc.h, and the only C++ in dfew. It
// wraps dlib's HOG face detector and shape predictor behind opaque handles,
// reads the caller's pixels in place (no copy) through dlib's generic image
// interface, and turns every exception into a negative errno. Built with -O3
// whatever the build type: dlib's templates are about 60x slower at -O0.
//
// Two fast paths give dlib's own answers at a fraction of the cost (both are
// checked against dlib's code in tests/unit/test_dlibc.c):
//   - the shape predictor runs from a flat copy of the model (splits and
//     leaves in contiguous arrays, the box transform computed once per face
//     instead of once per cascade); the arithmetic is dlib's, so the points
//     are the same;
//   - face detection near a box or above a size computes only the image
//     pyramid levels and windows that can hold such a face, sampled exactly
//     as dlib's pyramid_down<6> samples the whole frame, and runs dlib's
//     scanner on them; where the window covers the face, the boxes and scores
//     are those of a detection on the whole frame.
#include "dlibc.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <malloc.h>
#include <cstdint>
#include <string>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <new>
#include <stdexcept>
#include <thread>
#include <vector>

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <dlib/revision.h>
#include <dlib/simd.h>
#include <emmintrin.h>

namespace {

// A read-only view of caller memory that dlib's algorithms accept as an image
// (dlib's generic image interface, found by argument-dependent lookup).
template <typename P> struct ext_image {
    const unsigned char *data;
    long nr, nc, stride;
};
template <typename P> inline long num_rows(const ext_image<P> &img) { return img.nr; }
template <typename P> inline long num_columns(const ext_image<P> &img) { return img.nc; }
template <typename P> inline long width_step(const ext_image<P> &img) { return img.stride; }
template <typename P> inline const void *image_data(const ext_image<P> &img) { return img.data; }
// dlib writes only into images it allocated itself; its image views ask for
// this overload, and nothing is ever written through it.
template <typename P> inline void *image_data(ext_image<P> &img) { return const_cast<unsigned char *>(img.data); }

} // namespace

namespace dlib {
template <typename P> struct image_traits<ext_image<P>> {
    typedef P pixel_type;
};
} // namespace dlib

namespace {

typedef dlib::frontal_face_detector::image_scanner_type scanner_t;

// How one pyramid level samples the level below it: dlib's pyramid_down<6>
// is resize_image() with bilinear weights, whose grey path walks the columns
// four at a time in single precision (the x positions accumulate in floats)
// and finishes the row in double precision. These tables hold, per output
// column and row, the source pixels and weights that code uses, so that any
// window of a level can be computed alone with the same result.
struct col_tab {
    int left, right;
    float lr, inv_lr; // the vector path's weights
    bool vec;         // computed by the four-column path
};
struct row_tab {
    int top, bottom;
    double tb;
};
struct level_geo {
    long w, h; // this level's size
    std::vector<col_tab> cols;
    std::vector<row_tab> rows;
};

void sample_tables(long in_w, long in_h, level_geo &g)
{
    g.cols.resize(g.w);
    g.rows.resize(g.h);
    const double x_scale = (in_w - 1) / (double)std::max<long>(g.w - 1, 1);
    const double y_scale = (in_h - 1) / (double)std::max<long>(g.h - 1, 1);
    double y = -y_scale;
    for (long r = 0; r < g.h; r++) {
        y += y_scale;
        row_tab &t = g.rows[r];
        t.top = (int)std::floor(y);
        t.bottom = (int)std::min<long>(t.top + 1, in_h - 1);
        t.tb = y - t.top;
    }
    // the four-column path, as long as a group's last right neighbour is inside
    double x = -4 * x_scale;
    const dlib::simd4f step = 4 * x_scale;
    dlib::simd4f sx(x, x + x_scale, x + 2 * x_scale, x + 3 * x_scale);
    long c = 0;
    for (;; c += 4) {
        sx += step;
        dlib::simd4i left = dlib::simd4i(sx);
        dlib::simd4f lr = sx - left;
        dlib::simd4f inv = 1 - lr;
        dlib::simd4i right = left + 1;
        dlib::int32 fl[4], fr[4];
        float flr[4], finv[4];
        left.store(fl);
        right.store(fr);
        lr.store(flr);
        inv.store(finv);
        if (fr[3] >= in_w)
            break;
        for (int k = 0; k < 4; k++)
            if (c + k < g.w)
                g.cols[c + k] = col_tab{fl[k], fr[k], flr[k], finv[k], true};
    }
    x = -x_scale + c * x_scale;
    for (; c < g.w; ++c) {
        x += x_scale;
        col_tab &t = g.cols[c];
        t.left = (int)std::floor(x);
        t.right = (int)std::min<long>(t.left + 1, in_w - 1);
        t.lr = (float)(x - t.left);
        t.inv_lr = 0;
        t.vec = false;
    }
}

// One pixel of a level from the level below, as resize_image computes it.
inline unsigned char sample(const col_tab &ct, const row_tab &rt, float tl, float tr, float bl, float br)
{
    if (ct.vec) {
        const float tbf = (float)rt.tb, itbf = (float)(1 - rt.tb);
        const float tlf = itbf * ct.inv_lr, trf = itbf * ct.lr, blf = tbf * ct.inv_lr, brf = tbf * ct.lr;
        float v = tlf * tl;
        v = v + trf * tr;
        v = v + blf * bl;
        v = v + brf * br;
        return static_cast<unsigned char>(v + 0.5);
    }
    const float lr = ct.lr;
    const float temp = (1 - rt.tb) * ((1 - lr) * tl + lr * tr) + rt.tb * ((1 - lr) * bl + lr * br);
    unsigned char out;
    dlib::assign_pixel(out, temp);
    return out;
}

// A rectangle of a level, [x0, x1) x [y0, y1), with its pixels.
struct window {
    long x0, y0, x1, y1;
    const unsigned char *px; // pixel (x0, y0)
    long stride;
};

} // namespace

struct dlibc_detector {
    dlib::frontal_face_detector det;
    // the near/min detection paths
    scanner_t one_level; // dlib's scanner limited to one pyramid level
    std::vector<scanner_t::fhog_filterbank> fb;
    std::vector<double> thresh;
    dlib::test_box_overlap overlap;
    long cell, padding, min_w, min_h, max_levels;
    // the pyramid of the last image size seen
    long geo_w = -1, geo_h = -1;
    std::vector<level_geo> levels; // levels[0] is the image itself
    std::vector<double> box_size;  // a detection's box side at each level, image pixels
    std::vector<std::vector<unsigned char>> bufs;
};

struct dlibc_predictor {
    dlib::shape_predictor sp; // DLIBC_PREDICTOR_STOCK only
    bool stock = false;
    // the flat model
    dlib::matrix<float, 0, 1> initial_shape;
    unsigned long cascades = 0, trees = 0, depth_splits = 0, leaves = 0, dims = 0;
    std::vector<unsigned long> nfeat; // feature pixels per cascade
    std::vector<std::vector<unsigned long>> anchor;
    std::vector<std::vector<dlib::vector<float, 2>>> deltas;
    struct split {
        unsigned int i1, i2;
        float thresh;
    };
    std::vector<split> splits; // [cascade][tree][split] (when not mapped)
    std::vector<float> leaf;   // [cascade][tree][leaf][dims] (when not mapped)
    const split *splits_p = nullptr;
    const float *leaf_p = nullptr;
    void *map = nullptr; // the cache file, mapped (splits_p, leaf_p point into it)
    size_t map_len = 0;
    ~dlibc_predictor()
    {
        if (map)
            munmap(map, map_len);
    }
};

static int valid(const dlibc_image *img)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0)
        return 0;
    if (img->format != DLIBC_GRAY8 && img->format != DLIBC_RGB24)
        return 0;
    return img->stride >= img->width * img->format;
}

template <typename P> static ext_image<P> view(const dlibc_image *img)
{
    return ext_image<P>{img->data, img->height, img->width, img->stride};
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        std::snprintf(err, errlen, fmt, a, b);
}

template <typename P>
static std::vector<dlib::rect_detection> detect_in(dlib::frontal_face_detector &det, const ext_image<P> &in,
                                                   int upsample)
{
    std::vector<dlib::rect_detection> dets;
    if (upsample <= 0) {
        det(in, dets, 0.0);
        return dets;
    }
    // dlib's own recipe (its Python API does the same): bilinear 2x per level,
    // boxes mapped back with the matching pyramid.
    dlib::pyramid_down<2> pyr;
    dlib::array2d<P> up;
    dlib::pyramid_up(in, up, pyr);
    for (int i = 1; i < upsample; i++)
        dlib::pyramid_up(up, pyr);
    det(up, dets, 0.0);
    for (auto &d : dets)
        for (int i = 0; i < upsample; i++)
            d.rect = pyr.rect_down(d.rect);
    return dets;
}

static int put_boxes(std::vector<dlib::rect_detection> &dets, dlibc_box *boxes, int max)
{
    std::stable_sort(dets.begin(), dets.end(), [](const dlib::rect_detection &a, const dlib::rect_detection &b) {
        return a.detection_confidence > b.detection_confidence;
    });
    for (size_t i = 0; i < dets.size() && (int)i < max; i++) {
        const dlib::rectangle &r = dets[i].rect;
        boxes[i].x0 = (double)r.left();
        boxes[i].y0 = (double)r.top();
        boxes[i].x1 = (double)r.right() + 1;
        boxes[i].y1 = (double)r.bottom() + 1;
        boxes[i].score = dets[i].detection_confidence;
    }
    return (int)std::min<size_t>(dets.size(), 1 << 20);
}

extern "C" int dlibc_detector_new(dlibc_detector **out, char *err, size_t errlen)
{
    *out = nullptr;
    try {
        dlibc_detector *d = new dlibc_detector;
        d->det = dlib::get_frontal_face_detector();
        const scanner_t &sc = d->det.get_scanner();
        d->one_level.copy_configuration(sc);
        d->one_level.set_max_pyramid_levels(1);
        for (unsigned long i = 0; i < d->det.num_detectors(); i++) {
            const auto &w = d->det.get_w(i);
            d->fb.push_back(sc.build_fhog_filterbank(w));
            d->thresh.push_back(w(sc.get_num_dimensions()));
        }
        d->overlap = d->det.get_overlap_tester();
        d->cell = (long)sc.get_cell_size();
        d->padding = (long)sc.get_padding();
        d->min_w = (long)sc.get_min_pyramid_layer_width();
        d->min_h = (long)sc.get_min_pyramid_layer_height();
        d->max_levels = (long)sc.get_max_pyramid_levels();
        *out = d;
        return 0;
    } catch (const std::bad_alloc &) {
        set_err(err, errlen, "out of memory creating the dlib face detector%s%s", "", "");
        return -ENOMEM;
    } catch (const std::exception &e) {
        set_err(err, errlen, "dlib face detector: %s%s", e.what(), "");
        return -EIO;
    }
}

extern "C" int dlibc_detector_clone(const dlibc_detector *src, dlibc_detector **out)
{
    *out = nullptr;
    if (!src)
        return -EINVAL;
    try {
        // the scanners are not copyable: the configuration is, as in
        // dlibc_detector_new, from the loaded detector instead of the model
        dlibc_detector *d = new dlibc_detector;
        d->det = src->det;
        d->one_level.copy_configuration(src->one_level);
        d->one_level.set_max_pyramid_levels(1);
        d->fb = src->fb;
        d->thresh = src->thresh;
        d->overlap = src->overlap;
        d->cell = src->cell;
        d->padding = src->padding;
        d->min_w = src->min_w;
        d->min_h = src->min_h;
        d->max_levels = src->max_levels;
        *out = d;
        return 0;
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

extern "C" void dlibc_detector_free(dlibc_detector *d) { delete d; }

extern "C" int dlibc_detect(dlibc_detector *d, const dlibc_image *img, int upsample, dlibc_box *boxes, int max)
{
    if (!d || !valid(img) || upsample < 0 || upsample > 3 || max < 0)
        return -EINVAL;
    try {
        std::vector<dlib::rect_detection> dets =
            img->format == DLIBC_GRAY8 ? detect_in(d->det, view<unsigned char>(img), upsample)
                                       : detect_in(d->det, view<dlib::rgb_pixel>(img), upsample);
        return put_boxes(dets, boxes, max);
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

// ---------------------------------------------------------------------------
// Detection on part of the pyramid.

// The pyramid of a w x h image as dlib's scanner builds it: level sizes,
// sampling tables and the box side a detection has at each level.
static void ensure_geometry(dlibc_detector *d, long w, long h)
{
    if (d->geo_w == w && d->geo_h == h)
        return;
    d->levels.clear();
    d->box_size.clear();
    // the number of levels, as create_fhog_pyramid counts them
    dlib::pyramid_down<6> pyr;
    dlib::rectangle rect(w, h);
    long n = 0;
    do {
        rect = pyr.rect_down(rect);
        ++n;
    } while (rect.width() >= d->min_w && rect.height() >= d->min_h && n < d->max_levels);
    d->levels.resize(n);
    d->levels[0].w = w;
    d->levels[0].h = h;
    for (long l = 1; l < n; l++) {
        level_geo &g = d->levels[l];
        const level_geo &p = d->levels[l - 1];
        // pyramid_down<N>: ((N-1)*size)/N + 0.5, truncated
        g.w = (long)((5 * p.w) / 6 + 0.5);
        g.h = (long)((5 * p.h) / 6 + 0.5);
        sample_tables(p.w, p.h, g);
    }
    // a detection's box: the window less its padding, mapped to the image
    // (away from the origin: fhog_to_image rounds negative corners the other way)
    unsigned long fw, fh;
    fw = d->det.get_scanner().get_fhog_window_width();
    fh = d->det.get_scanner().get_fhog_window_height();
    dlib::default_fhog_feature_extractor fe;
    dlib::rectangle fbox = fe.feats_to_image(dlib::centered_rect(dlib::point(1000, 1000), fw - 2 * d->padding,
                                                                 fh - 2 * d->padding),
                                             (int)d->cell, (int)fh, (int)fw);
    for (long l = 0; l < n; l++) {
        dlib::drectangle r = pyr.rect_up(dlib::drectangle(fbox), (unsigned)l);
        d->box_size.push_back(std::sqrt(r.width() * r.height()));
    }
    d->bufs.assign(n, std::vector<unsigned char>());
    d->geo_w = w;
    d->geo_h = h;
}

// The pixels of `want` (in level l's coordinates) for every level up to top,
// computed from level 0 through the windows each level needs of the one
// below. want[l] may be empty (x1 <= x0) for levels only passed through.
// Plans the windows: what each level needs of the one below, from the top
// down (rectangles only). Returns the pixels to compute (levels >= 1).
static long plan_windows(dlibc_detector *d, std::vector<window> &want, long top)
{
    long area = 0;
    for (long l = top; l >= 1; l--) {
        window &w = want[l];
        if (w.x1 <= w.x0)
            continue;
        const level_geo &g = d->levels[l];
        window need{d->levels[l - 1].w, d->levels[l - 1].h, 0, 0, nullptr, 0};
        for (long c = w.x0; c < w.x1; c++) {
            need.x0 = std::min<long>(need.x0, g.cols[c].left);
            need.x1 = std::max<long>(need.x1, g.cols[c].right + 1);
        }
        for (long r = w.y0; r < w.y1; r++) {
            need.y0 = std::min<long>(need.y0, g.rows[r].top);
            need.y1 = std::max<long>(need.y1, g.rows[r].bottom + 1);
        }
        window &b = want[l - 1];
        if (b.x1 <= b.x0) {
            b = need;
        } else {
            b.x0 = std::min(b.x0, need.x0);
            b.y0 = std::min(b.y0, need.y0);
            b.x1 = std::max(b.x1, need.x1);
            b.y1 = std::max(b.y1, need.y1);
        }
        area += (w.x1 - w.x0) * (w.y1 - w.y0);
    }
    return area;
}

// Computes the planned windows' pixels, level by level from the image.
static void fill_windows(dlibc_detector *d, const ext_image<unsigned char> &img, std::vector<window> &want, long top)
{
    // level 0 is the caller's image
    if (want[0].x1 > want[0].x0) {
        want[0].px = img.data + want[0].y0 * img.stride + want[0].x0;
        want[0].stride = img.stride;
    }
    for (long l = 1; l <= top; l++) {
        window &w = want[l];
        if (w.x1 <= w.x0)
            continue;
        const window &s = want[l - 1];
        const level_geo &g = d->levels[l];
        std::vector<unsigned char> &buf = d->bufs[l];
        long ww = w.x1 - w.x0, wh = w.y1 - w.y0;
        buf.resize((size_t)ww * wh);
        for (long r = w.y0; r < w.y1; r++) {
            const row_tab &rt = g.rows[r];
            const unsigned char *top_row = s.px + (rt.top - s.y0) * s.stride - s.x0;
            const unsigned char *bot_row = s.px + (rt.bottom - s.y0) * s.stride - s.x0;
            unsigned char *o = buf.data() + (r - w.y0) * ww - w.x0;
            long c = w.x0;
            /* four columns at a time where dlib's vector path made them: the
             * same single-precision products and sums, lane by lane */
            const __m128 tbf = _mm_set1_ps((float)rt.tb), itbf = _mm_set1_ps((float)(1 - rt.tb));
            const __m128 half = _mm_set1_ps(0.5f);
            for (; c + 4 <= w.x1 && g.cols[c + 3].vec && g.cols[c].vec; c += 4) {
                const col_tab *ct = &g.cols[c];
                __m128 lr = _mm_setr_ps(ct[0].lr, ct[1].lr, ct[2].lr, ct[3].lr);
                __m128 ilr = _mm_setr_ps(ct[0].inv_lr, ct[1].inv_lr, ct[2].inv_lr, ct[3].inv_lr);
                __m128 tl = _mm_setr_ps(top_row[ct[0].left], top_row[ct[1].left], top_row[ct[2].left],
                                        top_row[ct[3].left]);
                __m128 tr = _mm_setr_ps(top_row[ct[0].right], top_row[ct[1].right], top_row[ct[2].right],
                                        top_row[ct[3].right]);
                __m128 bl = _mm_setr_ps(bot_row[ct[0].left], bot_row[ct[1].left], bot_row[ct[2].left],
                                        bot_row[ct[3].left]);
                __m128 br = _mm_setr_ps(bot_row[ct[0].right], bot_row[ct[1].right], bot_row[ct[2].right],
                                        bot_row[ct[3].right]);
                __m128 v = _mm_mul_ps(_mm_mul_ps(itbf, ilr), tl);
                v = _mm_add_ps(v, _mm_mul_ps(_mm_mul_ps(itbf, lr), tr));
                v = _mm_add_ps(v, _mm_mul_ps(_mm_mul_ps(tbf, ilr), bl));
                v = _mm_add_ps(v, _mm_mul_ps(_mm_mul_ps(tbf, lr), br));
                /* (unsigned char)(v + 0.5): exact in single precision below 255.5 */
                __m128i q = _mm_cvttps_epi32(_mm_add_ps(v, half));
                q = _mm_packs_epi32(q, q);
                q = _mm_packus_epi16(q, q);
                int32_t four = _mm_cvtsi128_si32(q);
                memcpy(o + c, &four, 4);
            }
            for (; c < w.x1; c++) {
                const col_tab &ct = g.cols[c];
                o[c] = sample(ct, rt, top_row[ct.left], top_row[ct.right], bot_row[ct.left], bot_row[ct.right]);
            }
        }
        w.px = buf.data();
        w.stride = ww;
    }
}

// dlib's scanner on one window of level l; detections whose filter reads
// only cells that the whole frame's pyramid would compute the same way are
// kept, in image coordinates.
static void scan_window(dlibc_detector *d, const window &w, long l, std::vector<dlib::rect_detection> &out)
{
    const level_geo &g = d->levels[l];
    ext_image<unsigned char> v{w.px, w.y1 - w.y0, w.x1 - w.x0, w.stride};
    d->one_level.load(v);
    // cells near a window edge that is not the level's edge see other
    // pixels than in the whole frame (a cell's histogram takes pixels from
    // the next cell, its normalisation the cells around it): keep the filter
    // two cells off them (one was enough on every test video; two is what
    // the histogram and the normalisation reach)
    const long guard = 2 * d->cell + 2;
    const long lo_x = w.x0 == 0 ? -1000000 : w.x0 + guard, lo_y = w.y0 == 0 ? -1000000 : w.y0 + guard;
    const long hi_x = w.x1 == g.w ? 1000000 : w.x1 - guard, hi_y = w.y1 == g.h ? 1000000 : w.y1 - guard;
    dlib::pyramid_down<6> pyr;
    std::vector<std::pair<double, dlib::rectangle>> dets;
    for (size_t i = 0; i < d->fb.size(); i++) {
        d->one_level.detect(d->fb[i], dets, d->thresh[i]);
        for (auto &p : dets) {
            dlib::rectangle r = dlib::translate_rect(p.second, dlib::point(w.x0, w.y0));
            // the filter's cells: the box grown by the padding
            dlib::rectangle f = dlib::grow_rect(r, d->padding * d->cell);
            if (f.left() < lo_x || f.top() < lo_y || f.right() >= hi_x || f.bottom() >= hi_y)
                continue;
            dlib::rect_detection rd;
            rd.detection_confidence = p.first - d->thresh[i];
            rd.weight_index = i;
            rd.rect = pyr.rect_up(r, (unsigned)l);
            out.push_back(rd);
        }
    }
}

// Non-maximum suppression as object_detector does it: best first, a box is
// dropped when it overlaps one already kept (whatever sub-detector found it).
static void suppress(const dlibc_detector *d, std::vector<dlib::rect_detection> &all,
                     std::vector<dlib::rect_detection> &kept)
{
    std::sort(all.rbegin(), all.rend());
    for (const auto &c : all) {
        bool over = false;
        for (const auto &k : kept)
            if (d->overlap(k.rect, c.rect)) {
                over = true;
                break;
            }
        if (!over)
            kept.push_back(c);
    }
}

// The first level whose boxes are at least `size` image pixels (levels.size()
// when none).
static long level_for(const dlibc_detector *d, double size)
{
    long n = (long)d->box_size.size();
    for (long l = 0; l < n; l++)
        if (d->box_size[l] >= size)
            return l;
    return n;
}

// Levels from..to of the whole frame: each computed with dlib's own
// pyramid_down<6> from the one below (level 0 is the picture), as the full
// scan computes them, and those from `from` up scanned whole.
static void scan_levels(dlibc_detector *d, const ext_image<unsigned char> &in, long from, long to,
                        std::vector<dlib::rect_detection> &out)
{
    dlib::pyramid_down<6> pyr;
    dlib::array2d<unsigned char> a, b;
    for (long l = 0; l <= to; l++) {
        window w;
        if (l == 0) {
            w = window{0, 0, in.nc, in.nr, in.data, in.stride};
        } else {
            if (l == 1)
                pyr(in, a);
            else {
                pyr(a, b);
                dlib::swap(a, b);
            }
            if (a.nc() != d->levels[l].w || a.nr() != d->levels[l].h)
                throw std::runtime_error("our pyramid geometry is not dlib's"); /* a dlib we were not built for */
            w = window{0, 0, (long)a.nc(), (long)a.nr(), (const unsigned char *)dlib::image_data(a),
                       (long)dlib::width_step(a)};
        }
        if (l >= from)
            scan_window(d, w, l, out);
    }
}

extern "C" int dlibc_detect_min2(dlibc_detector *d, dlibc_detector *helper, const dlibc_image *img, double min_size,
                                 dlibc_box *boxes, int max)
{
    if (!d || !valid(img) || img->format != DLIBC_GRAY8 || max < 0 || !(min_size >= 0) || helper == d)
        return -EINVAL;
    try {
        ext_image<unsigned char> in = view<unsigned char>(img);
        ensure_geometry(d, img->width, img->height);
        // a face of min_size can score best one level below its own size
        long l0 = level_for(d, min_size / 1.3);
        long n = (long)d->levels.size();
        if (l0 > 0)
            l0--;
        std::vector<dlib::rect_detection> dets;
        if (l0 == 0 && !helper) {
            d->det(in, dets, 0.0);
            return put_boxes(dets, boxes, max);
        }
        if (l0 >= n)
            return 0;
        std::vector<dlib::rect_detection> all;
        if (!helper || n - l0 < 2) {
            scan_levels(d, in, l0, n - 1, all);
        } else {
            // two threads, about half the pixels each: the lower levels here,
            // the upper ones (their pyramid built again from the picture,
            // which costs little beside the scan) on the helper's scanner
            ensure_geometry(helper, img->width, img->height);
            double total = 0, half = 0;
            for (long l = l0; l < n; l++)
                total += (double)d->levels[l].w * d->levels[l].h;
            long m = l0 + 1;
            for (long l = l0; l < n - 1; l++) {
                half += (double)d->levels[l].w * d->levels[l].h;
                m = l + 1;
                if (half >= total / 2)
                    break;
            }
            std::vector<dlib::rect_detection> upper;
            std::exception_ptr failed;
            std::thread th([&] {
                try {
                    scan_levels(helper, in, m, n - 1, upper);
                } catch (...) {
                    failed = std::current_exception();
                }
            });
            try {
                scan_levels(d, in, l0, m - 1, all);
            } catch (...) {
                th.join();
                throw;
            }
            th.join();
            if (failed)
                std::rethrow_exception(failed);
            all.insert(all.end(), upper.begin(), upper.end());
        }
        suppress(d, all, dets);
        return put_boxes(dets, boxes, max);
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

extern "C" int dlibc_detect_min(dlibc_detector *d, const dlibc_image *img, double min_size, dlibc_box *boxes,
                                int max)
{
    return dlibc_detect_min2(d, NULL, img, min_size, boxes, max);
}

// Near a large face the windows that dlib's pyramid would need from the
// full-size picture cost more than they save (a 500 px face needs a 900 px
// window at every level up to its own). Then the window of level lo is
// resampled straight from the picture (bilinear, one step) and dlib's scanner
// builds the levels above from it: the same sizes of face are looked for,
// on pixels a little smoother than the full pyramid's, so the boxes match the
// whole-frame detection's to about a cell (not exactly, see dlibc.h).
static int detect_near_resized(dlibc_detector *d, const ext_image<unsigned char> &in, const std::vector<window> &scan,
                               long lo, long hi, dlibc_box *boxes, int max)
{
    const window &w = scan[lo];
    const level_geo &g = d->levels[lo];
    // the window's corners on the picture
    double sx = (double)d->levels[0].w / g.w, sy = (double)d->levels[0].h / g.h;
    long X0 = std::max<long>(0, (long)std::floor(w.x0 * sx)), Y0 = std::max<long>(0, (long)std::floor(w.y0 * sy));
    long X1 = std::min<long>(d->levels[0].w, (long)std::ceil(w.x1 * sx));
    long Y1 = std::min<long>(d->levels[0].h, (long)std::ceil(w.y1 * sy));
    ext_image<unsigned char> crop{in.data + Y0 * in.stride + X0, Y1 - Y0, X1 - X0, in.stride};
    dlib::array2d<unsigned char> a(w.y1 - w.y0, w.x1 - w.x0);
    dlib::resize_image(crop, a);
    scanner_t sc;
    sc.copy_configuration(d->det.get_scanner());
    sc.set_max_pyramid_levels((unsigned long)(hi - lo + 1));
    sc.set_min_pyramid_layer_size(1, 1);
    sc.load(a);
    const double kx = (double)(X1 - X0) / (double)a.nc(), ky = (double)(Y1 - Y0) / (double)a.nr();
    std::vector<dlib::rect_detection> all, dets;
    std::vector<std::pair<double, dlib::rectangle>> raw;
    for (size_t i = 0; i < d->fb.size(); i++) {
        sc.detect(d->fb[i], raw, d->thresh[i]);
        for (auto &p : raw) {
            const dlib::rectangle &r = p.second;
            dlib::rect_detection rd;
            rd.detection_confidence = p.first - d->thresh[i];
            rd.weight_index = i;
            rd.rect = dlib::rectangle(X0 + std::lround(r.left() * kx), Y0 + std::lround(r.top() * ky),
                                      X0 + std::lround((r.right() + 1) * kx) - 1,
                                      Y0 + std::lround((r.bottom() + 1) * ky) - 1);
            all.push_back(rd);
        }
    }
    suppress(d, all, dets);
    return put_boxes(dets, boxes, max);
}

extern "C" int dlibc_detect_near(dlibc_detector *d, const dlibc_image *img, const dlibc_box *near, double margin,
                                 double size_range, dlibc_box *boxes, int max)
{
    if (!d || !valid(img) || img->format != DLIBC_GRAY8 || !near || !(near->x1 > near->x0) ||
        !(near->y1 > near->y0) || !(margin >= 0) || !(size_range >= 1) || max < 0)
        return -EINVAL;
    try {
        ext_image<unsigned char> in = view<unsigned char>(img);
        ensure_geometry(d, img->width, img->height);
        const long n = (long)d->levels.size();
        const double size = std::sqrt((near->x1 - near->x0) * (near->y1 - near->y0));
        long lo = level_for(d, size / size_range), hi = level_for(d, size * size_range + 1e-9);
        if (hi >= n || d->box_size[hi] > size * size_range)
            hi--;
        if (lo > hi)
            return 0;
        // the search area at each level: the box and its margin, the
        // filter's padding and the guard cells, aligned to the cell grid
        std::vector<window> want(n, window{0, 0, 0, 0, nullptr, 0});
        dlib::pyramid_down<6> pyr;
        const double mx = margin * (near->x1 - near->x0), my = margin * (near->y1 - near->y0);
        dlib::drectangle area(near->x0 - mx, near->y0 - my, near->x1 - 1 + mx, near->y1 - 1 + my);
        const long pad = (d->padding + 2) * d->cell + 2;
        for (long l = lo; l <= hi; l++) {
            dlib::drectangle r = pyr.rect_down(area, (unsigned)l);
            const level_geo &g = d->levels[l];
            long x0 = std::max<long>(0, (long)std::floor(r.left()) - pad);
            long y0 = std::max<long>(0, (long)std::floor(r.top()) - pad);
            x0 -= x0 % d->cell;
            y0 -= y0 % d->cell;
            long x1 = std::min<long>(g.w, (long)std::ceil(r.right()) + 1 + pad);
            long y1 = std::min<long>(g.h, (long)std::ceil(r.bottom()) + 1 + pad);
            if (x1 - x0 < 8 || y1 - y0 < 8)
                continue;
            want[l] = window{x0, y0, x1, y1, nullptr, 0};
        }
        std::vector<window> scan = want;
        long chain = plan_windows(d, want, hi), scanned = 0;
        for (long l = lo; l <= hi; l++)
            scanned += (scan[l].x1 - scan[l].x0) * (scan[l].y1 - scan[l].y0);
        if (lo >= 3 && chain > 8 * scanned && chain > 200000)
            return detect_near_resized(d, in, scan, lo, hi, boxes, max);
        fill_windows(d, in, want, hi);
        std::vector<dlib::rect_detection> all, dets;
        for (long l = lo; l <= hi; l++) {
            if (scan[l].x1 <= scan[l].x0)
                continue;
            // the window built for level l may be larger (lower levels pass
            // through it); scan only the part asked for
            window w = want[l];
            window s = scan[l];
            s.px = w.px + (s.y0 - w.y0) * w.stride + (s.x0 - w.x0);
            s.stride = w.stride;
            scan_window(d, s, l, all);
        }
        suppress(d, all, dets);
        return put_boxes(dets, boxes, max);
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

extern "C" int dlibc_detector_levels(dlibc_detector *d, int width, int height, double *box_sizes, int max)
{
    if (!d || width <= 0 || height <= 0 || max < 0)
        return -EINVAL;
    try {
        ensure_geometry(d, width, height);
        int n = (int)d->box_size.size();
        for (int i = 0; i < n && i < max; i++)
            box_sizes[i] = d->box_size[i];
        return n;
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    }
}

// ---------------------------------------------------------------------------
// The shape predictor.

// Reads a shape_predictor file member by member (dlib's own deserialisers,
// in the order dlib::shape_predictor writes them) into the flat layout.
static void load_flat(const char *path, dlibc_predictor *p)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw dlib::serialization_error("cannot open the file");
    int version = 0;
    dlib::deserialize(version, in);
    if (version != 1)
        throw dlib::serialization_error("unexpected shape_predictor version");
    std::vector<std::vector<dlib::impl::regression_tree>> forests;
    dlib::deserialize(p->initial_shape, in);
    dlib::deserialize(forests, in);
    dlib::deserialize(p->anchor, in);
    dlib::deserialize(p->deltas, in);
    p->dims = p->initial_shape.size();
    p->cascades = forests.size();
    if (!p->cascades || forests[0].empty() || p->anchor.size() != p->cascades || p->deltas.size() != p->cascades)
        throw dlib::serialization_error("an empty or inconsistent model");
    p->trees = forests[0].size();
    p->depth_splits = forests[0][0].splits.size();
    p->leaves = forests[0][0].leaf_values.size();
    if (p->leaves != p->depth_splits + 1)
        throw dlib::serialization_error("trees that are not complete");
    p->splits.reserve(p->cascades * p->trees * p->depth_splits);
    p->leaf.reserve(p->cascades * p->trees * p->leaves * p->dims);
    for (unsigned long c = 0; c < p->cascades; c++) {
        if (forests[c].size() != p->trees || p->anchor[c].size() != p->deltas[c].size())
            throw dlib::serialization_error("cascades of different sizes");
        p->nfeat.push_back(p->anchor[c].size());
        for (unsigned long i = 0; i < p->anchor[c].size(); i++)
            if (p->anchor[c][i] >= p->dims / 2)
                throw dlib::serialization_error("a feature anchored to no landmark");
        for (const auto &t : forests[c]) {
            if (t.splits.size() != p->depth_splits || t.leaf_values.size() != p->leaves)
                throw dlib::serialization_error("trees of different depths");
            for (const auto &s : t.splits) {
                if (s.idx1 >= p->nfeat[c] || s.idx2 >= p->nfeat[c])
                    throw dlib::serialization_error("a split on a feature that does not exist");
                p->splits.push_back(dlibc_predictor::split{(unsigned)s.idx1, (unsigned)s.idx2, s.thresh});
            }
            for (const auto &v : t.leaf_values) {
                if ((unsigned long)v.size() != p->dims)
                    throw dlib::serialization_error("a leaf of another size than the shape");
                p->leaf.insert(p->leaf.end(), &v(0), &v(0) + p->dims);
            }
        }
    }
    forests.clear();
    forests.shrink_to_fit();
    malloc_trim(0); // the per-leaf allocations are gone: give their pages back
    p->splits_p = p->splits.data();
    p->leaf_p = p->leaf.data();
}

// The flat model cached in a file that later workers map instead of
// deserialising dlib's (a second instead of a few milliseconds; the pages
// are shared between the workers). Named after the model file's inode,
// size and modification time, so a changed model is never read from an old
// cache. Native layout: a cache of this machine, not an exchange format.
#define CACHE_MAGIC "DFEWSPF1"
struct cache_header {
    char magic[8];
    uint64_t src_size, src_ino;
    int64_t src_mtime_ns;
    uint32_t cascades, trees, depth_splits, leaves, dims, nfeat_total;
    uint64_t total; // file size
};

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

// Byte offsets of the arrays after the header, and the file size.
struct cache_layout {
    size_t initial, nfeat, anchor, deltas, splits, leaf, total;
};

static cache_layout layout_of(const cache_header &h)
{
    cache_layout l;
    size_t at = align64(sizeof h);
    l.initial = at;
    at = align64(at + h.dims * sizeof(float));
    l.nfeat = at;
    at = align64(at + h.cascades * sizeof(uint32_t));
    l.anchor = at;
    at = align64(at + h.nfeat_total * sizeof(uint32_t));
    l.deltas = at;
    at = align64(at + 2 * h.nfeat_total * sizeof(float));
    l.splits = at;
    at = align64(at + (size_t)h.cascades * h.trees * h.depth_splits * sizeof(dlibc_predictor::split));
    l.leaf = at;
    at += (size_t)h.cascades * h.trees * h.leaves * h.dims * sizeof(float);
    l.total = at;
    return l;
}

static std::string cache_name(const char *cache_dir, const struct stat &sb)
{
    char name[160];
    std::snprintf(name, sizeof name, "/shape-predictor-%llu-%llu-%lld.flat", (unsigned long long)sb.st_ino,
                  (unsigned long long)sb.st_size,
                  (long long)sb.st_mtim.tv_sec * 1000000000LL + (long long)sb.st_mtim.tv_nsec);
    return std::string(cache_dir) + name;
}

static bool cache_read(const char *file, const struct stat &sb, dlibc_predictor *p)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat cs;
    cache_header h;
    void *m = MAP_FAILED;
    if (fstat(fd, &cs) == 0 && (size_t)cs.st_size >= sizeof h && pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
        !std::memcmp(h.magic, CACHE_MAGIC, 8) && h.src_size == (uint64_t)sb.st_size && h.src_ino == sb.st_ino &&
        h.src_mtime_ns == (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec &&
        h.total == (uint64_t)cs.st_size && layout_of(h).total == h.total && h.leaves == h.depth_splits + 1)
        m = mmap(nullptr, (size_t)h.total, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return false;
    const cache_layout l = layout_of(h);
    const char *b = (const char *)m;
    p->map = m;
    p->map_len = (size_t)h.total;
    p->cascades = h.cascades;
    p->trees = h.trees;
    p->depth_splits = h.depth_splits;
    p->leaves = h.leaves;
    p->dims = h.dims;
    p->initial_shape.set_size(h.dims);
    std::memcpy(&p->initial_shape(0), b + l.initial, h.dims * sizeof(float));
    const uint32_t *nfeat = (const uint32_t *)(b + l.nfeat), *anchor = (const uint32_t *)(b + l.anchor);
    const float *deltas = (const float *)(b + l.deltas);
    size_t at = 0;
    p->anchor.assign(h.cascades, {});
    p->deltas.assign(h.cascades, {});
    for (uint32_t c = 0; c < h.cascades; c++) {
        if (at + nfeat[c] > h.nfeat_total)
            return false;
        p->nfeat.push_back(nfeat[c]);
        for (uint32_t i = 0; i < nfeat[c]; i++, at++) {
            p->anchor[c].push_back(anchor[at]);
            p->deltas[c].push_back(dlib::vector<float, 2>(deltas[2 * at], deltas[2 * at + 1]));
        }
    }
    p->splits_p = (const dlibc_predictor::split *)(b + l.splits);
    p->leaf_p = (const float *)(b + l.leaf);
    return true;
}

// Best effort: a cache that cannot be written is only a slower next start.
static void cache_write(const char *file, const struct stat &sb, const dlibc_predictor *p)
{
    cache_header h;
    std::memset(&h, 0, sizeof h);
    std::memcpy(h.magic, CACHE_MAGIC, 8);
    h.src_size = (uint64_t)sb.st_size;
    h.src_ino = (uint64_t)sb.st_ino;
    h.src_mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    h.cascades = (uint32_t)p->cascades;
    h.trees = (uint32_t)p->trees;
    h.depth_splits = (uint32_t)p->depth_splits;
    h.leaves = (uint32_t)p->leaves;
    h.dims = (uint32_t)p->dims;
    for (unsigned long c = 0; c < p->cascades; c++)
        h.nfeat_total += (uint32_t)p->nfeat[c];
    const cache_layout l = layout_of(h);
    h.total = l.total;
    std::vector<char> head(l.splits, 0);
    std::memcpy(head.data(), &h, sizeof h);
    std::memcpy(head.data() + l.initial, &p->initial_shape(0), p->dims * sizeof(float));
    size_t at = 0;
    for (unsigned long c = 0; c < p->cascades; c++) {
        uint32_t n = (uint32_t)p->nfeat[c];
        std::memcpy(head.data() + l.nfeat + c * sizeof(uint32_t), &n, sizeof n);
        for (uint32_t i = 0; i < n; i++, at++) {
            uint32_t a = (uint32_t)p->anchor[c][i];
            float dxy[2] = {p->deltas[c][i].x(), p->deltas[c][i].y()};
            std::memcpy(head.data() + l.anchor + at * sizeof(uint32_t), &a, sizeof a);
            std::memcpy(head.data() + l.deltas + 2 * at * sizeof(float), dxy, sizeof dxy);
        }
    }
    std::string tmp = std::string(file) + ".tmp-XXXXXX";
    int fd = mkstemp(&tmp[0]);
    if (fd < 0)
        return;
    const size_t nsplit = p->cascades * p->trees * p->depth_splits * sizeof(dlibc_predictor::split);
    const size_t nleaf = p->cascades * p->trees * p->leaves * p->dims * sizeof(float);
    bool ok = pwrite(fd, head.data(), head.size(), 0) == (ssize_t)head.size() &&
              pwrite(fd, p->splits_p, nsplit, (off_t)l.splits) == (ssize_t)nsplit &&
              pwrite(fd, p->leaf_p, nleaf, (off_t)l.leaf) == (ssize_t)nleaf && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp.c_str(), file) != 0)
        unlink(tmp.c_str());
}

extern "C" int dlibc_predictor_open(const char *path, unsigned flags, dlibc_predictor **out, char *err,
                                    size_t errlen)
{
    *out = nullptr;
    std::ifstream probe(path, std::ios::binary);
    if (!probe) {
        int e = errno ? errno : ENOENT;
        set_err(err, errlen, "%s: cannot open the landmark model: %s", path, std::strerror(e));
        return -e;
    }
    probe.close();
    try {
        dlibc_predictor *p = new dlibc_predictor;
        try {
            if (flags & DLIBC_PREDICTOR_STOCK) {
                dlib::deserialize(path) >> p->sp;
                p->stock = true;
                p->dims = p->sp.num_parts() * 2;
            } else {
                load_flat(path, p);
            }
        } catch (...) {
            delete p;
            throw;
        }
        if (p->dims != 2 * DLIBC_LANDMARKS) {
            char n[32];
            std::snprintf(n, sizeof n, "%lu", (unsigned long)p->dims / 2);
            set_err(err, errlen, "%s: a shape predictor with %s landmarks, not 68; use shape_predictor_68_face_landmarks.dat",
                    path, n);
            delete p;
            return -EINVAL;
        }
        *out = p;
        return 0;
    } catch (const std::bad_alloc &) {
        set_err(err, errlen, "%s: out of memory loading the landmark model%s", path, "");
        return -ENOMEM;
    } catch (const std::exception &e) {
        set_err(err, errlen, "%s: not a dlib shape predictor model (%s)", path, e.what());
        return -EINVAL;
    }
}

extern "C" int dlibc_predictor_load(const char *path, dlibc_predictor **out, char *err, size_t errlen)
{
    return dlibc_predictor_open(path, 0, out, err, errlen);
}

extern "C" int dlibc_predictor_open_cached(const char *path, const char *cache_dir, dlibc_predictor **out, char *err,
                                           size_t errlen)
{
    struct stat sb;
    if (!cache_dir || !*cache_dir || stat(path, &sb) != 0)
        return dlibc_predictor_open(path, 0, out, err, errlen);
    try {
        std::string file = cache_name(cache_dir, sb);
        dlibc_predictor *p = new dlibc_predictor;
        if (cache_read(file.c_str(), sb, p) && p->dims == 2 * DLIBC_LANDMARKS) {
            *out = p;
            return 0;
        }
        delete p;
        int rc = dlibc_predictor_open(path, 0, out, err, errlen);
        if (!rc) {
            mkdir(cache_dir, 0755);
            cache_write(file.c_str(), sb, *out);
        }
        return rc;
    } catch (const std::bad_alloc &) {
        set_err(err, errlen, "%s: out of memory loading the landmark model%s", path, "");
        return -ENOMEM;
    }
}

extern "C" void dlibc_predictor_free(dlibc_predictor *p) { delete p; }

// dlib's shape_predictor::operator() over the flat model: per cascade, the
// feature pixels placed by the similarity transform from the mean shape to
// the current one, then each tree's leaf added. The same dlib functions do
// the geometry, in the same order, so the sums are the same.
template <typename image_t>
static void predict_flat(const dlibc_predictor *p, const image_t &img, const dlib::rectangle &rect, float *xy)
{
    using namespace dlib::impl;
    dlib::matrix<float, 0, 1> cur = p->initial_shape;
    const dlib::point_transform_affine to_img = unnormalizing_tform(rect);
    const dlib::rectangle area = dlib::get_rect(img);
    dlib::const_image_view<image_t> v(img);
    std::vector<float> fpv;
    std::vector<const float *> leafp;
    const dlibc_predictor::split *sp = p->splits_p;
    const float *lf = p->leaf_p;
    const unsigned long dims = p->dims, ns = p->depth_splits;
    float *cs = &cur(0);
    for (unsigned long c = 0; c < p->cascades; c++) {
        const dlib::matrix<float, 2, 2> tform =
            dlib::matrix_cast<float>(find_tform_between_shapes(p->initial_shape, cur).get_m());
        const std::vector<unsigned long> &anchor = p->anchor[c];
        const std::vector<dlib::vector<float, 2>> &delta = p->deltas[c];
        fpv.resize(anchor.size());
        for (unsigned long i = 0; i < anchor.size(); i++) {
            dlib::point q = to_img(tform * delta[i] + location(cur, anchor[i]));
            fpv[i] = area.contains(q) ? dlib::get_pixel_intensity(v[q.y()][q.x()]) : 0;
        }
        // every tree's leaf first (the splits read only the feature
        // pixels), then the sums in tree order with the leaves fetched ahead:
        // the leaves are 65 MB, and waiting for each in turn was most of the time
        leafp.resize(p->trees);
        for (unsigned long t = 0; t < p->trees; t++) {
            const dlibc_predictor::split *s = sp + t * ns;
            unsigned long i = 0;
            while (i < ns)
                i = (float)fpv[s[i].i1] - (float)fpv[s[i].i2] > s[i].thresh ? 2 * i + 1 : 2 * i + 2;
            leafp[t] = lf + (t * p->leaves + (i - ns)) * dims;
        }
        const unsigned long ahead = 6, bytes = dims * sizeof(float);
        for (unsigned long t = 0; t < ahead && t < p->trees; t++)
            for (unsigned long b = 0; b < bytes; b += 64)
                __builtin_prefetch((const char *)leafp[t] + b);
        for (unsigned long t = 0; t < p->trees; t++) {
            if (t + ahead < p->trees)
                for (unsigned long b = 0; b < bytes; b += 64)
                    __builtin_prefetch((const char *)leafp[t + ahead] + b);
            const float *leaf = leafp[t];
            for (unsigned long k = 0; k < dims; k++)
                cs[k] += leaf[k];
        }
        sp += p->trees * ns;
        lf += p->trees * p->leaves * dims;
    }
    for (unsigned long i = 0; i < dims / 2; i++) {
        dlib::point q = to_img(location(cur, i));
        xy[2 * i] = (float)q.x();
        xy[2 * i + 1] = (float)q.y();
    }
}

extern "C" int dlibc_predict(dlibc_predictor *p, const dlibc_image *img, const dlibc_box *box,
                             float xy[2 * DLIBC_LANDMARKS])
{
    if (!p || !valid(img) || !box || !(box->x1 > box->x0) || !(box->y1 > box->y0))
        return -EINVAL;
    try {
        dlib::rectangle r(std::lround(box->x0), std::lround(box->y0), std::lround(box->x1) - 1,
                          std::lround(box->y1) - 1);
        if (!p->stock) {
            if (img->format == DLIBC_GRAY8)
                predict_flat(p, view<unsigned char>(img), r, xy);
            else
                predict_flat(p, view<dlib::rgb_pixel>(img), r, xy);
            return 0;
        }
        dlib::full_object_detection s = img->format == DLIBC_GRAY8 ? p->sp(view<unsigned char>(img), r)
                                                                   : p->sp(view<dlib::rgb_pixel>(img), r);
        if (s.num_parts() != DLIBC_LANDMARKS)
            return -EINVAL;
        for (unsigned long i = 0; i < DLIBC_LANDMARKS; i++) {
            xy[2 * i] = (float)s.part(i).x();
            xy[2 * i + 1] = (float)s.part(i).y();
        }
        return 0;
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

extern "C" const char *dlibc_version(void)
{
#define DLIBC_STR2(x) #x
#define DLIBC_STR(x) DLIBC_STR2(x)
    return DLIBC_STR(DLIB_MAJOR_VERSION) "." DLIBC_STR(DLIB_MINOR_VERSION) "." DLIBC_STR(DLIB_PATCH_VERSION);
}
