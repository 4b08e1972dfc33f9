/* HTML building for dfew-web's pages: escaping, the page frame with its
 * navigation, CSRF fields, and database rows as an HTML table. Every value
 * from the database or a request goes through html_esc. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "web.h"

void html_esc(struct sbuf *b, const char *s)
{
    if (!s)
        return;
    for (; *s; s++) {
        switch (*s) {
        case '&': sbuf_add(b, "&amp;"); break;
        case '<': sbuf_add(b, "&lt;"); break;
        case '>': sbuf_add(b, "&gt;"); break;
        case '"': sbuf_add(b, "&quot;"); break;
        case '\'': sbuf_add(b, "&#39;"); break;
        default: sbuf_addc(b, *s);
        }
    }
}

void html_escf(struct sbuf *b, const char *fmt, ...)
{
    struct sbuf t = {0};
    va_list ap;
    va_start(ap, fmt);
    sbuf_vaddf(&t, fmt, ap);
    va_end(ap);
    html_esc(b, sbuf_str(&t));
    sbuf_free(&t);
}

void html_begin(struct sbuf *b, const struct req *r, const char *title)
{
    sbuf_add(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if (*r->csrf) {
        sbuf_add(b, "<meta name=\"csrf\" content=\"");
        html_esc(b, r->csrf);
        sbuf_add(b, "\">");
    }
    sbuf_add(b, "<title>");
    html_esc(b, title);
    sbuf_add(b, " - dfew</title><link rel=\"stylesheet\" href=\"/static/style.css\">"
                "<script src=\"/static/app.js\" defer></script></head><body><nav><b>dfew</b>");
    if (r->role == ROLE_ADMIN)
        sbuf_add(b, "<a href=\"/\">queue</a><a href=\"/movies\">movies</a><a href=\"/clips\">clips</a>"
                    "<a href=\"/dataset\">dataset</a><a href=\"/annotators\">annotators</a>"
                    "<a href=\"/runs\">training</a>");
    else if (r->role == ROLE_ANNOTATOR) {
        sbuf_add(b, "<a href=\"/annotate\">annotate</a><span class=\"who\">");
        html_esc(b, r->annotator);
        sbuf_add(b, "</span>");
    }
    if (r->role != ROLE_NONE) {
        sbuf_add(b, "<form method=\"post\" action=\"/logout\" class=\"logout\">");
        html_csrf(b, r);
        sbuf_add(b, "<button>sign out</button></form>");
    }
    sbuf_add(b, "</nav><main><h1>");
    html_esc(b, title);
    sbuf_add(b, "</h1>\n");
}

void html_end(struct sbuf *b)
{
    sbuf_add(b, "</main></body></html>\n");
}

void html_csrf(struct sbuf *b, const struct req *r)
{
    sbuf_add(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
    html_esc(b, r->csrf);
    sbuf_add(b, "\">");
}

static const struct {
    const char *column, *prefix;
} links[] = {
    {"clip_id", "/clip/"}, {"clip", "/clip/"}, {"movie_id", "/movie/"}, {"run_id", "/run/"}, {"run", "/run/"},
};

int html_query_table(struct sbuf *b, struct db *db, const char *sql, const char *const *binds, const char *empty)
{
    /* Not the statement cache: callers build some of these queries. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    for (int i = 0; binds && binds[i]; i++)
        sqlite3_bind_text(st, i + 1, binds[i], -1, SQLITE_TRANSIENT);
    int ncol = sqlite3_column_count(st), rows = 0, rc;
    const char *prefix[64] = {0};
    for (int c = 0; c < ncol && c < 64; c++)
        for (size_t k = 0; k < ARRAY_LEN(links); k++)
            if (!strcmp(sqlite3_column_name(st, c), links[k].column))
                prefix[c] = links[k].prefix;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!rows++) {
            sbuf_add(b, "<table><thead><tr>");
            for (int c = 0; c < ncol; c++) {
                sbuf_add(b, "<th>");
                html_esc(b, sqlite3_column_name(st, c));
                sbuf_add(b, "</th>");
            }
            sbuf_add(b, "</tr></thead><tbody>\n");
        }
        sbuf_add(b, "<tr>");
        for (int c = 0; c < ncol; c++) {
            int type = sqlite3_column_type(st, c);
            const char *v = (const char *)sqlite3_column_text(st, c);
            sbuf_add(b, type == SQLITE_INTEGER || type == SQLITE_FLOAT ? "<td class=\"n\">" : "<td>");
            if (type == SQLITE_FLOAT) {
                sbuf_addf(b, "%.4g", sqlite3_column_double(st, c));
            } else if (v && c < 64 && prefix[c] && type == SQLITE_INTEGER) {
                sbuf_addf(b, "<a href=\"%s%lld\">%lld</a>", prefix[c], (long long)sqlite3_column_int64(st, c),
                          (long long)sqlite3_column_int64(st, c));
            } else {
                html_esc(b, v);
            }
            sbuf_add(b, "</td>");
        }
        sbuf_add(b, "</tr>\n");
    }
    sqlite3_finalize(st);
    if (rows)
        sbuf_add(b, "</tbody></table>\n");
    else if (empty) {
        sbuf_add(b, "<p class=\"empty\">");
        html_esc(b, empty);
        sbuf_add(b, "</p>\n");
    }
    return rc == SQLITE_DONE ? rows : db_errno(rc);
}
