/* The dfew configuration file: an INI file (dfew.conf in the home directory by
 * default) read at start-up and again by dfewd on SIGHUP. Every key has a
 * default, so a missing file is a valid, default configuration. Unknown keys
 * are errors with the line number: a typo must not silently do nothing. */
#ifndef DFEW_CONFIG_H
#define DFEW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

struct dfew_config {
    /* [daemon] */
    int workers;              /* worker processes; 0 = number of cores */
    int threads_per_job;      /* most threads one prep or segment job uses; 0 = the cores not used by other jobs */
    double drain_s;           /* SIGTERM: how long in-flight jobs may finish */
    double respawn_min_s;     /* first delay before restarting a dead worker */
    double respawn_max_s;     /* cap of the doubling respawn delay */
    char *worker_program;     /* NULL: dfew-worker next to dfewd */
    /* [queue] */
    double lease_s;           /* a lease lasts this long unless renewed */
    int max_attempts;         /* attempts before a job is dead */
    double retry_base_s;      /* backoff after the first failure; doubles */
    double retry_max_s;       /* backoff cap */
    double sweep_s;           /* safety-net check for expired leases */
    /* [limits] kind = most jobs of that kind running at once (0: no limit).
     * train (default 1) is special: dfewd runs that many trainer slots, worker
     * processes for train jobs only, beside the [daemon] workers, which then
     * never take train jobs; train = 0 lets every worker take them. */
    struct kv limits;
    /* [timeouts] kind = seconds one attempt may run before its worker is killed
     * (none by default but probe's: a train job runs for hours) */
    struct kv timeouts;
    /* [batch] */
    char *incoming_dir;       /* what `dfewctl submit --batch` scans by default */
    /* [fetch] downloads of submitted URLs */
    int64_t fetch_max_bytes;  /* larger downloads are refused */
    double fetch_connect_s;   /* connection timeout */
    double fetch_timeout_s;   /* whole-transfer timeout */
    double fetch_stall_s;     /* abort when under 1 KiB/s for this long */
    /* [labels] */
    int single_label_threshold; /* r: a clip's single label is the emotion with more than r votes */
    int annotators_per_clip;    /* most votes one clip may have */
    /* [prep] the recipe of new prep jobs (copied into each job's arguments) */
    int prep_frames;            /* frames per clip after temporal interpolation */
    int prep_size;              /* aligned frames are size x size pixels */
    double prep_min_face_ratio; /* clips with fewer face frames are unusable */
    char *prep_interp;          /* "tim" or "linear" */
    char *prep_image_format;    /* "png" or "jpg" */
    char *prep_template;        /* 5 points "x,y ..." in a template_size square */
    int prep_template_size;
    char *prep_landmark_model;  /* dlib 68-point shape predictor */
    int prep_upsample;          /* face detector upsampling (0 or 1) */
    int prep_whole_movie;       /* older key: yes = [segment] mode whole, no = off; -1 when not given */
    int prep_keep_aligned;      /* also keep every aligned face frame (output_dir/aligned/) */
    char *prep_detect;          /* "fast" (track faces, search the whole frame now and then) or "every_frame" */
    double prep_min_face_px;    /* the smallest face a whole-frame search looks for */
    double prep_detect_interval_s; /* whole-frame search at least this often while faces are followed */
    double prep_track_gap_s;    /* a face not seen for longer ends its track */
    int prep_follow_frames;     /* frames a face may be followed by its landmarks alone between near searches */
    double prep_range_min_s;    /* a clip at least twice this long is scanned in ranges on the job's threads (0: never) */
    char *prep_subject;         /* "longest" or "largest_first": which track is the clip's subject */
    /* [train] */
    char *train_backends;       /* folder of dfew-train-*.so; NULL: next to dfew-worker, else the installed one */
    /* [segment] movies submitted without a clip list (copied into each segment job) */
    char *segment_mode;                /* "shots", "whole" or "off"; NULL: shots (config_segment_mode) */
    double segment_cut_threshold;      /* FFmpeg scene score above which a frame starts a shot */
    double segment_detect_interval_s;  /* face detection on a frame at least this often */
    double segment_min_s, segment_max_s; /* clip durations */
    double segment_track_gap_s;        /* longest detector miss inside a face track */
    int segment_max_clips;             /* per movie (the DFEW paper's 20) */
    /* [executor] where dfewd runs a leased job */
    char *executor;             /* "local" (the worker pool) or "slurm"; NULL: local */
    /* [slurm] executor = slurm (docs/slurm.md) */
    char *slurm_partition;      /* sbatch --partition; NULL: the cluster's default */
    char *slurm_account;        /* sbatch --account */
    char *slurm_options;        /* more sbatch options, split at white space (no shell) */
    int slurm_max_jobs;         /* Slurm jobs in flight at once, train jobs apart */
    int slurm_max_train_jobs;   /* train jobs (folds) in flight at once; 0: they share max_jobs */
    double slurm_poll_s;        /* how often dfewd asks squeue and reads progress and result files */
    int slurm_check_storage;    /* at start-up, a probe job checks that a node sees HOME and the movies */
    double slurm_check_timeout_s; /* how long dfewd waits for that probe job */
    double slurm_result_grace_s;  /* a job Slurm calls COMPLETED may show its result file this much later (NFS) */
    /* per kind resources: time, cpus, mem, gres; "time" is the default of
     * every kind, "time_prep" prep's (values normalised: seconds, a count,
     * bytes, a gres string or "none") */
    struct kv slurm_res;
};

enum executor_kind { EXECUTOR_LOCAL, EXECUTOR_SLURM };
enum executor_kind config_executor(const struct dfew_config *c);
/* A [slurm] resource for a job kind: "<what>_<kind>", else "<what>", else
 * the built-in default (cpus: 2 for prep and segment, 4 for train, else 1;
 * gres: gpu:1 for train). NULL when none is set; "none" means none. */
const char *config_slurm_res(const struct dfew_config *c, const char *what, const char *kind);

enum segment_mode {
    SEGMENT_SHOTS, /* a segment job finds shots and face tracks: candidate clips */
    SEGMENT_WHOLE, /* the whole movie is one clip */
    SEGMENT_OFF,   /* the movie is only probed */
};
enum segment_mode config_segment_mode(const struct dfew_config *c);

/* The 112 x 112 five-point template (eyes, nose tip, mouth corners). */
#define DFEW_PREP_TEMPLATE "38.2946,51.6963 73.5318,51.5014 56.0252,71.7366 41.5493,92.3655 70.7299,92.2041"
#define DFEW_LANDMARK_MODEL "/usr/share/dlib/shape_predictor_68_face_landmarks.dat"

void config_defaults(struct dfew_config *c);
/* Longest line (comment included) and largest file accepted. */
#define CONFIG_MAX_LINE 4095
#define CONFIG_MAX_BYTES (1u << 20)

/* Loads path over the defaults. A missing file is fine (-ENOENT is not
 * returned); a file that cannot be read (a directory, no permission) is an
 * error, and so is a bad line: -EINVAL with "file:line: what" in err (a line
 * longer than CONFIG_MAX_LINE, a key set twice: both line numbers). */
int config_load(const char *path, struct dfew_config *c, char *err, size_t errlen);
/* The same for text already read (name is used in messages); text need not
 * be NUL-terminated. */
int config_parse(const char *name, const char *text, size_t len, struct dfew_config *c, char *err, size_t errlen);
void config_free(struct dfew_config *c);

int config_limit(const struct dfew_config *c, const char *kind);
double config_timeout(const struct dfew_config *c, const char *kind);

#endif
