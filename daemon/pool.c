/* The worker pool: N long-lived dfew-worker processes started with uv_spawn,
 * their stdio pipes, the line protocol on top, and respawning with backoff
 * when one dies. Each slot owns its handles (libuv style: embedded in the
 * struct, freed in close callbacks). What a job means is sched.c's business.
 * With [executor] kind = slurm the slots run their jobs as Slurm jobs
 * instead: the public functions here hand over to slurm.c. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "proto.h"

static void spawn(struct worker *w);

int pool_target_size(const struct daemon *d)
{
    if (d->executor == EXECUTOR_SLURM)
        return d->cfg.slurm_max_jobs;
    if (d->workers_override > 0)
        return d->workers_override;
    if (d->cfg.workers > 0)
        return d->cfg.workers;
    return (int)uv_available_parallelism();
}

int pool_trainer_target(const struct daemon *d)
{
    if (d->executor == EXECUTOR_SLURM)
        return d->cfg.slurm_max_train_jobs;
    int n = config_limit(&d->cfg, "train");
    return n > 0 ? n : 0;
}

const char *pool_kill_reason_text(enum kill_reason r)
{
    switch (r) {
    case KILL_TIMEOUT: return "killed: the job ran past its timeout";
    case KILL_CANCEL: return "killed: the job was cancelled";
    case KILL_LEASE_LOST: return "killed: the daemon lost the job's lease";
    case KILL_PROTOCOL: return "killed: it broke the worker protocol";
    case KILL_DRAIN: return "killed: drain deadline reached";
    default: return NULL;
    }
}

/* ---- what a dead worker left ---- */

/* Removes the entries of dir that match() calls leftovers of pid. */
static void sweep_dir(const char *dir, int (*match)(const char *name, int pid), int pid, const char *who)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp))) {
        if (!match(e->d_name, pid))
            continue;
        struct sbuf p = {0};
        sbuf_addf(&p, "%s/%s", dir, e->d_name);
        if (remove_tree(p.s) == 0)
            log_info(0, "removed %s, left by %s", p.s, who);
        sbuf_free(&p);
    }
    if (dp)
        closedir(dp);
}

static int cache_temp(const char *name, int pid)
{
    (void)pid;
    return strstr(name, ".tmp-") != NULL;
}

/* A worker killed while it wrote the landmark model's flat copy into
 * HOME/cache (dlibc.h; a temporary name, then a rename) leaves the
 * temporary file, 65 MB, that nothing would ever remove: swept when dfewd
 * starts (its lock: no worker of this home runs) and when a worker dies.
 * Removing one that a live worker is still writing costs that worker only
 * its copy (its rename fails; the cache is best effort, the next worker
 * writes it); readers open the final name only. */
static void sweep_cache(struct daemon *d)
{
    struct sbuf dir = {0};
    sbuf_addf(&dir, "%s/cache", d->paths.home);
    sweep_dir(dir.s, cache_temp, 0, "a worker that died while writing it");
    sbuf_free(&dir);
}

/* The temporary names a job's files have while they are written carry the
 * worker's pid: NAME.tmp-PID-RANDOM (write_file_atomic: segments.json, a
 * tensor's clip.u8, a train job's files) and .tmp-CLIP-PID (a prep job's
 * directory, beside its out_dir). */
static int temp_of(const char *name, int pid)
{
    char mark[32];
    snprintf(mark, sizeof mark, ".tmp-%d-", pid);
    if (name[0] != '.' && strstr(name, mark))
        return 1;
    char tail[24];
    size_t n = (size_t)snprintf(tail, sizeof tail, "-%d", pid), len = strlen(name);
    return len > n + 5 && !strncmp(name, ".tmp-", 5) && !strcmp(name + len - n, tail);
}

/* A worker that died in the middle of a job leaves what it was writing
 * under its temporary names, in the job's out_dir and beside it. Its next
 * attempt does not remove it all (a prep job removes its clip's, a segment
 * job nothing), and a job that died on its last attempt has none. */
