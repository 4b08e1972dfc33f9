/* conv_dnnl.c: conv3d forward, backward-data and backward-weights through
 * oneDNN primitives (the library PyTorch's CPU convolutions use), and the
 * activation layout a model keeps on this CPU. Primitives are created once
 * per shape, batch size, bias and layout and cached in the workspace.
 *
 * Layout: which layout oneDNN's fast kernels read differs per instruction
 * set. Its brgemm kernels (AVX-512 and up) read channels-last directly; its
 * jit kernels want channel-blocked nCdhw8c (AVX2) or nCdhw16c (AVX-512) and
 * run channels-last at a fraction of their speed (on AVX2 the weight
 * gradient of r3d18's 3x3x3 convs takes 2-3x as long). With `any` formats
 * oneDNN 2.6 picks the jit kernels' blocked layout even where its brgemm
 * ones would run (r3d18 on AVX-512: 8% slower than channels-last).
 * conv3d_dnnl_pick_layout asks oneDNN what it dispatches: channels-last when
 * every forward conv of the model runs on a brgemm kernel in it, else the
 * format oneDNN picks for the outputs when their formats are left free
 * (format_tag::any); the model keeps its activations in that layout from
 * layer to layer, so nothing is reordered between layers. Primitives are
 * created with free activation formats too (except for channels-last,
 * which is asked for as such): where one picks another
 * format than the workspace's layout (AVX2's stride-2 input gradients run
 * on oneDNN's gemm convolution, which reads plain layouts only), that
 * tensor is reordered around the call through ws->buf. Weights stay in
 * PyTorch's OIDHW and are reordered into each primitive's format. Reordered
 * tensors and oneDNN's scratchpad ("user" mode) live in ws->buf, so the
 * workspace owns all of the memory.
 *
 * Threads: Debian's oneDNN uses the OpenMP runtime (checked), so its
 * parallel regions run on the backend's one OpenMP pool; it is called outside
 * any parallel region and uses omp_get_max_threads() threads. Results are
 * deterministic for a given shape, thread count and CPU (oneDNN's blocking
 * and kernels depend on them; the layout it picks depends on the CPU only).
 * Not the reference: that is layers.c, which runs when this returns an
 * error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conv_dnnl.h"

#ifndef DFEW_HAVE_DNNL

int conv3d_dnnl_available(char *why, size_t why_len)
{
    if (why)
        snprintf(why, why_len, "this build has no oneDNN (install libdnnl-dev and reconfigure with -Donednn=enabled)");
    return 0;
}

void conv3d_dnnl_version(char *buf, size_t len)
{
    snprintf(buf, len, "no oneDNN");
}

int conv3d_dnnl_plan(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, size_t *floats, char *why,
                     size_t why_len)
{
    (void)ws, (void)s, (void)bias, (void)floats;
    conv3d_dnnl_available(why, why_len);
    return -ENOTSUP;
}

int conv3d_dnnl_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const struct conv3d_shape *s, struct conv3d_work *ws)
{
    (void)out, (void)inp, (void)weight, (void)bias, (void)s, (void)ws;
    return -ENOTSUP;
}

int conv3d_dnnl_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, const struct conv3d_shape *s, struct conv3d_work *ws)
{
    (void)dinp, (void)dweight, (void)dbias, (void)dout, (void)inp, (void)weight, (void)s, (void)ws;
    return -ENOTSUP;
}

int conv3d_dnnl_describe(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, char *buf, size_t len)
{
    (void)ws, (void)s, (void)bias;
    snprintf(buf, len, "no oneDNN");
    return -ENOTSUP;
}

void conv3d_dnnl_release(struct conv3d_work *ws)
{
    (void)ws;
}

int conv3d_dnnl_pick_layout(const struct conv3d_shape *s, int count, int *layout, int *block, char *why,
                            size_t why_len)
{
    (void)s, (void)count, (void)layout, (void)block;
    conv3d_dnnl_available(why, why_len);
    return -ENOTSUP;
}

void conv3d_dnnl_isa(char *buf, size_t len)
{
    snprintf(buf, len, "none");
}

#else

#include <oneapi/dnnl/dnnl.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* staging regions start on 64-byte boundaries */
#define ALIGN_FLOATS(n) (((n) + 15) & ~(size_t)15)

/* One tensor argument of a primitive. When the primitive's format differs
 * from the caller's, the tensor is reordered through a staging region of
 * ws->buf: before the call for inputs, after it for outputs. */
struct port {
    int arg;                  /* DNNL_ARG_* */
    int out;                  /* 0: an input, 1: an output */
    dnnl_memory_t user;       /* the caller's tensor (plain layout) */
    dnnl_memory_t prim;       /* what the primitive reads or writes: user, or a staging region */
    dnnl_primitive_t reorder; /* NULL: the primitive uses the caller's memory directly */
    size_t off;               /* staging offset in floats (with a reorder, or staged by an earlier port) */
    dnnl_memory_t view;       /* padded input: the interior of prim, which the reorder fills; else NULL */
    size_t zero_bytes;        /* padded input: prim's size, zeroed before the reorder */
};

