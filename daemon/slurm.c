/* The Slurm executor ([executor] kind = slurm): dfewd keeps the queue and
 * every job state, and runs each leased job as a Slurm job. Not a scheduler
 * of its own: Slurm places the jobs; this file submits, follows and stops
 * them, all through short commands (sbatch, squeue, scancel) that never
 * block the loop (cmd.c).
 *
 * A slot (a struct worker without a process) with a job has a folder on
 * the shared filesystem, HOME/slurm/job-ID-TOKEN8/:
 *   spec      the job line a local worker would get on its stdin
 *   job.sh    what sbatch runs: dfew-worker --one-job spec
 *   lease     id, token, attempt, Slurm job name and id (dfewd's own record:
 *             a restarted dfewd adopts the jobs it finds here)
 *   progress  the worker's progress lines (appended; dfewd tails it)
 *   result    the worker's result line, written last and atomically
 *   worker    pid and host of the worker (to clean up after it)
 *   output    the job's stdout and stderr (Slurm writes it)
 * A poll timer reads result and progress files and asks squeue how the
 * jobs are; a job that ends without a result (node failure, time limit,
 * cancelled) is a lost attempt, with Slurm's reason, like a dead worker. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "proto.h"

extern char **environ;

/* sbatch and scancel answer in well under this; squeue too unless
 * slurmctld is overloaded (then the next poll asks again). */
#define CMD_TIMEOUT_S 60
/* An output file's tail copied into an event message. */
#define OUTPUT_TAIL 400

struct slurm_run {
    char *dir;            /* HOME/slurm/job-ID-TOKEN8 */
    char name[96];        /* Slurm job name: dfew-TAG-ID-TOKEN8 */
    long long id;         /* Slurm job id; 0 until sbatch said */
    int submitting;       /* sbatch runs */
    int cancel_sent;
    int adopted;          /* taken over from a previous dfewd */
    char state[32];       /* as squeue last said; "" before */
    char reason[160];
    char node[160];
    int ran;              /* seen RUNNING (a later PENDING is Slurm's requeue) */
    int ran_pid;          /* the worker's pid in that run, once its "worker" file said */
    int asked;            /* in the squeue that runs now */
    double ended_seen;    /* when squeue first said it ended (or no longer knew it) without a result; 0: not */
    off_t progress_off;   /* bytes of the progress file already read */
    struct worker *w;     /* NULL once the slot gave up on it (its sbatch still runs) */
};

/* The start-up storage check: a probe job on a node (see slurm_start). */
struct storage_check {
    char *dir;            /* HOME/slurm/check-NONCE */
    char nonce[33];
    long long id;         /* its Slurm job; 0 while sbatch runs */
    double started, ended_seen;
    char state[32], reason[160];
    struct kv labels;     /* path -> what it is, for the message */
};

struct slurm_exec {
    struct daemon *d;
    uv_timer_t poll_timer;
    char *dir;            /* HOME/slurm */
    char tag[9];          /* from HOME: the names of this home's Slurm jobs */
    int polling;          /* squeue runs */
    char **env;           /* for sbatch and friends: dfewd's, less what is only right for this machine */
    struct storage_check *check; /* while it runs */
};

static void poll_now(struct slurm_exec *x);

/* ---- small helpers ---- */

static const char *const ended_states[] = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                                           "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT"};

static int state_ended(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(ended_states); i++)
        if (!strcmp(s, ended_states[i]))
            return 1;
    return 0;
}

static char *join2(const char *a, const char *b)
{
    struct sbuf s = {0};
    sbuf_addf(&s, "%s/%s", a, b);
    return sbuf_take(&s);
}

/* A word for a shell script: in single quotes, each ' as '\''. */
static void add_quoted(struct sbuf *b, const char *s)
{
    sbuf_addc(b, '\'');
    for (; *s; s++)
        if (*s == '\'')
            sbuf_add(b, "'\\''");
        else
            sbuf_addc(b, *s);
    sbuf_addc(b, '\'');
}

/* The last non-empty lines of a file, at most max bytes, on one line. */
static char *file_tail(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        size_t n = (size_t)st.st_size < max ? (size_t)st.st_size : max;
        buf = xmalloc(n + 1);
        ssize_t r = pread(fd, buf, n, st.st_size - (off_t)n);
        buf[r > 0 ? r : 0] = '\0';
        for (char *p = buf; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
        str_trim(buf);
        if (!*buf) {
            free(buf);
            buf = NULL;
        }
    }
    close(fd);
    return buf;
}

/* Copies a job's output into dfewd's log, line by line (as a local
 * worker's stderr is). */
static void relay_output(struct daemon *d, int64_t job_id, long long slurm_id, const char *dir)
{
    char *path = join2(dir, "output"), *text = NULL;
    size_t len = 0;
    if (read_small_file(path, 1 << 20, &text, &len) == 0) {
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            log_info(job_id, "slurm job %lld: %s", slurm_id, line);
    }
    (void)d;
    free(text);
    free(path);
}

/* dfewd's environment for the commands it runs, without OPENBLAS_CORETYPE
 * when dfewd chose it for its own CPU: sbatch passes the environment on to
 * the job, and a node's CPU may differ (the worker chooses there). */
static char **command_env(struct daemon *d)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = xcalloc(n + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!(d->openblas_set && !strncmp(environ[i], "OPENBLAS_CORETYPE=", 18)))
            env[k++] = xstrdup(environ[i]);
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

struct argv {
    char **v;
    int n;
};

