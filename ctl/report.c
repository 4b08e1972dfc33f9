/* dfewctl report: a one-screen summary of the dataset (movies, clips by
 * state, labels, agreement, folds), and `report table2`, the DFEW paper's
 * Table 2 for our data: single-labelled clips per emotion and duration
 * bucket, with totals and percentages (table, CSV or JSON). Read-only. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

#define NBUCKET TABLE2_BUCKETS
#define bucket_names table2_bucket_names

static int load_table2(struct ctl *c, struct table2 *t)
{
    return votes_table2(c->db, t); /* label_settings.threshold = [labels] after ds_open */
}

static double pct(long part, long whole) { return whole ? 100.0 * (double)part / (double)whole : 0; }

static void print_table2(const struct table2 *t)
{
    printf("Single-labelled clips per emotion and duration (DFEW paper, Table 2); r = %d\n", t->threshold);
    printf("%-8s", "duration");
    for (int e = 1; e <= EMOTION_COUNT; e++)
        printf("  %8s", emotion_name(e));
    printf("  %8s  %7s\n", "total", "%");
    for (int b = 0; b < NBUCKET; b++) {
        if (b == 3 && !t->row[b])
            continue;
        printf("%-8s", bucket_names[b]);
        for (int e = 0; e < EMOTION_COUNT; e++)
            printf("  %8ld", t->n[b][e]);
        printf("  %8ld  %6.2f%%\n", t->row[b], pct(t->row[b], t->total));
    }
    printf("%-8s", "total");
    for (int e = 0; e < EMOTION_COUNT; e++)
        printf("  %8ld", t->col[e]);
    printf("  %8ld  %6.2f%%\n%-8s", t->total, t->total ? 100.0 : 0.0, "%");
    for (int e = 0; e < EMOTION_COUNT; e++)
        printf("  %7.2f%%", pct(t->col[e], t->total));
    printf("  %7.2f%%\n", t->total ? 100.0 : 0.0);
    if (t->row[3])
        printf("unknown: clips imported without their original video (no duration)\n");
}

static void print_table2_csv(const struct table2 *t)
{
    printf("duration");
    for (int e = 1; e <= EMOTION_COUNT; e++)
        printf(",%s", emotion_name(e));
    printf(",total,percent\n");
    for (int b = 0; b < NBUCKET; b++) {
        if (b == 3 && !t->row[b])
            continue;
        printf("%s", bucket_names[b]);
        for (int e = 0; e < EMOTION_COUNT; e++)
            printf(",%ld", t->n[b][e]);
        printf(",%ld,%.2f\n", t->row[b], pct(t->row[b], t->total));
    }
    printf("total");
    for (int e = 0; e < EMOTION_COUNT; e++)
        printf(",%ld", t->col[e]);
    printf(",%ld,%.2f\npercent", t->total, t->total ? 100.0 : 0.0);
    for (int e = 0; e < EMOTION_COUNT; e++)
        printf(",%.2f", pct(t->col[e], t->total));
    printf(",%.2f,\n", t->total ? 100.0 : 0.0);
}

static void print_table2_json(const struct table2 *t)
{
    printf("{\"threshold\":%d,\"emotions\":[", t->threshold);
    for (int e = 1; e <= EMOTION_COUNT; e++)
        printf("%s\"%s\"", e > 1 ? "," : "", emotion_name(e));
    printf("],\"rows\":[");
    for (int b = 0, first = 1; b < NBUCKET; b++) {
        if (b == 3 && !t->row[b])
            continue;
        printf("%s{\"duration\":\"%s\",\"counts\":[", first ? "" : ",", bucket_names[b]);
        first = 0;
        for (int e = 0; e < EMOTION_COUNT; e++)
            printf("%s%ld", e ? "," : "", t->n[b][e]);
        printf("],\"total\":%ld,\"percent\":%.17g}", t->row[b], pct(t->row[b], t->total));
    }
    printf("],\"total\":{\"counts\":[");
    for (int e = 0; e < EMOTION_COUNT; e++)
        printf("%s%ld", e ? "," : "", t->col[e]);
    printf("],\"total\":%ld,\"percent\":[", t->total);
    for (int e = 0; e < EMOTION_COUNT; e++)
        printf("%s%.17g", e ? "," : "", pct(t->col[e], t->total));
    printf("]}}\n");
}

