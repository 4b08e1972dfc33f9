/* dfew-web's request side over libmicrohttpd: the size limits of a request,
 * reading POST forms (MHD's own form parser), who is asking (admin token or
 * an annotator's token, from the session cookie or a Bearer header), CSRF
 * checks, routing a path to a page, the replies with their security
 * headers, and the pool of database connections. Pages live in
 * annotate.c, curator.c and media.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "web.h"

#define COOKIE "dfew_session"
#define MAX_PATH_LEN 256

struct conn_ctx {
    struct req r;
    struct MHD_PostProcessor *pp;
    size_t body;
    int too_big;
};

/* ---- database pool ---- */

struct db *web_db_take(struct web *w)
{
    pthread_mutex_lock(&w->pool_mu);
    for (;;) {
        for (int i = 0; i < WEB_DB_POOL; i++) {
            if (!w->pool_used[i]) {
                w->pool_used[i] = 1;
                pthread_mutex_unlock(&w->pool_mu);
                if (!w->pool[i]) {
                    char err[512];
                    if (db_open(w->paths.db, -1, 5000, &w->pool[i], err, sizeof err)) {
                        log_error(0, "%s", err);
                        pthread_mutex_lock(&w->pool_mu);
                        w->pool_used[i] = 0;
                        pthread_cond_signal(&w->pool_cv);
                        pthread_mutex_unlock(&w->pool_mu);
                        return NULL;
                    }
                }
                return w->pool[i];
            }
        }
        pthread_cond_wait(&w->pool_cv, &w->pool_mu);
    }
}

void web_db_give(struct web *w, struct db *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&w->pool_mu);
    for (int i = 0; i < WEB_DB_POOL; i++)
        if (w->pool[i] == db)
            w->pool_used[i] = 0;
    pthread_cond_signal(&w->pool_cv);
    pthread_mutex_unlock(&w->pool_mu);
}

/* ---- parameters ---- */

const char *req_form(const struct req *r, const char *key)
{
    for (int i = 0; i < r->nform; i++)
        if (!strcmp(r->form[i].key, key))
            return r->form[i].val;
    return NULL;
}

const char *req_query(const struct req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

int64_t parse_id(const char *s)
{
    int64_t v;
    if (!s || !*s || strlen(s) > 16 || strspn(s, "0123456789") != strlen(s) || parse_i64(s, &v) || v < 1 ||
        v > (INT64_C(1) << 53))
        return 0;
    return v;
}

/* ---- replies ---- */

static void security_headers(struct req *r, struct MHD_Response *resp, int html)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    if (html) {
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
                                "frame-ancestors 'none'");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    }
    (void)r;
}

static enum MHD_Result queue(struct req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result reply_buffer(struct req *r, unsigned status, struct sbuf *body, const char *ctype)
{
    size_t len = body->len;
    char *s = sbuf_take(body);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, s ? s : "", s ? MHD_RESPMEM_MUST_FREE
                                                                                   : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    security_headers(r, resp, 1);
    return queue(r, status, resp);
}

enum MHD_Result reply_html(struct req *r, unsigned status, struct sbuf *body)
{
    return reply_buffer(r, status, body, "text/html; charset=utf-8");
}

static enum MHD_Result reply_vtext(struct req *r, unsigned status, int page, const char *fmt, va_list ap)
{
    struct sbuf msg = {0};
    sbuf_vaddf(&msg, fmt, ap);
    if (!page) {
        sbuf_addc(&msg, '\n');
        return reply_buffer(r, status, &msg, "text/plain; charset=utf-8");
    }
    struct sbuf b = {0};
    char title[64];
    snprintf(title, sizeof title, "%u", status);
    html_begin(&b, r, title);
    sbuf_add(&b, "<p class=\"error\">");
    html_esc(&b, sbuf_str(&msg));
    sbuf_add(&b, "</p>");
    html_end(&b);
    sbuf_free(&msg);
    return reply_html(r, status, &b);
}

enum MHD_Result reply_text(struct req *r, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result rc = reply_vtext(r, status, 0, fmt, ap);
    va_end(ap);
    return rc;
}

enum MHD_Result reply_error(struct req *r, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result rc = reply_vtext(r, status, 1, fmt, ap);
    va_end(ap);
    return rc;
}

enum MHD_Result reply_redirect(struct req *r, const char *location, const char *cookie)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Location", location);
    if (cookie)
        MHD_add_response_header(resp, "Set-Cookie", cookie);
    security_headers(r, resp, 1);
    return queue(r, MHD_HTTP_SEE_OTHER, resp);
}

