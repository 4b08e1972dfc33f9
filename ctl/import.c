/* dfewctl import dfew DIR: reads a dataset in the DFEW release layout (the
 * real DFEW, or a `dfewctl export --format dfew`) so that its owners can use
 * dfew's reports and trainer on the official folds. In one transaction it
 * creates one movie for the release (a stand-in: the release does not say
 * which film a clip comes from), a clip per annotated video (named by its
 * DFEW name; frames are used where they are, not copied), the votes (anonymous
 * counts from the annotation file) and the split (test set k = fold k).
 * Any inconsistency rejects the whole release with file and line. Importing
 * the same release again changes nothing. Clips with interpolated frames get
 * a tensor job each (in the same transaction) that builds the trainer's
 * clip.u8 from them, unless --no-tensors. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "clipfiles.h"
#include "csv.h"
#include "dataset.h"
#include "hash.h"
#include "media.h"
#include "queue.h"
#include "xlsx.h"

struct irun {
    struct ctl *c;
    const char *dir;
    char *absdir;
    char *ann;                   /* Annotation/annotation.csv, else Annotation/annotation.xlsx */
    int ann_xlsx;                /* ann is the spreadsheet */
    char *test_dir, *train_dir;  /* EmoLabel_DataSplit/{test,train}(single-labeled) */
    char *dir16, *diral, *dirorig; /* Clip/clip_<S>x<S>_16f, Clip/clip_<S>x<S>, Clip/original */
    const char *split_name;
    int k;
    struct ds_errors err;
    /* what happened */
    int clips_new, clips_updated, clips_same, with_frames, with_duration;
    int votes_added, votes_same;
    int split_made, split_same;
    int warn_rule, warn_split;
    char first_warn_rule[256], first_warn_split[256];
    int tensors;                 /* queue tensor jobs (not --no-tensors) */
    int tensor_jobs, tensors_have; /* queued now; clips that have one or have a job for one */
};

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *a, const char *b)
{
    char *p;
    if (asprintf(&p, "%s/%s", a, b) < 0)
        abort();
    return p;
}

/* Finds the release's parts. Errors name what is missing and what to do. */
static int locate(struct irun *r)
{
    if (!is_dir(r->dir)) {
        fprintf(stderr, "dfewctl import: %s is not a directory (give the folder that holds Annotation/, "
                        "EmoLabel_DataSplit/ and Clip/)\n", r->dir);
        return -ENOENT;
    }
    char *annd = join(r->dir, "Annotation");
    r->ann = join(annd, "annotation.csv");
    if (!is_file(r->ann)) {
        char *xlsx = join(annd, "annotation.xlsx"), *zip = join(annd, "annotation.zip");
        if (is_file(xlsx)) { /* the release's own format: read as it is */
            free(r->ann);
            r->ann = xlsx;
            r->ann_xlsx = 1;
            xlsx = NULL;
        } else if (is_file(zip)) {
            fprintf(stderr, "dfewctl import: unpack %s first (unzip it inside %s: it holds annotation.xlsx)\n",
                    zip, annd);
        } else {
            fprintf(stderr, "dfewctl import: %s is missing (or annotation.xlsx): the release's annotation (7 vote "
                            "counts, the clip name and its label per line) is needed\n", r->ann);
        }
        free(xlsx);
        free(zip);
        if (!r->ann_xlsx) {
            free(annd);
            return -ENOENT;
        }
    }
    free(annd);
    static const char *const tests[] = {"test(single-labeled)", "test(single_labeled)"};
    static const char *const trains[] = {"train(single-labeled)", "train(single_labeled)"};
    char *split = join(r->dir, "EmoLabel_DataSplit");
    for (int i = 0; i < 2; i++) {
        char *t = join(split, tests[i]), *u = join(split, trains[i]);
        if (!r->test_dir && is_dir(t))
            r->test_dir = t;
        else
            free(t);
        if (!r->train_dir && is_dir(u))
            r->train_dir = u;
        else
            free(u);
    }
    free(split);
    if (r->test_dir) {
        for (r->k = 0;; r->k++) {
            char name[32];
            snprintf(name, sizeof name, "set_%d.csv", r->k + 1);
            char *p = join(r->test_dir, name);
            int ok = is_file(p);
            free(p);
            if (!ok)
                break;
        }
        if (r->k < 2) {
            fprintf(stderr, "dfewctl import: %s needs set_1.csv, set_2.csv, ... (one test set per fold; found %d)\n",
                    r->test_dir, r->k);
            return -ENOENT;
        }
    }
    char *clip = join(r->dir, "Clip");
    DIR *d = opendir(clip);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            int s1, s2, tim;
            const char *nm = de->d_name;
            char **slot = NULL;
            if (dfew_frame_dir(nm, &s1, &s2, &tim) == 0)
                slot = tim ? &r->dir16 : &r->diral;
            if (!slot)
                continue;
            char *p = join(clip, nm);
            if (*slot || !is_dir(p)) {
                if (*slot)
                    fprintf(stderr, "dfewctl import: %s has two frame folders (%s and %s); keep one size\n", clip,
                            *slot, p);
                free(p);
                if (*slot) {
                    closedir(d);
                    free(clip);
                    return -EINVAL;
                }
                continue;
            }
            *slot = p;
        }
        closedir(d);
        char *orig = join(clip, "original");
        if (is_dir(orig))
            r->dirorig = orig;
        else
            free(orig);
    }
    free(clip);
    return 0;
}

