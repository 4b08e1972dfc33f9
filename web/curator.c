/* dfew-web's curator pages (admin token only): the queue with retry and
 * cancel (through lib/queue.c, as dfewctl does), movies, clips with
 * filters, one clip, the dataset summary (Table 2, Fleiss' kappa, folds),
 * annotators and training runs. Read with the public views of schema/;
 * every filter is checked against a fixed list or parsed as a number. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlsock_client.h"
#include "labels.h"
#include "queue.h"
#include "votes.h"
#include "web.h"

#define PAGE_ROWS 100
/* The release's split: what dfewctl uses when none is named (ctl/dataset.h DS_OFFICIAL_SPLIT). */
#define OFFICIAL_SPLIT "dfew"

/* s percent-encoded for a query string (all but letters, digits and -_.~). */
static void url_encode(struct sbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.~", *p))
            sbuf_addf(b, "%c", *p);
        else
            sbuf_addf(b, "%%%02X", *p);
}

/* The split whose folds the clip list shows, by the rule of dfewctl's
 * ds_split (ctl/dataset.c): the one named, else the official 'dfew' split
 * when there is one, else the only split. Fills *id and name (escaped for
 * HTML), and opts with an <option> per split (the named or chosen one
 * selected). The number of splits, with *id 0 when there is none, or several
 * and none is the official one (names then lists them); -ENOENT for an unknown name,
 * -EIO when the splits cannot be read. */
static int pick_split(struct db *db, const char *want, int64_t *id, struct sbuf *name, struct sbuf *opts,
                      struct sbuf *names)
{
    sqlite3_stmt *st = db_prepare(db, "SELECT id, name FROM splits ORDER BY name = '" OFFICIAL_SPLIT "' DESC, id");
    if (!st)
        return -EIO;
    int n = 0, rc;
    int64_t first = 0, named = 0;
    char first_name[1100] = "";
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t sid = sqlite3_column_int64(st, 0);
        const char *nm = (const char *)sqlite3_column_text(st, 1);
        if (!n++) {
            first = sid;
            snprintf(first_name, sizeof first_name, "%s", nm);
        }
        int sel = want ? !strcmp(nm, want) : 0;
        if (sel) {
            named = sid;
            html_esc(name, nm);
        }
        sbuf_add(opts, sel ? "<option selected>" : "<option>");
        html_esc(opts, nm);
        sbuf_add(opts, "</option>");
        sbuf_addf(names, "%s'", n > 1 ? ", " : "");
        html_esc(names, nm);
        sbuf_add(names, "'");
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return -EIO;
    if (want) {
        *id = named;
        return named ? n : -ENOENT;
    }
    *id = n == 1 || (n > 1 && !strcmp(first_name, OFFICIAL_SPLIT)) ? first : 0;
    if (*id)
        html_esc(name, first_name);
    return n;
}

/* A list of job rows with the buttons that apply to their state. */
static void job_table(struct sbuf *b, struct req *r, const char *sql, const char *empty)
{
    sqlite3_stmt *st = db_prepare(r->db, sql);
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        if (!n++)
            sbuf_add(b, "<table><thead><tr><th>job</th><th>kind</th><th>state</th><th>clip</th><th>movie</th>"
                        "<th>attempts</th><th>progress</th><th>error / message</th><th>updated</th><th></th></tr>"
                        "</thead><tbody>\n");
        long long id = sqlite3_column_int64(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 2);
        sbuf_addf(b, "<tr id=\"job-%lld\"><td class=\"n\">%lld</td><td>", id, id);
        html_esc(b, (const char *)sqlite3_column_text(st, 1));
        sbuf_add(b, "</td><td>");
        html_esc(b, state);
        sbuf_add(b, "</td><td class=\"n\">");
        if (sqlite3_column_type(st, 3) != SQLITE_NULL)
            sbuf_addf(b, "<a href=\"/clip/%lld\">%lld</a>", (long long)sqlite3_column_int64(st, 3),
                      (long long)sqlite3_column_int64(st, 3));
        sbuf_add(b, "</td><td class=\"n\">");
        if (sqlite3_column_type(st, 4) != SQLITE_NULL)
            sbuf_addf(b, "<a href=\"/movie/%lld\">%lld</a>", (long long)sqlite3_column_int64(st, 4),
                      (long long)sqlite3_column_int64(st, 4));
        sbuf_addf(b, "</td><td class=\"n\">%d/%d</td><td>", sqlite3_column_int(st, 5), sqlite3_column_int(st, 6));
        if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
            double p = sqlite3_column_double(st, 7);
            p = p < 0 ? 0 : p > 1 ? 1 : p;
            sbuf_addf(b, "<progress max=\"100\" value=\"%.0f\"></progress> %.0f%%", p * 100, p * 100);
        }
        sbuf_add(b, "</td><td>");
        html_esc(b, (const char *)sqlite3_column_text(st, 8));
        sbuf_add(b, "</td><td>");
        html_esc(b, (const char *)sqlite3_column_text(st, 9));
        sbuf_add(b, "</td><td>");
        enum job_state js;
        if (state && job_state_parse(state, &js) == 0) {
            if (js == JOB_DEAD || js == JOB_FAILED || js == JOB_CANCELLED) {
                sbuf_addf(b, "<form method=\"post\" action=\"/job/%lld/retry\" class=\"inline\">", id);
                html_csrf(b, r);
                sbuf_add(b, "<button>retry</button></form> ");
            }
            if (js == JOB_QUEUED || js == JOB_LEASED || js == JOB_FAILED) {
                sbuf_addf(b, "<form method=\"post\" action=\"/job/%lld/cancel\" class=\"inline\" "
                             "data-confirm=\"Cancel job %lld?\">", id, id);
                html_csrf(b, r);
                sbuf_add(b, "<button>cancel</button></form>");
            }
        }
        sbuf_add(b, "</td></tr>\n");
    }
    if (st)
        sqlite3_reset(st);
    if (n)
        sbuf_add(b, "</tbody></table>\n");
    else {
        sbuf_add(b, "<p class=\"empty\">");
        html_esc(b, empty);
        sbuf_add(b, "</p>");
    }
}

