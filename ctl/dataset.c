/* Helpers shared by dfewctl's dataset commands (see dataset.h). */
#include "dataset.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int ds_open(struct ctl *c, int flags)
{
    if (ctl_open(c, flags | CTL_NEED_CONFIG))
        return 1;
    int r = 0, rc = votes_sync_settings(c->db, c->cfg.single_label_threshold, c->cfg.annotators_per_clip, &r);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot store the [labels] settings of %s in the database: %s\n", c->prog, c->paths.conf,
                db_errmsg(c->db));
        return 1;
    }
    if (rc > 0 && r != c->cfg.single_label_threshold)
        fprintf(stderr, "%s: single-label threshold r is now %d (was %d; from %s): clip_labels follows it\n",
                c->prog, c->cfg.single_label_threshold, r, c->paths.conf);
    return 0;
}

static int64_t clip_named(struct ctl *c, const char *name)
{
    sqlite3_stmt *st = db_prepare(c->db, "SELECT id FROM clips WHERE name = ?");
    if (!st)
        return 0;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return id;
}

int64_t ds_find_clip(struct ctl *c, const char *ident)
{
    int explicit_id = !strncmp(ident, "id:", 3);
    int64_t id = explicit_id ? 0 : clip_named(c, ident);
    if (id)
        return id;
    if (parse_i64(ident + (explicit_id ? 3 : 0), &id) || id < 1)
        return 0;
    sqlite3_stmt *st = db_prepare(c->db, "SELECT id FROM clips WHERE id = ?");
    sqlite3_bind_int64(st, 1, id);
    id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    char padded[32];
    if (id && !explicit_id && strlen(ident) < 5 && strspn(ident, "0123456789") == strlen(ident)) {
        snprintf(padded, sizeof padded, "%05lld", (long long)id);
        int64_t other = clip_named(c, padded);
        if (other && other != id)
            return -other;
    }
    return id;
}

static void format_counts(const int v[EMOTION_COUNT], char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; k < EMOTION_COUNT && o < len; k++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s %d", k ? ", " : "", emotion_name(k + 1), v[k]);
}

int ds_set_counts(struct ctl *c, int64_t clip, const int counts[EMOTION_COUNT], int replace, const char *source,
                  char *why, size_t whylen)
{
    int stored[EMOTION_COUNT] = {0}, nstored = 0;
    sqlite3_stmt *st = db_prepare(c->db, "SELECT emotion, count(*) FROM votes WHERE clip_id = ? GROUP BY emotion");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, clip);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int e = sqlite3_column_int(st, 0);
        if (e >= 1 && e <= EMOTION_COUNT)
            stored[e - 1] = sqlite3_column_int(st, 1);
        nstored += sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    if (nstored && !memcmp(stored, counts, sizeof stored))
        return DS_UNCHANGED;
    if (nstored && !replace) {
        char a[160], b[160];
        format_counts(stored, a, sizeof a);
        format_counts(counts, b, sizeof b);
        snprintf(why, whylen, "clip %lld already has other votes (%s; this row: %s); add --replace to replace them",
                 (long long)clip, a, b);
        return -EEXIST;
    }
    int rc = 0;
    if (nstored) {
        st = db_prepare(c->db, "DELETE FROM votes WHERE clip_id = ?");
        sqlite3_bind_int64(st, 1, clip);
        rc = db_step_done(c->db, st);
    }
    double now = now_s();
    int n = 0;
    for (int k = 0; k < EMOTION_COUNT && !rc; k++) {
        for (int i = 0; i < counts[k] && !rc; i++) {
            char who[16];
            snprintf(who, sizeof who, "#%d", ++n);
            st = db_prepare(c->db, "INSERT INTO votes (clip_id, annotator, emotion, source, added_at) "
                                   "VALUES (?, ?, ?, ?, ?)");
            sqlite3_bind_int64(st, 1, clip);
            sqlite3_bind_text(st, 2, who, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(st, 3, k + 1);
            sqlite3_bind_text(st, 4, source, -1, SQLITE_TRANSIENT);
            sqlite3_bind_double(st, 5, now);
            rc = db_step_done(c->db, st);
        }
    }
    if (rc) {
        snprintf(why, whylen, "cannot store the votes of clip %lld: %s", (long long)clip, db_errmsg(c->db));
        return rc;
    }
    return nstored ? DS_REPLACED : DS_ADDED;
}

