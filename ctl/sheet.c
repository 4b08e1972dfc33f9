/* dfewctl sheet CLIP -o sheet.png: a contact sheet to look at a clip's
 * preprocessing. Top: original frames sampled evenly over the clip (decoded
 * again from the movie), with the subject's face box and 68 landmarks from
 * faces.bin drawn on them, framed green when the face was found and red
 * when not. Below: the aligned, interpolated frames from clip.u8, eight to a
 * row. Written atomically (temporary name, then rename). Not a viewer. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libswscale/swscale.h>

#include "clipfmt.h"
#include "ctl.h"
#include "decode.h"
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

/* One sampled frame, scaled to tw x th at (ox, oy), with its face overlay. */
static void draw_sample(struct canvas *c, int ox, int oy, int tw, int th, const struct decoded_frame *f,
                        const struct face_record *rec, struct SwsContext **sws)
{
    static const uint8_t green[3] = {40, 220, 60}, red[3] = {230, 40, 40}, yellow[3] = {255, 230, 0};
    *sws = sws_getCachedContext(*sws, f->width, f->height, AV_PIX_FMT_RGB24, tw, th, AV_PIX_FMT_RGB24, SWS_AREA, NULL,
                                NULL, NULL);
    if (!*sws)
        return;
    uint8_t *dst[4] = {c->px + ((size_t)oy * c->w + ox) * 3};
    int dst_stride[4] = {c->w * 3};
    const uint8_t *src[4] = {f->rgb};
    int src_stride[4] = {f->rgb_stride};
    sws_scale(*sws, src, src_stride, 0, f->height, dst, dst_stride);
    if (!rec)
        return;
    double sx = (double)tw / f->width, sy = (double)th / f->height;
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
}

struct clip_row {
    double start_s, end_s;
    char *movie, *out_dir, *state, *reason;
    int64_t frames_total;
};

static int load_clip(struct ctl *c, int64_t id, struct clip_row *r)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = db_prepare(c->db, "SELECT c.start_s, c.end_s, m.path, c.output_dir, c.state, c.reason, "
                                         "c.frames_total FROM clips c JOIN movies m ON m.id = c.movie_id WHERE c.id = ?");
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
            printf("usage: dfewctl sheet CLIP -o SHEET.png\n\n"
                   "Writes a contact sheet of a clip as PNG: %d frames sampled over the clip with the\n"
                   "face box and the 68 landmarks drawn (green frame: face found, red: not), then\n"
                   "the aligned, interpolated frames the clip's prep job wrote.\n",
                   SAMPLES);
            return 0;
        default: return 2;
        }
    }
    int64_t id;
    if (optind + 1 != argc || parse_i64(argv[optind], &id) || id <= 0 || !out) {
        fprintf(stderr, "dfewctl sheet: give one clip id and -o FILE.png (see --help; 'dfewctl clips' lists ids)\n");
        return 2;
    }
    if (ctl_open(c, 0))
        return 1;
    struct clip_row clip;
    int rc = load_clip(c, id, &clip);
    if (rc) {
        fprintf(stderr, "dfewctl sheet: %s\n", rc == -ENOENT ? "no such clip ('dfewctl clips' lists them)"
                                                             : db_errmsg(c->db));
        return 1;
    }
    char err[1024] = "";
    struct faces_header fh = {0};
    struct face_record *recs = NULL;
    uint8_t *tensor = NULL;
    int T = 0, S = 112, tw, tc;
    if (clip.out_dir) {
        struct sbuf p = {0};
        sbuf_addf(&p, "%s/faces.bin", clip.out_dir);
        rc = faces_read(p.s, &fh, &recs, err, sizeof err);
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
    int drawn = 0;
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
        draw_sample(&cv, col * (thumb_w + gap_x), row * (thumb_h + GAP), thumb_w, thumb_h, &f, rec, &sws);
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
        struct img_encoder *enc = NULL;
        struct sbuf tmp = {0};
        sbuf_addf(&tmp, "%s.tmp-%d", out, (int)getpid());
        rc = img_encoder_new(IMG_PNG, &enc);
        if (!rc)
            rc = img_write_file(enc, tmp.s, cv.px, cv.w, cv.h, cv.w * 3);
        if (!rc && rename(tmp.s, out) != 0)
            rc = -errno;
        if (rc) {
            unlink(tmp.s);
            fprintf(stderr, "dfewctl sheet: cannot write %s: %s\n", out, strerror(-rc));
            status = 1;
        } else if (c->json) {
            printf("{\"clip_id\":%lld,\"sheet\":", (long long)id);
            struct sbuf j = {0};
            sbuf_add_json_str(&j, out);
            printf("%s,\"width\":%d,\"height\":%d,\"sampled_frames\":%d,\"aligned_frames\":%d}\n", j.s, cv.w, cv.h,
                   drawn, T);
            sbuf_free(&j);
        } else {
            printf("%s: %dx%d, %d sampled frames, %d aligned frames of clip %lld\n", out, cv.w, cv.h, drawn, T,
                   (long long)id);
        }
        img_encoder_free(enc);
        sbuf_free(&tmp);
    }
    free(cv.px);
    free(recs);
    free(tensor);
    free_clip(&clip);
    return status;
}
