/* dfewctl helpers: opening the home and database, talking to dfewd over its
 * control socket, and printing rows as tables or JSON (see ctl.h). */
#include "ctl.h"
#include "ctlsock_client.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

int ctl_common_opt(struct ctl *c, int opt, const char *arg)
{
    if (opt == 1000) {
        c->home_opt = arg;
        return 1;
    }
    if (opt == 1001) {
        c->json = 1;
        return 1;
    }
    return 0;
}

int ctl_simple_opts(struct ctl *c, int argc, char **argv, const char *usage_text)
{
    static const struct option opts[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 'h') {
            printf("%s", usage_text);
            return 0;
        }
        return 2;
    }
    return -1;
}

int ctl_open(struct ctl *c, int flags)
{
    char err[1024];
    if (!c->paths.home && paths_init(&c->paths, c->home_opt, flags & CTL_CREATE, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", c->prog, err);
        return 1;
    }
    if (!c->have_cfg) {
        config_defaults(&c->cfg);
        c->have_cfg = 1;
        if (config_load(c->paths.conf, &c->cfg, err, sizeof err)) {
            if (flags & CTL_NEED_CONFIG) {
                fprintf(stderr, "%s: %s\n", c->prog, err);
                return 1;
            }
            fprintf(stderr, "%s: warning: %s (using the defaults)\n", c->prog, err);
            config_free(&c->cfg);
            config_defaults(&c->cfg);
        }
    }
    if (!c->db && db_open(c->paths.db, -1, 30000, &c->db, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", c->prog, err);
        return 1;
    }
    return 0;
}

void ctl_close(struct ctl *c)
{
    db_close(c->db);
    c->db = NULL;
    if (c->have_cfg)
        config_free(&c->cfg);
    c->have_cfg = 0;
    paths_free(&c->paths);
}

int ctl_request(struct ctl *c, const char *req, char *reply, size_t len)
{
    return c->paths.home ? ctlsock_request(c->paths.sock, req, reply, len) : -ENOENT;
}

int ctl_wake(struct ctl *c)
{
    char reply[64];
    return ctl_request(c, "wake", reply, sizeof reply) == 0;
}

static sqlite3_stmt *prepare_bound(struct ctl *c, const char *sql, const char *const *binds)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: query failed: %s\n", c->prog, db_errmsg(c->db));
        return NULL;
    }
    for (int i = 0; binds && binds[i]; i++)
        sqlite3_bind_text(st, i + 1, binds[i], -1, SQLITE_TRANSIENT);
    return st;
}

static void add_json_value(struct sbuf *b, sqlite3_stmt *st, int col)
{
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL: sbuf_add(b, "null"); break;
    case SQLITE_INTEGER: sbuf_addf(b, "%lld", (long long)sqlite3_column_int64(st, col)); break;
    case SQLITE_FLOAT: sbuf_addf(b, "%.17g", sqlite3_column_double(st, col)); break;
    default: {
        const char *name = sqlite3_column_name(st, col);
        const char *v = (const char *)sqlite3_column_text(st, col);
        /* Columns holding JSON documents are embedded, not quoted. */
        if (name && (!strcmp(name, "args") || !strcmp(name, "result")) && v && (*v == '{' || *v == '['))
            sbuf_add(b, v);
        else
            sbuf_add_json_str(b, v);
    }
    }
}

int ctl_query_json(struct ctl *c, struct sbuf *b, const char *sql, const char *const *binds)
{
    sqlite3_stmt *st = prepare_bound(c, sql, binds);
    if (!st)
        return -EIO;
    int n = 0, rc, ncol = sqlite3_column_count(st);
    sbuf_addc(b, '[');
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sbuf_add(b, n++ ? ",{" : "{");
        for (int i = 0; i < ncol; i++) {
            if (i)
                sbuf_addc(b, ',');
            sbuf_add_json_str(b, sqlite3_column_name(st, i));
            sbuf_addc(b, ':');
            add_json_value(b, st, i);
        }
        sbuf_addc(b, '}');
    }
    sbuf_addc(b, ']');
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : db_errno(rc);
}

/* Text of a cell for a table: numbers trimmed, NULL as "-". */
static char *cell_text(sqlite3_stmt *st, int col)
{
    struct sbuf b = {0};
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL: sbuf_add(&b, "-"); break;
    case SQLITE_FLOAT: sbuf_addf(&b, "%.6g", sqlite3_column_double(st, col)); break;
    default: {
        const char *v = (const char *)sqlite3_column_text(st, col);
        /* One line per row: newlines in messages become spaces. */
        for (const char *p = v; p && *p; p++)
            sbuf_addc(&b, *p == '\n' || *p == '\t' ? ' ' : *p);
    }
    }
    return sbuf_take(&b);
}