int ds_kappa(struct ctl *c, struct votes_kappa *k)
{
    return votes_kappa(c->db, k); /* label_settings.threshold = [labels] after ds_open */
}

int64_t ds_split(struct ctl *c, const char *cmd, const char *name, char **name_out)
{
    sqlite3_stmt *st = name ? db_prepare(c->db, "SELECT id, name FROM splits WHERE name = ?")
                            : db_prepare(c->db, "SELECT id, name FROM splits ORDER BY name = '" DS_OFFICIAL_SPLIT
                                                "' DESC, id");
    if (!st)
        return 0;
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int64_t id = 0;
    int n = 0;
    struct sbuf names = {0};
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *nm = (const char *)sqlite3_column_text(st, 1);
        if (!n++) {
            id = sqlite3_column_int64(st, 0);
            if (name_out)
                *name_out = xstrdup(nm);
        }
        sbuf_addf(&names, "%s'%s'", n > 1 ? ", " : "", nm);
        if (name || (n == 1 && !strcmp(nm, DS_OFFICIAL_SPLIT)))
            break;
    }
    sqlite3_reset(st);
    if (!id && name)
        fprintf(stderr, "dfewctl %s: no split named '%s' (dfewctl folds list shows them)\n", cmd, name);
    else if (!id)
        fprintf(stderr, "dfewctl %s: no folds yet: make a split with dfewctl folds make --k 5\n", cmd);
    else if (n > 1) { /* several, none of them the official one: which one is meant? */
        fprintf(stderr, "dfewctl %s: there are %d splits (%s) and none is the official '%s' one; name the one to "
                        "use with --split NAME (dfewctl folds list shows them)\n",
                cmd, n, sbuf_str(&names), DS_OFFICIAL_SPLIT);
        if (name_out) {
            free(*name_out);
            *name_out = NULL;
        }
        id = 0;
    }
    sbuf_free(&names);
    return id;
}

int ds_print_split(struct ctl *c, int64_t split_id)
{
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)split_id);
    const char *binds[] = {id, NULL};
    static const char *const head_sql =
        "SELECT s.name, s.k, s.seed, s.by_movie, s.threshold, s.source, "
        "strftime('%Y-%m-%dT%H:%M:%fZ', s.created_at, 'unixepoch') AS created, "
        "(SELECT count(*) FROM fold_members f WHERE f.split_id = s.id) AS clips FROM splits s WHERE s.id = ?";
    static const char *const folds_sql =
        "SELECT fold, clips, happy, sad, neutral, angry, surprise, disgust, fear, movies FROM ("
        "SELECT fold AS n, 'fd' || fold AS fold, clips, happy, sad, neutral, angry, surprise, disgust, fear, movies "
        "FROM fold_summary WHERE split = (SELECT name FROM splits WHERE id = ?1) "
        "UNION ALL SELECT 1e9, 'total', count(*), sum(f.label = 1), sum(f.label = 2), sum(f.label = 3), "
        "sum(f.label = 4), sum(f.label = 5), sum(f.label = 6), sum(f.label = 7), count(DISTINCT c.movie_id) "
        "FROM fold_members f JOIN clips c ON c.id = f.clip_id WHERE f.split_id = ?1) ORDER BY n";
    if (c->json) {
        printf("{\"split\":");
        if (ctl_print_record(c, head_sql, binds) < 0)
            return -ENOENT;
        struct sbuf b = {0};
        int n = ctl_query_json(c, &b, "SELECT fold, clips, happy, sad, neutral, angry, surprise, disgust, fear, movies "
                                      "FROM fold_summary WHERE split = (SELECT name FROM splits WHERE id = ?) "
                                      "ORDER BY fold",
                               binds);
        printf(",\"folds\":%s}\n", sbuf_str(&b));
        sbuf_free(&b);
        return n < 0 ? n : 0;
    }
    sqlite3_stmt *st = db_prepare(c->db, "SELECT s.name, s.k, s.seed, s.by_movie, s.threshold, s.source, "
                                         "(SELECT count(*) FROM fold_members f WHERE f.split_id = s.id), "
                                         "strftime('%Y-%m-%d %H:%M', s.created_at, 'unixepoch') "
                                         "FROM splits s WHERE s.id = ?");
    sqlite3_bind_int64(st, 1, split_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return -ENOENT;
    }
    printf("split %s: %d folds, %d clips, ", (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
           sqlite3_column_int(st, 6));
    if (sqlite3_column_type(st, 2) != SQLITE_NULL)
        printf("seed %lld, stratified by label%s", (long long)sqlite3_column_int64(st, 2),
               sqlite3_column_int(st, 3) ? ", each movie in one fold" : "");
    else
        printf("%s", (const char *)sqlite3_column_text(st, 5));
    if (sqlite3_column_type(st, 4) != SQLITE_NULL)
        printf(", r = %d", sqlite3_column_int(st, 4));
    printf(", made %s UTC\n", (const char *)sqlite3_column_text(st, 7));
    sqlite3_reset(st);
    return ctl_print_query(c, folds_sql, binds, NULL) < 0 ? -EIO : 0;
}

