/* The decoder on real videos: every frame exactly once (the counts ffprobe
 * -count_frames and `ffmpeg -fps_mode passthrough` give), timestamps on the
 * movie timeline, ranges by seeking equal to the same frames of a straight
 * decode (times and pixels), rotation metadata honoured (pixels equal to
 * ffmpeg's own autorotated output), and damaged, truncated, HEVC and
 * odd-sized input decoded as far as it goes. Videos it makes itself are
 * made with the ffmpeg command line in a temporary directory. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/frame.h>

#include "check.h"
#include "align.h"
#include "decode.h"

static char videos[1024], tmpdir[256];

struct frame_sig {
    double t;
    uint64_t hash;
    int w, h;
};

static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t frame_hash(const struct decoded_frame *f)
{
    uint64_t h = 14695981039346656037ull;
    for (int y = 0; y < f->height; y++)
        h = fnv(f->rgb + (size_t)y * f->rgb_stride, (size_t)f->width * 3, h);
    return h;
}

/* Decodes [t0, t1) (t0 < 0: no seek) into sigs; returns the frame count. */
static int decode_all(const char *path, double t0, double t1, struct frame_sig *sigs, int max,
                      struct decoder_stats *st)
{
    char err[512];
    struct decoder *d;
    int rc = decoder_open(path, 0, &d, err, sizeof err);
    if (rc) {
        fprintf(stderr, "%s\n", err);
        return rc;
    }
    if (t0 >= 0 && decoder_seek(d, t0, err, sizeof err)) {
        decoder_close(d);
        return -EIO;
    }
    struct decoded_frame f;
    int n = 0;
    while ((rc = decoder_next(d, &f, err, sizeof err)) == 1) {
        if (f.t >= t1)
            break;
        CHECK_EQ_INT(f.index, n);
        if (n < max)
            sigs[n] = (struct frame_sig){f.t, frame_hash(&f), f.width, f.height};
        n++;
    }
    CHECK(rc >= 0);
    if (st)
        *st = *decoder_stats(d);
    decoder_close(d);
    return n;
}

