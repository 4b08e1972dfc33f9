/* dfewctl labels: importing annotators' votes from CSV (one transaction: a
 * file with any bad row stores nothing), showing each clip's 7-vote
 * distribution and single label (the clip_labels view), and Fleiss' kappa
 * over the votes (DFEW paper, section 2.3). Not the rule or the math: those
 * are lib/labels.c. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "dataset.h"
#include "votes.h"

enum csv_format { FMT_LONG, FMT_WIDE };

struct import_run {
    struct ctl *c;
    const char *file;
    enum csv_format fmt;
    int replace;
    int rows, added, unchanged, replaced;
    struct ds_errors err;
};

#define row_error(r, line, ...) ds_error(&(r)->err, (r)->file, line, __VA_ARGS__)

/* The header names the format. */
static int read_header(struct import_run *r, struct csv_reader *in)
{
    static const char *const clip_names[] = {"clip", "clip_id", "video_name", "name"};
    int first_ok = 0;
    for (size_t i = 0; in->nfield > 0 && i < ARRAY_LEN(clip_names); i++)
        first_ok |= !strcasecmp(in->field[0], clip_names[i]);
    if (first_ok && in->nfield == 3 && !strcasecmp(in->field[1], "annotator") && !strcasecmp(in->field[2], "emotion")) {
        r->fmt = FMT_LONG;
        return 0;
    }
    if (first_ok && in->nfield == 1 + EMOTION_COUNT) {
        int ok = 1;
        for (int k = 0; k < EMOTION_COUNT; k++)
            ok &= emotion_parse(in->field[1 + k]) == k + 1 && parse_int(in->field[1 + k], &(int){0}) != 0;
        if (ok) {
            r->fmt = FMT_WIDE;
            return 0;
        }
    }
    row_error(r, in->line,
              "the first line must be a header: 'clip,annotator,emotion' (one vote per line) or "
              "'clip,happy,sad,neutral,angry,surprise,disgust,fear' (vote counts per clip, in this order)");
    return -EINVAL;
}

static int64_t row_clip(struct import_run *r, struct csv_reader *in)
{
    int64_t clip = ds_find_clip(r->c, in->field[0]);
    if (!clip)
        row_error(r, in->line, "no clip '%s' (give a clip id from `dfewctl clips` or a DFEW video name)",
                  in->field[0]);
    else if (clip < 0)
        row_error(r, in->line, "'%s' could be clip id %s or the DFEW video %05lld (clip %lld); write the name with "
                  "its 5 digits, or id:%s for the id", in->field[0], in->field[0], atoll(in->field[0]),
                  (long long)-clip, in->field[0]);
    return clip > 0 ? clip : 0;
}

/* Where a key was seen earlier in this file (temp table, this connection only). */
static int seen_line(struct import_run *r, int64_t clip, const char *annotator, int line)
{
    sqlite3_stmt *st = db_prepare(r->c->db, "SELECT line FROM temp.import_seen WHERE clip_id = ? AND annotator = ?");
    sqlite3_bind_int64(st, 1, clip);
    sqlite3_bind_text(st, 2, annotator, -1, SQLITE_TRANSIENT);
    int prev = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    if (!prev) {
        st = db_prepare(r->c->db, "INSERT INTO temp.import_seen (clip_id, annotator, line) VALUES (?, ?, ?)");
        sqlite3_bind_int64(st, 1, clip);
        sqlite3_bind_text(st, 2, annotator, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, line);
        db_step_done(r->c->db, st);
    }
    return prev;
}

static void long_row(struct import_run *r, struct csv_reader *in)
{
    if (in->nfield != 3) {
        row_error(r, in->line, "expected 3 fields (clip,annotator,emotion), found %d", in->nfield);
        return;
    }
    int64_t clip = row_clip(r, in);
    const char *who = in->field[1];
    int emotion = emotion_parse(in->field[2]);
    char why[200];
    int bad_who = vote_check_annotator(who, why, sizeof why);
    if (bad_who)
        row_error(r, in->line, "%s", why);
    if (emotion < 0)
        row_error(r, in->line, "unknown emotion '%s' (use %s)", in->field[2], EMOTION_NAMES_HELP);
    if (!clip || bad_who || emotion < 0)
        return;
    int prev = seen_line(r, clip, who, in->line);
    if (prev) {
        row_error(r, in->line, "annotator '%s' votes twice for clip %s (also on line %d)", who, in->field[0], prev);
        return;
    }
    struct vote v = {.clip = clip, .annotator = who, .emotion = emotion, .source = r->file, .replace = r->replace,
                     .max_votes = r->c->cfg.annotators_per_clip};
    int stored = 0, rc = vote_store(r->c->db, &v, &stored);
    if (rc == VOTE_UNCHANGED)
        r->unchanged++;
    else if (rc == VOTE_REPLACED)
        r->replaced++;
    else if (rc == VOTE_ADDED)
        r->added++;
    else if (rc == -EEXIST)
        row_error(r, in->line,
                  "annotator '%s' already voted %s for clip %s (stored); this line says %s: add --replace to "
                  "overwrite stored votes",
                  who, emotion_name(stored), in->field[0], emotion_name(emotion));
    else if (rc == -EDQUOT)
        row_error(r, in->line,
                  "clip %s would have %d votes, more than annotators_per_clip = %d ([labels] in dfew.conf)",
                  in->field[0], stored + 1, v.max_votes);
    else
        row_error(r, in->line, "cannot store the vote: %s", db_errmsg(r->c->db));
}