int ds_dispatch(struct ctl *c, int argc, char **argv, const struct ds_sub *subs, const char *usage_text)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; subs[i].name; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(c, argc - 1, argv + 1);
    fprintf(stderr, "dfewctl %s: unknown sub-command '%s'\n\n%s", argv[0], argv[1], usage_text);
    return 2;
}

void ds_error(struct ds_errors *e, const char *file, int line, const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (e->n < DS_SHOWN_ERRORS) {
        if (line > 0)
            sbuf_addf(&e->text, "  %s:%d: %s\n", file, line, why);
        else
            sbuf_addf(&e->text, "  %s: %s\n", file, why);
        sbuf_add(&e->json, e->n ? ",{\"file\":" : "{\"file\":");
        sbuf_add_json_str(&e->json, file);
        sbuf_addf(&e->json, ",\"line\":%d,\"reason\":", line);
        sbuf_add_json_str(&e->json, why);
        sbuf_addc(&e->json, '}');
    }
    e->n++;
}

void ds_errors_report(struct ctl *c, struct ds_errors *e, const char *what)
{
    if (c->json)
        printf("{\"rejected\":true,\"error_count\":%d,\"errors\":[%s]}\n", e->n, sbuf_str(&e->json));
    fprintf(stderr, "%s: %s rejected, nothing was stored (%d error%s):\n%s", c->prog, what, e->n,
            e->n == 1 ? "" : "s", sbuf_str(&e->text));
    if (e->n > DS_SHOWN_ERRORS)
        fprintf(stderr, "  ... and %d more\n", e->n - DS_SHOWN_ERRORS);
    fprintf(stderr, "Fix the lines above and run the command again.\n");
    ds_errors_free(e);
}

void ds_errors_free(struct ds_errors *e)
{
    sbuf_free(&e->text);
    sbuf_free(&e->json);
    e->n = 0;
}

/* A header field lower-cased without spaces, '_', '-' and '.': "Clip Name"
 * and "clip_name" both become "clipname". */
static void header_key(const char *f, char *out, size_t len)
{
    size_t o = 0;
    for (; *f && o + 1 < len; f++)
        if (!strchr(" _-.", *f))
            out[o++] = (char)tolower((unsigned char)*f);
    out[o] = '\0';
}

