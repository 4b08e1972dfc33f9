/* dfewctl sheet: contact sheets (PNG) to look at what dfew made of a movie.
 * `sheet [clip] CLIP -o F.png`, a clip's preprocessing. Top: original frames
 * sampled evenly over the clip (decoded again from the movie), with the
 * subject's face box (green) and 68 landmarks (yellow) from faces.bin drawn
 * on them, the other faces the prep job followed in thin magenta boxes (so
 * that a switch of person would show at a glance), framed green when the
 * subject's face was found and red when not. Below: the aligned,
 * interpolated frames from clip.u8, eight to a row. A clip imported from a
 * DFEW release has no movie to decode and no faces.bin: its sheet samples the
 * release's aligned face frames on top, and shows below its tensor (or, before
 * its tensor job ran, the release's interpolated JPEGs at the tensor size).
 * `sheet movie MOVIE -o F.png`, a movie's segmentation. Top: the whole
 * movie as a timeline, shot cuts as white ticks and the chosen clips as
 * green spans. Below: one thumbnail per shot (its middle frame), framed
 * green when a clip was chosen in it, each above its own timeline with the
 * clips' spans. Written atomically (temporary name, then rename). Not a viewer. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libswscale/swscale.h>

#include "clipfiles.h"
#include "clipfmt.h"
#include "ctl.h"
#include "decode.h"
#include "image.h"
#include "imgenc.h"

#define SAMPLES 8
#define THUMB_COLS 4
#define ALIGNED_COLS 8
#define GAP 4

struct canvas {
    uint8_t *px;
    int w, h;
};

static void put(struct canvas *c, int x, int y, const uint8_t col[3])
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    memcpy(c->px + ((size_t)y * c->w + x) * 3, col, 3);
}

static void rect(struct canvas *c, int x0, int y0, int x1, int y1, int thick, const uint8_t col[3])
{
    for (int t = 0; t < thick; t++) {
        for (int x = x0; x <= x1; x++) {
            put(c, x, y0 + t, col);
            put(c, x, y1 - t, col);
        }
        for (int y = y0; y <= y1; y++) {
            put(c, x0 + t, y, col);
            put(c, x1 - t, y, col);
        }
    }
}

static void blit(struct canvas *c, int ox, int oy, const uint8_t *src, int w, int h, int stride)
{
    for (int y = 0; y < h && oy + y < c->h; y++)
        memcpy(c->px + ((size_t)(oy + y) * c->w + ox) * 3, src + (size_t)y * stride, (size_t)w * 3);
}

/* An RGB image of w x h (stride bytes a row), scaled (area) to tw x th at (ox, oy). */
static void draw_scaled(struct canvas *c, int ox, int oy, int tw, int th, const uint8_t *rgb, int w, int h, int stride,
                        struct SwsContext **sws)
{
    *sws = sws_getCachedContext(*sws, w, h, AV_PIX_FMT_RGB24, tw, th, AV_PIX_FMT_RGB24, SWS_AREA, NULL, NULL, NULL);
    if (!*sws)
        return;
    uint8_t *dst[4] = {c->px + ((size_t)oy * c->w + ox) * 3};
    int dst_stride[4] = {c->w * 3};
    const uint8_t *src[4] = {rgb};
    int src_stride[4] = {stride};
    sws_scale(*sws, src, src_stride, 0, h, dst, dst_stride);
}

/* One sampled frame, scaled to tw x th at (ox, oy), with its face overlay:
 * the subject (rec) and the other faces of that frame (others, n). Returns
 * how many other faces it drew. */