static void make_temp_tables(struct irun *r)
{
    db_exec(r->c->db, "CREATE TEMP TABLE IF NOT EXISTS rel_ann (name TEXT PRIMARY KEY, line INTEGER, "
                      "c1 INTEGER, c2 INTEGER, c3 INTEGER, c4 INTEGER, c5 INTEGER, c6 INTEGER, c7 INTEGER, "
                      "annotation INTEGER);"
                      "CREATE TEMP TABLE IF NOT EXISTS rel_split (name TEXT, fold INTEGER, test INTEGER, "
                      "label INTEGER, file TEXT, line INTEGER);"
                      "CREATE INDEX IF NOT EXISTS temp.rel_split_name ON rel_split (name, test, fold);"
                      "DELETE FROM temp.rel_ann; DELETE FROM temp.rel_split;");
}

/* Opens the annotation for reading as CSV: the file itself, or the first
 * worksheet of annotation.xlsx converted in memory (line N = row N). */
static int open_annotation(struct irun *r, struct csv_reader *in, char **buf)
{
    *buf = NULL;
    if (!r->ann_xlsx) {
        int rc = csv_open(in, r->ann);
        if (rc)
            ds_error(&r->err, r->ann, 0, "cannot read: %s", strerror(-rc));
        return rc;
    }
    size_t len = 0;
    char err[1024] = "";
    FILE *mem = open_memstream(buf, &len);
    int rc = mem ? xlsx_to_csv(r->ann, mem, err, sizeof err) : -ENOMEM;
    if (mem && fclose(mem) && !rc)
        rc = -ENOMEM;
    FILE *f = rc ? NULL : fmemopen(*buf, len ? len : 1, "r");
    if (!rc && !f)
        rc = -errno;
    if (rc) {
        ds_error(&r->err, r->ann, 0, "cannot read the spreadsheet: %s%s", err[0] ? err : strerror(-rc),
                 rc == -EINVAL ? " (save it as annotation.csv next to it, or replace it with the release's own)" : "");
        free(*buf);
        *buf = NULL;
        return rc;
    }
    csv_open_stream(in, f);
    return 0;
}

/* Where the annotation's fields are: 7 vote counts (happy .. fear), the clip
 * name and the annotation, in that order, unless a header line names them
 * (in any order; ds_vote_header says which names it knows). */
struct ann_cols {
    struct ds_vote_cols c;
    int mapped; /* from a header */
    char vote_name[EMOTION_COUNT][40]; /* the header's names of the vote columns */
};

static void ann_cols_default(struct ann_cols *m)
{
    for (int k = 0; k < EMOTION_COUNT; k++)
        m->c.vote[k] = k;
    m->c.name = EMOTION_COUNT;
    m->c.label = EMOTION_COUNT + 1;
    m->c.need = EMOTION_COUNT + 2;
    m->mapped = 0;
}

/* The columns a header names; -EINVAL (an error recorded) when it does not
 * place them all. */
static int ann_cols_from_header(struct irun *r, struct ann_cols *m, const struct csv_reader *in)
{
    char why[1024];
    if (ds_vote_header(in->field, in->nfield, 1, &m->c, why, sizeof why)) {
        ds_error(&r->err, r->ann, in->line, "%s", why);
        return -EINVAL;
    }
    for (int k = 0; k < EMOTION_COUNT; k++)
        snprintf(m->vote_name[k], sizeof m->vote_name[k], "%s", in->field[m->c.vote[k]]);
    m->mapped = 1;
    return 0;
}

