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
#include "xlsx.h"
#include "votes.h"

enum csv_format { FMT_LONG, FMT_WIDE };

struct import_run {
    struct ctl *c;
    const char *file;
    char *xlsx_csv;      /* an .xlsx file's first sheet as CSV text (else NULL) */
    size_t xlsx_len;
    enum csv_format fmt;
    struct ds_vote_cols cols; /* wide: where the clip and the counts are */
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
    char why[1024];
    if (ds_vote_header(in->field, in->nfield, 0, &r->cols, why, sizeof why) == 0) {
        r->fmt = FMT_WIDE;
        return 0;
    }
    int emotions = 0;
    for (int i = 0; i < in->nfield; i++)
        emotions += ds_header_emotion(in->field[i]) != 0;
    if (emotions >= 2) { /* meant as vote counts: say what is missing */
        row_error(r, in->line, "%s", why);
        return -EINVAL;
    }
    row_error(r, in->line,
              "the first line must be a header: 'clip,annotator,emotion' (one vote per line) or "
              "'clip,happy,sad,neutral,angry,surprise,disgust,fear' (vote counts per clip, columns in any order)");
    return -EINVAL;
}

static int64_t row_clip(struct import_run *r, struct csv_reader *in, int col)
{
    const char *f = in->field[col];
    int64_t clip = ds_find_clip(r->c, f);
    if (!clip)
        row_error(r, in->line, "no clip '%s' (give a clip id from `dfewctl clips` or a DFEW video name)", f);
    else if (clip < 0)
        row_error(r, in->line, "'%s' could be clip id %s or the DFEW video %05lld (clip %lld); write the name with "
                  "its 5 digits, or id:%s for the id", f, f, atoll(f), (long long)-clip, f);
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
    int64_t clip = row_clip(r, in, 0);
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
    const struct ds_vote_cols *m = &r->cols;
    if (in->nfield < m->need) {
        row_error(r, in->line, "expected %d fields (the clip and 7 vote counts, in the header's columns), found %d",
                  m->need, in->nfield);
        return;
    }
    int64_t clip = row_clip(r, in, m->name);
    int counts[EMOTION_COUNT], total = 0, bad = 0;
    for (int k = 0; k < EMOTION_COUNT; k++) {
        const char *f = in->field[m->vote[k]];
        if (parse_int(f, &counts[k]) || counts[k] < 0) {
            row_error(r, in->line, "the %s count '%s' is not a whole number >= 0 (column %d)", emotion_name(k + 1), f,
                      m->vote[k] + 1);
            bad = 1;
        } else {
            total += counts[k];
        }
    }
    if (bad || !clip)
        return;
    const char *name = in->field[m->name];
    if (total == 0) {
        row_error(r, in->line, "clip %s has no votes on this row (all 7 counts are 0)", name);
        return;
    }
    if (total > r->c->cfg.annotators_per_clip) {
        row_error(r, in->line, "clip %s has %d votes, more than annotators_per_clip = %d ([labels] in dfew.conf)",
                  name, total, r->c->cfg.annotators_per_clip);
        return;
    }
    int prev = seen_line(r, clip, "", in->line);
    if (prev) {
        row_error(r, in->line, "clip %s appears twice (also on line %d)", name, prev);
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

/* An .xlsx file's first worksheet as CSV text in memory (line N = row N). */
static int xlsx_votes(const char *file, char **buf, size_t *len)
{
    char err[1024] = "";
    FILE *mem = open_memstream(buf, len);
    int rc = mem ? xlsx_to_csv(file, mem, err, sizeof err) : -ENOMEM;
    if (mem && fclose(mem) && !rc)
        rc = -ENOMEM;
    if (rc) {
        fprintf(stderr, "dfewctl labels import: cannot read the spreadsheet %s: %s\n", file,
                err[0] ? err : strerror(-rc));
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

/* Opens the vote file for reading as CSV: the file itself, or the CSV text
 * of its spreadsheet. */
static int open_votes(struct import_run *r, struct csv_reader *in)
{
    if (!r->xlsx_csv) {
        int rc = csv_open(in, r->file);
        if (rc)
            fprintf(stderr, "dfewctl labels import: cannot read %s: %s\n", r->file, strerror(-rc));
        return rc;
    }
    FILE *f = fmemopen(r->xlsx_csv, r->xlsx_len ? r->xlsx_len : 1, "r");
    if (!f) {
        fprintf(stderr, "dfewctl labels import: %s: %s\n", r->file, strerror(errno));
        return -errno;
    }
    if (!r->xlsx_len) /* an empty sheet: an empty stream */
        fseek(f, 0, SEEK_END);
    csv_open_stream(in, f);
    return 0;
}

static int import_file(struct ctl *c, struct import_run r);

static int labels_import(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"replace", no_argument, NULL, 'r'}, CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    static const char usage_text[] =
        "usage: dfewctl labels import [--replace] FILE\n\n"
        "Stores annotators' votes from a CSV file (or the first sheet of an .xlsx)\n"
        "with a header line, either\n"
        "  clip,annotator,emotion          one vote per line (emotion: name or 1..7)\n"
        "  clip,happy,sad,neutral,angry,surprise,disgust,fear   vote counts per clip,\n"
        "                                  columns in any order and named like the\n"
        "                                  release's (vote_happy, 1happy; clip_name,\n"
        "                                  video_name, order); a label or annotation\n"
        "                                  column is ignored (the rule makes the label)\n"
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
    struct import_run r = {.c = c, .file = argv[optind], .replace = replace};
    const char *dot = strrchr(r.file, '.');
    if (dot && !strcasecmp(dot, ".xlsx") && xlsx_votes(r.file, &r.xlsx_csv, &r.xlsx_len))
        return 1;
    int rc = import_file(c, r);
    free(r.xlsx_csv);
    return rc;
}

/* Reads the file through, then stores its votes in one transaction. */
static int import_file(struct ctl *c, struct import_run r)
{
    const char *file = r.file;
    struct csv_reader in;
    if (open_votes(&r, &in))
        return 1;
    if (ds_open(c, 0)) {
        csv_close(&in);
        return 1;
    }
    int rc = 0;
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
    if (open_votes(&r, &in))
        return 1;
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
    static const char usage_text[] = "usage: dfewctl labels import [--replace] FILE   store votes from a CSV or .xlsx file\n"
                                     "       dfewctl labels show [--label E] [CLIP...]  votes and single labels\n"
                                     "       dfewctl labels kappa                      Fleiss' kappa, agreement band\n";
    return ds_dispatch(c, argc, argv, subs, usage_text);
}