static void arg(struct argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(struct argv *a, const char *fmt, ...)
{
    a->v = xrealloc(a->v, (size_t)(a->n + 2) * sizeof *a->v);
    va_list ap;
    va_start(ap, fmt);
    struct sbuf s = {0};
    sbuf_vaddf(&s, fmt, ap);
    va_end(ap);
    a->v[a->n++] = sbuf_take(&s);
    a->v[a->n] = NULL;
}

static void argv_free(struct argv *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
}

/* ---- the sbatch command line for a kind ---- */

static void add_resources(struct daemon *d, struct argv *a, const char *kind)
{
    const struct dfew_config *c = &d->cfg;
    if (c->slurm_partition)
        arg(a, "--partition=%s", c->slurm_partition);
    if (c->slurm_account)
        arg(a, "--account=%s", c->slurm_account);
    const char *v = config_slurm_res(c, "time", kind);
    double secs = v ? atof(v) : config_timeout(c, kind);
    if (secs > 0)
        arg(a, "--time=%.0f", ceil(secs / 60));
    if ((v = config_slurm_res(c, "cpus", kind)))
        arg(a, "--cpus-per-task=%s", v);
    if ((v = config_slurm_res(c, "mem", kind)))
        arg(a, "--mem=%.0fM", ceil(atof(v) / (1 << 20)));
    if ((v = config_slurm_res(c, "gres", kind)) && strcmp(v, "none"))
        arg(a, "--gres=%s", v);
    /* dfew retries a job itself, as a new Slurm job: Slurm's own requeue
     * would run an attempt twice behind dfewd's back */
    arg(a, "--no-requeue");
    if (c->slurm_options) {
        char *copy = xstrdup(c->slurm_options), *save = NULL;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
            arg(a, "%s", w);
        free(copy);
    }
}

static int slurm_cpus(struct daemon *d, const char *kind)
{
    const char *v = config_slurm_res(&d->cfg, "cpus", kind);
    int n = v ? atoi(v) : 1;
    return n < 1 ? 1 : n;
}

/* ---- the lease record ---- */

static int write_lease(const struct worker *w)
{
    const struct slurm_run *r = w->run;
    struct kv kv = {0};
    kv_setf(&kv, "id", "%lld", (long long)w->job.id);
    kv_set(&kv, "token", w->job.token);
    kv_setf(&kv, "attempt", "%d", w->job.attempt);
    kv_set(&kv, "name", r->name);
    if (r->id)
        kv_setf(&kv, "slurm", "%lld", r->id);
    struct sbuf b = {0};
    proto_format(&b, "lease", &kv);
    kv_free(&kv);
    char *path = join2(r->dir, "lease");
    int rc = write_file_atomic(path, b.s, b.len);
    free(path);
    sbuf_free(&b);
    return rc;
}

/* ---- the end of a run ---- */

static void run_free(struct slurm_run *r)
{
    free(r->dir);
    free(r);
}

/* The slot lets go of its Slurm job, and of its folder unless keep_dir
 * (what the job said is in the log by then). A run whose sbatch still runs
 * is freed by sbatch's callback. */
static void end_run(struct worker *w, int keep_dir)
{
    struct slurm_run *r = w->run;
    w->run = NULL;
    if (!r)
        return;
    if (!keep_dir && remove_tree(r->dir) != 0)
        log_warn(w->job.id, "cannot remove %s: %s", r->dir, strerror(errno));
    if (r->submitting) {
        r->w = NULL;
        return;
    }
    run_free(r);
}

/* The pid the worker on the node wrote into its "worker" file; 0: none. */
static int worker_pid(const struct slurm_run *r)
{
    char *who = join2(r->dir, "worker"), *text = NULL;
    size_t len = 0;
    int pid = 0;
    if (read_small_file(who, 4096, &text, &len) == 0) {
        const char *p = strstr(text, "pid=");
        pid = p ? atoi(p + 4) : 0;
    }
    free(text);
    free(who);
    return pid > 0 ? pid : 0;
}

/* The job ended without a result: a lost attempt, like a worker that died
 * (the attempt counts unless dfewd itself stopped it for a drain). */
static void lost(struct worker *w, const char *why)
{
    struct slurm_run *r = w->run;
    relay_output(w->d, w->job.id, r->id, r->dir);
    /* what the worker left under its temporary names: they carry its pid */
    int pid = worker_pid(r);
    if (pid)
        pool_sweep_job_temps(w, pid);
    int count = w->kill_reason != KILL_DRAIN;
    end_run(w, 0);
    w->state = W_IDLE;
    w->kill_reason = KILL_NONE;
    sched_job_lost(w, why, count); /* the slot may have the next job when this returns */
    pool_quit_idle(w->d);
}

/* A failure before the job reached Slurm (its files, sbatch): a failed
 * attempt with the reason, retried after the backoff. */
static void failed_to_submit(struct worker *w, const char *why)
{
    log_error(w->job.id, "%s", why);
    struct kv kv = {0};
    kv_setf(&kv, "id", "%lld", (long long)w->job.id);
    kv_set(&kv, "retry", "1");
    kv_set(&kv, "error", why);
    end_run(w, 0);
    w->kill_reason = KILL_NONE;
    sched_job_finished(w, "fail", &kv);
    kv_free(&kv);
    pool_quit_idle(w->d);
}

/* The job's result file, if it is there: the job is over, as the worker
 * says (the same line a local worker sends). 1 when the slot is done with
 * the job. */
static int take_result(struct worker *w)
{
    struct slurm_run *r = w->run;
    char *path = join2(r->dir, "result"), *text = NULL;
    size_t len = 0;
    int rc = read_small_file(path, DFEW_PROTO_MAX_LINE, &text, &len);
    free(path);
    if (rc == -ENOENT)
        return 0;
    char why[512];
    if (rc) {
        snprintf(why, sizeof why, "Slurm job %lld: cannot read its result file: %s", r->id, strerror(-rc));
        lost(w, why);
        return 1;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    struct proto_msg m;
    int64_t id = 0;
    if (proto_parse(text, len, &m) || (strcmp(m.verb, "done") && strcmp(m.verb, "fail")) ||
        kv_get_i64(&m.kv, "id", &id) || id != w->job.id) {
        proto_msg_free(&m);
        free(text);
        snprintf(why, sizeof why, "Slurm job %lld left a result file that is not this job's result line", r->id);
        lost(w, why);
        return 1;
    }
    free(text);
    relay_output(w->d, w->job.id, r->id, r->dir);
    log_info(w->job.id, "Slurm job %lld on %s: %s", r->id, r->node[0] ? r->node : "its node", m.verb);
    end_run(w, 0);
    w->kill_reason = KILL_NONE;
    sched_job_finished(w, m.verb, &m.kv); /* the slot is idle again (and may have the next job) */
    proto_msg_free(&m);
    pool_quit_idle(w->d);
    return 1;
}

/* New whole progress lines since the last read: the newest goes on. */
static void take_progress(struct worker *w)
{
    struct slurm_run *r = w->run;
    char *path = join2(r->dir, "progress");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > r->progress_off) {
        /* only the newest 64 KiB matter */
        off_t from = st.st_size - r->progress_off > 65536 ? st.st_size - 65536 : r->progress_off;
        size_t n = (size_t)(st.st_size - from);
        char *buf = xmalloc(n + 1);
        ssize_t got = pread(fd, buf, n, from);
        buf[got > 0 ? got : 0] = '\0';
        char *end = got > 0 ? strrchr(buf, '\n') : NULL;
        if (end) {
            r->progress_off = from + (end - buf) + 1;
            *end = '\0';
            char *last = strrchr(buf, '\n');
            last = last ? last + 1 : buf;
            struct proto_msg m;
            if (proto_parse(last, strlen(last), &m) == 0) {
                if (!strcmp(m.verb, "progress"))
                    sched_progress(w, &m.kv);
                proto_msg_free(&m);
            }
        }
        free(buf);
    }
    close(fd);
}

/* ---- cancelling ---- */

static void on_scancel_done(struct cmd *c, void *data)
{
    (void)data;
    struct daemon *d = c->d;
    if (!cmd_ok(c))
        log_warn(0, "scancel: %s", cmd_why(c));
    else if (d->slurm && !d->shutting_down)
        poll_now(d->slurm); /* see it end soon */
    sched_maybe_finish(d);
}

/* scancel by id, or by our job name when the id is not known. */
static void scancel(struct daemon *d, long long id, const char *name)
{
    struct argv a = {0};
    arg(&a, "scancel");
    if (id) {
        arg(&a, "%lld", id);
    } else {
        arg(&a, "--name=%s", name);
        arg(&a, "--user=%d", (int)getuid());
    }
    cmd_start(d, a.v, d->slurm ? d->slurm->env : NULL, CMD_TIMEOUT_S, on_scancel_done, NULL);
    argv_free(&a);
}

void slurm_kill(struct worker *w, enum kill_reason why)
{
    struct slurm_run *r = w->run;
    if (w->state != W_BUSY || !r)
        return;
    if (!w->kill_reason)
        w->kill_reason = why;
    if (r->submitting || r->cancel_sent)
        return; /* sbatch's callback cancels it once it has its id */
    r->cancel_sent = 1;
    log_info(w->job.id, "scancel %lld: %s", r->id, pool_kill_reason_text(why));
    scancel(w->d, r->id, r->name);
}

/* ---- submitting ---- */

static long long sbatch_id(struct cmd *c)
{
    if (!cmd_ok(c))
        return 0;
    char *s = c->out.s ? c->out.s : (char *)"";
    s[strcspn(s, ";")] = '\0'; /* "id;cluster" on a federation */
    int64_t v;
    return parse_i64(str_trim(s), &v) == 0 && v > 0 ? (long long)v : 0;
}

static void on_sbatch_done(struct cmd *c, void *data)
{
    struct slurm_run *r = data;
    struct daemon *d = c->d;
    r->submitting = 0;
    long long id = sbatch_id(c);
    struct worker *w = r->w;
    if (!w) {
        /* the slot let go of it meanwhile (shutdown): nobody follows it */
        if (id)
            scancel(d, id, r->name);
        run_free(r);
        sched_maybe_finish(d);
        return;
    }
    if (!id) {
        char why[1024];
        snprintf(why, sizeof why, "sbatch refused the job: %s ([slurm] in %s)",
                 cmd_ok(c) ? "no job id in its answer" : cmd_why(c), d->config_path);
        /* an sbatch that timed out may have submitted it all the same: the
         * name is this attempt's alone, so nothing else is cancelled */
        if (c->timed_out || c->term_signal)
            scancel(d, 0, r->name);
        failed_to_submit(w, why);
        sched_maybe_finish(d);
        return;
    }
    r->id = id;
    int rc = write_lease(w);
    if (rc)
        log_warn(w->job.id, "cannot write %s/lease: %s; a restarted dfewd will not find Slurm job %lld", r->dir,
                 strerror(-rc), id);
    log_info(w->job.id, "%s submitted as Slurm job %lld (attempt %d of %d)", w->job.kind, id, w->job.attempt,
             w->job.max_attempts);
    if (w->kill_reason) {
        r->cancel_sent = 1;
        scancel(d, id, r->name);
    }
}

static int write_job_files(struct daemon *d, struct worker *w, char *err, size_t errlen)
{
    struct slurm_run *r = w->run;
    int rc = remove_tree(r->dir);
    if (!rc)
        rc = mkdir_p(r->dir, 0755);
    if (rc) {
        snprintf(err, errlen, "cannot make %s: %s", r->dir, strerror(-rc));
        return rc;
    }
    struct sbuf line = {0}, sh = {0};
    pool_job_line(d, &w->job, w->threads, 1, &line);
    char *spec = join2(r->dir, "spec"), *script = join2(r->dir, "job.sh");
    sbuf_addf(&sh, "#!/bin/sh\n# dfew job %lld (%s, attempt %d), written by dfewd for Slurm\nexec ",
              (long long)w->job.id, w->job.kind, w->job.attempt);
    add_quoted(&sh, d->worker_program);
    sbuf_add(&sh, " --one-job ");
    add_quoted(&sh, spec);
    sbuf_addc(&sh, '\n');
    rc = write_file_atomic(spec, line.s, line.len);
    if (!rc)
        rc = write_file_atomic(script, sh.s, sh.len);
    if (!rc)
        rc = write_lease(w);
    if (rc)
        snprintf(err, errlen, "cannot write the job's files in %s: %s", r->dir, strerror(-rc));
    free(spec);
    free(script);
    sbuf_free(&line);
    sbuf_free(&sh);
    return rc;
}

static void take_job(struct worker *w, struct leased_job *job)
{
    pool_take_job(w, job);
    w->threads = slurm_cpus(w->d, w->job.kind); /* the cores Slurm gives it */
}

static struct slurm_run *new_run(struct slurm_exec *x, struct worker *w)
{
    struct slurm_run *r = xcalloc(1, sizeof *r);
    r->w = w;
    snprintf(r->name, sizeof r->name, "dfew-%s-%lld-%.8s", x->tag, (long long)w->job.id, w->job.token);
    struct sbuf dir = {0};
    sbuf_addf(&dir, "%s/job-%lld-%.8s", x->dir, (long long)w->job.id, w->job.token);
    r->dir = sbuf_take(&dir);
    return r;
}

/* sbatch's command line: our name, output, folder, the kind's resources. */
static void sbatch_argv(struct daemon *d, struct argv *a, const char *name, const char *dir, const char *kind,
                        const char *script)
{
    arg(a, "sbatch");
    arg(a, "--parsable");
    arg(a, "--job-name=%s", name);
    arg(a, "--output=%s/output", dir);
    arg(a, "--chdir=%s", dir);
    add_resources(d, a, kind);
    arg(a, "%s", script);
}

int slurm_dispatch(struct worker *w, struct leased_job *job)
{
    struct daemon *d = w->d;
    struct slurm_exec *x = d->slurm;
    take_job(w, job);
    struct slurm_run *r = w->run = new_run(x, w);
    char err[1024];
    if (write_job_files(d, w, err, sizeof err)) {
        failed_to_submit(w, err);
        return -EIO;
    }
    struct argv a = {0};
    char *script = join2(r->dir, "job.sh");
    sbatch_argv(d, &a, r->name, r->dir, w->job.kind, script);
    free(script);
    r->submitting = 1;
    int rc = cmd_start(d, a.v, x->env, CMD_TIMEOUT_S, on_sbatch_done, r);
    argv_free(&a);
    return rc; /* a failed start still calls on_sbatch_done */
}

/* ---- following the jobs ---- */

struct sq_row {
    long long id;
    const char *state, *reason, *node;
};

/* squeue's "id|state|reason|node" lines (cut in place). */
static size_t parse_squeue(char *text, struct sq_row **rows)
{
    size_t n = 0;
    *rows = NULL;
    char *save = NULL;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {0}, *p = line;
        int k = 0;
        for (; k < 4 && p; k++) {
            f[k] = p;
            p = strchr(p, '|');
            if (p)
                *p++ = '\0';
        }
        int64_t id;
        if (k < 4 || parse_i64(str_trim(f[0]), &id))
            continue;
        *rows = xrealloc(*rows, (n + 1) * sizeof **rows);
        (*rows)[n++] = (struct sq_row){(long long)id, str_trim(f[1]), str_trim(f[2]), str_trim(f[3])};
    }
    return n;
}