struct prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    struct port port[4];
    int nports;
    dnnl_memory_t scratch; /* NULL when the primitive needs none */
    size_t scratch_off;
};

struct entry {
    struct conv3d_shape s;
    int bias, layout, block;
    dnnl_primitive_desc_t hint; /* the forward pd the backward pds are created from */
    struct prim fwd, bwd_w, bwd_d;
    int bwd_w_pad;  /* the weight gradient reads a zero-padded copy of the input: 1 in depth, 2 everywhere */
    int bwd_d_each; /* 1: the input gradient runs a sample at a time (its output is staged) */
    size_t din_sample, dout_sample; /* floats of a sample of dinp and dout (bwd_d_each) */
    size_t fwd_floats, bwd_floats;
    struct entry *next;
};

struct conv3d_dnnl {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    struct entry *entries;
};

int conv3d_dnnl_available(char *why, size_t why_len)
{
    const dnnl_version_t *v = dnnl_version();
    if (v->cpu_runtime != DNNL_RUNTIME_OMP) {
        if (why)
            snprintf(why, why_len,
                     "oneDNN %d.%d.%d uses CPU runtime %u, not OpenMP: its threads would compete with the backend's "
                     "OpenMP pool; use DFEW_TRAIN_CPU_CONV=ref",
                     v->major, v->minor, v->patch, v->cpu_runtime);
        return 0;
    }
    return 1;
}

void conv3d_dnnl_version(char *buf, size_t len)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, len, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
}

static void prim_free(struct prim *p)
{
    for (int i = 0; i < p->nports; i++) {
        if (p->port[i].view)
            dnnl_memory_destroy(p->port[i].view);
        if (p->port[i].prim != p->port[i].user)
            dnnl_memory_destroy(p->port[i].prim);
        dnnl_memory_destroy(p->port[i].user);
        if (p->port[i].reorder)
            dnnl_primitive_destroy(p->port[i].reorder);
    }
    if (p->scratch)
        dnnl_memory_destroy(p->scratch);
    if (p->p)
        dnnl_primitive_destroy(p->p);
    if (p->pd)
        dnnl_primitive_desc_destroy(p->pd);
    memset(p, 0, sizeof *p);
}

static void entry_free(struct entry *e)
{
    prim_free(&e->fwd);
    prim_free(&e->bwd_w);
    prim_free(&e->bwd_d);
    if (e->hint)
        dnnl_primitive_desc_destroy(e->hint);
    free(e);
}

void conv3d_dnnl_release(struct conv3d_work *ws)
{
    struct conv3d_dnnl *d = ws->dnnl;
    if (!d)
        return;
    for (struct entry *e = d->entries, *n; e; e = n) {
        n = e->next;
        entry_free(e);
    }
    if (d->stream)
        dnnl_stream_destroy(d->stream);
    if (d->eng)
        dnnl_engine_destroy(d->eng);
    free(d);
    ws->dnnl = NULL;
}

static int same_shape(const struct conv3d_shape *a, const struct conv3d_shape *b)
{
    return a->n == b->n && a->c == b->c && a->t == b->t && a->h == b->h && a->w == b->w && a->oc == b->oc &&
           a->kt == b->kt && a->kh == b->kh && a->kw == b->kw && a->st == b->st && a->sh == b->sh &&
           a->sw == b->sw && a->pt == b->pt && a->ph == b->ph && a->pw == b->pw && a->in_ncdhw == b->in_ncdhw;
}

/* Adds an argument of p whose caller-side layout is user_md: a reorder
 * through staging at *off (advanced) when the primitive wants another
 * format. share (may be NULL): a port of an earlier primitive of the same
 * call holding the same tensor; reused when both want the same format.
 * pad_at (inputs; may be NULL): the primitive reads the caller's tensor
 * zero-padded, with the caller's element 0 at these coordinates. */
