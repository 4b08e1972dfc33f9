/* The prep job's scan stage, shared by its driver (prep.c) and the split
 * scan of a long clip over several threads (prep_ranges.c). Internal to
 * dfew-worker. */
#ifndef DFEW_PREP_SCAN_H
#define DFEW_PREP_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "dlibc.h"
#include "imgenc.h"
#include "scan.h"
#include "tim.h"
#include "track.h"
#include "worker.h"

struct range_share;

struct prep_args {
    const char *path, *out_dir, *model;
    int64_t clip_id;
    double start_s, end_s;
    int frames, size, template_size, upsample;
    int keep_aligned; /* write every aligned face frame to aligned.u8 */
    double min_face_ratio;
    enum tim_mode interp;
    enum img_format format;
    double tpl[10]; /* template scaled to size */
    struct track_opts track;
    double cut_threshold;
    enum subject_rule subject;
    int has_hint;
    struct dlibc_box hint; /* the subject's box at the clip's first frame (segment job) */
    int threads;
    double range_min_s; /* split a clip at least twice this long over the job's threads (0: never) */
};

struct prep_times {
    double decode, detect, align, write;
};

/* One face of one frame, as the scan saw it: where its aligned crop and
 * its record are in the scratch files. */
struct face_ref {
    int64_t frame;
    int track;
    int aligned; /* its crop is usable (the landmarks gave a transform) */
};

/* What the scratch record of a face holds (this process only). */
struct face_scratch {
    int32_t track;
    float box[4];
    float score;
    float pts[2 * DLIBC_LANDMARKS];
};

struct frame_info {
    double t;
    int faces;
};

/* Scratch records of a fixed size: the first SCRATCH_MEM bytes in memory,
 * the rest in an unlinked file in the job's temporary directory (a
 * whole-movie clip's faces do not fit in memory; a normal clip's never
 * touch the disk, whose sync before the rename would write them too). */
#define SCRATCH_MEM (32u << 20)
struct scratch {
    const char *dir, *name;
    size_t rec, limit; /* record size; bytes kept in memory (whole records) */
    uint8_t *mem;
    size_t cap;
    int fd; /* -1 until the memory is full */
};

/* The scan's state and what it collects. */
struct prep_scan {
    struct job_ctx *ctx;
    const struct prep_args *a;
    struct frame_converter *conv;
    struct scratch crops, recs;
    uint8_t *crop;
    struct face_ref *refs;
    int64_t nrefs, caprefs;
    struct frame_info *frames;
    int64_t nframes, capframes;
    int width, height;
    int threads_min; /* the smallest share of the cores the job had while it ran */
    double last_report;
    struct prep_times *tm;
    struct range_share *share; /* a range of a split clip (prep_ranges.c): progress and the core gate */
    int range;
    char err[512];
};

void scratch_init(struct scratch *s, const char *dir, const char *name, size_t rec);
void scratch_free(struct scratch *s);
int scratch_put(struct scratch *s, int64_t i, const void *buf);
int scratch_get(const struct scratch *s, int64_t i, void *buf);

/* Each frame as the tracker finishes it (a scan_frame_fn). */
int on_frame(void *ud, const struct track_frame *f);

/* Decodes [a->start_s, a->end_s) of a->path and follows its faces into s;
 * the subject is chosen from the tracker's tracks. Errors in ctx. */
int run_scan(struct job_ctx *ctx, const struct prep_args *a, struct dlibc_detector *det, struct dlibc_predictor *sp,
             struct prep_scan *s, struct scan_stats *st, struct decoder_stats *ds, struct track_stats *ts,
             int *ntracks_out, int *subject_out);

/* The split scan (prep_ranges.c): how many ranges a's clip starts in (0:
 * never split, run_scan; 1: one range for now, split when the job's share
 * of the cores grows), and the scan itself, which leaves in s what run_scan
 * would, with the ranges' tracks joined where they overlap. */
int prep_ranges_plan(const struct prep_args *a);
int run_scan_ranges(struct job_ctx *ctx, const struct prep_args *a, int nranges, struct dlibc_detector *det,
                    struct dlibc_predictor *sp, struct prep_scan *s, struct scan_stats *st, struct decoder_stats *ds,
                    struct track_stats *ts, int *ntracks_out, int *subject_out, int *used_out);

/* From on_frame in a range of a split scan: the clip's progress, and the
 * wait while the job has fewer threads than ranges at work. 0, or
 * -ECANCELED when another range failed. */
int range_frame(struct prep_scan *s, double t);
/* scan_opts.end_now of a range (ud: its prep_scan): where it ends now. */
double range_end(void *ud);
/* scan_opts.threads_for of a range: the job's share less the other ranges
 * at work (at least 1). */
int range_threads(void *ud);

#endif
