/* From face detections in a shot to candidate clips, and from candidates to
 * the clips a movie keeps: the pure part of the segment job (no decoding, no
 * dlib, no files), so that it can be tested on made-up detections.
 *
 * A face track is a run of sampled frames of one shot in which one face
 * dominates (it is the only face, or at least SEG_DOMINANCE times the area
 * of the next largest) and each dominant box overlaps the previous one
 * (IoU >= SEG_MIN_IOU). Samples without any face may come between two
 * detections of a track for up to track_gap_s seconds (the detector misses
 * a frame now and then); a sample with two similar faces, a face elsewhere,
 * or a longer gap ends the track. A track covers the frames from its first
 * detection to its last, never beyond: a clip shows the face throughout.
 *
 * Tracks shorter than min_s are dropped; longer than max_s are cut into
 * equal parts of min_s..max_s. When a movie has more candidates than
 * max_clips, the kept ones are spread over the movie: max_clips target times
 * evenly from the first candidate's midpoint to the last's, and the
 * candidates (taken in time order) whose midpoints are closest to them in
 * sum (dynamic programming, O(candidates x max_clips); ties go to the
 * earlier candidate). The first and the last candidate are always kept, and
 * where candidates crowd, fewer are taken than where they are sparse. */
#ifndef DFEW_SEGPLAN_H
#define DFEW_SEGPLAN_H

#include <stdint.h>

#define SEG_DOMINANCE 2.0 /* the largest face's area over the next largest's */
#define SEG_MIN_IOU 0.2   /* a dominant box that overlaps the last one this much continues the track */

struct seg_box {
    double x0, y0, x1, y1;
};

/* One frame the face detector looked at. */
struct seg_sample {
    int64_t frame;      /* 0-based decoded frame index */
    int faces;          /* faces found */
    struct seg_box box; /* the largest face (when faces > 0) */
    int dominant;       /* the largest face dominates (see above) */
};

struct seg_params {
    double min_s, max_s; /* clip duration bounds */
    double track_gap_s;  /* longest run without a detection inside a track */
    int max_clips;       /* per movie */
};

struct seg_clip {
    int64_t f0, f1; /* frames [f0, f1) */
    int shot;       /* index of its shot */
    int track;      /* index of its track in the movie (parts of one track share it) */
    int samples;    /* sampled frames inside with the dominant face */
    int chosen;     /* kept by seg_choose */
};

/* Why tracks did not become clips, and counts for the movie's note. */
struct seg_stats {
    int samples, face_samples, ambiguous_samples; /* over all shots */
    int tracks, short_tracks;
    double longest_short_s; /* the longest track below min_s */
};

struct seg_clips {
    struct seg_clip *v;
    int n, cap;
    int tracks; /* tracks numbered so far */
};

/* Marks which samples have a dominant face (sets s->dominant from the
 * largest and second largest face areas). */
void seg_sample_set_dominance(struct seg_sample *s, double largest_area, double second_area);

/* Finds the face tracks among the samples of one shot (frames [f0, f1),
 * samples in frame order) and appends their clips to out. t holds the time
 * of every frame of the movie and t[nframes] the end of the last one.
 * 0 or -ENOMEM. */
int seg_shot_clips(const struct seg_params *p, const double *t, int shot, int64_t f0, int64_t f1,
                   const struct seg_sample *s, int ns, struct seg_clips *out, struct seg_stats *st);

/* Marks at most p->max_clips of the candidates (in time order) chosen, all
 * when there are not more, spread over the movie; returns how many, or
 * -ENOMEM. */
int seg_choose(const struct seg_params *p, const double *t, struct seg_clip *c, int n);

void seg_clips_free(struct seg_clips *c);

#endif