#define JOB_COLUMNS "id, kind, state, clip_id, movie_id, attempts, max_attempts, progress, " \
                    "coalesce(error, progress_msg, ''), strftime('%Y-%m-%d %H:%M:%S', updated_at, 'unixepoch') "

enum MHD_Result page_home(struct req *r)
{
    struct sbuf b = {0};
    html_begin(&b, r, "Queue");
    const char *msg = req_query(r, "msg");
    if (msg && (!strcmp(msg, "retried") || !strcmp(msg, "cancelled")))
        sbuf_addf(&b, "<p class=\"ok\" id=\"msg\">job %s</p>", msg);
    sbuf_add(&b, "<h2>Jobs per kind and state</h2>");
    html_query_table(&b, r->db,
                     "SELECT kind, sum(state = 'queued') AS queued, sum(state = 'leased') AS running, "
                     "sum(state = 'done') AS done, sum(state = 'failed') AS failed, sum(state = 'dead') AS dead, "
                     "sum(state = 'cancelled') AS cancelled, count(*) AS total FROM jobs GROUP BY kind ORDER BY kind",
                     NULL, "No jobs yet: dfewctl submit MOVIE queues some.");
    sbuf_add(&b, "<h2>Running</h2>");
    job_table(&b, r, "SELECT " JOB_COLUMNS "FROM jobs WHERE state = 'leased' ORDER BY id", "Nothing is running.");
    sbuf_add(&b, "<h2>Dead and failed (will retry)</h2>");
    job_table(&b, r, "SELECT " JOB_COLUMNS "FROM jobs WHERE state IN ('dead', 'failed') ORDER BY updated_at DESC "
                     "LIMIT 200", "No dead or failed jobs.");
    sbuf_add(&b, "<h2>Next in the queue</h2>");
    job_table(&b, r, "SELECT " JOB_COLUMNS "FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id LIMIT 20",
              "The queue is empty.");
    sbuf_add(&b, "<h2>Clips</h2>");
    html_query_table(&b, r->db, "SELECT state, count(*) AS clips FROM clips GROUP BY state ORDER BY state", NULL,
                     "No clips yet.");
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}

enum MHD_Result post_job(struct req *r, int64_t id, const char *action)
{
    int rc;
    enum job_state prev = JOB_QUEUED;
    char reply[128], cmd[64];
    if (!strcmp(action, "retry"))
        rc = queue_retry(r->db, id, "retried from dfew-web");
    else if (!strcmp(action, "cancel"))
        rc = queue_cancel(r->db, id, "cancelled from dfew-web", &prev);
    else
        return reply_text(r, MHD_HTTP_NOT_FOUND, "not found");
    if (rc == -ENOENT)
        return reply_error(r, MHD_HTTP_NOT_FOUND, "There is no job %lld.", (long long)id);
    if (rc == -EALREADY || rc == -EBUSY)
        return reply_error(r, MHD_HTTP_CONFLICT, "Job %lld is %s: nothing to %s.", (long long)id,
                           rc == -EBUSY ? "queued or running" : "already over", action);
    if (rc)
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "Job %lld could not be changed (%s): try again.",
                           (long long)id, strerror(-rc));
    /* The daemon (when up) starts the job now, or stops its worker. */
    if (prev == JOB_LEASED)
        snprintf(cmd, sizeof cmd, "cancel %lld", (long long)id);
    else
        snprintf(cmd, sizeof cmd, "wake");
    ctlsock_request(r->w->paths.sock, cmd, reply, sizeof reply);
    return reply_redirect(r, action[0] == 'r' ? "/?msg=retried" : "/?msg=cancelled", NULL);
}