static int draw_sample(struct canvas *c, int ox, int oy, int tw, int th, const struct decoded_frame *f,
                       const struct face_record *rec, const struct face_other *others, uint32_t n,
                       struct SwsContext **sws)
{
    static const uint8_t green[3] = {40, 220, 60}, red[3] = {230, 40, 40}, yellow[3] = {255, 230, 0},
                         magenta[3] = {230, 60, 230};
    draw_scaled(c, ox, oy, tw, th, f->rgb, f->width, f->height, f->rgb_stride, sws);
    if (!rec)
        return 0;
    double sx = (double)tw / f->width, sy = (double)th / f->height;
    int drawn = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (others[i].index != rec->index)
            continue;
        rect(c, ox + (int)lround(others[i].box[0] * sx), oy + (int)lround(others[i].box[1] * sy),
             ox + (int)lround(others[i].box[2] * sx) - 1, oy + (int)lround(others[i].box[3] * sy) - 1, 1, magenta);
        drawn++;
    }
    if (rec->found) {
        rect(c, ox + (int)lround(rec->box[0] * sx), oy + (int)lround(rec->box[1] * sy),
             ox + (int)lround(rec->box[2] * sx) - 1, oy + (int)lround(rec->box[3] * sy) - 1, 1, green);
        for (int i = 0; i < FACES_LANDMARKS; i++) {
            int x = ox + (int)lround(rec->pts[2 * i] * sx), y = oy + (int)lround(rec->pts[2 * i + 1] * sy);
            put(c, x, y, yellow);
            put(c, x + 1, y, yellow);
            put(c, x, y + 1, yellow);
            put(c, x + 1, y + 1, yellow);
        }
    }
    rect(c, ox, oy, ox + tw - 1, oy + th - 1, 2, rec->found ? green : red);
    return drawn;
}

/* The canvas as a PNG at path, written atomically (write_file_atomic: a new
 * temporary of an unguessable name beside path, then renamed). */
static int write_png(const struct canvas *cv, const char *path)
{
    struct img_encoder *enc = NULL;
    const uint8_t *data;
    size_t len;
    int rc = img_encoder_new(IMG_PNG, &enc);
    if (!rc)
        rc = img_encode(enc, cv->px, cv->w, cv->h, cv->w * 3, &data, &len);
    if (!rc)
        rc = write_file_atomic(path, data, len);
    if (rc)
        fprintf(stderr, "dfewctl sheet: cannot write %s: %s\n", path, strerror(-rc));
    img_encoder_free(enc);
    return rc;
}

static void fill(struct canvas *c, int x0, int y0, int x1, int y1, const uint8_t col[3])
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            put(c, x, y, col);
}

struct clip_row {
    double start_s, end_s;
    char *movie, *out_dir, *state, *reason, *aligned_dir, *tensor_path;
    int64_t frames_total;
};

static int load_clip(struct ctl *c, int64_t id, struct clip_row *r)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = db_prepare(c->db, "SELECT c.start_s, c.end_s, m.path, c.output_dir, c.state, c.reason, "
                                         "c.frames_total, c.aligned_dir, c.tensor_path FROM clips c JOIN movies m ON m.id = "
                                         "c.movie_id WHERE c.id = ?");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
#define TXT(i) (sqlite3_column_text(st, i) ? xstrdup((const char *)sqlite3_column_text(st, i)) : NULL)
        r->start_s = sqlite3_column_double(st, 0);
        r->end_s = sqlite3_column_double(st, 1);
        r->movie = TXT(2);
        r->out_dir = TXT(3);
        r->state = TXT(4);
        r->reason = TXT(5);
        r->frames_total = sqlite3_column_type(st, 6) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 6);
        r->aligned_dir = TXT(7);
        r->tensor_path = TXT(8);
#undef TXT
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

static void free_clip(struct clip_row *r)
{
    free(r->movie);
    free(r->out_dir);
    free(r->state);
    free(r->reason);
    free(r->aligned_dir);
    free(r->tensor_path);
}

/* The canvas as a PNG at out, and the line (or JSON) that says what it holds;
 * 0, or 1 when it cannot be written. */
static int finish_clip_sheet(struct ctl *c, int64_t id, const struct canvas *cv, const char *out, int sampled,
                             int aligned, int others)
{
    if (write_png(cv, out) != 0)
        return 1;
    if (c->json) {
        printf("{\"clip_id\":%lld,\"sheet\":", (long long)id);
        struct sbuf j = {0};
        sbuf_add_json_str(&j, out);
        printf("%s,\"width\":%d,\"height\":%d,\"sampled_frames\":%d,\"aligned_frames\":%d,\"other_faces\":%d}\n", j.s,
               cv->w, cv->h, sampled, aligned, others);
        sbuf_free(&j);
    } else {
        printf("%s: %dx%d, %d sampled frames, %d aligned frames of clip %lld", out, cv->w, cv->h, sampled, aligned,
               (long long)id);
        if (others)
            printf("; %d other face%s (magenta) beside the subject (green)", others, others == 1 ? "" : "s");
        printf("\n");
    }
    return 0;
}

