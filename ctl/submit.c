/* dfewctl submit and noop: putting work into the queue. A movie is known by
 * the SHA-256 of its content, so submitting the same bytes twice (under any
 * name) queues nothing new. Directories are searched recursively and videos
 * are recognised by what FFmpeg makes of their content, not by file name. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "clips.h"
#include "ctl.h"
#include "hash.h"
#include "media.h"
#include "queue.h"

struct submit_run {
    struct ctl *c;
    int batch, priority;
    int queued, known, skipped, errors;
    struct sbuf json; /* entries of the "files" array */
    int njson;
    /* --clips FILE: the movie's clips, added with it */
    struct clip_range *clips;
    int nclips, clips_added, prep_queued;
    int64_t clips_movie;
};

static void report(struct submit_run *r, const char *path, const char *status, long long movie, long long job,
                   const char *detail)
{
    if (r->c->json) {
        sbuf_add(&r->json, r->njson++ ? ",{" : "{");
        sbuf_add(&r->json, "\"path\":");
        sbuf_add_json_str(&r->json, path);
        sbuf_add(&r->json, ",\"status\":");
        sbuf_add_json_str(&r->json, status);
        if (movie > 0)
            sbuf_addf(&r->json, ",\"movie_id\":%lld", movie);
        if (job > 0)
            sbuf_addf(&r->json, ",\"job_id\":%lld", job);
        if (detail) {
            sbuf_add(&r->json, ",\"detail\":");
            sbuf_add_json_str(&r->json, detail);
        }
        sbuf_addc(&r->json, '}');
        return;
    }
    if (!strcmp(status, "error"))
        fprintf(stderr, "dfewctl: %s: %s\n", path, detail);
    else if (!strcmp(status, "queued"))
        printf("queued   movie %lld  probe job %lld  %s\n", movie, job, path);
    else if (!strcmp(status, "known") && !r->batch && movie > 0)
        printf("known    movie %lld  %s  (%s)\n", movie, path, detail);
    else if (!strcmp(status, "known") && !r->batch)
        printf("known    %s  (%s)\n", path, detail);
}

/* A path that is not UTF-8 is refused (it would enter the database as
 * text): reported, shown with its bad bytes as \xNN. 1 when refused. */
static int refuse_non_utf8(struct submit_run *r, const char *path)
{
    char *shown, why[256];
    if (!ctl_path_utf8(path, &shown, why, sizeof why))
        return 0;
    report(r, shown, "error", 0, 0, why);
    r->errors++;
    free(shown);
    return 1;
}

/* A URL becomes a fetch job (deduplicated by URL); the movie row appears
 * when the download is complete and its content hash known. */
static void submit_url(struct submit_run *r, const char *url)
{
    struct ctl *c = r->c;
    struct sbuf args = {0}, key = {0}, dir = {0};
    sbuf_addf(&dir, "%s/downloads", c->paths.home);
    sbuf_add(&args, "{\"url\":");
    sbuf_add_json_str(&args, url);
    sbuf_add(&args, ",\"dest_dir\":");
    sbuf_add_json_str(&args, dir.s);
    sbuf_addf(&args, ",\"max_bytes\":%lld,\"connect_timeout_s\":%g,\"timeout_s\":%g,\"stall_s\":%g}",
              (long long)c->cfg.fetch_max_bytes, c->cfg.fetch_connect_s, c->cfg.fetch_timeout_s, c->cfg.fetch_stall_s);
    sbuf_addf(&key, "fetch:%s", url);
    struct job_spec spec = {.kind = "fetch", .args_json = args.s, .priority = r->priority, .dedup_key = key.s,
                            .max_attempts = c->cfg.max_attempts};
    int64_t job = 0;
    int created = queue_enqueue(c->db, &spec, "submitted", &job);
    if (created < 0) {
        report(r, url, "error", 0, 0, db_errmsg(c->db));
        r->errors++;
    } else if (created) {
        r->queued++;
        if (c->json)
            report(r, url, "queued", 0, job, NULL);
        else
            printf("queued   fetch job %lld  %s\n", (long long)job, url);
    } else {
        enum job_state s = JOB_QUEUED;
        queue_state_of(c->db, job, &s);
        char detail[160];
        snprintf(detail, sizeof detail, "already submitted as fetch job %lld (%s)%s", (long long)job,
                 job_state_name(s), s == JOB_DEAD || s == JOB_CANCELLED ? ": 'dfewctl retry' runs it again" : "");
        r->known++;
        report(r, url, "known", 0, job, detail);
    }
    sbuf_free(&args);
    sbuf_free(&key);
    sbuf_free(&dir);
}

