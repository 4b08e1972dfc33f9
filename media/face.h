/* "Where is the subject's face in this frame": one function, face_locate,
 * so that a later stage can replace full-frame detection on every frame by
 * tracking without touching its callers. Today it runs dlib's HOG detector
 * on the whole grey frame and the 68-point predictor on the chosen face.
 *
 * Following one subject: a face that overlaps the subject's last box (IoU >=
 * min_iou, the subject seen within track_keep_s seconds) continues the track,
 * so with several people in the frame the track never jumps to another one
 * while the subject is visible. When no face overlaps (the start, a cut, the
 * subject moved away), the largest face is the subject. Without identity
 * features a cut to another person is taken for the subject; a later stage
 * (face tracks) refines this. Not alignment (align.c). */
#ifndef DFEW_FACE_H
#define DFEW_FACE_H

#include "decode.h"
#include "dlibc.h"

struct face_opts {
    int upsample;        /* detector upsampling: 0 (faces >= about 80 px) or 1 (>= 40 px, 4x slower) */
    double min_iou;      /* overlap with the last box that continues the track */
    double track_keep_s; /* how long a lost subject keeps its track */
};
#define FACE_OPTS_DEFAULT {0, 0.2, 0.5}

struct face_obs {
    int found;           /* the subject is in this frame */
    int faces_in_frame;  /* faces the detector found (any person) */
    struct dlibc_box box;
    float pts[2 * DLIBC_LANDMARKS];
};

struct face_tracker;

/* The detector and predictor stay the caller's (loaded once per worker). */
int face_tracker_new(struct dlibc_detector *det, struct dlibc_predictor *sp, const struct face_opts *o,
                     struct face_tracker **out);
void face_tracker_free(struct face_tracker *t);
/* Forgets the subject (a new clip). */
void face_tracker_reset(struct face_tracker *t);
/* Fills obs for frame f (its grey plane when present, else RGB). 0 or a
 * negative errno from dlib. */
int face_locate(struct face_tracker *t, const struct decoded_frame *f, struct face_obs *obs);

#endif
