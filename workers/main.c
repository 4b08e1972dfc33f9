/* dfew-worker: a long-lived compute process owned by dfewd. It says hello,
 * then reads one job per line on stdin, runs it, and writes progress and one
 * result line on stdout (protocol in lib/proto.h). Stateless between jobs
 * except for loaded models; it never writes the database.
 *
 * On a cluster node (dfewd's Slurm executor, docs/slurm.md) it runs one job
 * instead: --one-job SPEC reads the job line from the file SPEC and writes,
 * beside it, the same progress lines to `progress` (appended) and the same
 * result line to `result` (atomically, last); --check-storage DIR is the
 * start-up probe job that says which of dfewd's paths this node sees. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "dfew_build.h"
#include "host.h"
#include "log.h"
#include "models.h"
#include "proto.h"
#include "queue.h"
#include "util.h"
#include "worker.h"

static const struct {
    const char *kind;
    job_handler run;
} handlers[] = {
    {"noop", job_noop},
    {"probe", job_probe},
    {"fetch", job_fetch},
    {"prep", job_prep},
    {"train", job_train},
    {"segment", job_segment},
    {"tensor", job_tensor},
};

/* The threads the running job may use, as dfewd shares the cores: set from
 * the job's `threads` when it starts and from SIGRTMIN while it runs, both
 * with dfewd's generation (value = generation << 8 | threads), so that an
 * older word never overrides a newer one. */
static _Atomic unsigned thread_share = 1;

static int gen_newer(unsigned a, unsigned b) /* generation a after b (24 bits, wrapping) */
{
    unsigned d = ((a >> 8) - (b >> 8)) & 0xffffffu;
    return d != 0 && d < 0x800000u;
}

static void share_set(unsigned v)
{
    unsigned cur = atomic_load(&thread_share);
    while ((v & 0xff) >= 1 && gen_newer(v, cur) && !atomic_compare_exchange_weak(&thread_share, &cur, v)) {
    }
}

static void on_share(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    share_set((unsigned)si->si_value.sival_int);
}

int job_threads(void)
{
    unsigned n = atomic_load(&thread_share) & 0xff;
    return n ? (int)n : 1;
}

/* --one-job: where the result line and the progress lines go (else stdout). */
static const char *result_path;
static int progress_fd = -1;

static int send_msg(const char *verb, const struct kv *kv)
{
    struct sbuf b = {0};
    proto_format(&b, verb, kv);
    int rc;
    if (result_path && strcmp(verb, "progress")) {
        rc = write_file_atomic(result_path, b.s, b.len);
        if (rc)
            log_error(0, "cannot write the result to %s: %s", result_path, strerror(-rc));
    } else if (result_path) {
        /* one write per line (O_APPEND): dfewd reads whole lines only */
        rc = progress_fd < 0 || write(progress_fd, b.s, b.len) == (ssize_t)b.len ? 0 : -errno;
    } else {
        size_t n = fwrite(b.s, 1, b.len, stdout);
        rc = (n == b.len && fflush(stdout) == 0) ? 0 : -EPIPE;
    }
    sbuf_free(&b);
    return rc;
}

int job_arg_num(const struct job_ctx *ctx, const char *key, double def, double lo, double hi, double *out)
{
    double v = def;
    if (kv_get(ctx->args, key) && kv_get_double(ctx->args, key, &v))
        return -EINVAL;
    if (!(v >= lo && v <= hi))
        return -EINVAL;
    *out = v;
    return 0;
}

int job_bad_arg(struct job_ctx *ctx, const char *what)
{
    snprintf(ctx->error, sizeof ctx->error,
             "%s job arguments: %s; was this job queued by another dfew version? (dfewctl show %lld)", ctx->kind, what,
             (long long)ctx->id);
    ctx->retryable = 0;
    return -EINVAL;
}

void job_progress(struct job_ctx *ctx, double frac, const char *msg)
{
    struct kv kv = {0};
    kv_setf(&kv, "id", "%lld", (long long)ctx->id);
    kv_setf(&kv, "frac", "%.4f", frac);
    if (msg)
        kv_set(&kv, "msg", msg);
    send_msg("progress", &kv);
    kv_free(&kv);
}