enum MHD_Result reply_static(struct req *r, const char *data, size_t len, const char *ctype)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "Cache-Control", "max-age=300");
    security_headers(r, resp, 0);
    return queue(r, MHD_HTTP_OK, resp);
}

/* "bytes=a-b", "bytes=a-", "bytes=-n": 1 and the range, 0 when absent or not one of these. */
static int parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (!h || strncmp(h, "bytes=", 6) || !size)
        return 0;
    h += 6;
    const char *dash = strchr(h, '-');
    if (!dash || strchr(h, ','))
        return 0;
    char a[24] = "", b[24] = "";
    if ((size_t)(dash - h) >= sizeof a || strlen(dash + 1) >= sizeof b)
        return 0;
    memcpy(a, h, (size_t)(dash - h));
    strcpy(b, dash + 1);
    int64_t x, y;
    if (!*a) {
        if (parse_i64(b, &y) || y <= 0)
            return 0;
        *from = (uint64_t)y >= size ? 0 : size - (uint64_t)y;
        *to = size - 1;
        return 1;
    }
    if (parse_i64(a, &x) || x < 0 || (uint64_t)x >= size)
        return 0;
    *from = (uint64_t)x;
    *to = size - 1;
    if (*b) {
        if (parse_i64(b, &y) || y < x)
            return 0;
        if ((uint64_t)y < size)
            *to = (uint64_t)y;
    }
    return 1;
}

enum MHD_Result reply_file(struct req *r, const char *path, const char *ctype, int cache)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return reply_text(r, MHD_HTTP_NOT_FOUND, "not found");
    }
    uint64_t size = (uint64_t)st.st_size, from = 0, to = size ? size - 1 : 0;
    int ranged = parse_range(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Range"), size, &from, &to);
    struct MHD_Response *resp =
        MHD_create_response_from_fd_at_offset64(ranged ? to - from + 1 : size, fd, ranged ? from : 0);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "Accept-Ranges", "bytes");
    MHD_add_response_header(resp, "Cache-Control", cache ? "private, max-age=3600" : "no-store");
    if (ranged) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, from, to, size);
        MHD_add_response_header(resp, "Content-Range", cr);
    }
    security_headers(r, resp, 0);
    return queue(r, ranged ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, resp);
}

/* ---- who is asking ---- */

static void derive_csrf(const struct web *w, const char *token, char out[65])
{
    char buf[2 * WEB_TOKEN_LEN + 8];
    snprintf(buf, sizeof buf, "%s:%s", w->secret, token);
    web_token_hash(buf, out);
    out[32] = '\0';
}

static const char *session_token(struct req *r)
{
    const char *t = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, COOKIE);
    if (t)
        return t;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7))
        return h + 7;
    return NULL;
}

#define REVOKED_TEXT "The curator has switched this link off (dfewctl annotators disable). Ask them if that is " \
                     "a mistake: dfewctl annotators enable NAME lets it in again."