static const struct sq_row *find_row(const struct sq_row *rows, size_t n, long long id)
{
    for (size_t k = 0; k < n; k++)
        if (rows[k].id == id)
            return &rows[k];
    return NULL;
}

/* A job that ended (or that Slurm no longer knows: row NULL) without a
 * result file: lost once its grace is over. */
static void ended_without_result(struct worker *w, const struct sq_row *row)
{
    struct slurm_run *r = w->run;
    double now = now_s();
    if (!r->ended_seen)
        r->ended_seen = now;
    /* A COMPLETED job wrote its result, and a job Slurm forgot may have:
     * on NFS this machine may see the file a little after the node wrote it */
    int may_have = !row || !strcmp(row->state, "COMPLETED");
    if (may_have && !w->kill_reason && now - r->ended_seen < w->d->cfg.slurm_result_grace_s)
        return;
    char why[1536];
    const char *k = pool_kill_reason_text(w->kill_reason);
    if (row) {
        char *path = join2(r->dir, "output"), *out = file_tail(path, OUTPUT_TAIL);
        snprintf(why, sizeof why, "Slurm job %lld%s%s ended %s (%s)%s%s%s%s%s", r->id, r->node[0] ? " on " : "",
                 r->node, row->state, row->reason, k ? ", " : "", k ? k : "",
                 !strcmp(row->state, "COMPLETED") ? " without a result file" : "", out ? ": " : "", out ? out : "");
        free(out);
        free(path);
    } else {
        snprintf(why, sizeof why, "Slurm no longer knows job %lld (last seen %s) and it left no result in %s%s%s",
                 r->id, r->state[0] ? r->state : "never", r->dir, k ? "; " : "", k ? k : "");
    }
    lost(w, why);
}