void pool_sweep_job_temps(struct worker *w, int pid)
{
    sqlite3_stmt *st = db_prepare(w->d->db, "SELECT json_extract(?, '$.out_dir')");
    char *dir = NULL;
    if (st) {
        sqlite3_bind_text(st, 1, w->job.args_json, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            dir = xstrdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_reset(st);
    }
    if (dir && dir[0] == '/' && pid > 0) {
        char who[96];
        snprintf(who, sizeof who, "worker %d (pid %d), which died in job %lld", w->slot, pid, (long long)w->job.id);
        sweep_dir(dir, temp_of, pid, who);
        char *slash = strrchr(dir, '/');
        if (slash != dir) {
            *slash = '\0';
            sweep_dir(dir, temp_of, pid, who);
        }
    }
    free(dir);
}

/* ---- closing one process incarnation ---- */

static void slot_maybe_free(struct worker *w)
{
    if (w->closing && w->open_handles == 0) {
        sbuf_free(&w->outbuf);
        sbuf_free(&w->errbuf);
        leased_job_free(&w->job);
        free(w->pending_msg);
        free(w);
    }
}

static void on_respawn_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->state == W_WAITING && !w->retiring && !w->d->draining)
        spawn(w);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct worker *w = h->data;
    if (--w->open_handles > 0)
        return;
    if (w->closing) {
        slot_maybe_free(w);
        return;
    }
    w->state = W_WAITING;
    struct daemon *d = w->d;
    if (d->draining || w->retiring) {
        sched_maybe_finish(d);
        return;
    }
    /* Backoff: a worker that keeps dying must not spin the machine. */
    double delay = d->cfg.respawn_min_s * (double)(1u << (w->consecutive_failures > 16 ? 16 : w->consecutive_failures));
    if (delay > d->cfg.respawn_max_s)
        delay = d->cfg.respawn_max_s;
    w->consecutive_failures++;
    log_info(0, "worker %d: restarting in %.1f s", w->slot, delay);
    uv_timer_start(&w->respawn_timer, on_respawn_timer, (uint64_t)(delay * 1000), 0);
}

static void close_if_open(struct worker *w, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = w;
        uv_close(h, on_handle_closed);
    }
}

static void close_process_handles(struct worker *w)
{
    w->state = W_EXITING;
    close_if_open(w, (uv_handle_t *)&w->in);
    close_if_open(w, (uv_handle_t *)&w->out);
    close_if_open(w, (uv_handle_t *)&w->err);
    close_if_open(w, (uv_handle_t *)&w->proc);
}

/* The process is gone and its stdout is drained: settle its job, then close. */
static void finalize(struct worker *w)
{
    uv_timer_stop(&w->job_timer);
    if (w->has_job) {
        char why[512];
        const char *k = pool_kill_reason_text(w->kill_reason);
        if (k)
            snprintf(why, sizeof why, "worker %d (pid %d) %s", w->slot, w->pid, k);
        else if (w->term_signal)
            snprintf(why, sizeof why, "worker %d (pid %d) was killed by signal %d (%s)", w->slot, w->pid,
                     w->term_signal, strsignal(w->term_signal));
        else
            snprintf(why, sizeof why, "worker %d (pid %d) exited with status %lld in the middle of the job", w->slot,
                     w->pid, (long long)w->exit_status);
        pool_sweep_job_temps(w, w->pid);
        /* A drain is our doing: the attempt is given back. Anything else may
         * have been caused by the job itself, so it counts. */
        sched_job_lost(w, why, w->kill_reason != KILL_DRAIN);
    }
    close_process_handles(w);
}

static void on_grace_over(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->state != W_EXITING && w->state != W_WAITING)
        finalize(w);
}

static void on_worker_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct worker *w = p->data;
    w->exited = 1;
    w->exit_status = status;
    w->term_signal = term_signal;
    if (term_signal)
        log_msg(w->kill_reason || w->d->draining ? LOG_INFO : LOG_WARN, w->has_job ? w->job.id : 0,
                "worker %d (pid %d) killed by signal %d", w->slot, w->pid, term_signal);
    else
        log_msg(status && !w->d->draining ? LOG_WARN : LOG_INFO, w->has_job ? w->job.id : 0,
                "worker %d (pid %d) exited with status %lld", w->slot, w->pid, (long long)status);
    if (term_signal || status)
        sweep_cache(w->d);
    if (w->out_eof && w->err_eof) {
        finalize(w);
    } else {
        /* Its last lines may still be in the pipes; wait for EOF, not forever. */
        uv_timer_start(&w->job_timer, on_grace_over, 1000, 0);
    }
}

