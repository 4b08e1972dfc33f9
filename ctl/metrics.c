/* dfewctl metrics RUN: the paper's evaluation of a training run. Per fold and
 * pooled over the finished folds: recall per emotion (Happy .. Fear), UAR and
 * WAR, a row shaped like the paper's Table 4 (percent); --json for scripts;
 * --plot F.png draws the confusion matrix like the paper's Figure 3 (rows =
 * true emotion, normalised per row; a small built-in bitmap font; encoded by
 * libavcodec's PNG encoder, written atomically). Every number comes from the
 * views of schema/0006_training.sql (class_recall, confusion, fold_metrics,
 * run_summary): the SQL over the stored predictions is the one definition of
 * the metrics. Not the training (ctl/train.c, workers/train_job.c). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "imgenc.h"

static const char *const emotion_title[7] = {"HAPPY", "SAD", "NEUTRAL", "ANGRY", "SURPRISE", "DISGUST", "FEAR"};

/* ---- a 5 x 7 bitmap font: rows top to bottom, bit 4 = leftmost pixel ---- */

struct glyph {
    char c;
    unsigned char rows[7];
};

static const struct glyph font[] = {
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}}, {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}}, {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}}, {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
};

struct canvas {
    uint8_t *px;
    int w, h;
};

static void fill(struct canvas *cv, int x0, int y0, int w, int h, const uint8_t col[3])
{
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < cv->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < cv->w; x++)
            memcpy(cv->px + ((size_t)y * cv->w + x) * 3, col, 3);
}

/* Width in pixels of s drawn at scale: 6 pixels per character, less the last gap. */
static int text_w(const char *s, int scale)
{
    int n = (int)strlen(s);
    return n ? (6 * n - 1) * scale : 0;
}

/* Draws s (upper-cased; characters without a glyph are blank) with its top
 * left corner at (x, y), each font pixel a scale x scale square. */
static void text(struct canvas *cv, int x, int y, int scale, const uint8_t col[3], const char *s)
{
    for (; *s; s++, x += 6 * scale) {
        char ch = (char)toupper((unsigned char)*s);
        const struct glyph *g = NULL;
        for (size_t i = 0; i < ARRAY_LEN(font); i++)
            if (font[i].c == ch)
                g = &font[i];
        if (!g)
            continue;
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (g->rows[r] & (0x10 >> b))
                    fill(cv, x + b * scale, y + r * scale, scale, scale, col);
    }
}

static void text_centered(struct canvas *cv, int cx, int y, int scale, const uint8_t col[3], const char *s)
{
    text(cv, cx - text_w(s, scale) / 2, y, scale, col, s);
}

/* ---- the confusion matrix as a picture ---- */

#define CELL 104
#define LEFT 128
#define TOP 96
#define S 2 /* text scale */

/* counts[t][p]: clips of true emotion t predicted as p. */
static int plot_confusion(const char *path, const int64_t counts[7][7], const char *title, char *err, size_t errlen)
{
    static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0}, grey[3] = {160, 160, 160};
    struct canvas cv = {.w = LEFT + 7 * CELL + 24, .h = TOP + 7 * CELL + 48};
    cv.px = xmalloc((size_t)cv.w * cv.h * 3);
    memset(cv.px, 255, (size_t)cv.w * cv.h * 3);
    text(&cv, 16, 16, S, black, title);
    text_centered(&cv, LEFT + 7 * CELL / 2, 46, S, black, "PREDICTED");
    text(&cv, 16, 74, S, black, "TRUE");
    for (int p = 0; p < 7; p++)
        text_centered(&cv, LEFT + p * CELL + CELL / 2, 74, S, black, emotion_title[p]);
    for (int t = 0; t < 7; t++) {
        int64_t row = 0;
        for (int p = 0; p < 7; p++)
            row += counts[t][p];
        text(&cv, 16, TOP + t * CELL + CELL / 2 - 7, S, black, emotion_title[t]);
        for (int p = 0; p < 7; p++) {
            double f = row ? (double)counts[t][p] / (double)row : 0;
            /* white to dark blue, like the paper's figure */
            uint8_t col[3] = {(uint8_t)(247 - f * (247 - 8)), (uint8_t)(251 - f * (251 - 48)),
                              (uint8_t)(255 - f * (255 - 107))};
            int x = LEFT + p * CELL, y = TOP + t * CELL;
            fill(&cv, x, y, CELL, CELL, col);
            char pct[32], n[32];
            if (row)
                snprintf(pct, sizeof pct, "%.1f%%", 100 * f);
            else
                snprintf(pct, sizeof pct, "-");
            snprintf(n, sizeof n, "(%lld)", (long long)counts[t][p]);
            const uint8_t *ink = f > 0.5 ? white : black;
            text_centered(&cv, x + CELL / 2, y + CELL / 2 - 17, S, ink, pct);
            text_centered(&cv, x + CELL / 2, y + CELL / 2 + 5, S, ink, n);
        }
    }
    for (int i = 0; i <= 7; i++) { /* grid */
        fill(&cv, LEFT + i * CELL, TOP, 1, 7 * CELL + 1, grey);
        fill(&cv, LEFT, TOP + i * CELL, 7 * CELL + 1, 1, grey);
    }
    text(&cv, 16, TOP + 7 * CELL + 16, S, black, "ROWS: TRUE EMOTION, % OF ITS CLIPS (COUNT)");
    struct img_encoder *enc = NULL;
    const uint8_t *data;
    size_t len;
    int rc = img_encoder_new(IMG_PNG, &enc);
    if (!rc)
        rc = img_encode(enc, cv.px, cv.w, cv.h, cv.w * 3, &data, &len);
    if (!rc)
        rc = write_file_atomic(path, data, len);
    if (rc)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
    img_encoder_free(enc);
    free(cv.px);
    return rc;
}

