/* test_train_layers.c: every CPU layer's backward against central finite
 * differences of its forward (loss = sum r_i * out_i with random r), the
 * tiled conv3d against the untiled one, the oneDNN conv3d (channels-first,
 * channels-last and channel-blocked by 8 and 16) against the reference, the
 * channels-last and blocked twins of the layers against the channels-first
 * ones, EC-STFL (paper and L1 forms) and the
 * center loss gradients by finite differences, the single-class EC-STFL batch,
 * dropout masks, SGD against its formula. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conv_dnnl.h"
#include "layers.h"
#include "refload.h"
#include "rng.h"

static uint64_t seed = 42;

static float *randv(int64_t n, float scale)
{
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * (2.f * rng_uniform(&seed) - 1.f);
    return v;
}

static double dot(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* max |analytic - numeric| / max |numeric| over the checked coordinates */
static double fd_err(const float *an, const double *num, int64_t n)
{
    double md = 0, mn = 1e-8;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs(an[i] - num[i]));
        mn = fmax(mn, fabs(num[i]));
    }
    return md / mn;
}

/* ---- conv3d: loss(x, w, b) = r . conv(x, w, b) */
static struct conv3d_shape g_cs;
static struct conv3d_work g_ws;
static float *g_r;

static double conv_loss(const float *x, const float *w, const float *b)
{
    int64_t on = (int64_t)g_cs.n * g_cs.oc * g_cs.to * g_cs.ho * g_cs.wo;
    float *y = malloc(sizeof(float) * on);
    conv3d_forward(y, x, w, b, &g_cs, &g_ws);
    double l = dot(y, g_r, on);
    free(y);
    return l;
}

static void fd_vec(float *v, int64_t n, double *num, double (*f)(void), float h)
{
    for (int64_t i = 0; i < n; i++) {
        float o = v[i];
        v[i] = o + h;
        double lp = f();
        v[i] = o - h;
        double lm = f();
        v[i] = o;
        num[i] = (lp - lm) / (2.0 * h);
    }
}

static float *cx, *cw, *cb;
static double conv_loss_g(void) { return conv_loss(cx, cw, cb); }

/* Whether oneDNN on this CPU runs the weight gradient of s without im2col +
 * gemm on a zero-padded copy of the input without padding (conv_dnnl.c's
 * way around a kernel deeper than the input). */
static int dnnl_has_direct_bwd_w(const struct conv3d_shape *s, int layout, int block, int bias)
{
    struct conv3d_shape d = *s;
    d.t = s->t + 2 * s->pt, d.h = s->h + 2 * s->ph, d.w = s->w + 2 * s->pw;
    d.pt = d.ph = d.pw = 0;
    char impls[256];
    struct conv3d_work ws = {
        .threads = 2, .max_tile_floats = 1u << 20, .impl = CONV3D_DNNL, .layout = layout, .block = block};
    int direct = conv3d_shape_init(&d) == 0 && conv3d_work_plan(&ws, &d, bias, NULL, 0) == 0 &&
                 conv3d_dnnl_describe(&ws, &d, bias, impls, sizeof impls) == 0 && !strstr(impls, "bwd_w x64:gemm");
    conv3d_work_release(&ws);
    return direct;
}

/* Whether the padding lanes of a tensor of c channels in layout / block
 * (N x ceil(c/B) x S x B) are all zero; 1 for layouts without padding. */
static int pad_lanes_zero(const float *t, int n, int c, int64_t s, int layout, int block)
{
    if (layout != LAYOUT_BLOCKED || c % block == 0)
        return 1;
    const int nb = (c + block - 1) / block, last = c - (nb - 1) * block;
    int zero = 1;
    for (int i = 0; i < n; i++)
        for (int64_t p = 0; p < s; p++)
            for (int j = last; j < block; j++)
                zero &= t[(((int64_t)i * nb + nb - 1) * s + p) * block + j] == 0.f;
    return zero;
}

/* the layouts oneDNN's conv3d runs on: layout, block */
static const int dnnl_layouts[4][2] = {{LAYOUT_NCDHW, 0}, {LAYOUT_NDHWC, 0}, {LAYOUT_BLOCKED, 8}, {LAYOUT_BLOCKED, 16}};

/* oneDNN's conv3d of the case (cx, cw, cb, g_r as dout) in each layout
 * against the reference's; twice, bitwise the same (determinism) */