/* What squeue says about one job in flight. */
static void follow(struct worker *w, const struct sq_row *row)
{
    struct slurm_run *r = w->run;
    if (!row) {
        if (!take_result(w))
            ended_without_result(w, NULL);
        return;
    }
    if (strcmp(r->state, row->state)) {
        log_debug(w->job.id, "Slurm job %lld: %s (%s)", r->id, row->state, row->reason);
        if (r->ran && (!strcmp(row->state, "PENDING") || !strncmp(row->state, "REQUEUE", 7))) {
            /* Slurm runs it again (an administrator's requeue): the same
             * attempt under the same lease, recorded once, when it ends */
            log_warn(w->job.id, "Slurm requeued job %lld (%s); it stays attempt %d", r->id, row->reason,
                     w->job.attempt);
            struct kv kv = {0};
            kv_set(&kv, "frac", "0");
            kv_setf(&kv, "msg", "requeued by Slurm (%s)", row->reason);
            sched_progress(w, &kv);
            kv_free(&kv);
            r->ran = 0;
            r->progress_off = 0;
            /* the run Slurm stopped may have left files under its pid; the
             * next run writes its own "worker" file */
            if (r->ran_pid)
                pool_sweep_job_temps(w, r->ran_pid);
            r->ran_pid = 0;
            char *who = join2(r->dir, "worker");
            unlink(who);
            free(who);
        }
        if (!strcmp(row->state, "RUNNING"))
            r->ran = 1;
    }
    snprintf(r->state, sizeof r->state, "%s", row->state);
    snprintf(r->reason, sizeof r->reason, "%s", row->reason);
    if (*row->node && strcmp(row->node, "(null)"))
        snprintf(r->node, sizeof r->node, "%s", row->node);
    if (r->ran && !r->ran_pid)
        r->ran_pid = worker_pid(r);
    r->ended_seen = state_ended(row->state) ? r->ended_seen : 0;
    if (state_ended(row->state) && !take_result(w))
        ended_without_result(w, row);
}