/* A page that is one query's table. */
static enum MHD_Result table_page(struct req *r, const char *title, const char *sql, const char *empty)
{
    struct sbuf b = {0};
    html_begin(&b, r, title);
    html_query_table(&b, r->db, sql, NULL, empty);
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}

enum MHD_Result page_movies(struct req *r)
{
    return table_page(r, "Movies",
                      "SELECT movie_id, source, container, video_codec, width, height, round(avg_fps, 3) AS fps, "
                      "round(duration_s, 1) AS duration_s, frame_count, probe_state, clips, usable_clips, added "
                      "FROM movie_status ORDER BY movie_id LIMIT 2000",
                      "No movies yet: dfewctl submit MOVIE adds one.");
}

/* The start of one record's page: its title and its facts (sql, ?1 = the
 * id) as a table. -ENOENT (b freed) when there is no such record. */
static int record_page(struct req *r, struct sbuf *b, const char *kind, int64_t id, const char *sql,
                       const char *const *binds)
{
    char title[64];
    snprintf(title, sizeof title, "%s %lld", kind, (long long)id);
    html_begin(b, r, title);
    if (html_query_table(b, r->db, sql, binds, NULL) > 0)
        return 0;
    sbuf_free(b);
    return -ENOENT;
}

enum MHD_Result page_movie(struct req *r, int64_t id)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *binds[] = {ids, NULL};
    struct sbuf b = {0};
    if (record_page(r, &b, "Movie", id,
                    "SELECT source, sha256, size_bytes, container, video_codec, width, height, avg_fps, real_fps, "
                    "duration_s, rotation, frame_count, probe_state, probe_error, added FROM movie_status "
                    "WHERE movie_id = ?1",
                    binds))
        return reply_error(r, MHD_HTTP_NOT_FOUND, "There is no movie %lld.", (long long)id);
    sqlite3_stmt *st = db_prepare(r->db, "SELECT count(*) FROM shots WHERE movie_id = ?");
    int shots = 0;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        shots = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
        sqlite3_reset(st);
    }
    if (shots)
        sbuf_addf(&b, "<h2>Shots and chosen clips</h2><img class=\"sheet\" src=\"/media/movie/%lld/sheet.png\" "
                      "alt=\"shot sheet of movie %lld\">", (long long)id, (long long)id);
    else
        sbuf_add(&b, "<p class=\"empty\">No shots: this movie was not segmented (its clips came from a clip list, "
                     "or its segment job has not run).</p>");
    sbuf_add(&b, "<h2>Clips</h2>");
    html_query_table(&b, r->db,
                     "SELECT clip_id, round(start_s, 3) AS start_s, round(end_s, 3) AS end_s, duration_s, "
                     "duration_bucket, state, reason, frames_total, frames_face, round(face_ratio, 3) AS face_ratio "
                     "FROM clip_status WHERE movie_id = ?1 ORDER BY start_s",
                     binds, "This movie has no clips.");
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}

/* Sorting of the clip list: the parameter's values and their ORDER BY terms. */
static const struct {
    const char *name, *asc, *desc;
} sorts[] = {
    {"id", "c.id", "c.id DESC"},
    {"duration", "c.end_s - c.start_s, c.id", "c.end_s - c.start_s DESC, c.id DESC"}, /* index clips_duration */
    {"face_ratio", "c.face_ratio, c.id", "c.face_ratio DESC, c.id"},
    {"state", "c.state, c.id", "c.state DESC, c.id"},
    {"movie", "c.movie_id, c.start_s", "c.movie_id DESC, c.start_s"},
};

static int one_of(const char *v, const char *list)
{
    return v && *v && str_one_of(v, list);
}

static void select_box(struct sbuf *b, const char *name, const char *label, const char *cur, const char *list)
{
    sbuf_addf(b, "<label>%s<select name=\"%s\"><option value=\"\">any</option>", label, name);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save)) {
        sbuf_add(b, "<option");
        if (cur && !strcmp(cur, t))
            sbuf_add(b, " selected");
        sbuf_addf(b, ">%s</option>", t);
    }
    sbuf_add(b, "</select></label>");
}

/* The rows of the clip list (id, movie, state, duration, face ratio, reason,
 * fold) with each clip's votes and single label (votes_of_clips and
 * single_label: the clip_labels view's rule, for these clips only). */
