/* The face tracker: where every face is in every frame of a clip, each
 * face followed as one track from frame to frame, shared by the prep job
 * (which then keeps one track, the clip's subject) and the segment job
 * (which cuts clips along tracks). Not the choice of the subject
 * (track_choose_subject below, called by the job) and not alignment.
 *
 * Two ways to find the faces, with the same tracking on top:
 *   - TRACK_EVERY_FRAME: dlib's HOG detector on the whole of every frame
 *     (the fidelity reference: what the naive pipeline does);
 *   - TRACK_FAST (the default): the whole frame is searched only at the
 *     first frame, at shot cuts, every detect_interval seconds, and every
 *     lost_interval frames while there is no track (no face seen within
 *     track_gap_s: a face missed for a few frames is looked for near its
 *     box, in a window that grows while it is unseen), and only for faces of
 *     at least min_face_px (the pyramid levels below are skipped: detection
 *     on a downscaled frame). Between those searches each followed face is
 *     looked for near where its motion puts it (dlibc_detect_near: a few
 *     pyramid levels around its size, a window around its box), which finds
 *     the same box with the same score as a whole-frame search would.
 *     A face found by a whole-frame search after frames without any face is
 *     followed back through those buffered frames, so it is not found late.
 *     Between near searches a face detected (or followed) in the frame
 *     before, with no other face near it, is followed by its landmarks
 *     alone for up to follow_frames frames: the predictor runs in the box
 *     its motion predicts (again in the box those landmarks give when that
 *     box moved: the detector's box is kept relative to the landmarks, as
 *     at its last detection), and the face is taken only when the landmarks
 *     have the shape they had a frame before (similarity residual), its
 *     size and place barely changed and its aligned patch looks like the
 *     track's. A track is seen (for track_gap) when it was detected or
 *     followed. The next near search confirms the run; when it finds
 *     nothing, the followed frames are searched near their boxes from the
 *     last back, and those where the detector does not find the face are
 *     no longer frames of it: a face is never kept in a frame the detector
 *     would not confirm next to it.
 *
 * Tracking: the detections of a frame are matched to the tracks by their
 * overlap with each track's predicted box (constant velocity from its last
 * detections) and, when a track has a history, by appearance (a small grey
 * patch of the face aligned by its landmarks, or of its box without
 * landmarks, compared by normalised correlation); best pairs first
 * (greedy), so two people crossing keep their tracks. A detection no track
 * takes starts a new track. A track not detected for longer than
 * track_gap_s, and every track at a shot cut, ends: a face is never taken
 * up again by a track after that, it starts a new one. Frames in which a
 * track was not detected are not frames of that face.
 *
 * Frames come out in order, each with the faces detected in it, once no
 * later frame can add to it: lost_interval frames after it went in (so
 * the tracker holds lost_interval + 1 frames). */
#ifndef DFEW_TRACK_H
#define DFEW_TRACK_H

#include <stdint.h>

#include "dlibc.h"

enum track_detect {
    TRACK_FAST = 0,
    TRACK_EVERY_FRAME = 1,
};

struct track_opts {
    enum track_detect detect;
    int upsample;             /* 0, or 1-2 (every frame only: faces of about 40 px) */
    double min_face_px;       /* the smallest face a whole-frame search looks for (fast) */
    double detect_interval_s; /* whole-frame search at least this often (fast) */
    int lost_interval;        /* frames between whole-frame searches while there is no track (fast) */
    double track_gap_s;       /* a track not detected for longer ends */
    int landmarks;            /* run the 68-point predictor on every detected face */
    int max_tracks;           /* faces followed at once (the largest); more are ignored until a slot frees */
    int (*threads_now)(void); /* may be NULL (1): with 2 or more, whole-frame searches use a second thread */
    int follow_frames;        /* frames a face may be followed by its landmarks alone between near searches
                                 (fast, with landmarks; 0: a near search in every frame) */
};
#define TRACK_OPTS_DEFAULT {TRACK_FAST, 0, 80, 2.0, 6, 0.5, 1, 12, NULL, 2}

