/* Vote rows, kappa and Table 2 over the database (see votes.h). */
#include "votes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *const table2_bucket_names[TABLE2_BUCKETS] = {"0-2s", "2-5s", "5s+", "unknown"};

int vote_check_annotator(const char *name, char *why, size_t whylen)
{
    if (!name || !*name)
        snprintf(why, whylen, "the annotator is empty");
    else if (strlen(name) > VOTE_MAX_ANNOTATOR)
        snprintf(why, whylen, "the annotator name is %zu bytes long, more than %d", strlen(name), VOTE_MAX_ANNOTATOR);
    else if (*name == '#')
        snprintf(why, whylen, "annotator names starting with '#' are reserved for anonymous vote counts");
    else
        return 0;
    return -EINVAL;
}

int votes_sync_settings(struct db *db, int threshold, int annotators_per_clip, int *old_r)
{
    sqlite3_stmt *st = db_prepare(db, "SELECT threshold, annotators_per_clip FROM label_settings WHERE id = 1");
    if (!st || sqlite3_step(st) != SQLITE_ROW) {
        if (st)
            sqlite3_reset(st);
        return -EIO;
    }
    int r = sqlite3_column_int(st, 0), a = sqlite3_column_int(st, 1);
    sqlite3_reset(st);
    if (old_r)
        *old_r = r;
    if (r == threshold && a == annotators_per_clip)
        return 0;
    int rc = db_begin(db);
    if (rc)
        return rc;
    st = db_prepare(db, "UPDATE label_settings SET threshold = ?, annotators_per_clip = ?, updated_at = ? WHERE id = 1");
    if (!st) {
        db_rollback(db);
        return -EIO;
    }
    sqlite3_bind_int(st, 1, threshold);
    sqlite3_bind_int(st, 2, annotators_per_clip);
    sqlite3_bind_double(st, 3, now_s());
    rc = db_step_done(db, st);
    if (!rc)
        rc = db_commit(db);
    else
        db_rollback(db);
    return rc ? rc : 1;
}

int vote_count(struct db *db, int64_t clip)
{
    sqlite3_stmt *st = db_prepare(db, "SELECT count(*) FROM votes WHERE clip_id = ?");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, clip);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -EIO;
    sqlite3_reset(st);
    return n;
}

int vote_store(struct db *db, const struct vote *v, int *stored_out)
{
    char why[200];
    if (vote_check_annotator(v->annotator, why, sizeof why) || !emotion_name(v->emotion))
        return -EINVAL;
    sqlite3_stmt *st = db_prepare(db, "SELECT emotion FROM votes WHERE clip_id = ? AND annotator = ?");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, v->clip);
    sqlite3_bind_text(st, 2, v->annotator, -1, SQLITE_TRANSIENT);
    int stored = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    if (stored_out)
        *stored_out = stored;
    if (stored == v->emotion)
        return VOTE_UNCHANGED;
    if (stored && !v->replace)
        return -EEXIST;
    if (!stored) {
        int n = vote_count(db, v->clip);
        if (n < 0)
            return n;
        if (n >= v->max_votes) {
            if (stored_out)
                *stored_out = n;
            return -EDQUOT;
        }
    }
    st = stored ? db_prepare(db, "UPDATE votes SET emotion = ?3, source = ?4, added_at = ?5 "
                                 "WHERE clip_id = ?1 AND annotator = ?2")
                : db_prepare(db, "INSERT INTO votes (clip_id, annotator, emotion, source, added_at) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, v->clip);
    sqlite3_bind_text(st, 2, v->annotator, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, v->emotion);
    sqlite3_bind_text(st, 4, v->source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 5, now_s());
    int rc = db_step_done(db, st);
    if (rc)
        return rc;
    return stored ? VOTE_REPLACED : VOTE_ADDED;
}

int votes_threshold(struct db *db)
{
    sqlite3_stmt *st = db_prepare(db, "SELECT threshold FROM label_settings WHERE id = 1");
    if (!st)
        return -EIO;
    int r = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -EIO;
    sqlite3_reset(st);
    return r;
}

