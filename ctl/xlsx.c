/* The first worksheet of an .xlsx as CSV (xlsx.h): the archive's
 * xl/workbook.xml names the first sheet, xl/_rels/workbook.xml.rels where it
 * is, xl/sharedStrings.xml holds the strings cells point to; each XML part is
 * streamed through expat. Element and attribute names are compared without
 * their namespace prefix (writers differ in prefixes, not in local names). */
#include "xlsx.h"

#include <errno.h>
#include <expat.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "csv.h"
#include "util.h"

#define XLSX_MAX_COLS 16384 /* Excel's limit (column XFD) */
#define XLSX_MAX_ROWS 1048576 /* and its last row */

static const char *local(const char *name)
{
    const char *c = strrchr(name, ':');
    return c ? c + 1 : name;
}

static const char *attr(const char **atts, const char *name)
{
    for (int i = 0; atts[i]; i += 2)
        if (!strcmp(local(atts[i]), name))
            return atts[i + 1];
    return NULL;
}

struct strv {
    char **v;
    size_t n, cap;
};

static void strv_push(struct strv *s, char *v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = v;
}

static void strv_free(struct strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* What every part's handlers share: the parser (to stop it) and the error. */
struct part {
    XML_Parser p;
    char *err;
    size_t errlen;
    int failed;
};

__attribute__((format(printf, 2, 3))) static void part_fail(struct part *pt, const char *fmt, ...)
{
    if (pt->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pt->err, pt->errlen, fmt, ap);
    va_end(ap);
    pt->failed = 1;
    XML_StopParser(pt->p, XML_FALSE);
}

/* Streams one member of the archive through expat with ud's handlers.
 * -ENOENT when the member is missing; -EINVAL with err on bad XML. */
static int parse_member(zip_t *z, const char *name, struct part *pt, XML_StartElementHandler start,
                        XML_EndElementHandler end, XML_CharacterDataHandler text)
{
    zip_file_t *f = zip_fopen(z, name, 0);
    if (!f)
        return -ENOENT;
    XML_Parser p = XML_ParserCreate(NULL);
    if (!p) {
        zip_fclose(f);
        return -ENOMEM;
    }
    pt->p = p;
    XML_SetUserData(p, pt);
    XML_SetElementHandler(p, start, end);
    if (text)
        XML_SetCharacterDataHandler(p, text);
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        zip_int64_t n = zip_fread(f, buf, sizeof buf);
        if (n < 0) {
            snprintf(pt->err, pt->errlen, "cannot read %s inside the archive: %s", name,
                     zip_error_strerror(zip_file_get_error(f)));
            rc = -EINVAL;
            break;
        }
        if (XML_Parse(p, buf, (int)n, n == 0) == XML_STATUS_ERROR) {
            if (!pt->failed)
                snprintf(pt->err, pt->errlen, "%s, line %lu: %s", name, (unsigned long)XML_GetCurrentLineNumber(p),
                         XML_ErrorString(XML_GetErrorCode(p)));
            rc = -EINVAL;
            break;
        }
        if (n == 0)
            break;
    }
    XML_ParserFree(p);
    zip_fclose(f);
    return rc;
}

/* ---- xl/workbook.xml and its relationships: where the first sheet is */

struct book {
    struct part pt;
    char *rid;    /* the first sheet's relationship id */
    char *target; /* that relationship's target */
};

static void XMLCALL book_start(void *ud, const char *el, const char **atts)
{
    struct book *b = ud;
    const char *id = attr(atts, "id");
    if (!b->rid && !strcmp(local(el), "sheet") && id)
        b->rid = xstrdup(id);
}

static void XMLCALL rels_start(void *ud, const char *el, const char **atts)
{
    struct book *b = ud;
    const char *id = attr(atts, "Id"), *target = attr(atts, "Target");
    if (!b->target && !strcmp(local(el), "Relationship") && id && target && b->rid && !strcmp(id, b->rid))
        b->target = xstrdup(target);
}

static void XMLCALL no_end(void *ud, const char *el)
{
    (void)ud;
    (void)el;
}