struct AVFrame;
struct gray_plane;

/* One frame as it goes in. */
struct track_input {
    const uint8_t *gray; /* the upright grey picture (copied, or handed over below) */
    int stride, width, height;
    double t;                 /* seconds */
    int cut;                  /* the frame starts a new shot */
    double cut_score;         /* its scene score against the frame before */
    const struct AVFrame *av; /* the decoded picture, kept by reference for the caller (may be NULL) */
    /* May be NULL. Else pass is the picture above (pass->buf == gray, and
     * its stride and sizes): the tracker keeps that buffer instead of a
     * copy and puts one of its own (or none: NULL, 0) in pass, for the
     * caller to fill next (media/decode.h). */
    struct gray_plane *pass;
};

/* One face in one frame. */
struct track_face {
    int track;       /* 0, 1, ... in the order tracks started; -1 never */
    struct dlibc_box box;
    float pts[2 * DLIBC_LANDMARKS]; /* with landmarks */
    int back;        /* found by following the track back in time */
    int followed;    /* found by its landmarks alone (confirmed by the next near search) */
};

/* One frame as it comes out; valid until the next tracker call. */
struct track_frame {
    int64_t index; /* 0-based count of frames pushed since the last reset */
    double t;
    int cut;
    double cut_score;
    int searched;  /* the whole frame was searched */
    int nfaces;
    const struct track_face *faces;
    const struct AVFrame *av; /* as pushed */
    const uint8_t *gray;
    int stride, width, height;
};

/* What a track was over the clip so far (for choosing the subject). */
struct track_summary {
    int id;
    int64_t frames;          /* frames it was detected in */
    int64_t first, last;     /* frame indices of its first and last detection */
    double size_sum;         /* sum of sqrt(box area) over its detections */
    struct dlibc_box first_box;
};

struct track_stats {
    int64_t frames, full_searches, near_searches, back_frames;
    int64_t followed, follow_refused, follow_dropped; /* faces followed by landmarks; tries the checks
                                                         refused; followed faces a near search then did not confirm */
    double search_s, near_s, landmarks_s;
    int tracks;
};

struct tracker;

/* det and sp stay the caller's (sp may be NULL without landmarks). */
int tracker_new(struct dlibc_detector *det, struct dlibc_predictor *sp, const struct track_opts *o,
                struct tracker **out);
void tracker_free(struct tracker *t);
/* Forgets tracks and buffered frames: a new clip. */
void tracker_reset(struct tracker *t);
/* 0 or a negative errno (-ENOMEM, or dlib's). */
int tracker_push(struct tracker *t, const struct track_input *in);
/* No more frames: everything buffered can come out (followed faces no
 * near search came after are checked first: 0 or a negative errno). */
int tracker_finish(struct tracker *t);
/* 1 and the next frame, or 0 when none is ready yet (or none is left after
 * tracker_finish). */
int tracker_pop(struct tracker *t, struct track_frame *out);
const struct track_stats *tracker_stats(const struct tracker *t);
/* Every track so far (n of them). */
const struct track_summary *tracker_tracks(const struct tracker *t, int *n);

enum subject_rule {
    SUBJECT_LONGEST = 0,  /* detected in the most frames; among faces at least half as large as the largest */
    SUBJECT_LARGEST_FIRST /* the largest face of the first frame with a face */
};
int subject_rule_parse(const char *s, enum subject_rule *out);
const char *subject_rule_name(enum subject_rule r);

/* The track that is the clip's subject (its id), or -1 when there is no
 * face; hint (may be NULL): a box the subject had at frame hint_frame (the
 * segment job's), which wins over the rule when a track matches it. */
int track_choose_subject(const struct track_summary *tracks, int n, enum subject_rule rule,
                         const struct dlibc_box *hint, int64_t hint_frame);

#endif
