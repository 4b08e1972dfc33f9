/* model.c: builds 3D ResNet-18 (torchvision r3d_18 layer shapes and names) and
 * C3D (Tran et al. 2015) from the CPU layers, and runs their forward, loss and
 * backward passes (llm.c style: the passes are written out call by call).
 * Not the plugin ABI (backend.c) and not the layers (layers.c, losses.c). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_dnnl.h"
#include "model.h"
#include "rng.h"

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f
/* column tile budget of conv3d: 1M floats = 4 MB, about one core's L2 */
#define CONV_TILE_FLOATS (1u << 20)

/* ------------------------------------------------------------ construction */

static int add_tensor(struct dfew_train_model *m, const char *name, int kind, int ndim, const int64_t *shape)
{
    if (m->ntensors >= MODEL_MAX_TENSORS)
        return -1;
    struct tensor *t = &m->tensors[m->ntensors];
    snprintf(t->info.name, sizeof t->info.name, "%s", name);
    t->info.kind = kind;
    t->info.ndim = ndim;
    t->info.numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->info.shape[i] = shape[i];
        t->info.numel *= shape[i];
    }
    return m->ntensors++;
}

static int64_t act_alloc(struct dfew_train_model *m, int64_t per_sample)
{
    int64_t off = m->act_floats, total = per_sample * m->cfg.max_batch;
    m->act_floats += (total + 15) & ~(int64_t)15; /* 64-byte aligned slices */
    if (total > m->max_act)
        m->max_act = total;
    return off;
}

/* floats per position of an activation of c channels (its layout's padding
 * included) and the channels per block its layers are called with */
static int act_c(const struct dfew_train_model *m, int c)
{
    return act_padded_c(m->ws.layout, m->ws.block, c);
}
static int act_blk(const struct dfew_train_model *m, int c)
{
    return act_block(m->ws.layout, m->ws.block, c);
}

static int width_of(const struct dfew_train_model *m, int base)
{
    int c = (int)lround(base * (double)m->cfg.width);
    return c < 1 ? 1 : c;
}

/* A conv unit over input c x t x h x w; prefix names the PyTorch modules:
 * conv_name.weight (and .bias); with bn, bn_name.{weight,bias,running_*}. */
static int add_unit(struct dfew_train_model *m, const char *conv_name, const char *bn_name, int c, int t, int h,
                    int w, int oc, int k[3], int st[3], int pd[3], int bias, int relu)
{
    if (m->nunits >= MODEL_MAX_UNITS)
        return -1;
    struct unit *u = &m->units[m->nunits];
    memset(u, 0, sizeof *u);
    u->cs = (struct conv3d_shape){.n = m->cfg.max_batch, .c = c, .t = t, .h = h, .w = w, .oc = oc,
                                  .kt = k[0], .kh = k[1], .kw = k[2], .st = st[0], .sh = st[1], .sw = st[2],
                                  .pt = pd[0], .ph = pd[1], .pw = pd[2],
                                  /* the first unit reads the model's input */
                                  .in_ncdhw = m->nunits == 0 && m->ws.layout == LAYOUT_BLOCKED};
    if (conv3d_shape_init(&u->cs))
        return -1;
    char nm[DFEW_TRAIN_NAME_MAX];
    int64_t ws[5] = {oc, c, k[0], k[1], k[2]}, cs1[1] = {oc};
    snprintf(nm, sizeof nm, "%s.weight", conv_name);
    u->w = add_tensor(m, nm, DFEW_TENSOR_PARAM, 5, ws);
    u->b = u->g = u->be = u->rm = u->rv = -1;
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", conv_name);
        u->b = add_tensor(m, nm, DFEW_TENSOR_PARAM, 1, cs1);
    }
    int64_t S = (int64_t)u->cs.to * u->cs.ho * u->cs.wo;
    u->pre = act_alloc(m, act_c(m, oc) * S);
    u->bn = bn_name != NULL;
    u->relu = relu;
    if (u->bn) {
        snprintf(nm, sizeof nm, "%s.weight", bn_name);
        u->g = add_tensor(m, nm, DFEW_TENSOR_PARAM, 1, cs1);
        snprintf(nm, sizeof nm, "%s.bias", bn_name);
        u->be = add_tensor(m, nm, DFEW_TENSOR_PARAM, 1, cs1);
        snprintf(nm, sizeof nm, "%s.running_mean", bn_name);
        u->rm = add_tensor(m, nm, DFEW_TENSOR_BUFFER, 1, cs1);
        snprintf(nm, sizeof nm, "%s.running_var", bn_name);
        u->rv = add_tensor(m, nm, DFEW_TENSOR_BUFFER, 1, cs1);
        u->out = act_alloc(m, act_c(m, oc) * S);
        u->smean = act_alloc(m, (oc + m->cfg.max_batch - 1) / m->cfg.max_batch);
        u->srstd = act_alloc(m, (oc + m->cfg.max_batch - 1) / m->cfg.max_batch);
    } else {
        u->out = u->pre;
    }
    return m->nunits++;
}