static void read_annotation(struct irun *r)
{
    struct csv_reader in;
    char *xlsx_csv;
    if (open_annotation(r, &in, &xlsx_csv))
        return;
    int got, rows = 0;
    int max = r->c->cfg.annotators_per_clip;
    struct ann_cols m;
    ann_cols_default(&m);
    int first = 1;
    while ((got = csv_next(&in)) > 0) {
        int counts[EMOTION_COUNT], total = 0, label, bad = 0;
        if (first && in.line == 1 && in.nfield >= EMOTION_COUNT) { /* a header holds no counts */
            for (int k = 0; k < EMOTION_COUNT && !bad; k++)
                bad = parse_int(in.field[k], &counts[k]) || counts[k] < 0;
            first = 0;
            if (bad) {
                if (ann_cols_from_header(r, &m, &in))
                    break; /* every row would be misread */
                continue;
            }
            bad = 0;
        }
        first = 0;
        if (in.nfield < m.c.need) {
            ds_error(&r->err, r->ann, in.line, "expected %d fields (7 vote counts, clip_name, annotation%s), found %d",
                     m.c.need, m.mapped ? ", in the header's columns" : "", in.nfield);
            continue;
        }
        int k = 0;
        for (; k < EMOTION_COUNT; k++)
            if ((bad = parse_int(in.field[m.c.vote[k]], &counts[k]) || counts[k] < 0))
                break;
        rows++;
        if (bad) {
            ds_error(&r->err, r->ann, in.line, "field %d%s%s%s ('%s') must be a vote count (a whole number >= 0)",
                     m.c.vote[k] + 1, m.mapped ? " (" : "", m.mapped ? m.vote_name[k] : "", m.mapped ? ")" : "",
                     in.field[m.c.vote[k]]);
            continue;
        }
        for (k = 0; k < EMOTION_COUNT; k++)
            total += counts[k];
        const char *clip = in.field[m.c.name], *ann = in.field[m.c.label];
        if (!*clip) {
            ds_error(&r->err, r->ann, in.line, "the clip name (field %d) is empty", m.c.name + 1);
            continue;
        }
        if (parse_int(ann, &label) || label < 0 || label > EMOTION_COUNT) {
            ds_error(&r->err, r->ann, in.line, "the annotation '%s' is not 0 (not single-labelled) or 1..7", ann);
            continue;
        }
        if (total == 0 || total > max) {
            ds_error(&r->err, r->ann, in.line, "clip %s has %d votes; expected 1 to annotators_per_clip = %d "
                     "([labels] in dfew.conf)", clip, total, max);
            continue;
        }
        char name[256];
        if (dfew_clip_name(clip, name, sizeof name)) {
            ds_error(&r->err, r->ann, in.line,
                     "the clip name '%.200s' may hold letters, digits, '_', '-' and '.' only, at most 200 (it names "
                     "folders)", clip);
            continue;
        }
        sqlite3_stmt *st = db_prepare(r->c->db, "SELECT line FROM temp.rel_ann WHERE name = ?");
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        int prev = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
        sqlite3_reset(st);
        if (prev) {
            ds_error(&r->err, r->ann, in.line, "clip %s appears twice (also on line %d)", name, prev);
            continue;
        }
        st = db_prepare(r->c->db, "INSERT INTO temp.rel_ann VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, in.line);
        for (k = 0; k < EMOTION_COUNT; k++)
            sqlite3_bind_int(st, 3 + k, counts[k]);
        sqlite3_bind_int(st, 10, label);
        db_step_done(r->c->db, st);
        /* The release's label against our rule at the configured r. */
        int ours = single_label(counts, r->c->cfg.single_label_threshold);
        if (ours != label && !r->warn_rule++)
            snprintf(r->first_warn_rule, sizeof r->first_warn_rule, "%.120s:%d: clip %.40s, annotation %d, rule says %d",
                     r->ann, in.line, name, label, ours);
    }
    if (got < 0)
        ds_error(&r->err, r->ann, in.line, "%s", got == -EIO ? "read error" : in.err);
    if (!rows && !r->err.n)
        ds_error(&r->err, r->ann, 0, "no clips: the file is empty");
    csv_close(&in);
    free(xlsx_csv);
}

static void read_split_file(struct irun *r, const char *dir, int fold, int test)
{
    char name[32];
    snprintf(name, sizeof name, "set_%d.csv", fold);
    char *path = join(dir, name);
    struct csv_reader in;
    if (csv_open(&in, path)) {
        if (test || errno != ENOENT)
            ds_error(&r->err, path, 0, "cannot read: %s", strerror(errno));
        else
            ds_error(&r->err, path, 0, "missing: %s has no %s (each fold needs its train set too)", dir, name);
        free(path);
        return;
    }
    int got;
    while ((got = csv_next(&in)) > 0) {
        int label;
        if (in.line == 1 && in.nfield >= 1 && !strcasecmp(in.field[0], "video_name"))
            continue;
        if (in.nfield != 2) {
            ds_error(&r->err, path, in.line, "expected 2 fields (video_name,label), found %d", in.nfield);
            continue;
        }
        if (parse_int(in.field[1], &label) || label < 1 || label > EMOTION_COUNT) {
            ds_error(&r->err, path, in.line, "the label '%s' is not 1..7 (%s)", in.field[1], EMOTION_NAMES_HELP);
            continue;
        }
        char vname[256];
        if (dfew_clip_name(in.field[0], vname, sizeof vname))
            snprintf(vname, sizeof vname, "%s", in.field[0]); /* then in no annotation: reported below */
        sqlite3_stmt *st = db_prepare(r->c->db, "INSERT INTO temp.rel_split VALUES (?, ?, ?, ?, ?, ?)");
        sqlite3_bind_text(st, 1, vname, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, fold);
        sqlite3_bind_int(st, 3, test);
        sqlite3_bind_int(st, 4, label);
        sqlite3_bind_text(st, 5, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 6, in.line);
        db_step_done(r->c->db, st);
    }
    if (got < 0)
        ds_error(&r->err, path, in.line, "%s", got == -EIO ? "read error" : in.err);
    csv_close(&in);
    free(path);
}

/* Runs a check query whose rows are (file, line, message). */
static void check(struct irun *r, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->c->db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        ds_error(&r->err, "(check)", 0, "internal error: %s", db_errmsg(r->c->db));
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW)
        ds_error(&r->err, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1), "%s",
                 (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
}

static void check_split(struct irun *r)
{
    check(r, "SELECT file, line, 'video ' || name || ' is not in the annotation file' FROM temp.rel_split "
             "WHERE name NOT IN (SELECT name FROM temp.rel_ann) ORDER BY rowid");
    check(r, "SELECT b.file, b.line, 'video ' || b.name || ' is also on ' || a.file || ':' || a.line || "
             "CASE WHEN b.test THEN ' (a clip is in one test set)' ELSE '' END "
             "FROM temp.rel_split a JOIN temp.rel_split b ON b.name = a.name AND b.test = a.test AND "
             "(b.test OR b.fold = a.fold) AND b.rowid > a.rowid ORDER BY b.rowid");
    if (!r->train_dir)
        return;
    check(r, "SELECT t.file, t.line, 'video ' || t.name || ' is in the train and the test set of fold ' || t.fold "
             "FROM temp.rel_split t JOIN temp.rel_split s ON s.name = t.name AND s.fold = t.fold AND s.test "
             "WHERE NOT t.test ORDER BY t.rowid");
    check(r, "SELECT t.file, t.line, 'video ' || t.name || ' is in no test set' FROM temp.rel_split t "
             "WHERE NOT t.test AND NOT EXISTS (SELECT 1 FROM temp.rel_split s WHERE s.test AND s.name = t.name) "
             "ORDER BY t.rowid");
    check(r, "WITH f(k) AS (SELECT DISTINCT fold FROM temp.rel_split WHERE test) "
             "SELECT s.file, s.line, 'video ' || s.name || ' (test set of fold ' || s.fold || ') is missing from "
             "train set_' || f.k || '.csv' FROM temp.rel_split s JOIN f ON f.k != s.fold WHERE s.test AND NOT EXISTS "
             "(SELECT 1 FROM temp.rel_split t WHERE NOT t.test AND t.fold = f.k AND t.name = s.name) ORDER BY s.rowid");
    check(r, "SELECT t.file, t.line, 'video ' || t.name || ' has label ' || t.label || ' here but ' || s.label || "
             "' on ' || s.file || ':' || s.line FROM temp.rel_split t JOIN temp.rel_split s ON s.name = t.name "
             "AND s.test WHERE NOT t.test AND s.label != t.label ORDER BY t.rowid");
}

static long count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.' && is_frame_file(de->d_name);
    closedir(d);
    return n;
}

