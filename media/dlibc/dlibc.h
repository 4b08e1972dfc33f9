/* dlibc: a pure-C interface to the two parts of dlib that dfew uses, the HOG
 * frontal face detector and the 68-point shape predictor. Opaque handles,
 * plain structs, negative errno-style returns; no C++ type crosses this
 * header. dlibc.cpp (the only C++ file in the tree) implements it and catches
 * every exception. It is not a general dlib binding: no training, no CNN. */
#ifndef DFEW_DLIBC_H
#define DFEW_DLIBC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DLIBC_LANDMARKS 68

enum dlibc_format {
    DLIBC_GRAY8 = 1, /* one byte per pixel (luma) */
    DLIBC_RGB24 = 3, /* r, g, b bytes per pixel */
};

/* A caller-owned image; not copied (valid only during the call). */
struct dlibc_image {
    const unsigned char *data;
    int width, height;
    int stride; /* bytes from one row to the next */
    int format; /* enum dlibc_format */
};

/* A face box in image pixels: [x0, x1) x [y0, y1) (dlib's inclusive
 * rectangle right/bottom + 1), and the detector's confidence (HOG SVM score;
 * higher is surer, about 0 at the default threshold). */
struct dlibc_box {
    double x0, y0, x1, y1;
    double score;
};

struct dlibc_detector;
struct dlibc_predictor;

/* The HOG frontal face detector (built into dlib; no model file). */
int dlibc_detector_new(struct dlibc_detector **out, char *err, size_t errlen);
/* Another detector like src for another thread (a copy: milliseconds,
 * where dlibc_detector_new deserialises dlib's model again). */
int dlibc_detector_clone(const struct dlibc_detector *src, struct dlibc_detector **out);
void dlibc_detector_free(struct dlibc_detector *d);
/* Detects faces, each image side upsampled 2^upsample times first (0 or 1
 * in practice: 1 finds faces down to about 40 px, at 4x the cost). Writes at
 * most max boxes, best score first; returns how many faces were found (may
 * exceed max) or a negative errno (-EINVAL: bad image). */
int dlibc_detect(struct dlibc_detector *d, const struct dlibc_image *img, int upsample, struct dlibc_box *boxes,
                 int max);

/* Detection restricted to part of the pyramid, with dlib's own answers
 * there (grey images, no upsampling). The image pyramid is dlib's: each
 * level 5/6 the size of the one below, a detection's box about 73 px on the
 * image at level 0 and 1.2 times larger per level.
 *
 * dlibc_detect_near: the faces dlibc_detect(img, 0) finds whose boxes lie
 * within `margin` box sides of `near` and whose size is within a factor of
 * size_range of its size; only those pyramid levels, and only a window of
 * each around `near`, are computed, so it costs a small fraction of a whole
 * frame. Where the window covers the face the boxes and scores are exactly
 * those of the whole-frame detection (tested), except near a face so large
 * that computing dlib's pyramid up to its level would cost more than the
 * search (at least level 3, about 126 px, and a window chain 8 times the
 * scanned area): then the window of its level is resampled from the picture
 * in one step, and the boxes agree with the whole frame's to about a cell.
 *
 * dlibc_detect_min: the faces of at least about min_size px (a face a little
 * smaller may be found too): the levels below are skipped, which is what
 * detecting on a downscaled frame saves, and the result is dlibc_detect's
 * for those faces. min_size <= 73 is dlibc_detect(img, 0).
 *
 * Both return the count found (may exceed max) or a negative errno. They
 * keep scratch buffers in the detector: one detector per thread. */
int dlibc_detect_near(struct dlibc_detector *d, const struct dlibc_image *img, const struct dlibc_box *near,
                      double margin, double size_range, struct dlibc_box *boxes, int max);
int dlibc_detect_min(struct dlibc_detector *d, const struct dlibc_image *img, double min_size,
                     struct dlibc_box *boxes, int max);
/* The same on two threads: helper (another detector, not d) scans the upper
 * half of the pyramid on a thread of its own meanwhile. The same result. */
int dlibc_detect_min2(struct dlibc_detector *d, struct dlibc_detector *helper, const struct dlibc_image *img,
                      double min_size, struct dlibc_box *boxes, int max);
/* The box side (image pixels) of a detection at each pyramid level of a
 * width x height image; returns the number of levels (may exceed max). */
int dlibc_detector_levels(struct dlibc_detector *d, int width, int height, double *box_sizes, int max);

#define DLIBC_PREDICTOR_STOCK 1u /* dlib::shape_predictor itself (the naive baseline, the tests' reference) */

/* Loads a shape predictor model (shape_predictor_68_face_landmarks.dat: about
 * 100 MB, about a second). -ENOENT/-EACCES for the path, -EINVAL when the
 * file is not a 68-point dlib shape predictor; err says which. */
int dlibc_predictor_load(const char *path, struct dlibc_predictor **out, char *err, size_t errlen);
/* The same with flags: 0 is the flat copy dlibc_predictor_load makes (the
 * same points as dlib's own code, several times faster; about 70 MB);
 * DLIBC_PREDICTOR_STOCK keeps dlib::shape_predictor and runs its code. */
int dlibc_predictor_open(const char *path, unsigned flags, struct dlibc_predictor **out, char *err, size_t errlen);
/* The flat copy through a cache in cache_dir (created; NULL or "": none):
 * the first load writes the flat model there (best effort), later loads map
 * it (milliseconds instead of a second, pages shared between processes).
 * The cache is named after the model file's inode, size and mtime. */
int dlibc_predictor_open_cached(const char *path, const char *cache_dir, struct dlibc_predictor **out, char *err,
                                size_t errlen);
void dlibc_predictor_free(struct dlibc_predictor *p);
/* 68 landmarks for the face in box: xy[2*i], xy[2*i+1] = point i (0-based
 * iBUG 300-W order), image pixels. 0 or a negative errno. */
int dlibc_predict(struct dlibc_predictor *p, const struct dlibc_image *img, const struct dlibc_box *box,
                  float xy[2 * DLIBC_LANDMARKS]);

/* "19.24.0": the dlib these were built against. */
const char *dlibc_version(void);

#ifdef __cplusplus
}
#endif

#endif