/* A clip imported from a DFEW release (its movie is the release's folder):
 * SAMPLES of the release's aligned face frames (clip_<S>x<S>/<name>/) on top;
 * below, the interpolated frames of its tensor when its tensor job built one,
 * else the release's 16f JPEGs scaled to [prep] size as the tensor job would. */
static int sheet_release_clip(struct ctl *c, int64_t id, const struct clip_row *clip, const char *out)
{
    char err[1024] = "";
    struct frame_list al = {0}, tim = {0};
    uint8_t *tensor = NULL;
    int T = 0, S = c->cfg.prep_size > 0 ? c->cfg.prep_size : 112, tw, tc, rc = 0;
    if (clip->tensor_path && access(clip->tensor_path, F_OK) == 0) {
        rc = clip_read(clip->tensor_path, &T, &S, &tw, &tc, &tensor, err, sizeof err);
        if (!rc && (tw != S || tc != 3)) {
            snprintf(err, sizeof err, "%s is %dx%dx%d, not square RGB", clip->tensor_path, S, tw, tc);
            rc = -EINVAL;
        }
    } else if (clip->out_dir && (rc = clip_tim_frames(clip->out_dir, &tim)) != 0) {
        snprintf(err, sizeof err, "cannot read the clip's frames in %s: %s", clip->out_dir, strerror(-rc));
    }
    if (!rc && (rc = clip_aligned_frames(clip->out_dir, clip->aligned_dir, &al)) != 0)
        snprintf(err, sizeof err, "cannot read the clip's aligned frames in %s: %s",
                 clip->aligned_dir ? clip->aligned_dir : clip->out_dir, strerror(-rc));
    if (!rc && !tensor && !tim.n && !al.n) {
        snprintf(err, sizeof err, "clip %lld (imported from %s) has no frames on disk: neither %s nor its tensor",
                 (long long)id, clip->movie, clip->out_dir ? clip->out_dir : "an output folder");
        rc = -ENOENT;
    }
    if (rc) {
        fprintf(stderr, "dfewctl sheet: %s\n", err);
        frame_list_free(&al);
        frame_list_free(&tim);
        free(tensor);
        return 1;
    }
    if (!tensor)
        T = (int)tim.n;
    const int nsamples = al.n < SAMPLES ? (int)al.n : SAMPLES, thumb = 2 * S;
    struct canvas cv;
    cv.w = ALIGNED_COLS * S + (ALIGNED_COLS - 1) * GAP;
    const int thumb_rows = (nsamples + THUMB_COLS - 1) / THUMB_COLS, rows = (T + ALIGNED_COLS - 1) / ALIGNED_COLS;
    cv.h = thumb_rows * (thumb + GAP) + (rows ? GAP + rows * (S + GAP) : 0);
    cv.px = xmalloc((size_t)cv.w * cv.h * 3);
    memset(cv.px, 32, (size_t)cv.w * cv.h * 3);
    struct SwsContext *sws = NULL;
    const int gap_x = (cv.w - THUMB_COLS * thumb) / (THUMB_COLS > 1 ? THUMB_COLS - 1 : 1);
    int status = 0;
    for (int k = 0; k < nsamples && !status; k++) { /* evenly over the clip, first and last included */
        size_t i = nsamples > 1 ? (size_t)llround((double)k * (double)(al.n - 1) / (nsamples - 1)) : 0;
        struct image img = {0};
        if ((rc = image_load_rgb(al.path[i], &img, err, sizeof err)) != 0) {
            fprintf(stderr, "dfewctl sheet: %s: %s\n", al.path[i], rc == -EINVAL ? err : strerror(-rc));
            status = 1;
            break;
        }
        draw_scaled(&cv, (k % THUMB_COLS) * (thumb + gap_x), (k / THUMB_COLS) * (thumb + GAP), thumb, thumb, img.rgb,
                    img.w, img.h, img.w * 3, &sws);
        image_free(&img);
    }
    const int y0 = thumb_rows * (thumb + GAP) + GAP;
    for (int j = 0; j < T && !status; j++) {
        const int x = (j % ALIGNED_COLS) * (S + GAP), y = y0 + (j / ALIGNED_COLS) * (S + GAP);
        if (tensor) {
            blit(&cv, x, y, tensor + (size_t)j * S * S * 3, S, S, S * 3);
            continue;
        }
        struct image img = {0};
        if ((rc = image_load_rgb(tim.path[j], &img, err, sizeof err)) != 0) {
            fprintf(stderr, "dfewctl sheet: %s: %s\n", tim.path[j], rc == -EINVAL ? err : strerror(-rc));
            status = 1;
            break;
        }
        draw_scaled(&cv, x, y, S, S, img.rgb, img.w, img.h, img.w * 3, &sws);
        image_free(&img);
    }
    sws_freeContext(sws);
    if (!status)
        status = finish_clip_sheet(c, id, &cv, out, nsamples, T, 0);
    free(cv.px);
    frame_list_free(&al);
    frame_list_free(&tim);
    free(tensor);
    return status;
}