static void check_follow(struct slurm_exec *x, const struct sq_row *row);

static void on_squeue_done(struct cmd *c, void *data)
{
    struct slurm_exec *x = data;
    struct daemon *d = c->d;
    x->polling = 0;
    if (d->shutting_down)
        return;
    const char *err = cmd_ok(c) ? NULL : cmd_why(c);
    /* "Invalid job id specified": Slurm knows none of them any more */
    if (err && !strstr(err, "Invalid job id")) {
        log_warn(0, "squeue failed: %s; the Slurm jobs keep their leases and are asked about again", err);
        sched_maybe_finish(d);
        return;
    }
    struct sq_row *rows = NULL;
    size_t n = err ? 0 : parse_squeue(c->out.s, &rows);
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        /* only jobs that were in flight when squeue was asked */
        if (w->state == W_BUSY && w->run && w->run->asked)
            follow(w, find_row(rows, n, w->run->id));
    }
    if (x->check && x->check->id)
        check_follow(x, find_row(rows, n, x->check->id));
    free(rows);
    sched_maybe_finish(d);
}

/* Results and progress first (files), then one squeue for every job in flight. */
static void poll_now(struct slurm_exec *x)
{
    struct daemon *d = x->d;
    if (d->shutting_down)
        return;
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state == W_BUSY && w->run && w->run->id && !take_result(w))
            take_progress(w);
    }
    if (x->check)
        check_follow(x, NULL);
    if (x->polling || d->shutting_down)
        return;
    struct sbuf ids = {0};
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->state == W_BUSY && w->run) {
            w->run->asked = w->run->id != 0;
            if (w->run->id)
                sbuf_addf(&ids, "%s%lld", ids.len ? "," : "", w->run->id);
        }
    }
    if (x->check && x->check->id)
        sbuf_addf(&ids, "%s%lld", ids.len ? "," : "", x->check->id);
    if (ids.len) {
        struct argv a = {0};
        arg(&a, "squeue");
        arg(&a, "--noheader");
        arg(&a, "--states=all");
        arg(&a, "--jobs=%s", ids.s);
        arg(&a, "--format=%%i|%%T|%%r|%%N");
        x->polling = 1;
        cmd_start(d, a.v, x->env, CMD_TIMEOUT_S, on_squeue_done, x);
        argv_free(&a);
    }
    sbuf_free(&ids);
    sched_maybe_finish(d);
}

static void on_poll(uv_timer_t *t)
{
    poll_now(t->data);
}

/* ---- slots ---- */

static struct worker *slot_new(struct daemon *d, int trainer)
{
    struct worker *w = xcalloc(1, sizeof *w);
    w->d = d;
    w->slot = d->nworkers;
    w->trainer = trainer;
    w->state = d->starting ? W_SPAWNING : W_IDLE;
    d->workers = xrealloc(d->workers, (size_t)(d->nworkers + 1) * sizeof *d->workers);
    d->workers[d->nworkers++] = w;
    return w;
}