int votes_of_clips(struct db *db, const int64_t *ids, int n, int (*counts)[EMOTION_COUNT])
{
    memset(counts, 0, (size_t)n * sizeof *counts);
    struct sbuf list = {0};
    sbuf_addc(&list, '[');
    for (int i = 0; i < n; i++)
        sbuf_addf(&list, "%s%lld", i ? "," : "", (long long)ids[i]);
    sbuf_addc(&list, ']');
    sqlite3_stmt *st = db_prepare(db, "SELECT clip_id, emotion, count(*) FROM votes WHERE clip_id IN "
                                      "(SELECT value FROM json_each(?)) GROUP BY clip_id, emotion");
    if (!st) {
        sbuf_free(&list);
        return -EIO;
    }
    sqlite3_bind_text(st, 1, sbuf_str(&list), -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int e = sqlite3_column_int(st, 1);
        for (int i = 0; i < n && e >= 1 && e <= EMOTION_COUNT; i++)
            if (ids[i] == id)
                counts[i][e - 1] = sqlite3_column_int(st, 2);
    }
    sqlite3_reset(st);
    sbuf_free(&list);
    return rc == SQLITE_DONE ? 0 : db_errno(rc);
}

int votes_kappa(struct db *db, struct votes_kappa *k)
{
    memset(k, 0, sizeof *k);
    k->threshold = votes_threshold(db);
    sqlite3_stmt *st = db_prepare(db, "SELECT happy, sad, neutral, angry, surprise, disgust, fear, label IS NOT NULL "
                                      "FROM clip_labels ORDER BY clip_id");
    if (!st || k->threshold < 0)
        return -EIO;
    size_t n = 0, ns = 0, cap = 1024;
    int *all = xmalloc(cap * EMOTION_COUNT * sizeof *all), *single = xmalloc(cap * EMOTION_COUNT * sizeof *single);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap *= 2;
            all = xrealloc(all, cap * EMOTION_COUNT * sizeof *all);
            single = xrealloc(single, cap * EMOTION_COUNT * sizeof *single);
        }
        for (int j = 0; j < EMOTION_COUNT; j++)
            all[n * EMOTION_COUNT + (size_t)j] = sqlite3_column_int(st, j);
        if (sqlite3_column_int(st, EMOTION_COUNT))
            memcpy(single + ns++ * EMOTION_COUNT, all + n * EMOTION_COUNT, EMOTION_COUNT * sizeof *all);
        n++;
    }
    sqlite3_reset(st);
    k->rc_all = fleiss_kappa(all, (int)n, EMOTION_COUNT, &k->all);
    k->rc_single = fleiss_kappa(single, (int)ns, EMOTION_COUNT, &k->single);
    free(all);
    free(single);
    return rc == SQLITE_DONE ? 0 : db_errno(rc);
}

int votes_table2(struct db *db, struct table2 *t)
{
    memset(t, 0, sizeof *t);
    t->threshold = votes_threshold(db);
    /* The buckets of the clip_status view: [0, 2), [2, 5), [5, inf) seconds. */
    sqlite3_stmt *st = db_prepare(db, "SELECT CASE WHEN c.duration_known = 0 THEN 3 WHEN c.end_s - c.start_s < 2 "
                                      "THEN 0 WHEN c.end_s - c.start_s < 5 THEN 1 ELSE 2 END AS b, l.label, count(*) "
                                      "FROM clip_labels l JOIN clips c ON c.id = l.clip_id "
                                      "WHERE l.label IS NOT NULL GROUP BY b, l.label");
    if (!st || t->threshold < 0)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int b = sqlite3_column_int(st, 0), e = sqlite3_column_int(st, 1) - 1;
        long v = sqlite3_column_int64(st, 2);
        t->n[b][e] = v;
        t->row[b] += v;
        t->col[e] += v;
        t->total += v;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_errno(rc);
}