/* The batch cache: a file with the same size and mtime as last time was
 * already looked at, so it is not hashed or probed again. Returns -1 when
 * unseen, else whether it was a video. */
static int seen_before(struct submit_run *r, const char *path, const struct stat *sb)
{
    sqlite3_stmt *st = db_prepare(r->c->db, "SELECT is_video FROM seen_files WHERE path = ? AND size_bytes = ? AND "
                                            "mtime_ns = ?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, sb->st_size);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec);
    int seen = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) != 0 : -1;
    sqlite3_reset(st);
    return seen;
}

static void remember(struct submit_run *r, const char *path, const struct stat *sb, const char *sha, int is_video)
{
    sqlite3_stmt *st = db_prepare(r->c->db, "INSERT OR REPLACE INTO seen_files (path, size_bytes, mtime_ns, sha256, "
                                            "is_video, seen_at) VALUES (?, ?, ?, ?, ?, ?)");
    if (!st)
        return;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, sb->st_size);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec);
    if (sha)
        sqlite3_bind_text(st, 4, sha, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, is_video);
    sqlite3_bind_double(st, 6, now_s());
    db_step_done(r->c->db, st);
}

/* A known movie whose probe did not succeed (dead, failed or cancelled: the
 * file may have changed under its old path, see job_probe) is probed again
 * from the file just submitted, which has its content. */
static int reprobe(struct submit_run *r, int64_t movie, int64_t job, const char *abs, const char *args,
                   char *detail, size_t len)
{
    struct db *db = r->c->db;
    enum job_state s;
    if (queue_state_of(db, job, &s) != 0 || !(s == JOB_DEAD || s == JOB_FAILED || s == JOB_CANCELLED))
        return 0;
    sqlite3_stmt *st = db_prepare(db, "SELECT probed_at IS NULL FROM movies WHERE id = ?");
    sqlite3_bind_int64(st, 1, movie);
    int unprobed = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    if (!unprobed) {
        snprintf(detail + strlen(detail), len - strlen(detail),
                 "; its probe job %lld is %s: 'dfewctl retry %lld' runs it again", (long long)job, job_state_name(s),
                 (long long)job);
        return 0;
    }
    st = db_prepare(db, "UPDATE movies SET path = ? WHERE id = ?");
    sqlite3_bind_text(st, 1, abs, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, movie);
    int rc = db_step_done(db, st);
    if (!rc) {
        st = db_prepare(db, "UPDATE jobs SET args = ? WHERE id = ?");
        sqlite3_bind_text(st, 1, args, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, job);
        rc = db_step_done(db, st);
    }
    if (!rc)
        rc = queue_retry(db, job, "submitted again: probed from the file just submitted");
    if (!rc)
        snprintf(detail + strlen(detail), len - strlen(detail), "; its probe job %lld was %s and runs again on %s",
                 (long long)job, job_state_name(s), abs);
    return rc;
}

