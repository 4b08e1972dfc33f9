/* dfew-web's shared pieces: the server state (home, config, tokens, a pool
 * of database connections), one request as the handlers see it (who asks,
 * its form fields) and the helpers every page uses (HTML escaping and
 * layout, replies, strict parameter parsing). The HTTP protocol itself is
 * libmicrohttpd's; this is not a parser of it. */
#ifndef DFEW_WEB_H
#define DFEW_WEB_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "paths.h"
#include "util.h"
#include "webtoken.h"

#define WEB_DB_POOL 8         /* database connections (one per busy request) */
#define WEB_MAX_FIELDS 8      /* form fields a POST may carry */
#define WEB_MAX_FIELD 256     /* bytes of one form value */
#define WEB_MAX_BODY 4096     /* bytes of a POST body */
#define WEB_ASSIGN_S 600.0    /* how long a clip handed to an annotator is held for them */

struct assignment {
    int64_t annotator_id, clip_id;
    double until;
};

struct web {
    struct dfew_paths paths;
    struct dfew_config cfg;
    char admin_token[WEB_TOKEN_LEN + 1];
    char secret[WEB_TOKEN_LEN + 1]; /* per process: CSRF tokens are derived from it */
    char *ctl_path;                 /* dfewctl, for contact sheets */
    char *cache_dir;                /* HOME/web-cache */
    int max_votes;                  /* [labels] annotators_per_clip */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct db *pool[WEB_DB_POOL];
    int pool_used[WEB_DB_POOL];
    pthread_mutex_t gen_mu;         /* one preview or sheet is made at a time */
    pthread_mutex_t assign_mu;
    struct assignment *assign;
    int nassign, cap_assign;
};

enum role { ROLE_NONE, ROLE_ANNOTATOR, ROLE_ADMIN };

struct form_field {
    char key[32];
    char val[WEB_MAX_FIELD + 1];
    size_t len;
};

struct req {
    struct web *w;
    struct MHD_Connection *conn;
    const char *method, *path;
    int post;
    enum role role;
    int64_t annotator_id;
    int revoked; /* the token is a disabled annotator's (dfewctl annotators disable) */
    char annotator[130];
    char csrf[65];           /* the CSRF token of this session ("" without one) */
    int secure;              /* the client reached us over TLS (a proxy said so) */
    struct db *db;           /* taken from the pool for this request */
    struct form_field form[WEB_MAX_FIELDS];
    int nform;
    int form_bad;            /* too many or too long fields */
};

/* Database connections: one per request. NULL when none can be opened. */
struct db *web_db_take(struct web *w);
void web_db_give(struct web *w, struct db *db);

/* Form field / query parameter lookup (NULL when absent). */
const char *req_form(const struct req *r, const char *key);
const char *req_query(const struct req *r, const char *key);
/* Strict parsing of an id (1 .. 2^53) from a parameter; 0 when absent or bad. */
int64_t parse_id(const char *s);

/* HTML building: escape text for element content and attribute values. */
void html_esc(struct sbuf *b, const char *s);
void html_escf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The page frame: head (title, our CSS and JS), the navigation for the
 * viewer's role, the CSRF token in a meta tag. html_end closes it. */
void html_begin(struct sbuf *b, const struct req *r, const char *title);
void html_end(struct sbuf *b);
/* A hidden CSRF field for a form. */
void html_csrf(struct sbuf *b, const struct req *r);
/* Runs sql (text binds ?1.. in order, NULL-terminated list) and appends an
 * HTML table of the rows with the column names as header. Columns named
 * clip_id / movie_id / job_id / run_id become links to their pages. Returns
 * the row count or a negative errno. */
int html_query_table(struct sbuf *b, struct db *db, const char *sql, const char *const *binds, const char *empty);

/* Replies. Each queues a response on the connection. */
enum MHD_Result reply_html(struct req *r, unsigned status, struct sbuf *body);
enum MHD_Result reply_text(struct req *r, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
enum MHD_Result reply_error(struct req *r, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
enum MHD_Result reply_redirect(struct req *r, const char *location, const char *cookie);
/* A file: only ever a path the server built from a database record. Honours
 * a single "Range: bytes=a-b" (video seeking). */
enum MHD_Result reply_file(struct req *r, const char *path, const char *ctype, int cache);
enum MHD_Result reply_static(struct req *r, const char *data, size_t len, const char *ctype);

/* Pages (annotate.c, curator.c, media.c). Each returns the queued reply. */
enum MHD_Result page_annotate(struct req *r);
enum MHD_Result post_vote(struct req *r);
enum MHD_Result page_home(struct req *r);
enum MHD_Result page_movies(struct req *r);
enum MHD_Result page_movie(struct req *r, int64_t id);
enum MHD_Result page_clips(struct req *r);
enum MHD_Result page_clip(struct req *r, int64_t id);
enum MHD_Result page_dataset(struct req *r);
enum MHD_Result page_runs(struct req *r);
enum MHD_Result page_run(struct req *r, int64_t id);
enum MHD_Result page_annotators(struct req *r);
enum MHD_Result post_job(struct req *r, int64_t id, const char *action);
/* /media/clip/ID/{preview.mp4,frame/N,sheet.png}, /media/movie/ID/sheet.png */
enum MHD_Result media_clip(struct req *r, int64_t id, const char *what);
enum MHD_Result media_movie(struct req *r, int64_t id, const char *what);

/* The H.264 MP4 preview of a clip's frame range (preview.c): movie from
 * start_s to end_s, scaled to at most max_h pixels high, written atomically
 * to out. 0 or a negative errno with err. */
int preview_make(const char *movie, double start_s, double end_s, int max_h, const char *out, char *err,
                 size_t errlen);

/* libmicrohttpd's request and completion callbacks (server.c); cls is the struct web. */
enum MHD_Result web_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
/* Percent-decoding of paths and query values for MHD (an escaped NUL becomes 0x7f). */
size_t web_unescape(void *cls, struct MHD_Connection *c, char *s);
void web_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);

/* Static files compiled in (assets.c). */
extern const char web_css[], web_js[];
extern const size_t web_css_len, web_js_len;

#endif