static const char *vid(const char *name)
{
    static char p[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", videos, name);
    return p[k];
}

static struct frame_sig all[400];

static void test_counts_and_times(void)
{
    CHECK_EQ_INT(decode_all(vid("single_face.mp4"), -1, INFINITY, all, 400, NULL), 72);
    CHECK(fabs(all[0].t) < 1e-9);
    CHECK(fabs(all[71].t - 71 / 30.0) < 1e-6);
    CHECK_EQ_INT(all[0].w, 640);
    CHECK_EQ_INT(all[0].h, 360);
    /* no_face.mp4: 98 packets, 3 of them discarded by the edit list (one a keyframe) */
    struct decoder_stats st;
    CHECK_EQ_INT(decode_all(vid("no_face.mp4"), -1, INFINITY, all, 400, &st), 95);
    CHECK_EQ_INT(st.packets, 98);
    CHECK_EQ_INT(st.decode_errors, 0);
    CHECK(fabs(all[0].t) < 1e-9);
    /* hamilton: video starts at 0.852019 s, the container at 0.008005 s */
    CHECK_EQ_INT(decode_all(vid("short_hamilton_clip.mp4"), -1, INFINITY, all, 400, NULL), 275);
    CHECK(fabs(all[0].t - (10214.0 / 11988 - 353.0 / 44100)) < 1e-5);
    for (int i = 1; i < 275; i++)
        CHECK(all[i].t > all[i - 1].t);
    const char *hello = "/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4";
    if (access(hello, R_OK) == 0)
        CHECK_EQ_INT(decode_all(hello, -1, INFINITY, all, 400, NULL), 249);
}

/* A range decoded by seeking equals the same frames of a straight decode. */
static void check_range(const char *path, int nall, double t0, double t1)
{
    static struct frame_sig part[400];
    int n = decode_all(path, t0, t1, part, 400, NULL);
    int first = 0;
    while (first < nall && all[first].t < t0 - 1e-6)
        first++;
    int expect = 0;
    while (first + expect < nall && all[first + expect].t < t1 - 1e-6)
        expect++;
    CHECK_EQ_INT(n, expect);
    int same = 1;
    for (int i = 0; i < n && i < expect; i++)
        same &= part[i].hash == all[first + i].hash && fabs(part[i].t - all[first + i].t) < 1e-9;
    if (!same)
        fprintf(stderr, "range [%g, %g) of %s differs from the straight decode\n", t0, t1, path);
    CHECK(same);
}

static void test_ranges_by_seeking(void)
{
    const char *ham = vid("short_hamilton_clip.mp4");
    int n = decode_all(ham, -1, INFINITY, all, 400, NULL);
    CHECK_EQ_INT(n, 275);
    check_range(ham, n, 2.0, 3.0);
    check_range(ham, n, 0.5, 1.2);   /* starts before the first video frame */
    check_range(ham, n, 8.9, 100.0); /* runs past the end */
    check_range(ham, n, all[100].t, all[130].t); /* exactly on frame times */
    /* an exact frame time starts the range on that frame; the end excludes its frame */
    static struct frame_sig part[400];
    CHECK_EQ_INT(decode_all(ham, all[100].t, all[130].t, part, 400, NULL), 30);
    const char *sf = vid("single_face.mp4"); /* B-frames: pts order differs from decode order */
    n = decode_all(sf, -1, INFINITY, all, 400, NULL);
    check_range(sf, n, 1.0, 1.5);
    check_range(sf, n, 0, 0.4);
    /* its one keyframe is at 0: the range at 1.0 s decodes 30 frames of
     * pre-roll, skipping the pictures none refers to (check_range above:
     * the frames that come out are the same) */
    struct decoder_stats st;
    CHECK_EQ_INT(decode_all(sf, 1.0, 1.5, part, 400, &st), 15);
    CHECK_EQ_INT(st.preroll_packets, 30);
    CHECK_EQ_INT(decode_all(sf, -1, INFINITY, part, 400, &st), 72);
    CHECK_EQ_INT(st.preroll_packets, 0);
}

static int sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static uint64_t gray_hash(const struct decoded_frame *f);
static uint64_t plane_hash(const struct gray_plane *g);

static void test_rotation(void)
{
    char cmd[4096], rot[512], raw[512];
    snprintf(rot, sizeof rot, "%s/rot.mp4", tmpdir);
    snprintf(raw, sizeof raw, "%s/rot.rgb", tmpdir);
    /* rotate=90: show the picture turned 90 degrees clockwise */
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -v error -y -i '%s' -map 0:v -c copy -metadata:s:v:0 rotate=90 '%s' && "
             "ffmpeg -nostdin -v error -y -i '%s' -frames:v 3 -f rawvideo -pix_fmt rgb24 '%s'",
             vid("single_face.mp4"), rot, rot, raw);
    if (sh(cmd)) {
        CHECK(!"ffmpeg could make the rotated copy");
        return;
    }
    char err[512];
    struct decoder *d;
    CHECK_EQ_INT(decoder_open(rot, 0, &d, err, sizeof err), 0);
    int w, h, r;
    decoder_geometry(d, &w, &h, &r, NULL);
    /* ffmpeg 5.1 writes rotate=90 as a display matrix that ffprobe shows as
     * rotation=90 (counter-clockwise): 270 clockwise, what media.c reports
     * too. What matters is that the pixels equal ffmpeg's upright frames. */
    CHECK_EQ_INT(r, 270);
    CHECK_EQ_INT(w, 360);
    CHECK_EQ_INT(h, 640);
    FILE *fr = fopen(raw, "rb");
    CHECK(fr != NULL);
    uint8_t *ref = malloc(360 * 640 * 3);
    long maxdiff = 0;
    struct decoded_frame f;
    for (int i = 0; i < 3 && fr; i++) {
        CHECK_EQ_INT(decoder_next(d, &f, err, sizeof err), 1);
        CHECK_EQ_INT(f.width, 360);
        CHECK_EQ_INT(f.height, 640);
        CHECK_EQ_INT(fread(ref, 1, 360 * 640 * 3, fr), 360 * 640 * 3);
        for (int y = 0; y < 640; y++)
            for (int x = 0; x < 360 * 3; x++) {
                long dv = labs((long)f.rgb[(size_t)y * f.rgb_stride + x] - ref[(size_t)y * 360 * 3 + x]);
                maxdiff = dv > maxdiff ? dv : maxdiff;
            }
    }
    /* ffmpeg turns the YUV picture, we the RGB one: the same pixels (0 measured) */
    printf("rotation: upright 360x640; largest difference to ffmpeg's autorotated frames: %ld\n", maxdiff);
    CHECK(maxdiff <= 1);
    if (fr)
        fclose(fr);
    free(ref);
    decoder_close(d);
    /* the grey plane of a raw picture, upright, into a buffer of the
     * caller's: what a plain grey decode gives */
    struct decoder *plain, *rawd;
    CHECK_EQ_INT(decoder_open(rot, DECODE_GRAY | DECODE_NO_RGB, &plain, err, sizeof err), 0);
    CHECK_EQ_INT(decoder_open(rot, DECODE_RAW | DECODE_GRAY | DECODE_NO_RGB, &rawd, err, sizeof err), 0);
    struct gray_plane gp = {0};
    struct decoded_frame g;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(decoder_next(plain, &f, err, sizeof err), 1);
        CHECK_EQ_INT(decoder_next(rawd, &g, err, sizeof err), 1);
        CHECK_EQ_INT(decoder_convert_gray(rawd, g.av, &gp, err, sizeof err), 0);
        CHECK_EQ_INT(gp.width, 360);
        CHECK_EQ_INT(gp.height, 640);
        CHECK(plane_hash(&gp) == gray_hash(&f));
    }
    gray_plane_free(&gp);
    decoder_close(plain);
    decoder_close(rawd);
}

