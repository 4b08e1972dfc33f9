/* dfewctl: the command line for a dfew home. It writes to the database
 * directly (so submit works while dfewd is down) and nudges the daemon over
 * its control socket when it is up. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "dfew_build.h"
#include "log.h"

static const struct {
    const char *name;
    int (*fn)(struct ctl *, int, char **);
    const char *help;
} commands[] = {
    {"submit", cmd_submit, "submit PATH|URL...   queue movies (files, directories searched recursively, http/https URLs)"},
    {"status", cmd_status, "status               job counts per kind and state, running jobs, the daemon"},
    {"jobs", cmd_jobs, "jobs [--state S]     list jobs (--kind K, --limit N)"},
    {"movies", cmd_movies, "movies               list movies with their probe facts"},
    {"clips", cmd_clips, "clips                list clips with their state"},
    {"sheet", cmd_sheet, "sheet CLIP -o F.png  contact sheet: sampled frames with faces + the aligned frames\n"
                         "  sheet movie ID -o F.png   a movie's shots (one thumbnail each) and its chosen clips"},
    {"show", cmd_show, "show [job|movie|clip] ID   one record with its history"},
    {"cancel", cmd_cancel, "cancel ID | --run R  cancel a job, or a training run's jobs (stops running ones)"},
    {"retry", cmd_retry, "retry ID | --run R   run a dead, failed or cancelled job (or a run's) again"},
    {"wait", cmd_wait, "wait [--timeout S] [ID...]  block until jobs end; exit 0 if all done"},
    {"noop", cmd_noop, "noop [--count N]     queue no-op jobs (benchmarks, diagnostics)"},
    {"labels", cmd_labels, "labels import FILE   store annotators' votes, CSV or .xlsx (also: labels show, kappa)"},
    {"folds", cmd_folds, "folds make --k 5     split single-labelled clips into folds (also: show, list, delete)"},
    {"report", cmd_report, "report [table2]      dataset summary; the paper's Table 2 (--csv)"},
    {"export", cmd_export, "export --format dfew|lists DIR   the DFEW release layout, or train/test lists + JPEGs"},
    {"import", cmd_import, "import dfew DIR      read a DFEW-layout release (labels, votes, official folds)"},
    {"train", cmd_train, "train [--split NAME] train a model on every fold of a split (one job per fold)"},
    {"runs", cmd_runs, "runs                 training runs: state, folds done, pooled UAR / WAR"},
    {"annotators", cmd_annotators, "annotators add NAME  a personal dfew-web link (also: list, disable, enable)"},
    {"web", cmd_web, "web token            the curator's admin token of dfew-web"},
    {"metrics", cmd_metrics, "metrics [RUN]        per-fold and pooled recall, UAR, WAR (--json, --plot F.png)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: dfewctl [--home DIR] [--json] COMMAND [ARGS]\n"
               "       dfewctl --version\n\n"
               "dfewctl: the command line of dfew, which turns movies into a labelled,\n"
               "aligned, benchmark-ready facial-expression dataset the way DFEW was built, and\n"
               "trains 3D CNNs on it. It queues movies and training runs for dfewd in\n"
               "HOME/dfew.db (also while dfewd is down), and keeps votes, labels, folds,\n"
               "exports and imports in the database itself.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        fprintf(f, "  %s\n", commands[i].help);
    fprintf(f, "\n"
               "--home DIR  the dfew home (default: $DFEW_HOME, else $XDG_DATA_HOME/dfew,\n"
               "            else ~/.local/share/dfew). The database is HOME/dfew.db.\n"
               "--json      machine-readable output\n"
               "-V, --version  print the version and the database schema it writes\n"
               "Run 'dfewctl COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    struct ctl c = {.prog = "dfewctl"};
    log_init("dfewctl", stderr, LOG_WARN);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--home") && i + 1 < argc)
            c.home_opt = argv[++i];
        else if (!strncmp(argv[i], "--home=", 7))
            c.home_opt = argv[i] + 7;
        else if (!strcmp(argv[i], "--json"))
            c.json = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            printf("dfewctl %s (schema %d)\n", DFEW_VERSION, db_migration_count);
            return 0;
        } else {
            fprintf(stderr, "dfewctl: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t k = 0; k < ARRAY_LEN(commands); k++) {
        if (!strcmp(argv[i], commands[k].name)) {
            int rc = commands[k].fn(&c, argc - i, argv + i);
            ctl_close(&c);
            return rc;
        }
    }
    fprintf(stderr, "dfewctl: unknown command '%s'\n\n", argv[i]);
    usage(stderr);
    return 2;
}