static int run_job(const struct proto_msg *m)
{
    struct job_ctx ctx = {0};
    const char *kind = kv_get(&m->kv, "kind");
    int64_t attempt = 1;
    if (kv_get_i64(&m->kv, "id", &ctx.id) || !kind) {
        log_error(0, "malformed job line (no id or kind); ignored");
        return 0;
    }
    kv_get_i64(&m->kv, "attempt", &attempt);
    int64_t max_attempts = 0;
    kv_get_i64(&m->kv, "max_attempts", &max_attempts);
    int64_t threads = 1, gen = -1;
    kv_get_i64(&m->kv, "threads", &threads);
    if (kv_get_i64(&m->kv, "threads_gen", &gen) || gen < 0) /* a dfewd that does not share: one thread */
        atomic_store(&thread_share, 1);
    else
        share_set((unsigned)gen << 8 | (unsigned)(threads < 1 ? 1 : threads > 255 ? 255 : threads));
    ctx.kind = kind;
    ctx.attempt = (int)attempt;
    ctx.max_attempts = (int)max_attempts;
    ctx.args = &m->kv;
    ctx.retryable = 1;
    job_handler fn = NULL;
    for (size_t i = 0; i < ARRAY_LEN(handlers); i++)
        if (!strcmp(handlers[i].kind, kind))
            fn = handlers[i].run;
    int rc;
    if (!fn) {
        snprintf(ctx.error, sizeof ctx.error, "this dfew-worker cannot run jobs of kind '%s' (it knows %s)", kind,
                 JOB_KINDS_HELP);
        ctx.retryable = 0;
        rc = -ENOSYS;
    } else {
        rc = fn(&ctx);
    }
    struct kv out = {0};
    kv_setf(&out, "id", "%lld", (long long)ctx.id);
    if (rc == 0) {
        for (size_t i = 0; i < ctx.result.n; i++)
            kv_set(&out, ctx.result.v[i].key, ctx.result.v[i].val);
        rc = send_msg("done", &out);
    } else {
        if (!ctx.error[0])
            snprintf(ctx.error, sizeof ctx.error, "%s job failed: %s", kind, strerror(-rc));
        kv_set(&out, "retry", ctx.retryable ? "1" : "0");
        kv_set(&out, "error", ctx.error);
        rc = send_msg("fail", &out);
    }
    kv_free(&out);
    kv_free(&ctx.result);
    return rc;
}

/* A file beside spec (the one-job files live in one folder). */
static char *beside(const char *spec, const char *name)
{
    char *copy = xstrdup(spec);
    struct sbuf b = {0};
    sbuf_addf(&b, "%s/%s", dirname(copy), name);
    free(copy);
    return sbuf_take(&b);
}

/* --one-job SPEC: the job line dfewd wrote into SPEC, run once. Exit 0 when
 * the result file was written (the job done or failed), 1 when it could not
 * be, 2 for a bad spec. */
