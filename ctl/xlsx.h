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

/* Writes the first worksheet of path to out as CSV. 0, or -errno (-ENOENT,
 * -EACCES) for the file, or -EINVAL with the reason in err when it is not a
 * readable .xlsx. */
int xlsx_to_csv(const char *path, FILE *out, char *err, size_t errlen);
/* The same for an archive in memory (name: for messages). */
int xlsx_to_csv_buffer(const void *data, size_t len, const char *name, FILE *out, char *err, size_t errlen);

#endif