static int64_t release_movie(struct irun *r)
{
    char sha[65];
    uint64_t size = 0;
    if (sha256_file(r->ann, sha, &size)) {
        ds_error(&r->err, r->ann, 0, "cannot read it to hash it");
        return 0;
    }
    struct db *db = r->c->db;
    sqlite3_stmt *st = db_prepare(db, "SELECT id FROM movies WHERE sha256 = ?");
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (id)
        return id;
    char *source;
    if (asprintf(&source, "DFEW release %s", r->absdir) < 0)
        return 0;
    /* The movie stands for the release; its sha256 is that of the annotation
     * file, so the same release maps to the same movie. */
    st = db_prepare(db, "INSERT INTO movies (sha256, source, path, size_bytes, added_at) VALUES (?, ?, ?, ?, ?)");
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, r->absdir, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)size);
    sqlite3_bind_double(st, 5, now_s());
    free(source);
    if (db_step_done(db, st)) {
        ds_error(&r->err, r->ann, 0, "cannot add the release's movie row: %s", db_errmsg(db));
        return 0;
    }
    return sqlite3_last_insert_rowid(db->h);
}

/* One annotated clip: its row (new or refreshed) and its votes. */
static void import_clip(struct irun *r, int64_t movie, double *offset, const char *name, int line,
                        const int counts[EMOTION_COUNT], int in_split)
{
    struct db *db = r->c->db;
    char *out = r->dir16 ? join(r->dir16, name) : NULL, *al = r->diral ? join(r->diral, name) : NULL;
    if (out && !is_dir(out)) {
        free(out);
        out = NULL;
    }
    if (al && !is_dir(al)) {
        free(al);
        al = NULL;
    }
    long frames = al ? count_files(al) : 0;
    const char *state = "pending", *reason = "imported from a DFEW release without frames: usability unknown";
    if (out || in_split) {
        state = "usable";
        reason = NULL;
    } else if (r->dir16) {
        state = "unusable";
        reason = "the DFEW release has no frames for it (it drops clips whose face was not detected)";
    }
    r->with_frames += out != NULL;
    sqlite3_stmt *st = db_prepare(db, "SELECT id, movie_id, state, output_dir IS ?2, aligned_dir IS ?3 "
                                      "FROM clips WHERE name = ?1");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, out, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, al, -1, SQLITE_TRANSIENT);
    int64_t id = 0, owner = 0;
    int same = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        owner = sqlite3_column_int64(st, 1);
        same = !strcmp((const char *)sqlite3_column_text(st, 2), state) && sqlite3_column_int(st, 3) &&
               sqlite3_column_int(st, 4);
    }
    sqlite3_reset(st);
    if (id && owner != movie) {
        ds_error(&r->err, r->ann, line,
                 "a clip named %s exists already (clip %lld of movie %lld, not from this release); import into "
                 "another home (--home)", name, (long long)id, (long long)owner);
        goto out;
    }
    double now = now_s();
    if (id && !same) {
        st = db_prepare(db, "UPDATE clips SET state = ?, reason = ?, output_dir = ?, aligned_dir = ?, "
                            "frames_total = ?, updated_at = ? WHERE id = ?");
        sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, out, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, al, -1, SQLITE_TRANSIENT);
        if (al)
            sqlite3_bind_int64(st, 5, frames);
        sqlite3_bind_double(st, 6, now);
        sqlite3_bind_int64(st, 7, id);
        if (db_step_done(db, st))
            ds_error(&r->err, r->ann, line, "cannot update clip %s: %s", name, db_errmsg(db));
        r->clips_updated++;
    } else if (id) {
        r->clips_same++;
    } else {
        /* The clip's place in the stand-in movie: one after the other, each as
         * long as its original video when the release has it. */
        double dur = 0;
        if (r->dirorig) {
            char *mp4;
            struct media_info mi;
            char err[256];
            if (asprintf(&mp4, "%s/%s.mp4", r->dirorig, name) >= 0) {
                if (is_file(mp4) && media_probe(mp4, 0, &mi, NULL, NULL, err, sizeof err) == 0 && mi.duration_s > 0)
                    dur = mi.duration_s;
                free(mp4);
            }
        }
        r->with_duration += dur > 0;
        st = db_prepare(db, "INSERT INTO clips (movie_id, start_s, end_s, state, reason, frames_total, output_dir, "
                            "created_at, updated_at, name, aligned_dir, duration_known) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        sqlite3_bind_int64(st, 1, movie);
        sqlite3_bind_double(st, 2, *offset);
        sqlite3_bind_double(st, 3, *offset + (dur > 0 ? dur : 1.0));
        sqlite3_bind_text(st, 4, state, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
        if (al)
            sqlite3_bind_int64(st, 6, frames);
        sqlite3_bind_text(st, 7, out, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 8, now);
        sqlite3_bind_double(st, 9, now);
        sqlite3_bind_text(st, 10, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 11, al, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 12, dur > 0);
        *offset += dur > 0 ? dur : 1.0;
        if (db_step_done(db, st)) {
            ds_error(&r->err, r->ann, line, "cannot add clip %s: %s", name, db_errmsg(db));
            goto out;
        }
        id = sqlite3_last_insert_rowid(db->h);
        r->clips_new++;
    }
    char why[512];
    int rc = ds_set_counts(r->c, id, counts, 0, r->ann, why, sizeof why);
    if (rc < 0)
        ds_error(&r->err, r->ann, line, "%s", why);
    else if (rc == DS_UNCHANGED)
        r->votes_same++;
    else
        r->votes_added++;
out:
    free(out);
    free(al);
}

static void import_clips(struct irun *r, int64_t movie)
{
    struct db *db = r->c->db;
    sqlite3_stmt *st = db_prepare(db, "SELECT coalesce(max(end_s), 0) FROM clips WHERE movie_id = ?");
    sqlite3_bind_int64(st, 1, movie);
    double offset = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : 0;
    sqlite3_reset(st);
    /* Not a cached statement: import_clip prepares others while this one steps. */
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db->h, "SELECT name, line, c1, c2, c3, c4, c5, c6, c7, "
                                  "EXISTS (SELECT 1 FROM temp.rel_split s WHERE s.name = a.name) "
                                  "FROM temp.rel_ann a ORDER BY name", -1, &q, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(q) == SQLITE_ROW && r->err.n < DS_SHOWN_ERRORS) {
        int counts[EMOTION_COUNT];
        for (int k = 0; k < EMOTION_COUNT; k++)
            counts[k] = sqlite3_column_int(q, 2 + k);
        import_clip(r, movie, &offset, (const char *)sqlite3_column_text(q, 0), sqlite3_column_int(q, 1), counts,
                    sqlite3_column_int(q, 9));
    }
    sqlite3_finalize(q);
}