/* ---- reading the worker's stdout and stderr ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void handle_line(struct worker *w, char *line, size_t len)
{
    struct proto_msg m;
    if (proto_parse(line, len, &m)) {
        log_error(w->has_job ? w->job.id : 0, "worker %d (pid %d) sent an unreadable line: %.80s", w->slot, w->pid,
                  line);
        pool_kill(w, KILL_PROTOCOL);
        return;
    }
    if (!strcmp(m.verb, "hello")) {
        int64_t proto = 0;
        if (kv_get_i64(&m.kv, "proto", &proto) || proto != DFEW_PROTO_VERSION) {
            log_error(0, "worker %d (pid %d) speaks protocol %s, this dfewd speaks %d: install matching dfewd and "
                         "dfew-worker binaries",
                      w->slot, w->pid, kv_get(&m.kv, "proto") ? kv_get(&m.kv, "proto") : "?", DFEW_PROTO_VERSION);
            pool_kill(w, KILL_PROTOCOL);
        } else if (w->state == W_SPAWNING) {
            w->state = W_IDLE;
            /* a worker that takes its thread share by signal says so (an
             * older one would die of SIGRTMIN's default action) */
            const char *shares = kv_get(&m.kv, "shares");
            w->takes_shares = shares && !strcmp(shares, "sigrtmin");
            log_info(0, "worker %d ready (pid %d, kinds %s)", w->slot, w->pid,
                     kv_get(&m.kv, "kinds") ? kv_get(&m.kv, "kinds") : "?");
            if (w->retiring || w->d->draining)
                pool_quit_idle(w->d);
            else
                sched_kick(w->d);
        }
    } else if (!strcmp(m.verb, "progress") || !strcmp(m.verb, "done") || !strcmp(m.verb, "fail")) {
        int64_t id = 0;
        if (w->state != W_BUSY || !w->has_job || kv_get_i64(&m.kv, "id", &id) || id != w->job.id) {
            log_error(id, "worker %d (pid %d) sent '%s' for a job it is not running", w->slot, w->pid, m.verb);
            pool_kill(w, KILL_PROTOCOL);
        } else if (!strcmp(m.verb, "progress")) {
            sched_progress(w, &m.kv);
        } else {
            uv_timer_stop(&w->job_timer);
            w->consecutive_failures = 0;
            sched_job_finished(w, m.verb, &m.kv);
            if (w->retiring || w->d->draining)
                pool_quit_idle(w->d);
        }
    } else {
        log_warn(0, "worker %d (pid %d) sent unknown message '%s'; ignored", w->slot, w->pid, m.verb);
    }
    proto_msg_free(&m);
}

/* Splits buffered bytes into lines; returns how many bytes were consumed. */
static void split_lines(struct worker *w, struct sbuf *b, int is_err)
{
    size_t start = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->s[i] != '\n')
            continue;
        b->s[i] = '\0';
        if (is_err) {
            if (i > start)
                log_info(w->has_job ? w->job.id : 0, "worker %d: %s", w->slot, b->s + start);
        } else if (i > start) {
            handle_line(w, b->s + start, i - start);
        }
        start = i + 1;
        if (w->state == W_EXITING || w->state == W_WAITING)
            break;
    }
    if (start) {
        memmove(b->s, b->s + start, b->len - start);
        b->len -= start;
        b->s[b->len] = '\0';
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct worker *w = s->data;
    int is_err = s == (uv_stream_t *)&w->err;
    struct sbuf *b = is_err ? &w->errbuf : &w->outbuf;
    if (nread > 0) {
        sbuf_addn(b, buf->base, (size_t)nread);
        split_lines(w, b, is_err);
        if (b->len > DFEW_PROTO_MAX_LINE) {
            if (is_err) {
                sbuf_reset(b);
            } else {
                log_error(w->has_job ? w->job.id : 0, "worker %d (pid %d) sent a line over %u bytes", w->slot,
                          w->pid, DFEW_PROTO_MAX_LINE);
                pool_kill(w, KILL_PROTOCOL);
            }
        }
    } else if (nread < 0) {
        uv_read_stop(s);
        if (is_err)
            w->err_eof = 1;
        else
            w->out_eof = 1;
        if (w->exited && w->out_eof && w->err_eof && w->state != W_EXITING && w->state != W_WAITING)
            finalize(w);
    }
    free(buf->base);
}