static int clip_rows(struct sbuf *b, struct db *db, const char *sql, const char *const *binds)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    for (int i = 0; binds[i]; i++)
        sqlite3_bind_text(st, i + 1, binds[i], -1, SQLITE_TRANSIENT);
    int64_t ids[PAGE_ROWS];
    struct sbuf rows[PAGE_ROWS], tail[PAGE_ROWS];
    int n = 0, rc = SQLITE_DONE;
    while (n < PAGE_ROWS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        ids[n] = sqlite3_column_int64(st, 0);
        rows[n] = tail[n] = (struct sbuf){0};
        sbuf_addf(&rows[n], "<tr><td class=\"n\"><a href=\"/clip/%lld\">%lld</a></td><td class=\"n\">"
                            "<a href=\"/movie/%lld\">%lld</a></td><td>", (long long)ids[n], (long long)ids[n],
                  (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 1));
        html_esc(&rows[n], (const char *)sqlite3_column_text(st, 2));
        sbuf_add(&rows[n], "</td><td class=\"n\">");
        html_esc(&rows[n], (const char *)sqlite3_column_text(st, 3));
        sbuf_add(&rows[n], "</td><td class=\"n\">");
        if (sqlite3_column_type(st, 4) != SQLITE_NULL)
            sbuf_addf(&rows[n], "%.3f", sqlite3_column_double(st, 4));
        sbuf_add(&rows[n], "</td><td>");
        html_esc(&rows[n], (const char *)sqlite3_column_text(st, 5));
        sbuf_add(&rows[n], "</td>");
        sbuf_add(&tail[n], "<td class=\"n\">");
        html_esc(&tail[n], (const char *)sqlite3_column_text(st, 6));
        sbuf_add(&tail[n], "</td></tr>\n");
        n++;
    }
    sqlite3_finalize(st);
    int(*counts)[EMOTION_COUNT] = xcalloc((size_t)(n ? n : 1), sizeof *counts);
    int r = votes_threshold(db);
    int err = rc != SQLITE_ROW && rc != SQLITE_DONE ? db_errno(rc) : r < 0 ? r : votes_of_clips(db, ids, n, counts);
    if (!err && n) {
        sbuf_add(b, "<table id=\"clips\"><thead><tr><th>clip</th><th>movie</th><th>state</th><th>duration_s</th>"
                    "<th>face_ratio</th><th>reason</th><th>votes</th><th>label</th><th>fold</th></tr></thead><tbody>\n");
    } else if (!err) {
        sbuf_add(b, "<p class=\"empty\">No clips match.</p>");
    }
    for (int i = 0; i < n; i++) {
        int total = 0;
        for (int k = 0; k < EMOTION_COUNT; k++)
            total += counts[i][k];
        int label = total ? single_label(counts[i], r) : 0;
        if (!err)
            sbuf_addf(b, "%s<td class=\"n\">%d</td><td>%s</td>%s", sbuf_str(&rows[i]), total,
                      !total ? "" : label ? emotion_name(label) : "ambiguous", sbuf_str(&tail[i]));
        sbuf_free(&rows[i]);
        sbuf_free(&tail[i]);
    }
    if (!err && n)
        sbuf_add(b, "</tbody></table>\n");
    free(counts);
    return err ? err : n;
}