static void conv_dnnl_case(const struct conv3d_shape *s, int bias)
{
    char why[256];
    if (!conv3d_dnnl_available(why, sizeof why)) {
        printf("  SKIP oneDNN conv3d: %s\n", why);
        return;
    }
    int64_t S = (int64_t)s->t * s->h * s->w, SO = (int64_t)s->to * s->ho * s->wo;
    int64_t xn = (int64_t)s->n * s->c * S, wn = (int64_t)s->oc * s->c * s->kt * s->kh * s->kw, on = (int64_t)s->n * s->oc * SO;
    float *y = malloc(sizeof(float) * on), *dx = malloc(sizeof(float) * xn), *dw = malloc(sizeof(float) * wn);
    float *db = malloc(sizeof(float) * s->oc);
    struct conv3d_work ref = {.threads = 2, .max_tile_floats = 1u << 20};
    conv3d_forward(y, cx, cw, cb, s, &ref);
    conv3d_backward(dx, dw, bias ? db : NULL, g_r, cx, cw, s, &ref);
    for (int li = 0; li < 4; li++) {
        const int layout = dnnl_layouts[li][0], block = dnnl_layouts[li][1];
        struct conv3d_work ws = {
            .threads = 2, .max_tile_floats = 1u << 20, .impl = CONV3D_DNNL, .layout = layout, .block = block};
        const int bi = act_block(layout, block, s->c), bo = act_block(layout, block, s->oc);
        const int64_t xp = (int64_t)s->n * act_padded_c(layout, block, s->c) * S;
        const int64_t op = (int64_t)s->n * act_padded_c(layout, block, s->oc) * SO;
        CHECK(conv3d_work_plan(&ws, s, bias, why, sizeof why) == 0);
        char impls[256];
        CHECK(conv3d_dnnl_describe(&ws, s, bias, impls, sizeof impls) == 0);
        /* a kernel deeper than the input: not the gemm weight gradient with
         * its 116 MB a thread at r3d18's size (a padded copy instead) where
         * this CPU has a direct weight-gradient kernel for the padded copy;
         * oneDNN 2.6 has none below AVX2 */
        if (s->kt > s->t) {
            if (dnnl_has_direct_bwd_w(s, layout, block, bias))
                CHECK(strstr(impls, "(padded input") || !strstr(impls, "bwd_w x64:gemm"));
            else
                printf("    no direct oneDNN weight gradient on this CPU: [%s]\n", impls);
        }
        float *x = malloc(sizeof(float) * xp), *g = malloc(sizeof(float) * op), *y2[2], *dx2[2], *dw2[2], *db2[2];
        layout_ncs_to_blk(x, cx, s->n, s->c, S, bi); /* blk 1: a copy */
        layout_ncs_to_blk(g, g_r, s->n, s->oc, SO, bo);
        for (int rep = 0; rep < 2; rep++) {
            y2[rep] = malloc(sizeof(float) * op), dx2[rep] = malloc(sizeof(float) * xp);
            dw2[rep] = malloc(sizeof(float) * wn), db2[rep] = malloc(sizeof(float) * s->oc);
            conv3d_forward(y2[rep], x, cw, cb, s, &ws);
            conv3d_backward(dx2[rep], dw2[rep], bias ? db2[rep] : NULL, g, x, cw, s, &ws);
        }
        CHECK(!memcmp(y2[0], y2[1], sizeof(float) * op) && !memcmp(dx2[0], dx2[1], sizeof(float) * xp));
        CHECK(!memcmp(dw2[0], dw2[1], sizeof(float) * wn) && (!bias || !memcmp(db2[0], db2[1], sizeof(float) * s->oc)));
        /* blocked outputs keep their padding lanes zero */
        CHECK(pad_lanes_zero(y2[0], s->n, s->oc, SO, layout, block) &&
              pad_lanes_zero(dx2[0], s->n, s->c, S, layout, block));
        /* back to channels-first to compare */
        layout_blk_to_ncs(y2[1], y2[0], s->n, s->oc, SO, bo);
        layout_blk_to_ncs(dx2[1], dx2[0], s->n, s->c, S, bi);
        double ey = ref_relerr(y2[1], y, on, 1e-30), ex = ref_relerr(dx2[1], dx, xn, 1e-30);
        double ew = ref_relerr(dw2[0], dw, wn, 1e-30), eb = bias ? ref_relerr(db2[0], db, s->oc, 1e-30) : 0;
        printf("    oneDNN %-8s vs reference: y %.2g dx %.2g dw %.2g db %.2g [%s]\n", conv3d_layout_name(&ws), ey, ex,
               ew, eb, impls);
        CHECK(ey < 1e-5 && ex < 1e-5 && ew < 1e-5 && eb < 1e-5);
        for (int rep = 0; rep < 2; rep++)
            free(y2[rep]), free(dx2[rep]), free(dw2[rep]), free(db2[rep]);
        free(x), free(g);
        conv3d_work_release(&ws);
    }
    free(y), free(dx), free(dw), free(db);
    conv3d_work_release(&ref);
}

static void conv_case(struct conv3d_shape s, int bias, size_t tile)
{
    CHECK(conv3d_shape_init(&s) == 0);
    g_cs = s;
    int64_t xn = (int64_t)s.n * s.c * s.t * s.h * s.w, wn = (int64_t)s.oc * s.c * s.kt * s.kh * s.kw;
    int64_t on = (int64_t)s.n * s.oc * s.to * s.ho * s.wo;
    cx = randv(xn, 1.f), cw = randv(wn, 0.5f), cb = bias ? randv(s.oc, 0.5f) : NULL;
    g_r = randv(on, 1.f);
    g_ws = (struct conv3d_work){.threads = 2, .max_tile_floats = tile}; /* whole samples per thread (2 threads) */
    CHECK(conv3d_work_plan(&g_ws, &s, bias, NULL, 0) == 0);
    float *dx = randv(xn, 9.f), *dw = randv(wn, 9.f), *db = randv(s.oc, 9.f); /* garbage: overwritten */
    conv3d_backward(dx, dw, bias ? db : NULL, g_r, cx, cw, &s, &g_ws);
    double *num = malloc(sizeof(double) * (size_t)(xn > wn ? xn : wn));
    fd_vec(cx, xn, num, conv_loss_g, 1e-2f);
    double ex = fd_err(dx, num, xn);
    fd_vec(cw, wn, num, conv_loss_g, 1e-2f);
    double ew = fd_err(dw, num, wn), eb = 0;
    if (bias) {
        fd_vec(cb, s.oc, num, conv_loss_g, 1e-2f);
        eb = fd_err(db, num, s.oc);
    }
    printf("  conv3d c%d %dx%dx%d k%d%d%d s%d%d%d p%d%d%d tile %zu: dx %.2g dw %.2g db %.2g\n", s.c, s.t, s.h, s.w,
           s.kt, s.kh, s.kw, s.st, s.sh, s.sw, s.pt, s.ph, s.pw, g_ws.floats, ex, ew, eb);
    CHECK(ex < 2e-3 && ew < 2e-3 && eb < 2e-3);

    /* the tiled result equals the one-tile result */
    /* one thread, one big tile: the same results up to rounding (OpenBLAS
     * blocks a narrow tile differently; the weight gradient adds per-thread
     * sums) */
    struct conv3d_work big = {.max_tile_floats = 1u << 30, .threads = 1};
    CHECK(conv3d_work_plan(&big, &s, 0, NULL, 0) == 0);
    float *y1 = malloc(sizeof(float) * on), *y2 = malloc(sizeof(float) * on);
    float *dx2 = malloc(sizeof(float) * xn), *dw2 = malloc(sizeof(float) * wn);
    conv3d_forward(y1, cx, cw, cb, &s, &g_ws);
    conv3d_forward(y2, cx, cw, cb, &s, &big);
    conv3d_backward(dx, dw, NULL, g_r, cx, cw, &s, &g_ws);
    conv3d_backward(dx2, dw2, NULL, g_r, cx, cw, &s, &big);
    CHECK(ref_relerr(y1, y2, on, 1e-30) < 1e-6);
    CHECK(ref_relerr(dx, dx2, xn, 1e-30) < 1e-6);
    CHECK(ref_relerr(dw, dw2, wn, 1e-30) < 1e-6);
    conv3d_work_release(&big);
    free(y1), free(y2), free(dx2), free(dw2);
    conv_dnnl_case(&s, bias);
    free(cx), free(cw), free(cb), free(g_r), free(dx), free(dw), free(db), free(num);
    conv3d_work_release(&g_ws);
}

