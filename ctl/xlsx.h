/* Reading the first worksheet of an Office Open XML spreadsheet (.xlsx, as
 * the DFEW release ships its annotation) as CSV text, through libzip (the
 * container) and expat (the XML): shared and inline strings, numbers (whole
 * numbers without a fraction: 5, not 5.0), booleans as 1/0. One CSV line per
 * spreadsheet row, so line N is row N (rows the sheet skips are blank lines);
 * formulas give their cached values. */
#ifndef DFEW_XLSX_H
#define DFEW_XLSX_H

#include <stddef.h>
#include <stdio.h>

#include "util.h"

/* Writes the first worksheet of path to out as CSV. 0, or -errno (-ENOENT,
 * -EACCES) for the file, or -EINVAL with the reason in err when it is not a
 * readable .xlsx. */
int xlsx_to_csv(const char *path, FILE *out, char *err, size_t errlen);
/* The same for an archive in memory (name: for messages). */
int xlsx_to_csv_buffer(const void *data, size_t len, const char *name, FILE *out, char *err, size_t errlen);

/* Writing a workbook of one sheet (xlsx_write.c): rows of inline text and
 * whole numbers, as the DFEW release's Annotation/annotation.xlsx. Start each
 * row with xlsx_sheet_row, then add its cells left to right. */
struct xlsx_sheet {
    struct sbuf xml; /* the <row> elements so far */
    int row, col;    /* the current row (1-based; 0: none yet) and the next column (0-based) */
};
void xlsx_sheet_row(struct xlsx_sheet *s);
void xlsx_sheet_text(struct xlsx_sheet *s, const char *text);
void xlsx_sheet_int(struct xlsx_sheet *s, long long v);
/* Writes the workbook to path, a new file (an existing one is an error): 0,
 * or -errno with the reason in err. The sheet is kept: free it after. */
int xlsx_sheet_save(struct xlsx_sheet *s, const char *path, const char *sheet_name, char *err, size_t errlen);
void xlsx_sheet_free(struct xlsx_sheet *s);

#endif