/* ---- the command ---- */

#define PCT(col) "CASE WHEN " col " IS NULL THEN '-' ELSE printf('%.2f', 100 * " col ") END"

static const char table_sql[] =
    "SELECT fold, clips, " PCT("happy") " AS Happy, " PCT("sad") " AS Sad, " PCT("neutral") " AS Neutral, "
    PCT("angry") " AS Angry, " PCT("surprise") " AS Surprise, " PCT("disgust") " AS Disgust, " PCT("fear")
    " AS Fear, " PCT("uar") " AS UAR, " PCT("war") " AS WAR, backend FROM ("
    "SELECT fold AS n, CAST(fold AS TEXT) AS fold, clips, happy, sad, neutral, angry, surprise, disgust, fear, uar, "
    "war, backend FROM fold_metrics WHERE run_id = ?1 "
    "UNION ALL SELECT 1e9, 'pooled', clips, happy, sad, neutral, angry, surprise, disgust, fear, uar, war, "
    "backend FROM run_summary WHERE run_id = ?1 AND clips IS NOT NULL) ORDER BY n";

int cmd_metrics(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"plot", required_argument, NULL, 'p'},
                                         {"fold", required_argument, NULL, 'f'},
                                         CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    static const char usage_text[] =
        "usage: dfewctl metrics [RUN] [--json] [--plot FILE.png [--fold K]]\n\n"
        "The evaluation of a training run (the newest without RUN), as in the paper's\n"
        "Table 4: per fold and pooled over the finished folds (the paper pools the\n"
        "five folds' predictions), the recall of each emotion, UAR (their mean) and\n"
        "WAR (accuracy), in percent. --json: the run, its folds and the pooled\n"
        "confusion matrix, as fractions. --plot writes the confusion matrix as a PNG\n"
        "(like the paper's Figure 3): pooled, or of fold K with --fold.\n"
        "The same numbers are in the views fold_metrics, run_summary, class_recall\n"
        "and confusion (schema/README.md).\n";
    const char *plot = NULL;
    int fold = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        switch (o) {
        case 'p': plot = optarg; break;
        case 'f':
            if (parse_int(optarg, &fold) || fold < 1) {
                fprintf(stderr, "dfewctl metrics: --fold wants a fold number, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': printf("%s", usage_text); return 0;
        default: fprintf(stderr, "%s", usage_text); return 2;
        }
    }
    if (argc - optind > 1 || (fold && !plot)) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    int64_t run = 0;
    if (optind < argc && (parse_i64(argv[optind], &run) || run < 1)) {
        fprintf(stderr, "dfewctl metrics: '%s' is not a run id (dfewctl runs lists them)\n", argv[optind]);
        return 2;
    }
    if (ctl_open(c, 0))
        return 1;
    sqlite3_stmt *st = db_prepare(c->db, run ? "SELECT run_id, model, loss, lambda, split, state, folds, folds_done, "
                                               "backend, device, input FROM run_summary WHERE run_id = ?"
                                             : "SELECT run_id, model, loss, lambda, split, state, folds, folds_done, "
                                               "backend, device, input FROM run_summary ORDER BY run_id DESC LIMIT 1");
    if (!st)
        return 1;
    if (run)
        sqlite3_bind_int64(st, 1, run);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        if (run)
            fprintf(stderr, "dfewctl metrics: no run %lld (dfewctl runs lists them)\n", (long long)run);
        else
            fprintf(stderr, "dfewctl metrics: no training runs yet (dfewctl train --split NAME)\n");
        return 1;
    }
    run = sqlite3_column_int64(st, 0);
    char head[1024];
    int folds = sqlite3_column_int(st, 6), done = sqlite3_column_int(st, 7);
    const char *be = (const char *)sqlite3_column_text(st, 8), *dev = (const char *)sqlite3_column_text(st, 9);
    snprintf(head, sizeof head, "run %lld: %s, %s (lambda %g), split '%s', input %s, %s, %d of %d folds done%s%s%s%s",
             (long long)run, sqlite3_column_text(st, 1), sqlite3_column_text(st, 2), sqlite3_column_double(st, 3),
             sqlite3_column_text(st, 4), sqlite3_column_text(st, 10), sqlite3_column_text(st, 5), done, folds,
             be ? ", on " : "", be ? be : "", dev ? " " : "", dev ? dev : "");
    sqlite3_reset(st);
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)run);
    const char *binds[] = {id, NULL};
    st = db_prepare(c->db, "SELECT count(*) FROM predictions WHERE run_id = ?");
    sqlite3_bind_int64(st, 1, run);
    int64_t npred = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);

    if (plot) {
        if (!npred) {
            fprintf(stderr, "dfewctl metrics: run %lld has no finished fold yet: nothing to plot\n", (long long)run);
            return 1;
        }
        int64_t counts[7][7] = {{0}};
        st = db_prepare(c->db, "SELECT label, happy, sad, neutral, angry, surprise, disgust, fear, "
                               "(SELECT count(*) FROM predictions WHERE run_id = ?1 AND fold = ?2) FROM confusion "
                               "WHERE run_id = ?1 AND fold IS ?3 ORDER BY label");
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_int(st, 2, fold);
        if (fold)
            sqlite3_bind_int(st, 3, fold);
        int rows = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            int t = sqlite3_column_int(st, 0) - 1;
            for (int p = 0; p < 7 && t >= 0 && t < 7; p++)
                counts[t][p] = sqlite3_column_int64(st, 1 + p);
            rows++;
        }
        sqlite3_reset(st);
        if (!rows) {
            fprintf(stderr, "dfewctl metrics: fold %d of run %lld has no predictions (not finished, or not trained)\n",
                    fold, (long long)run);
            return 1;
        }
        st = db_prepare(c->db, fold ? "SELECT uar, war FROM fold_metrics WHERE run_id = ? AND fold = ?"
                                    : "SELECT uar, war FROM run_summary WHERE run_id = ?");
        sqlite3_bind_int64(st, 1, run);
        if (fold)
            sqlite3_bind_int(st, 2, fold);
        double uar = 0, war = 0;
        if (sqlite3_step(st) == SQLITE_ROW)
            uar = sqlite3_column_double(st, 0), war = sqlite3_column_double(st, 1);
        sqlite3_reset(st);
        char title[128], where[32], err[512];
        if (fold)
            snprintf(where, sizeof where, "FOLD %d", fold);
        else
            snprintf(where, sizeof where, "POOLED, %d FOLDS", done);
        snprintf(title, sizeof title, "RUN %lld (%s): UAR %.2f%%  WAR %.2f%%", (long long)run, where, 100 * uar,
                 100 * war);
        if (plot_confusion(plot, (const int64_t(*)[7])counts, title, err, sizeof err)) {
            fprintf(stderr, "dfewctl metrics: %s\n", err);
            return 1;
        }
        if (c->json) {
            struct sbuf b = {0};
            sbuf_addf(&b, "{\"run_id\":%lld,\"fold\":", (long long)run);
            if (fold)
                sbuf_addf(&b, "%d", fold);
            else
                sbuf_add(&b, "null");
            sbuf_add(&b, ",\"plot\":");
            sbuf_add_json_str(&b, plot);
            sbuf_addf(&b, ",\"uar\":%.17g,\"war\":%.17g}", uar, war);
            printf("%s\n", b.s);
            sbuf_free(&b);
        } else {
            printf("%s: confusion matrix of run %lld (%s)\n", plot, (long long)run, fold ? where : "pooled");
        }
        return 0;
    }

    if (c->json) {
        printf("{\"run\":");
        if (ctl_print_record(c, "SELECT * FROM run_summary WHERE run_id = ?", binds))
            return 1;
        struct sbuf b = {0};
        sbuf_add(&b, ",\"folds\":");
        ctl_query_json(c, &b, "SELECT * FROM fold_metrics WHERE run_id = ? ORDER BY fold", binds);
        sbuf_add(&b, ",\"confusion\":");
        ctl_query_json(c, &b, "SELECT label, label_name, happy, sad, neutral, angry, surprise, disgust, fear, clips "
                              "FROM confusion WHERE run_id = ? AND fold IS NULL ORDER BY label", binds);
        printf("%s}\n", b.s);
        sbuf_free(&b);
        return 0;
    }
    printf("%s\n", head);
    if (!npred) {
        printf("no fold has finished yet (dfewctl status shows the progress)\n");
        return 0;
    }
    return ctl_print_query(c, table_sql, binds, NULL) < 0 ? 1 : 0;
}