static int one_job(const char *spec)
{
    char *text = NULL, host[256] = "?";
    size_t len = 0;
    int rc = read_small_file(spec, DFEW_PROTO_MAX_LINE, &text, &len);
    if (rc) {
        log_error(0, "cannot read the job file %s: %s (is dfewd's home on a filesystem this node shares?)", spec,
                  strerror(-rc));
        return 2;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    struct proto_msg m;
    if (proto_parse(text, len, &m) || strcmp(m.verb, "job")) {
        log_error(0, "%s is not a job line written by dfewd (protocol %d)", spec, DFEW_PROTO_VERSION);
        proto_msg_free(&m); /* zeroed by a failed parse: nothing to free */
        free(text);
        return 2;
    }
    free(text);
    result_path = beside(spec, "result");
    char *progress = beside(spec, "progress"), *who = beside(spec, "worker");
    progress_fd = open(progress, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (progress_fd < 0)
        log_warn(0, "cannot open %s (%s): this job's progress is not reported", progress, strerror(errno));
    /* who runs it: dfewd removes what a job killed midway leaves under its pid */
    gethostname(host, sizeof host - 1);
    struct sbuf w = {0};
    sbuf_addf(&w, "pid=%d host=%s\n", (int)getpid(), host);
    write_file_atomic(who, w.s, w.len);
    sbuf_free(&w);
    log_info(0, "job %s (%s) on %s, pid %d", kv_get(&m.kv, "id") ? kv_get(&m.kv, "id") : "?",
             kv_get(&m.kv, "kind") ? kv_get(&m.kv, "kind") : "?", host, (int)getpid());
    rc = run_job(&m);
    proto_msg_free(&m);
    if (progress_fd >= 0)
        close(progress_fd);
    free(progress);
    free(who);
    free((char *)result_path);
    result_path = NULL;
    return rc ? 1 : 0;
}

/* --check-storage DIR: DIR/paths holds "nonce N" and then lines "r PATH"
 * (must be readable here), "w PATH" (a folder this node must write in);
 * DIR/result gets "nonce N", "host H" and one "ok PATH" or "bad PATH\tWHY"
 * per path. The nonce proves that DIR itself is the same folder here. */
static int check_storage(const char *dir)
{
    struct sbuf p = {0}, out = {0};
    sbuf_addf(&p, "%s/paths", dir);
    char *text = NULL;
    size_t len = 0;
    int rc = read_small_file(p.s, 1 << 20, &text, &len);
    if (rc) {
        log_error(0, "cannot read %s: %s: dfewd's home is not on a filesystem this node shares", p.s, strerror(-rc));
        sbuf_free(&p);
        return 1;
    }
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "nonce ", 6)) {
            sbuf_addf(&out, "%s\nhost %s\n", line, host);
            continue;
        }
        if (strlen(line) < 3 || line[1] != ' ')
            continue;
        const char *path = line + 2;
        int err = 0;
        if (line[0] == 'w') {
            struct sbuf t = {0};
            sbuf_addf(&t, "%s/.dfew-check", path);
            err = write_file_atomic(t.s, "", 0);
            if (!err)
                unlink(t.s);
            sbuf_free(&t);
        } else if (access(path, R_OK) != 0) {
            err = -errno;
        }
        if (err)
            sbuf_addf(&out, "bad %s\t%s\n", path, strerror(-err));
        else
            sbuf_addf(&out, "ok %s\n", path);
    }
    free(text);
    sbuf_reset(&p);
    sbuf_addf(&p, "%s/result", dir);
    rc = write_file_atomic(p.s, out.s ? out.s : "", out.len);
    if (rc)
        log_error(0, "cannot write %s: %s", p.s, strerror(-rc));
    sbuf_free(&p);
    sbuf_free(&out);
    return rc ? 1 : 0;
}

static const char usage_lines[] = "usage: dfew-worker [--preload MODEL]\n"
                                  "       dfew-worker --one-job SPEC\n"
                                  "       dfew-worker --check-storage DIR\n";

static void usage(FILE *f)
{
    fprintf(f,
            "%s"
            "\n"
            "The compute process of dfew; not meant to be run by hand. dfewd starts one\n"
            "per worker slot and speaks to it on its stdin and stdout (protocol %d): the\n"
            "worker says hello, then reads one job line at a time and answers each with\n"
            "progress lines and one done or fail line. Job kinds it runs:\n"
            "%s.\n"
            "It reads its inputs, writes its outputs atomically and never opens the\n"
            "database. On a cluster node dfewd's Slurm executor runs it once per job\n"
            "with --one-job (docs/slurm.md).\n"
            "\n"
            "  --preload MODEL  load the face detector and dlib's 68-point landmark model\n"
            "                   MODEL while waiting for the first job (dfewd passes [prep]\n"
            "                   landmark_model, default\n"
            "                   %s)\n"
            "  --one-job SPEC   run the one job whose line dfewd wrote to the file SPEC;\n"
            "                   write its progress lines to progress, its result line to\n"
            "                   result (atomically, last) and its pid and host to worker,\n"
            "                   all beside SPEC; exit 0 when the result was written, 1 when\n"
            "                   it could not be, 2 for a bad SPEC\n"
            "  --check-storage DIR  dfewd's start-up probe on a cluster node: check that\n"
            "                   this node reads (r) and writes in (w) the paths listed in\n"
            "                   DIR/paths and write what it finds to DIR/result\n"
            "  -V, --version    print the version and the protocol\n"
            "  -h, --help       this text\n"
            "\n"
            "Environment: DFEW_DEBUG (set: log debug lines too), DFEW_CACHE_DIR (where the\n"
            "landmark model's flat copy is kept; dfewd sets HOME/cache), OPENBLAS_CORETYPE\n"
            "(OpenBLAS's kernels; chosen for this CPU when unset).\n",
            usage_lines, DFEW_PROTO_VERSION, JOB_KINDS_HELP, DFEW_LANDMARK_MODEL);
}

