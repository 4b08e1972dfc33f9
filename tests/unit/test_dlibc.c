/* The dlib wrapper against dlib's own landmark files: on the images of
 * ../shared/testdata/landmarks, the HOG detector (one 2x upsample: the faces
 * are small) finds as many faces as the XML lists, and the 68-point predictor
 * reproduces the XML's points within 1 px mean, from the XML boxes and from
 * the boxes the detector found. Images go through the same decoder and grey
 * conversion as the prep job. Also: clear errors for a bad model path. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "decode.h"
#include "dlibc.h"

#define MAX_FACES 16

struct xml_face {
    struct dlibc_box box;
    float pts[2 * DLIBC_LANDMARKS];
};

struct xml_image {
    char file[128];
    int nfaces;
    struct xml_face faces[MAX_FACES];
};

static const char *model_path(void)
{
    const char *p = getenv("DFEW_LANDMARK_MODEL");
    return p && *p ? p : "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    s[n] = '\0';
    fclose(f);
    return s;
}

static double attr(const char *tag, const char *name)
{
    char key[32];
    snprintf(key, sizeof key, " %s='", name);
    const char *p = strstr(tag, key);
    return p ? atof(p + strlen(key)) : NAN;
}

/* dlib imglab XML: <image file='..'><box top left width height><part name x y/>...</box></image> */
static int parse_xml(const char *text, struct xml_image *imgs, int max)
{
    int n = 0;
    const char *p = text;
    while (n < max && (p = strstr(p, "<image file='"))) {
        struct xml_image *im = &imgs[n++];
        memset(im, 0, sizeof *im);
        p += strlen("<image file='");
        size_t len = strcspn(p, "'");
        snprintf(im->file, sizeof im->file, "%.*s", (int)len, p);
        const char *end = strstr(p, "</image>");
        const char *b = p;
        while ((b = strstr(b, "<box ")) && b < end && im->nfaces < MAX_FACES) {
            struct xml_face *f = &im->faces[im->nfaces++];
            double top = attr(b, "top"), left = attr(b, "left"), w = attr(b, "width"), h = attr(b, "height");
            /* dlib rectangle(left, top, left + width - 1, top + height - 1), half-open here */
            f->box = (struct dlibc_box){left, top, left + w, top + h, 0};
            const char *box_end = strstr(b, "</box>");
            const char *q = b;
            int k = 0;
            while ((q = strstr(q, "<part ")) && q < box_end && k < DLIBC_LANDMARKS) {
                f->pts[2 * k] = (float)attr(q, "x");
                f->pts[2 * k + 1] = (float)attr(q, "y");
                k++;
                q++;
            }
            CHECK_EQ_INT(k, DLIBC_LANDMARKS);
            b = box_end;
        }
        p = end;
    }
    return n;
}

static double mean_err(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < DLIBC_LANDMARKS; i++)
        s += hypot(a[2 * i] - b[2 * i], a[2 * i + 1] - b[2 * i + 1]);
    return s / DLIBC_LANDMARKS;
}

static double iou(const struct dlibc_box *a, const struct dlibc_box *b)
{
    double w = fmin(a->x1, b->x1) - fmax(a->x0, b->x0), h = fmin(a->y1, b->y1) - fmax(a->y0, b->y0);
    if (w <= 0 || h <= 0)
        return 0;
    double i = w * h;
    return i / ((a->x1 - a->x0) * (a->y1 - a->y0) + (b->x1 - b->x0) * (b->y1 - b->y0) - i);
}

static struct dlibc_detector *det;
static struct dlibc_predictor *sp;
static const char *lmdir;

