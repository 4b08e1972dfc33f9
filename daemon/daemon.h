/* dfewd's in-memory state: one libuv loop, the worker pool, timers, signals
 * and the control socket. The persistent record (jobs, events) lives in the
 * database; this is only the bookkeeping of what runs right now. */
#ifndef DFEW_DAEMON_H
#define DFEW_DAEMON_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "db.h"
#include "kv.h"
#include "paths.h"
#include "queue.h"
#include "util.h"

struct daemon;
struct ctl_client;
struct slurm_run;
struct slurm_exec;

/* The longest dfewd's loop waits for the database's write lock (ms). */
#define DFEWD_BUSY_MS 200

/* A result a worker delivered that could not be recorded yet because another
 * process held the database: kept (its lease renewed) and recorded by the
 * record timer as soon as the database is free. */
struct pending_result {
    struct pending_result *next;
    struct leased_job job;
    int failed;     /* a "fail" message: error and retryable; else "done": result */
    char *result;   /* JSON, or the failure's error */
    int retryable;
    double took_s, kept_at, renewed_at;
    int tries;
};

enum worker_state {
    W_SPAWNING, /* process started, waiting for its hello */
    W_IDLE,     /* ready for a job */
    W_BUSY,     /* running job */
    W_EXITING,  /* process gone or going; handles closing */
    W_WAITING,  /* handles closed; respawn timer armed (or retired) */
};

/* Why the daemon ended a worker itself (decides what happens to its job). */
enum kill_reason { KILL_NONE, KILL_TIMEOUT, KILL_CANCEL, KILL_LEASE_LOST, KILL_PROTOCOL, KILL_DRAIN };

struct worker {
    struct daemon *d;
    int slot;
    int trainer; /* a trainer slot: runs train jobs only (see pool_trainer_target) */
    enum worker_state state;
    int pid;
    /* One process incarnation: all four handles are closed before the next. */
    uv_process_t proc;
    uv_pipe_t in;  /* its stdin: jobs go here */
    uv_pipe_t out; /* its stdout: hello, progress, results */
    uv_pipe_t err; /* its stderr: relayed to our log */
    int open_handles;
    int exited, out_eof, err_eof;
    int64_t exit_status;
    int term_signal;
    /* Per slot, live for the daemon's whole life. */
    uv_timer_t respawn_timer;
    uv_timer_t job_timer; /* job timeout, and the grace period after an exit */
    struct sbuf outbuf, errbuf;
    struct leased_job job;
    int has_job;
    double job_started, last_progress_db;
    double lease_renewed_at; /* when its lease was last pushed out (dispatch, renewal) */
    double pending_frac;   /* progress not yet written (rate limit); < 0: none */
    char *pending_msg;
    enum kill_reason kill_reason;
    int consecutive_failures;
    double spawned_at;
    int retiring; /* pool shrank: exit when idle, do not respawn */
    int threads;  /* the threads its job may use (pool_share_threads); 0: none sent */
    int takes_shares; /* its hello said it takes a new share by SIGRTMIN */
    int quit_sent; /* told to exit: gets no more jobs */
    int closing;  /* daemon shutdown: slot handles being closed */
    /* executor = slurm: the slot has no process of its own; its job runs as
     * this Slurm job (slurm.c), NULL while the slot is free */
    struct slurm_run *run;
};

/* A short command run without blocking the loop (cmd.c). */
struct cmd;
typedef void (*cmd_cb)(struct cmd *c, void *data);
struct cmd {
    struct daemon *d;
    uv_process_t proc;
    uv_pipe_t out_pipe, err_pipe;
    uv_timer_t timer;
    int open_handles;
    int exited, out_eof, err_eof, timed_out;
    int spawn_rc; /* uv_spawn's error; 0 when it ran */
    int64_t status;
    int term_signal;
    struct sbuf out, err;
    char *what;
    cmd_cb done;
    void *data;
};

struct daemon {
    uv_loop_t loop;
    struct dfew_paths paths;
    char *config_path;
    struct dfew_config cfg;
    struct queue_policy policy;
    struct db *db;
    char owner[64];
    char *worker_program;
    int workers_override; /* --workers, wins over the config */

    struct worker **workers;
    int nworkers; /* slots, including retiring ones */

    uv_timer_t wake_timer;  /* next backoff end / lease expiry */
    uv_timer_t renew_timer; /* renews the leases of busy workers */
    uv_timer_t sweep_timer; /* safety net: expired leases, missed wake-ups */
    uv_timer_t drain_timer; /* SIGTERM deadline */
    uv_timer_t record_timer; /* records kept results (pending) once the database is free */
    struct pending_result *pending;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_pipe_t ctl_server;
    int ctl_listening;
    struct ctl_client *clients;

    int draining;
    int shutting_down;
    int cpus;            /* cores this process may run on: shared among busy jobs */
    unsigned thread_gen; /* generation of the last sharing of the cores (see pool_share_threads) */
    double started_at;
    uint64_t jobs_done, jobs_failed, jobs_requeued;
    int exit_code;

    enum executor_kind executor; /* chosen at start-up ([executor] kind); a reload does not change it */
    struct slurm_exec *slurm;    /* executor = slurm */
    int cmds_running;            /* cmd.c processes not yet closed */
    int starting;                /* start-up checks still run: nothing is leased yet */
    int ready_fd;                /* the parent waiting for "ok" or why not (background start); -1: none */
    int openblas_set;            /* dfewd chose OPENBLAS_CORETYPE for its machine (not for cluster nodes) */
};