/* The split: new, or the same as stored. */
static void import_split(struct irun *r)
{
    struct db *db = r->c->db;
    sqlite3_stmt *st = db_prepare(db, "SELECT id FROM splits WHERE name = ?");
    sqlite3_bind_text(st, 1, r->split_name, -1, SQLITE_TRANSIENT);
    int64_t old = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (old) {
        /* Same clips, folds and labels as the release's test sets? */
        st = db_prepare(db, "SELECT (SELECT k FROM splits WHERE id = ?1) = ?2 AND "
                            "(SELECT count(*) FROM fold_members WHERE split_id = ?1) = "
                            "(SELECT count(*) FROM temp.rel_split WHERE test) AND NOT EXISTS ("
                            "SELECT 1 FROM temp.rel_split s JOIN clips c ON c.name = s.name WHERE s.test AND NOT EXISTS "
                            "(SELECT 1 FROM fold_members f WHERE f.split_id = ?1 AND f.clip_id = c.id "
                            "AND f.fold = s.fold AND f.label = s.label))");
        sqlite3_bind_int64(st, 1, old);
        sqlite3_bind_int(st, 2, r->k);
        int same = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
        sqlite3_reset(st);
        if (same)
            r->split_same = 1;
        else
            ds_error(&r->err, r->test_dir, 0,
                     "a split named '%s' exists with other folds; import with --split NAME, or remove it with "
                     "dfewctl folds delete %s", r->split_name, r->split_name);
        return;
    }
    char *source;
    if (asprintf(&source, "DFEW release %s", r->absdir) < 0)
        return;
    st = db_prepare(db, "INSERT INTO splits (name, k, seed, by_movie, threshold, source, created_at) "
                        "VALUES (?, ?, NULL, 0, NULL, ?, ?)");
    sqlite3_bind_text(st, 1, r->split_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, r->k);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 4, now_s());
    free(source);
    int rc = db_step_done(db, st);
    if (!rc) {
        int64_t split = sqlite3_last_insert_rowid(db->h);
        st = db_prepare(db, "INSERT INTO fold_members (split_id, clip_id, fold, label) SELECT ?, c.id, s.fold, "
                            "s.label FROM temp.rel_split s JOIN clips c ON c.name = s.name WHERE s.test");
        sqlite3_bind_int64(st, 1, split);
        rc = db_step_done(db, st);
    }
    if (rc) {
        ds_error(&r->err, r->test_dir, 0, "cannot store the split: %s", db_errmsg(db));
        return;
    }
    r->split_made = 1;
    /* The split's labels against the annotation file's. */
    st = db_prepare(db, "SELECT count(*), min(s.file || ':' || s.line || ': video ' || s.name || ' label ' || s.label "
                        "|| ', annotation ' || a.annotation) FROM temp.rel_split s JOIN temp.rel_ann a "
                        "ON a.name = s.name WHERE s.test AND s.label != a.annotation");
    if (sqlite3_step(st) == SQLITE_ROW && (r->warn_split = sqlite3_column_int(st, 0)))
        snprintf(r->first_warn_split, sizeof r->first_warn_split, "%s", (const char *)sqlite3_column_text(st, 1));
    sqlite3_reset(st);
}