static int sheet_clip(struct ctl *c, int64_t id, const char *out)
{
    struct clip_row clip;
    int rc = load_clip(c, id, &clip);
    if (rc) {
        fprintf(stderr, "dfewctl sheet: %s\n", rc == -ENOENT ? "no such clip ('dfewctl clips' lists them)"
                                                             : db_errmsg(c->db));
        return 1;
    }
    struct stat sb;
    if (clip.movie && stat(clip.movie, &sb) == 0 && S_ISDIR(sb.st_mode)) { /* imported from a release */
        rc = sheet_release_clip(c, id, &clip, out);
        free_clip(&clip);
        return rc;
    }
    char err[1024] = "";
    struct faces_header fh = {0};
    struct face_record *recs = NULL;
    struct face_other *others = NULL;
    uint8_t *tensor = NULL;
    int T = 0, S = 112, tw, tc;
    if (clip.out_dir) {
        struct sbuf p = {0};
        sbuf_addf(&p, "%s/faces.bin", clip.out_dir);
        rc = faces_read_all(p.s, &fh, &recs, &others, err, sizeof err);
        sbuf_reset(&p);
        sbuf_addf(&p, "%s/clip.u8", clip.out_dir);
        if (!rc)
            rc = clip_read(p.s, &T, &S, &tw, &tc, &tensor, err, sizeof err);
        sbuf_free(&p);
        if (!rc && (tw != S || tc != 3)) {
            snprintf(err, sizeof err, "%s/clip.u8 is %dx%dx%d, not square RGB", clip.out_dir, S, tw, tc);
            rc = -EINVAL;
        }
        if (rc) {
            fprintf(stderr, "dfewctl sheet: %s\n", err);
            free_clip(&clip);
            free(recs);
            free(others);
            free(tensor);
            return 1;
        }
    } else {
        fprintf(stderr, "dfewctl sheet: clip %lld is %s%s%s%s: no aligned frames; the sheet shows sampled frames only\n",
                (long long)id, clip.state ? clip.state : "?", clip.reason ? " (" : "", clip.reason ? clip.reason : "",
                clip.reason ? ")" : "");
    }

    struct decoder *dec = NULL;
    rc = decoder_open(clip.movie ? clip.movie : "", 0, &dec, err, sizeof err);
    if (!rc)
        rc = decoder_seek(dec, clip.start_s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "dfewctl sheet: %s\n", err);
        decoder_close(dec);
        free_clip(&clip);
        free(recs);
        free(others);
        free(tensor);
        return 1;
    }
    int W, H;
    decoder_geometry(dec, &W, &H, NULL, NULL);
    int64_t total = recs ? (int64_t)fh.records : clip.frames_total;
    if (total <= 0) {
        double fps;
        decoder_geometry(dec, NULL, NULL, NULL, &fps);
        total = (int64_t)ceil((clip.end_s - clip.start_s) * fps);
    }
    int thumb_w = 2 * S, thumb_h = (int)lround((double)thumb_w * H / W);
    struct canvas cv;
    cv.w = ALIGNED_COLS * S + (ALIGNED_COLS - 1) * GAP;
    int thumb_rows = (SAMPLES + THUMB_COLS - 1) / THUMB_COLS, aligned_rows = (T + ALIGNED_COLS - 1) / ALIGNED_COLS;
    cv.h = thumb_rows * (thumb_h + GAP) + (aligned_rows ? GAP + aligned_rows * (S + GAP) : 0);
    cv.px = xmalloc((size_t)cv.w * cv.h * 3);
    memset(cv.px, 32, (size_t)cv.w * cv.h * 3);

    struct SwsContext *sws = NULL;
    struct decoded_frame f;
    int drawn = 0, drawn_others = 0;
    int gap_x = (cv.w - THUMB_COLS * thumb_w) / (THUMB_COLS > 1 ? THUMB_COLS - 1 : 1);
    for (int k = 0; k < SAMPLES && total > 0; k++) {
        int64_t want = SAMPLES > 1 ? llround((double)k * (total - 1) / (SAMPLES - 1)) : 0;
        if (k && want <= llround((double)(k - 1) * (total - 1) / (SAMPLES - 1)))
            continue; /* fewer frames than samples */
        /* with faces.bin every frame's time is known: seek straight to it */
        if (recs && want < (int64_t)fh.records && (rc = decoder_seek(dec, recs[want].t, err, sizeof err)) != 0)
            break;
        while ((rc = decoder_next(dec, &f, err, sizeof err)) == 1 && !recs && f.index < want) {
        }
        if (rc != 1 || f.t >= clip.end_s - 1e-6)
            break;
        const struct face_record *rec = recs && want < (int64_t)fh.records ? &recs[want] : NULL;
        int col = drawn % THUMB_COLS, row = drawn / THUMB_COLS;
        drawn_others += draw_sample(&cv, col * (thumb_w + gap_x), row * (thumb_h + GAP), thumb_w, thumb_h, &f, rec,
                                    others, others ? fh.others : 0, &sws);
        drawn++;
    }
    sws_freeContext(sws);
    decoder_close(dec);
    if (rc < 0) {
        fprintf(stderr, "dfewctl sheet: %s\n", err);
        drawn = 0;
    }
    int y0 = thumb_rows * (thumb_h + GAP) + GAP;
    for (int j = 0; j < T; j++)
        blit(&cv, (j % ALIGNED_COLS) * (S + GAP), y0 + (j / ALIGNED_COLS) * (S + GAP), tensor + (size_t)j * S * S * 3,
             S, S, S * 3);

    int status = 0;
    if (!drawn) {
        fprintf(stderr, "dfewctl sheet: no frame of the clip could be decoded from %s\n", clip.movie);
        status = 1;
    } else {
        status = finish_clip_sheet(c, id, &cv, out, drawn, T, drawn_others);
    }
    free(cv.px);
    free(recs);
    free(others);
    free(tensor);
    free_clip(&clip);
    return status;
}

