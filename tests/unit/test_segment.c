/* The segment job's parts: FFmpeg's scene score recomputed on real videos
 * equals what `ffmpeg -vf select='gte(scene,0)',metadata=print` reports for
 * every frame; candidate clips from made-up face tracks (one clip per
 * prominent person, small and short faces dropped, long tracks cut into
 * parts); the choice of at most max_clips candidates spread over a movie. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "decode.h"
#include "scene.h"
#include "segplan.h"

static char videos[1024], tmpdir[256];

/* ffmpeg's scene score of every frame, in decoding order; returns the count. */
static int ffmpeg_scores(const char *path, double *out, int max)
{
    char file[512], cmd[2048];
    snprintf(file, sizeof file, "%s/scores.txt", tmpdir);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -v error -i '%s' -vf \"select='gte(scene,0)',metadata=print:file=%s\" -an -f null -",
             path, file);
    if (system(cmd) != 0)
        return -1;
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        const char *p = strstr(line, "lavfi.scene_score=");
        if (p)
            out[n++] = atof(p + strlen("lavfi.scene_score="));
    }
    fclose(f);
    return n;
}

/* Compares our scores of every frame of path with ffmpeg's; returns the
 * largest difference (or 1 when the frame counts differ). */
static double compare_scores(const char *path, const char *name, int expect_frames)
{
    enum { MAX = 2000 };
    static double ref[MAX];
    int nref = ffmpeg_scores(path, ref, MAX);
    CHECK_EQ_INT(nref, expect_frames);
    struct decoder *d;
    char err[512];
    if (decoder_open(path, DECODE_RAW, &d, err, sizeof err)) {
        CHECK(!"the video opens");
        return 1;
    }
    struct scene_scorer *sc;
    CHECK(scene_scorer_new(&sc) == 0);
    struct decoded_frame f;
    int n = 0, rc;
    double worst = 0, top = 0;
    int top_at = -1;
    while ((rc = decoder_next(d, &f, err, sizeof err)) == 1) {
        CHECK(f.av != NULL && f.rgb == NULL);
        double s;
        CHECK(scene_score(sc, f.av, &s) == 0);
        if (n < nref && fabs(s - ref[n]) > worst)
            worst = fabs(s - ref[n]);
        if (s > top) {
            top = s;
            top_at = n;
        }
        n++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, nref);
    printf("%s: %d frames, largest score %.6f at frame %d, largest difference to ffmpeg %.2g\n", name, n, top, top_at,
           worst);
    scene_scorer_free(sc);
    decoder_close(d);
    return n == nref ? worst : 1;
}

static void check_scores(const char *name, int expect_frames)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", videos, name);
    /* ffmpeg prints six decimals */
    CHECK(compare_scores(path, name, expect_frames) < 1e-6);
}

static void test_scene_scores_equal_ffmpeg(void)
{
    check_scores("short_hamilton_clip.mp4", 275);
    check_scores("no_face.mp4", 95);
    check_scores("mead_eamm/happy.mp4", 141);
}

/* Other pixel formats: ffmpeg's filter compares the luma plane of YUV
 * pictures (any depth and chroma layout) and the bytes of packed RGB
 * pictures; formats it does not take are converted first. A test pattern
 * with a cut to red after 1 s, in each format: the same scores. */
static void test_scene_scores_in_other_formats(void)
{
    static const struct {
        const char *pix_fmt, *codec, *ext;
    } f[] = {{"yuv444p", "libx264", "mp4"}, {"yuv420p10le", "libx264", "mp4"}, {"nv12", "rawvideo", "nut"},
             {"rgb24", "png", "mkv"},       {"bgra", "png", "mkv"},          {"yuyv422", "rawvideo", "nut"},
             {"gbrp", "ffv1", "mkv"}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        char path[512], cmd[1024];
        snprintf(path, sizeof path, "%s/f_%s.%s", tmpdir, f[i].pix_fmt, f[i].ext);
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -nostdin -v error -y -f lavfi -i \"testsrc=size=96x64:rate=10:duration=1,format=rgb24[a];"
                 "color=c=red:size=96x64:rate=10:duration=1[b];[a][b]concat=n=2:v=1\" -pix_fmt %s -c:v %s '%s'",
                 f[i].pix_fmt, f[i].codec, path);
        if (system(cmd) != 0) {
            printf("  %s: this ffmpeg cannot write it (%s); not compared\n", f[i].pix_fmt, f[i].codec);
            continue;
        }
        /* yuyv422 and gbrp (ffv1 decodes it as bgr0) are converted first, by
         * ffmpeg and by us, to formats with the same luma or RGB bytes */
        CHECK(compare_scores(path, f[i].pix_fmt, 20) < 1e-6);
    }
}