enum MHD_Result page_clips(struct req *r)
{
    static const char states[] = "pending|usable|unusable|failed";
    static const char labels_list[] = "happy|sad|neutral|angry|surprise|disgust|fear|ambiguous|unlabelled";
    static const char buckets[] = "0-2s|2-5s|5s+";
    const char *state = req_query(r, "state"), *label = req_query(r, "label"), *bucket = req_query(r, "bucket");
    const char *fold = req_query(r, "fold"), *sort = req_query(r, "sort"), *dir = req_query(r, "dir");
    const char *page_s = req_query(r, "page");
    int bad = (state && *state && !one_of(state, states)) || (label && *label && !one_of(label, labels_list)) ||
              (bucket && *bucket && !one_of(bucket, buckets)) || (dir && *dir && !one_of(dir, "asc|desc"));
    int64_t fold_n = fold && *fold ? parse_id(fold) : 0, page = page_s && *page_s ? parse_id(page_s) : 1;
    size_t si = 0;
    if (sort && *sort) {
        while (si < ARRAY_LEN(sorts) && strcmp(sorts[si].name, sort))
            si++;
        bad |= si == ARRAY_LEN(sorts);
    }
    if (bad || (fold && *fold && (!fold_n || fold_n > 100)) || !page || page > 100000)
        return reply_error(r, MHD_HTTP_BAD_REQUEST,
                           "Bad filter: state is one of %s; label one of %s; bucket one of %s; fold a number; sort one "
                           "of id, duration, face_ratio, state, movie; dir asc or desc; page a number from 1.",
                           states, labels_list, buckets);
    const char *split = req_query(r, "split");
    int64_t split_id = 0;
    struct sbuf split_name = {0}, split_opts = {0}, split_names = {0};
    int src = split && strlen(split) > 1024 ? -ENOENT
                                            : pick_split(r->db, split && *split ? split : NULL, &split_id, &split_name,
                                                         &split_opts, &split_names);
    if (src < 0 || (fold_n && !split_id)) {
        enum MHD_Result res =
            src == -EIO ? reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "The splits cannot be read now: try again.")
            : src < 0   ? reply_error(r, MHD_HTTP_BAD_REQUEST, "There is no such split: the splits are %s "
                                      "(dfewctl folds list).",
                                      *sbuf_str(&split_names) ? sbuf_str(&split_names) : "none")
            : src == 0
                ? reply_error(r, MHD_HTTP_BAD_REQUEST, "There are no folds yet to filter by: dfewctl folds make.")
                : reply_error(r, MHD_HTTP_BAD_REQUEST, "A fold of which split? There are several (%s) and none is the "
                              "official '" OFFICIAL_SPLIT "' one: pick one with split=NAME.", sbuf_str(&split_names));
        sbuf_free(&split_name);
        sbuf_free(&split_opts);
        sbuf_free(&split_names);
        return res;
    }
    int desc = dir && !strcmp(dir, "desc");
    char offset[32], fold_s[32], split_s[32];
    snprintf(split_s, sizeof split_s, "%lld", (long long)split_id);
    snprintf(offset, sizeof offset, "%lld", (long long)((page - 1) * PAGE_ROWS));
    snprintf(fold_s, sizeof fold_s, "%lld", (long long)fold_n);
    int label_id = label && *label && strcmp(label, "ambiguous") && strcmp(label, "unlabelled") ? emotion_parse(label)
                                                                                                  : 0;
    char label_s[16];
    snprintf(label_s, sizeof label_s, "%s", !label || !*label ? "" : label_id ? "single" : label);
    char label_id_s[8];
    snprintf(label_id_s, sizeof label_id_s, "%d", label_id);
    /* ?1 state, ?2 label kind (''/single/ambiguous/unlabelled), ?3 label id, ?4 bucket, ?5 fold, ?6 offset,
     * ?7 split id */
    const char *binds[] = {state ? state : "", label_s, label_id_s, bucket ? bucket : "", fold_s, offset, split_s,
                           NULL};
    struct sbuf sql = {0};
    /* Only the filters in use go into the query (fixed fragments; every
     * value is a bound parameter): a label filter reads the clip_labels
     * view, which costs a pass over all votes. */
    sbuf_add(&sql, "WITH sp AS (SELECT CAST(?7 AS INTEGER) AS id), "
                   "page AS (SELECT c.id, c.movie_id, c.state, c.start_s, c.end_s, c.duration_known, c.face_ratio, "
                   "c.reason FROM clips c WHERE ?1 = ?1 AND ?2 = ?2 AND ?3 = ?3 AND ?4 = ?4 AND ?5 = ?5");
    if (state && *state)
        sbuf_add(&sql, " AND c.state = ?1");
    if (bucket && *bucket)
        sbuf_add(&sql, " AND c.duration_known AND CASE WHEN c.end_s - c.start_s < 2 THEN '0-2s' "
                       "WHEN c.end_s - c.start_s < 5 THEN '2-5s' ELSE '5s+' END = ?4");
    if (fold_n)
        sbuf_add(&sql, " AND c.id IN (SELECT clip_id FROM fold_members WHERE split_id = (SELECT id FROM sp) "
                       "AND fold = CAST(?5 AS INTEGER))");
    if (!strcmp(label_s, "unlabelled"))
        sbuf_add(&sql, " AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.clip_id = c.id)");
    else if (!strcmp(label_s, "single"))
        sbuf_add(&sql, " AND c.id IN (SELECT clip_id FROM clip_labels WHERE label = CAST(?3 AS INTEGER))");
    else if (!strcmp(label_s, "ambiguous"))
        sbuf_add(&sql, " AND c.id IN (SELECT clip_id FROM clip_labels WHERE label IS NULL)");
    sbuf_add(&sql, " ORDER BY ");
    sbuf_add(&sql, desc ? sorts[si].desc : sorts[si].asc);
    sbuf_addf(&sql, " LIMIT %d OFFSET CAST(?6 AS INTEGER)) "
                    "SELECT p.id, p.movie_id, p.state, CASE WHEN p.duration_known THEN "
                    "round(p.end_s - p.start_s, 2) END, p.face_ratio, coalesce(p.reason, ''), "
                    "(SELECT fold FROM fold_members f WHERE f.clip_id = p.id AND f.split_id = (SELECT id FROM sp)) "
                    "FROM page p",
              PAGE_ROWS);
    struct sbuf b = {0};
    html_begin(&b, r, "Clips");
    sbuf_add(&b, "<form method=\"get\" action=\"/clips\" class=\"filters\">");
    select_box(&b, "state", "state", state, states);
    select_box(&b, "label", "label", label, labels_list);
    select_box(&b, "bucket", "duration", bucket, buckets);
    sbuf_add(&b, "<label>fold<input name=\"fold\" size=\"3\" inputmode=\"numeric\" value=\"");
    if (fold_n)
        sbuf_addf(&b, "%lld", (long long)fold_n);
    sbuf_add(&b, "\"></label>");
    if (*sbuf_str(&split_opts))
        sbuf_addf(&b, "<label>split<select name=\"split\"><option value=\"\">%s</option>%s</select></label>",
                  split_id && !(split && *split) ? "default" : "pick one", sbuf_str(&split_opts));
    select_box(&b, "sort", "sort by", sort, "id|duration|face_ratio|state|movie");
    select_box(&b, "dir", "order", dir, "asc|desc");
    sbuf_add(&b, "<button>show</button></form>");
    if (split_id)
        sbuf_addf(&b, "<p id=\"split\">fold: of split <b class=\"split\">%s</b>%s</p>", sbuf_str(&split_name),
                  split && *split ? "" : src > 1 ? " (the official one; pick another with the split box)"
                                                                   : " (the only one)");
    else if (src > 1)
        sbuf_addf(&b, "<p id=\"split\">fold: none shown: there are several splits (%s) and none is the official '"
                      OFFICIAL_SPLIT "' one; pick one with the split box.</p>", sbuf_str(&split_names));
    int n = clip_rows(&b, r->db, sbuf_str(&sql), binds);
    sbuf_free(&sql);
    sbuf_free(&split_name);
    sbuf_free(&split_opts);
    sbuf_free(&split_names);
    if (n < 0) {
        sbuf_free(&b);
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "The clips cannot be read now: try again.");
    }
    /* Pager links keep the filters (each value was checked above). */
    struct sbuf q = {0};
    const char *keys[] = {"state", "label", "bucket", "sort", "dir"}, *vals[] = {state, label, bucket, sort, dir};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (vals[i] && *vals[i])
            sbuf_addf(&q, "&amp;%s=%s", keys[i], strcmp(vals[i], "5s+") ? vals[i] : "5s%2B");
    if (fold_n)
        sbuf_addf(&q, "&amp;fold=%lld", (long long)fold_n);
    if (split && *split) {
        sbuf_add(&q, "&amp;split=");
        url_encode(&q, split);
    }
    sbuf_add(&b, "<p class=\"pager\">");
    if (page > 1)
        sbuf_addf(&b, "<a href=\"/clips?page=%lld%s\">previous</a>", (long long)page - 1, sbuf_str(&q));
    sbuf_addf(&b, "page %lld", (long long)page);
    if (n == PAGE_ROWS)
        sbuf_addf(&b, "<a href=\"/clips?page=%lld%s\" class=\"next\">next</a>", (long long)page + 1,
                  sbuf_str(&q));
    sbuf_add(&b, "</p>");
    sbuf_free(&q);
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}