static void conv_dnnl_only(struct conv3d_shape s)
{
    CHECK(conv3d_shape_init(&s) == 0);
    int64_t xn = (int64_t)s.n * s.c * s.t * s.h * s.w, wn = (int64_t)s.oc * s.c * s.kt * s.kh * s.kw;
    int64_t on = (int64_t)s.n * s.oc * s.to * s.ho * s.wo;
    printf("  conv3d c%d -> %d %dx%dx%d k%d%d%d s%d%d%d (oneDNN only)\n", s.c, s.oc, s.t, s.h, s.w, s.kt, s.kh, s.kw,
           s.st, s.sh, s.sw);
    cx = randv(xn, 1.f), cw = randv(wn, 0.5f), cb = NULL, g_r = randv(on, 1.f);
    conv_dnnl_case(&s, 0);
    free(cx), free(cw), free(g_r);
}

static void test_conv3d(void)
{
    /* 3x3x3 pad 1 (the r3d/C3D body), forced to many tiles */
    conv_case((struct conv3d_shape){.n = 2, .c = 3, .t = 3, .h = 5, .w = 6, .oc = 4, .kt = 3, .kh = 3, .kw = 3,
                                    .st = 1, .sh = 1, .sw = 1, .pt = 1, .ph = 1, .pw = 1},
              1, 1);
    /* the stem: 3x7x7 stride 1x2x2 pad 1x3x3 */
    conv_case((struct conv3d_shape){.n = 2, .c = 2, .t = 3, .h = 9, .w = 8, .oc = 3, .kt = 3, .kh = 7, .kw = 7,
                                    .st = 1, .sh = 2, .sw = 2, .pt = 1, .ph = 3, .pw = 3},
              0, 200);
    /* stride 2 3x3x3 and the 1x1x1 stride-2 shortcut */
    conv_case((struct conv3d_shape){.n = 1, .c = 3, .t = 4, .h = 6, .w = 5, .oc = 2, .kt = 3, .kh = 3, .kw = 3,
                                    .st = 2, .sh = 2, .sw = 2, .pt = 1, .ph = 1, .pw = 1},
              0, 1 << 20);
    conv_case((struct conv3d_shape){.n = 2, .c = 4, .t = 4, .h = 4, .w = 6, .oc = 3, .kt = 1, .kh = 1, .kw = 1,
                                    .st = 2, .sh = 2, .sw = 2},
              0, 1 << 20);
    /* r3d18's layer4 and C3D's conv5: a kernel deeper than the input (2 frames, kernel 3) */
    conv_case((struct conv3d_shape){.n = 2, .c = 16, .t = 2, .h = 4, .w = 4, .oc = 8, .kt = 3, .kh = 3, .kw = 3,
                                    .st = 1, .sh = 1, .sw = 1, .pt = 1, .ph = 1, .pw = 1},
              1, 1 << 20);
    /* channel counts the blocked layouts take without padding (oneDNN
     * against the reference only): the stride-2 shapes, whose input gradient
     * oneDNN runs on plain layouts on AVX2 (reordered around the call) */
    conv_dnnl_only((struct conv3d_shape){.n = 2, .c = 16, .t = 4, .h = 6, .w = 5, .oc = 32, .kt = 3, .kh = 3,
                                         .kw = 3, .st = 2, .sh = 2, .sw = 2, .pt = 1, .ph = 1, .pw = 1});
    conv_dnnl_only((struct conv3d_shape){.n = 2, .c = 16, .t = 4, .h = 4, .w = 6, .oc = 32, .kt = 1, .kh = 1,
                                         .kw = 1, .st = 2, .sh = 2, .sw = 2});
    /* pointwise (no column buffer) */
    conv_case((struct conv3d_shape){.n = 2, .c = 3, .t = 2, .h = 3, .w = 3, .oc = 5, .kt = 1, .kh = 1, .kw = 1,
                                    .st = 1, .sh = 1, .sw = 1},
              1, 1 << 20);
}

/* ---- batchnorm3d (train), relu, maxpool, avgpool, linear: FD on a generic
 * "forward(x) -> y" closure */
enum { L_BN, L_POOL, L_GAP, L_LIN, L_RELU };
static int L_kind, L_n = 3, L_c = 4;
static int64_t L_s = 10;
static float *L_x, *L_g, *L_b, *L_w, *L_r;
static struct conv3d_shape L_ps;