/* ---- starting a worker ---- */

static void spawn(struct worker *w)
{
    struct daemon *d = w->d;
    uv_pipe_init(&d->loop, &w->in, 0);
    uv_pipe_init(&d->loop, &w->out, 0);
    uv_pipe_init(&d->loop, &w->err, 0);
    w->in.data = w->out.data = w->err.data = w->proc.data = w;
    w->open_handles = 4;
    w->exited = w->out_eof = w->err_eof = 0;
    w->exit_status = 0;
    w->term_signal = 0;
    w->kill_reason = KILL_NONE;
    w->quit_sent = 0;
    w->pid = 0;
    sbuf_reset(&w->outbuf);
    sbuf_reset(&w->errbuf);

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&w->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&w->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&w->err;
    /* a job worker loads the dlib models before its first job; a trainer
     * slot never needs them */
    const char *model = d->cfg.prep_landmark_model && *d->cfg.prep_landmark_model ? d->cfg.prep_landmark_model
                                                                                   : DFEW_LANDMARK_MODEL;
    char *args[] = {d->worker_program, w->trainer ? NULL : "--preload", (char *)model, NULL};
    uv_process_options_t opt = {0};
    opt.exit_cb = on_worker_exit;
    opt.file = d->worker_program;
    opt.args = args;
    opt.stdio_count = 3;
    opt.stdio = stdio;
    /* Its own session: a Ctrl-C or SIGTERM meant for dfewd's process group
     * must not kill running jobs; dfewd drains them. */
    opt.flags = UV_PROCESS_DETACHED;

    w->spawned_at = now_s();
    w->takes_shares = 0; /* until its hello says so */
    w->state = W_SPAWNING;
    int rc = uv_spawn(&d->loop, &w->proc, &opt);
    if (rc) {
        log_error(0, "worker %d: cannot start %s: %s (set [daemon] worker_program in %s)", w->slot, d->worker_program,
                  uv_strerror(rc), d->config_path);
        w->exited = w->out_eof = w->err_eof = 1;
        close_process_handles(w);
        return;
    }
    w->pid = w->proc.pid;
    uv_read_start((uv_stream_t *)&w->out, alloc_cb, on_read);
    uv_read_start((uv_stream_t *)&w->err, alloc_cb, on_read);
    log_info(0, "worker %d started (pid %d)", w->slot, w->pid);
}

static struct worker *slot_new(struct daemon *d, int slot, int trainer)
{
    struct worker *w = xcalloc(1, sizeof *w);
    w->d = d;
    w->slot = slot;
    w->trainer = trainer;
    w->state = W_WAITING;
    uv_timer_init(&d->loop, &w->respawn_timer);
    uv_timer_init(&d->loop, &w->job_timer);
    w->respawn_timer.data = w->job_timer.data = w;
    return w;
}

int pool_start(struct daemon *d)
{
    sweep_cache(d);
    pool_resize(d, pool_target_size(d));
    return 0;
}

void pool_resize_role(struct daemon *d, int trainer, int n, void (*revive)(struct worker *),
                      struct worker *(*add)(struct daemon *, int))
{
    int active = 0;
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->trainer != trainer)
            continue;
        if (active < n) {
            if (w->retiring) {
                w->retiring = 0;
                if (w->state == W_WAITING)
                    revive(w);
            }
            active++;
        } else if (!w->retiring) {
            w->retiring = 1;
            uv_timer_stop(&w->respawn_timer); /* a Slurm slot's is never started: a no-op */
        }
    }
    for (; active < n; active++)
        add(d, trainer);
}

/* A new local slot with its worker starting. */
static struct worker *add_spawned(struct daemon *d, int trainer)
{
    d->workers = xrealloc(d->workers, (size_t)(d->nworkers + 1) * sizeof *d->workers);
    struct worker *w = slot_new(d, d->nworkers, trainer);
    d->workers[d->nworkers++] = w;
    spawn(w);
    return w;
}

