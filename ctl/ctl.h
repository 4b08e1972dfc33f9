/* dfewctl's shared state and helpers: the home and database, the daemon's
 * control socket, and printing query results as aligned tables or JSON.
 * Each command group lives in its own file (submit.c, status.c, jobs.c, lists.c;
 * the dataset commands labels.c, folds.c, report.c, export.c, import.c share dataset.h). */
#ifndef DFEW_CTL_H
#define DFEW_CTL_H

#include <stdio.h>

#include "config.h"
#include "db.h"
#include "paths.h"
#include "util.h"

struct ctl {
    const char *home_opt;
    int json;
    struct dfew_paths paths;
    struct db *db;
    struct dfew_config cfg; /* HOME/dfew.conf, read by ctl_open */
    int have_cfg;
    const char *prog;       /* "dfewctl" */
};

/* Opens the home (creating it with CTL_CREATE), reads HOME/dfew.conf and
 * opens the database. A bad config file is an error with CTL_NEED_CONFIG
 * (commands that act on its values), else a warning and the defaults. Prints
 * the reason and returns non-zero on failure. */
enum { CTL_CREATE = 1, CTL_NEED_CONFIG = 2 };
int ctl_open(struct ctl *c, int flags);
void ctl_close(struct ctl *c);

/* Sends one request line to dfewd and reads its one-line reply. -ECONNREFUSED
 * or -ENOENT when the daemon is not running. */
int ctl_request(struct ctl *c, const char *req, char *reply, size_t len);
/* Wakes the daemon after new work was queued; returns 1 when it answered. */
int ctl_wake(struct ctl *c);

/* Runs sql (binding each %-free text argument in order; NULL ends the list)
 * and prints the rows: a JSON array of objects with --json, else an aligned
 * table with the column names as header. Returns the row count or a negative errno. */
int ctl_print_query(struct ctl *c, const char *sql, const char *const *binds, const char *empty_msg);
/* Appends the rows of a query to b as a JSON array of objects. */
int ctl_query_json(struct ctl *c, struct sbuf *b, const char *sql, const char *const *binds);
/* Prints one row as "name: value" lines (or a JSON object); -ENOENT when none. */
int ctl_print_record(struct ctl *c, const char *sql, const char *const *binds);

/* Command entry points: argc/argv start at the command name. */
int cmd_submit(struct ctl *c, int argc, char **argv);
int cmd_noop(struct ctl *c, int argc, char **argv);
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_wait(struct ctl *c, int argc, char **argv);
int cmd_jobs(struct ctl *c, int argc, char **argv);
int cmd_show(struct ctl *c, int argc, char **argv);
int cmd_cancel(struct ctl *c, int argc, char **argv);
int cmd_retry(struct ctl *c, int argc, char **argv);
int cmd_movies(struct ctl *c, int argc, char **argv);
int cmd_clips(struct ctl *c, int argc, char **argv);
int cmd_labels(struct ctl *c, int argc, char **argv);
int cmd_folds(struct ctl *c, int argc, char **argv);
int cmd_report(struct ctl *c, int argc, char **argv);
int cmd_export(struct ctl *c, int argc, char **argv);
int cmd_import(struct ctl *c, int argc, char **argv);
int cmd_sheet(struct ctl *c, int argc, char **argv);
int cmd_train(struct ctl *c, int argc, char **argv);
int cmd_runs(struct ctl *c, int argc, char **argv);
int cmd_metrics(struct ctl *c, int argc, char **argv);
int cmd_annotators(struct ctl *c, int argc, char **argv);
int cmd_web(struct ctl *c, int argc, char **argv);

/* Paths given to dfewctl go into the database as text, so they must be UTF-8.
 * 0 when path is; else -EILSEQ with *shown a printable copy of it (each byte
 * that is not UTF-8 as \xNN; the caller frees it) and why a sentence
 * that says where and what to do. */
int ctl_path_utf8(const char *path, char **shown, char *why, size_t whylen);

/* Common option handling for commands: --home and --json are accepted
 * anywhere. Returns the getopt result for anything else. */
#define CTL_COMMON_LONGOPTS {"home", required_argument, NULL, 1000}, {"json", no_argument, NULL, 1001}, \
    {"help", no_argument, NULL, 'h'}
int ctl_common_opt(struct ctl *c, int opt, const char *arg);
/* Option parsing for commands with only the common options: returns -1 to go
 * on (optind at the first argument), else the exit code (0 after --help). */
int ctl_simple_opts(struct ctl *c, int argc, char **argv, const char *usage_text);

#endif