static int add_fc(struct dfew_train_model *m, const char *name, int in, int out, int relu, int dropout)
{
    struct fc *f = &m->fcs[m->nfc];
    char nm[DFEW_TRAIN_NAME_MAX];
    int64_t ws[2] = {out, in}, bs[1] = {out};
    snprintf(nm, sizeof nm, "%s.weight", name);
    f->w = add_tensor(m, nm, DFEW_TENSOR_PARAM, 2, ws);
    snprintf(nm, sizeof nm, "%s.bias", name);
    f->b = add_tensor(m, nm, DFEW_TENSOR_PARAM, 1, bs);
    f->in = in;
    f->out = out;
    f->relu = relu;
    f->dropout = dropout;
    f->y = act_alloc(m, out);
    f->mask = dropout ? act_alloc(m, (out + 3) / 4) : -1; /* bytes */
    return m->nfc++;
}

/* torchvision VideoResNet(BasicBlock, Conv3DSimple, [2, 2, 2, 2], R2Plus1dStem
 * -> BasicStem): stem conv 3x7x7 stride 1x2x2 pad 1x3x3, then four layers of
 * two BasicBlocks (64, 128, 256, 512 channels; stride 2 from layer2 on, with a
 * 1x1x1 stride-2 conv + bn shortcut), global average pool, fc. */
static int build_r3d18(struct dfew_train_model *m)
{
    int t = m->cfg.in_t, h = m->cfg.in_h, w = m->cfg.in_w, c = 3;
    int k7[3] = {3, 7, 7}, s122[3] = {1, 2, 2}, p133[3] = {1, 3, 3};
    int k3[3] = {3, 3, 3}, k1[3] = {1, 1, 1}, p1[3] = {1, 1, 1}, p0[3] = {0, 0, 0};
    int s1[3] = {1, 1, 1}, s2[3] = {2, 2, 2};
    int u = add_unit(m, "stem.0", "stem.1", c, t, h, w, width_of(m, 64), k7, s122, p133, 0, 1);
    if (u < 0)
        return -1;
    m->ops[m->nops++] = (struct op){OP_UNIT, u};
    struct conv3d_shape *cs = &m->units[u].cs;
    c = cs->oc, t = cs->to, h = cs->ho, w = cs->wo;
    static const int base[4] = {64, 128, 256, 512};
    for (int L = 0; L < 4; L++)
        for (int bi = 0; bi < 2; bi++) {
            char n1[48], n2[48], n3[48], n4[48];
            int oc = width_of(m, base[L]), *st = (L > 0 && bi == 0) ? s2 : s1;
            struct block *b = &m->blocks[m->nblocks];
            snprintf(n1, sizeof n1, "layer%d.%d.conv1.0", L + 1, bi);
            snprintf(n2, sizeof n2, "layer%d.%d.conv1.1", L + 1, bi);
            b->u1 = add_unit(m, n1, n2, c, t, h, w, oc, k3, st, p1, 0, 1);
            if (b->u1 < 0)
                return -1;
            struct conv3d_shape o = m->units[b->u1].cs;
            snprintf(n1, sizeof n1, "layer%d.%d.conv2.0", L + 1, bi);
            snprintf(n2, sizeof n2, "layer%d.%d.conv2.1", L + 1, bi);
            b->u2 = add_unit(m, n1, n2, oc, o.to, o.ho, o.wo, oc, k3, s1, p1, 0, 0);
            b->down = -1;
            if (st == s2 || oc != c) {
                snprintf(n3, sizeof n3, "layer%d.%d.downsample.0", L + 1, bi);
                snprintf(n4, sizeof n4, "layer%d.%d.downsample.1", L + 1, bi);
                b->down = add_unit(m, n3, n4, c, t, h, w, oc, k1, st, p0, 0, 0);
                if (b->down < 0)
                    return -1;
            }
            if (b->u2 < 0)
                return -1;
            b->out = m->units[b->u2].out; /* bn2 writes, then + shortcut, relu, in place */
            m->nblocks++;
            c = oc, t = o.to, h = o.ho, w = o.wo;
        }
    m->feat_dim = c;
    m->gap = act_alloc(m, c);
    m->feat = m->gap;
    add_fc(m, "fc", c, m->cfg.num_classes, 0, 0);
    (void)t, (void)h, (void)w;
    /* the last block's spatial size, for the pool */
    m->in_floats = 3LL * m->cfg.in_t * m->cfg.in_h * m->cfg.in_w;
    return 0;
}

/* C3D (Tran et al. 2015, Table/Fig. 1): 3x3x3 convs (pad 1, bias, relu) with
 * 64, 128, 256, 256, 512, 512, 512, 512 channels; pool1 1x2x2, pool2..5
 * 2x2x2 (pool5 padded 0x1x1 so that 16x112x112 gives 512 x 1 x 4 x 4 = 8192);
 * fc6, fc7 4096 with relu and dropout; fc8 the classifier. */