/* Sets r->role (and the annotator) from a token; r->revoked for a disabled annotator's. */
static void authenticate(struct req *r, const char *token)
{
    r->role = ROLE_NONE;
    r->revoked = 0;
    if (!web_token_valid(token))
        return;
    if (web_token_equal(token, r->w->admin_token)) {
        r->role = ROLE_ADMIN;
    } else {
        char hash[65];
        web_token_hash(token, hash);
        sqlite3_stmt *st = db_prepare(r->db, "SELECT id, name, disabled FROM annotators WHERE token_sha256 = ?");
        if (!st)
            return;
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW && sqlite3_column_int(st, 2))
            r->revoked = 1;
        else if (step == SQLITE_ROW) {
            r->role = ROLE_ANNOTATOR;
            r->annotator_id = sqlite3_column_int64(st, 0);
            snprintf(r->annotator, sizeof r->annotator, "%s", (const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_reset(st);
    }
    if (r->role != ROLE_NONE)
        derive_csrf(r->w, token, r->csrf);
}

/* A cross-site POST: an Origin header that names another host than ours, or
 * "null" (browsers send that for forms of opaque origins; our pages'
 * Referrer-Policy is same-origin, under which they send the real origin). */
static int foreign_origin(struct req *r)
{
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
    if (!origin || !strcmp(origin, "null"))
        return origin != NULL;
    const char *p = strstr(origin, "://");
    return !host || !p || strcmp(p + 3, host) != 0;
}

static enum MHD_Result login(struct req *r)
{
    const char *token = req_query(r, "token");
    authenticate(r, token);
    if (r->revoked)
        return reply_error(r, MHD_HTTP_FORBIDDEN, REVOKED_TEXT);
    if (r->role == ROLE_NONE)
        return reply_error(r, MHD_HTTP_FORBIDDEN,
                           "This link is not valid (any more). Ask the curator for a new one: dfewctl annotators add "
                           "gives annotators theirs, dfewctl web token the curator's.");
    char cookie[256];
    snprintf(cookie, sizeof cookie, COOKIE "=%s; Path=/; HttpOnly; SameSite=Lax%s", token,
             r->secure ? "; Secure" : "");
    /* The token leaves the address bar (and the history) at once. */
    return reply_redirect(r, r->role == ROLE_ADMIN ? "/" : "/annotate", cookie);
}

/* ---- routing ---- */

static int path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > MAX_PATH_LEN || p[0] != '/' || strstr(p, "..") || strstr(p, "//"))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789/._-ABCDEFGHIJKLMNOPQRSTUVWXYZ", p[i]))
            return 0;
    return 1;
}

/* "/a/b/c" into at most max segments of at most 63 bytes; count or -1. */
static int split_path(const char *p, char seg[][64], int max)
{
    int n = 0;
    for (const char *s = p + 1; *s;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (n == max || len == 0 || len >= 64)
            return len == 0 && !e ? n : -1;
        memcpy(seg[n], s, len);
        seg[n++][len] = '\0';
        s += len + (e ? 1 : 0);
    }
    return n;
}