enum MHD_Result page_clip(struct req *r, int64_t id)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *binds[] = {ids, NULL};
    struct sbuf b = {0};
    if (record_page(r, &b, "Clip", id,
                    "SELECT s.movie_id, s.movie, coalesce(c.name, '') AS name, round(s.start_s, 3) AS start_s, "
                    "round(s.end_s, 3) AS end_s, s.duration_bucket, s.state, coalesce(s.reason, '') AS reason, "
                    "s.frames_total, s.frames_face, round(s.face_ratio, 4) AS face_ratio, s.job_id, s.job_state "
                    "FROM clip_status s JOIN clips c ON c.id = s.clip_id WHERE s.clip_id = ?1",
                    binds))
        return reply_error(r, MHD_HTTP_NOT_FOUND, "There is no clip %lld.", (long long)id);
    sbuf_add(&b, "<div class=\"clipview\"><div><h2>Aligned frames</h2><div class=\"anim\" data-fps=\"8\" id=\"anim\">");
    sqlite3_stmt *st = db_prepare(r->db, "SELECT coalesce(out_frames, 16), output_dir IS NOT NULL, "
                                         "duration_known FROM clips WHERE id = ?");
    int frames = 0, has_out = 0, has_movie = 0;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            frames = sqlite3_column_int(st, 0);
            has_out = sqlite3_column_int(st, 1);
            has_movie = sqlite3_column_int(st, 2);
        }
        sqlite3_reset(st);
    }
    for (int i = 1; has_out && i <= frames && i <= 64; i++)
        sbuf_addf(&b, "<img src=\"/media/clip/%lld/frame/%d\" alt=\"frame %d\">", (long long)id, i, i);
    sbuf_add(&b, "</div></div>");
    if (has_movie)
        sbuf_addf(&b, "<div><h2>Footage</h2><video src=\"/media/clip/%lld/preview.mp4\" controls muted loop "
                      "preload=\"none\" width=\"480\"></video></div>", (long long)id);
    sbuf_add(&b, "</div>");
    sbuf_add(&b, "<h2>Votes</h2>");
    int counts[1][EMOTION_COUNT], total = 0, thr = votes_threshold(r->db);
    if (thr >= 0 && votes_of_clips(r->db, &id, 1, counts) == 0) {
        sbuf_add(&b, "<table id=\"votes\"><thead><tr>");
        for (int e = 1; e <= EMOTION_COUNT; e++)
            sbuf_addf(&b, "<th>%s</th>", emotion_name(e));
        sbuf_add(&b, "<th>votes</th><th>single label</th></tr></thead><tbody><tr>");
        for (int k = 0; k < EMOTION_COUNT; k++) {
            sbuf_addf(&b, "<td class=\"n\">%d</td>", counts[0][k]);
            total += counts[0][k];
        }
        int label = total ? single_label(counts[0], thr) : 0;
        sbuf_addf(&b, "<td class=\"n\">%d</td><td class=\"label\">%s</td></tr></tbody></table><p>single label: "
                      "more than r = %d votes for one emotion</p>", total, !total ? "(no votes yet)" : label ? emotion_name(label)
                                                                                            : "ambiguous", thr);
    }
    html_query_table(&b, r->db,
                     "SELECT v.annotator, e.name AS emotion, coalesce(v.source, '') AS source, "
                     "strftime('%Y-%m-%d %H:%M:%S', v.added_at, 'unixepoch') AS added "
                     "FROM votes v JOIN emotions e ON e.id = v.emotion WHERE v.clip_id = ?1 ORDER BY v.added_at",
                     binds, NULL);
    sbuf_add(&b, "<h2>Folds</h2>");
    html_query_table(&b, r->db, "SELECT split, fold, label_name AS label FROM fold_clips WHERE clip_id = ?1", binds,
                     "In no split.");
    sbuf_addf(&b, "<h2>Contact sheet</h2><img class=\"sheet\" src=\"/media/clip/%lld/sheet.png\" "
                  "alt=\"contact sheet of clip %lld\">", (long long)id, (long long)id);
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}