/* Adds the movie (unless its content is known) and its probe job. */
static int submit_file(struct submit_run *r, const char *path, const struct stat *sb)
{
    struct db *db = r->c->db;
    char *abs = NULL;
    if (abs_path(path, &abs)) {
        int e = errno;
        report(r, path, "error", 0, 0, strerror(e));
        r->errors++;
        return -e;
    }
    if (refuse_non_utf8(r, abs)) { /* the folders above it or a link's target */
        free(abs);
        return -EILSEQ;
    }
    char sha[65];
    uint64_t size = 0;
    int rc = sha256_file(abs, sha, &size);
    if (rc) {
        report(r, path, "error", 0, 0, "cannot read the file to hash it");
        r->errors++;
        free(abs);
        return rc;
    }
    /* What the probe checks the file against: it must not have changed
     * while it was hashed. */
    struct stat after;
    if (stat(abs, &after) != 0 || (uint64_t)after.st_size != size || after.st_size != sb->st_size ||
        after.st_mtim.tv_sec != sb->st_mtim.tv_sec || after.st_mtim.tv_nsec != sb->st_mtim.tv_nsec) {
        report(r, path, "error", 0, 0, "the file changed while it was read (is it still being written?); submit it "
                                       "again when it is complete");
        r->errors++;
        free(abs);
        return -EAGAIN;
    }
    int64_t mtime_ns = (int64_t)after.st_mtim.tv_sec * 1000000000 + after.st_mtim.tv_nsec;
    rc = db_begin(db);
    if (rc) {
        report(r, path, "error", 0, 0, db_errmsg(db));
        r->errors++;
        free(abs);
        return rc;
    }
    sqlite3_stmt *st = db_prepare(db, "INSERT INTO movies (sha256, source, path, size_bytes, added_at) "
                                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING");
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, abs, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)size);
    sqlite3_bind_double(st, 5, now_s());
    rc = db_step_done(db, st);
    int is_new = !rc && sqlite3_changes(db->h) == 1;
    int64_t movie = 0, job = 0;
    char detail[512] = "";
    if (!rc) {
        st = db_prepare(db, "SELECT id, path FROM movies WHERE sha256 = ?");
        sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            movie = sqlite3_column_int64(st, 0);
            const char *old = (const char *)sqlite3_column_text(st, 1);
            snprintf(detail, sizeof detail, "same content as %s", old ? old : "?");
        } else {
            rc = -EIO;
        }
        sqlite3_reset(st);
    }
    if (!rc && !is_new) {
        /* The known copy moved away: remember where the content is now. */
        struct stat osb;
        st = db_prepare(db, "SELECT path FROM movies WHERE id = ?");
        sqlite3_bind_int64(st, 1, movie);
        int gone = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
                   stat((const char *)sqlite3_column_text(st, 0), &osb) != 0;
        sqlite3_reset(st);
        if (gone) {
            st = db_prepare(db, "UPDATE movies SET path = ? WHERE id = ?");
            sqlite3_bind_text(st, 1, abs, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, movie);
            rc = db_step_done(db, st);
        }
    }
    if (!rc) {
        struct sbuf key = {0};
        char *args = probe_args_json(abs, sha, (int64_t)size, mtime_ns);
        sbuf_addf(&key, "probe:%lld", (long long)movie);
        struct job_spec spec = {.kind = "probe", .movie_id = movie, .args_json = args, .priority = r->priority,
                                .dedup_key = key.s,
                                .max_attempts = r->c->cfg.max_attempts};
        int created = queue_enqueue(db, &spec, r->batch ? "submitted by the batch scan" : "submitted", &job);
        rc = created < 0 ? created : 0;
        if (created == 0)
            rc = reprobe(r, movie, job, abs, args, detail, sizeof detail);
        free(args);
        sbuf_free(&key);
    }
    if (!rc && r->nclips) {
        /* With its probe facts known the clips are checked and queued now,
         * else when the probe finishes (dfewd). */
        r->clips_movie = movie;
        rc = clips_add(db, movie, r->clips, r->nclips, &r->clips_added);
        if (!rc)
            rc = clips_schedule(db, &r->c->cfg, r->c->paths.outputs, movie, r->priority, 0, &r->prep_queued);
    }
    if (!rc && r->batch)
        remember(r, abs, sb, sha, 1);
    if (rc) {
        db_rollback(db);
        report(r, path, "error", 0, 0, db_errmsg(db));
        r->errors++;
    } else if ((rc = db_commit(db)) != 0) {
        db_rollback(db);
        report(r, path, "error", 0, 0, db_errmsg(db));
        r->errors++;
    } else if (is_new) {
        r->queued++;
        report(r, path, "queued", movie, job, NULL);
    } else {
        r->known++;
        report(r, path, "known", movie, job, detail);
    }
    free(abs);
    return rc;
}

