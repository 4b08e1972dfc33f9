/* dfew-web's files: a clip's preview MP4, its interpolated frames, the
 * contact sheets of a clip and of a movie. A request names a record id and
 * what of it; the path is always built here from the database row (never
 * from the request). Previews are made once (preview.c) and kept next to
 * the clip's outputs (output_dir/preview.mp4), else in HOME/web-cache;
 * contact sheets come from `dfewctl sheet` into HOME/web-cache. One file is
 * made at a time. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clipfiles.h"
#include "log.h"
#include "web.h"

extern char **environ;

#define PREVIEW_HEIGHT 360

struct clip_media {
    int found, usable, has_movie;
    char *movie, *output_dir;
    double start_s, end_s;
};

static int load_clip(struct req *r, int64_t id, struct clip_media *c)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *st = db_prepare(r->db, "SELECT c.state = 'usable', c.duration_known AND m.path IS NOT NULL, m.path, "
                                         "c.output_dir, c.start_s, c.end_s "
                                         "FROM clips c JOIN movies m ON m.id = c.movie_id WHERE c.id = ?");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        c->found = 1;
        c->usable = sqlite3_column_int(st, 0);
        c->has_movie = sqlite3_column_int(st, 1);
        if (sqlite3_column_text(st, 2))
            c->movie = xstrdup((const char *)sqlite3_column_text(st, 2));
        if (sqlite3_column_text(st, 3))
            c->output_dir = xstrdup((const char *)sqlite3_column_text(st, 3));
        c->start_s = sqlite3_column_double(st, 4);
        c->end_s = sqlite3_column_double(st, 5);
    }
    sqlite3_reset(st);
    return 0;
}

static void free_clip(struct clip_media *c)
{
    free(c->movie);
    free(c->output_dir);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

static int is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Runs dfewctl sheet to make out; 0 or a negative errno. */
static int run_sheet(struct web *w, const char *kind, int64_t id, const char *out)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    char *argv[] = {w->ctl_path, "--home", w->paths.home, "sheet", (char *)kind, ids, "-o", (char *)out, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, w->ctl_path, NULL, NULL, argv, environ);
    if (rc)
        return -rc;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Makes path with fn under gen_mu unless it exists; 0 when it is there. */
static int ensure(struct web *w, const char *path, int (*fn)(void *), void *arg)
{
    if (is_file(path))
        return 0;
    pthread_mutex_lock(&w->gen_mu);
    int rc = is_file(path) ? 0 : fn(arg);
    pthread_mutex_unlock(&w->gen_mu);
    return rc;
}

struct sheet_job {
    struct web *w;
    const char *kind, *out;
    int64_t id;
};

static int sheet_fn(void *arg)
{
    struct sheet_job *j = arg;
    double t0 = mono_s();
    int rc = run_sheet(j->w, j->kind, j->id, j->out);
    if (rc)
        log_error(0, "contact sheet of %s %lld: %s sheet %s", j->kind, (long long)j->id, j->w->ctl_path,
                  rc == -EIO ? "failed (its message is above)" : strerror(-rc));
    else
        log_info(0, "contact sheet of %s %lld made (%.2f s)", j->kind, (long long)j->id, mono_s() - t0);
    return rc;
}

struct preview_job {
    const struct clip_media *c;
    const char *out;
    char err[256];
};

static int preview_fn(void *arg)
{
    struct preview_job *j = arg;
    double t0 = mono_s();
    int rc = preview_make(j->c->movie, j->c->start_s, j->c->end_s, PREVIEW_HEIGHT, j->out, j->err, sizeof j->err);
    if (rc)
        log_error(0, "preview %s: %s", j->out, j->err);
    else
        log_info(0, "preview %s made (%.2f s)", j->out, mono_s() - t0);
    return rc;
}

static enum MHD_Result serve_sheet(struct req *r, const char *kind, int64_t id)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%lld-sheet.png", r->w->cache_dir, kind, (long long)id);
    struct sheet_job j = {r->w, kind, path, id};
    if (ensure(r->w, path, sheet_fn, &j))
        return reply_text(r, MHD_HTTP_NOT_FOUND, "no contact sheet for %s %lld (dfewctl sheet %s %lld says why)", kind,
                          (long long)id, kind, (long long)id);
    return reply_file(r, path, "image/png", 0);
}

static const char *frame_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && !strcmp(dot, ".png") ? "image/png" : "image/jpeg";
}

enum MHD_Result media_clip(struct req *r, int64_t id, const char *what)
{
    struct clip_media c;
    if (load_clip(r, id, &c))
        return reply_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "database error");
    enum MHD_Result ret;
    if (!c.found || (r->role != ROLE_ADMIN && !c.usable)) {
        ret = reply_text(r, MHD_HTTP_NOT_FOUND, "no such clip");
    } else if (!strcmp(what, "preview.mp4")) {
        char path[4096];
        if (!c.has_movie) {
            ret = reply_text(r, MHD_HTTP_NOT_FOUND, "clip %lld has no source movie to preview", (long long)id);
            goto out;
        }
        if (is_dir(c.output_dir))
            snprintf(path, sizeof path, "%s/preview.mp4", c.output_dir);
        else
            snprintf(path, sizeof path, "%s/clip-%lld-preview.mp4", r->w->cache_dir, (long long)id);
        struct preview_job j = {.c = &c, .out = path};
        ret = ensure(r->w, path, preview_fn, &j) ? reply_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                                              "the preview cannot be made: %s", j.err)
                                                 : reply_file(r, path, "video/mp4", 1);
    } else if (!strncmp(what, "frame/", 6)) {
        int64_t n = parse_id(what + 6);
        struct frame_list fl = {0};
        if (!n || n > 1000 || !c.output_dir || clip_tim_frames(c.output_dir, &fl) || (size_t)n > fl.n)
            ret = reply_text(r, MHD_HTTP_NOT_FOUND, "clip %lld has no frame %s", (long long)id, what + 6);
        else
            ret = reply_file(r, fl.path[n - 1], frame_type(fl.path[n - 1]), 1);
        frame_list_free(&fl);
    } else if (!strcmp(what, "sheet.png") && r->role == ROLE_ADMIN) {
        ret = serve_sheet(r, "clip", id);
    } else {
        ret = reply_text(r, MHD_HTTP_NOT_FOUND, "not found");
    }
out:
    free_clip(&c);
    return ret;
}

enum MHD_Result media_movie(struct req *r, int64_t id, const char *what)
{
    if (strcmp(what, "sheet.png"))
        return reply_text(r, MHD_HTTP_NOT_FOUND, "not found");
    sqlite3_stmt *st = db_prepare(r->db, "SELECT 1 FROM movies WHERE id = ?");
    if (!st)
        return reply_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "database error");
    sqlite3_bind_int64(st, 1, id);
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found ? serve_sheet(r, "movie", id) : reply_text(r, MHD_HTTP_NOT_FOUND, "no such movie");
}
