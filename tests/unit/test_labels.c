/* Unit tests for lib/labels.c (emotion names, the single-label rule, Fleiss'
 * kappa and its bands) and the [labels] section of dfew.conf. */
#include <errno.h>
#include <math.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "labels.h"

#define CHECK_NEAR(a, b, tol) CHECK(fabs((a) - (b)) <= (tol))

static void test_emotions(void)
{
    CHECK_EQ_STR(emotion_name(1), "happy");
    CHECK_EQ_STR(emotion_name(3), "neutral");
    CHECK_EQ_STR(emotion_name(7), "fear");
    CHECK(emotion_name(0) == NULL);
    CHECK(emotion_name(8) == NULL);
    CHECK_EQ_INT(emotion_parse("happy"), 1);
    CHECK_EQ_INT(emotion_parse("SAD"), 2);
    CHECK_EQ_INT(emotion_parse("Surprise"), 5);
    CHECK_EQ_INT(emotion_parse("surprised"), 5);
    CHECK_EQ_INT(emotion_parse("disgusted"), 6);
    CHECK_EQ_INT(emotion_parse("anger"), 4);
    CHECK_EQ_INT(emotion_parse("fearful"), 7);
    CHECK_EQ_INT(emotion_parse("4"), 4);
    CHECK_EQ_INT(emotion_parse("7"), 7);
    CHECK_EQ_INT(emotion_parse("0"), -EINVAL);
    CHECK_EQ_INT(emotion_parse("8"), -EINVAL);
    CHECK_EQ_INT(emotion_parse("contempt"), -EINVAL);
    CHECK_EQ_INT(emotion_parse(""), -EINVAL);
    CHECK_EQ_INT(emotion_parse("1.5"), -EINVAL);
}

static void test_single_label(void)
{
    /* r = 6, 10 annotators: 7 votes is a label, 6 is not. */
    int seven[7] = {7, 1, 1, 1, 0, 0, 0};
    int six[7] = {6, 2, 1, 1, 0, 0, 0};
    int fear[7] = {0, 0, 0, 1, 0, 0, 9};
    int all[7] = {0, 0, 10, 0, 0, 0, 0};
    int none[7] = {0};
    CHECK_EQ_INT(single_label(seven, 6), 1);
    CHECK_EQ_INT(single_label(six, 6), 0);
    CHECK_EQ_INT(single_label(fear, 6), 7);
    CHECK_EQ_INT(single_label(all, 6), 3);
    CHECK_EQ_INT(single_label(none, 6), 0);
    CHECK_EQ_INT(single_label(none, 0), 0);
    /* Another r: 6 votes pass r = 5. */
    CHECK_EQ_INT(single_label(six, 5), 1);
    /* A tie at the top is ambiguous even when both pass a small r. */
    int tie[7] = {0, 4, 0, 4, 0, 2, 0};
    CHECK_EQ_INT(single_label(tie, 2), 0);
    CHECK_EQ_INT(single_label(tie, 4), 0);
    int top[7] = {0, 4, 0, 3, 0, 3, 0};
    CHECK_EQ_INT(single_label(top, 2), 2);
}

/* Fleiss (1971) / Wikipedia's worked example: 10 subjects, 14 raters, 5
 * categories; Pbar = 0.378, Pe = 0.213, kappa = 0.210. */
static const int classic[10 * 5] = {
    0, 0, 0, 0, 14, /**/ 0, 2, 6, 4, 2, /**/ 0, 0, 3, 5, 6, /**/ 0, 3, 9, 2, 0, /**/ 2, 2, 8, 1, 1,
    7, 7, 0, 0, 0,  /**/ 3, 2, 6, 3, 0, /**/ 2, 5, 3, 2, 2, /**/ 6, 5, 2, 1, 0, /**/ 0, 2, 2, 3, 7,
};

static void test_kappa_classic(void)
{
    struct kappa_result k;
    CHECK_EQ_INT(fleiss_kappa(classic, 10, 5, &k), 0);
    printf("classic example: Pbar %.5f Pe %.5f kappa %.5f\n", k.pbar, k.pe, k.kappa);
    CHECK_NEAR(k.pbar, 0.378, 0.0005);
    CHECK_NEAR(k.pe, 0.213, 0.0005);
    CHECK_NEAR(k.kappa, 0.210, 0.0005);
    /* Exact: Pbar = 0.37802198, Pe = 0.21275510. */
    CHECK_NEAR(k.kappa, (0.378021978021978 - 0.2127551020408163) / (1 - 0.2127551020408163), 1e-12);
    CHECK_EQ_INT(k.subjects, 10);
    CHECK_EQ_INT(k.min_raters, 14);
    CHECK_EQ_INT(k.max_raters, 14);
    CHECK_EQ_INT(k.ratings, 140);
    CHECK_EQ_STR(kappa_band(k.kappa), "fair");
}