static int build_c3d(struct dfew_train_model *m)
{
    static const struct {
        const char *name;
        int ch, pool; /* pool after this conv: 0 none, 1 = 1x2x2, 2 = 2x2x2, 3 = 2x2x2 pad 0x1x1 */
    } L[8] = {{"conv1", 64, 1},   {"conv2", 128, 2},  {"conv3a", 256, 0}, {"conv3b", 256, 2},
              {"conv4a", 512, 0}, {"conv4b", 512, 2}, {"conv5a", 512, 0}, {"conv5b", 512, 3}};
    int t = m->cfg.in_t, h = m->cfg.in_h, w = m->cfg.in_w, c = 3, np = 0;
    int k3[3] = {3, 3, 3}, s1[3] = {1, 1, 1}, p1[3] = {1, 1, 1};
    for (int i = 0; i < 8; i++) {
        int u = add_unit(m, L[i].name, NULL, c, t, h, w, width_of(m, L[i].ch), k3, s1, p1, 1, 1);
        if (u < 0)
            return -1;
        m->ops[m->nops++] = (struct op){OP_UNIT, u};
        c = m->units[u].cs.oc;
        if (L[i].pool) {
            struct pool *p = &m->pools[np];
            int kt = L[i].pool == 1 ? 1 : 2, pp = L[i].pool == 3 ? 1 : 0;
            p->cs = (struct conv3d_shape){.n = m->cfg.max_batch, .c = c, .t = t, .h = h, .w = w, .oc = c,
                                          .kt = kt, .kh = 2, .kw = 2, .st = kt, .sh = 2, .sw = 2,
                                          .pt = 0, .ph = pp, .pw = pp};
            if (conv3d_shape_init(&p->cs) || p->cs.to < 1 || p->cs.ho < 1 || p->cs.wo < 1)
                return -1;
            int64_t S = (int64_t)p->cs.to * p->cs.ho * p->cs.wo;
            p->out = act_alloc(m, act_c(m, c) * S);
            p->argmax = act_alloc(m, act_c(m, c) * S); /* int32 */
            m->ops[m->nops++] = (struct op){OP_POOL, np++};
            t = p->cs.to, h = p->cs.ho, w = p->cs.wo;
        }
    }
    int flat = c * t * h * w, hid = width_of(m, 4096);
    /* channels-last or blocked: fc6 reads pool5's output in PyTorch's
     * flatten order */
    m->flat = m->ws.layout != LAYOUT_NCDHW ? act_alloc(m, flat) : -1;
    add_fc(m, "fc6", flat, hid, 1, 1);
    add_fc(m, "fc7", hid, hid, 1, 1);
    add_fc(m, "fc8", hid, m->cfg.num_classes, 0, 0);
    m->feat_dim = hid;
    m->feat = m->fcs[1].y;
    m->in_floats = 3LL * m->cfg.in_t * m->cfg.in_h * m->cfg.in_w;
    return 0;
}

/* torchvision r3d_18 init: conv kaiming_normal_(fan_out, relu), bn 1 / 0,
 * linear N(0, 0.01) with zero bias. C3D: PyTorch's default conv / linear
 * init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases. */
static void init_weights(struct dfew_train_model *m)
{
    uint64_t rng = m->cfg.seed ^ 0x5EEDC0DEull;
    int r3d = m->cfg.arch == DFEW_ARCH_R3D18;
    for (int i = 0; i < m->ntensors; i++) {
        struct tensor *t = &m->tensors[i];
        float *p = m->params + t->off;
        const char *nm = t->info.name;
        size_t ln = strlen(nm);
        int is_w = ln > 7 && !strcmp(nm + ln - 7, ".weight");
        if (t->info.kind == DFEW_TENSOR_BUFFER) {
            float v = strstr(nm, "running_var") ? 1.f : 0.f;
            for (int64_t k = 0; k < t->info.numel; k++)
                p[k] = v;
            continue;
        }
        if (t->info.ndim == 1 && r3d) { /* bn weight 1, biases 0 */
            float v = is_w ? 1.f : 0.f;
            for (int64_t k = 0; k < t->info.numel; k++)
                p[k] = v;
            continue;
        }
        if (r3d) {
            if (t->info.ndim == 5) {
                int64_t fan_out = t->info.numel / t->info.shape[1];
                float sd = sqrtf(2.f / (float)fan_out);
                for (int64_t k = 0; k < t->info.numel; k++)
                    p[k] = sd * rng_normal(&rng);
            } else {
                for (int64_t k = 0; k < t->info.numel; k++)
                    p[k] = 0.01f * rng_normal(&rng);
            }
            continue;
        }
        /* c3d: fan_in of the weight of the same module */
        int64_t fan_in;
        if (is_w)
            fan_in = t->info.numel / t->info.shape[0];
        else {
            const struct tensor *wt = &m->tensors[i - 1];
            fan_in = wt->info.numel / wt->info.shape[0];
        }
        float bound = 1.f / sqrtf((float)fan_in);
        for (int64_t k = 0; k < t->info.numel; k++)
            p[k] = bound * (2.f * rng_uniform(&rng) - 1.f);
    }
}

/* The plan for convolutions through impl on activations in layout / block:
 * tensors and their offsets, the layers' shapes, the activations' offsets.
 * Allocates nothing. */
