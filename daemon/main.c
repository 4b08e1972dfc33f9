/* dfewd: the dfew daemon. One libuv loop that leases jobs from the SQLite
 * queue, runs them on a pool of dfew-worker processes, records the results,
 * and serves a control socket. Runs in the background by default, or in the
 * foreground (-f) for demos, tests and systemd. */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "host.h"
#include "dfew_build.h"
#include "log.h"
#include "proto.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dfewd [options]\n"
            "\n"
            "The dfew daemon: runs the jobs that dfewctl queues in HOME/dfew.db on a pool\n"
            "of dfew-worker processes and records their results. Job kinds: probe (what\n"
            "FFmpeg sees in a movie), fetch (a submitted URL, downloaded), segment (shot\n"
            "cuts and face tracks into clips), prep (a clip's face, 68 landmarks,\n"
            "alignment and temporal interpolation: its frames and clip.u8), tensor (an\n"
            "imported release's frames into clip.u8), train (one fold of a training run,\n"
            "on a trainer slot, CUDA or CPU) and noop (diagnostics). Limits, timeouts and\n"
            "the preprocessing recipe are in HOME/dfew.conf (man dfew.conf).\n"
            "\n"
            "  --home DIR      dfew home (default: $DFEW_HOME, else $XDG_DATA_HOME/dfew,\n"
            "                  else ~/.local/share/dfew)\n"
            "  -f, --foreground  stay attached and log to stderr (default: detach and log\n"
            "                  to HOME/dfewd.log)\n"
            "  --config FILE   configuration file (default: HOME/dfew.conf)\n"
            "  --workers N     worker processes (default: config, else the number of cores)\n"
            "  -v, --verbose   log debug lines too\n"
            "  -V, --version   print the version\n"
            "  -h, --help      this text\n"
            "\n"
            "Signals: SIGTERM/SIGINT drain (running jobs may finish until [daemon]\n"
            "drain_seconds, the rest go back to the queue); SIGHUP reloads the config.\n");
}

/* Forks; the parent waits until the child says it is ready (or why it is not)
 * and returns the exit code it should exit with. The child returns -1 with
 * *ready_fd set, detached and logging to logpath. */
static int daemonize(const char *logpath, int *ready_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("dfewd: pipe");
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("dfewd: fork");
        return 1;
    }
    if (pid > 0) {
        close(p[1]);
        char buf[2048];
        size_t len = 0;
        ssize_t n;
        while (len < sizeof buf - 1 && (n = read(p[0], buf + len, sizeof buf - 1 - len)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            len += (size_t)n;
        }
        buf[len] = '\0';
        close(p[0]);
        if (!strncmp(buf, "ok", 2)) {
            printf("dfewd started (pid %d), log: %s\n", (int)pid, logpath);
            return 0;
        }
        fprintf(stderr, "dfewd: %s\n", len ? buf : "exited during start-up; see the log");
        return 1;
    }
    close(p[0]);
    setsid();
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        close(fd);
    }
    fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    *ready_fd = p[1];
    return -1;
}

static void tell_parent(int *ready_fd, const char *msg)
{
    if (*ready_fd >= 0) {
        ssize_t n = write(*ready_fd, msg, strlen(msg));
        (void)n;
        close(*ready_fd);
        *ready_fd = -1;
    }
}

void daemon_started(struct daemon *d)
{
    d->starting = 0;
    if (d->executor == EXECUTOR_SLURM)
        log_info(0, "ready: home %s, Slurm executor (at most %d job(s) and %d train job(s) in flight) running %s, "
                    "database %s, control socket %s",
                 d->paths.home, pool_target_size(d), pool_trainer_target(d), d->worker_program, d->paths.db,
                 d->paths.sock);
    else
        log_info(0, "ready: home %s, %d worker(s) and %d trainer slot(s) running %s, database %s, control socket %s",
                 d->paths.home, pool_target_size(d), pool_trainer_target(d), d->worker_program, d->paths.db,
                 d->paths.sock);
    tell_parent(&d->ready_fd, "ok");
    sched_kick(d);
}