static void wide_row(struct import_run *r, struct csv_reader *in)
{
    if (in->nfield != 1 + EMOTION_COUNT) {
        row_error(r, in->line, "expected 8 fields (clip and 7 vote counts), found %d", in->nfield);
        return;
    }
    int64_t clip = row_clip(r, in);
    int counts[EMOTION_COUNT], total = 0, bad = 0;
    for (int k = 0; k < EMOTION_COUNT; k++) {
        if (parse_int(in->field[1 + k], &counts[k]) || counts[k] < 0) {
            row_error(r, in->line, "the %s count '%s' is not a whole number >= 0", emotion_name(k + 1),
                      in->field[1 + k]);
            bad = 1;
        } else {
            total += counts[k];
        }
    }
    if (bad || !clip)
        return;
    if (total == 0) {
        row_error(r, in->line, "clip %s has no votes on this row (all 7 counts are 0)", in->field[0]);
        return;
    }
    if (total > r->c->cfg.annotators_per_clip) {
        row_error(r, in->line, "clip %s has %d votes, more than annotators_per_clip = %d ([labels] in dfew.conf)",
                  in->field[0], total, r->c->cfg.annotators_per_clip);
        return;
    }
    int prev = seen_line(r, clip, "", in->line);
    if (prev) {
        row_error(r, in->line, "clip %s appears twice (also on line %d)", in->field[0], prev);
        return;
    }
    char why[512];
    int rc = ds_set_counts(r->c, clip, counts, r->replace, r->file, why, sizeof why);
    if (rc < 0)
        row_error(r, in->line, "%s", why);
    else if (rc == DS_ADDED)
        r->added += total;
    else if (rc == DS_UNCHANGED)
        r->unchanged += total;
    else
        r->replaced += total;
}