static dnnl_status_t add_port(struct conv3d_dnnl *d, struct prim *p, int arg, int out, const dnnl_memory_desc_t *user_md,
                              dnnl_query_t q, int qi, const struct port *share, const dnnl_dims_t pad_at, size_t *off)
{
    const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(p->pd, q, qi);
    struct port *pt = &p->port[p->nports];
    memset(pt, 0, sizeof *pt);
    pt->arg = arg;
    pt->out = out;
    dnnl_status_t st = dnnl_memory_create(&pt->user, user_md, d->eng, DNNL_MEMORY_NONE);
    if (st != dnnl_success)
        return st;
    p->nports++;
    if (!pmd || dnnl_memory_desc_equal(pmd, user_md)) {
        pt->prim = pt->user;
        return dnnl_success;
    }
    if ((st = dnnl_memory_create(&pt->prim, pmd, d->eng, DNNL_MEMORY_NONE)) != dnnl_success) {
        pt->prim = pt->user;
        return st;
    }
    if (share && share->reorder && !share->out) {
        const dnnl_memory_desc_t *smd;
        if (dnnl_memory_get_memory_desc(share->prim, &smd) == dnnl_success && dnnl_memory_desc_equal(smd, pmd)) {
            pt->off = share->off; /* staged by the earlier primitive of the call */
            return dnnl_success;
        }
    }
    dnnl_primitive_desc_t rpd;
    const dnnl_memory_desc_t *to = pmd;
    dnnl_memory_desc_t inner;
    if (pad_at) { /* the reorder writes the interior of the padded tensor */
        if ((st = dnnl_memory_desc_init_submemory(&inner, pmd, user_md->dims, pad_at)) != dnnl_success ||
            (st = dnnl_memory_create(&pt->view, &inner, d->eng, DNNL_MEMORY_NONE)) != dnnl_success)
            return st;
        to = &inner;
        pt->zero_bytes = dnnl_memory_desc_get_size(pmd);
    }
    st = out ? dnnl_reorder_primitive_desc_create(&rpd, pmd, d->eng, user_md, d->eng, NULL)
             : dnnl_reorder_primitive_desc_create(&rpd, user_md, d->eng, to, d->eng, NULL);
    if (st != dnnl_success)
        return st;
    st = dnnl_primitive_create(&pt->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success)
        return st;
    pt->off = *off;
    *off += ALIGN_FLOATS(dnnl_memory_desc_get_size(pmd) / sizeof(float));
    return dnnl_success;
}

static dnnl_status_t add_scratch(struct conv3d_dnnl *d, struct prim *p, size_t *off)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = md ? dnnl_memory_desc_get_size(md) : 0;
    if (!bytes)
        return dnnl_success;
    dnnl_status_t st = dnnl_memory_create(&p->scratch, md, d->eng, DNNL_MEMORY_NONE);
    if (st != dnnl_success)
        return st;
    p->scratch_off = *off;
    *off += ALIGN_FLOATS(bytes / sizeof(float) + 1);
    return dnnl_success;
}

static void shape_dims(const struct conv3d_shape *s, dnnl_dims_t src, dnnl_dims_t wei, dnnl_dims_t dst,
                       dnnl_dims_t bias, dnnl_dims_t stride, dnnl_dims_t pad_l, dnnl_dims_t pad_r)
{
    int64_t v[][5] = {{s->n, s->c, s->t, s->h, s->w},
                      {s->oc, s->c, s->kt, s->kh, s->kw},
                      {s->n, s->oc, s->to, s->ho, s->wo}};
    for (int i = 0; i < 5; i++)
        src[i] = v[0][i], wei[i] = v[1][i], dst[i] = v[2][i];
    bias[0] = s->oc;
    stride[0] = s->st, stride[1] = s->sh, stride[2] = s->sw;
    pad_l[0] = s->pt, pad_l[1] = s->ph, pad_l[2] = s->pw;
    /* the right padding that makes oneDNN's output size equal ours: the
     * last window may stop short of the padded end (floor division) */
    pad_r[0] = (s->to - 1) * s->st + s->kt - s->t - s->pt;
    pad_r[1] = (s->ho - 1) * s->sh + s->kh - s->h - s->ph;
    pad_r[2] = (s->wo - 1) * s->sw + s->kw - s->w - s->pw;
}

/* The weight gradient of a conv whose kernel is deeper than its input (r3d18's
 * layer4: 2 frames, kernel 3, padding 1) has no direct kernel in oneDNN 2.6,
 * whose im2col + gemm one then wants 116 MB of scratchpad per thread; on
 * AVX2 none of the 3x3x3 convs' has one, their depth padding being what its
 * jit kernel refuses. The same gradient from a copy of the input padded with
 * zero frames (and no depth padding) runs on the direct kernel without
 * scratchpad, and faster. When the primitive chosen needs more scratchpad
 * than the weights' size, this tries that (the height and width padding
 * left to the primitive; else all of it in the copy) and keeps the first
 * that needs less: replaces e->bwd_w.pd and returns 1 (depth only) or 2
 * (every dimension padded in the copy); else 0. */