static void kappa_row(struct sbuf *b, const char *what, const struct kappa_result *k, int rc)
{
    sbuf_addf(b, "<tr><td>%s</td><td class=\"n\">%d</td><td class=\"n\">%ld</td>", what, k->subjects, k->ratings);
    if (rc)
        sbuf_add(b, "<td></td><td></td><td class=\"n\">-</td><td>undefined</td></tr>");
    else
        sbuf_addf(b, "<td class=\"n\">%.3f</td><td class=\"n\">%.3f</td><td class=\"n kappa\">%.3f</td><td>%s</td>"
                     "</tr>", k->pbar, k->pe, k->kappa, kappa_band(k->kappa));
}

enum MHD_Result page_dataset(struct req *r)
{
    struct table2 t;
    struct votes_kappa k;
    if (votes_table2(r->db, &t) || votes_kappa(r->db, &k))
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "The labels cannot be read now: try again.");
    struct sbuf b = {0};
    html_begin(&b, r, "Dataset");
    sbuf_add(&b, "<h2>Clips</h2>");
    html_query_table(&b, r->db,
                     "SELECT (SELECT count(*) FROM movies) AS movies, count(*) AS clips, sum(state = 'usable') AS usable, "
                     "sum(state = 'unusable') AS unusable, sum(state = 'pending') AS pending, "
                     "sum(state = 'failed') AS failed, (SELECT count(*) FROM votes) AS votes FROM clips",
                     NULL, NULL);
    sbuf_add(&b, "<h2>Votes per clip</h2>");
    html_query_table(&b, r->db,
                     "SELECT k.votes, count(*) AS clips FROM clip_vote_counts k JOIN clips c ON c.id = k.clip_id "
                     "WHERE c.state = 'usable' GROUP BY k.votes ORDER BY k.votes",
                     NULL, "No usable clips.");
    sbuf_addf(&b, "<h2>Single-labelled clips per emotion and duration (the paper's Table 2; r = %d)</h2>"
                  "<table id=\"table2\"><thead><tr><th>duration</th>", t.threshold);
    for (int e = 1; e <= EMOTION_COUNT; e++)
        sbuf_addf(&b, "<th>%s</th>", emotion_name(e));
    sbuf_add(&b, "<th>total</th><th>%</th></tr></thead><tbody>");
    for (int i = 0; i < TABLE2_BUCKETS; i++) {
        if (i == TABLE2_BUCKETS - 1 && !t.row[i])
            continue;
        sbuf_addf(&b, "<tr><td>%s</td>", table2_bucket_names[i]);
        for (int e = 0; e < EMOTION_COUNT; e++)
            sbuf_addf(&b, "<td class=\"n\">%ld</td>", t.n[i][e]);
        sbuf_addf(&b, "<td class=\"n\">%ld</td><td class=\"n\">%.2f</td></tr>", t.row[i],
                  t.total ? 100.0 * (double)t.row[i] / (double)t.total : 0);
    }
    sbuf_add(&b, "<tr><th>total</th>");
    for (int e = 0; e < EMOTION_COUNT; e++)
        sbuf_addf(&b, "<td class=\"n\">%ld</td>", t.col[e]);
    sbuf_addf(&b, "<td class=\"n\">%ld</td><td class=\"n\">%.2f</td></tr><tr><th>%%</th>", t.total,
              t.total ? 100.0 : 0);
    for (int e = 0; e < EMOTION_COUNT; e++)
        sbuf_addf(&b, "<td class=\"n\">%.2f</td>", t.total ? 100.0 * (double)t.col[e] / (double)t.total : 0);
    sbuf_add(&b, "<td></td><td></td></tr></tbody></table>");
    sbuf_add(&b, "<h2>Agreement (Fleiss' kappa)</h2><table id=\"kappa\"><thead><tr><th>clips</th><th>count</th>"
                 "<th>votes</th><th>P</th><th>Pe</th><th>kappa</th><th>agreement</th></tr></thead><tbody>");
    kappa_row(&b, "all annotated", &k.all, k.rc_all);
    kappa_row(&b, "single-labelled", &k.single, k.rc_single);
    sbuf_add(&b, "</tbody></table>");
    sbuf_add(&b, "<h2>Folds</h2>");
    html_query_table(&b, r->db,
                     "SELECT split, fold, clips, happy, sad, neutral, angry, surprise, disgust, fear, movies "
                     "FROM fold_summary ORDER BY split, fold",
                     NULL, "No folds yet: dfewctl folds make --k 5 makes them.");
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}