static void test_damaged_truncated_hevc_odd(void)
{
    char cmd[4096], ts[512], cut[512], bad[512], hevc[512];
    snprintf(ts, sizeof ts, "%s/ham.ts", tmpdir);
    snprintf(cut, sizeof cut, "%s/ham-cut.ts", tmpdir);
    snprintf(bad, sizeof bad, "%s/ham-bad.ts", tmpdir);
    snprintf(hevc, sizeof hevc, "%s/odd.mkv", tmpdir);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -v error -y -i '%s' -map 0:v -c copy '%s' && head -c 300000 '%s' > '%s' && "
             "cp '%s' '%s' && dd if=/dev/urandom of='%s' bs=1 seek=250000 count=20000 conv=notrunc status=none && "
             "ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=320x180:rate=10 -vf scale=321:179 -frames:v 12 "
             "-c:v libx265 -x265-params log-level=error -pix_fmt yuv444p '%s'",
             vid("short_hamilton_clip.mp4"), ts, ts, cut, ts, bad, bad, hevc);
    if (sh(cmd)) {
        CHECK(!"ffmpeg could make the damaged copies");
        return;
    }
    struct decoder_stats st;
    int n = decode_all(cut, -1, INFINITY, all, 400, &st);
    printf("truncated MPEG-TS: %d of 275 frames decoded\n", n);
    CHECK(n > 50 && n < 275);
    n = decode_all(bad, -1, INFINITY, all, 400, &st);
    printf("20 kB of noise in the middle: %d frames, %lld decode errors\n", n, (long long)st.decode_errors);
    CHECK(n > 200);
    n = decode_all(hevc, -1, INFINITY, all, 400, &st);
    CHECK_EQ_INT(n, 12);
    CHECK_EQ_INT(all[0].w, 321);
    CHECK_EQ_INT(all[0].h, 179);
    CHECK_EQ_INT(st.decode_errors, 0);
    /* not a video at all */
    char err[512];
    struct decoder *d;
    CHECK_EQ_INT(decoder_open("/nonexistent.mp4", 0, &d, err, sizeof err), -ENOENT);
    char txt[512];
    snprintf(txt, sizeof txt, "%s/notes.txt", tmpdir);
    FILE *f = fopen(txt, "w");
    if (f) {
        fputs("not a video\n", f);
        fclose(f);
    }
    CHECK_EQ_INT(decoder_open(txt, 0, &d, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "notes.txt") != NULL);
}

static uint64_t gray_hash(const struct decoded_frame *f)
{
    uint64_t h = 14695981039346656037ull;
    for (int y = 0; y < f->height; y++)
        h = fnv(f->gray + (size_t)y * f->gray_stride, (size_t)f->width, h);
    return h;
}

static uint64_t plane_hash(const struct gray_plane *g)
{
    struct decoded_frame f = {.gray = g->buf, .gray_stride = g->stride, .width = g->width, .height = g->height};
    return gray_hash(&f);
}

/* DECODE_RAW converts nothing until asked; decoder_convert then gives the
 * pixels a plain decode gives, also for a picture kept from an earlier
 * frame (the segment job looks back one frame at a cut); with DECODE_NO_RGB
 * only grey. */