/* The archive path of the first worksheet (caller frees). */
static char *first_sheet(zip_t *z, char *err, size_t errlen)
{
    struct book b = {.pt = {.err = err, .errlen = errlen}};
    char *path = NULL;
    if (parse_member(z, "xl/workbook.xml", &b.pt, book_start, no_end, NULL) == 0 && b.rid &&
        parse_member(z, "xl/_rels/workbook.xml.rels", &b.pt, rels_start, no_end, NULL) == 0 && b.target) {
        if (b.target[0] == '/')
            path = xstrdup(b.target + 1);
        else if (asprintf(&path, "xl/%s", b.target) < 0)
            path = NULL;
    }
    free(b.rid);
    free(b.target);
    return path ? path : xstrdup("xl/worksheets/sheet1.xml"); /* where every writer puts it */
}

/* ---- xl/sharedStrings.xml */

struct sst {
    struct part pt;
    struct strv s;
    struct sbuf cur;
    int in_si, in_t, in_rph; /* rPh: phonetic hints, not part of the text */
};

static void XMLCALL sst_start(void *ud, const char *el, const char **atts)
{
    (void)atts;
    struct sst *s = ud;
    const char *n = local(el);
    if (!strcmp(n, "si")) {
        s->in_si = 1;
        sbuf_reset(&s->cur);
    } else if (!strcmp(n, "rPh")) {
        s->in_rph = 1;
    } else if (!strcmp(n, "t") && s->in_si && !s->in_rph) {
        s->in_t = 1;
    }
}

static void XMLCALL sst_end(void *ud, const char *el)
{
    struct sst *s = ud;
    const char *n = local(el);
    if (!strcmp(n, "t"))
        s->in_t = 0;
    else if (!strcmp(n, "rPh"))
        s->in_rph = 0;
    else if (!strcmp(n, "si") && s->in_si) {
        strv_push(&s->s, xstrdup(sbuf_str(&s->cur)));
        s->in_si = 0;
    }
}

static void XMLCALL sst_text(void *ud, const char *t, int len)
{
    struct sst *s = ud;
    if (s->in_t)
        sbuf_addn(&s->cur, t, (size_t)len);
}

/* ---- the worksheet */

struct sheet {
    struct part pt;
    FILE *out;
    const struct strv *sst;
    long next_row;      /* the next spreadsheet row number to write, from 1 */
    long row;           /* the row being read */
    struct strv cells;  /* its values by column (NULL: empty) */
    int col, last_col;  /* the cell being read; the previous cell's column */
    char type[16];      /* its t attribute */
    int in_v, in_t;     /* inside <v>, inside <is><t> */
    struct sbuf val;
};

/* "B12" -> 1; -1 when the reference has no column letters. */
static int ref_col(const char *ref)
{
    long c = 0;
    int letters = 0;
    for (; *ref >= 'A' && *ref <= 'Z'; ref++, letters++)
        c = c * 26 + (*ref - 'A' + 1);
    return letters && letters <= 3 ? (int)(c - 1) : -1;
}

static void end_lines(struct sheet *s, long upto)
{
    for (; s->next_row < upto; s->next_row++)
        fputc('\n', s->out);
}

static void XMLCALL sheet_start(void *ud, const char *el, const char **atts)
{
    struct sheet *s = ud;
    const char *n = local(el);
    if (!strcmp(n, "row")) {
        const char *r = attr(atts, "r");
        int64_t row = s->next_row;
        if (r && (parse_i64(r, &row) || row < 1 || row > XLSX_MAX_ROWS)) {
            part_fail(&s->pt, "a row number '%.20s' outside 1..%d", r, XLSX_MAX_ROWS);
            return;
        }
        s->row = (long)row;
        if (s->row < s->next_row) {
            part_fail(&s->pt, "rows out of order (row %s)", r ? r : "?");
            return;
        }
        end_lines(s, s->row);
        strv_free(&s->cells);
        s->last_col = -1;
    } else if (!strcmp(n, "c")) {
        const char *r = attr(atts, "r"), *t = attr(atts, "t");
        s->col = r ? ref_col(r) : s->last_col + 1;
        if (s->col < 0 || s->col >= XLSX_MAX_COLS) {
            part_fail(&s->pt, "a cell reference '%s' outside columns A..XFD", r ? r : "?");
            return;
        }
        snprintf(s->type, sizeof s->type, "%s", t ? t : "n");
        sbuf_reset(&s->val);
    } else if (!strcmp(n, "v")) {
        s->in_v = 1;
    } else if (!strcmp(n, "t")) {
        s->in_t = 1; /* <is><t>: an inline string */
    }
}