static int64_t L_outn(void)
{
    switch (L_kind) {
    case L_POOL:
        return (int64_t)L_ps.n * L_ps.c * L_ps.to * L_ps.ho * L_ps.wo;
    case L_GAP:
        return (int64_t)L_n * L_c;
    case L_LIN:
        return (int64_t)L_n * 5;
    default:
        return (int64_t)L_n * L_c * L_s;
    }
}

/* the forward of the layer under test; sm, sr: batchnorm's saved statistics */
static void L_forward(float *y, int32_t *am, float *sm, float *sr)
{
    float rm[8] = {0}, rv[8] = {0};
    switch (L_kind) {
    case L_BN:
        batchnorm3d_forward_train(y, sm, sr, rm, rv, L_x, L_g, L_b, L_n, L_c, L_s, 0.1f, 1e-5f);
        break;
    case L_POOL:
        maxpool3d_forward(y, am, L_x, &L_ps);
        break;
    case L_GAP:
        avgpool_global_forward(y, L_x, L_n, L_c, L_s);
        break;
    case L_LIN:
        linear_forward(y, L_x, L_w, L_b, L_n, L_c, 5);
        break;
    case L_RELU:
        relu_forward(y, L_x, L_outn());
        break;
    }
}

static double L_loss(void)
{
    int64_t on = L_outn();
    float *y = malloc(sizeof(float) * on), sm[8], sr[8];
    int32_t *am = malloc(sizeof(int32_t) * on);
    L_forward(y, am, sm, sr);
    double l = dot(y, L_r, on);
    free(y), free(am);
    return l;
}

static void layer_case(int kind, const char *name)
{
    L_kind = kind;
    int64_t xn = kind == L_POOL ? (int64_t)L_ps.n * L_ps.c * L_ps.t * L_ps.h * L_ps.w
                 : kind == L_LIN ? (int64_t)L_n * L_c : (int64_t)L_n * L_c * L_s;
    L_x = randv(xn, 1.f), L_g = randv(L_c, 1.f), L_b = randv(5, 1.f), L_w = randv(5 * L_c, 1.f);
    if (kind == L_POOL || kind == L_RELU) {
        /* the kinks: distinct values at least 2/xn apart and none within 1/xn
         * of zero (a shuffle of evenly spaced ones), so that the FD step never
         * changes a window's winner or a relu's side */
        for (int64_t i = 0; i < xn; i++)
            L_x[i] = (float)((2.0 * i + 1.0) / xn - 1.0);
        for (int64_t i = xn - 1; i > 0; i--) {
            int64_t j = (int64_t)(rng_uniform(&seed) * (i + 1)) % (i + 1);
            float t = L_x[i];
            L_x[i] = L_x[j], L_x[j] = t;
        }
    }
    int64_t on = L_outn();
    L_r = randv(on, 1.f);
    float *y = malloc(sizeof(float) * on), *dx = randv(xn, 9.f), *dg = randv(8, 9.f), *db = randv(8, 9.f);
    float *dw = randv(5 * L_c, 9.f), sm[8], sr[8];
    int32_t *am = malloc(sizeof(int32_t) * on);
    double *num = malloc(sizeof(double) * (size_t)(xn + 64));
    double e = 0;
    L_forward(y, am, sm, sr);
    switch (kind) {
    case L_BN:
        batchnorm3d_backward(dx, dg, db, L_r, L_x, L_g, sm, sr, L_n, L_c, L_s);
        fd_vec(L_g, L_c, num, L_loss, 1e-2f);
        e = fmax(e, fd_err(dg, num, L_c));
        fd_vec(L_b, L_c, num, L_loss, 1e-2f);
        e = fmax(e, fd_err(db, num, L_c));
        break;
    case L_POOL:
        maxpool3d_backward(dx, L_r, am, &L_ps);
        break;
    case L_GAP:
        avgpool_global_backward(dx, L_r, L_n, L_c, L_s);
        break;
    case L_LIN:
        linear_backward(dx, dw, db, L_r, L_x, L_w, L_n, L_c, 5);
        fd_vec(L_w, 5 * L_c, num, L_loss, 1e-2f);
        e = fmax(e, fd_err(dw, num, 5 * L_c));
        fd_vec(L_b, 5, num, L_loss, 1e-2f);
        e = fmax(e, fd_err(db, num, 5));
        break;
    case L_RELU:
        relu_backward(dx, L_r, y, on);
        break;
    }
    fd_vec(L_x, xn, num, L_loss, kind == L_POOL || kind == L_RELU ? 1e-3f : 1e-2f);
    e = fmax(e, fd_err(dx, num, xn));
    printf("  %-12s finite-difference rel err %.2g\n", name, e);
    CHECK(e < 5e-3);
    free(L_x), free(L_g), free(L_b), free(L_w), free(L_r), free(y), free(dx), free(dg), free(db), free(dw);
    free(am), free(num);
}

static void test_layers_fd(void)
{
    layer_case(L_BN, "batchnorm3d");
    L_ps = (struct conv3d_shape){.n = 2, .c = 3, .t = 3, .h = 5, .w = 5, .oc = 3, .kt = 2, .kh = 2, .kw = 2,
                                 .st = 2, .sh = 2, .sw = 2, .pt = 0, .ph = 1, .pw = 1};
    CHECK(conv3d_shape_init(&L_ps) == 0);
    layer_case(L_POOL, "maxpool3d");
    layer_case(L_GAP, "avgpool");
    layer_case(L_LIN, "linear");
    layer_case(L_RELU, "relu");
}