/* After --clips: what was added, and what happens next. */
static void print_clip_outcome(struct submit_run *r)
{
    struct db *db = r->c->db;
    printf("%d clip(s) added (%d already known), %d prep job(s) queued\n", r->clips_added, r->nclips - r->clips_added,
           r->prep_queued);
    sqlite3_stmt *st = db_prepare(db, "SELECT probed_at IS NULL FROM movies WHERE id = ?");
    sqlite3_bind_int64(st, 1, r->clips_movie);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0))
        printf("the clips' prep jobs are queued when the movie's probe finishes\n");
    sqlite3_reset(st);
    st = db_prepare(db, "SELECT id, reason FROM clips WHERE movie_id = ? AND state = 'failed' ORDER BY start_s");
    sqlite3_bind_int64(st, 1, r->clips_movie);
    while (sqlite3_step(st) == SQLITE_ROW)
        printf("clip %lld failed: %s\n", (long long)sqlite3_column_int64(st, 0),
               (const char *)sqlite3_column_text(st, 1));
    sqlite3_reset(st);
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Walks a directory (sorted, dot-files skipped, symlinks to files followed). */
static void walk(struct submit_run *r, const char *dir, int *files_seen, int *videos)
{
    DIR *d = opendir(dir);
    if (!d) {
        report(r, dir, "error", 0, 0, strerror(errno));
        r->errors++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        struct sbuf p = {0};
        sbuf_addf(&p, "%s/%s", dir, names[i]);
        struct stat sb;
        if (stat(p.s, &sb) == 0) {
            if (S_ISDIR(sb.st_mode)) {
                struct stat lsb;
                if (lstat(p.s, &lsb) == 0 && !S_ISLNK(lsb.st_mode))
                    walk(r, p.s, files_seen, videos);
            } else if (S_ISREG(sb.st_mode)) {
                (*files_seen)++;
                if (refuse_non_utf8(r, p.s)) {
                    sbuf_free(&p);
                    free(names[i]);
                    continue;
                }
                char *abs = NULL;
                int seen = r->batch && abs_path(p.s, &abs) == 0 ? seen_before(r, abs, &sb) : -1;
                if (seen == 1) {
                    r->known++;
                } else if (seen == 0) {
                    r->skipped++;
                } else {
                    struct media_info mi;
                    char why[512];
                    if (media_probe(p.s, 0, &mi, NULL, NULL, why, sizeof why) == 0) {
                        (*videos)++;
                        submit_file(r, p.s, &sb);
                    } else {
                        r->skipped++;
                        if (r->batch && abs)
                            remember(r, abs, &sb, NULL, 0);
                    }
                }
                free(abs);
            }
        }
        sbuf_free(&p);
        free(names[i]);
    }
    free(names);
}

