/* Reading and writing simple CSV files (RFC 4180 without line breaks inside
 * fields): the label files curators import and the DFEW-layout files dfew
 * exports. Records are numbered by line so errors can name the line. */
#ifndef DFEW_CSV_H
#define DFEW_CSV_H

#include <stdio.h>

struct csv_reader {
    FILE *f;
    int line;       /* line number of the record csv_next returned, 1-based */
    char **field;   /* the record's fields, trimmed, quotes removed */
    int nfield;
    char err[128];  /* why csv_next returned -EINVAL */
    /* private */
    char *buf;
    size_t cap;
    int capf;
};

/* -errno when the file cannot be opened. */
int csv_open(struct csv_reader *r, const char *path);
/* Reads from an open stream instead (csv_close closes it). */
void csv_open_stream(struct csv_reader *r, FILE *f);
/* Longest line and field csv_next accepts. */
#define CSV_MAX_LINE 65536
#define CSV_MAX_FIELD 1024

/* Reads the next record, skipping blank lines (a UTF-8 byte-order mark and
 * CR line ends are accepted). Every line must be UTF-8 without control
 * characters (tab aside), at most CSV_MAX_LINE bytes, its fields at most
 * CSV_MAX_FIELD. 1: a record; 0: end of file; -EINVAL: a bad line (r->err
 * says why and at which column, r->line where); -EIO: a read error. */
int csv_next(struct csv_reader *r);
void csv_close(struct csv_reader *r);

/* Writes one field, quoted when it holds a comma, quote or line break. */
void csv_put(FILE *f, const char *s);

#endif
