/* What the dataset commands of dfewctl share (labels.c, folds.c, report.c,
 * export.c, import.c): opening the home with the [labels] settings copied
 * into the database, finding clips by id or DFEW name, storing a clip's vote
 * counts, Fleiss' kappa over the stored votes, and picking a split. These
 * commands work on the database directly; no daemon job is involved. */
#ifndef DFEW_CTL_DATASET_H
#define DFEW_CTL_DATASET_H

#include <stdint.h>

#include "ctl.h"
#include "labels.h"
#include "votes.h"

/* ctl_open with the config required, then copies [labels] of dfew.conf into
 * the label_settings table when they differ (so that the clip_labels view
 * agrees with dfewctl). Prints the reason and returns non-zero on failure. */
int ds_open(struct ctl *c, int flags);

/* A clip named by a label file or the command line: its DFEW name when a clip
 * has that name, else its id ("id:N" is always the id). Returns the id, 0 when
 * there is none, or minus
 * the id of another clip when a short number could mean both (id 42, and the
 * clip named 00042: spreadsheets drop leading zeros). */
int64_t ds_find_clip(struct ctl *c, const char *ident);

/* Stores a clip's vote counts as anonymous votes (annotators "#1".."#n").
 * Counts equal to the stored distribution change nothing; a clip with other
 * votes is refused unless replace is set. Returns DS_ADDED, DS_UNCHANGED or
 * DS_REPLACED, or a negative errno with a reason in why. Call inside a
 * transaction. */
enum { DS_ADDED, DS_UNCHANGED, DS_REPLACED };
int ds_set_counts(struct ctl *c, int64_t clip, const int counts[EMOTION_COUNT], int replace, const char *source,
                  char *why, size_t whylen);

/* Fleiss' kappa over every annotated clip and over the single-labelled ones
 * (votes_kappa of lib/votes.c). */
int ds_kappa(struct ctl *c, struct votes_kappa *k);

/* The split called name, or the newest when name is NULL. Returns its id and
 * its name (caller frees), 0 when there is none (a message is printed). */
int64_t ds_split(struct ctl *c, const char *cmd, const char *name, char **name_out);

/* Prints the header line and per-fold table of a split (also --json). */
int ds_print_split(struct ctl *c, int64_t split_id);

/* Errors found in input files, collected so that a rejected file lists every
 * bad line at once (the first DS_SHOWN_ERRORS of them). */
#define DS_SHOWN_ERRORS 20
struct ds_errors {
    int n;
    struct sbuf text, json;
};
void ds_error(struct ds_errors *e, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prints "what rejected, nothing was stored" and the lines to stderr, and with
 * --json {"rejected":true,"error_count":N,"errors":[{file,line,reason}]} on
 * stdout. Frees the list. */
void ds_errors_report(struct ctl *c, struct ds_errors *e, const char *what);
void ds_errors_free(struct ds_errors *e);

/* Runs a sub-command: argv[0] is the group ("labels"), argv[1] names one of
 * subs (a table ending with a NULL name); the handler gets argv + 1. Prints
 * usage_text for no or an unknown sub-command (exit code 2) and --help (0). */
struct ds_sub {
    const char *name;
    int (*fn)(struct ctl *, int, char **);
};
int ds_dispatch(struct ctl *c, int argc, char **argv, const struct ds_sub *subs, const char *usage_text);

#endif