/* Frame times of a constant-rate movie: t[i] = i / fps, n frames + the end. */
static double *times(int n, double fps)
{
    double *t = malloc(sizeof *t * (size_t)(n + 1));
    for (int i = 0; i <= n; i++)
        t[i] = i / fps;
    return t;
}

static const struct seg_params P = {1.0, 10.0, 0.5, 0.5, 20};

static struct seg_track track(int id, int shot, int64_t first, int64_t last, double side)
{
    return (struct seg_track){id, shot, first, last, last - first + 1, side, NULL};
}

static void test_tracks_to_clips(void)
{
    double *t = times(3000, 30);
    struct seg_clips c = {0};
    struct seg_stats st = {0};
    /* one face from frame 30 to 144: a clip of exactly its frames */
    struct seg_track one = track(0, 0, 30, 144, 100);
    /* detected in every 3rd frame only: under half the frames, no clip */
    int64_t sparse[40];
    for (int i = 0; i < 39; i++)
        sparse[i] = 30 + 3 * i;
    struct seg_track thin = one;
    thin.frames = 39;
    thin.last = sparse[38];
    thin.det = sparse;
    CHECK(seg_track_clips(&P, t, &thin, 1, &c, &st) == 0);
    CHECK_EQ_INT(c.n, 0);
    CHECK_EQ_INT(st.sparse_parts, 1);
    memset(&st, 0, sizeof st);
    CHECK(seg_track_clips(&P, t, &one, 1, &c, &st) == 0);
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_INT(c.v[0].f0, 30);
    CHECK_EQ_INT(c.v[0].f1, 145); /* the last detection (144) + 1: never beyond it */
    CHECK_EQ_INT(c.v[0].shot, 0);
    CHECK_EQ_INT(c.v[0].track, 0);
    CHECK_EQ_INT(c.v[0].faces, 115);
    CHECK_EQ_INT(st.tracks, 1);
    seg_clips_free(&c);

    /* two people side by side for 3 s, a third, small face behind them, a
     * short one (0.63 s); each prominent person is a candidate of their
     * own, in the order of their first frame */
    struct seg_track v[4] = {track(7, 1, 400, 489, 120), track(3, 1, 390, 489, 100), track(9, 1, 390, 489, 40),
                             track(11, 1, 500, 518, 100)};
    memset(&st, 0, sizeof st);
    CHECK(seg_track_clips(&P, t, v, 4, &c, &st) == 0);
    CHECK_EQ_INT(c.n, 2);
    CHECK_EQ_INT(c.v[0].track, 3);
    CHECK_EQ_INT(c.v[0].f0, 390);
    CHECK_EQ_INT(c.v[1].track, 7);
    CHECK_EQ_INT(c.v[1].f0, 400);
    CHECK_EQ_INT(st.tracks, 4);
    CHECK_EQ_INT(st.small_tracks, 1);
    CHECK_EQ_INT(st.short_tracks, 1);
    CHECK(fabs(st.longest_short_s - 19 / 30.0) < 1e-9);
    seg_clips_free(&c);
    /* the small face alone (the others at another time) is prominent */
    v[2].first = 600, v[2].last = 700;
    memset(&st, 0, sizeof st);
    CHECK(seg_track_clips(&P, t, &v[2], 1, &c, &st) == 0);
    CHECK_EQ_INT(c.n, 1);
    seg_clips_free(&c);
    free(t);
}