static void test_raw_and_convert(void)
{
    const char *path = vid("short_hamilton_clip.mp4");
    char err[512];
    struct decoder *plain, *raw, *grey;
    if (decoder_open(path, DECODE_GRAY, &plain, err, sizeof err) ||
        decoder_open(path, DECODE_RAW | DECODE_GRAY, &raw, err, sizeof err) ||
        decoder_open(path, DECODE_RAW | DECODE_GRAY | DECODE_NO_RGB, &grey, err, sizeof err)) {
        CHECK(!"the video opens three times");
        return;
    }
    struct decoded_frame a, b, c;
    struct gray_plane gp = {0};
    AVFrame *kept = NULL;
    uint64_t kept_rgb = 0, kept_gray = 0;
    int n = 0, same = 0, same_plane = 0;
    while (decoder_next(plain, &a, err, sizeof err) == 1) {
        CHECK(decoder_next(raw, &b, err, sizeof err) == 1);
        CHECK(decoder_next(grey, &c, err, sizeof err) == 1);
        CHECK(b.rgb == NULL && b.gray == NULL && b.av != NULL && a.av == NULL);
        CHECK(b.t == a.t && b.index == a.index && b.width == a.width && b.height == a.height);
        if (n % 50 == 1 && kept) {
            /* the picture of the frame before, converted now */
            struct decoded_frame k = b;
            CHECK(decoder_convert(raw, kept, &k, err, sizeof err) == 0);
            CHECK(frame_hash(&k) == kept_rgb && gray_hash(&k) == kept_gray);
        }
        uint64_t ha = frame_hash(&a), ga = gray_hash(&a);
        CHECK(decoder_convert(raw, b.av, &b, err, sizeof err) == 0);
        CHECK(decoder_convert(grey, c.av, &c, err, sizeof err) == 0);
        CHECK(c.rgb == NULL && c.gray != NULL);
        same += frame_hash(&b) == ha && gray_hash(&b) == ga && gray_hash(&c) == ga;
        /* the same grey plane written into a buffer of the caller's */
        CHECK(decoder_convert_gray(grey, c.av, &gp, err, sizeof err) == 0);
        same_plane += plane_hash(&gp) == ga && gp.stride % 64 == 0;
        av_frame_free(&kept);
        kept = av_frame_clone(b.av);
        kept_rgb = ha;
        kept_gray = ga;
        n++;
    }
    CHECK(decoder_next(raw, &b, err, sizeof err) == 0);
    CHECK_EQ_INT(n, 275);
    CHECK_EQ_INT(same, 275);
    CHECK_EQ_INT(same_plane, 275);
    gray_plane_free(&gp);
    av_frame_free(&kept);
    decoder_close(plain);
    decoder_close(raw);
    decoder_close(grey);
}

/* A face warped from the YUV planes (frame_converter_warp) against the
 * whole picture converted to RGB and warped (align_warp): the same square to
 * within the different chroma interpolation; a rotated video goes the whole-
 * picture way, so it matches exactly. */
static void test_face_warp(void)
{
    const char *paths[2] = {vid("single_face.mp4"), NULL};
    char rot[512];
    snprintf(rot, sizeof rot, "%s/rot.mp4", tmpdir); /* made by test_rotation */
    paths[1] = rot;
    /* the face of single_face.mp4 (about 180 px at 214,114) onto 112 px */
    const double m[6] = {0.62, 0.03, -130, -0.03, 0.62, -62};
    for (int k = 0; k < 2; k++) {
        char err[512];
        struct decoder *d;
        if (decoder_open(paths[k], DECODE_RAW, &d, err, sizeof err)) {
            CHECK(!"the video opens");
            continue;
        }
        int r;
        decoder_geometry(d, NULL, NULL, &r, NULL);
        struct frame_converter *c1, *c2;
        CHECK(frame_converter_new(r, &c1) == 0 && frame_converter_new(r, &c2) == 0);
        uint8_t a[112 * 112 * 3], b[112 * 112 * 3];
        double sum = 0;
        long most = 0, n = 0;
        struct decoded_frame f, g;
        while (n < 10 && decoder_next(d, &f, err, sizeof err) == 1) {
            CHECK(frame_converter_warp(c1, f.av, m, 112, a, err, sizeof err) == 0);
            CHECK(frame_converter_run(c2, f.av, 0, &g, err, sizeof err) == 0);
            CHECK(align_warp(g.rgb, g.width, g.height, g.rgb_stride, m, b, 112) == 0);
            for (int i = 0; i < 112 * 112 * 3; i++) {
                long dv = labs((long)a[i] - b[i]);
                sum += dv;
                most = dv > most ? dv : most;
            }
            n++;
        }
        double mean = n ? sum / n / (112 * 112 * 3) : 999;
        printf("face warp %s: mean difference %.2f, largest %ld (of 255), %ld frames\n", k ? "rotated" : "yuv420p",
               mean, most, n);
        CHECK_EQ_INT(n, 10);
        if (k == 0)
            CHECK(mean < 3 && most < 64);
        else
            CHECK(mean == 0);
        frame_converter_free(c1);
        frame_converter_free(c2);
        decoder_close(d);
    }
}

int main(void)
{
    const char *td = getenv("DFEW_TESTDATA");
    snprintf(videos, sizeof videos, "%s/videos", td ? td : "../shared/testdata");
    if (access(videos, R_OK) != 0) {
        printf("SKIP: test data missing: %s (../shared/testdata is not beside the checkout)\n", videos);
        return 77;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfew-test-decode-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_counts_and_times);
    RUN(test_ranges_by_seeking);
    RUN(test_rotation);
    RUN(test_damaged_truncated_hevc_odd);
    RUN(test_raw_and_convert);
    RUN(test_face_warp);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    sh(cmd);
    return check_report();
}