int cmd_submit(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"batch", no_argument, NULL, 'b'},
                                         {"priority", required_argument, NULL, 'p'},
                                         {"clips", required_argument, NULL, 'c'},
                                         {"allow-overlap", no_argument, NULL, 'o'},
                                         CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    struct submit_run r = {.c = c};
    const char *clip_list = NULL;
    int o, clip_flags = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        switch (o) {
        case 'b': r.batch = 1; break;
        case 'c': clip_list = optarg; break;
        case 'o': clip_flags |= CLIPS_ALLOW_OVERLAP; break;
        case 'p':
            if (parse_int(optarg, &r.priority)) {
                fprintf(stderr, "dfewctl submit: --priority wants a whole number, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            printf("usage: dfewctl submit [--batch] [--priority N] PATH|URL...\n"
                   "       dfewctl submit [--priority N] MOVIE --clips LIST.csv [--allow-overlap]\n\n"
                   "Queues each movie file for processing; directories are searched recursively\n"
                   "and files FFmpeg does not recognise as video are skipped. A movie whose\n"
                   "content (SHA-256) is already known is not queued again. http:// and\n"
                   "https:// URLs are downloaded first (a fetch job; [fetch] in dfew.conf).\n"
                   "Works while dfewd is down: the jobs wait for it.\n"
                   "  --batch       the nightly scan: quiet, remembers files it has looked at\n"
                   "                (same size and mtime are not hashed again), prints a summary;\n"
                   "                without PATH it scans [batch] incoming from dfew.conf\n"
                   "  --priority N  higher runs first (default 0)\n"
                   "  --clips LIST  the movie's clips, one 'start,end[,label]' row per line, times\n"
                   "                in seconds (12.5) or [HH:]MM:SS[.mmm], label an emotion name\n"
                   "                or 1..7 (kept as the clip's curator_label, not a vote); each\n"
                   "                clip becomes one prep job. A bad row (end not after start,\n"
                   "                past the movie's end, overlapping another) rejects the whole\n"
                   "                list, with its line number; nothing is added.\n"
                   "                Without --clips a movie is segmented: shots and face tracks\n"
                   "                give its clips ([segment] in dfew.conf).\n"
                   "  --allow-overlap  clips of the list may overlap\n");
            return 0;
        default: return 2;
        }
    }
    if (clip_flags && !clip_list) {
        fprintf(stderr, "dfewctl submit: --allow-overlap goes with --clips (see --help)\n");
        return 2;
    }
    if (clip_list) {
        struct stat csb;
        if (r.batch || optind + 1 != argc || stat(argv[optind], &csb) != 0 || !S_ISREG(csb.st_mode)) {
            fprintf(stderr, "dfewctl submit: --clips goes with exactly one movie file (see --help)\n");
            return 2;
        }
        char err[1024];
        if (clips_parse_list(clip_list, clip_flags, &r.clips, &r.nclips, err, sizeof err)) {
            fprintf(stderr, "dfewctl submit: %s\n", err);
            return 2;
        }
        /* inside the movie: its end is known from its header now, not only after the probe */
        struct media_info mi;
        if (media_probe(argv[optind], 0, &mi, NULL, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "dfewctl submit: %s: %s; a clip list goes with a readable video\n", argv[optind], err);
            free(r.clips);
            return 2;
        }
        double fps = mi.avg_fps > 0 ? mi.avg_fps : mi.real_fps;
        if (mi.duration_s > 0 && clips_check_inside(clip_list, r.clips, r.nclips, mi.start_time_s + mi.duration_s,
                                                    fps > 0 ? 1.0 / fps : 0.05, err, sizeof err)) {
            fprintf(stderr, "dfewctl submit: %s\n", err);
            free(r.clips);
            return 2;
        }
    }
    if (ctl_open(c, CTL_CREATE | CTL_NEED_CONFIG)) {
        free(r.clips);
        return 1;
    }
    const char *incoming = c->cfg.incoming_dir;
    if (optind >= argc && !(r.batch && incoming)) {
        fprintf(stderr, "dfewctl submit: give one or more movie files or directories%s (see --help)\n",
                r.batch ? ", or set [batch] incoming in dfew.conf" : "");
        return 2;
    }
    int npaths = optind < argc ? argc - optind : 1;
    for (int i = 0; i < npaths; i++) {
        const char *path = optind < argc ? argv[optind + i] : incoming;
        struct stat sb;
        if (refuse_non_utf8(&r, path)) {
            /* reported */
        } else if (!strncasecmp(path, "http://", 7) || !strncasecmp(path, "https://", 8)) {
            submit_url(&r, path);
        } else if (strstr(path, "://")) {
            report(&r, path, "error", 0, 0, "only http:// and https:// URLs can be fetched; for a local file give its path");
            r.errors++;
        } else if (stat(path, &sb) != 0) {
            report(&r, path, "error", 0, 0,
                   errno == ENOENT ? "no such file or directory; check the path" : strerror(errno));
            r.errors++;
        } else if (S_ISDIR(sb.st_mode)) {
            int files = 0, videos = 0;
            char *dir = xstrdup(path);
            for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
                dir[n - 1] = '\0';
            walk(&r, dir, &files, &videos);
            free(dir);
            if (videos == 0 && !r.batch) {
                char msg[256];
                snprintf(msg, sizeof msg,
                         "no videos found (%d file%s looked at; FFmpeg recognised none as a video)", files,
                         files == 1 ? "" : "s");
                report(&r, path, "error", 0, 0, msg);
                r.errors++;
            }
        } else if (!S_ISREG(sb.st_mode)) {
            report(&r, path, "error", 0, 0, "not a regular file or directory");
            r.errors++;
        } else {
            submit_file(&r, path, &sb);
        }
    }
    int daemon_up = r.queued || r.prep_queued ? ctl_wake(c) : -1;
    if (c->json) {
        printf("{\"queued\":%d,\"known\":%d,\"skipped\":%d,\"errors\":%d,\"daemon_running\":%s,", r.queued,
               r.known, r.skipped, r.errors, daemon_up == 1 ? "true" : daemon_up == 0 ? "false" : "null");
        if (clip_list)
            printf("\"clips_added\":%d,\"prep_jobs_queued\":%d,", r.clips_added, r.prep_queued);
        printf("\"files\":[%s]}\n", sbuf_str(&r.json));
    } else {
        if (clip_list && !r.errors)
            print_clip_outcome(&r);
        if (r.batch || r.skipped)
            printf("%d queued, %d already known, %d skipped (not video), %d error(s)\n", r.queued, r.known,
                   r.skipped, r.errors);
        if (daemon_up == 0)
            printf("note: dfewd is not running on %s; the jobs wait until it starts (dfewd --home %s)\n",
                   c->paths.home, c->paths.home);
    }
    sbuf_free(&r.json);
    free(r.clips);
    return r.errors ? 1 : 0;
}