/* A tensor job for each usable clip of the release with interpolated frames
 * and no tensor yet: clip.u8 at [prep] size in HOME/outputs/clips/<id>/. A
 * clip whose job exists already (same size) is not queued again. */
static void queue_tensors(struct irun *r, int64_t movie)
{
    struct ctl *c = r->c;
    struct db *db = c->db;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db->h, "SELECT id, output_dir, tensor_path IS NOT NULL FROM clips WHERE movie_id = ? "
                                  "AND state = 'usable' AND output_dir IS NOT NULL ORDER BY id", -1, &q, NULL) != SQLITE_OK) {
        ds_error(&r->err, r->dir, 0, "cannot list the clips for tensor jobs: %s", db_errmsg(db));
        return;
    }
    sqlite3_bind_int64(q, 1, movie);
    while (sqlite3_step(q) == SQLITE_ROW && !r->err.n) {
        int64_t clip = sqlite3_column_int64(q, 0);
        if (sqlite3_column_int(q, 2)) {
            r->tensors_have++;
            continue;
        }
        struct sbuf args = {0}, key = {0}, out = {0};
        sbuf_addf(&out, "%s/clips/%lld", c->paths.outputs, (long long)clip);
        sbuf_addf(&args, "{\"clip_id\":%lld,\"frames_dir\":", (long long)clip);
        sbuf_add_json_str(&args, (const char *)sqlite3_column_text(q, 1));
        sbuf_add(&args, ",\"out_dir\":");
        sbuf_add_json_str(&args, out.s);
        sbuf_addf(&args, ",\"size\":%d}", c->cfg.prep_size);
        sbuf_addf(&key, "tensor:%lld:%d", (long long)clip, c->cfg.prep_size);
        struct job_spec spec = {.kind = "tensor", .movie_id = movie, .clip_id = clip, .args_json = args.s,
                                .dedup_key = key.s};
        int64_t id;
        int rc = queue_enqueue(db, &spec, "dfewctl import: the clip's tensor from its DFEW frames", &id);
        if (rc < 0)
            ds_error(&r->err, r->dir, 0, "cannot queue the tensor job of clip %lld: %s", (long long)clip,
                     db_errmsg(db));
        else if (rc == 1)
            r->tensor_jobs++;
        else
            r->tensors_have++;
        sbuf_free(&args);
        sbuf_free(&key);
        sbuf_free(&out);
    }
    sqlite3_finalize(q);
}