static int labels_import(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"replace", no_argument, NULL, 'r'}, CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    static const char usage_text[] =
        "usage: dfewctl labels import [--replace] FILE\n\n"
        "Stores annotators' votes from a CSV file with a header line, either\n"
        "  clip,annotator,emotion          one vote per line (emotion: name or 1..7)\n"
        "  clip,happy,sad,neutral,angry,surprise,disgust,fear   vote counts per clip\n"
        "A clip is its DFEW video name or its id (dfewctl clips; id:N when a short\n"
        "number could also be a name without its leading zeros). The whole file is\n"
        "one transaction: any bad line (unknown clip or emotion, an annotator voting\n"
        "twice for a clip, more votes than [labels] annotators_per_clip) rejects the\n"
        "file, with each line number and reason, and nothing is stored. Importing the\n"
        "same file again changes nothing. Votes that differ from stored ones are\n"
        "refused unless --replace (long: that annotator's vote; wide: the clip's votes).\n";
    int replace = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 'r')
            replace = 1;
        else if (o == 'h') {
            printf("%s", usage_text);
            return 0;
        } else
            return 2;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    const char *file = argv[optind];
    struct csv_reader in;
    int rc = csv_open(&in, file);
    if (rc) {
        fprintf(stderr, "dfewctl labels import: cannot read %s: %s\n", file, strerror(-rc));
        return 1;
    }
    if (ds_open(c, 0)) {
        csv_close(&in);
        return 1;
    }
    struct import_run r = {.c = c, .file = file, .replace = replace};
    /* The file is read through once before the write transaction: a file
     * that is not text (UTF-8, line and field lengths) is refused without
     * holding the database, and the transaction is only the votes' work. */
    int got;
    while ((got = csv_next(&in)) > 0) {
    }
    if (got < 0) {
        row_error(&r, in.line, "%s", got == -EIO ? "read error" : in.err);
        csv_close(&in);
        char what[1024];
        snprintf(what, sizeof what, "labels import: %s", file);
        ds_errors_report(c, &r.err, what);
        return 1;
    }
    csv_close(&in);
    if ((rc = csv_open(&in, file)) != 0) {
        fprintf(stderr, "dfewctl labels import: cannot read %s: %s\n", file, strerror(-rc));
        return 1;
    }
    if (db_begin(c->db) || db_exec(c->db, "CREATE TEMP TABLE IF NOT EXISTS import_seen (clip_id INTEGER, "
                                          "annotator TEXT, line INTEGER, PRIMARY KEY (clip_id, annotator)); "
                                          "DELETE FROM temp.import_seen;")) {
        fprintf(stderr, "dfewctl labels import: cannot start a transaction: %s\n", db_errmsg(c->db));
        csv_close(&in);
        return 1;
    }
    got = csv_next(&in);
    int header = 1;
    if (got == 0)
        row_error(&r, 1, "the file is empty; it needs a header line and votes");
    else if (got > 0)
        header = read_header(&r, &in) == 0;
    while (got > 0 && header) {
        got = csv_next(&in);
        if (got <= 0)
            break;
        r.rows++;
        if (r.fmt == FMT_LONG)
            long_row(&r, &in);
        else
            wide_row(&r, &in);
    }
    if (got < 0)
        row_error(&r, in.line, "%s", got == -EIO ? "read error" : in.err);
    csv_close(&in);
    int changed = r.added + r.replaced;
    if (r.err.n || !changed)
        db_rollback(c->db);
    else if (db_commit(c->db)) {
        fprintf(stderr, "dfewctl labels import: cannot commit: %s\n", db_errmsg(c->db));
        db_rollback(c->db);
        rc = 1;
    }
    db_exec(c->db, "DELETE FROM temp.import_seen");
    const char *fmt_name = r.fmt == FMT_LONG ? "long" : "wide";
    if (r.err.n) {
        char what[1024];
        snprintf(what, sizeof what, "labels import: %s", file);
        ds_errors_report(c, &r.err, what);
        rc = 1;
    } else if (!rc) {
        if (c->json) {
            struct sbuf b = {0};
            sbuf_add_json_str(&b, file);
            printf("{\"file\":%s,\"format\":\"%s\",\"rows\":%d,\"added\":%d,\"unchanged\":%d,\"replaced\":%d}\n",
                   sbuf_str(&b), fmt_name, r.rows, r.added, r.unchanged, r.replaced);
            sbuf_free(&b);
        } else {
            printf("%s: %d rows (%s format): %d votes added, %d replaced, %d already stored%s\n", file, r.rows,
                   fmt_name, r.added, r.replaced, r.unchanged, changed ? "" : "; nothing changed");
        }
    }
    return rc;
}

static int labels_show(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"label", required_argument, NULL, 'l'}, CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    static const char usage_text[] =
        "usage: dfewctl labels show [--label EMOTION|ambiguous] [CLIP...]\n\n"
        "Each annotated clip's votes per emotion, total votes and single label (the\n"
        "clip_labels view): the emotion with more than r votes ([labels]\n"
        "single_label_threshold, 6 by default), else ambiguous.\n";
    const char *label = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 'l')
            label = optarg;
        else if (o == 'h') {
            printf("%s", usage_text);
            return 0;
        } else
            return 2;
    }
    char want[16] = "";
    if (label) {
        int e = strcasecmp(label, "ambiguous") ? emotion_parse(label) : 0;
        if (e < 0) {
            fprintf(stderr, "dfewctl labels show: unknown label '%s' (use %s, or ambiguous)\n", label,
                    EMOTION_NAMES_HELP);
            return 2;
        }
        snprintf(want, sizeof want, "%s", e ? emotion_name(e) : "ambiguous");
    }
    if (ds_open(c, 0))
        return 1;
    /* The selected clips, as a JSON array of ids (clip names resolved here). */
    struct sbuf ids = {0};
    sbuf_addc(&ids, '[');
    for (int i = optind; i < argc; i++) {
        int64_t id = ds_find_clip(c, argv[i]);
        if (id < 0) {
            fprintf(stderr, "dfewctl labels show: '%s' could be clip id %s or the DFEW video %05lld (clip %lld); "
                            "write the name with its 5 digits, or id:%s for the id\n", argv[i], argv[i], atoll(argv[i]),
                    (long long)-id, argv[i]);
            sbuf_free(&ids);
            return 2;
        }
        if (!id) {
            fprintf(stderr, "dfewctl labels show: no clip '%s' (dfewctl clips lists them)\n", argv[i]);
            sbuf_free(&ids);
            return 1;
        }
        sbuf_addf(&ids, "%s%lld", i > optind ? "," : "", (long long)id);
    }
    sbuf_addc(&ids, ']');
    const char *binds[] = {want, sbuf_str(&ids), NULL};
    int n = ctl_print_query(c,
                            "SELECT clip_id AS clip, coalesce(name, '') AS name, happy, sad, neutral, angry, surprise, "
                            "disgust, fear, votes, label_name AS label FROM clip_labels "
                            "WHERE (?1 = '' OR label_name = ?1) AND (json_array_length(?2) = 0 OR clip_id IN "
                            "(SELECT value FROM json_each(?2))) ORDER BY clip_id",
                            binds, "no annotated clips (dfewctl labels import FILE adds votes)");
    sbuf_free(&ids);
    return n < 0 ? 1 : 0;
}

