/* dfew-web's annotation pages: an annotator sees one clip at a time (its
 * H.264 preview, or its frames when the clip has no movie), chooses one of
 * the seven emotions (keys 1-7) or skips it. Clips are handed out fairly:
 * usable clips with fewer than [labels] annotators_per_clip votes, fewest
 * votes first (clips held for other annotators count as votes while held;
 * votes per clip come from the clip_vote_counts table, schema 0011),
 * never one the annotator voted on or skipped. A vote is stored by
 * vote_store (lib/votes.c), the code `dfewctl labels import` uses. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "votes.h"
#include "web.h"

#define CANDIDATES 64

/* Drops expired holds and the annotator's own; caller holds assign_mu. */
static void release_holds(struct web *w, int64_t annotator_id, double now)
{
    int k = 0;
    for (int i = 0; i < w->nassign; i++)
        if (w->assign[i].until > now && w->assign[i].annotator_id != annotator_id)
            w->assign[k++] = w->assign[i];
    w->nassign = k;
}

static int held_by_others(const struct web *w, int64_t clip, int64_t annotator_id)
{
    int n = 0;
    for (int i = 0; i < w->nassign; i++)
        n += w->assign[i].clip_id == clip && w->assign[i].annotator_id != annotator_id;
    return n;
}

static void hold(struct web *w, int64_t annotator_id, int64_t clip, double now)
{
    if (w->nassign == w->cap_assign) {
        w->cap_assign = w->cap_assign ? 2 * w->cap_assign : 64;
        w->assign = xrealloc(w->assign, (size_t)w->cap_assign * sizeof *w->assign);
    }
    w->assign[w->nassign++] = (struct assignment){annotator_id, clip, now + WEB_ASSIGN_S};
}

/* Whether clip still needs this annotator's vote. */
static int needs_vote(struct req *r, int64_t clip)
{
    sqlite3_stmt *st = db_prepare(r->db, "SELECT 1 FROM clips c JOIN clip_vote_counts k ON k.clip_id = c.id "
                                         "WHERE c.id = ?1 AND c.state = 'usable' AND k.votes < ?3 "
                                         "AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.clip_id = c.id "
                                         "AND v.annotator = ?2) "
                                         "AND NOT EXISTS (SELECT 1 FROM annotator_skips s WHERE s.clip_id = c.id "
                                         "AND s.annotator_id = ?4)");
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, clip);
    sqlite3_bind_text(st, 2, r->annotator, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, r->w->max_votes);
    sqlite3_bind_int64(st, 4, r->annotator_id);
    int ok = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return ok;
}

/* The next clip for this annotator (0: none needs their vote): the clip
 * they hold while it still needs their vote, else of the CANDIDATES clips
 * with the fewest votes (the clip_vote_counts index, in order) the one with
 * the fewest votes + holds of others. */