/* ---- the channels-last and blocked twins equal the channels-first layers
 * on the same data: pooling bitwise (the same comparisons and sums in the
 * same order), batchnorm to rounding (its sums go by runs of rows); the
 * layout changes are inverse; blocked outputs keep their padding zero */
static double diff_after(const float *bl, const float *cf, int n, int c, int64_t s, int blk)
{
    float *t = malloc(sizeof(float) * (size_t)n * c * s);
    layout_blk_to_ncs(t, bl, n, c, s, blk);
    double e = ref_relerr(t, cf, (int64_t)n * c * s, 1e-30);
    free(t);
    return e;
}
static int same_after(const float *bl, const float *cf, int n, int c, int64_t s, int blk)
{
    return diff_after(bl, cf, n, c, s, blk) == 0;
}
static int pad_zero(const float *t, int n, int c, int64_t s, int blk)
{
    return pad_lanes_zero(t, n, c, s, LAYOUT_BLOCKED, blk);
}

/* one block size; blk = c runs the channels-last (_cl) names */
static void twins_case(int blk)
{
    /* 20 channels: with blk 8 or 16, full blocks and a padded one; S = 5 x 7 x 9 */
    const int n = 3, c = 20, cl = blk == c, cp = (c + blk - 1) / blk * blk;
    const int64_t s = 5 * 7 * 9, cnt = (int64_t)n * c * s, pcnt = (int64_t)n * cp * s;
    printf("  blocks of %d channels%s\n", blk, cl ? " (channels-last)" : blk == 1 ? " (channels-first)" : "");
    float *x = randv(cnt, 2.f), *xl = malloc(sizeof(float) * pcnt), *back = malloc(sizeof(float) * cnt);
    layout_ncs_to_blk(xl, x, n, c, s, blk);
    /* n 1, position 17, channel 13 */
    CHECK(xl[((int64_t)(1 * (cp / blk) + 13 / blk) * s + 17) * blk + 13 % blk] == x[((int64_t)1 * c + 13) * s + 17]);
    CHECK(pad_zero(xl, n, c, s, blk));
    layout_blk_to_ncs(back, xl, n, c, s, blk);
    CHECK(!memcmp(back, x, sizeof(float) * cnt));
    if (cl) { /* the channels-last names are the same changes */
        layout_ncs_to_nsc(back, x, n, c, s);
        CHECK(!memcmp(back, xl, sizeof(float) * cnt));
    }

    float *g = randv(c, 1.f), *b = randv(c, 1.f), *r = randv(cnt, 1.f), *rl = malloc(sizeof(float) * pcnt);
    layout_ncs_to_blk(rl, r, n, c, s, blk);
    float *y = malloc(sizeof(float) * cnt), *yl = malloc(sizeof(float) * pcnt), *dx = malloc(sizeof(float) * cnt);
    float *dxl = malloc(sizeof(float) * pcnt);
    float sm[20], sr[20], sml[20], srl[20], rm[20], rv[20], rml[20], rvl[20], dg[20], db[20], dgl[20], dbl[20];
    for (int i = 0; i < c; i++)
        rm[i] = rml[i] = 0.1f * i, rv[i] = rvl[i] = 1.f + 0.05f * i;
    batchnorm3d_forward_train(y, sm, sr, rm, rv, x, g, b, n, c, s, 0.1f, 1e-5f);
    if (cl)
        batchnorm3d_forward_train_cl(yl, sml, srl, rml, rvl, xl, g, b, n, c, s, 0.1f, 1e-5f);
    else
        batchnorm3d_forward_train_blk(yl, sml, srl, rml, rvl, xl, g, b, n, c, s, 0.1f, 1e-5f, blk);
    CHECK(diff_after(yl, y, n, c, s, blk) < 1e-6 && pad_zero(yl, n, c, s, blk));
    CHECK(ref_relerr(sml, sm, c, 1e-30) < 1e-6 && ref_relerr(srl, sr, c, 1e-30) < 1e-6);
    CHECK(ref_relerr(rml, rm, c, 1e-30) < 1e-6 && ref_relerr(rvl, rv, c, 1e-30) < 1e-6);
    batchnorm3d_backward(dx, dg, db, r, x, g, sm, sr, n, c, s);
    if (cl)
        batchnorm3d_backward_cl(dxl, dgl, dbl, rl, xl, g, sml, srl, n, c, s);
    else
        batchnorm3d_backward_blk(dxl, dgl, dbl, rl, xl, g, sml, srl, n, c, s, blk);
    CHECK(diff_after(dxl, dx, n, c, s, blk) < 1e-6 && pad_zero(dxl, n, c, s, blk));
    CHECK(ref_relerr(dgl, dg, c, 1e-30) < 1e-6 && ref_relerr(dbl, db, c, 1e-30) < 1e-6);
    batchnorm3d_forward_eval(y, x, g, b, rm, rv, n, c, s, 1e-5f);
    if (cl)
        batchnorm3d_forward_eval_cl(yl, xl, g, b, rm, rv, n, c, s, 1e-5f);
    else
        batchnorm3d_forward_eval_blk(yl, xl, g, b, rm, rv, n, c, s, 1e-5f, blk);
    CHECK(same_after(yl, y, n, c, s, blk) && pad_zero(yl, n, c, s, blk));

    /* the fused batchnorm + relu = the two calls, bitwise (both blocked) */
    float *y2 = malloc(sizeof(float) * pcnt), *dx2 = malloc(sizeof(float) * pcnt), *g2 = malloc(sizeof(float) * pcnt);
    float dg2[20], db2[20];
    memcpy(rm, rml, sizeof rm), memcpy(rv, rvl, sizeof rv);
    batchnorm3d_forward_train_blk(yl, sml, srl, rml, rvl, xl, g, b, n, c, s, 0.1f, 1e-5f, blk);
    relu_forward(yl, yl, pcnt);
    if (cl)
        batchnorm3d_relu_forward_train_cl(y2, sm, sr, rm, rv, xl, g, b, n, c, s, 0.1f, 1e-5f);
    else
        batchnorm3d_relu_forward_train_blk(y2, sm, sr, rm, rv, xl, g, b, n, c, s, 0.1f, 1e-5f, blk);
    CHECK(!memcmp(y2, yl, sizeof(float) * pcnt) && !memcmp(sm, sml, sizeof sm) && !memcmp(rv, rvl, sizeof rv));
    memcpy(g2, rl, sizeof(float) * pcnt);
    relu_backward(g2, g2, yl, pcnt);
    batchnorm3d_backward_blk(dxl, dgl, dbl, g2, xl, g, sml, srl, n, c, s, blk);
    /* the relu's mask recomputed from the input (beta) = read from the output */
    if (cl)
        batchnorm3d_relu_backward_cl(dx2, dg2, db2, rl, xl, g, b, sml, srl, n, c, s);
    else
        batchnorm3d_relu_backward_blk(dx2, dg2, db2, rl, xl, g, b, sml, srl, n, c, s, blk);
    CHECK(!memcmp(dx2, dxl, sizeof(float) * pcnt) && !memcmp(dg2, dgl, sizeof dg2) && !memcmp(db2, dbl, sizeof db2));
    /* a residual block's end: relu(batchnorm + shortcut) = the three calls,
     * and its backward, add_relu_backward = the sum and relu_backward */
    float *res = malloc(sizeof(float) * pcnt), *y3 = malloc(sizeof(float) * pcnt);
    layout_ncs_to_blk(res, r, n, c, s, blk);
    memcpy(rm, rml, sizeof rm), memcpy(rv, rvl, sizeof rv);
    batchnorm3d_forward_train_blk(yl, sml, srl, rml, rvl, xl, g, b, n, c, s, 0.1f, 1e-5f, blk);
    for (int64_t i = 0; i < pcnt; i++)
        yl[i] += res[i];
    relu_forward(yl, yl, pcnt);
    batchnorm3d_add_relu_forward_train_blk(y3, sm, sr, rm, rv, xl, res, g, b, n, c, s, 0.1f, 1e-5f, blk);
    CHECK(!memcmp(y3, yl, sizeof(float) * pcnt) && !memcmp(sm, sml, sizeof sm) && !memcmp(rv, rvl, sizeof rv));
    batchnorm3d_forward_eval_blk(yl, xl, g, b, rm, rv, n, c, s, 1e-5f, blk);
    for (int64_t i = 0; i < pcnt; i++)
        yl[i] += res[i];
    relu_forward(yl, yl, pcnt);
    batchnorm3d_add_relu_forward_eval_blk(y3, xl, res, g, b, rm, rv, n, c, s, 1e-5f, blk);
    CHECK(!memcmp(y3, yl, sizeof(float) * pcnt) && pad_zero(y3, n, c, s, blk));
    memcpy(g2, rl, sizeof(float) * pcnt);
    for (int64_t i = 0; i < pcnt; i++)
        g2[i] += res[i];
    relu_backward(g2, g2, y3, pcnt);
    memcpy(dx2, rl, sizeof(float) * pcnt);
    add_relu_backward(dx2, res, y3, pcnt);
    CHECK(!memcmp(dx2, g2, sizeof(float) * pcnt));
    free(res), free(y3);
    batchnorm3d_forward_eval_blk(yl, xl, g, b, rm, rv, n, c, s, 1e-5f, blk);
    relu_forward(yl, yl, pcnt);
    if (cl)
        batchnorm3d_relu_forward_eval_cl(y2, xl, g, b, rm, rv, n, c, s, 1e-5f);
    else
        batchnorm3d_relu_forward_eval_blk(y2, xl, g, b, rm, rv, n, c, s, 1e-5f, blk);
    CHECK(!memcmp(y2, yl, sizeof(float) * pcnt));
    int zeros = 0;
    for (int64_t i = 0; i < pcnt; i++)
        zeros += y2[i] == 0.f;
    CHECK(zeros - (pcnt - cnt) > cnt / 4 && zeros - (pcnt - cnt) < cnt * 3 / 4); /* the relu did something */
    free(y2), free(dx2), free(g2);

    float gap[60], gapl[60];
    avgpool_global_forward(gap, x, n, c, s);
    if (cl)
        avgpool_global_forward_cl(gapl, xl, n, c, s);
    else
        avgpool_global_forward_blk(gapl, xl, n, c, s, blk);
    CHECK(!memcmp(gap, gapl, sizeof gap));
    avgpool_global_backward(dx, r, n, c, s);
    if (cl)
        avgpool_global_backward_cl(dxl, r, n, c, s); /* dout N x C is the same in all layouts */
    else
        avgpool_global_backward_blk(dxl, r, n, c, s, blk);
    CHECK(same_after(dxl, dx, n, c, s, blk) && pad_zero(dxl, n, c, s, blk));

    /* max pooling 2x2x2 stride 2 with padding 0x1x1, ties included (rounded values) */
    struct conv3d_shape ps = {.n = n, .c = c, .t = 5, .h = 7, .w = 9, .oc = c, .kt = 2, .kh = 2, .kw = 2,
                              .st = 2, .sh = 2, .sw = 2, .pt = 0, .ph = 1, .pw = 1};
    CHECK(conv3d_shape_init(&ps) == 0);
    for (int64_t i = 0; i < cnt; i++)
        x[i] = roundf(x[i] * 2.f);
    layout_ncs_to_blk(xl, x, n, c, s, blk);
    int64_t so = (int64_t)ps.to * ps.ho * ps.wo, ocnt = (int64_t)n * c * so, opcnt = (int64_t)n * cp * so;
    int32_t *am = malloc(sizeof(int32_t) * ocnt), *aml = malloc(sizeof(int32_t) * opcnt);
    maxpool3d_forward(y, am, x, &ps);
    if (cl)
        maxpool3d_forward_cl(yl, aml, xl, &ps);
    else
        maxpool3d_forward_blk(yl, aml, xl, &ps, blk);
    CHECK(same_after(yl, y, n, c, so, blk) && pad_zero(yl, n, c, so, blk));
    int am_same = 1;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int64_t p = 0; p < so; p++)
                am_same &= am[((int64_t)i * c + ch) * so + p] ==
                           aml[(((int64_t)i * (cp / blk) + ch / blk) * so + p) * blk + ch % blk];
    CHECK(am_same);
    layout_ncs_to_blk(rl, r, n, c, so, blk);
    maxpool3d_backward(dx, r, am, &ps);
    if (cl)
        maxpool3d_backward_cl(dxl, rl, aml, &ps);
    else
        maxpool3d_backward_blk(dxl, rl, aml, &ps, blk);
    CHECK(same_after(dxl, dx, n, c, s, blk) && pad_zero(dxl, n, c, s, blk));
    free(x), free(xl), free(back), free(g), free(b), free(r), free(rl), free(y), free(yl), free(dx), free(dxl);
    free(am), free(aml);
}