void pool_resize(struct daemon *d, int n)
{
    if (d->executor == EXECUTOR_SLURM) {
        slurm_resize(d);
        return;
    }
    pool_resize_role(d, 0, n, spawn, add_spawned);
    pool_resize_role(d, 1, pool_trainer_target(d), spawn, add_spawned);
    pool_quit_idle(d);
}

/* ---- talking to a worker ---- */

struct write_req {
    uv_write_t req;
    char *buf;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *)req;
    if (status && status != UV_ECANCELED)
        log_warn(0, "writing to a worker failed: %s", uv_strerror(status));
    free(wr->buf);
    free(wr);
}

/* Writes a whole line (taking it) to the worker's stdin. */
static int send_raw(struct worker *w, char *line)
{
    struct write_req *wr = xcalloc(1, sizeof *wr);
    wr->buf = line;
    uv_buf_t buf = uv_buf_init(wr->buf, (unsigned)strlen(wr->buf));
    int rc = uv_write(&wr->req, (uv_stream_t *)&w->in, &buf, 1, on_written);
    if (rc) {
        free(wr->buf);
        free(wr);
    }
    return rc;
}

static int send_line(struct worker *w, const char *verb, const struct kv *kv)
{
    struct sbuf b = {0};
    proto_format(&b, verb, kv);
    return send_raw(w, sbuf_take(&b));
}

static void on_job_timeout(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->state == W_BUSY && w->has_job) {
        log_warn(w->job.id, "%s job ran longer than its timeout of %.0f s; killing worker %d (pid %d)", w->job.kind,
                 config_timeout(&w->d->cfg, w->job.kind), w->slot, w->pid);
        pool_kill(w, KILL_TIMEOUT);
    }
}

/* The job kinds whose handlers use more than one thread when allowed. */
static int threaded_kind(const char *kind) { return !strcmp(kind, "prep") || !strcmp(kind, "segment"); }

static int share_of(const struct daemon *d, int rank, int busy)
{
    int n = d->cpus / busy + (rank < d->cpus % busy);
    if (n < 1)
        n = 1;
    if (d->cfg.threads_per_job > 0 && n > d->cfg.threads_per_job)
        n = d->cfg.threads_per_job;
    return n;
}

static void tell_threads(struct worker *w, unsigned gen)
{
    union sigval v = {.sival_int = (int)((gen & 0xffffffu) << 8 | (unsigned)(w->threads & 0xff))};
    if (w->pid > 0 && !w->exited && sigqueue(w->pid, SIGRTMIN, v) != 0)
        log_warn(w->job.id, "cannot tell worker %d (pid %d) its thread share: %s", w->slot, w->pid, strerror(errno));
}

void pool_share_threads(struct daemon *d)
{
    if (d->executor == EXECUTOR_SLURM)
        return; /* a Slurm job has its own cores ([slurm] cpus) */
    int busy = 0;
    for (int i = 0; i < d->nworkers; i++)
        busy += d->workers[i]->state == W_BUSY && d->workers[i]->has_job;
    if (!busy)
        return;
    d->thread_gen++;
    /* the jobs started first get the cores that do not divide evenly */
    int rank = 0;
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state != W_BUSY || !w->has_job)
            continue;
        int n = share_of(d, rank++, busy);
        if (n != w->threads && w->threads > 0 && w->takes_shares && threaded_kind(w->job.kind)) {
            w->threads = n;
            tell_threads(w, d->thread_gen);
        } else {
            w->threads = n;
        }
    }
}

