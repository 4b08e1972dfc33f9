/* dfewctl folds: named splits of the usable, single-labelled clips into k
 * folds for cross-validation (make, show, list, delete). The assignment
 * itself (stratified, optionally by movie) is lib/folds.c; this file picks
 * the eligible clips and stores the split in one transaction. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "folds.h"

static int folds_make(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"k", required_argument, NULL, 'k'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"by-movie", no_argument, NULL, 'm'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"replace", no_argument, NULL, 'r'},
                                         CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    static const char usage_text[] =
        "usage: dfewctl folds make [--k 5] [--seed S] [--by-movie] [--name NAME] [--replace]\n\n"
        "Splits the usable, single-labelled clips into k disjoint folds (fd1..fdk) for\n"
        "cross-validation and stores the split under NAME (default k<K>-seed<S>, with\n"
        "-by-movie). Folds are stratified by label: sizes differ by at most one clip,\n"
        "and so does each emotion's count. --by-movie keeps every movie inside one\n"
        "fold (no actor in both train and test); balance is then as close as the\n"
        "movies' sizes allow. The same clips and seed (default 1) give the same split.\n"
        "--replace overwrites a split of the same name.\n";
    int k = 5, by_movie = 0, replace = 0, o;
    int64_t seed = 1;
    const char *name = NULL;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        switch (o) {
        case 'k':
            if (parse_int(optarg, &k) || k < 2 || k > 100) {
                fprintf(stderr, "dfewctl folds make: --k wants a whole number from 2 to 100, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 's':
            if (parse_i64(optarg, &seed) || seed < 0) {
                fprintf(stderr, "dfewctl folds make: --seed wants a whole number >= 0, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'm': by_movie = 1; break;
        case 'n':
            if (!*optarg) {
                fprintf(stderr, "dfewctl folds make: --name must not be empty\n");
                return 2;
            }
            name = optarg;
            break;
        case 'r': replace = 1; break;
        case 'h': printf("%s", usage_text); return 0;
        default: return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    char defname[96];
    if (!name) {
        snprintf(defname, sizeof defname, "k%d-seed%lld%s", k, (long long)seed, by_movie ? "-by-movie" : "");
        name = defname;
    }
    if (ds_open(c, 0))
        return 1;
    struct db *db = c->db;
    if (db_begin(db)) {
        fprintf(stderr, "dfewctl folds make: cannot start a transaction: %s\n", db_errmsg(db));
        return 1;
    }
    int rc = 1;
    struct fold_item *items = NULL;
    int *fold = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = db_prepare(db, "SELECT id FROM splits WHERE name = ?");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int64_t old = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (old && !replace) {
        fprintf(stderr, "dfewctl folds make: a split named '%s' exists; choose another --name, or add --replace\n",
                name);
        goto out;
    }
    st = db_prepare(db, "SELECT clip_id, label, movie_id FROM clip_labels WHERE state = 'usable' AND label IS NOT NULL "
                        "ORDER BY clip_id");
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            items = xrealloc(items, cap * sizeof *items);
        }
        items[n].id = sqlite3_column_int64(st, 0);
        items[n].label = sqlite3_column_int(st, 1) - 1;
        items[n].group = sqlite3_column_int64(st, 2);
        n++;
    }
    sqlite3_reset(st);
    if (n < (size_t)k) {
        fprintf(stderr,
                "dfewctl folds make: %zu usable single-labelled clip%s; %d folds need at least %d (dfewctl report "
                "shows the clips and labels)\n",
                n, n == 1 ? "" : "s", k, k);
        goto out;
    }
    fold = xmalloc(n * sizeof *fold);
    if (folds_assign(items, n, k, (uint64_t)seed, by_movie, fold)) {
        fprintf(stderr,
                "dfewctl folds make: the eligible clips come from fewer than %d movies, so --by-movie cannot make %d "
                "folds; use fewer folds or leave out --by-movie\n",
                k, k);
        goto out;
    }
    if (old) {
        st = db_prepare(db, "DELETE FROM splits WHERE id = ?");
        sqlite3_bind_int64(st, 1, old);
        if (db_step_done(db, st))
            goto dberr;
    }
    st = db_prepare(db, "INSERT INTO splits (name, k, seed, by_movie, threshold, source, created_at) "
                        "VALUES (?, ?, ?, ?, (SELECT threshold FROM label_settings WHERE id = 1), 'dfewctl folds make', ?)");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, k);
    sqlite3_bind_int64(st, 3, seed);
    sqlite3_bind_int(st, 4, by_movie);
    sqlite3_bind_double(st, 5, now_s());
    if (db_step_done(db, st))
        goto dberr;
    int64_t split = sqlite3_last_insert_rowid(db->h);
    for (size_t i = 0; i < n; i++) {
        st = db_prepare(db, "INSERT INTO fold_members (split_id, clip_id, fold, label) VALUES (?, ?, ?, ?)");
        sqlite3_bind_int64(st, 1, split);
        sqlite3_bind_int64(st, 2, items[i].id);
        sqlite3_bind_int(st, 3, fold[i] + 1);
        sqlite3_bind_int(st, 4, items[i].label + 1);
        if (db_step_done(db, st))
            goto dberr;
    }
    if (db_commit(db))
        goto dberr;
    rc = 0;
    if (!c->json)
        printf("%s split '%s'\n", old ? "replaced" : "made", name);
    ds_print_split(c, split);
    goto done;
dberr:
    fprintf(stderr, "dfewctl folds make: cannot store the split: %s\n", db_errmsg(db));
out:
    db_rollback(db);
done:
    free(items);
    free(fold);
    return rc;
}

static int folds_show(struct ctl *c, int argc, char **argv)
{
    int rc = ctl_simple_opts(c, argc, argv,
                             "usage: dfewctl folds show [NAME]\n\n"
                             "Per-fold sizes and class histograms of a split (the newest without NAME).\n");
    if (rc >= 0)
        return rc;
    if (argc - optind > 1) {
        fprintf(stderr, "usage: dfewctl folds show [NAME]\n");
        return 2;
    }
    if (ds_open(c, 0))
        return 1;
    int64_t id = ds_split(c, "folds show", optind < argc ? argv[optind] : NULL, NULL);
    if (!id)
        return 1;
    return ds_print_split(c, id) ? 1 : 0;
}

static int folds_list(struct ctl *c, int argc, char **argv)
{
    int rc = ctl_simple_opts(c, argc, argv, "usage: dfewctl folds list\n\nThe stored splits, newest last.\n");
    if (rc >= 0)
        return rc;
    if (ds_open(c, 0))
        return 1;
    return ctl_print_query(c,
                           "SELECT s.name, s.k, s.seed, s.by_movie, s.threshold AS r, "
                           "(SELECT count(*) FROM fold_members f WHERE f.split_id = s.id) AS clips, s.source, "
                           "strftime('%Y-%m-%dT%H:%M:%SZ', s.created_at, 'unixepoch') AS created FROM splits s "
                           "ORDER BY s.id",
                           NULL, "no splits yet (dfewctl folds make --k 5)") < 0
               ? 1
               : 0;
}

static int folds_delete(struct ctl *c, int argc, char **argv)
{
    int rc = ctl_simple_opts(c, argc, argv, "usage: dfewctl folds delete NAME\n\nRemoves a stored split.\n");
    if (rc >= 0)
        return rc;
    if (argc - optind != 1) {
        fprintf(stderr, "usage: dfewctl folds delete NAME\n");
        return 2;
    }
    if (ds_open(c, 0))
        return 1;
    int64_t id = ds_split(c, "folds delete", argv[optind], NULL);
    if (!id)
        return 1;
    if (db_begin(c->db))
        return 1;
    sqlite3_stmt *st = db_prepare(c->db, "DELETE FROM splits WHERE id = ?");
    sqlite3_bind_int64(st, 1, id);
    if (db_step_done(c->db, st) || db_commit(c->db)) {
        fprintf(stderr, "dfewctl folds delete: %s\n", db_errmsg(c->db));
        db_rollback(c->db);
        return 1;
    }
    if (c->json) {
        struct sbuf b = {0};
        sbuf_add_json_str(&b, argv[optind]);
        printf("{\"deleted\":%s}\n", sbuf_str(&b));
        sbuf_free(&b);
    } else
        printf("deleted split '%s'\n", argv[optind]);
    return 0;
}

int cmd_folds(struct ctl *c, int argc, char **argv)
{
    static const struct ds_sub subs[] = {
        {"make", folds_make}, {"show", folds_show}, {"list", folds_list}, {"delete", folds_delete}, {NULL, NULL}};
    static const char usage_text[] =
        "usage: dfewctl folds make [--k 5] [--seed S] [--by-movie] [--name N] [--replace]  store a split\n"
        "       dfewctl folds show [NAME]     per-fold sizes and class histograms\n"
        "       dfewctl folds list            the stored splits\n"
        "       dfewctl folds delete NAME     remove a split\n";
    return ds_dispatch(c, argc, argv, subs, usage_text);
}