/* --one-job SPEC and --check-storage DIR: one job on a cluster node. */
static int run_once(char **argv, int check, const char *path)
{
    /* OpenBLAS reads its kernel choice when it loads, before main: the
     * one dfewd's machine chose may not be this node's, so choose here
     * and start again with it (dfewd does this for its local workers) */
    if (!getenv("OPENBLAS_CORETYPE") && train_openblas_coretype_env())
        execv("/proc/self/exe", argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    if (check)
        return check_storage(path);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = one_job(path);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"preload", required_argument, NULL, 'p'}, {"one-job", required_argument, NULL, 'o'},
        {"check-storage", required_argument, NULL, 'c'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    log_init("dfew-worker", stderr, getenv("DFEW_DEBUG") ? LOG_DEBUG : LOG_INFO);
    /* dfewd starts its job workers with --preload MODEL: the models load
     * while the worker waits for its first job, not in that job's time */
    const char *preload = NULL, *once = NULL;
    int check = 0, modes = 0, c;
    /* '+': no argument is moved, so that a --one-job run can exec itself with argv as it came */
    while ((c = getopt_long(argc, argv, "+Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'p': preload = optarg; break;
        case 'o': once = optarg, check = 0, modes++; break;
        case 'c': once = optarg, check = 1, modes++; break;
        case 'V': printf("dfew-worker %s (protocol %d)\n", DFEW_VERSION, DFEW_PROTO_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: fprintf(stderr, "%s(dfew-worker --help says more)\n", usage_lines); return 2;
        }
    }
    if (optind < argc || modes > 1 || (once && preload)) {
        if (optind < argc)
            fprintf(stderr, "dfew-worker: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "dfew-worker: --preload, --one-job and --check-storage go one at a time\n");
        fprintf(stderr, "%s(dfew-worker --help says more)\n", usage_lines);
        return 2;
    }
    if (once)
        return run_once(argv, check, once);
    /* Die with the daemon: an orphaned worker would hold a job nobody tracks. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    /* dfewd decides when a worker stops (quit, or SIGKILL at a drain deadline). */
    signal(SIGINT, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_share;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGRTMIN, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct kv hello = {0};
    kv_setf(&hello, "proto", "%d", DFEW_PROTO_VERSION);
    kv_setf(&hello, "pid", "%d", (int)getpid());
    kv_set(&hello, "version", DFEW_VERSION);
    kv_set(&hello, "shares", "sigrtmin"); /* dfewd may send our thread share with SIGRTMIN */
    struct sbuf kinds = {0};
    for (size_t i = 0; i < ARRAY_LEN(handlers); i++)
        sbuf_addf(&kinds, "%s%s", i ? "," : "", handlers[i].kind);
    kv_set(&hello, "kinds", sbuf_str(&kinds));
    sbuf_free(&kinds);
    int rc = send_msg("hello", &hello);
    kv_free(&hello);
    if (preload && !rc)
        worker_models_preload(preload);

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (!rc && (n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0)
            continue;
        struct proto_msg m;
        if (proto_parse(line, (size_t)n, &m)) {
            log_error(0, "unreadable line from dfewd (%.60s...); ignored", line);
            continue;
        }
        if (!strcmp(m.verb, "quit")) {
            proto_msg_free(&m);
            break;
        }
        if (!strcmp(m.verb, "job"))
            rc = run_job(&m);
        else
            log_warn(0, "unknown message '%s' from dfewd; ignored", m.verb);
        proto_msg_free(&m);
    }
    free(line);
    worker_models_join_preload();
    curl_global_cleanup();
    return rc ? 1 : 0;
}