static int bwd_w_padded(struct conv3d_dnnl *d, struct entry *e, const dnnl_convolution_desc_t *cd,
                        const_dnnl_primitive_attr_t attr, const dnnl_memory_desc_t *bias_md,
                        const dnnl_memory_desc_t *dst_any, dnnl_format_tag_t act)
{
    const struct conv3d_shape *s = &e->s;
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(e->bwd_w.pd, dnnl_query_scratchpad_md, 0);
    size_t scratch = sp ? dnnl_memory_desc_get_size(sp) : 0;
    size_t wbytes = sizeof(float) * (size_t)s->oc * s->c * s->kt * s->kh * s->kw;
    const dnnl_dim_t *pr = cd->padding[1];
    if (scratch <= wbytes || pr[0] < 0 || pr[1] < 0 || pr[2] < 0)
        return 0;
    for (int how = 1; how <= 2; how++) {
        const int hw = how == 2; /* height and width padded in the copy too */
        dnnl_dims_t pd_dims = {s->n, s->c, s->t + s->pt + pr[0], s->h + (hw ? s->ph + pr[1] : 0),
                               s->w + (hw ? s->pw + pr[2] : 0)};
        dnnl_dims_t pl = {0, hw ? 0 : s->ph, hw ? 0 : s->pw}, prr = {0, hw ? 0 : pr[1], hw ? 0 : pr[2]};
        dnnl_memory_desc_t src_pad;
        dnnl_convolution_desc_t fd, bd;
        dnnl_primitive_desc_t hint = NULL, pd = NULL;
        int better = 0;
        if (dnnl_memory_desc_init_by_tag(&src_pad, 5, pd_dims, dnnl_f32, act) == dnnl_success &&
            dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src_pad,
                                               &cd->diff_weights_desc, bias_md, dst_any, cd->strides, pl, prr) ==
                dnnl_success &&
            dnnl_primitive_desc_create(&hint, &fd, NULL, d->eng, NULL) == dnnl_success &&
            dnnl_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &src_pad,
                                                        &cd->diff_weights_desc, bias_md, dst_any, cd->strides, pl,
                                                        prr) == dnnl_success &&
            dnnl_primitive_desc_create(&pd, &bd, attr, d->eng, hint) == dnnl_success) {
            const dnnl_memory_desc_t *sp2 = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
            better = (sp2 ? dnnl_memory_desc_get_size(sp2) : 0) < scratch;
        }
        if (hint)
            dnnl_primitive_desc_destroy(hint);
        if (better) {
            dnnl_primitive_desc_destroy(e->bwd_w.pd);
            e->bwd_w.pd = pd;
            return how;
        }
        if (pd)
            dnnl_primitive_desc_destroy(pd);
    }
    return 0;
}

#define TRY(x)                                                                                                         \
    do {                                                                                                               \
        st = (x);                                                                                                      \
        if (st != dnnl_success) {                                                                                      \
            what = #x;                                                                                                 \
            goto fail;                                                                                                 \
        }                                                                                                              \
    } while (0)

/* oneDNN's tag for the activations of a workspace layout */
static dnnl_format_tag_t act_tag(int layout, int block)
{
    if (layout == LAYOUT_NDHWC)
        return dnnl_ndhwc;
    if (layout == LAYOUT_BLOCKED)
        return block == 4 ? dnnl_nCdhw4c : block == 8 ? dnnl_nCdhw8c : block == 16 ? dnnl_nCdhw16c
                                                                                      : dnnl_format_tag_undef;
    return dnnl_ncdhw;
}