int cmd_noop(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"count", required_argument, NULL, 'n'},
                                         {"sleep-ms", required_argument, NULL, 's'},
                                         {"fail", required_argument, NULL, 'f'},
                                         {"fail-attempts", required_argument, NULL, 'a'},
                                         {"max-attempts", required_argument, NULL, 'm'},
                                         {"priority", required_argument, NULL, 'p'},
                                         {"progress", required_argument, NULL, 'P'},
                                         CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    int progress = 0;
    int count = 1, sleep_ms = 0, fail_attempts = -1, max_attempts = 0, priority = 0, o;
    const char *fail = NULL;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        int bad = 0;
        switch (o) {
        case 'n': bad = parse_int(optarg, &count) || count < 1; break;
        case 's': bad = parse_int(optarg, &sleep_ms) || sleep_ms < 0; break;
        case 'a': bad = parse_int(optarg, &fail_attempts) || fail_attempts < 0; break;
        case 'm': bad = parse_int(optarg, &max_attempts) || max_attempts < 1; break;
        case 'p': bad = parse_int(optarg, &priority); break;
        case 'P': bad = parse_int(optarg, &progress) || progress < 0; break;
        case 'f':
            fail = optarg;
            bad = strcmp(fail, "transient") && strcmp(fail, "permanent");
            break;
        case 'h':
            printf("usage: dfewctl noop [--count N] [--sleep-ms MS] [--fail transient|permanent]\n"
                   "                    [--fail-attempts K] [--max-attempts N] [--priority P]\n"
                   "                    [--progress N]\n\n"
                   "Queues no-op jobs: they measure the queue (bench/) and exercise retries.\n"
                   "--fail makes them fail (only the first K attempts with --fail-attempts);\n"
                   "--progress N reports N progress steps first, 10 ms apart.\n");
            return 0;
        default: return 2;
        }
        if (bad) {
            fprintf(stderr, "dfewctl noop: bad value '%s' (see --help)\n", optarg);
            return 2;
        }
    }
    if (ctl_open(c, CTL_CREATE | CTL_NEED_CONFIG))
        return 1;
    if (!max_attempts)
        max_attempts = c->cfg.max_attempts;
    struct sbuf args = {0};
    sbuf_addf(&args, "{\"sleep_ms\":%d", sleep_ms);
    if (progress)
        sbuf_addf(&args, ",\"progress\":%d", progress);
    if (fail) {
        sbuf_add(&args, ",\"fail\":");
        sbuf_add_json_str(&args, fail);
        if (fail_attempts >= 0)
            sbuf_addf(&args, ",\"fail_attempts\":%d", fail_attempts);
    }
    sbuf_addc(&args, '}');
    int64_t first = 0, last = 0;
    int rc = db_begin(c->db);
    for (int i = 0; i < count && !rc; i++) {
        struct job_spec spec = {.kind = "noop", .args_json = args.s, .priority = priority,
                                .max_attempts = max_attempts};
        int r = queue_enqueue(c->db, &spec, "submitted by dfewctl noop", &last);
        rc = r < 0 ? r : 0;
        if (!first)
            first = last;
    }
    rc = rc ? rc : db_commit(c->db);
    sbuf_free(&args);
    if (rc) {
        db_rollback(c->db);
        fprintf(stderr, "dfewctl noop: %s\n", db_errmsg(c->db));
        return 1;
    }
    int up = ctl_wake(c);
    if (c->json)
        printf("{\"count\":%d,\"first_id\":%lld,\"last_id\":%lld,\"daemon_running\":%s}\n", count, (long long)first,
               (long long)last, up ? "true" : "false");
    else
        printf("queued %d noop job(s): %lld..%lld%s\n", count, (long long)first, (long long)last,
               up ? "" : " (dfewd is not running; they wait for it)");
    return 0;
}