static void print_cell(const char *t, int width, int last)
{
    if (last)
        printf("%s\n", t);
    else
        printf("%-*s  ", width, t);
}

int ctl_print_query(struct ctl *c, const char *sql, const char *const *binds, const char *empty_msg)
{
    if (c->json) {
        struct sbuf b = {0};
        int n = ctl_query_json(c, &b, sql, binds);
        if (n >= 0)
            printf("%s\n", sbuf_str(&b));
        sbuf_free(&b);
        return n;
    }
    sqlite3_stmt *st = prepare_bound(c, sql, binds);
    if (!st)
        return -EIO;
    int ncol = sqlite3_column_count(st), nrows = 0, cap = 0, rc;
    char **cells = NULL;
    size_t *width = xcalloc((size_t)ncol, sizeof *width);
    for (int i = 0; i < ncol; i++)
        width[i] = strlen(sqlite3_column_name(st, i));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nrows == cap) {
            cap = cap ? cap * 2 : 32;
            cells = xrealloc(cells, (size_t)cap * (size_t)ncol * sizeof *cells);
        }
        for (int i = 0; i < ncol; i++) {
            char *t = cell_text(st, i);
            size_t len = strlen(t);
            if (len > 80) {
                t[77] = '.';
                t[78] = '.';
                t[79] = '.';
                t[80] = '\0';
                len = 80;
            }
            if (len > width[i])
                width[i] = len;
            cells[(size_t)nrows * (size_t)ncol + (size_t)i] = t;
        }
        nrows++;
    }
    if (nrows == 0 && empty_msg) {
        printf("%s\n", empty_msg);
    } else if (nrows > 0) {
        for (int i = 0; i < ncol; i++)
            print_cell(sqlite3_column_name(st, i), (int)width[i], i + 1 == ncol);
        for (int r = 0; r < nrows; r++)
            for (int i = 0; i < ncol; i++) {
                print_cell(cells[(size_t)r * (size_t)ncol + (size_t)i], (int)width[i], i + 1 == ncol);
            }
    }
    for (int k = 0; k < nrows * ncol; k++)
        free(cells[k]);
    free(cells);
    free(width);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? nrows : db_errno(rc);
}

int ctl_print_record(struct ctl *c, const char *sql, const char *const *binds)
{
    sqlite3_stmt *st = prepare_bound(c, sql, binds);
    if (!st)
        return -EIO;
    int rc = sqlite3_step(st), ncol = sqlite3_column_count(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
    }
    if (c->json) {
        struct sbuf b = {0};
        sbuf_addc(&b, '{');
        for (int i = 0; i < ncol; i++) {
            if (i)
                sbuf_addc(&b, ',');
            sbuf_add_json_str(&b, sqlite3_column_name(st, i));
            sbuf_addc(&b, ':');
            add_json_value(&b, st, i);
        }
        sbuf_addc(&b, '}');
        printf("%s", sbuf_str(&b));
        sbuf_free(&b);
    } else {
        size_t w = 0;
        for (int i = 0; i < ncol; i++)
            if (strlen(sqlite3_column_name(st, i)) > w)
                w = strlen(sqlite3_column_name(st, i));
        for (int i = 0; i < ncol; i++) {
            char *t = cell_text(st, i);
            printf("%-*s  %s\n", (int)w + 1, sqlite3_column_name(st, i), t);
            free(t);
        }
    }
    sqlite3_finalize(st);
    return 0;
}

int ctl_path_utf8(const char *path, char **shown, char *why, size_t whylen)
{
    *shown = NULL;
    size_t len = strlen(path), bad = utf8_bad_at(path, len);
    if (bad == len)
        return 0;
    struct sbuf b = {0};
    for (size_t i = 0; i < len;) {
        size_t ok = utf8_bad_at(path + i, len - i);
        sbuf_addn(&b, path + i, ok);
        i += ok;
        if (i < len)
            sbuf_addf(&b, "\\x%02x", (unsigned char)path[i++]);
    }
    *shown = sbuf_take(&b);
    snprintf(why, whylen,
             "the path is not valid UTF-8 (byte 0x%02x at character %zu); dfew stores paths as UTF-8 text: rename "
             "it (convmv -f latin1 -t utf8 converts Latin-1 names) and give it again",
             (unsigned char)path[bad], utf8_chars(path, bad) + 1);
    return -EILSEQ;
}