void daemon_refuse(struct daemon *d, const char *why)
{
    log_error(0, "not starting: %s", why);
    tell_parent(&d->ready_fd, why);
    d->exit_code = 1;
    d->starting = 0;
    sched_start_drain(d, "start-up check failed");
}

/* Takes the home's lock so that two daemons never share a queue. */
static int take_lock(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen, "another dfewd (pid %s) is already running on this home; stop it first (kill %s)",
                 *pid ? pid : "?", *pid ? pid : "PID");
        close(fd);
        return -EBUSY;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len)
        log_warn(0, "cannot write the pid into %s", path);
    return fd;
}

static char *default_worker_program(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        struct sbuf b = {0};
        sbuf_addf(&b, "%s/dfew-worker", dirname(self));
        if (access(sbuf_str(&b), X_OK) == 0)
            return sbuf_take(&b);
        sbuf_free(&b);
    }
    return xstrdup(DFEW_BINDIR "/dfew-worker");
}

static void resolve_worker_program(struct daemon *d)
{
    free(d->worker_program);
    d->worker_program = d->cfg.worker_program ? xstrdup(d->cfg.worker_program) : default_worker_program();
}

int daemon_reload_config(struct daemon *d)
{
    struct dfew_config c;
    char err[1024] = "";
    config_defaults(&c);
    int rc = config_load(d->config_path, &c, err, sizeof err);
    if (rc) {
        log_error(0, "SIGHUP: config not reloaded, keeping the current one: %s", err);
        config_free(&c);
        return rc;
    }
    if (config_executor(&c) != d->executor)
        log_warn(0, "SIGHUP: [executor] kind changed; that takes a restart of dfewd (it stays %s until then)",
                 d->executor == EXECUTOR_SLURM ? "slurm" : "local");
    config_free(&d->cfg);
    d->cfg = c;
    resolve_worker_program(d);
    sched_apply_config(d);
    if (!d->draining)
        pool_resize(d, pool_target_size(d));
    log_info(0, "config reloaded from %s: %d workers, lease %.0f s, %d attempts, backoff %.1f..%.0f s",
             d->config_path, pool_target_size(d), d->cfg.lease_s, d->cfg.max_attempts, d->cfg.retry_base_s,
             d->cfg.retry_max_s);
    if (!d->draining)
        sched_kick(d);
    return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    if (signum == SIGHUP)
        daemon_reload_config(d);
    else
        sched_start_drain(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* The cores this process may run on (its affinity, as taskset or a cgroup
 * cpuset sets it), else the online ones. */
static int cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},   {"foreground", no_argument, NULL, 'f'},
        {"config", required_argument, NULL, 'c'}, {"workers", required_argument, NULL, 'w'},
        {"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *config = NULL;
    int foreground = 0, verbose = 0, workers = 0, c;
    while ((c = getopt_long(argc, argv, "fvVh", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'f': foreground = 1; break;
        case 'c': config = optarg; break;
        case 'w':
            if (parse_int(optarg, &workers) || workers < 1) {
                fprintf(stderr, "dfewd: --workers wants a number >= 1, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'v': verbose = 1; break;
        case 'V': printf("dfewd %s (protocol %d, schema %d)\n", DFEW_VERSION, DFEW_PROTO_VERSION, db_migration_count); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dfewd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct daemon d;
    memset(&d, 0, sizeof d);
    char err[2048] = "";
    log_init("dfewd", stderr, verbose ? LOG_DEBUG : LOG_INFO);
    if (paths_init(&d.paths, home, 1, err, sizeof err)) {
        fprintf(stderr, "dfewd: %s\n", err);
        return 1;
    }
    if (config) {
        char *abs = NULL;
        if (abs_path(config, &abs)) {
            fprintf(stderr, "dfewd: config file %s: %s\n", config, strerror(errno));
            paths_free(&d.paths);
            return 1;
        }
        d.config_path = abs;
    } else {
        d.config_path = xstrdup(d.paths.conf);
    }
    config_defaults(&d.cfg);
    if (config_load(d.config_path, &d.cfg, err, sizeof err)) {
        fprintf(stderr, "dfewd: %s\n", err);
        config_free(&d.cfg);
        free(d.config_path);
        paths_free(&d.paths);
        return 1;
    }
    d.workers_override = workers;

    d.ready_fd = -1;
    d.executor = config_executor(&d.cfg);
    if (!foreground) {
        int rc = daemonize(d.paths.log, &d.ready_fd);
        if (rc >= 0) {
            config_free(&d.cfg);
            free(d.config_path);
            paths_free(&d.paths);
            return rc;
        }
    }

    int exit_code = 1;
    int lock_fd = take_lock(d.paths.lock, err, sizeof err);
    if (lock_fd < 0)
        goto fail_early;
    if (db_open(d.paths.db, -1, 5000, &d.db, err, sizeof err))
        goto fail_lock;
    snprintf(d.owner, sizeof d.owner, "dfewd[%d]", (int)getpid());
    resolve_worker_program(&d);
    d.started_at = now_s();

    signal(SIGPIPE, SIG_IGN);
    int rc = uv_loop_init(&d.loop);
    if (rc) {
        snprintf(err, sizeof err, "cannot start the event loop: %s", uv_strerror(rc));
        goto fail_db;
    }
    uv_signal_init(&d.loop, &d.sig_term);
    uv_signal_init(&d.loop, &d.sig_int);
    uv_signal_init(&d.loop, &d.sig_hup);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
    uv_signal_start(&d.sig_term, on_signal, SIGTERM);
    uv_signal_start(&d.sig_int, on_signal, SIGINT);
    uv_signal_start(&d.sig_hup, on_signal, SIGHUP);

    sched_init(&d);
    /* the Slurm executor adopts what the previous dfewd left running
     * before it releases the rest (slurm_recover) */
    if (ctlsock_start(&d, err, sizeof err) || (d.executor == EXECUTOR_LOCAL && sched_recover(&d))) {
        if (!*err)
            snprintf(err, sizeof err, "cannot release stale leases: %s", db_errmsg(d.db));
        log_error(0, "%s", err);
        tell_parent(&d.ready_fd, err);
        /* Drain with no workers: closes every handle, then the loop ends. */
        d.draining = 1;
        sched_maybe_finish(&d);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
        goto fail_db_logged;
    }
    /* Workers load OpenBLAS when they start (dlib links it), before any
     * trainer code runs: on a CPU model it does not know it would pick its
     * slow Prescott kernels. The variable is inherited through uv_spawn. */
    const char *core = train_openblas_coretype_env();
    d.openblas_set = core != NULL;
    if (core && d.executor == EXECUTOR_LOCAL)
        log_info(0, "workers get OPENBLAS_CORETYPE=%s (from this CPU's features)", core);
    d.cpus = cpu_count();
    /* where workers keep the landmark model's flat copy (dlibc.h) */
    struct sbuf cache = {0};
    sbuf_addf(&cache, "%s/cache", d.paths.home);
    setenv("DFEW_CACHE_DIR", cache.s, 1);
    sbuf_free(&cache);
    /* From now on the loop never waits long for another process's write
     * lock: what cannot be written now is written a moment later (results
     * are kept, leases renewed late, leasing tried again). */
    d.db->busy_ms = DFEWD_BUSY_MS;
    if (d.executor == EXECUTOR_SLURM) {
        /* ready once a compute node has seen the home (slurm.c) */
        slurm_recover(&d);
        db_busy_timeout(d.db, -1);
    } else {
        pool_start(&d);
        db_busy_timeout(d.db, -1);
        daemon_started(&d);
    }

    uv_run(&d.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&d.loop);
    if (rc)
        log_warn(0, "event loop closed with open handles: %s", uv_strerror(rc));
    exit_code = d.exit_code;
    log_info(0, "stopped");
fail_db_logged:
    db_close(d.db);
    close(lock_fd);
    goto out;
fail_db:
    db_close(d.db);
fail_lock:
    close(lock_fd);
fail_early:
    log_error(0, "%s", err);
    tell_parent(&d.ready_fd, err);
out:
    free(d.worker_program);
    config_free(&d.cfg);
    free(d.config_path);
    paths_free(&d.paths);
    return exit_code;
}