/* A slot back from retiring: free for a job (once started). */
static void revive(struct worker *w)
{
    w->state = w->d->starting ? W_SPAWNING : W_IDLE;
}

void slurm_resize(struct daemon *d)
{
    pool_resize_role(d, 0, pool_target_size(d), revive, slot_new);
    pool_resize_role(d, 1, pool_trainer_target(d), revive, slot_new);
    slurm_quit_idle(d);
}

void slurm_quit_idle(struct daemon *d)
{
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if ((w->state == W_IDLE || w->state == W_SPAWNING) && (w->retiring || d->draining))
            w->state = W_WAITING;
    }
}

int slurm_alive(struct daemon *d)
{
    int n = d->cmds_running;
    for (int i = 0; i < d->nworkers; i++)
        n += d->workers[i]->state != W_WAITING;
    return n;
}

static void exec_closed(uv_handle_t *h)
{
    struct slurm_exec *x = h->data;
    free_env(x->env);
    free(x->dir);
    free(x);
}

static void check_free(struct storage_check *k)
{
    if (!k)
        return;
    free(k->dir);
    kv_free(&k->labels);
    free(k);
}

void slurm_close(struct daemon *d)
{
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        end_run(w, 1); /* none at a normal end; a folder kept is adopted next time */
        sbuf_free(&w->outbuf);
        sbuf_free(&w->errbuf);
        leased_job_free(&w->job);
        free(w->pending_msg);
        free(w);
    }
    free(d->workers);
    d->workers = NULL;
    d->nworkers = 0;
    struct slurm_exec *x = d->slurm;
    if (x) {
        d->slurm = NULL;
        check_free(x->check);
        x->check = NULL;
        uv_close((uv_handle_t *)&x->poll_timer, exec_closed);
    }
}

void slurm_slot_json(struct sbuf *b, const struct worker *w)
{
    const struct slurm_run *r = w->run;
    if (!r)
        return;
    sbuf_addf(b, ",\"slurm_job\":%lld,\"slurm_state\":", r->id);
    sbuf_add_json_str(b, r->id ? (r->state[0] ? r->state : "SUBMITTED") : "SUBMITTING");
    sbuf_add(b, ",\"node\":");
    sbuf_add_json_str(b, r->node[0] ? r->node : NULL);
}

/* ---- start-up: adopting what a previous dfewd left in Slurm ---- */

static struct worker *free_slot(struct daemon *d, int trainer)
{
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->trainer == trainer && !w->retiring && !w->has_job &&
            (w->state == W_IDLE || w->state == W_SPAWNING))
            return w;
    }
    struct worker *w = slot_new(d, trainer); /* more jobs than slots now: this one goes after its job */
    w->retiring = 1;
    return w;
}

/* One folder job-*: its job is adopted when the database still has it
 * leased with the same token; else its Slurm job is cancelled and the
 * folder removed. */
static void adopt_one(struct slurm_exec *x, const char *dir, int *adopted, int *dropped)
{
    struct daemon *d = x->d;
    char *path = join2(dir, "lease"), *text = NULL;
    size_t len = 0;
    struct proto_msg m = {0};
    int64_t id = 0, sid = 0;
    const char *token = NULL, *name = NULL;
    if (read_small_file(path, 4096, &text, &len) == 0) {
        text[strcspn(text, "\n")] = '\0';
        if (proto_parse(text, strlen(text), &m) == 0 && !strcmp(m.verb, "lease")) {
            kv_get_i64(&m.kv, "id", &id);
            kv_get_i64(&m.kv, "slurm", &sid);
            token = kv_get(&m.kv, "token");
            name = kv_get(&m.kv, "name");
        }
    }
    free(path);
    struct leased_job job;
    int rc = id > 0 && token && name ? queue_adopt(d->db, &d->policy, d->owner, id, token, &job) : -EINVAL;
    if (rc == 0) {
        struct worker *w = free_slot(d, !strcmp(job.kind, "train") && pool_trainer_target(d) > 0);
        take_job(w, &job);
        struct slurm_run *r = w->run = new_run(x, w);
        r->adopted = 1;
        r->id = (long long)sid;
        (*adopted)++;
        if (!r->id) {
            /* dfewd stopped between sbatch and writing its answer down */
            scancel(d, 0, r->name);
            lost(w, "dfewd stopped while it submitted the job to Slurm");
        } else {
            log_info(w->job.id, "adopted Slurm job %lld (%s, attempt %d of %d), left running by the previous dfewd",
                     r->id, w->job.kind, w->job.attempt, w->job.max_attempts);
        }
    } else if (rc == -ESTALE || rc == -EINVAL) {
        /* cancelled, expired, done meanwhile, or not a lease we can read */
        if (sid || name)
            scancel(d, sid, name);
        if (remove_tree(dir) == 0)
            (*dropped)++;
    } else {
        log_warn(id, "cannot adopt the Slurm job in %s: %s; it is looked at again when dfewd starts", dir,
                 db_errmsg(d->db));
    }
    proto_msg_free(&m);
    free(text);
}