static struct entry *entry_create(struct conv3d_dnnl *d, const struct conv3d_shape *s, int bias, int layout,
                                  int block, char *why, size_t why_len)
{
    struct entry *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    e->s = *s;
    e->bias = bias;
    e->layout = layout;
    e->block = block;
    dnnl_dims_t sd, wd, dd, bd, stride, pl, pr;
    shape_dims(s, sd, wd, dd, bd, stride, pl, pr);
    dnnl_memory_desc_t src_any, wei_any, dst_any, bias_md, src_u, wei_u, dst_u;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t st;
    const char *what = "";
    size_t off;
    /* the primitives choose weight formats, and activation formats unless
     * the caller's are channels-last (the brgemm kernels' layout, which
     * oneDNN 2.6 never picks by itself) */
    dnnl_format_tag_t user_act = act_tag(layout, block), user_src = s->in_ncdhw ? dnnl_ncdhw : user_act;
    dnnl_format_tag_t prim_act = layout == LAYOUT_NDHWC ? dnnl_ndhwc : dnnl_format_tag_any;
    dnnl_format_tag_t prim_src = s->in_ncdhw ? dnnl_format_tag_any : prim_act;
    if (user_act == dnnl_format_tag_undef) {
        snprintf(why, why_len, "no oneDNN format for %d-channel blocks", block);
        free(e);
        return NULL;
    }
    TRY(dnnl_memory_desc_init_by_tag(&src_any, 5, sd, dnnl_f32, prim_src));
    TRY(dnnl_memory_desc_init_by_tag(&wei_any, 5, wd, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&dst_any, 5, dd, dnnl_f32, prim_act));
    TRY(dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_x));
    TRY(dnnl_memory_desc_init_by_tag(&src_u, 5, sd, dnnl_f32, user_src));
    TRY(dnnl_memory_desc_init_by_tag(&wei_u, 5, wd, dnnl_f32, dnnl_oidhw));
    TRY(dnnl_memory_desc_init_by_tag(&dst_u, 5, dd, dnnl_f32, user_act));
    TRY(dnnl_primitive_attr_create(&attr));
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));

    /* forward: src, weights [, bias] -> dst */
    TRY(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &src_any, &wei_any,
                                           bias ? &bias_md : NULL, &dst_any, stride, pl, pr));
    TRY(dnnl_primitive_desc_create(&e->hint, &cd, NULL, d->eng, NULL));
    TRY(dnnl_primitive_desc_create(&e->fwd.pd, &cd, attr, d->eng, NULL));
    TRY(dnnl_primitive_create(&e->fwd.p, e->fwd.pd));
    off = 0;
    TRY(add_port(d, &e->fwd, DNNL_ARG_SRC, 0, &src_u, dnnl_query_src_md, 0, NULL, NULL, &off));
    TRY(add_port(d, &e->fwd, DNNL_ARG_WEIGHTS, 0, &wei_u, dnnl_query_weights_md, 0, NULL, NULL, &off));
    if (bias)
        TRY(add_port(d, &e->fwd, DNNL_ARG_BIAS, 0, &bias_md, dnnl_query_weights_md, 1, NULL, NULL, &off));
    TRY(add_port(d, &e->fwd, DNNL_ARG_DST, 1, &dst_u, dnnl_query_dst_md, 0, NULL, NULL, &off));
    TRY(add_scratch(d, &e->fwd, &off));
    e->fwd_floats = off;

    /* backward weights: src, diff_dst -> diff_weights [, diff_bias] */
    TRY(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &src_any, &wei_any,
                                                    bias ? &bias_md : NULL, &dst_any, stride, pl, pr));
    TRY(dnnl_primitive_desc_create(&e->bwd_w.pd, &cd, attr, d->eng, e->hint));
    int padded = e->bwd_w_pad = bwd_w_padded(d, e, &cd, attr, bias ? &bias_md : NULL, &dst_any, prim_src);
    TRY(dnnl_primitive_create(&e->bwd_w.p, e->bwd_w.pd));
    off = 0;
    dnnl_dims_t pad_at = {0, 0, s->pt, padded == 2 ? s->ph : 0, padded == 2 ? s->pw : 0};
    TRY(add_port(d, &e->bwd_w, DNNL_ARG_DIFF_DST, 0, &dst_u, dnnl_query_diff_dst_md, 0, NULL, NULL, &off));
    TRY(add_port(d, &e->bwd_w, DNNL_ARG_SRC, 0, &src_u, dnnl_query_src_md, 0, NULL, padded ? pad_at : NULL, &off));
    TRY(add_port(d, &e->bwd_w, DNNL_ARG_DIFF_WEIGHTS, 1, &wei_u, dnnl_query_diff_weights_md, 0, NULL, NULL, &off));
    if (bias)
        TRY(add_port(d, &e->bwd_w, DNNL_ARG_DIFF_BIAS, 1, &bias_md, dnnl_query_diff_weights_md, 1, NULL, NULL, &off));
    TRY(add_scratch(d, &e->bwd_w, &off));
    e->bwd_floats = off;

    /* backward data: diff_dst, weights -> diff_src; runs after backward
     * weights, so its staging reuses everything but the staged diff_dst */
    const struct port *ddst = &e->bwd_w.port[0];
    off = ddst->reorder ? ddst->off + ALIGN_FLOATS(dnnl_memory_desc_get_size(
                                          dnnl_primitive_desc_query_md(e->bwd_w.pd, dnnl_query_diff_dst_md, 0)) /
                                      sizeof(float))
                        : 0;
    TRY(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any, stride,
                                                 pl, pr));
    TRY(dnnl_primitive_desc_create(&e->bwd_d.pd, &cd, attr, d->eng, e->hint));
    /* an input gradient written in another layout than ours (AVX2's stride-2
     * ones, on oneDNN's gemm convolution, which reads and writes plain
     * layouts) is staged: then a sample at a time, so that the staging is a
     * sample's size instead of the batch's (51 MB at r3d18's layer2 entry) */
    const dnnl_memory_desc_t *dsrc_md = dnnl_primitive_desc_query_md(e->bwd_d.pd, dnnl_query_diff_src_md, 0);
    if (s->n > 1 && dsrc_md && !dnnl_memory_desc_equal(dsrc_md, &src_u)) {
        dnnl_dims_t sd1, dd1;
        memcpy(sd1, sd, sizeof sd1), memcpy(dd1, dd, sizeof dd1);
        sd1[0] = dd1[0] = 1;
        TRY(dnnl_memory_desc_init_by_tag(&src_any, 5, sd1, dnnl_f32, prim_src));
        TRY(dnnl_memory_desc_init_by_tag(&dst_any, 5, dd1, dnnl_f32, prim_act));
        TRY(dnnl_memory_desc_init_by_tag(&src_u, 5, sd1, dnnl_f32, user_src));
        TRY(dnnl_memory_desc_init_by_tag(&dst_u, 5, dd1, dnnl_f32, user_act));
        dnnl_convolution_desc_t fd1;
        TRY(dnnl_convolution_forward_desc_init(&fd1, dnnl_forward_training, dnnl_convolution_direct, &src_any,
                                               &wei_any, NULL, &dst_any, stride, pl, pr));
        dnnl_primitive_desc_t hint1 = NULL;
        TRY(dnnl_primitive_desc_create(&hint1, &fd1, NULL, d->eng, NULL));
        dnnl_primitive_desc_destroy(e->bwd_d.pd);
        e->bwd_d.pd = NULL;
        st = dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any,
                                                      stride, pl, pr);
        if (st == dnnl_success)
            st = dnnl_primitive_desc_create(&e->bwd_d.pd, &cd, attr, d->eng, hint1);
        dnnl_primitive_desc_destroy(hint1);
        TRY(st);
        e->bwd_d_each = 1;
        e->din_sample = dnnl_memory_desc_get_size(&src_u) / sizeof(float);
        e->dout_sample = dnnl_memory_desc_get_size(&dst_u) / sizeof(float);
        ddst = NULL; /* the staged diff_dst of bwd_w is the batch's */
        off = 0;
    }
    TRY(dnnl_primitive_create(&e->bwd_d.p, e->bwd_d.pd));
    TRY(add_port(d, &e->bwd_d, DNNL_ARG_DIFF_DST, 0, &dst_u, dnnl_query_diff_dst_md, 0, ddst, NULL, &off));
    TRY(add_port(d, &e->bwd_d, DNNL_ARG_WEIGHTS, 0, &wei_u, dnnl_query_weights_md, 0, NULL, NULL, &off));
    TRY(add_port(d, &e->bwd_d, DNNL_ARG_DIFF_SRC, 1, &src_u, dnnl_query_diff_src_md, 0, NULL, NULL, &off));
    TRY(add_scratch(d, &e->bwd_d, &off));
    if (off > e->bwd_floats)
        e->bwd_floats = off;
    dnnl_primitive_attr_destroy(attr);
    return e;