/* --- the movie sheet --- */

#define MOVIE_COLS 8
#define MOVIE_THUMB_W 160
#define BAR_H 8
#define TIMELINE_H 16

struct shot_row {
    int shot;
    double start_s, end_s;
    int clips;
};

struct span {
    double start_s, end_s;
};

/* A timeline of [t0, t1) at (x0, y0), w x h: grey, the clips' spans green. */
static void timeline(struct canvas *cv, int x0, int y0, int w, int h, double t0, double t1, const struct span *clips,
                     int nclips)
{
    static const uint8_t grey[3] = {90, 90, 90}, green[3] = {40, 220, 60};
    fill(cv, x0, y0, x0 + w - 1, y0 + h - 1, grey);
    double len = t1 - t0;
    if (!(len > 0))
        return;
    for (int i = 0; i < nclips; i++) {
        if (clips[i].end_s <= t0 || clips[i].start_s >= t1)
            continue;
        int a = x0 + (int)floor((fmax(clips[i].start_s, t0) - t0) / len * w);
        int b = x0 + (int)ceil((fmin(clips[i].end_s, t1) - t0) / len * w) - 1;
        fill(cv, a, y0, b < a ? a : b, y0 + h - 1, green);
    }
}

static int sheet_movie(struct ctl *c, int64_t id, const char *out)
{
    char idtxt[32];
    snprintf(idtxt, sizeof idtxt, "%lld", (long long)id);
    sqlite3_stmt *st = db_prepare(c->db, "SELECT path, segment_note FROM movies WHERE id = ?");
    if (!st)
        return 1;
    sqlite3_bind_int64(st, 1, id);
    char *path = NULL, *note = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        path = xstrdup(sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
        note = sqlite3_column_text(st, 1) ? xstrdup((const char *)sqlite3_column_text(st, 1)) : NULL;
    }
    sqlite3_reset(st);
    if (!path) {
        fprintf(stderr, "dfewctl sheet: no movie %s ('dfewctl movies' lists them)\n", idtxt);
        return 1;
    }
    struct shot_row *shots = NULL;
    struct span *clips = NULL;
    int nshots = 0, nclips = 0, status = 1;
    st = db_prepare(c->db, "SELECT shot, start_s, end_s, clips FROM movie_shots WHERE movie_id = ? ORDER BY shot");
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        shots = xrealloc(shots, sizeof *shots * (size_t)(nshots + 1));
        shots[nshots++] = (struct shot_row){sqlite3_column_int(st, 0), sqlite3_column_double(st, 1),
                                            sqlite3_column_double(st, 2), sqlite3_column_int(st, 3)};
    }
    sqlite3_reset(st);
    st = db_prepare(c->db, "SELECT start_s, end_s FROM clips WHERE movie_id = ? AND origin = 'segment' "
                           "ORDER BY start_s");
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        clips = xrealloc(clips, sizeof *clips * (size_t)(nclips + 1));
        clips[nclips++] = (struct span){sqlite3_column_double(st, 0), sqlite3_column_double(st, 1)};
    }
    sqlite3_reset(st);
    struct decoder *dec = NULL;
    struct canvas cv = {0};
    char err[1024] = "";
    if (nshots == 0) {
        fprintf(stderr, "dfewctl sheet: movie %s has no shots: it was not segmented%s%s%s ('dfewctl show movie %s')\n",
                idtxt, note ? " (" : "", note ? note : "", note ? ")" : "", idtxt);
        goto out;
    }
    if (decoder_open(path, 0, &dec, err, sizeof err)) {
        fprintf(stderr, "dfewctl sheet: %s\n", err);
        goto out;
    }
    int W, H;
    decoder_geometry(dec, &W, &H, NULL, NULL);
    int tw = MOVIE_THUMB_W, th = (int)lround((double)tw * H / (W > 0 ? W : 1));
    if (th < 1)
        th = 1;
    int cols = nshots < MOVIE_COLS ? nshots : MOVIE_COLS, rows = (nshots + cols - 1) / cols;
    int cell_h = th + GAP + BAR_H + 2 * GAP;
    cv.w = cols * tw + (cols + 1) * GAP;
    cv.h = GAP + TIMELINE_H + 2 * GAP + rows * cell_h;
    cv.px = xmalloc((size_t)cv.w * cv.h * 3);
    memset(cv.px, 32, (size_t)cv.w * cv.h * 3);
    /* the whole movie */
    static const uint8_t white[3] = {255, 255, 255}, green[3] = {40, 220, 60}, dark[3] = {70, 70, 70};
    double t0 = shots[0].start_s, t1 = shots[nshots - 1].end_s;
    int lw = cv.w - 2 * GAP;
    timeline(&cv, GAP, GAP, lw, TIMELINE_H, t0, t1, clips, nclips);
    for (int i = 1; i < nshots && t1 > t0; i++) {
        int x = GAP + (int)lround((shots[i].start_s - t0) / (t1 - t0) * lw);
        fill(&cv, x, GAP, x, GAP + TIMELINE_H - 1, white);
    }
    /* one thumbnail per shot: its middle frame */
    struct SwsContext *sws = NULL;
    int drawn = 0;
    for (int i = 0; i < nshots; i++) {
        int x = GAP + (i % cols) * (tw + GAP), y = GAP + TIMELINE_H + 2 * GAP + (i / cols) * cell_h;
        struct decoded_frame f;
        int rc = decoder_seek(dec, 0.5 * (shots[i].start_s + shots[i].end_s), err, sizeof err);
        if (!rc)
            rc = decoder_next(dec, &f, err, sizeof err);
        if (rc == 1) {
            draw_sample(&cv, x, y, tw, th, &f, NULL, NULL, 0, &sws);
            drawn++;
        } else if (rc < 0) {
            fprintf(stderr, "dfewctl sheet: shot %d: %s\n", shots[i].shot, err);
        }
        rect(&cv, x, y, x + tw - 1, y + th - 1, shots[i].clips ? 3 : 1, shots[i].clips ? green : dark);
        timeline(&cv, x, y + th + GAP, tw, BAR_H, shots[i].start_s, shots[i].end_s, clips, nclips);
    }
    sws_freeContext(sws);
    if (!drawn) {
        fprintf(stderr, "dfewctl sheet: no frame of movie %s could be decoded from %s\n", idtxt, path);
        goto out;
    }
    if (write_png(&cv, out))
        goto out;
    status = 0;
    if (c->json) {
        struct sbuf j = {0};
        sbuf_add_json_str(&j, out);
        printf("{\"movie_id\":%lld,\"sheet\":%s,\"width\":%d,\"height\":%d,\"shots\":%d,\"thumbnails\":%d,"
               "\"clips\":%d}\n",
               (long long)id, j.s, cv.w, cv.h, nshots, drawn, nclips);
        sbuf_free(&j);
    } else {
        printf("%s: %dx%d, %d shot%s (%d thumbnails), %d clip%s of movie %lld\n", out, cv.w, cv.h, nshots,
               nshots == 1 ? "" : "s", drawn, nclips, nclips == 1 ? "" : "s", (long long)id);
    }