static void test_long_track_is_cut_into_parts(void)
{
    double *t = times(3000, 30);
    struct seg_clips c = {0};
    struct seg_stats st = {0};
    struct seg_track x = track(5, 0, 0, 2495, 100); /* frames 0..2495: 83.2 s */
    CHECK(seg_track_clips(&P, t, &x, 1, &c, &st) == 0);
    CHECK_EQ_INT(c.n, 9);
    int64_t at = 0;
    for (int i = 0; i < c.n; i++) {
        double d = t[c.v[i].f1] - t[c.v[i].f0];
        CHECK(d >= 1.0 && d <= 10.0);
        CHECK(fabs(d - 2496 / 30.0 / 9) < 1.0 / 30 + 1e-9); /* equal parts, to a frame */
        CHECK_EQ_INT(c.v[i].f0, at);
        CHECK_EQ_INT(c.v[i].track, 5);
        at = c.v[i].f1;
    }
    CHECK_EQ_INT(at, 2496);
    seg_clips_free(&c);

    /* min > max / 2: equal parts would be too short, so parts of max_s and the rest left out */
    struct seg_params q = {6.0, 10.0, 0.5, 0.5, 20};
    memset(&st, 0, sizeof st);
    x = track(5, 0, 0, 315, 100); /* 316 frames: 10.53 s, two equal parts would be 5.27 s */
    CHECK(seg_track_clips(&q, t, &x, 1, &c, &st) == 0);
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_INT(c.v[0].f0, 0);
    CHECK_EQ_INT(c.v[0].f1, 300);
    seg_clips_free(&c);
    free(t);
}

static void test_choice_spreads_over_the_movie(void)
{
    /* 50 candidates of 1 s: 40 crowded into the first minute, 10 over the next nine */
    int n = 50;
    double *t = times(30 * 700, 30);
    struct seg_clip c[50];
    for (int i = 0; i < n; i++) {
        int64_t f0 = i < 40 ? (int64_t)i * 45 : 1800 + (int64_t)(i - 40) * 1800;
        c[i] = (struct seg_clip){f0, f0 + 30, i, i, 30, 0};
    }
    CHECK_EQ_INT(seg_choose(&P, t, c, n), 20);
    int kept = 0, late = 0;
    for (int i = 0; i < n; i++) {
        kept += c[i].chosen;
        late += i >= 40 && c[i].chosen;
    }
    CHECK_EQ_INT(kept, 20);
    CHECK_EQ_INT(late, 10); /* every candidate of the sparse nine minutes */
    CHECK(c[0].chosen && c[n - 1].chosen);
    /* deterministic */
    struct seg_clip again[50];
    memcpy(again, c, sizeof c);
    seg_choose(&P, t, again, n);
    CHECK(memcmp(again, c, sizeof c) == 0);
    /* within the budget all are kept */
    struct seg_params few = P;
    few.max_clips = 60;
    CHECK_EQ_INT(seg_choose(&few, t, c, n), 50);
    /* evenly spaced candidates: the kept ones leave no gap much wider than the budget allows */
    for (int i = 0; i < 30; i++)
        c[i] = (struct seg_clip){(int64_t)i * 600, (int64_t)i * 600 + 60, i, i, 5, 0};
    few.max_clips = 10;
    CHECK_EQ_INT(seg_choose(&few, t, c, 30), 10);
    int prev = -1, widest = 0;
    for (int i = 0; i < 30; i++)
        if (c[i].chosen) {
            if (prev >= 0 && i - prev > widest)
                widest = i - prev;
            prev = i;
        }
    CHECK(widest <= 4); /* 29 intervals over 9 gaps: 3.2 on average */
    /* 28 candidates 5 s apart, 20 kept (the integration test's synthetic
     * movie): never two left out in a row, and as many in each half */
    for (int i = 0; i < 28; i++)
        c[i] = (struct seg_clip){(int64_t)i * 150, (int64_t)i * 150 + 60, i, i, 5, 0};
    CHECK_EQ_INT(seg_choose(&P, t, c, 28), 20);
    int first_half = 0;
    prev = -1;
    widest = 0;
    for (int i = 0; i < 28; i++)
        if (c[i].chosen) {
            first_half += i < 14;
            if (prev >= 0 && i - prev > widest)
                widest = i - prev;
            prev = i;
        }
    CHECK(widest <= 2);
    CHECK_EQ_INT(first_half, 10);
    free(t);
}

int main(void)
{
    RUN(test_tracks_to_clips);
    RUN(test_long_track_is_cut_into_parts);
    RUN(test_choice_spreads_over_the_movie);
    const char *td = getenv("DFEW_TESTDATA");
    snprintf(videos, sizeof videos, "%s/videos", td ? td : "../shared/testdata");
    if (access(videos, R_OK) != 0) {
        printf("SKIP test_scene_scores_equal_ffmpeg: test data missing: %s\n", videos);
        return check_report();
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfew-test-segment-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_scene_scores_equal_ffmpeg);
    RUN(test_scene_scores_in_other_formats);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report();
}