fail:;
    struct conv3d_work named = {.layout = layout, .block = block};
    snprintf(why, why_len, "oneDNN: %s failed (status %d) for conv3d n%d c%d %dx%dx%d -> oc%d k%dx%dx%d s%dx%dx%d %s",
             what, (int)st, s->n, s->c, s->t, s->h, s->w, s->oc, s->kt, s->kh, s->kw, s->st, s->sh, s->sw,
             conv3d_layout_name(&named));
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    entry_free(e);
    return NULL;
}

static struct entry *entry_get(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, char *why,
                               size_t why_len)
{
    struct conv3d_dnnl *d = ws->dnnl;
    if (!d) {
        if (!conv3d_dnnl_available(why, why_len))
            return NULL;
        d = calloc(1, sizeof *d);
        if (!d || dnnl_engine_create(&d->eng, dnnl_cpu, 0) != dnnl_success ||
            dnnl_stream_create(&d->stream, d->eng, dnnl_stream_default_flags) != dnnl_success) {
            snprintf(why, why_len, "oneDNN: cannot create the CPU engine");
            if (d && d->eng)
                dnnl_engine_destroy(d->eng);
            free(d);
            return NULL;
        }
        ws->dnnl = d;
    }
    for (struct entry *e = d->entries; e; e = e->next)
        if (e->bias == bias && e->layout == ws->layout && e->block == ws->block && same_shape(&e->s, s))
            return e;
    struct entry *e = entry_create(d, s, bias, ws->layout, ws->block, why, why_len);
    if (e) {
        e->next = d->entries;
        d->entries = e;
    }
    return e;
}

int conv3d_dnnl_plan(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, size_t *floats, char *why,
                     size_t why_len)
{
    struct entry *e = entry_get(ws, s, bias, why, why_len);
    if (!e)
        return -ENOTSUP;
    *floats = e->fwd_floats > e->bwd_floats ? e->fwd_floats : e->bwd_floats;
    return 0;
}

static const char *impl_name(const struct prim *p)
{
    const char *nm = "none";
    if (p->pd)
        dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &nm);
    return nm;
}

int conv3d_dnnl_describe(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, char *buf, size_t len)
{
    char why[256];
    struct entry *e = entry_get(ws, s, bias, why, sizeof why);
    if (!e) {
        snprintf(buf, len, "%s", why);
        return -ENOTSUP;
    }
    snprintf(buf, len, "fwd %s, bwd_w %s%s, bwd_d %s%s", impl_name(&e->fwd), impl_name(&e->bwd_w),
             e->bwd_w_pad == 1 ? " (padded input: t)" : e->bwd_w_pad ? " (padded input: t,h,w)" : "", impl_name(&e->bwd_d), e->bwd_d_each ? " (per sample)" : "");
    return 0;
}