static void test_layout_twins(void)
{
    static const int blks[] = {20, 16, 8, 1};
    for (size_t i = 0; i < sizeof blks / sizeof *blks; i++)
        twins_case(blks[i]);
}

static void test_batchnorm_eval_and_stats(void)
{
    int n = 2, c = 2;
    int64_t s = 6;
    float *x = randv(n * c * s, 2.f), y[24], g[2] = {1.5f, 0.5f}, b[2] = {0.1f, -0.2f}, sm[2], sr[2];
    float rm[2] = {0.f, 1.f}, rv[2] = {1.f, 2.f};
    batchnorm3d_forward_train(y, sm, sr, rm, rv, x, g, b, n, c, s, 0.1f, 1e-5f);
    for (int ch = 0; ch < c; ch++) {
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < s; p++)
                mean += x[(i * c + ch) * s + p];
        mean /= n * s;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < s; p++)
                var += pow(x[(i * c + ch) * s + p] - mean, 2);
        CHECK(fabs(rm[ch] - (0.9 * (ch ? 1.0 : 0.0) + 0.1 * mean)) < 1e-6);
        CHECK(fabs(rv[ch] - (0.9 * (ch ? 2.0 : 1.0) + 0.1 * var / (n * s - 1))) < 1e-5); /* unbiased */
    }
    batchnorm3d_forward_eval(y, x, g, b, rm, rv, n, c, s, 1e-5f);
    CHECK(fabs(y[3] - ((x[3] - rm[0]) / sqrtf(rv[0] + 1e-5f) * g[0] + b[0])) < 1e-5);   /* n 0, channel 0 */
    CHECK(fabs(y[7] - ((x[7] - rm[1]) / sqrtf(rv[1] + 1e-5f) * g[1] + b[1])) < 1e-5);   /* n 0, channel 1 */
    free(x);
}