static int64_t next_clip(struct req *r)
{
    struct web *w = r->w;
    double now = now_s();
    int64_t held = 0;
    pthread_mutex_lock(&w->assign_mu);
    for (int i = 0; i < w->nassign; i++)
        if (w->assign[i].annotator_id == r->annotator_id && w->assign[i].until > now)
            held = w->assign[i].clip_id;
    pthread_mutex_unlock(&w->assign_mu);
    if (held && needs_vote(r, held))
        return held;
    /* Under the lock: a vote commits before its annotator's hold is dropped,
     * so this query sees either the vote or the hold, never neither. The
     * query walks an index and stops at CANDIDATES rows: it is short. */
    int64_t ids[CANDIDATES];
    int votes[CANDIDATES], n = 0;
    pthread_mutex_lock(&w->assign_mu);
    sqlite3_stmt *st = db_prepare(r->db,
                                  "SELECT k.clip_id, k.votes FROM clip_vote_counts k JOIN clips c ON c.id = k.clip_id "
                                  "WHERE k.votes < ?3 AND c.state = 'usable' "
                                  "AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.clip_id = k.clip_id "
                                  "AND v.annotator = ?1) "
                                  "AND NOT EXISTS (SELECT 1 FROM annotator_skips s WHERE s.clip_id = k.clip_id "
                                  "AND s.annotator_id = ?2) ORDER BY k.votes, k.clip_id LIMIT 64");
    if (st) {
        sqlite3_bind_text(st, 1, r->annotator, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, r->annotator_id);
        sqlite3_bind_int(st, 3, w->max_votes);
        while (n < CANDIDATES && sqlite3_step(st) == SQLITE_ROW) {
            ids[n] = sqlite3_column_int64(st, 0);
            votes[n++] = sqlite3_column_int(st, 1);
        }
        sqlite3_reset(st);
    }
    int64_t clip = 0;
    int best_load = 1 << 30;
    release_holds(w, r->annotator_id, now);
    for (int i = 0; i < n; i++) {
        int load = votes[i] + held_by_others(w, ids[i], r->annotator_id);
        if (load < best_load) {
            best_load = load;
            clip = ids[i];
        }
    }
    if (clip)
        hold(w, r->annotator_id, clip, now);
    pthread_mutex_unlock(&w->assign_mu);
    return clip;
}

static void forget_hold(struct web *w, int64_t annotator_id)
{
    pthread_mutex_lock(&w->assign_mu);
    release_holds(w, annotator_id, now_s());
    pthread_mutex_unlock(&w->assign_mu);
}

static int my_votes(struct req *r)
{
    sqlite3_stmt *st = db_prepare(r->db, "SELECT count(*) FROM votes WHERE annotator = ?");
    if (!st)
        return 0;
    sqlite3_bind_text(st, 1, r->annotator, -1, SQLITE_TRANSIENT);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    return n;
}

/* The clip's footage: its preview when it has a movie, else its frames. */
static void clip_player(struct sbuf *b, struct req *r, int64_t clip)
{
    sqlite3_stmt *st = db_prepare(r->db, "SELECT c.duration_known AND m.path IS NOT NULL, c.end_s - c.start_s "
                                         "FROM clips c JOIN movies m ON m.id = c.movie_id WHERE c.id = ?");
    if (!st)
        return;
    sqlite3_bind_int64(st, 1, clip);
    int has_movie = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    double dur = has_movie ? sqlite3_column_double(st, 1) : 0;
    sqlite3_reset(st);
    if (has_movie) {
        sbuf_addf(b, "<video id=\"clip\" src=\"/media/clip/%lld/preview.mp4\" controls autoplay muted loop "
                     "playsinline data-autoplay width=\"640\"></video><p>%.1f s</p>",
                  (long long)clip, dur);
    } else {
        sbuf_add(b, "<div class=\"anim\" data-fps=\"8\">");
        for (int i = 1; i <= 16; i++)
            sbuf_addf(b, "<img src=\"/media/clip/%lld/frame/%d\" alt=\"\">", (long long)clip, i);
        sbuf_add(b, "</div><p>the clip's 16 aligned face frames (no source movie in this dataset)</p>");
    }
}