static int model_plan(struct dfew_train_model *m, const struct dfew_train_config *cfg, int impl, int layout,
                      int block, char *err, size_t err_len)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->centers = -1;
    m->flat = -1;
    const char *why = NULL;
    if (cfg->num_classes < 2 || cfg->num_classes > DFEW_TRAIN_MAX_CLASSES)
        why = "num_classes must be 2..16 (7 for DFEW)";
    else if (cfg->max_batch < 1)
        why = "max_batch must be at least 1";
    else if (!(cfg->width > 0) || cfg->width > 4)
        why = "width must be in (0, 4]; 1 is the published model";
    else if (cfg->in_t < 1 || cfg->in_h < 1 || cfg->in_w < 1)
        why = "input size must be positive (16 x 112 x 112 for the paper)";
    else if (cfg->loss < DFEW_LOSS_CE || cfg->loss > DFEW_LOSS_CENTER)
        why = "unknown loss; use ce, ecstfl, ecstfl_l1 or center";
    else if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        why = "dropout must be in [0, 1)";
    if (why) {
        snprintf(err, err_len, "bad trainer config: %s", why);
        return -EINVAL;
    }
    m->ws.threads = omp_get_max_threads();
    m->ws.max_tile_floats = CONV_TILE_FLOATS;
    m->ws.impl = impl;
    m->ws.layout = layout;
    m->ws.block = block;
    int rc;
    /* the input: channels-last in the channels-last layout (brgemm kernels
     * read it so), else channels-first (the first-layer kernels of the
     * blocked layouts read it so; the first conv's in_ncdhw) */
    m->input = act_alloc(m, 3LL * cfg->in_t * cfg->in_h * cfg->in_w);
    if (cfg->arch == DFEW_ARCH_R3D18)
        rc = build_r3d18(m);
    else if (cfg->arch == DFEW_ARCH_C3D)
        rc = build_c3d(m);
    else {
        snprintf(err, err_len, "bad trainer config: unknown arch %d; use r3d18 or c3d", cfg->arch);
        return -EINVAL;
    }
    if (rc) {
        snprintf(err, err_len,
                 "input %d x %d x %d is too small for %s (C3D needs at least 16 x 16 x 16; r3d18 at least 1 x 2 x 2)",
                 cfg->in_t, cfg->in_h, cfg->in_w, cfg->arch == DFEW_ARCH_C3D ? "c3d" : "r3d18");
        return -EINVAL;
    }
    if (cfg->loss == DFEW_LOSS_CENTER) {
        int64_t cs[2] = {cfg->num_classes, m->feat_dim};
        m->centers = add_tensor(m, "center_loss.centers", DFEW_TENSOR_BUFFER, 2, cs);
    }
    m->logits = act_alloc(m, cfg->num_classes);
    m->probs = act_alloc(m, cfg->num_classes);
    m->dlogits = act_alloc(m, cfg->num_classes);
    m->dfeat = act_alloc(m, m->feat_dim);
    for (int i = 0; i < 3; i++)
        m->gbuf[i] = act_alloc(m, m->max_act / cfg->max_batch);
    /* offsets: learnable parameters first (one SGD range), then buffers */
    int64_t off = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < m->ntensors; i++)
            if (m->tensors[i].info.kind == (pass ? DFEW_TENSOR_BUFFER : DFEW_TENSOR_PARAM)) {
                m->tensors[i].off = off;
                off += (m->tensors[i].info.numel + 15) & ~(int64_t)15;
                if (!pass)
                    m->num_params += m->tensors[i].info.numel;
                if (!pass)
                    m->param_floats = off;
            }
    m->num_floats = off;
    return 0;
}

/* The layout oneDNN's convolutions want for this model on this CPU
 * (conv3d_dnnl_pick_layout over its convs at max_batch), with the reason in
 * note; m is scratch (its plan is redone after). */
static int model_pick_layout(struct dfew_train_model *m, const struct dfew_train_config *cfg, int impl,
                             int *layout, int *block, char *note, size_t note_len, char *err, size_t err_len)
{
    int rc = model_plan(m, cfg, impl, LAYOUT_NDHWC, 0, err, err_len);
    if (rc)
        return rc;
    struct conv3d_shape shapes[MODEL_MAX_UNITS];
    for (int i = 0; i < m->nunits; i++)
        shapes[i] = m->units[i].cs;
    if ((rc = conv3d_dnnl_pick_layout(shapes, m->nunits, layout, block, note, note_len))) {
        snprintf(err, err_len, "%s; DFEW_TRAIN_CPU_CONV=ref uses the reference convolution", note);
        return rc;
    }
    return 0;
}

/* with_acts = 0: the plan, parameters and momentum only (no gradients,
 * activations or scratch): the CUDA backend's host shadow (model.h). */