int ds_header_emotion(const char *field)
{
    static const char *const stems[EMOTION_COUNT] = {"happ", "sad", "neutr", "ang", "surpris", "disgust", "fear"};
    char key[128];
    header_key(field, key, sizeof key);
    const char *k = key + strspn(key, "0123456789"); /* "1happy" .. "7fear" */
    /* the name itself, or after "vote" ("vote_sad") or "votes" ("votes_happy") */
    const char *cand[3] = {k, !strncmp(k, "vote", 4) ? k + 4 : NULL, !strncmp(k, "votes", 5) ? k + 5 : NULL};
    for (int i = 0; i < 3; i++)
        for (int e = 0; cand[i] && e < EMOTION_COUNT; e++)
            if (!strncmp(cand[i], stems[e], strlen(stems[e])))
                return e + 1;
    return 0;
}

static int key_in(const char *key, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(key, *set))
            return 1;
    return 0;
}

int ds_vote_header(char *const *field, int nfield, int want_label, struct ds_vote_cols *m, char *why, size_t len)
{
    static const char *const name_keys[] = {"clip", "clipid", "clipname", "video", "videoid", "videoname",
                                            "name", "file", "filename", NULL};
    /* the clip's number in copies of the release; a row number beside a name column */
    static const char *const weak_name_keys[] = {"order", "id", NULL};
    static const char *const label_keys[] = {"annotation", "label", "singlelabel", "class", NULL};
    struct ds_vote_cols h = {.name = DS_COL_NONE, .label = DS_COL_NONE};
    for (int k = 0; k < EMOTION_COUNT; k++)
        h.vote[k] = DS_COL_NONE;
    int strong_name = 0;
    for (int i = 0; i < nfield && !strong_name; i++) {
        char key[128];
        header_key(field[i], key, sizeof key);
        strong_name = key_in(key, name_keys);
    }
    struct sbuf unplaced = {0};
    for (int i = 0; i < nfield; i++) {
        char key[128];
        header_key(field[i], key, sizeof key);
        int e = ds_header_emotion(field[i]), *slot = NULL;
        if (e)
            slot = &h.vote[e - 1];
        else if (key_in(key, name_keys))
            slot = &h.name;
        else if (key_in(key, weak_name_keys)) {
            if (strong_name)
                continue;
            slot = &h.name;
        } else if (key_in(key, label_keys))
            slot = &h.label;
        if (slot && *slot == DS_COL_NONE) {
            *slot = i;
            continue;
        }
        if (!*key) /* a column without a name (a spreadsheet's index) */
            continue;
        if (slot)
            sbuf_addf(&unplaced, "%scolumn %d ('%.60s': column %d is that already)", unplaced.len ? ", " : "", i + 1,
                      field[i], *slot + 1);
        else
            sbuf_addf(&unplaced, "%scolumn %d ('%.60s')", unplaced.len ? ", " : "", i + 1, field[i]);
    }
    struct sbuf missing = {0};
    for (int k = 0; k < EMOTION_COUNT; k++)
        if (h.vote[k] == DS_COL_NONE)
            sbuf_addf(&missing, "%s%s", missing.len ? ", " : "", emotion_name(k + 1));
    if (h.name == DS_COL_NONE)
        sbuf_addf(&missing, "%sthe clip name", missing.len ? ", " : "");
    if (want_label && h.label == DS_COL_NONE)
        sbuf_addf(&missing, "%sthe annotation (label)", missing.len ? ", " : "");
    int rc = 0;
    if (missing.len) {
        snprintf(why, len,
                 "the header line names no column for %s; %s%s (vote columns are named by their emotion: happy or "
                 "vote_happy or 1happy .. fear; the clip by clip, clip_name, video_name, name or order%s)",
                 missing.s, unplaced.len ? "these could not be placed: " : "every named column was placed",
                 unplaced.len ? unplaced.s : "", want_label ? "; the label by annotation or label" : "");
        rc = -EINVAL;
    } else {
        h.need = h.name > h.label ? h.name + 1 : h.label + 1;
        for (int k = 0; k < EMOTION_COUNT; k++)
            h.need = h.vote[k] >= h.need ? h.vote[k] + 1 : h.need;
        *m = h;
    }
    sbuf_free(&unplaced);
    sbuf_free(&missing);
    return rc;
}
