/* From face tracks to candidate clips, and from candidates to the clips a
 * movie keeps: the pure part of the segment job (no decoding, no dlib, no
 * files), so that it can be tested on made-up tracks.
 *
 * A face track is one person's face followed by the tracker (track.h)
 * through one shot: from its first detection to its last, never across a
 * cut, with no gap without a detection longer than track_gap_s inside. A
 * track is a candidate when it lasts at least min_s and its face is at
 * least half as large (mean box side) as the largest face of a track that
 * overlaps it in time: a clip is about a prominent face, and the prep job,
 * which chooses its subject among faces of that size too, will follow the
 * same person. Tracks longer than max_s are cut into equal parts of
 * min_s..max_s. A clip covers frames from the track's first detection to
 * its last, never beyond, and a part in which the face was detected in
 * fewer than min_face_share of the frames (the prep job would find it
 * unusable) is not a candidate.
 *
 * When a movie has more candidates than max_clips, the kept ones are
 * spread over the movie: max_clips target times evenly from the first
 * candidate's midpoint to the last's, and the candidates (taken in time
 * order) whose midpoints are closest to them in sum (dynamic programming,
 * O(candidates x max_clips); ties go to the earlier candidate). The first
 * and the last candidate are always kept, and where candidates crowd, fewer
 * are taken than where they are sparse. */
#ifndef DFEW_SEGPLAN_H
#define DFEW_SEGPLAN_H

#include <stdint.h>

#define SEG_MIN_SIZE 0.5 /* a candidate's face at least this much of the largest overlapping face's side */

/* One face track of the movie. */
struct seg_track {
    int id;               /* the tracker's id */
    int shot;             /* the shot it lies in */
    int64_t first, last;  /* frames of its first and last detection */
    int64_t frames;       /* frames it was detected in */
    double mean_side;     /* mean box side, pixels */
    const int64_t *det;   /* the frames it was detected in, ascending (frames of them); NULL: spread evenly */
};

struct seg_params {
    double min_s, max_s; /* clip duration bounds */
    double min_face_share; /* a clip's frames with its face, at least (the prep job's min_face_ratio) */
    double track_gap_s;  /* longest run without a detection inside a track */
    int max_clips;       /* per movie */
};

struct seg_clip {
    int64_t f0, f1; /* frames [f0, f1) */
    int shot;       /* index of its shot */
    int track;      /* its track's id (parts of one track share it) */
    int64_t faces;  /* frames inside with the track's face */
    int chosen;     /* kept by seg_choose */
};

/* Why tracks did not become clips, and counts for the movie's note. */
struct seg_stats {
    int tracks, short_tracks, small_tracks, sparse_parts;
    double longest_short_s; /* the longest track below min_s */
};

struct seg_clips {
    struct seg_clip *v;
    int n, cap;
    int tracks; /* tracks numbered so far */
};

/* The candidate clips of the tracks (n, any order): appended to out in the
 * order of their first frame. t holds the time of every frame of the movie
 * and t[nframes] the end of the last one. 0 or -ENOMEM. */
int seg_track_clips(const struct seg_params *p, const double *t, const struct seg_track *tr, int n,
                    struct seg_clips *out, struct seg_stats *st);

/* Marks at most p->max_clips of the candidates (in time order) chosen, all
 * when there are not more, spread over the movie; returns how many, or
 * -ENOMEM. */
int seg_choose(const struct seg_params *p, const double *t, struct seg_clip *c, int n);

void seg_clips_free(struct seg_clips *c);

#endif