static int model_build_impl(struct dfew_train_model *m, const struct dfew_train_config *cfg, int with_acts,
                            char *err, size_t err_len)
{
    int impl = CONV3D_REF, layout = LAYOUT_NCDHW, block = 0, rc;
    char note[sizeof m->layout_note] = "";
    memset(m, 0, sizeof *m);
    /* the shadow's plan stays channels-first, as PyTorch's */
    if (with_acts && (rc = conv3d_config_from_env(&impl, &layout, &block, err, err_len)))
        return rc;
    if (layout == LAYOUT_AUTO) {
        if ((rc = model_pick_layout(m, cfg, impl, &layout, &block, note, sizeof note, err, err_len)))
            return rc;
    } else if (with_acts && impl == CONV3D_DNNL) {
        snprintf(note, sizeof note, "DFEW_TRAIN_CPU_LAYOUT");
    }
    if ((rc = model_plan(m, cfg, impl, layout, block, err, err_len)))
        return rc;
    snprintf(m->layout_note, sizeof m->layout_note, "%s", note);
    /* the convolutions' primitives (oneDNN) and workspace, at max_batch */
    if (with_acts && (rc = model_prepare(m, cfg->max_batch))) {
        snprintf(err, err_len, "%s", m->err);
        conv3d_work_release(&m->ws);
        return rc;
    }
    const int64_t off = m->num_floats, pfloats = m->param_floats;
    m->params = aligned_alloc(64, sizeof(float) * (size_t)off);
    m->mom = aligned_alloc(64, sizeof(float) * (size_t)pfloats);
    if (with_acts) {
        m->grads = aligned_alloc(64, sizeof(float) * (size_t)pfloats);
        m->acts = aligned_alloc(64, sizeof(float) * (size_t)m->act_floats);
    }
    if (!m->params || !m->mom || (with_acts && (!m->grads || !m->acts))) {
        snprintf(err, err_len, "out of memory: the model needs %.1f GB of activations for max_batch %d; lower the batch",
                 m->act_floats * 4e-9, cfg->max_batch);
        model_free(m);
        return -ENOMEM;
    }
    memset(m->params, 0, sizeof(float) * (size_t)off);
    if (with_acts)
        memset(m->grads, 0, sizeof(float) * (size_t)pfloats);
    memset(m->mom, 0, sizeof(float) * (size_t)pfloats);
    /* blocked activations: the padding lanes of channel counts that are not
     * a multiple of the block start zero, and every layer keeps them so */
    if (with_acts && layout == LAYOUT_BLOCKED)
        memset(m->acts, 0, sizeof(float) * (size_t)m->act_floats);
    init_weights(m);
    m->rng = cfg->seed * 0x9E3779B97F4A7C15ull + 1;
    return 0;
}

int model_build(struct dfew_train_model *m, const struct dfew_train_config *cfg, char *err, size_t err_len)
{
    return model_build_impl(m, cfg, 1, err, err_len);
}

int model_build_shadow(struct dfew_train_model *m, const struct dfew_train_config *cfg, char *err, size_t err_len)
{
    return model_build_impl(m, cfg, 0, err, err_len);
}

void model_free(struct dfew_train_model *m)
{
    free(m->params);
    free(m->grads);
    free(m->mom);
    free(m->acts);
    conv3d_work_release(&m->ws);
    m->params = m->grads = m->mom = m->acts = NULL;
}

int model_set_input(struct dfew_train_model *m, const struct dfew_train_batch *b)
{
    const struct dfew_train_config *c = &m->cfg;
    if (b->n < 1 || b->n > c->max_batch || !b->data)
        return -EINVAL;
    float *x = model_act(m, m->input);
    int64_t S = (int64_t)c->in_t * c->in_h * c->in_w;
    const int cl = m->ws.layout == LAYOUT_NDHWC; /* else channels-first (see model_plan) */
    if (b->input == DFEW_INPUT_F32_NCTHW) {
        if (cl)
            layout_ncs_to_nsc(x, b->data, b->n, 3, S);
        else
            memcpy(x, b->data, sizeof(float) * (size_t)(b->n * m->in_floats));
        return 0;
    }
    if (b->input != DFEW_INPUT_U8_NTHWC)
        return -EINVAL;
    const uint8_t *u = b->data;
    if (cl) { /* the clips' own order */
        float sc[3], sh[3];
        for (int ch = 0; ch < 3; ch++)
            sc[ch] = 1.f / (255.f * c->std[ch]), sh[ch] = -c->mean[ch] / c->std[ch];
        for (int64_t i = 0; i < b->n * S; i++)
            for (int ch = 0; ch < 3; ch++)
                x[i * 3 + ch] = u[i * 3 + ch] * sc[ch] + sh[ch];
        return 0;
    }
    for (int n = 0; n < b->n; n++)
        for (int ch = 0; ch < 3; ch++) {
            float sc = 1.f / (255.f * c->std[ch]), sh = -c->mean[ch] / c->std[ch];
            float *dst = x + ((int64_t)n * 3 + ch) * S;
            const uint8_t *src = u + (int64_t)n * S * 3 + ch;
            for (int64_t p = 0; p < S; p++)
                dst[p] = src[p * 3] * sc + sh;
        }
    return 0;
}