void pool_job_line(struct daemon *d, const struct leased_job *job, int threads, unsigned gen, struct sbuf *out)
{
    struct kv kv = {0};
    kv_setf(&kv, "id", "%lld", (long long)job->id);
    kv_set(&kv, "kind", job->kind);
    kv_setf(&kv, "attempt", "%d", job->attempt);
    kv_setf(&kv, "max_attempts", "%d", job->max_attempts);
    /* The job's JSON arguments travel as flat key=value fields. */
    sqlite3_stmt *st = db_prepare(d->db, "SELECT key, value FROM json_each(?)");
    if (st) {
        sqlite3_bind_text(st, 1, job->args_json, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *k = (const char *)sqlite3_column_text(st, 0);
            const char *v = (const char *)sqlite3_column_text(st, 1);
            if (k && strcmp(k, "id") && strcmp(k, "kind") && strcmp(k, "attempt") && strcmp(k, "max_attempts"))
                kv_set(&kv, k, v ? v : "");
        }
        sqlite3_reset(st);
    }
    kv_setf(&kv, "threads", "%d", threads);
    kv_setf(&kv, "threads_gen", "%u", gen & 0xffffffu);
    proto_format(out, "job", &kv);
    kv_free(&kv);
}

void pool_take_job(struct worker *w, struct leased_job *job)
{
    w->job = *job;
    memset(job, 0, sizeof *job);
    w->has_job = 1;
    w->state = W_BUSY;
    w->job_started = now_s();
    w->lease_renewed_at = w->job_started;
    w->last_progress_db = 0;
    w->pending_frac = -1;
    w->kill_reason = KILL_NONE;
    w->threads = 0;
}

int pool_dispatch(struct worker *w, struct leased_job *job)
{
    struct daemon *d = w->d;
    if (d->executor == EXECUTOR_SLURM)
        return slurm_dispatch(w, job);
    pool_take_job(w, job);
    pool_share_threads(d);
    struct sbuf line = {0};
    pool_job_line(d, &w->job, w->threads, d->thread_gen, &line);
    int rc = send_raw(w, sbuf_take(&line));
    if (rc) {
        log_error(w->job.id, "cannot send the job to worker %d: %s", w->slot, uv_strerror(rc));
        pool_kill(w, KILL_PROTOCOL);
        return rc;
    }
    double timeout = config_timeout(&d->cfg, w->job.kind);
    if (timeout > 0)
        uv_timer_start(&w->job_timer, on_job_timeout, (uint64_t)(timeout * 1000), 0);
    log_info(w->job.id, "%s started on worker %d (pid %d), attempt %d of %d", w->job.kind, w->slot, w->pid,
             w->job.attempt, w->job.max_attempts);
    return 0;
}

void pool_kill(struct worker *w, enum kill_reason why)
{
    if (w->d->executor == EXECUTOR_SLURM) {
        slurm_kill(w, why);
        return;
    }
    if (w->exited || w->state == W_EXITING || w->state == W_WAITING || !w->pid)
        return;
    if (!w->kill_reason)
        w->kill_reason = why;
    uv_process_kill(&w->proc, SIGKILL);
}

void pool_quit_idle(struct daemon *d)
{
    if (d->executor == EXECUTOR_SLURM) {
        slurm_quit_idle(d);
        return;
    }
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state == W_IDLE && (w->retiring || d->draining)) {
            /* It finishes and exits 0; its exit callback closes the slot. */
            if (!w->quit_sent && send_line(w, "quit", NULL) == 0)
                w->quit_sent = 1;
        }
    }
}

int pool_alive(struct daemon *d)
{
    if (d->executor == EXECUTOR_SLURM)
        return slurm_alive(d);
    int n = 0;
    for (int i = 0; i < d->nworkers; i++)
        if (d->workers[i]->state != W_WAITING)
            n++;
    return n;
}

struct worker *pool_find_job(struct daemon *d, int64_t job_id)
{
    for (int i = 0; i < d->nworkers; i++)
        if (d->workers[i]->has_job && d->workers[i]->job.id == job_id)
            return d->workers[i];
    return NULL;
}

void pool_close(struct daemon *d)
{
    if (d->executor == EXECUTOR_SLURM) {
        slurm_close(d);
        return;
    }
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        w->closing = 1;
        if (w->state != W_WAITING) {
            /* Still alive at shutdown (should not happen after a drain). */
            pool_kill(w, KILL_DRAIN);
            close_process_handles(w);
        }
        w->open_handles += 2;
        uv_close((uv_handle_t *)&w->respawn_timer, on_handle_closed);
        uv_close((uv_handle_t *)&w->job_timer, on_handle_closed);
    }
    free(d->workers);
    d->workers = NULL;
    d->nworkers = 0;
}
