/* Writing a one-sheet .xlsx (xlsx.h): the smallest Office Open XML workbook
 * that Excel, LibreOffice, openpyxl and pandas open: content types, the
 * package and workbook relationships, a default style and one worksheet of
 * inline strings and whole numbers, zipped by libzip. No shared strings,
 * formulas or formats. The archive's dates are fixed, so the same rows give
 * the same bytes (exports compare file by file). */
#include "xlsx.h"

#include <errno.h>
#include <string.h>
#include <zip.h>

#define NS_MAIN "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
#define NS_REL "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
#define NS_PKG_REL "http://schemas.openxmlformats.org/package/2006/relationships"
#define XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"

static const char content_types[] =
    XML_HEAD "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
    "<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>"
    "<Default Extension=\"xml\" ContentType=\"application/xml\"/>"
    "<Override PartName=\"/xl/workbook.xml\" "
    "ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>"
    "<Override PartName=\"/xl/worksheets/sheet1.xml\" "
    "ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"
    "<Override PartName=\"/xl/styles.xml\" "
    "ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>"
    "</Types>";

static const char package_rels[] =
    XML_HEAD "<Relationships xmlns=\"" NS_PKG_REL "\">"
    "<Relationship Id=\"rId1\" Type=\"" NS_REL "/officeDocument\" Target=\"xl/workbook.xml\"/>"
    "</Relationships>";

static const char workbook_rels[] =
    XML_HEAD "<Relationships xmlns=\"" NS_PKG_REL "\">"
    "<Relationship Id=\"rId1\" Type=\"" NS_REL "/worksheet\" Target=\"worksheets/sheet1.xml\"/>"
    "<Relationship Id=\"rId2\" Type=\"" NS_REL "/styles\" Target=\"styles.xml\"/>"
    "</Relationships>";

static const char styles[] =
    XML_HEAD "<styleSheet xmlns=\"" NS_MAIN "\">"
    "<fonts count=\"1\"><font><sz val=\"11\"/><name val=\"Calibri\"/></font></fonts>"
    "<fills count=\"2\"><fill><patternFill patternType=\"none\"/></fill>"
    "<fill><patternFill patternType=\"gray125\"/></fill></fills>"
    "<borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>"
    "<cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>"
    "<cellXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/></cellXfs>"
    "<cellStyles count=\"1\"><cellStyle name=\"Normal\" xfId=\"0\" builtinId=\"0\"/></cellStyles>"
    "</styleSheet>";

/* Text as XML character data: markup escaped, characters XML 1.0 cannot hold
 * (controls other than tab and newline) left out. */
static void add_xml_text(struct sbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&': sbuf_add(b, "&amp;"); break;
        case '<': sbuf_add(b, "&lt;"); break;
        case '>': sbuf_add(b, "&gt;"); break;
        case '"': sbuf_add(b, "&quot;"); break;
        default:
            if (*p >= 0x20 || *p == '\t' || *p == '\n')
                sbuf_addc(b, (char)*p);
        }
    }
}

/* The next cell's reference, "A1" style. */
static void add_ref(struct xlsx_sheet *s)
{
    char col[8];
    int n = 0;
    for (int c = s->col + 1; c > 0; c = (c - 1) / 26)
        col[n++] = (char)('A' + (c - 1) % 26);
    sbuf_add(&s->xml, "<c r=\"");
    while (n)
        sbuf_addc(&s->xml, col[--n]);
    sbuf_addf(&s->xml, "%d\"", s->row);
    s->col++;
}

static void end_row(struct xlsx_sheet *s)
{
    if (s->row)
        sbuf_add(&s->xml, "</row>");
}

void xlsx_sheet_row(struct xlsx_sheet *s)
{
    end_row(s);
    s->row++;
    s->col = 0;
    sbuf_addf(&s->xml, "<row r=\"%d\">", s->row);
}

void xlsx_sheet_text(struct xlsx_sheet *s, const char *text)
{
    add_ref(s);
    sbuf_add(&s->xml, " t=\"inlineStr\"><is><t xml:space=\"preserve\">");
    add_xml_text(&s->xml, text);
    sbuf_add(&s->xml, "</t></is></c>");
}

void xlsx_sheet_int(struct xlsx_sheet *s, long long v)
{
    add_ref(s);
    sbuf_addf(&s->xml, "><v>%lld</v></c>", v);
}

void xlsx_sheet_free(struct xlsx_sheet *s)
{
    sbuf_free(&s->xml);
    s->row = s->col = 0;
}

/* Adds one member from memory that stays valid until zip_close. */
static int add_member(zip_t *z, const char *name, const char *data, size_t len)
{
    zip_source_t *src = zip_source_buffer(z, data, len, 0);
    if (!src)
        return -1;
    zip_int64_t i = zip_file_add(z, name, src, ZIP_FL_ENC_UTF_8);
    if (i < 0) {
        zip_source_free(src);
        return -1;
    }
    /* a fixed date (2020-01-01): the same sheet gives the same bytes */
    return zip_file_set_mtime(z, (zip_uint64_t)i, 1577836800, 0);
}

int xlsx_sheet_save(struct xlsx_sheet *s, const char *path, const char *sheet_name, char *err, size_t errlen)
{
    struct sbuf book = {0}, sheet = {0};
    sbuf_add(&book, XML_HEAD "<workbook xmlns=\"" NS_MAIN "\" xmlns:r=\"" NS_REL "\"><sheets><sheet name=\"");
    add_xml_text(&book, sheet_name);
    sbuf_add(&book, "\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>");
    sbuf_add(&sheet, XML_HEAD "<worksheet xmlns=\"" NS_MAIN "\"><sheetData>");
    sbuf_add(&sheet, sbuf_str(&s->xml));
    if (s->row)
        sbuf_add(&sheet, "</row>");
    sbuf_add(&sheet, "</sheetData></worksheet>");

    int zerr = 0, rc = 0;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_EXCL, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        rc = zip_error_code_system(&ze) ? -zip_error_code_system(&ze) : -EIO;
        snprintf(err, errlen, "cannot create %s: %s", path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
    } else if (add_member(z, "[Content_Types].xml", content_types, sizeof content_types - 1) ||
               add_member(z, "_rels/.rels", package_rels, sizeof package_rels - 1) ||
               add_member(z, "xl/workbook.xml", book.s, book.len) ||
               add_member(z, "xl/_rels/workbook.xml.rels", workbook_rels, sizeof workbook_rels - 1) ||
               add_member(z, "xl/styles.xml", styles, sizeof styles - 1) ||
               add_member(z, "xl/worksheets/sheet1.xml", sheet.s, sheet.len) || zip_close(z) != 0) {
        zip_error_t *ze = zip_get_error(z);
        rc = zip_error_code_system(ze) ? -zip_error_code_system(ze) : -EIO;
        snprintf(err, errlen, "cannot write %s: %s", path, zip_error_strerror(ze));
        zip_discard(z);
    }
    sbuf_free(&book);
    sbuf_free(&sheet);
    return rc;
}
