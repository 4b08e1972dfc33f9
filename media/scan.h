/* A face scan: decode a range of a movie, mark shot cuts, and run the face
 * tracker over every frame, handing each finished frame (its faces, its
 * decoded picture) to the caller in order. What the prep job, the segment
 * job, the fidelity test and the benchmark share. With threads > 1 the
 * decoding (FFmpeg frame threads, grey conversion, cut scores) runs on its
 * own thread ahead of the tracker. Not the decisions made from the faces. */
#ifndef DFEW_SCAN_H
#define DFEW_SCAN_H

#include "decode.h"
#include "track.h"

struct scan_opts {
    double start_s, end_s; /* frames with start_s <= t < end_s (end_s: INFINITY for all) */
    double cut_threshold;  /* FFmpeg scene score above which a frame starts a shot; <= 0 or >= 1: none */
    int threads;           /* 1: everything on the caller's thread */
    int (*threads_now)(void); /* may be NULL; with threads > 1, when it says 1 the decoding thread
                                 runs only while the tracker waits (one thread busy at a time) */
    int (*threads_for)(void *threads_ud); /* may be NULL; used instead of threads_now when set (the
                                             share of one of several scans of a job) */
    void *threads_ud;
    double (*end_now)(void *end_ud); /* may be NULL; where the range ends now, when that can move
                                        earlier while it runs (the frames stop at the nearer end) */
    void *end_ud;
};

struct scan_stats {
    int64_t frames;
    double first_t, last_t, last_dur; /* the decoded range: first and last frame time, last frame's duration */
    int stream_ended;                 /* the movie's frames ended before end_s */
    double decode_s, track_s, caller_s; /* time in decoding (+ grey + cuts), the tracker, the callback */
    int cuts;
};

/* The callback: 0 to go on, or a negative errno that stops the scan. */
typedef int (*scan_frame_fn)(void *ud, const struct track_frame *f);

/* Scans dec (opened with DECODE_RAW | DECODE_GRAY, not yet read) from
 * o->start_s. The tracker must be fresh (tracker_reset). 0, or a negative
 * errno: the decoder's (err says what), the tracker's, or the callback's. */
int face_scan(struct decoder *dec, struct tracker *tr, const struct scan_opts *o, scan_frame_fn fn, void *ud,
              struct scan_stats *st, char *err, size_t errlen);

#endif