static void print_result(struct irun *r)
{
    struct ctl *c = r->c;
    int changed = r->clips_new + r->clips_updated + r->votes_added + r->split_made + r->tensor_jobs;
    if (c->json) {
        struct sbuf b = {0};
        sbuf_add(&b, "{\"dir\":");
        sbuf_add_json_str(&b, r->absdir);
        sbuf_addf(&b, ",\"clips_new\":%d,\"clips_updated\":%d,\"clips_unchanged\":%d,\"with_frames\":%d,"
                      "\"with_duration\":%d,\"votes_added\":%d,\"votes_unchanged\":%d,\"split\":",
                  r->clips_new, r->clips_updated, r->clips_same, r->with_frames, r->with_duration, r->votes_added,
                  r->votes_same);
        if (r->test_dir) {
            sbuf_add_json_str(&b, r->split_name);
            sbuf_addf(&b, ",\"k\":%d,\"split_new\":%s", r->k, r->split_made ? "true" : "false");
        } else {
            sbuf_add(&b, "null");
        }
        sbuf_addf(&b, ",\"changed\":%s,\"rule_mismatches\":%d,\"split_label_mismatches\":%d,"
                      "\"tensor_jobs_queued\":%d,\"tensors_done_or_queued\":%d}",
                  changed ? "true" : "false", r->warn_rule, r->warn_split, r->tensor_jobs, r->tensors_have);
        printf("%s\n", sbuf_str(&b));
        sbuf_free(&b);
    } else {
        int total = r->clips_new + r->clips_updated + r->clips_same;
        printf("imported DFEW release %s: %d clips (%d new, %d updated), %d with frames", r->absdir, total,
               r->clips_new, r->clips_updated, r->with_frames);
        if (r->clips_new)
            printf(", %d of the new with durations from Clip/original", r->with_duration);
        printf("; votes of %d clips stored (%d already)", r->votes_added, r->votes_same);
        if (r->test_dir)
            printf("; split '%s' with %d folds%s", r->split_name, r->k, r->split_made ? "" : " (already stored)");
        else
            printf("; no EmoLabel_DataSplit, so no split");
        printf("%s\n", changed ? "" : "; nothing changed");
        if (r->tensor_jobs)
            printf("queued %d tensor jobs: dfewd builds each clip's training tensor from its frames (dfewctl wait; "
                   "then dfewctl train --split %s)\n", r->tensor_jobs, r->split_name);
    }
    if (r->warn_rule)
        fprintf(stderr,
                "dfewctl import: warning: %d clips' annotation differs from the single-label rule at r = %d (first: "
                "%s); clip_labels follows the rule\n",
                r->warn_rule, c->cfg.single_label_threshold, r->first_warn_rule);
    if (r->warn_split)
        fprintf(stderr,
                "dfewctl import: warning: %d clips have another label in the split than in the annotation file "
                "(first: %s); the split keeps its own\n",
                r->warn_split, r->first_warn_split);
    if (r->test_dir && !r->dir16)
        fprintf(stderr, "dfewctl import: note: no Clip/clip_<S>x<S>_16f folder, so the clips have no frames "
                        "(training needs them)\n");
}