out:
    decoder_close(dec);
    free(cv.px);
    free(shots);
    free(clips);
    free(path);
    free(note);
    return status;
}

int cmd_sheet(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'}, CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        switch (o) {
        case 'o': out = optarg; break;
        case 'h':
            printf("usage: dfewctl sheet [clip] CLIP -o SHEET.png\n"
                   "       dfewctl sheet movie MOVIE -o SHEET.png\n\n"
                   "Writes a contact sheet as PNG. A clip's: %d frames sampled over the clip with\n"
                   "the face box and the 68 landmarks drawn (green frame: face found, red: not),\n"
                   "then the aligned, interpolated frames the clip's prep job wrote (a clip\n"
                   "imported from a DFEW release: its aligned face frames, then its 16 frames).\n"
                   "A movie's:\n"
                   "its timeline (white ticks: shot cuts, green: the clips chosen by segmentation)\n"
                   "and the middle frame of every shot, framed green when a clip lies in the shot,\n"
                   "each above the shot's own timeline.\n",
                   SAMPLES);
            return 0;
        default: return 2;
        }
    }
    const char *what = "clip", *idarg = optind < argc ? argv[optind] : NULL;
    if (optind + 2 == argc) {
        what = argv[optind];
        idarg = argv[optind + 1];
    }
    int64_t id;
    int movie = !strcmp(what, "movie");
    if ((!movie && strcmp(what, "clip")) || optind >= argc || optind + 2 < argc || !idarg || parse_i64(idarg, &id) ||
        id <= 0 || !out) {
        fprintf(stderr, "dfewctl sheet: give 'movie ID' or a clip id, and -o FILE.png (see --help; 'dfewctl movies' "
                        "and 'dfewctl clips' list ids)\n");
        return 2;
    }
    if (ctl_open(c, 0))
        return 1;
    return movie ? sheet_movie(c, id, out) : sheet_clip(c, id, out);
}
