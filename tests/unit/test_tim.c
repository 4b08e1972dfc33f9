/* Temporal interpolation and alignment arithmetic: TIM gives back the input
 * frames at s = 1..N, keeps a constant clip constant, is the identity for
 * N = M, equals the direct DCT-II sum (the closed form is what runs), and the
 * linear mode interpolates between neighbours. The similarity fit recovers
 * a known transform exactly. With "--weights N M MODE" it prints the M x N
 * weight matrix for tim_reference.py, which checks it against the authors'
 * SVD + path-graph Laplacian formulation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "align.h"
#include "check.h"
#include "tim.h"
#include "util.h"

static double maxdiff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static void test_gives_back_inputs(void)
{
    const int ns[] = {1, 2, 3, 7, 16, 40, 275};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        int n = ns[t];
        double *s = malloc(sizeof *s * n), *w = malloc(sizeof *w * n * n), *eye = calloc((size_t)n * n, sizeof *eye);
        for (int i = 0; i < n; i++) {
            s[i] = i + 1;
            eye[(size_t)i * n + i] = 1;
        }
        CHECK_EQ_INT(tim_weights_at(n, s, n, TIM_DCT, w), 0);
        double e = maxdiff(w, eye, (size_t)n * n);
        if (e > 1e-9)
            fprintf(stderr, "N=%d: s=1..N is %g away from the inputs\n", n, e);
        CHECK(e < 1e-9);
        /* N = M: the positions are 1..N, so the identity */
        CHECK_EQ_INT(tim_weights(n, n, TIM_DCT, w), 0);
        CHECK(n == 1 || maxdiff(w, eye, (size_t)n * n) < 1e-9);
        CHECK_EQ_INT(tim_weights(n, n, TIM_LINEAR, w), 0);
        CHECK(maxdiff(w, eye, (size_t)n * n) < 1e-12);
        free(s);
        free(w);
        free(eye);
    }
}

static void test_constant_and_direct_sum(void)
{
    const int ns[] = {1, 2, 5, 9, 16, 33, 100};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        int n = ns[t], m = 16;
        double *w = malloc(sizeof *w * n * m);
        CHECK_EQ_INT(tim_weights(n, m, TIM_DCT, w), 0);
        double worst_row = 0, worst_direct = 0;
        for (int j = 0; j < m; j++) {
            double sum = 0, sj = tim_position(n, m, j);
            for (int i = 0; i < n; i++) {
                sum += w[(size_t)j * n + i];
                /* the sum as DESIGN.md writes it, term by term */
                double d = 1.0 / n;
                for (int k = 1; k < n; k++)
                    d += 2.0 / n * cos(M_PI * k * (i + 0.5) / n) * cos(M_PI * k * (sj - 0.5) / n);
                worst_direct = fmax(worst_direct, fabs(d - w[(size_t)j * n + i]));
            }
            worst_row = fmax(worst_row, fabs(sum - 1)); /* weights sum to 1: constants stay constant */
        }
        CHECK(worst_row < 1e-12);
        CHECK(worst_direct < 1e-12);
        free(w);
    }
    CHECK(fabs(tim_position(5, 16, 0) - 1) < 1e-15);
    CHECK(fabs(tim_position(5, 16, 15) - 5) < 1e-15);
    CHECK(tim_weights(0, 16, TIM_DCT, NULL) < 0);
}

static void test_linear(void)
{
    double s[3] = {1.25, 2.5, 3}, w[3 * 3];
    CHECK_EQ_INT(tim_weights_at(3, s, 3, TIM_LINEAR, w), 0);
    const double expect[9] = {0.75, 0.25, 0, 0, 0.5, 0.5, 0, 0, 1};
    CHECK(maxdiff(w, expect, 9) < 1e-15);
    enum tim_mode m;
    CHECK(tim_mode_parse("tim", &m) == 0 && m == TIM_DCT);
    CHECK(tim_mode_parse("linear", &m) == 0 && m == TIM_LINEAR);
    CHECK(tim_mode_parse("cubic", &m) < 0);
}

static void test_similarity(void)
{
    /* a known similarity: scale 0.8, 20 degrees, shift (5, -7) */
    double c = 0.8 * cos(0.349), s = 0.8 * sin(0.349);
    double src[10] = {10, 20, 40, 22, 25, 40, 12, 55, 38, 57}, dst[10];
    for (int i = 0; i < 5; i++) {
        dst[2 * i] = c * src[2 * i] - s * src[2 * i + 1] + 5;
        dst[2 * i + 1] = s * src[2 * i] + c * src[2 * i + 1] - 7;
    }
    double m[6];
    CHECK_EQ_INT(align_similarity(src, dst, 5, m), 0);
    const double expect[6] = {c, -s, 5, s, c, -7};
    CHECK(maxdiff(m, expect, 6) < 1e-12);
    double same[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(align_similarity(same, dst, 5, m) < 0);
    /* the five points from 68: eye centres are means of six points */
    float pts[136] = {0};
    for (int i = 36; i <= 41; i++)
        pts[2 * i] = (float)i, pts[2 * i + 1] = 1;
    pts[60] = 7, pts[61] = 8;
    double five[10];
    align_five_points(pts, five);
    CHECK(fabs(five[0] - 38.5) < 1e-12 && fabs(five[1] - 1) < 1e-12);
    CHECK(five[4] == 7 && five[5] == 8);
    /* warp with the identity copies the picture */
    unsigned char img[8 * 8 * 3], out[8 * 8 * 3];
    for (int i = 0; i < 8 * 8 * 3; i++)
        img[i] = (unsigned char)(i * 7);
    const double id[6] = {1, 0, 0, 0, 1, 0};
    CHECK_EQ_INT(align_warp(img, 8, 8, 24, id, out, 8), 0);
    CHECK(memcmp(img, out, sizeof img) == 0);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--weights")) {
        int n = atoi(argv[2]), m = atoi(argv[3]);
        enum tim_mode mode;
        if (n < 1 || m < 1 || tim_mode_parse(argv[4], &mode))
            return 2;
        double *w = malloc(sizeof *w * n * m);
        tim_weights(n, m, mode, w);
        for (int j = 0; j < m; j++)
            for (int i = 0; i < n; i++)
                printf("%.17g%c", w[(size_t)j * n + i], i + 1 < n ? ' ' : '\n');
        free(w);
        return 0;
    }
    RUN(test_gives_back_inputs);
    RUN(test_constant_and_direct_sum);
    RUN(test_linear);
    RUN(test_similarity);
    return check_report();
}