/* A number as the spreadsheet shows it: whole numbers without ".0". */
static char *number_text(const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (*v && !*end && isfinite(d) && d == floor(d) && fabs(d) < 1e15) {
        char *out;
        if (asprintf(&out, "%.0f", d) >= 0)
            return out;
    }
    return xstrdup(v);
}

static void XMLCALL sheet_end(void *ud, const char *el)
{
    struct sheet *s = ud;
    const char *n = local(el);
    if (!strcmp(n, "v")) {
        s->in_v = 0;
    } else if (!strcmp(n, "t")) {
        s->in_t = 0;
    } else if (!strcmp(n, "c")) {
        const char *v = sbuf_str(&s->val);
        char *text = NULL;
        if (!strcmp(s->type, "s")) {
            int64_t i;
            if (parse_i64(v, &i) || i < 0 || (size_t)i >= s->sst->n) {
                part_fail(&s->pt, "a cell points to shared string '%s', which does not exist", v);
                return;
            }
            text = xstrdup(s->sst->v[i]);
        } else if (!strcmp(s->type, "n")) {
            text = number_text(v);
        } else { /* inlineStr, str (a formula's text), b (0/1), e (#N/A ...) */
            text = xstrdup(v);
        }
        while (s->cells.n <= (size_t)s->col)
            strv_push(&s->cells, NULL);
        free(s->cells.v[s->col]);
        s->cells.v[s->col] = text;
        s->last_col = s->col;
    } else if (!strcmp(n, "row")) {
        for (size_t i = 0; i < s->cells.n; i++) {
            if (i)
                fputc(',', s->out);
            csv_put(s->out, s->cells.v[i] ? s->cells.v[i] : "");
        }
        fputc('\n', s->out);
        s->next_row = s->row + 1;
        strv_free(&s->cells);
    }
}

static void XMLCALL sheet_text(void *ud, const char *t, int len)
{
    struct sheet *s = ud;
    if (s->in_v || s->in_t)
        sbuf_addn(&s->val, t, (size_t)len);
}

/* The first worksheet of an open archive as CSV (name: for messages). */
static int convert(zip_t *z, const char *path, FILE *out, char *err, size_t errlen)
{
    char detail[512] = "";
    struct sst sst = {.pt = {.err = detail, .errlen = sizeof detail}};
    int rc = parse_member(z, "xl/sharedStrings.xml", &sst.pt, sst_start, sst_end, sst_text);
    if (rc == -ENOENT) /* a sheet without text cells has none */
        rc = 0;
    char *sheet_path = NULL;
    if (!rc) {
        sheet_path = first_sheet(z, detail, sizeof detail);
        detail[0] = 0;
        struct sheet sh = {.pt = {.err = detail, .errlen = sizeof detail}, .out = out, .sst = &sst.s, .next_row = 1};
        rc = parse_member(z, sheet_path, &sh.pt, sheet_start, sheet_end, sheet_text);
        if (rc == -ENOENT)
            snprintf(detail, sizeof detail, "no worksheet %s in the archive", sheet_path);
        strv_free(&sh.cells);
        sbuf_free(&sh.val);
    }
    if (rc)
        snprintf(err, errlen, "%s: %s", path, detail[0] ? detail : strerror(-rc));
    free(sheet_path);
    strv_free(&sst.s);
    sbuf_free(&sst.cur);
    return rc ? (rc == -ENOMEM ? rc : -EINVAL) : 0;
}

static int not_a_zip(const char *path, zip_error_t *ze, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s is not an .xlsx spreadsheet (a zip archive): %s", path, zip_error_strerror(ze));
    return -EINVAL;
}

int xlsx_to_csv(const char *path, FILE *out, char *err, size_t errlen)
{
    if (access(path, R_OK) != 0)
        return -errno;
    int zerr = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        int rc = not_a_zip(path, &ze, err, errlen);
        zip_error_fini(&ze);
        return rc;
    }
    int rc = convert(z, path, out, err, errlen);
    zip_close(z);
    return rc;
}

int xlsx_to_csv_buffer(const void *data, size_t len, const char *name, FILE *out, char *err, size_t errlen)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
    zip_t *z = src ? zip_open_from_source(src, ZIP_RDONLY, &ze) : NULL;
    if (!z) {
        int rc = not_a_zip(name, &ze, err, errlen);
        if (src)
            zip_source_free(src);
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    int rc = convert(z, name, out, err, errlen);
    zip_close(z);
    return rc;
}