static int adopt_all(struct slurm_exec *x)
{
    struct daemon *d = x->d;
    int adopted = 0, dropped = 0, n = 0;
    DIR *dp = opendir(x->dir);
    struct dirent *e;
    db_busy_timeout(d->db, 5000); /* start-up: a moment's wait for the lock is fine */
    while (dp && (e = readdir(dp))) {
        char *p = join2(x->dir, e->d_name);
        if (!strncmp(e->d_name, "job-", 4))
            adopt_one(x, p, &adopted, &dropped);
        else if (!strncmp(e->d_name, "check-", 6))
            remove_tree(p);
        free(p);
    }
    if (dp)
        closedir(dp);
    int rc = queue_release_stale_except(d->db, d->owner, "the daemon that leased it stopped without finishing it",
                                        &n);
    db_busy_timeout(d->db, -1);
    if (adopted)
        log_info(0, "%d job(s) still in Slurm adopted from the previous dfewd", adopted);
    if (dropped)
        log_info(0, "%d Slurm job folder(s) of jobs no longer leased removed (their Slurm jobs cancelled)", dropped);
    if (n)
        log_warn(0, "%d job(s) leased by a previous dfewd went back to the queue", n);
    return rc;
}

/* ---- start-up: the storage check ---- */

static void check_over(struct slurm_exec *x, const char *why)
{
    struct daemon *d = x->d;
    struct storage_check *k = x->check;
    x->check = NULL;
    if (why) {
        if (k->id)
            scancel(d, k->id, NULL);
        /* its folder stays for a look; the next start removes it */
        check_free(k);
        daemon_refuse(d, why);
        return;
    }
    remove_tree(k->dir);
    check_free(k);
    char err[512] = "";
    if (adopt_all(x)) {
        snprintf(err, sizeof err, "cannot release the leases of the previous dfewd: %s", db_errmsg(d->db));
        daemon_refuse(d, err);
        return;
    }
    for (int i = 0; i < d->nworkers; i++)
        if (d->workers[i]->state == W_SPAWNING)
            d->workers[i]->state = W_IDLE;
    daemon_started(d);
    poll_now(x);
}

/* The probe job's result: every path seen, or the first that is not. */
static void check_result(struct slurm_exec *x, char *text)
{
    struct storage_check *k = x->check;
    char why[2048] = "", host[256] = "?";
    int nonce_ok = 0, paths = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && !why[0]; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "nonce ", 6))
            nonce_ok = !strcmp(line + 6, k->nonce);
        else if (!strncmp(line, "host ", 5))
            snprintf(host, sizeof host, "%s", line + 5);
        else if (!strncmp(line, "ok ", 3))
            paths++;
        else if (!strncmp(line, "bad ", 4)) {
            char *tab = strchr(line + 4, '\t');
            if (tab)
                *tab++ = '\0';
            const char *what = kv_get(&k->labels, line + 4);
            snprintf(why, sizeof why,
                     "the storage check: compute node %s cannot use %s %s (%s). With [executor] kind = slurm, dfewd's "
                     "home and the movies must be on a filesystem the compute nodes share, at the same paths "
                     "(docs/slurm.md); mount it there, or run dfewd with the local executor",
                     host, what ? what : "the path", line + 4, tab ? tab : "?");
        }
    }
    if (!why[0] && !nonce_ok)
        snprintf(why, sizeof why,
                 "the storage check: compute node %s sees another folder at %s than this machine does: dfewd's home "
                 "must be the same shared folder on the nodes (docs/slurm.md)",
                 host, k->dir);
    if (why[0]) {
        check_over(x, why);
        return;
    }
    log_info(0, "storage check passed: compute node %s sees the home and %d path(s) (Slurm job %lld)", host, paths,
             k->id);
    check_over(x, NULL);
}

/* Each poll: its result file, its time limit, and (row) what squeue says. */
static void check_follow(struct slurm_exec *x, const struct sq_row *row)
{
    struct storage_check *k = x->check;
    if (!k || !k->id)
        return;
    char *path = join2(k->dir, "result"), *text = NULL;
    size_t len = 0;
    int rc = read_small_file(path, 1 << 20, &text, &len);
    free(path);
    if (rc == 0) {
        check_result(x, text);
        free(text);
        return;
    }
    double now = now_s();
    char why[1536];
    if (row) {
        snprintf(k->state, sizeof k->state, "%s", row->state);
        snprintf(k->reason, sizeof k->reason, "%s", row->reason);
    }
    if (row && state_ended(row->state)) {
        if (!k->ended_seen)
            k->ended_seen = now;
        if (!strcmp(row->state, "COMPLETED") && now - k->ended_seen < x->d->cfg.slurm_result_grace_s)
            return;
        char *out_path = join2(k->dir, "output"), *out = file_tail(out_path, OUTPUT_TAIL);
        snprintf(why, sizeof why,
                 "the storage check job (Slurm job %lld) ran on %s and ended %s without its result in %s%s%s. Is "
                 "dfewd's home %s on a filesystem the compute nodes share, at the same path, with %s there too? "
                 "(docs/slurm.md)",
                 k->id, *row->node ? row->node : "a node", row->state, k->dir, out ? ": " : "", out ? out : "",
                 x->d->paths.home, x->d->worker_program);
        free(out);
        free(out_path);
        check_over(x, why);
        return;
    }
    if (now - k->started > x->d->cfg.slurm_check_timeout_s) {
        snprintf(why, sizeof why,
                 "the storage check job (Slurm job %lld) did not finish within %.0f s (Slurm: %s, %s); is the "
                 "cluster busy? Raise [slurm] check_timeout or set check_storage = no in %s",
                 k->id, x->d->cfg.slurm_check_timeout_s, k->state[0] ? k->state : "unknown",
                 k->reason[0] ? k->reason : "-", x->d->config_path);
        check_over(x, why);
    }
}