/* Binds the caller's pointers (ptr[i] for port i) and the staging regions,
 * reorders the inputs in, runs the primitive, reorders the outputs out.
 * weights 0: the weights are staged already (an earlier sample's call). */
static int prim_run(struct conv3d_dnnl *d, struct prim *p, void *const *ptr, float *buf, int weights)
{
    dnnl_exec_arg_t args[5];
    int na = 0;
    for (int i = 0; i < p->nports; i++) {
        struct port *pt = &p->port[i];
        if (dnnl_memory_set_data_handle(pt->user, ptr[i]) != dnnl_success)
            return -EIO;
        if (pt->prim != pt->user && dnnl_memory_set_data_handle(pt->prim, buf + pt->off) != dnnl_success)
            return -EIO;
        if (pt->reorder && !pt->out && (weights || pt->arg != DNNL_ARG_WEIGHTS)) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, pt->user}, {DNNL_ARG_TO, pt->view ? pt->view : pt->prim}};
            if (pt->view) {
                if (dnnl_memory_set_data_handle(pt->view, buf + pt->off) != dnnl_success)
                    return -EIO;
                memset(buf + pt->off, 0, pt->zero_bytes);
            }
            if (dnnl_primitive_execute(pt->reorder, d->stream, 2, ra) != dnnl_success)
                return -EIO;
        }
        args[na++] = (dnnl_exec_arg_t){pt->arg, pt->prim};
    }
    if (p->scratch) {
        if (dnnl_memory_set_data_handle(p->scratch, buf + p->scratch_off) != dnnl_success)
            return -EIO;
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch};
    }
    if (dnnl_primitive_execute(p->p, d->stream, na, args) != dnnl_success)
        return -EIO;
    for (int i = 0; i < p->nports; i++) {
        struct port *pt = &p->port[i];
        if (pt->reorder && pt->out) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, pt->prim}, {DNNL_ARG_TO, pt->user}};
            if (dnnl_primitive_execute(pt->reorder, d->stream, 2, ra) != dnnl_success)
                return -EIO;
        }
    }
    return dnnl_stream_wait(d->stream) == dnnl_success ? 0 : -EIO;
}

int conv3d_dnnl_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const struct conv3d_shape *s, struct conv3d_work *ws)
{
    char why[256];
    struct entry *e = entry_get(ws, s, bias != NULL, why, sizeof why);
    if (!e || e->fwd_floats > ws->floats) /* conv3d_work_plan makes room */
        return -ENOTSUP;
    void *ptr[4] = {(void *)inp, (void *)weight};
    int i = 2;
    if (bias)
        ptr[i++] = (void *)bias;
    ptr[i] = out;
    const double t0 = now_s();
    int rc = prim_run(ws->dnnl, &e->fwd, ptr, ws->buf, 1);
    ws->seconds[CONV3D_FWD] += now_s() - t0;
    return rc;
}

int conv3d_dnnl_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, const struct conv3d_shape *s, struct conv3d_work *ws)
{
    char why[256];
    struct entry *e = entry_get(ws, s, dbias != NULL, why, sizeof why);
    if (!e || e->bwd_floats > ws->floats)
        return -ENOTSUP;
    void *pw[4] = {(void *)dout, (void *)inp, dweight, dbias};
    const double t0 = now_s();
    int rc = prim_run(ws->dnnl, &e->bwd_w, pw, ws->buf, 1);
    const double t1 = now_s();
    ws->seconds[CONV3D_BWD_WEIGHTS] += t1 - t0;
    if (rc || !dinp)
        return rc;
    for (int k = 0; !rc && k < (e->bwd_d_each ? s->n : 1); k++) {
        void *pd[3] = {(void *)(dout + k * e->dout_sample), (void *)weight, dinp + k * e->din_sample};
        rc = prim_run(ws->dnnl, &e->bwd_d, pd, ws->buf, k == 0);
    }
    ws->seconds[CONV3D_BWD_DATA] += now_s() - t1;
    return rc;
}

/* The format of md among the activation layouts (same dims), as a layout
 * and block; 0, or -1 when it is none of them. */