enum MHD_Result page_annotate(struct req *r)
{
    if (r->role != ROLE_ANNOTATOR)
        return reply_error(r, MHD_HTTP_FORBIDDEN,
                           "The admin token does not vote: dfewctl annotators add NAME makes an annotator's link.");
    int64_t clip = next_clip(r);
    struct sbuf b = {0};
    html_begin(&b, r, "Annotate");
    int mine = my_votes(r);
    if (!clip) {
        sbuf_addf(&b, "<p class=\"ok\" id=\"done\">No clip needs your vote now: every clip has its %d votes, or you "
                      "have voted on or skipped it. Thank you! You have voted on %d clips.</p>",
                  r->w->max_votes, mine);
        html_end(&b);
        return reply_html(r, MHD_HTTP_OK, &b);
    }
    sbuf_addf(&b, "<p>Which emotion does the face show? Press <kbd>1</kbd>-<kbd>7</kbd>, or <kbd>s</kbd> to skip. "
                  "You have voted on %d clips.</p><div class=\"clipview\" data-clip=\"%lld\">",
              mine, (long long)clip);
    clip_player(&b, r, clip);
    sbuf_add(&b, "</div><form method=\"post\" action=\"/annotate/vote\" class=\"emotions\" id=\"vote\">");
    html_csrf(&b, r);
    sbuf_addf(&b, "<input type=\"hidden\" name=\"clip\" value=\"%lld\">", (long long)clip);
    for (int e = 1; e <= EMOTION_COUNT; e++)
        sbuf_addf(&b, "<button name=\"emotion\" value=\"%d\" data-key=\"%d\"><kbd>%d</kbd>%s</button>", e, e, e,
                  emotion_name(e));
    sbuf_add(&b, "<button name=\"emotion\" value=\"skip\" data-key=\"s\" class=\"skip\"><kbd>s</kbd>skip</button>"
                 "</form>");
    html_end(&b);
    return reply_html(r, MHD_HTTP_OK, &b);
}

enum MHD_Result post_vote(struct req *r)
{
    if (r->role != ROLE_ANNOTATOR)
        return reply_text(r, MHD_HTTP_FORBIDDEN, "only annotators vote (dfewctl annotators add NAME)");
    int64_t clip = parse_id(req_form(r, "clip"));
    const char *e = req_form(r, "emotion");
    int skip = e && !strcmp(e, "skip");
    int emotion = e && strlen(e) == 1 && e[0] >= '1' && e[0] <= '7' ? e[0] - '0' : 0;
    if (!clip || (!skip && !emotion))
        return reply_text(r, MHD_HTTP_BAD_REQUEST, "a vote needs clip (an id) and emotion (1..7 or skip)");
    sqlite3_stmt *st = db_prepare(r->db, "SELECT 1 FROM clips WHERE id = ? AND state = 'usable'");
    if (!st)
        return reply_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "database error");
    sqlite3_bind_int64(st, 1, clip);
    int usable = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    if (!usable)
        return reply_text(r, MHD_HTTP_NOT_FOUND, "no usable clip %lld", (long long)clip);
    int rc, stored = 0;
    if ((rc = db_begin(r->db)) == 0) {
        if (skip) {
            st = db_prepare(r->db, "INSERT OR IGNORE INTO annotator_skips (annotator_id, clip_id, at) VALUES (?, ?, ?)");
            if (st) {
                sqlite3_bind_int64(st, 1, r->annotator_id);
                sqlite3_bind_int64(st, 2, clip);
                sqlite3_bind_double(st, 3, now_s());
            }
            rc = st ? db_step_done(r->db, st) : -EIO;
        } else {
            struct vote v = {.clip = clip, .annotator = r->annotator, .emotion = emotion, .source = "web",
                             .max_votes = r->w->max_votes};
            rc = vote_store(r->db, &v, &stored);
        }
        if (rc < 0)
            db_rollback(r->db);
        else if (db_commit(r->db)) {
            db_rollback(r->db);
            rc = -EIO;
        }
    }
    if (rc == -EEXIST)
        return reply_error(r, MHD_HTTP_CONFLICT, "You already voted %s for clip %lld. Go on at /annotate.",
                           emotion_name(stored), (long long)clip);
    if (rc == -EDQUOT)
        return reply_error(r, MHD_HTTP_CONFLICT,
                           "Clip %lld has its %d votes already ([labels] annotators_per_clip): your vote is not "
                           "stored. Go on with the next clip at /annotate.",
                           (long long)clip, r->w->max_votes);
    if (rc < 0)
        return reply_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the vote could not be stored (%s): try again",
                          strerror(-rc));
    forget_hold(r->w, r->annotator_id);
    return reply_redirect(r, "/annotate", NULL);
}