static void on_check_sbatch(struct cmd *c, void *data)
{
    struct slurm_exec *x = data;
    struct storage_check *k = x->check;
    long long id = sbatch_id(c);
    if (!k)
        return;
    if (!id) {
        char why[1024];
        snprintf(why, sizeof why,
                 "the storage check job could not be submitted: %s (check [slurm] partition, account and options in "
                 "%s)",
                 cmd_ok(c) ? "sbatch gave no job id" : cmd_why(c), x->d->config_path);
        check_over(x, why);
        sched_maybe_finish(x->d);
        return;
    }
    k->id = id;
    log_info(0, "storage check: Slurm job %lld looks at the home and %d path(s) from a compute node", id,
             (int)k->labels.n);
    poll_now(x);
}

static void check_path(struct storage_check *k, struct sbuf *paths, char mode, const char *path, const char *what)
{
    if (kv_get(&k->labels, path))
        return;
    kv_set(&k->labels, path, what);
    sbuf_addf(paths, "%c %s\n", mode, path);
}

/* The paths a node must see: the home's outputs (written there), the movies
 * of unfinished jobs and the landmark model (read there). */
static int check_start(struct slurm_exec *x, char *err, size_t errlen)
{
    struct daemon *d = x->d;
    struct storage_check *k = x->check = xcalloc(1, sizeof *k);
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t a = mono_ms(), b = (uint64_t)getpid() << 32 ^ (uint64_t)(now_s() * 1e6);
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(k->nonce + 2 * i, 3, "%02x", r[i]);
    struct sbuf dir = {0}, paths = {0};
    sbuf_addf(&dir, "%s/check-%.8s", x->dir, k->nonce);
    k->dir = sbuf_take(&dir);
    sbuf_addf(&paths, "nonce %s\n", k->nonce);
    mkdir_p(d->paths.outputs, 0755);
    check_path(k, &paths, 'w', d->paths.outputs, "dfewd's outputs folder");
    struct stat st;
    if (d->cfg.prep_landmark_model && stat(d->cfg.prep_landmark_model, &st) == 0)
        check_path(k, &paths, 'r', d->cfg.prep_landmark_model, "the landmark model ([prep] landmark_model)");
    sqlite3_stmt *q = db_prepare(d->db, "SELECT DISTINCT m.path FROM movies m JOIN jobs j ON j.movie_id = m.id "
                                        "WHERE j.state IN ('queued', 'leased', 'failed') AND m.path IS NOT NULL "
                                        "ORDER BY m.path LIMIT 10000");
    while (q && sqlite3_step(q) == SQLITE_ROW)
        check_path(k, &paths, 'r', (const char *)sqlite3_column_text(q, 0), "the movie");
    if (q)
        sqlite3_reset(q);
    int rc = mkdir_p(k->dir, 0755);
    char *pf = join2(k->dir, "paths"), *sh = join2(k->dir, "job.sh");
    struct sbuf script = {0};
    sbuf_add(&script, "#!/bin/sh\n# dfewd's start-up storage check (docs/slurm.md)\nexec ");
    add_quoted(&script, d->worker_program);
    sbuf_add(&script, " --check-storage ");
    add_quoted(&script, k->dir);
    sbuf_addc(&script, '\n');
    if (!rc)
        rc = write_file_atomic(pf, paths.s, paths.len);
    if (!rc)
        rc = write_file_atomic(sh, script.s, script.len);
    sbuf_free(&paths);
    sbuf_free(&script);
    free(pf);
    if (rc) {
        snprintf(err, errlen, "cannot write the storage check's files in %s: %s", k->dir, strerror(-rc));
        free(sh);
        return rc;
    }
    struct argv a = {0};
    char name[64];
    snprintf(name, sizeof name, "dfew-%s-check", x->tag);
    sbatch_argv(d, &a, name, k->dir, "probe", sh);
    free(sh);
    k->started = now_s();
    rc = cmd_start(d, a.v, x->env, CMD_TIMEOUT_S, on_check_sbatch, x);
    argv_free(&a);
    return 0; /* a failed start still calls on_check_sbatch */
}

/* ---- start-up ---- */

int slurm_recover(struct daemon *d)
{
    struct slurm_exec *x = d->slurm = xcalloc(1, sizeof *x);
    x->d = d;
    x->env = command_env(d);
    x->dir = join2(d->paths.home, "slurm");
    /* job names carry the home (FNV-1a of its path): scancel by name stays in it */
    uint32_t h = 2166136261u;
    for (const char *p = d->paths.home; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    snprintf(x->tag, sizeof x->tag, "%08x", h);
    uv_timer_init(&d->loop, &x->poll_timer);
    x->poll_timer.data = x;
    d->starting = 1;
    slurm_resize(d);
    char err[1024] = "";
    int rc = mkdir_p(x->dir, 0755);
    if (rc) {
        snprintf(err, sizeof err, "cannot make %s, where the Slurm jobs' files go: %s", x->dir, strerror(-rc));
        daemon_refuse(d, err);
        return rc;
    }
    uint64_t ms = (uint64_t)(d->cfg.slurm_poll_s * 1000);
    uv_timer_start(&x->poll_timer, on_poll, ms, ms);
    if (!d->cfg.slurm_check_storage) {
        if (adopt_all(x)) {
            snprintf(err, sizeof err, "cannot release the leases of the previous dfewd: %s", db_errmsg(d->db));
            daemon_refuse(d, err);
            return -EIO;
        }
        for (int i = 0; i < d->nworkers; i++)
            if (d->workers[i]->state == W_SPAWNING)
                d->workers[i]->state = W_IDLE;
        daemon_started(d);
        poll_now(x);
        return 0;
    }
    if ((rc = check_start(x, err, sizeof err)) != 0) {
        check_free(x->check);
        x->check = NULL;
        daemon_refuse(d, err);
    }
    return rc;
}