static int md_layout(const dnnl_memory_desc_t *md, int *layout, int *block)
{
    static const struct {
        int layout, block;
    } cand[] = {{LAYOUT_NDHWC, 0}, {LAYOUT_NCDHW, 0}, {LAYOUT_BLOCKED, 16}, {LAYOUT_BLOCKED, 8}, {LAYOUT_BLOCKED, 4}};
    for (size_t i = 0; i < sizeof cand / sizeof *cand; i++) {
        dnnl_memory_desc_t t;
        if (dnnl_memory_desc_init_by_tag(&t, 5, md->dims, dnnl_f32, act_tag(cand[i].layout, cand[i].block)) ==
                dnnl_success &&
            dnnl_memory_desc_equal(&t, md)) {
            *layout = cand[i].layout, *block = cand[i].block;
            return 0;
        }
    }
    return -1;
}

/* The forward primitive of s with activations in format tag (weights
 * free); NULL when oneDNN has none. */
static dnnl_primitive_desc_t fwd_pd(dnnl_engine_t eng, const struct conv3d_shape *s, dnnl_format_tag_t tag)
{
    dnnl_dims_t sd, wd, dd, bd, stride, pl, pr;
    shape_dims(s, sd, wd, dd, bd, stride, pl, pr);
    dnnl_memory_desc_t src, wei, dst;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_memory_desc_init_by_tag(&src, 5, sd, dnnl_f32, tag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wei, 5, wd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, 5, dd, dnnl_f32, tag) != dnnl_success ||
        dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &src, &wei, NULL, &dst,
                                           stride, pl, pr) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL) != dnnl_success)
        return NULL;
    return pd;
}

int conv3d_dnnl_pick_layout(const struct conv3d_shape *s, int count, int *layout, int *block, char *why,
                            size_t why_len)
{
    char avail[256];
    if (!conv3d_dnnl_available(avail, sizeof avail)) {
        snprintf(why, why_len, "%s", avail);
        return -ENOTSUP;
    }
    dnnl_engine_t eng;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) {
        snprintf(why, why_len, "oneDNN: cannot create the CPU engine");
        return -ENOTSUP;
    }
    /* 1. channels-last when oneDNN runs every forward conv of the model on
     * it with a brgemm kernel (brgconv: AVX-512 and up in oneDNN 2.6), the
     * kernels written for that layout (it never picks them by itself) */
    int brg = count > 0, picked = -2, pblock = 0, rc = 0; /* picked -2: none yet, -1: they differ */
    for (int i = 0; i < count && brg; i++) {
        dnnl_primitive_desc_t pd = fwd_pd(eng, &s[i], dnnl_ndhwc);
        const char *impl = "";
        if (pd)
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        brg = pd && !strncmp(impl, "brg", 3);
        if (pd)
            dnnl_primitive_desc_destroy(pd);
    }
    /* 2. else the format oneDNN picks for each conv's output when left free
     * (every activation of the model is some conv's output or pooled from
     * one; inputs of first layers, 3 channels, may be picked plain and are
     * reordered), when all convs pick the same */
    for (int i = 0; i < count && !brg; i++) {
        dnnl_primitive_desc_t pd = fwd_pd(eng, &s[i], dnnl_format_tag_any);
        int l, b;
        if (!pd) {
            snprintf(why, why_len, "oneDNN has no convolution for conv3d c%d %dx%dx%d -> oc%d k%dx%dx%d", s[i].c,
                     s[i].t, s[i].h, s[i].w, s[i].oc, s[i].kt, s[i].kh, s[i].kw);
            rc = -ENOTSUP;
            break;
        }
        if (md_layout(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), &l, &b))
            l = -1, b = 0;
        if (picked == -2)
            picked = l, pblock = b;
        else if (picked != l || pblock != b)
            picked = -1;
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_engine_destroy(eng);
    if (rc)
        return rc;
    if (brg) {
        *layout = LAYOUT_NDHWC, *block = 0;
        snprintf(why, why_len, "auto: brgemm convs");
    } else if (picked == LAYOUT_BLOCKED || picked == LAYOUT_NDHWC) {
        *layout = picked, *block = pblock;
        snprintf(why, why_len, "auto: oneDNN's pick");
    } else { /* formats differ per layer, or none of ours: channels-last, which every conv reads */
        *layout = LAYOUT_NDHWC, *block = 0;
        snprintf(why, why_len, "auto: %s", picked == -1 ? "picks differ" : "NCDHW picked");
    }
    return 0;
}

void conv3d_dnnl_isa(char *buf, size_t len)
{
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } names[] = {{dnnl_cpu_isa_sse41, "sse41"},
                 {dnnl_cpu_isa_avx, "avx"},
                 {dnnl_cpu_isa_avx2, "avx2"},
                 {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
                 {dnnl_cpu_isa_avx512_mic, "avx512_mic"},
                 {dnnl_cpu_isa_avx512_mic_4ops, "avx512_mic_4ops"},
                 {dnnl_cpu_isa_avx512_core, "avx512_core"},
                 {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
                 {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
                 {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"}};
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].isa == isa) {
            snprintf(buf, len, "%s", names[i].name);
            return;
        }
    snprintf(buf, len, "isa 0x%x", (unsigned)isa);
}

#endif