static void kappa_json(struct sbuf *b, const char *key, const struct kappa_result *k, int rc)
{
    sbuf_addf(b, "\"%s\":{\"clips\":%d,\"min_raters\":%d,\"max_raters\":%d,\"ratings\":%ld,", key, k->subjects,
              k->min_raters, k->max_raters, k->ratings);
    if (rc)
        sbuf_add(b, "\"kappa\":null,\"pbar\":null,\"pe\":null,\"band\":\"undefined\"}");
    else
        sbuf_addf(b, "\"kappa\":%.17g,\"pbar\":%.17g,\"pe\":%.17g,\"band\":\"%s\"}", k->kappa, k->pbar, k->pe,
                  kappa_band(k->kappa));
}

static void kappa_row(const char *what, const struct kappa_result *k, int rc)
{
    char raters[32];
    if (k->min_raters == k->max_raters)
        snprintf(raters, sizeof raters, "%d", k->max_raters);
    else
        snprintf(raters, sizeof raters, "%d-%d", k->min_raters, k->max_raters);
    if (rc)
        printf("%-16s  %5d  %-6s  %5s  %5s  %5s  undefined (%s)\n", what, k->subjects, k->subjects ? raters : "-",
               "-", "-", "-", k->subjects ? "every vote is for one emotion" : "no clip with 2 or more votes");
    else
        printf("%-16s  %5d  %-6s  %5.3f  %5.3f  %5.3f  %s\n", what, k->subjects, raters, k->pbar, k->pe, k->kappa,
               kappa_band(k->kappa));
}

static int labels_kappa(struct ctl *c, int argc, char **argv)
{
    int rc = ctl_simple_opts(c, argc, argv,
                             "usage: dfewctl labels kappa [--json]\n\n"
                             "Fleiss' kappa of the annotators' votes (DFEW paper, eqs. 1-5) over all annotated\n"
                             "clips and over the single-labelled ones, with the agreement band of the paper's\n"
                             "Table 3: poor (<= 0), slight (to 0.20), fair (0.40), moderate (0.60), substantial\n"
                             "(0.80), almost perfect. Clips with fewer than 2 votes are left out.\n");
    if (rc >= 0)
        return rc;
    if (ds_open(c, 0))
        return 1;
    struct votes_kappa k;
    if (ds_kappa(c, &k)) {
        fprintf(stderr, "dfewctl labels kappa: cannot read the votes: %s\n", db_errmsg(c->db));
        return 1;
    }
    if (c->json) {
        struct sbuf b = {0};
        sbuf_addf(&b, "{\"threshold\":%d,", k.threshold);
        kappa_json(&b, "all", &k.all, k.rc_all);
        sbuf_addc(&b, ',');
        kappa_json(&b, "single_labelled", &k.single, k.rc_single);
        sbuf_addc(&b, '}');
        printf("%s\n", sbuf_str(&b));
        sbuf_free(&b);
        return 0;
    }
    printf("Fleiss' kappa over 7 emotions; single label: more than r = %d votes\n", k.threshold);
    printf("%-16s  %5s  %-6s  %5s  %5s  %5s  %s\n", "clips", "count", "votes", "P", "Pe", "kappa", "agreement");
    kappa_row("all annotated", &k.all, k.rc_all);
    kappa_row("single-labelled", &k.single, k.rc_single);
    return 0;
}

int cmd_labels(struct ctl *c, int argc, char **argv)
{
    static const struct ds_sub subs[] = {
        {"import", labels_import}, {"show", labels_show}, {"kappa", labels_kappa}, {NULL, NULL}};
    static const char usage_text[] = "usage: dfewctl labels import [--replace] FILE   store votes from a CSV file\n"
                                     "       dfewctl labels show [--label E] [CLIP...]  votes and single labels\n"
                                     "       dfewctl labels kappa                      Fleiss' kappa, agreement band\n";
    return ds_dispatch(c, argc, argv, subs, usage_text);
}