enum MHD_Result page_annotators(struct req *r)
{
    struct sbuf b = {0};
    html_begin(&b, r, "Annotators");
    char max[16];
    snprintf(max, sizeof max, "%d", r->w->max_votes);
    const char *binds[] = {max, NULL};
    sbuf_addf(&b, "<p>Each clip gets at most %d votes ([labels] annotators_per_clip). "
                  "<code>dfewctl annotators add NAME</code> makes a personal link.</p>", r->w->max_votes);
    html_query_table(&b, r->db,
                     "SELECT name, votes, skipped, coalesce(last_vote, '') AS last_vote, created, "
                     "CASE disabled WHEN 1 THEN 'disabled' ELSE '' END AS status FROM annotator_progress ORDER BY name",
                     NULL, "No annotators yet.");
    sbuf_add(&b, "<h2>Clips still needing votes</h2>");
    html_query_table(&b, r->db,
                     "SELECT count(*) AS clips, coalesce(sum(?1 - k.votes), 0) AS votes_missing "
                     "FROM clip_vote_counts k JOIN clips c ON c.id = k.clip_id "
                     "WHERE c.state = 'usable' AND k.votes < CAST(?1 AS INTEGER)",
                     binds, NULL);
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}

enum MHD_Result page_runs(struct req *r)
{
    return table_page(r, "Training runs", "SELECT * FROM run_summary ORDER BY run_id DESC LIMIT 500",
                      "No training runs yet: dfewctl train --split NAME starts one.");
}

enum MHD_Result page_run(struct req *r, int64_t id)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *binds[] = {ids, NULL};
    struct sbuf b = {0};
    if (record_page(r, &b, "Run", id,
                    "SELECT split, folds, model, loss, lambda, epochs, batch, lr, backend, "
                    "strftime('%Y-%m-%d %H:%M', created_at, 'unixepoch') AS created FROM runs WHERE id = ?1",
                    binds))
        return reply_error(r, MHD_HTTP_NOT_FOUND, "There is no run %lld.", (long long)id);
    sbuf_add(&b, "<h2>Per fold (recall per class, UAR, WAR)</h2>");
    html_query_table(&b, r->db, "SELECT * FROM fold_metrics WHERE run_id = ?1 ORDER BY fold", binds,
                     "No fold has finished yet.");
    sbuf_add(&b, "<h2>Folds' jobs</h2>");
    html_query_table(&b, r->db,
                     "SELECT f.fold, f.job_id, j.state, f.backend, f.device, f.epochs_done, round(f.final_loss, 4) "
                     "AS final_loss, round(f.train_s, 1) AS train_s FROM run_folds f LEFT JOIN jobs j "
                     "ON j.id = f.job_id WHERE f.run_id = ?1 ORDER BY f.fold",
                     binds, NULL);
    sbuf_add(&b, "<h2>Confusion matrix (rows: label, columns: prediction; pooled over folds)</h2>");
    html_query_table(&b, r->db,
                     "SELECT label_name AS label, happy, sad, neutral, angry, surprise, disgust, fear, clips "
                     "FROM confusion WHERE run_id = ?1 AND fold IS NULL ORDER BY label",
                     binds, "No predictions yet.");
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}