static int report_table2(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"csv", no_argument, NULL, 'c'}, CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int csv = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 'c')
            csv = 1;
        else if (o == 'h') {
            printf("usage: dfewctl report table2 [--csv | --json]\n\n"
                   "The DFEW paper's Table 2 for this dataset: single-labelled clips per emotion\n"
                   "and duration (0-2 s, 2-5 s, 5 s and more), with totals and percentages.\n");
            return 0;
        } else
            return 2;
    }
    if (optind != argc)
        return 2;
    if (ds_open(c, 0))
        return 1;
    struct table2 t;
    if (load_table2(c, &t)) {
        fprintf(stderr, "dfewctl report table2: cannot read the labels: %s\n", db_errmsg(c->db));
        return 1;
    }
    if (c->json)
        print_table2_json(&t);
    else if (csv)
        print_table2_csv(&t);
    else
        print_table2(&t);
    return 0;
}

static long scalar(struct ctl *c, const char *sql)
{
    sqlite3_stmt *st = db_prepare(c->db, sql);
    long v = st && sqlite3_step(st) == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : 0;
    if (st)
        sqlite3_reset(st);
    return v;
}

/* "10" or "9-11". */
static const char *range(char *buf, size_t len, long lo, long hi)
{
    if (lo == hi)
        snprintf(buf, len, "%ld", lo);
    else
        snprintf(buf, len, "%ld-%ld", lo, hi);
    return buf;
}