int model_prepare(struct dfew_train_model *m, int n)
{
    for (int i = 0; i < m->nunits; i++) {
        struct conv3d_shape cs = m->units[i].cs;
        char why[200];
        cs.n = n;
        int rc = conv3d_work_plan(&m->ws, &cs, m->units[i].b >= 0, why, sizeof why);
        if (rc) {
            snprintf(m->err, sizeof m->err, "%s; DFEW_TRAIN_CPU_CONV=ref uses the reference convolution", why);
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ forward */

/* res (NULL: none): a residual block's shortcut, added after the unit's
 * batchnorm, then a relu (channels-last and blocked layouts only) */
static void unit_forward(struct dfew_train_model *m, const struct unit *u, const float *x, int n, int train,
                         const float *res)
{
    struct conv3d_shape cs = u->cs;
    cs.n = n;
    int64_t S = (int64_t)cs.to * cs.ho * cs.wo;
    float *pre = model_act(m, u->pre), *out = model_act(m, u->out);
    float *g = u->bn ? model_param(m, u->g) : NULL, *b = u->bn ? model_param(m, u->be) : NULL;
    float *rm = u->bn ? model_param(m, u->rm) : NULL, *rv = u->bn ? model_param(m, u->rv) : NULL;
    conv3d_forward(pre, x, model_param(m, u->w), u->b >= 0 ? model_param(m, u->b) : NULL, &cs, &m->ws);
    if (u->bn && m->ws.layout != LAYOUT_NCDHW) { /* channels-last or blocked: batchnorm and relu in one pass */
        const int blk = act_blk(m, cs.oc);
        if (res && train)
            batchnorm3d_add_relu_forward_train_blk(out, model_act(m, u->smean), model_act(m, u->srstd), rm, rv, pre, res,
                                                   g, b, n, cs.oc, S, BN_MOMENTUM, BN_EPS, blk);
        else if (res)
            batchnorm3d_add_relu_forward_eval_blk(out, pre, res, g, b, rm, rv, n, cs.oc, S, BN_EPS, blk);
        else if (train)
            (u->relu ? batchnorm3d_relu_forward_train_blk : batchnorm3d_forward_train_blk)(
                out, model_act(m, u->smean), model_act(m, u->srstd), rm, rv, pre, g, b, n, cs.oc, S, BN_MOMENTUM,
                BN_EPS, blk);
        else
            (u->relu ? batchnorm3d_relu_forward_eval_blk : batchnorm3d_forward_eval_blk)(out, pre, g, b, rm, rv, n,
                                                                                         cs.oc, S, BN_EPS, blk);
        return;
    }
    if (u->bn && train)
        batchnorm3d_forward_train(out, model_act(m, u->smean), model_act(m, u->srstd), rm, rv, pre, g, b, n, cs.oc, S,
                                  BN_MOMENTUM, BN_EPS);
    else if (u->bn)
        batchnorm3d_forward_eval(out, pre, g, b, rm, rv, n, cs.oc, S, BN_EPS);
    if (u->relu)
        relu_forward(out, out, (int64_t)n * act_c(m, cs.oc) * S);
}

/* floats of a unit's output at batch n (padding included) */
static int64_t unit_count(const struct dfew_train_model *m, const struct unit *u, int n)
{
    return (int64_t)n * act_c(m, u->cs.oc) * u->cs.to * u->cs.ho * u->cs.wo;
}

static void fc_forward(struct dfew_train_model *m, const struct fc *f, const float *x, int n, int train)
{
    float *y = model_act(m, f->y);
    linear_forward(y, x, model_param(m, f->w), model_param(m, f->b), n, f->in, f->out);
    if (f->relu)
        relu_forward(y, y, (int64_t)n * f->out);
    if (f->dropout && train && m->cfg.dropout > 0)
        dropout_forward(y, (uint8_t *)model_act(m, f->mask), y, (int64_t)n * f->out, m->cfg.dropout, &m->rng);
}

void model_forward(struct dfew_train_model *m, int n, int train)
{
    const float *x = model_act(m, m->input);
    if (m->cfg.arch == DFEW_ARCH_R3D18) {
        const struct unit *stem = &m->units[m->ops[0].idx];
        unit_forward(m, stem, x, n, train, NULL);
        x = model_act(m, stem->out);
        for (int bi = 0; bi < m->nblocks; bi++) {
            const struct block *b = &m->blocks[bi];
            const struct unit *u1 = &m->units[b->u1], *u2 = &m->units[b->u2];
            const float *sc = x;
            if (b->down >= 0) {
                unit_forward(m, &m->units[b->down], x, n, train, NULL);
                sc = model_act(m, m->units[b->down].out);
            }
            unit_forward(m, u1, x, n, train, NULL);
            float *y = model_act(m, b->out);
            if (m->ws.layout != LAYOUT_NCDHW) { /* relu(bn2 + shortcut) in the batchnorm's pass */
                unit_forward(m, u2, model_act(m, u1->out), n, train, sc);
            } else {
                unit_forward(m, u2, model_act(m, u1->out), n, train, NULL);
                int64_t cnt = unit_count(m, u2, n);
#pragma omp parallel for schedule(static) if (cnt >= 65536)
                for (int64_t i = 0; i < cnt; i++) {
                    float v = y[i] + sc[i];
                    y[i] = v > 0.f ? v : 0.f;
                }
            }
            x = y;
        }
        const struct unit *last = &m->units[m->blocks[m->nblocks - 1].u2];
        const int64_t S = (int64_t)last->cs.to * last->cs.ho * last->cs.wo;
        if (m->ws.layout != LAYOUT_NCDHW)
            avgpool_global_forward_blk(model_act(m, m->gap), x, n, last->cs.oc, S, act_blk(m, last->cs.oc));
        else
            avgpool_global_forward(model_act(m, m->gap), x, n, last->cs.oc, S);
        fc_forward(m, &m->fcs[0], model_act(m, m->gap), n, train);
    } else {
        for (int i = 0; i < m->nops; i++) {
            if (m->ops[i].kind == OP_UNIT) {
                const struct unit *u = &m->units[m->ops[i].idx];
                unit_forward(m, u, x, n, train, NULL);
                x = model_act(m, u->out);
            } else {
                struct pool *p = &m->pools[m->ops[i].idx];
                struct conv3d_shape cs = p->cs;
                cs.n = n;
                if (m->ws.layout != LAYOUT_NCDHW)
                    maxpool3d_forward_blk(model_act(m, p->out), (int32_t *)model_act(m, p->argmax), x, &cs,
                                          act_blk(m, cs.c));
                else
                    maxpool3d_forward(model_act(m, p->out), (int32_t *)model_act(m, p->argmax), x, &cs);
                x = model_act(m, p->out);
            }
        }
        if (m->flat >= 0) {
            const struct pool *p5 = &m->pools[m->ops[m->nops - 1].idx];
            layout_blk_to_ncs(model_act(m, m->flat), x, n, p5->cs.c, (int64_t)p5->cs.to * p5->cs.ho * p5->cs.wo,
                              act_blk(m, p5->cs.c));
            x = model_act(m, m->flat);
        }
        for (int i = 0; i < m->nfc; i++) {
            fc_forward(m, &m->fcs[i], x, n, train);
            x = model_act(m, m->fcs[i].y);
        }
    }
    memcpy(model_act(m, m->logits), model_act(m, m->fcs[m->nfc - 1].y),
           sizeof(float) * (size_t)n * m->cfg.num_classes);
}

/* ------------------------------------------------------------ loss + backward */

/* dout (may be modified in place: the relu's mask) -> dx (NULL for the first
 * layer); tmp is scratch of the unit's output size, and may be dout (the
 * batchnorm's gradient then overwrites it) but not dx. */
static void unit_backward(struct dfew_train_model *m, const struct unit *u, const float *x, float *dout, float *dx,
                          float *tmp, int n)
{
    struct conv3d_shape cs = u->cs;
    cs.n = n;
    int64_t S = (int64_t)cs.to * cs.ho * cs.wo;
    float *g = dout;
    if (u->bn && m->ws.layout != LAYOUT_NCDHW) { /* the relu's mask read inside batchnorm's backward */
        float *dg = model_grad(m, u->g), *db = model_grad(m, u->be), *gamma = model_param(m, u->g);
        float *sm = model_act(m, u->smean), *sr = model_act(m, u->srstd), *pre = model_act(m, u->pre);
        const int blk = act_blk(m, cs.oc);
        if (u->relu)
            batchnorm3d_relu_backward_blk(tmp, dg, db, dout, pre, gamma, model_param(m, u->be), sm, sr, n, cs.oc, S,
                                          blk);
        else
            batchnorm3d_backward_blk(tmp, dg, db, dout, pre, gamma, sm, sr, n, cs.oc, S, blk);
        g = tmp;
    } else {
        if (u->relu)
            relu_backward(dout, dout, model_act(m, u->out), (int64_t)n * act_c(m, cs.oc) * S);
        if (u->bn) {
            batchnorm3d_backward(tmp, model_grad(m, u->g), model_grad(m, u->be), dout, model_act(m, u->pre),
                                 model_param(m, u->g), model_act(m, u->smean), model_act(m, u->srstd), n, cs.oc, S);
            g = tmp;
        }
    }
    conv3d_backward(dx, model_grad(m, u->w), u->b >= 0 ? model_grad(m, u->b) : NULL, g, x, model_param(m, u->w),
                    &cs, &m->ws);
}

/* dy N x out (the fc output grad, modified in place) -> dx N x in */
static void fc_backward(struct dfew_train_model *m, const struct fc *f, const float *x, float *dy, float *dx, int n)
{
    float *y = model_act(m, f->y);
    int64_t cnt = (int64_t)n * f->out;
    if (f->dropout && m->cfg.dropout > 0)
        dropout_backward(dy, dy, (const uint8_t *)model_act(m, f->mask), cnt, m->cfg.dropout);
    if (f->relu)
        relu_backward(dy, dy, y, cnt);
    linear_backward(dx, model_grad(m, f->w), model_grad(m, f->b), dy, x, model_param(m, f->w), n, f->in, f->out);
}

void model_loss_backward(struct dfew_train_model *m, int n, const int32_t *labels, struct dfew_train_losses *out)
{
    const int K = m->cfg.num_classes, D = m->feat_dim;
    float *probs = model_act(m, m->probs), *feat = model_act(m, m->feat), *dfeat = model_act(m, m->dfeat);
    float *dlogits = model_act(m, m->dlogits);
    memset(out, 0, sizeof *out);
    out->ce = softmax_crossentropy_forward(probs, model_act(m, m->logits), labels, n, K, &out->correct);
    switch (m->cfg.loss) {
    case DFEW_LOSS_ECSTFL:
        out->aux = ecstfl_forward(feat, labels, n, D, &out->aux_active);
        break;
    case DFEW_LOSS_ECSTFL_L1:
        out->aux = ecstfl_l1_forward(feat, labels, n, D, &out->aux_active);
        break;
    case DFEW_LOSS_CENTER:
        out->aux = center_loss_forward(feat, model_param(m, m->centers), labels, n, D);
        out->aux_active = 1;
        break;
    }
    out->total = out->ce + (out->aux_active ? m->cfg.lambda * out->aux : 0.f);

    /* backward: classifier, then the aux gradient added at the features */
    softmax_crossentropy_backward(dlogits, probs, labels, n, K, 1.f);
    const struct fc *head = &m->fcs[m->nfc - 1];
    const float *head_in = m->nfc > 1 ? model_act(m, m->fcs[m->nfc - 2].y) : feat;
    linear_backward(dfeat, model_grad(m, head->w), model_grad(m, head->b), dlogits, head_in,
                    model_param(m, head->w), n, head->in, head->out);
    if (out->aux_active) {
        if (m->cfg.loss == DFEW_LOSS_ECSTFL)
            ecstfl_backward_add(dfeat, feat, labels, n, D, m->cfg.lambda);
        else if (m->cfg.loss == DFEW_LOSS_ECSTFL_L1)
            ecstfl_l1_backward_add(dfeat, feat, labels, n, D, m->cfg.lambda);
        else if (m->cfg.loss == DFEW_LOSS_CENTER) {
            center_loss_backward_add(dfeat, feat, model_param(m, m->centers), labels, n, D, m->cfg.lambda);
            center_update(model_param(m, m->centers), feat, labels, n, D, K, m->cfg.center_alpha);
        }
    }

    float *g[3];
    for (int i = 0; i < 3; i++)
        g[i] = model_act(m, m->gbuf[i]);
    if (m->cfg.arch == DFEW_ARCH_R3D18) {
        const struct unit *last = &m->units[m->blocks[m->nblocks - 1].u2];
        const int64_t S = (int64_t)last->cs.to * last->cs.ho * last->cs.wo;
        if (m->ws.layout != LAYOUT_NCDHW)
            avgpool_global_backward_blk(g[0], dfeat, n, last->cs.oc, S, act_blk(m, last->cs.oc));
        else
            avgpool_global_backward(g[0], dfeat, n, last->cs.oc, S);
        /* g0: d(sum) of the last block, through its final relu */
        const struct block *lb = &m->blocks[m->nblocks - 1];
        relu_backward(g[0], g[0], model_act(m, lb->out), unit_count(m, &m->units[lb->u2], n));
        for (int bi = m->nblocks - 1; bi >= 0; bi--) {
            const struct block *b = &m->blocks[bi];
            const struct unit *u1 = &m->units[b->u1], *u2 = &m->units[b->u2];
            const float *x = bi > 0 ? model_act(m, m->blocks[bi - 1].out) : model_act(m, m->units[0].out);
            int64_t cnt_in = (int64_t)n * act_c(m, u1->cs.c) * u1->cs.t * u1->cs.h * u1->cs.w;
            /* three buffers: g0 d(sum), kept for the shortcut; the
             * batchnorm gradients overwrite their input where it is not
             * needed after */
            unit_backward(m, u2, model_act(m, u1->out), g[0], g[1], g[2], n);     /* g1 = d(u1 out) */
            unit_backward(m, u1, x, g[1], g[2], g[1], n);                         /* g2 = dx, main path */
            const float *dsc = g[0];
            if (b->down >= 0) {
                unit_backward(m, &m->units[b->down], x, g[0], g[1], g[0], n); /* g1 = dx, shortcut */
                dsc = g[1];
            }
            if (bi > 0) /* the previous block's d(sum), through its final relu */
                add_relu_backward(g[2], dsc, model_act(m, m->blocks[bi - 1].out), cnt_in);
            else { /* the stem's relu is its unit's */
#pragma omp parallel for schedule(static) if (cnt_in >= 65536)
                for (int64_t i = 0; i < cnt_in; i++)
                    g[2][i] += dsc[i];
            }
            float *t = g[0];
            g[0] = g[2];
            g[2] = t;
        }
        unit_backward(m, &m->units[0], model_act(m, m->input), g[0], NULL, g[0], n);
    } else {
        /* fc7 and fc6 (fc8 done above; dfeat = d(fc7 out)) */
        const struct pool *p5 = &m->pools[m->nops > 0 ? m->ops[m->nops - 1].idx : 0];
        fc_backward(m, &m->fcs[1], model_act(m, m->fcs[0].y), dfeat, g[1], n);
        if (m->flat >= 0) { /* fc6 read the channels-first copy of pool5's output */
            fc_backward(m, &m->fcs[0], model_act(m, m->flat), g[1], g[2], n);
            layout_ncs_to_blk(g[0], g[2], n, p5->cs.c, (int64_t)p5->cs.to * p5->cs.ho * p5->cs.wo,
                              act_blk(m, p5->cs.c));
        } else {
            fc_backward(m, &m->fcs[0], model_act(m, p5->out), g[1], g[0], n);
        }
        for (int i = m->nops - 1; i >= 0; i--) {
            const float *x = i > 0 ? model_act(m, m->ops[i - 1].kind == OP_UNIT
                                                      ? m->units[m->ops[i - 1].idx].out
                                                      : m->pools[m->ops[i - 1].idx].out)
                                   : model_act(m, m->input);
            if (m->ops[i].kind == OP_POOL) {
                const struct pool *p = &m->pools[m->ops[i].idx];
                struct conv3d_shape cs = p->cs;
                cs.n = n;
                if (m->ws.layout != LAYOUT_NCDHW)
                    maxpool3d_backward_blk(g[1], g[0], (const int32_t *)model_act(m, p->argmax), &cs,
                                           act_blk(m, cs.c));
                else
                    maxpool3d_backward(g[1], g[0], (const int32_t *)model_act(m, p->argmax), &cs);
            } else {
                unit_backward(m, &m->units[m->ops[i].idx], x, g[0], i > 0 ? g[1] : NULL, g[2], n);
            }
            float *t = g[0];
            g[0] = g[1];
            g[1] = t;
        }
    }
}

void model_sgd(struct dfew_train_model *m)
{
    sgd_update(m->params, m->mom, m->grads, m->param_floats, m->cfg.lr, m->cfg.momentum, m->cfg.weight_decay,
               m->sgd_steps == 0);
    m->sgd_steps++;
}