static void test_softmax_ce(void)
{
    int n = 4, k = 7;
    float *z = randv(n * k, 3.f), p[28], d[28];
    int32_t lab[4] = {0, 6, 3, 3};
    int correct;
    float l = softmax_crossentropy_forward(p, z, lab, n, k, &correct);
    softmax_crossentropy_backward(d, p, lab, n, k, 1.f);
    double num[28];
    for (int i = 0; i < n * k; i++) {
        float o = z[i];
        z[i] = o + 1e-2f;
        double lp = softmax_crossentropy_forward(p, z, lab, n, k, NULL);
        z[i] = o - 1e-2f;
        double lm = softmax_crossentropy_forward(p, z, lab, n, k, NULL);
        z[i] = o;
        num[i] = (lp - lm) / 2e-2;
    }
    CHECK(fd_err(d, num, n * k) < 2e-3);
    CHECK(l > 0 && correct >= 0 && correct <= n);
    free(z);
}

/* ---- the feature losses */
static int F_n = 8, F_d = 5, F_kind;
static float *F_x, *F_c;
static int32_t F_lab[8] = {0, 1, 0, 2, 1, 0, 2, 2};

static double F_loss(void)
{
    int active;
    if (F_kind == 0)
        return ecstfl_forward(F_x, F_lab, F_n, F_d, &active);
    if (F_kind == 1)
        return ecstfl_l1_forward(F_x, F_lab, F_n, F_d, &active);
    return center_loss_forward(F_x, F_c, F_lab, F_n, F_d);
}

static void test_feature_losses_fd(void)
{
    static const char *names[] = {"EC-STFL (L2, eq. 9)", "EC-STFL-L1", "center loss"};
    for (F_kind = 0; F_kind < 3; F_kind++) {
        F_x = randv(F_n * F_d, 1.f);
        F_c = randv(3 * F_d, 1.f);
        float *g = calloc(F_n * F_d, sizeof(float));
        float *g2 = calloc(F_n * F_d, sizeof(float));
        if (F_kind == 0)
            ecstfl_backward_add(g, F_x, F_lab, F_n, F_d, 1.f);
        else if (F_kind == 1)
            ecstfl_l1_backward_add(g, F_x, F_lab, F_n, F_d, 1.f);
        else
            center_loss_backward_add(g, F_x, F_c, F_lab, F_n, F_d, 1.f);
        double num[40];
        fd_vec(F_x, F_n * F_d, num, F_loss, 1e-3f);
        double e = fd_err(g, num, F_n * F_d);
        printf("  %-20s finite-difference rel err %.2g\n", names[F_kind], e);
        CHECK(e < 2e-3);
        /* the scale argument scales, and "add" adds */
        for (int i = 0; i < F_n * F_d; i++)
            g2[i] = 1.f;
        if (F_kind == 0)
            ecstfl_backward_add(g2, F_x, F_lab, F_n, F_d, 10.f);
        else if (F_kind == 1)
            ecstfl_l1_backward_add(g2, F_x, F_lab, F_n, F_d, 10.f);
        else
            center_loss_backward_add(g2, F_x, F_c, F_lab, F_n, F_d, 10.f);
        CHECK(fabsf(g2[3] - (1.f + 10.f * g[3])) < 1e-4f * (1.f + fabsf(10.f * g[3])));
        free(F_x), free(F_c), free(g), free(g2);
    }
}

