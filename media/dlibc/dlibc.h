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
void dlibc_detector_free(struct dlibc_detector *d);
/* Detects faces, each image side upsampled 2^upsample times first (0 or 1
 * in practice: 1 finds faces down to about 40 px, at 4x the cost). Writes at
 * most max boxes, best score first; returns how many faces were found (may
 * exceed max) or a negative errno (-EINVAL: bad image). */
int dlibc_detect(struct dlibc_detector *d, const struct dlibc_image *img, int upsample, struct dlibc_box *boxes,
                 int max);

/* Loads a shape predictor model (shape_predictor_68_face_landmarks.dat: about
 * 100 MB, about a second). -ENOENT/-EACCES for the path, -EINVAL when the
 * file is not a 68-point dlib shape predictor; err says which. */
int dlibc_predictor_load(const char *path, struct dlibc_predictor **out, char *err, size_t errlen);
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