static enum MHD_Result route(struct req *r)
{
    if (!path_ok(r->path))
        return reply_text(r, MHD_HTTP_BAD_REQUEST, "bad path");
    if (!strcmp(r->path, "/static/style.css") && !r->post)
        return reply_static(r, web_css, web_css_len, "text/css; charset=utf-8");
    if (!strcmp(r->path, "/static/app.js") && !r->post)
        return reply_static(r, web_js, web_js_len, "text/javascript; charset=utf-8");
    if (!strcmp(r->path, "/favicon.ico"))
        return reply_text(r, MHD_HTTP_NOT_FOUND, "not found");
    if (!(r->db = web_db_take(r->w)))
        return reply_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the database cannot be opened (see dfew-web's log)");
    if (!strcmp(r->path, "/login") && !r->post)
        return login(r);
    authenticate(r, session_token(r));
    if (r->revoked)
        return reply_error(r, MHD_HTTP_FORBIDDEN, REVOKED_TEXT);
    if (r->role == ROLE_NONE)
        return reply_error(r, MHD_HTTP_UNAUTHORIZED,
                           "Sign in with your personal link (dfewctl annotators add NAME makes one; the curator's is "
                           "/login?token= with the token of dfewctl web token).");
    if (r->post) {
        const char *sent = req_form(r, "csrf");
        if (r->form_bad)
            return reply_text(r, MHD_HTTP_BAD_REQUEST, "bad form: at most %d fields of %d bytes", WEB_MAX_FIELDS,
                              WEB_MAX_FIELD);
        if (!sent || !*r->csrf || !web_token_equal(sent, r->csrf) || foreign_origin(r))
            return reply_text(r, MHD_HTTP_FORBIDDEN, "missing or wrong CSRF token: reload the page and try again");
    }
    char seg[6][64];
    int n = split_path(r->path, seg, 6);
    if (n < 0)
        return reply_text(r, MHD_HTTP_NOT_FOUND, "not found");
    if (n == 1 && !strcmp(seg[0], "logout") && r->post)
        return reply_redirect(r, "/login", COOKIE "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    /* Annotators: the annotation page and the media of the clips it shows. */
    if (n == 1 && !strcmp(seg[0], "annotate") && !r->post)
        return page_annotate(r);
    if (n == 2 && !strcmp(seg[0], "annotate") && !strcmp(seg[1], "vote") && r->post)
        return post_vote(r);
    if (n >= 4 && !strcmp(seg[0], "media") && !strcmp(seg[1], "clip") && !r->post) {
        int64_t id = parse_id(seg[2]);
        if (!id)
            return reply_text(r, MHD_HTTP_NOT_FOUND, "no such clip");
        char what[160];
        snprintf(what, sizeof what, "%s%s%s", seg[3], n > 4 ? "/" : "", n > 4 ? seg[4] : "");
        return n <= 5 ? media_clip(r, id, what) : reply_text(r, MHD_HTTP_NOT_FOUND, "not found");
    }
    if (r->role != ROLE_ADMIN)
        return reply_error(r, MHD_HTTP_FORBIDDEN, "Annotators see the annotation pages only: go to /annotate.");
    /* The curator's pages. */
    if (r->post) {
        if (n == 3 && !strcmp(seg[0], "job") && parse_id(seg[1]))
            return post_job(r, parse_id(seg[1]), seg[2]);
        return reply_text(r, MHD_HTTP_NOT_FOUND, "not found");
    }
    if (n == 0)
        return page_home(r);
    int64_t id = n == 2 ? parse_id(seg[1]) : 0;
    if (n == 1 && !strcmp(seg[0], "movies"))
        return page_movies(r);
    if (n == 1 && !strcmp(seg[0], "clips"))
        return page_clips(r);
    if (n == 1 && !strcmp(seg[0], "dataset"))
        return page_dataset(r);
    if (n == 1 && !strcmp(seg[0], "runs"))
        return page_runs(r);
    if (n == 1 && !strcmp(seg[0], "annotators"))
        return page_annotators(r);
    if (id && !strcmp(seg[0], "movie"))
        return page_movie(r, id);
    if (id && !strcmp(seg[0], "clip"))
        return page_clip(r, id);
    if (id && !strcmp(seg[0], "run"))
        return page_run(r, id);
    if (n == 4 && !strcmp(seg[0], "media") && !strcmp(seg[1], "movie") && parse_id(seg[2]))
        return media_movie(r, parse_id(seg[2]), seg[3]);
    return reply_error(r, MHD_HTTP_NOT_FOUND, "There is no such page.");
}

/* ---- libmicrohttpd callbacks ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                                                        : -1;
}

size_t web_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    /* %HH as MHD does, but an escaped NUL becomes DEL (0x7f): a C string
     * must not end early ("/clip/1%00../x" is not "/clip/1"), and DEL is
     * refused by every path and parameter check. */
    char *o = s;
    for (const char *i = s; *i; i++) {
        int hi, lo;
        if (*i == '%' && (hi = hexval(i[1])) >= 0 && (lo = hexval(i[2])) >= 0) {
            *o++ = (char)(hi * 16 + lo) ? (char)(hi * 16 + lo) : 0x7f;
            i += 2;
        } else {
            *o++ = *i;
        }
    }
    *o = '\0';
    return (size_t)(o - s);
}

static enum MHD_Result form_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                  const char *content_type, const char *transfer_encoding, const char *data,
                                  uint64_t off, size_t size)
{
    struct req *r = cls;
    if (filename || strlen(key) >= sizeof r->form[0].key) {
        r->form_bad = 1;
        return MHD_YES;
    }
    struct form_field *f = NULL;
    for (int i = 0; i < r->nform; i++)
        if (!strcmp(r->form[i].key, key))
            f = &r->form[i];
    if (!f) {
        if (r->nform == WEB_MAX_FIELDS) {
            r->form_bad = 1;
            return MHD_YES;
        }
        f = &r->form[r->nform++];
        snprintf(f->key, sizeof f->key, "%s", key);
        f->len = 0;
    } else if (off == 0) {
        r->form_bad = 1; /* the same field twice */
        return MHD_YES;
    }
    if (f->len + size > WEB_MAX_FIELD) {
        r->form_bad = 1;
        return MHD_YES;
    }
    memcpy(f->val + f->len, data, size);
    f->len += size;
    f->val[f->len] = '\0';
    if (strlen(f->val) != f->len)
        r->form_bad = 1; /* a NUL inside */
    return MHD_YES;
}