static void test_kappa_edges(void)
{
    struct kappa_result k;
    /* Perfect agreement spread over categories: kappa = 1. */
    int perfect[3 * 7] = {10, 0, 0, 0, 0, 0, 0, /**/ 0, 10, 0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 0, 0, 10};
    CHECK_EQ_INT(fleiss_kappa(perfect, 3, 7, &k), 0);
    CHECK_NEAR(k.kappa, 1.0, 1e-12);
    CHECK_EQ_STR(kappa_band(k.kappa), "almost perfect");
    /* Every vote in one category: Pe = 1, kappa undefined. */
    int one[2 * 7] = {10, 0, 0, 0, 0, 0, 0, /**/ 10, 0, 0, 0, 0, 0, 0};
    CHECK_EQ_INT(fleiss_kappa(one, 2, 7, &k), -EDOM);
    CHECK(isnan(k.kappa));
    CHECK_EQ_STR(kappa_band(k.kappa), "undefined");
    /* No subject with two ratings. */
    int single[2 * 7] = {1, 0, 0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ_INT(fleiss_kappa(single, 2, 7, &k), -EDOM);
    CHECK_EQ_INT(k.subjects, 0);
    /* Systematic disagreement is below chance: negative kappa, "poor". */
    int split[2 * 2] = {1, 1, /**/ 1, 1};
    CHECK_EQ_INT(fleiss_kappa(split, 2, 2, &k), 0);
    CHECK(k.kappa < 0);
    CHECK_EQ_STR(kappa_band(k.kappa), "poor");
    /* Varying raters: subjects are weighted by their own m_i; one-rating
     * subjects are skipped. Hand computation: rows (3,1) m=4 and (2,0) m=2:
     * P = (9+1-4)/12 = 0.5 and (4-2)/2 = 1 -> Pbar 0.75; p = (5/6, 1/6) ->
     * Pe = 26/36; kappa = (0.75 - 26/36) / (10/36) = 0.1. */
    int vary[3 * 2] = {3, 1, /**/ 2, 0, /**/ 0, 1};
    CHECK_EQ_INT(fleiss_kappa(vary, 3, 2, &k), 0);
    CHECK_NEAR(k.kappa, 0.1, 1e-12);
    CHECK_EQ_INT(k.subjects, 2);
    CHECK_EQ_INT(k.min_raters, 2);
    CHECK_EQ_INT(k.max_raters, 4);
}

static void test_bands(void)
{
    CHECK_EQ_STR(kappa_band(-0.2), "poor");
    CHECK_EQ_STR(kappa_band(0.0), "poor");
    CHECK_EQ_STR(kappa_band(0.05), "slight");
    CHECK_EQ_STR(kappa_band(0.20), "slight");
    CHECK_EQ_STR(kappa_band(0.21), "fair");
    CHECK_EQ_STR(kappa_band(0.40), "fair");
    CHECK_EQ_STR(kappa_band(0.52), "moderate");
    CHECK_EQ_STR(kappa_band(0.61), "substantial");
    CHECK_EQ_STR(kappa_band(0.80), "substantial");
    CHECK_EQ_STR(kappa_band(0.81), "almost perfect");
}

static int write_conf(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static void test_config_labels(void)
{
    char path[] = "/tmp/dfew-test-labels-XXXXXX", err[512];
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    struct dfew_config c;
    config_defaults(&c);
    CHECK_EQ_INT(c.single_label_threshold, 6);
    CHECK_EQ_INT(c.annotators_per_clip, 10);
    CHECK_EQ_INT(write_conf(path, "[labels]\nsingle_label_threshold = 4\nannotators_per_clip = 7\n"), 0);
    CHECK_EQ_INT(config_load(path, &c, err, sizeof err), 0);
    CHECK_EQ_INT(c.single_label_threshold, 4);
    CHECK_EQ_INT(c.annotators_per_clip, 7);
    config_free(&c);
    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"[labels]\nthreshold = 6\n", "unknown key 'threshold' in [labels]"},
        {"[labels]\nsingle_label_threshold = -1\n", "whole number >= 0"},
        {"[labels]\nannotators_per_clip = 0\n", "whole number >= 1"},
        {"[labels]\nsingle_label_threshold = 10\n", "leaves no clip single-labelled"},
        {"[label]\n", "unknown section [label]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        config_defaults(&c);
        CHECK_EQ_INT(write_conf(path, bad[i].text), 0);
        CHECK_EQ_INT(config_load(path, &c, err, sizeof err), -EINVAL);
        CHECK(strstr(err, bad[i].expect) != NULL);
        if (!strstr(err, bad[i].expect))
            fprintf(stderr, "config error '%s' lacks '%s'\n", err, bad[i].expect);
        config_free(&c);
    }
    unlink(path);
}

int main(void)
{
    RUN(test_emotions);
    RUN(test_single_label);
    RUN(test_kappa_classic);
    RUN(test_kappa_edges);
    RUN(test_bands);
    RUN(test_config_labels);
    return check_report();
}