static int report_summary(struct ctl *c)
{
    char rbuf[48];
    static const char *const states[] = {"usable", "unusable", "failed", "pending"};
    long movies = scalar(c, "SELECT count(*) FROM movies"), clips = scalar(c, "SELECT count(*) FROM clips");
    long by_state[4];
    for (int i = 0; i < 4; i++) {
        sqlite3_stmt *st = db_prepare(c->db, "SELECT count(*) FROM clips WHERE state = ?");
        sqlite3_bind_text(st, 1, states[i], -1, SQLITE_STATIC);
        by_state[i] = sqlite3_step(st) == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
    }
    long judged = by_state[0] + by_state[1];
    /* One pass over clip_labels (it aggregates every vote). */
    long annotated = 0, votes = 0, vmin = 0, vmax = 0, single = 0, per[EMOTION_COUNT] = {0};
    sqlite3_stmt *st = db_prepare(c->db, "SELECT count(*), total(votes), min(votes), max(votes), count(label), "
                                         "sum(label = 1), sum(label = 2), sum(label = 3), sum(label = 4), "
                                         "sum(label = 5), sum(label = 6), sum(label = 7) FROM clip_labels");
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        annotated = (long)sqlite3_column_int64(st, 0);
        votes = (long)sqlite3_column_int64(st, 1);
        vmin = (long)sqlite3_column_int64(st, 2);
        vmax = (long)sqlite3_column_int64(st, 3);
        single = (long)sqlite3_column_int64(st, 4);
        for (int e = 0; e < EMOTION_COUNT; e++)
            per[e] = (long)sqlite3_column_int64(st, 5 + e);
    }
    if (st)
        sqlite3_reset(st);
    struct votes_kappa k;
    if (ds_kappa(c, &k))
        return 1;
    long nsplits = scalar(c, "SELECT count(*) FROM splits");
    char split[128] = "";
    long fmin = 0, fmax = 0, fk = 0;
    st = db_prepare(c->db, "SELECT s.name, s.k, min(n), max(n) FROM splits s JOIN (SELECT split_id, fold, count(*) AS n "
                           "FROM fold_members GROUP BY split_id, fold) f ON f.split_id = s.id "
                           "WHERE s.id = (SELECT max(id) FROM splits) GROUP BY s.id");
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(split, sizeof split, "%s", (const char *)sqlite3_column_text(st, 0));
        fk = sqlite3_column_int(st, 1);
        fmin = sqlite3_column_int(st, 2);
        fmax = sqlite3_column_int(st, 3);
    }
    sqlite3_reset(st);
    if (c->json) {
        struct sbuf b = {0};
        sbuf_add(&b, "{\"home\":");
        sbuf_add_json_str(&b, c->paths.home);
        sbuf_addf(&b, ",\"movies\":%ld,\"clips\":%ld,\"clip_states\":{", movies, clips);
        for (int i = 0; i < 4; i++)
            sbuf_addf(&b, "%s\"%s\":%ld", i ? "," : "", states[i], by_state[i]);
        sbuf_addf(&b, "},\"usable_ratio\":%s", judged ? "" : "null");
        if (judged)
            sbuf_addf(&b, "%.17g", (double)by_state[0] / (double)judged);
        sbuf_addf(&b, ",\"annotated\":%ld,\"votes\":%ld,\"threshold\":%d,\"single_labelled\":%ld,\"labels\":{",
                  annotated, votes, k.threshold, single);
        for (int e = 0; e < EMOTION_COUNT; e++)
            sbuf_addf(&b, "%s\"%s\":%ld", e ? "," : "", emotion_name(e + 1), per[e]);
        sbuf_add(&b, "},\"kappa_all\":");
        if (k.rc_all)
            sbuf_add(&b, "null");
        else
            sbuf_addf(&b, "%.17g", k.all.kappa);
        sbuf_add(&b, ",\"kappa_single_labelled\":");
        if (k.rc_single)
            sbuf_add(&b, "null");
        else
            sbuf_addf(&b, "%.17g", k.single.kappa);
        sbuf_addf(&b, ",\"splits\":%ld,\"newest_split\":", nsplits);
        if (*split) {
            sbuf_add(&b, "{\"name\":");
            sbuf_add_json_str(&b, split);
            sbuf_addf(&b, ",\"k\":%ld,\"min_fold\":%ld,\"max_fold\":%ld}", fk, fmin, fmax);
        } else {
            sbuf_add(&b, "null");
        }
        sbuf_addc(&b, '}');
        printf("%s\n", sbuf_str(&b));
        sbuf_free(&b);
        return 0;
    }
    printf("dfew dataset in %s\n", c->paths.home);
    printf("  %-16s %ld\n", "movies", movies);
    printf("  %-16s %ld: %ld usable, %ld unusable, %ld failed, %ld pending", "clips", clips, by_state[0], by_state[1],
           by_state[2], by_state[3]);
    if (judged)
        printf("; usable %.1f %% of the prepared", 100.0 * (double)by_state[0] / (double)judged);
    printf("\n  %-16s %ld clips, %ld votes", "annotated", annotated, votes);
    if (annotated)
        printf(" (%s per clip)", range(rbuf, sizeof rbuf, vmin, vmax));
    printf("\n");
    if (annotated) {
        printf("  %-16s %ld (%.1f %%), ambiguous %ld; r = %d\n", "single-labelled", single, pct(single, annotated),
               annotated - single, k.threshold);
        printf("  %-16s", "labels");
        for (int e = 0; e < EMOTION_COUNT; e++)
            printf("%s %s %ld", e ? "," : "", emotion_name(e + 1), per[e]);
        printf("\n  %-16s ", "agreement");
        if (k.rc_all)
            printf("kappa undefined over all");
        else
            printf("kappa %.3f (%s) over all", k.all.kappa, kappa_band(k.all.kappa));
        if (k.rc_single)
            printf(", undefined over the single-labelled\n");
        else
            printf(", %.3f (%s) over the single-labelled\n", k.single.kappa, kappa_band(k.single.kappa));
    }
    if (*split)
        printf("  %-16s %s: %ld folds of %s clips%s\n", "folds", split, fk, range(rbuf, sizeof rbuf, fmin, fmax),
               nsplits > 1 ? " (newest split; dfewctl folds list)" : "");
    else
        printf("  %-16s none (dfewctl folds make --k 5)\n", "folds");
    return 0;
}

int cmd_report(struct ctl *c, int argc, char **argv)
{
    static const char usage_text[] =
        "usage: dfewctl report [--json]             one-screen summary of the dataset\n"
        "       dfewctl report table2 [--csv|--json]  single-labelled clips per emotion and duration\n";
    if (argc > 1 && !strcmp(argv[1], "table2"))
        return report_table2(c, argc - 1, argv + 1);
    int rc = ctl_simple_opts(c, argc, argv, usage_text);
    if (rc >= 0)
        return rc;
    if (optind != argc) {
        fprintf(stderr, "dfewctl report: unknown report '%s'\n\n%s", argv[optind], usage_text);
        return 2;
    }
    if (ds_open(c, 0))
        return 1;
    return report_summary(c);
}