enum MHD_Result web_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct conn_ctx *ctx = *con_cls;
    if (!ctx) {
        ctx = xcalloc(1, sizeof *ctx);
        *con_cls = ctx;
        ctx->r.w = cls;
        ctx->r.conn = conn;
        ctx->r.method = method;
        ctx->r.path = url;
        const char *proto = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-Proto");
        ctx->r.secure = proto && !strcasecmp(proto, "https");
        if (!strcmp(method, "POST")) {
            ctx->r.post = 1;
            const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
            int64_t n = 0;
            if (len && (parse_i64(len, &n) || n > WEB_MAX_BODY))
                return reply_text(&ctx->r, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %d bytes", WEB_MAX_BODY);
            const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
            if (!ct || strncasecmp(ct, MHD_HTTP_POST_ENCODING_FORM_URLENCODED,
                                   strlen(MHD_HTTP_POST_ENCODING_FORM_URLENCODED)))
                return reply_text(&ctx->r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                  "POST bodies are HTML forms (application/x-www-form-urlencoded)");
            ctx->pp = MHD_create_post_processor(conn, 1024, form_field, &ctx->r);
            if (!ctx->pp)
                return reply_text(&ctx->r, MHD_HTTP_BAD_REQUEST, "cannot read this form");
            return MHD_YES;
        }
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return reply_text(&ctx->r, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and POST");
        /* Answered on the next call, once MHD knows the request has no body:
         * answered now, the connection would not be kept alive. */
        return MHD_YES;
    }
    if (ctx->r.post && *upload_data_size) {
        ctx->body += *upload_data_size;
        if (ctx->body > WEB_MAX_BODY)
            ctx->too_big = 1;
        else if (MHD_post_process(ctx->pp, upload_data, *upload_data_size) != MHD_YES)
            ctx->r.form_bad = 1;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ctx->too_big)
        return reply_text(&ctx->r, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %d bytes", WEB_MAX_BODY);
    (void)version;
    enum MHD_Result rc = route(&ctx->r);
    web_db_give(ctx->r.w, ctx->r.db);
    ctx->r.db = NULL;
    return rc;
}

void web_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct conn_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    if (ctx->pp)
        MHD_destroy_post_processor(ctx->pp);
    web_db_give(ctx->r.w, ctx->r.db);
    free(ctx);
    *con_cls = NULL;
}