static void test_ecstfl_values(void)
{
    /* hand-computed: 1-D features 0, 1 (label 0) and 3 (label 1):
     * intra = (1/2)|0-1| * 2 = 1; inter = |0-3|/1 + |1-3|/1 + |3-0|/2 + |3-1|/2 = 7.5 */
    float x[3] = {0, 1, 3};
    int32_t lab[3] = {0, 0, 1};
    int active;
    float l = ecstfl_forward(x, lab, 3, 1, &active);
    CHECK(active == 1);
    CHECK(fabsf(l - 1.f / 7.5f) < 1e-6f);
    /* L1 variant: P = (1/2, 1/2, 0), R = (1/3 / 2, 1/2 / 2, (1/3 + 1/2) / 3),
     * L = (1/2 * 1/6 + 1/2 * 1/4) / 9 */
    l = ecstfl_l1_forward(x, lab, 3, 1, &active);
    CHECK(fabsf(l - (0.5f / 6 + 0.5f / 4) / 9) < 1e-5f);
}

static void test_ecstfl_single_class(void)
{
    float *x = randv(6 * 4, 1.f), g[24] = {0};
    int32_t lab[6] = {2, 2, 2, 2, 2, 2};
    int active = 7;
    float l = ecstfl_forward(x, lab, 6, 4, &active);
    CHECK(active == 0);
    CHECK(l == 0.f);
    ecstfl_backward_add(g, x, lab, 6, 4, 10.f);
    int zero = 1;
    for (int i = 0; i < 24; i++)
        zero &= g[i] == 0.f;
    CHECK(zero);
    active = 7;
    l = ecstfl_l1_forward(x, lab, 6, 4, &active);
    CHECK(active == 0 && l == 0.f);
    free(x);
}

static void test_center_update(void)
{
    float c[2 * 2] = {0, 0, 1, 1}, x[3 * 2] = {2, 0, 4, 0, 5, 5};
    int32_t lab[3] = {0, 0, 1};
    center_update(c, x, lab, 3, 2, 2, 0.5f);
    /* class 0: delta = ((0-2) + (0-4)) / 3 = -2 -> c = 0 + 0.5*2 = 1; y: 0 */
    CHECK(fabsf(c[0] - 1.f) < 1e-6f && fabsf(c[1]) < 1e-6f);
    /* class 1: delta = (1-5) / 2 = -2 -> c = 1 + 1 = 2 */
    CHECK(fabsf(c[2] - 2.f) < 1e-6f && fabsf(c[3] - 2.f) < 1e-6f);
}

static void test_dropout(void)
{
    int64_t n = 20000;
    float *x = randv(n, 1.f), *y = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
    float *d = malloc(sizeof(float) * n);
    uint8_t *m = malloc(n), *m2 = malloc(n);
    uint64_t r1 = 5, r2 = 5;
    dropout_forward(y, m, x, n, 0.5f, &r1);
    dropout_forward(y2, m2, x, n, 0.5f, &r2);
    CHECK(!memcmp(m, m2, n) && r1 == r2); /* same seed, same mask */
    int64_t kept = 0;
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        kept += m[i];
        ok &= m[i] ? y[i] == 2.f * x[i] : y[i] == 0.f;
    }
    CHECK(ok);
    CHECK(kept > n * 0.48 && kept < n * 0.52);
    dropout_backward(d, x, m, n, 0.5f);
    ok = 1;
    for (int64_t i = 0; i < n; i++)
        ok &= d[i] == (m[i] ? 2.f * x[i] : 0.f);
    CHECK(ok);
    free(x), free(y), free(y2), free(d), free(m), free(m2);
}

static void test_sgd(void)
{
    float w[2] = {1.f, -2.f}, v[2] = {0}, g[2] = {0.5f, 0.25f};
    sgd_update(w, v, g, 2, 0.1f, 0.9f, 0.01f, 1);
    /* first step: v = g + wd w */
    CHECK(fabsf(v[0] - 0.51f) < 1e-6f && fabsf(w[0] - (1.f - 0.051f)) < 1e-6f);
    float w0 = w[1], v0 = v[1];
    sgd_update(w, v, g, 2, 0.1f, 0.9f, 0.01f, 0);
    float vexp = 0.9f * v0 + 0.25f + 0.01f * w0;
    CHECK(fabsf(v[1] - vexp) < 1e-6f && fabsf(w[1] - (w0 - 0.1f * vexp)) < 1e-6f);
}

int main(void)
{
    RUN(test_conv3d);
    RUN(test_layers_fd);
    RUN(test_layout_twins);
    RUN(test_batchnorm_eval_and_stats);
    RUN(test_softmax_ce);
    RUN(test_feature_losses_fd);
    RUN(test_ecstfl_values);
    RUN(test_ecstfl_single_class);
    RUN(test_center_update);
    RUN(test_dropout);
    RUN(test_sgd);
    return check_report();
}