static void check_file(const char *xml_name, int format)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", lmdir, xml_name);
    char *text = slurp(path);
    CHECK(text != NULL);
    if (!text)
        return;
    static struct xml_image imgs[16];
    int n = parse_xml(text, imgs, 16);
    free(text);
    CHECK(n >= 4);
    double sum_xml = 0, sum_det = 0, worst = 0;
    int faces = 0, matched = 0;
    for (int i = 0; i < n; i++) {
        struct xml_image *im = &imgs[i];
        snprintf(path, sizeof path, "%.800s/%.127s", lmdir, im->file);
        char err[512];
        struct decoder *d;
        int rc = decoder_open(path, DECODE_GRAY, &d, err, sizeof err);
        CHECK_EQ_INT(rc, 0);
        if (rc) {
            fprintf(stderr, "%s\n", err);
            continue;
        }
        struct decoded_frame f;
        CHECK_EQ_INT(decoder_next(d, &f, err, sizeof err), 1);
        struct dlibc_image g = {f.gray, f.width, f.height, f.gray_stride, DLIBC_GRAY8};
        if (format == DLIBC_RGB24)
            g = (struct dlibc_image){f.rgb, f.width, f.height, f.rgb_stride, DLIBC_RGB24};
        /* detection (the expensive part, upsampled) on the grey plane only */
        struct dlibc_box found[32];
        int nf = format == DLIBC_GRAY8 ? dlibc_detect(det, &g, 1, found, 32) : 0;
        if (format == DLIBC_GRAY8 && nf != im->nfaces)
            fprintf(stderr, "%s: detector found %d faces, the XML lists %d\n", im->file, nf, im->nfaces);
        CHECK(format != DLIBC_GRAY8 || nf == im->nfaces);
        for (int k = 0; k < im->nfaces; k++) {
            float pts[2 * DLIBC_LANDMARKS];
            CHECK_EQ_INT(dlibc_predict(sp, &g, &im->faces[k].box, pts), 0);
            double e = mean_err(pts, im->faces[k].pts);
            sum_xml += e;
            worst = fmax(worst, e);
            faces++;
            /* the detector's box for the same face, if it found one */
            int best = -1;
            for (int j = 0; j < nf && j < 32; j++)
                if (iou(&found[j], &im->faces[k].box) > 0.5 &&
                    (best < 0 || iou(&found[j], &im->faces[k].box) > iou(&found[best], &im->faces[k].box)))
                    best = j;
            if (best >= 0) {
                CHECK_EQ_INT(dlibc_predict(sp, &g, &found[best], pts), 0);
                sum_det += mean_err(pts, im->faces[k].pts);
                matched++;
            }
        }
        decoder_close(d);
    }
    printf("%s, %s: %d faces; landmark error from the XML boxes: mean %.3f px (worst face %.3f px)", xml_name,
           format == DLIBC_GRAY8 ? "grey" : "RGB", faces, sum_xml / faces, worst);
    if (matched)
        printf("; from detected boxes (%d matched): mean %.3f px", matched, sum_det / matched);
    printf("\n");
    CHECK(faces >= 18);
    CHECK(sum_xml / faces < 1.0);
    if (format == DLIBC_GRAY8) {
        CHECK(matched == faces);
        CHECK(matched && sum_det / matched < 1.0);
    }
}

/* The prep job feeds dlib the grey plane; the landmarks are checked on RGB
 * too (what dlib's own tools read). */
static void test_training(void)
{
    check_file("training_with_face_landmarks.xml", DLIBC_GRAY8);
    check_file("training_with_face_landmarks.xml", DLIBC_RGB24);
}

static void test_testing(void)
{
    check_file("testing_with_face_landmarks.xml", DLIBC_GRAY8);
    check_file("testing_with_face_landmarks.xml", DLIBC_RGB24);
}

static void test_bad_inputs(void)
{
    char err[512] = "";
    struct dlibc_predictor *p = (void *)1;
    CHECK_EQ_INT(dlibc_predictor_load("/nonexistent/model.dat", &p, err, sizeof err), -ENOENT);
    CHECK(p == NULL);
    CHECK(strstr(err, "/nonexistent/model.dat") != NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/training.xml", lmdir);
    err[0] = '\0';
    CHECK_EQ_INT(dlibc_predictor_load(path, &p, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "not a dlib shape predictor") != NULL);
    /* images the wrapper must refuse rather than read out of bounds */
    unsigned char px[12] = {0};
    struct dlibc_box b[4];
    struct dlibc_image bad = {px, 4, 1, 2, DLIBC_RGB24}; /* stride < width * 3 */
    CHECK_EQ_INT(dlibc_detect(det, &bad, 0, b, 4), -EINVAL);
    struct dlibc_image tiny = {px, 4, 1, 12, DLIBC_RGB24};
    CHECK_EQ_INT(dlibc_detect(det, &tiny, 0, b, 4), 0);
    struct dlibc_box empty = {5, 5, 5, 9, 0};
    float pts[2 * DLIBC_LANDMARKS];
    CHECK_EQ_INT(dlibc_predict(sp, &tiny, &empty, pts), -EINVAL);
    CHECK_EQ_STR(dlibc_version(), "19.24.0");
}

int main(void)
{
    const char *td = getenv("DFEW_TESTDATA");
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/landmarks", td ? td : "../shared/testdata");
    if (access(dir, R_OK) != 0) {
        printf("SKIP: test data missing: %s (../shared/testdata is not beside the checkout)\n", dir);
        return 77;
    }
    lmdir = dir;
    char err[512];
    if (dlibc_detector_new(&det, err, sizeof err) || dlibc_predictor_load(model_path(), &sp, err, sizeof err)) {
        fprintf(stderr, "%s (install libdlib-data: scripts/setup-deps.sh)\n", err);
        return 1;
    }
    RUN(test_training);
    RUN(test_testing);
    RUN(test_bad_inputs);
    dlibc_predictor_free(sp);
    dlibc_detector_free(det);
    return check_report();
}