/* pool.c */
int pool_start(struct daemon *d);
void pool_resize(struct daemon *d, int n);
int pool_dispatch(struct worker *w, struct leased_job *job); /* takes ownership of job */
void pool_kill(struct worker *w, enum kill_reason why);
/* Shares the cores among the busy workers' jobs ([daemon] threads_per_job
 * caps a job's share; 0: no cap): a job running alone may use every core,
 * and when every worker is busy each job gets one thread. A busy worker
 * whose share changed is told with a real-time signal (SIGRTMIN, value:
 * generation << 8 | threads), so a long job shrinks when others start.
 * Called whenever a worker becomes busy or idle. */
void pool_share_threads(struct daemon *d);
void pool_quit_idle(struct daemon *d);
int pool_alive(struct daemon *d);           /* workers with a live process or open handles */
void pool_close(struct daemon *d);          /* at shutdown: close per-slot handles */
struct worker *pool_find_job(struct daemon *d, int64_t job_id);
int pool_target_size(const struct daemon *d);  /* general worker slots */
/* Trainer slots: [limits] train when > 0 (one per GPU, or one on the CPU).
 * They run train jobs only, and the general workers then never take one, so
 * a training run that lasts hours does not hold a preprocessing worker. */
int pool_trainer_target(const struct daemon *d);

/* Keeps n live slots of one role (general or trainer): revives retiring
 * ones (revive), retires the surplus, adds new ones (add appends one to
 * d->workers). The executors differ only in those two. */
void pool_resize_role(struct daemon *d, int trainer, int n, void (*revive)(struct worker *),
                      struct worker *(*add)(struct daemon *, int));
/* The slot takes the leased job (job is emptied): busy from now. */
void pool_take_job(struct worker *w, struct leased_job *job);
/* The job line a worker gets (proto.h "job ..."): the job's fields and its
 * JSON arguments as flat key=value fields, and its thread share. */
void pool_job_line(struct daemon *d, const struct leased_job *job, int threads, unsigned gen, struct sbuf *out);
/* Removes the temporary files the job of w left under pid's names in its
 * out_dir and beside it (a worker, local or on a node, that died midway). */
void pool_sweep_job_temps(struct worker *w, int pid);

/* cmd.c: runs argv (found in PATH; env NULL: dfewd's) with stdout and
 * stderr collected; done is called once the process has ended and its
 * handles are closed, then the cmd is freed. timeout_s > 0: SIGKILL then. */
int cmd_start(struct daemon *d, char **argv, char **env, double timeout_s, cmd_cb done, void *data);
int cmd_ok(const struct cmd *c);   /* ran, exited 0 */
const char *cmd_why(struct cmd *c); /* why it did not: stderr's last line, or how it ended */

/* slurm.c: the Slurm executor ([executor] kind = slurm, docs/slurm.md).
 * Its slots are struct workers without processes: a busy slot's job runs as
 * a Slurm job that dfewd submitted with sbatch and follows with squeue and
 * the job's result and progress files on the shared filesystem. pool.c's
 * functions hand over to these when the executor is slurm. */
int slurm_recover(struct daemon *d);   /* start-up: adopt jobs a previous dfewd left running in Slurm */
void slurm_resize(struct daemon *d);
int slurm_dispatch(struct worker *w, struct leased_job *job);
void slurm_kill(struct worker *w, enum kill_reason why);
void slurm_quit_idle(struct daemon *d);
int slurm_alive(struct daemon *d);
void slurm_close(struct daemon *d);
void slurm_slot_json(struct sbuf *b, const struct worker *w);
const char *pool_kill_reason_text(enum kill_reason r);

/* sched.c */
int sched_init(struct daemon *d);    /* timers */
int sched_recover(struct daemon *d); /* start-up: release stale leases */
void sched_kick(struct daemon *d); /* look for work now */
void sched_job_finished(struct worker *w, const char *verb, const struct kv *fields);
void sched_job_lost(struct worker *w, const char *why, int count_attempt);
void sched_progress(struct worker *w, const struct kv *fields);
int sched_pending_results(const struct daemon *d); /* results kept while the database was busy */
void sched_start_drain(struct daemon *d, const char *why);
void sched_maybe_finish(struct daemon *d);
void sched_close(struct daemon *d);
void sched_apply_config(struct daemon *d);

/* record.c: what a finished job writes into the domain tables; on failure
 * err says why when the database does not (a result file, ...) */
int record_result(struct daemon *d, const struct leased_job *job, const char *result_json, char *err, size_t errlen);
char *result_json_from_fields(const struct kv *fields);
/* A fetch job is dead: what it downloaded so far is removed (no later
 * attempt will resume it). */
void record_dead_fetch(struct daemon *d, const struct leased_job *job);

/* ctlsock.c */
int ctlsock_start(struct daemon *d, char *err, size_t errlen);
void ctlsock_close(struct daemon *d);
char *daemon_status_json(struct daemon *d);

/* main.c */
int daemon_reload_config(struct daemon *d);
/* Start-up checks passed: tells a waiting parent, starts leasing. */
void daemon_started(struct daemon *d);
/* Start-up checks failed: tells a waiting parent why, logs it, stops (exit 1). */
void daemon_refuse(struct daemon *d, const char *why);

#endif