int cmd_import(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"split", required_argument, NULL, 's'},
                                         {"no-tensors", no_argument, NULL, 'T'}, CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    static const char usage_text[] =
        "usage: dfewctl import dfew [--split NAME] [--no-tensors] DIR\n\n"
        "Reads a dataset in the DFEW release layout: Annotation/annotation.csv or the\n"
        "release's annotation.xlsx (first sheet; 7 vote counts, clip_name, annotation per\n"
        "row, or the columns a header names, in any order: happy|vote_happy|1happy .. fear,\n"
        "clip|clip_name|video_name|name|order, annotation|label),\n"
        "EmoLabel_DataSplit/{test,train}(single-labeled)/set_<k>.csv, and the\n"
        "frame folders Clip/clip_<S>x<S>_16f/<name>/ and Clip/clip_<S>x<S>/<name>/ when\n"
        "present (used in place, not copied; Clip/original/<name>.mp4 gives durations).\n"
        "It adds one movie standing for the release, a clip per annotated video named by\n"
        "its DFEW name, the votes (anonymous), and the split NAME (default 'dfew'; test\n"
        "set k = fold k). All in one transaction: any inconsistency rejects the release.\n"
        "Importing the same release again changes nothing.\n"
        "Each clip with Clip/clip_<S>x<S>_16f frames gets a tensor job: dfewd scales its\n"
        "frames to [prep] size and writes the trainer's clip.u8 into HOME/outputs/clips/<id>/\n"
        "(--no-tensors: reports and exports only, no training).\n";
    struct irun r = {.c = c, .split_name = DS_OFFICIAL_SPLIT, .tensors = 1};
    if (argc < 2 || strcmp(argv[1], "dfew")) {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            printf("%s", usage_text);
            return 0;
        }
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    argc--;
    argv++;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 's' && *optarg)
            r.split_name = optarg;
        else if (o == 'T')
            r.tensors = 0;
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
    r.dir = argv[optind];
    int rc = 1;
    char *shown = NULL, why[256];
    /* the release's path goes into the database as text: UTF-8 only */
    if (ctl_path_utf8(r.dir, &shown, why, sizeof why)) {
        fprintf(stderr, "dfewctl import: %s: %s\n", shown, why);
        free(shown);
        goto out;
    }
    if (locate(&r) || abs_path(r.dir, &r.absdir))
        goto out;
    /* Frame folders are stored as absolute paths (with the folders above
     * the release, or a link's target: UTF-8 too). */
    char **dirs[] = {&r.absdir, &r.dir16, &r.diral, &r.dirorig};
    for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
        char *a;
        if (i > 0 && *dirs[i] && !abs_path(*dirs[i], &a)) {
            free(*dirs[i]);
            *dirs[i] = a;
        }
        if (*dirs[i] && ctl_path_utf8(*dirs[i], &shown, why, sizeof why)) {
            fprintf(stderr, "dfewctl import: %s: %s\n", shown, why);
            free(shown);
            goto out;
        }
    }
    if (ds_open(c, CTL_CREATE))
        goto out;
    /* Reading and checking the release's files fills temporary tables only:
     * it does not hold the database's write lock, so dfewd and other
     * commands write meanwhile. The write transaction is the import itself. */
    make_temp_tables(&r);
    db_exec(c->db, "BEGIN");
    read_annotation(&r);
    for (int k = 1; k <= r.k; k++) {
        read_split_file(&r, r.test_dir, k, 1);
        if (r.train_dir)
            read_split_file(&r, r.train_dir, k, 0);
    }
    if (!r.err.n)
        check_split(&r);
    db_exec(c->db, "COMMIT");
    if (!r.err.n && db_begin(c->db)) {
        fprintf(stderr, "dfewctl import: cannot start a transaction: %s\n", db_errmsg(c->db));
        goto out;
    }
    int64_t movie = 0;
    if (!r.err.n) {
        movie = release_movie(&r);
        if (movie)
            import_clips(&r, movie);
    }
    if (!r.err.n && r.test_dir)
        import_split(&r);
    if (!r.err.n && movie && r.tensors)
        queue_tensors(&r, movie);
    if (r.err.n) {
        if (c->db->tx_depth)
            db_rollback(c->db);
        char what[1200];
        snprintf(what, sizeof what, "import: %s", r.dir);
        ds_errors_report(c, &r.err, what);
        goto out;
    }
    if (db_commit(c->db)) {
        fprintf(stderr, "dfewctl import: cannot commit: %s\n", db_errmsg(c->db));
        db_rollback(c->db);
        goto out;
    }
    rc = 0;
    if (r.tensor_jobs && ctl_wake(c) == 0)
        fprintf(stderr, "dfewctl import: note: dfewd is not running on %s; the tensor jobs wait until it starts\n",
                c->paths.home);
    print_result(&r);
out:
    if (c->db)
        db_exec(c->db, "DROP TABLE IF EXISTS temp.rel_ann; DROP TABLE IF EXISTS temp.rel_split;");
    ds_errors_free(&r.err);
    free(r.absdir);
    free(r.ann);
    free(r.test_dir);
    free(r.train_dir);
    free(r.dir16);
    free(r.diral);
    free(r.dirorig);
    return rc;
}
