// dlibc.cpp: the implementation of dlibc.h, and the only C++ in dfew. It
// wraps dlib's HOG face detector and shape predictor behind opaque handles,
// reads the caller's pixels in place (no copy) through dlib's generic image
// interface, and turns every exception into a negative errno. Built with -O3
// whatever the build type: dlib's templates are about 60x slower at -O0.
#include "dlibc.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <new>
#include <vector>

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <dlib/revision.h>

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

struct dlibc_detector {
    dlib::frontal_face_detector det;
};

struct dlibc_predictor {
    dlib::shape_predictor sp;
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

extern "C" int dlibc_detector_new(dlibc_detector **out, char *err, size_t errlen)
{
    *out = nullptr;
    try {
        dlibc_detector *d = new dlibc_detector;
        d->det = dlib::get_frontal_face_detector();
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

extern "C" void dlibc_detector_free(dlibc_detector *d) { delete d; }

extern "C" int dlibc_detect(dlibc_detector *d, const dlibc_image *img, int upsample, dlibc_box *boxes, int max)
{
    if (!d || !valid(img) || upsample < 0 || upsample > 3 || max < 0)
        return -EINVAL;
    try {
        std::vector<dlib::rect_detection> dets =
            img->format == DLIBC_GRAY8 ? detect_in(d->det, view<unsigned char>(img), upsample)
                                       : detect_in(d->det, view<dlib::rgb_pixel>(img), upsample);
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
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

extern "C" int dlibc_predictor_load(const char *path, dlibc_predictor **out, char *err, size_t errlen)
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
            dlib::deserialize(path) >> p->sp;
        } catch (...) {
            delete p;
            throw;
        }
        if (p->sp.num_parts() != DLIBC_LANDMARKS) {
            char n[32];
            std::snprintf(n, sizeof n, "%lu", (unsigned long)p->sp.num_parts());
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

extern "C" void dlibc_predictor_free(dlibc_predictor *p) { delete p; }

extern "C" int dlibc_predict(dlibc_predictor *p, const dlibc_image *img, const dlibc_box *box,
                             float xy[2 * DLIBC_LANDMARKS])
{
    if (!p || !valid(img) || !box || !(box->x1 > box->x0) || !(box->y1 > box->y0))
        return -EINVAL;
    try {
        dlib::rectangle r(std::lround(box->x0), std::lround(box->y0), std::lround(box->x1) - 1,
                          std::lround(box->y1) - 1);
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
