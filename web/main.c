/* dfew-web: the curator's pages and the annotators' voting pages of a dfew
 * home, served over HTTP by libmicrohttpd. Listens on 127.0.0.1:8080 unless
 * told otherwise; put it behind a TLS reverse proxy to reach it from other
 * machines (README: "dfew web"). It reads the database like any sqlite3
 * user, writes votes through lib/votes.c and changes jobs only through
 * lib/queue.c. Runs in the foreground until SIGINT or SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dfew_build.h"
#include "log.h"
#include "votes.h"
#include "web.h"

static const char usage_text[] =
    "usage: dfew-web [--home DIR] [--listen ADDR:PORT] [--threads N]\n\n"
    "Serves the curator's pages (queue, movies, clips, dataset, training runs) and\n"
    "the annotation pages of a dfew home over HTTP.\n\n"
    "--home DIR         the dfew home (default: $DFEW_HOME, else $XDG_DATA_HOME/dfew,\n"
    "                   else ~/.local/share/dfew)\n"
    "--listen ADDR:PORT where to listen (default 127.0.0.1:8080; port 0: any free\n"
    "                   port, printed at start). Anything but a loopback address\n"
    "                   exposes the pages: put a TLS reverse proxy in front (README).\n"
    "--threads N        request threads (default 4)\n"
    "--version          print the version and exit\n"
    "--help             print this and exit\n\n"
    "The curator signs in at /login?token=T with T from `dfewctl web token`;\n"
    "annotators with the link `dfewctl annotators add NAME` printed for them;\n"
    "`dfewctl annotators disable NAME` revokes that link (403 from then on).\n";

/* "127.0.0.1:8080", "[::1]:8080"; a bound, listening socket or a negative errno. */
static int listen_on(const char *spec, char *shown, size_t shownlen)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    int64_t port;
    if (!colon || (size_t)(colon - spec) >= sizeof host || parse_i64(colon + 1, &port) || port < 0 || port > 65535)
        return -EINVAL;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int family;
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return -EINVAL;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
        len = sizeof *a;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 128)) {
        int e = errno;
        close(fd);
        return -e;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    char addr[INET6_ADDRSTRLEN] = "?";
    if (family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof addr);
        snprintf(shown, shownlen, "[%s]:%u", addr, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof addr);
        snprintf(shown, shownlen, "%s:%u", addr, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    return fd;
}

/* dfewctl beside this program (installed), or one folder up (the build
 * tree: build/web/dfew-web, build/dfewctl), else the installed one. */
static char *find_ctl(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 32);
    if (n > 0) {
        self[n] = '\0';
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(self, '/');
            if (!slash)
                break;
            *slash = '\0';
            struct sbuf p = {0};
            sbuf_addf(&p, "%s/dfewctl", self);
            if (access(sbuf_str(&p), X_OK) == 0)
                return sbuf_take(&p);
            sbuf_free(&p);
        }
    }
    return xstrdup(DFEW_BINDIR "/dfewctl");
}

/* Home, config, tokens, database: everything but the socket. Prints why and
 * returns non-zero on failure. */
static int setup(struct web *w, const char *home)
{
    char err[1024];
    if (paths_init(&w->paths, home, 0, err, sizeof err)) {
        fprintf(stderr, "dfew-web: %s\n", err);
        return 1;
    }
    config_defaults(&w->cfg);
    if (config_load(w->paths.conf, &w->cfg, err, sizeof err)) {
        fprintf(stderr, "dfew-web: %s\n", err);
        return 1;
    }
    w->max_votes = w->cfg.annotators_per_clip;
    if (web_admin_token(w->paths.home, 1, w->admin_token, err, sizeof err)) {
        fprintf(stderr, "dfew-web: %s\n", err);
        return 1;
    }
    if (web_token_new(w->secret)) {
        fprintf(stderr, "dfew-web: no random numbers from the kernel\n");
        return 1;
    }
    struct db *db;
    if (db_open(w->paths.db, -1, 30000, &db, err, sizeof err)) {
        fprintf(stderr, "dfew-web: %s\n", err);
        return 1;
    }
    int rc = votes_sync_settings(db, w->cfg.single_label_threshold, w->cfg.annotators_per_clip, NULL);
    db_close(db);
    if (rc < 0) {
        fprintf(stderr, "dfew-web: cannot store the [labels] settings of %s in %s\n", w->paths.conf, w->paths.db);
        return 1;
    }
    struct sbuf cache = {0};
    sbuf_addf(&cache, "%s/web-cache", w->paths.home);
    w->cache_dir = sbuf_take(&cache);
    if (mkdir(w->cache_dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "dfew-web: cannot create %s: %s\n", w->cache_dir, strerror(errno));
        return 1;
    }
    w->ctl_path = find_ctl();
    pthread_mutex_init(&w->pool_mu, NULL);
    pthread_cond_init(&w->pool_cv, NULL);
    pthread_mutex_init(&w->gen_mu, NULL);
    pthread_mutex_init(&w->assign_mu, NULL);
    return 0;
}

static void teardown(struct web *w)
{
    for (int i = 0; i < WEB_DB_POOL; i++)
        db_close(w->pool[i]);
    free(w->assign);
    free(w->ctl_path);
    free(w->cache_dir);
    config_free(&w->cfg);
    paths_free(&w->paths);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"home", required_argument, NULL, 'H'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *home = NULL, *listen_spec = "127.0.0.1:8080";
    int threads = 4, o;
    while ((o = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (o) {
        case 'H': home = optarg; break;
        case 'l': listen_spec = optarg; break;
        case 't':
            if (parse_int(optarg, &threads) || threads < 1 || threads > 64) {
                fprintf(stderr, "dfew-web: --threads takes 1 to 64\n");
                return 2;
            }
            break;
        case 'h': printf("%s", usage_text); return 0;
        case 'V': printf("dfew-web %s\n", DFEW_VERSION); return 0;
        default: fprintf(stderr, "%s", usage_text); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    log_init("dfew-web", stderr, LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    static struct web w;
    if (setup(&w, home)) {
        teardown(&w);
        return 1;
    }
    char shown[128];
    int fd = listen_on(listen_spec, shown, sizeof shown);
    if (fd < 0) {
        fprintf(stderr, "dfew-web: cannot listen on %s: %s%s\n", listen_spec,
                fd == -EINVAL ? "give ADDR:PORT, e.g. 127.0.0.1:8080 or [::1]:8080" : strerror(-fd),
                fd == -EADDRINUSE ? " (another program uses the port: pick another with --listen)" : "");
        teardown(&w);
        return 1;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* MHD's threads inherit the mask; main waits for them */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, web_access, &w,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, web_completed, &w, MHD_OPTION_UNESCAPE_CALLBACK, web_unescape, &w,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "dfew-web: libmicrohttpd could not start on %s\n", shown);
        close(fd);
        teardown(&w);
        return 1;
    }
    printf("dfew-web: listening on http://%s/ (home %s)\n", shown, w.paths.home);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    log_info(0, "signal %d: stopping", sig);
    MHD_stop_daemon(d);
    close(fd);
    teardown(&w);
    return 0;
}
