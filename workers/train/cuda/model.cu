/* model.cu: 3D ResNet-18 and C3D on the device (see model.cuh): memory
 * layout, the input pipeline, and the forward, loss and backward passes
 * written out call by call as in the CPU's model.c, which is the reference
 * for their order and semantics. Not the plugin ABI (backend.cu). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "model.cuh"

namespace cu {

/* the CPU backend's model.c uses the same values */
#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

/* ------------------------------------------------------------ layout helpers */

void tensor_layout(float *dst, const float *src, const struct dfew_train_tensor_info *ti, int to_device)
{
    if (ti->ndim != 5) {
        memcpy(dst, src, sizeof(float) * (size_t)ti->numel);
        return;
    }
    const int64_t K = ti->shape[0], C = ti->shape[1], KV = ti->shape[2] * ti->shape[3] * ti->shape[4];
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t v = 0; v < KV; v++) {
                const int64_t pt = (k * C + c) * KV + v, dev = (k * KV + v) * C + c; /* PyTorch, device */
                if (to_device)
                    dst[dev] = src[pt];
                else
                    dst[pt] = src[dev];
            }
}

static inline float *P(const model *m, int t) { return m->params + m->plan->tensors[t].off; }
static inline float *G(const model *m, int t) { return m->grads + m->plan->tensors[t].off; }
template <typename T> static inline const T *W(const model *m, int t);
template <> inline const float *W<float>(const model *m, int t) { return P(m, t); }
template <> inline const bf16 *W<bf16>(const model *m, int t) { return m->params16 + m->plan->tensors[t].off; }

static int64_t unit_count(const struct unit *u, int n) { return (int64_t)n * u->cs.oc * u->cs.to * u->cs.ho * u->cs.wo; }
static int64_t unit_s(const struct unit *u) { return (int64_t)u->cs.to * u->cs.ho * u->cs.wo; }
static int64_t pool_count(const struct pool *p, int n) { return (int64_t)n * p->cs.c * p->cs.to * p->cs.ho * p->cs.wo; }

/* ------------------------------------------------------------ creation */

/* Two passes over the same list: sizes, then pointers into one allocation. */
static int carve_arena(model *m)
{
    const struct dfew_train_model *pl = m->plan;
    const int64_t B = m->cfg.max_batch, E = m->act_bf16 ? 2 : 4, K = m->cfg.num_classes;
    int64_t max_act = B * pl->in_floats;
    for (int i = 0; i < pl->nunits; i++)
        if (unit_count(&pl->units[i], (int)B) > max_act)
            max_act = unit_count(&pl->units[i], (int)B);
    for (int i = 0; i < pl->nops; i++)
        if (pl->ops[i].kind == OP_POOL && pool_count(&pl->pools[pl->ops[i].idx], (int)B) > max_act)
            max_act = pool_count(&pl->pools[pl->ops[i].idx], (int)B);
    int64_t fc_max = 0;
    for (int i = 0; i < pl->nfc; i++)
        fc_max = fc_max > pl->fcs[i].out ? fc_max : pl->fcs[i].out;
    for (int pass = 0; pass < 2; pass++) {
        char *base = pass ? m->arena : NULL;
        size_t off = 0;
#define CARVE(field, bytes)                                                                                           \
    do {                                                                                                              \
        size_t o_ = (off + 255) & ~(size_t)255;                                                                       \
        off = o_ + (size_t)(bytes);                                                                                   \
        if (base)                                                                                                     \
            field = (std::remove_reference<decltype(field)>::type)(base + o_);                                                                     \
    } while (0)
        CARVE(m->input, B * pl->in_floats * E);
        for (int i = 0; i < pl->nunits; i++) {
            const struct unit *u = &pl->units[i];
            int64_t cnt = unit_count(u, (int)B);
            CARVE(m->u[i].pre, cnt * E);
            if (u->bn) {
                CARVE(m->u[i].out, cnt * E);
                CARVE(m->u[i].smean, 4 * (int64_t)u->cs.oc);
                CARVE(m->u[i].srstd, 4 * (int64_t)u->cs.oc);
            } else if (base) {
                m->u[i].out = m->u[i].pre;
            }
        }
        for (int i = 0; i < pl->nops; i++)
            if (pl->ops[i].kind == OP_POOL) {
                int pi = pl->ops[i].idx;
                int64_t cnt = pool_count(&pl->pools[pi], (int)B);
                CARVE(m->p[pi].out, cnt * E);
                CARVE(m->p[pi].argmax, cnt * 4);
            }
        for (int i = 0; i < pl->nfc; i++) {
            CARVE(m->f[i].y, B * pl->fcs[i].out * 4);
            if (pl->fcs[i].dropout)
                CARVE(m->f[i].mask, B * pl->fcs[i].out);
        }
        for (int i = 0; i < 4; i++)
            CARVE(m->g[i], max_act * E);
        if (m->cfg.arch == DFEW_ARCH_R3D18)
            CARVE(m->gap, B * pl->feat_dim * 4);
        CARVE(m->probs, B * K * 4);
        CARVE(m->dlogits, B * K * 4);
        CARVE(m->dfeat, B * pl->feat_dim * 4);
        if (m->cfg.arch == DFEW_ARCH_C3D) {
            CARVE(m->fcin, B * pl->fcs[0].in * 4);
            CARVE(m->dfcin, B * pl->fcs[0].in * 4);
            CARVE(m->fcg, B * fc_max * 4);
        }
        CARVE(m->labels, B * 4);
        CARVE(m->dl, sizeof(dev_losses));
#undef CARVE
        if (!pass) {
            m->arena_bytes = (off + 255) & ~(size_t)255;
            CU_TRY(&m->cx, cudaMalloc((void **)&m->arena, m->arena_bytes));
            CU_TRY(&m->cx, cudaMemsetAsync(m->arena, 0, m->arena_bytes, m->cx.stream));
        }
    }
    return 0;
}

static int sync(model *m)
{
    CU_TRY(&m->cx, cudaStreamSynchronize(m->cx.stream));
    return 0;
}

/* Parameters (+ buffers) and momentum between the shadow (host, PyTorch
 * layout) and the device. */
static int params_io(model *m, int with_momentum, int to_device)
{
    struct dfew_train_model *pl = m->plan;
    TRY(sync(m));
    float *tmp = (float *)malloc(sizeof(float) * (size_t)pl->num_floats);
    if (!tmp)
        return fail(&m->cx, -ENOMEM, "out of host memory staging %lld parameters", (long long)pl->num_floats);
    int rc = 0;
    for (int pass = 0; pass < (with_momentum ? 2 : 1) && !rc; pass++) {
        float *host = pass ? pl->mom : pl->params, *dev = pass ? m->mom : m->params;
        const size_t bytes = sizeof(float) * (size_t)(pass ? pl->param_floats : pl->num_floats);
        if (to_device)
            memcpy(tmp, host, bytes); /* keeps the alignment padding */
        else {
            cudaError_t e = cudaMemcpyAsync(tmp, dev, bytes, cudaMemcpyDeviceToHost, m->cx.stream);
            if (e == cudaSuccess)
                e = cudaStreamSynchronize(m->cx.stream);
            if (e != cudaSuccess) {
                rc = fail_cuda(&m->cx, e, "parameter download", __FILE__, __LINE__);
                break;
            }
            memcpy(host, tmp, bytes);
        }
        for (int i = 0; i < pl->ntensors; i++) {
            const struct tensor *t = &pl->tensors[i];
            if (pass && t->info.kind != DFEW_TENSOR_PARAM)
                continue;
            if (to_device)
                tensor_layout(tmp + t->off, host + t->off, &t->info, 1);
            else
                tensor_layout(host + t->off, tmp + t->off, &t->info, 0);
        }
        if (to_device) {
            cudaError_t e = cudaMemcpyAsync(dev, tmp, bytes, cudaMemcpyHostToDevice, m->cx.stream);
            if (e == cudaSuccess)
                e = cudaStreamSynchronize(m->cx.stream);
            if (e != cudaSuccess)
                rc = fail_cuda(&m->cx, e, "parameter upload", __FILE__, __LINE__);
        }
    }
    free(tmp);
    if (!rc && to_device && m->params16)
        rc = cast_f32_to_bf16(m->params16, m->params, pl->param_floats, &m->cx);
    return rc;
}

int model_upload(model *m, int with_momentum) { return params_io(m, with_momentum, 1); }
int model_download(model *m, int with_momentum) { return params_io(m, with_momentum, 0); }

int model_profile_mark(model *m, int i)
{
    if (!m->profile)
        return 0;
    CU_TRY(&m->cx, cudaEventRecord(m->pev[m->pset][i], m->cx.stream));
    if (i == 4) {
        m->pending[m->pset] = 1;
        m->pset ^= 1;
    }
    return 0;
}

void model_profile_collect(model *m, int wait)
{
    for (int s = 0; s < 2 && m->profile; s++) {
        if (!m->pending[s])
            continue;
        cudaError_t e = wait ? cudaEventSynchronize(m->pev[s][4]) : cudaEventQuery(m->pev[s][4]);
        if (e == cudaSuccess && m->pseen++ >= 3) { /* the first steps choose algorithms: not counted */
            for (int i = 0; i < 4; i++) {
                float ms = 0;
                if (cudaEventElapsedTime(&ms, m->pev[s][i], m->pev[s][i + 1]) == cudaSuccess)
                    m->pms[i] += ms;
            }
            m->psteps++;
        } else if (e != cudaErrorNotReady) {
            cudaGetLastError();
        }
        if (e == cudaSuccess || s == m->pset) /* the set about to be recorded again is dropped if still running */
            m->pending[s] = 0;
    }
}

void model_destroy(model *m)
{
    if (!m)
        return;
    if (m->cx.stream)
        cudaStreamSynchronize(m->cx.stream);
    model_profile_collect(m, 1);
    if (m->psteps > 0)
        fprintf(stderr,
                "dfew cuda profile: %lld steps, ms per step: input %.2f, forward %.2f, loss + backward %.2f, sgd %.2f\n",
                (long long)m->psteps, m->pms[0] / m->psteps, m->pms[1] / m->psteps, m->pms[2] / m->psteps,
                m->pms[3] / m->psteps);
    for (int i = 0; i < 10; i++)
        if (m->pev[i / 5][i % 5])
            cudaEventDestroy(m->pev[i / 5][i % 5]);
    if (m->copy) {
        cudaStreamSynchronize(m->copy);
        cudaStreamDestroy(m->copy);
    }
    for (int i = 0; i < 2; i++) {
        staging_slot *s = &m->slot[i];
        if (s->host)
            cudaFreeHost(s->host);
        if (s->dev)
            cudaFree(s->dev);
        if (s->uploaded)
            cudaEventDestroy(s->uploaded);
        if (s->consumed)
            cudaEventDestroy(s->consumed);
    }
    if (m->ready)
        cudaEventDestroy(m->ready);
    if (m->host_io)
        cudaFreeHost(m->host_io);
    cudaFree(m->arena);
    cudaFree(m->params);
    cudaFree(m->grads);
    cudaFree(m->mom);
    cudaFree(m->params16);
    ctx_destroy(&m->cx);
    if (m->plan) {
        model_free(m->plan);
        free(m->plan);
    }
    free(m);
}

int model_create(model **out, const dfew_train_config *cfg, int device, const char *device_name, char *err,
                 size_t err_len)
{
    *out = NULL;
    model *m = (model *)calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, err_len, "out of host memory creating the model");
        return -ENOMEM;
    }
    m->cfg = *cfg;
    m->act_bf16 = cfg->precision == DFEW_PRECISION_BF16;
    snprintf(m->device_name, sizeof m->device_name, "%s", device_name);
    m->plan = (struct dfew_train_model *)calloc(1, sizeof *m->plan);
    int rc = m->plan ? model_build_shadow(m->plan, cfg, err, err_len) : -ENOMEM;
    if (rc) {
        if (rc == -ENOMEM && !m->plan)
            snprintf(err, err_len, "out of host memory creating the model");
        free(m->plan);
        m->plan = NULL;
        model_destroy(m);
        return rc;
    }
    const struct dfew_train_model *pl = m->plan;
    m->rng = pl->rng;
    m->lr = cfg->lr;
    rc = ctx_init(&m->cx, device, cfg->precision);
    int K = cfg->num_classes, B = cfg->max_batch;
#define STEP(call)                                                                                                    \
    do {                                                                                                              \
        if (!rc) {                                                                                                    \
            cudaError_t e_ = (call);                                                                                  \
            if (e_ != cudaSuccess)                                                                                    \
                rc = fail_cuda(&m->cx, e_, #call, __FILE__, __LINE__);                                                \
        }                                                                                                             \
    } while (0)
    STEP(cudaStreamCreateWithFlags(&m->copy, cudaStreamNonBlocking));
    const char *prof = getenv("DFEW_CUDA_PROFILE");
    m->profile = prof && !strcmp(prof, "1");
    for (int i = 0; i < 10 && m->profile; i++)
        STEP(cudaEventCreate(&m->pev[i / 5][i % 5]));
    STEP(cudaEventCreateWithFlags(&m->ready, cudaEventDisableTiming));
    for (int i = 0; i < 2; i++) {
        STEP(cudaEventCreateWithFlags(&m->slot[i].uploaded, cudaEventDisableTiming));
        STEP(cudaEventCreateWithFlags(&m->slot[i].consumed, cudaEventDisableTiming));
    }
    size_t io = ((sizeof(dev_losses) + 255) & ~(size_t)255) + 2 * (size_t)B * K * sizeof(float);
    STEP(cudaHostAlloc((void **)&m->host_io, io, cudaHostAllocDefault));
    STEP(cudaMalloc((void **)&m->params, sizeof(float) * (size_t)pl->num_floats));
    STEP(cudaMalloc((void **)&m->grads, sizeof(float) * (size_t)pl->param_floats));
    STEP(cudaMalloc((void **)&m->mom, sizeof(float) * (size_t)pl->param_floats));
    if (m->act_bf16)
        STEP(cudaMalloc((void **)&m->params16, sizeof(bf16) * (size_t)pl->param_floats));
    if (!rc) {
        m->hl = (dev_losses *)m->host_io;
        m->hlogits = (float *)(m->host_io + ((sizeof(dev_losses) + 255) & ~(size_t)255));
        m->hprobs = m->hlogits + (size_t)B * K;
    }
    STEP(cudaMemsetAsync(m->grads, 0, sizeof(float) * (size_t)pl->param_floats, m->cx.stream));
    if (!rc)
        rc = carve_arena(m);
    if (!rc)
        rc = model_upload(m, 1);
    if (!rc)
        rc = sync(m);
#undef STEP
    if (rc) {
        snprintf(err, err_len, "%s", m->cx.err);
        model_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------ input */

int model_set_input(model *m, const dfew_train_batch *b)
{
    ctx *cx = &m->cx;
    const int64_t per = m->plan->in_floats, S = per / 3;
    const int f32 = b->input == DFEW_INPUT_F32_NCTHW;
    const size_t esz = f32 ? 4 : 1, bytes = (size_t)b->n * per * esz;
    const size_t lab_off = (bytes + 255) & ~(size_t)255, lbytes = b->labels ? sizeof(int32_t) * (size_t)b->n : 0;
    staging_slot *s = &m->slot[m->next_slot];
    m->next_slot ^= 1;
    CU_TRY(cx, cudaEventSynchronize(s->uploaded)); /* the pinned bytes of this slot's last batch are copied */
    if (s->cap < lab_off + lbytes) {
        size_t cap = (((size_t)m->cfg.max_batch * per * esz + 255) & ~(size_t)255) + sizeof(int32_t) * m->cfg.max_batch;
        CU_TRY(cx, cudaEventSynchronize(s->consumed)); /* and the device bytes were read */
        if (s->host)
            CU_TRY(cx, cudaFreeHost(s->host));
        if (s->dev)
            CU_TRY(cx, cudaFree(s->dev));
        s->host = s->dev = NULL;
        s->cap = 0;
        CU_TRY(cx, cudaHostAlloc((void **)&s->host, cap, cudaHostAllocDefault));
        CU_TRY(cx, cudaMalloc((void **)&s->dev, cap));
        s->cap = cap;
    }
    memcpy(s->host, b->data, bytes);
    if (lbytes)
        memcpy(s->host + lab_off, b->labels, lbytes);
    CU_TRY(cx, cudaStreamWaitEvent(m->copy, s->consumed, 0));
    CU_TRY(cx, cudaMemcpyAsync(s->dev, s->host, lab_off + lbytes, cudaMemcpyHostToDevice, m->copy));
    CU_TRY(cx, cudaEventRecord(s->uploaded, m->copy));
    CU_TRY(cx, cudaStreamWaitEvent(cx->stream, s->uploaded, 0));
    if (m->act_bf16) {
        if (f32)
            TRY(input_from_f32_ncs<bf16>((bf16 *)m->input, (const float *)s->dev, b->n, S, cx));
        else
            TRY(input_from_u8<bf16>((bf16 *)m->input, s->dev, (int64_t)b->n * per, m->cfg.mean, m->cfg.std, cx));
    } else {
        if (f32)
            TRY(input_from_f32_ncs<float>((float *)m->input, (const float *)s->dev, b->n, S, cx));
        else
            TRY(input_from_u8<float>((float *)m->input, s->dev, (int64_t)b->n * per, m->cfg.mean, m->cfg.std, cx));
    }
    if (lbytes)
        CU_TRY(cx, cudaMemcpyAsync(m->labels, s->dev + lab_off, lbytes, cudaMemcpyDeviceToDevice, cx->stream));
    CU_TRY(cx, cudaEventRecord(s->consumed, cx->stream));
    return 0;
}

/* ------------------------------------------------------------ forward */

/* conv [+ bias] [+ batchnorm] [+ residual] [+ relu] */
template <typename T>
static int unit_forward(model *m, int ui, const T *x, int n, int train, const T *res, int relu)
{
    const struct unit *u = &m->plan->units[ui];
    conv3d_shape cs = u->cs;
    cs.n = n;
    const int64_t S = unit_s(u);
    T *pre = (T *)m->u[ui].pre, *out = (T *)m->u[ui].out;
    TRY(conv3d_forward<T>(pre, x, W<T>(m, u->w), NULL, &cs, &m->cx));
    if (u->bn) {
        if (train)
            return batchnorm3d_act_forward_train<T>(out, m->u[ui].smean, m->u[ui].srstd, P(m, u->rm), P(m, u->rv), pre,
                                                    P(m, u->g), P(m, u->be), res, relu, n, cs.oc, S, BN_MOMENTUM,
                                                    BN_EPS, &m->cx);
        return batchnorm3d_act_forward_eval<T>(out, pre, P(m, u->g), P(m, u->be), P(m, u->rm), P(m, u->rv), res, relu,
                                               n, cs.oc, S, BN_EPS, &m->cx);
    }
    return bias_act_forward<T>(pre, u->b >= 0 ? P(m, u->b) : NULL, (int64_t)n * S, cs.oc, relu, &m->cx);
}

static int fc_forward(model *m, int fi, const float *x, int n, int train)
{
    const struct fc *f = &m->plan->fcs[fi];
    float *y = m->f[fi].y;
    TRY(linear_forward(y, x, P(m, f->w), NULL, n, f->in, f->out, &m->cx));
    TRY(bias_act_forward<float>(y, P(m, f->b), n, f->out, f->relu, &m->cx));
    if (f->dropout && train && m->cfg.dropout > 0)
        TRY(dropout_forward(y, m->f[fi].mask, y, (int64_t)n * f->out, m->cfg.dropout, &m->rng, &m->cx));
    return 0;
}

template <typename T> static int forward_t(model *m, int n, int train)
{
    const struct dfew_train_model *pl = m->plan;
    const T *x = (const T *)m->input;
    if (m->cfg.arch == DFEW_ARCH_R3D18) {
        const int stem = pl->ops[0].idx;
        TRY(unit_forward<T>(m, stem, x, n, train, NULL, 1));
        x = (const T *)m->u[stem].out;
        for (int bi = 0; bi < pl->nblocks; bi++) {
            const struct block *b = &pl->blocks[bi];
            TRY(unit_forward<T>(m, b->u1, x, n, train, NULL, 1));
            const T *sc = x;
            if (b->down >= 0) {
                TRY(unit_forward<T>(m, b->down, x, n, train, NULL, 0));
                sc = (const T *)m->u[b->down].out;
            }
            /* bn2 + shortcut + the block's relu in one pass, into u2.out (= the block's output) */
            TRY(unit_forward<T>(m, b->u2, (const T *)m->u[b->u1].out, n, train, sc, 1));
            x = (const T *)m->u[b->u2].out;
        }
        const struct unit *last = &pl->units[pl->blocks[pl->nblocks - 1].u2];
        TRY(avgpool_global_forward<T>(m->gap, x, n, last->cs.oc, unit_s(last), &m->cx));
        return fc_forward(m, 0, m->gap, n, train);
    }
    for (int i = 0; i < pl->nops; i++) {
        if (pl->ops[i].kind == OP_UNIT) {
            const int ui = pl->ops[i].idx;
            TRY(unit_forward<T>(m, ui, x, n, train, NULL, pl->units[ui].relu));
            x = (const T *)m->u[ui].out;
        } else {
            const int pi = pl->ops[i].idx;
            conv3d_shape cs = pl->pools[pi].cs;
            cs.n = n;
            TRY(maxpool3d_forward<T>((T *)m->p[pi].out, m->p[pi].argmax, x, &cs, &m->cx));
            x = (const T *)m->p[pi].out;
        }
    }
    /* PyTorch flattens N x C x T x H x W: the classifier sees channels first */
    const struct pool *p5 = &pl->pools[pl->ops[pl->nops - 1].idx];
    TRY(nsc_to_ncs_f32<T>(m->fcin, x, n, p5->cs.c, (int64_t)p5->cs.to * p5->cs.ho * p5->cs.wo, &m->cx));
    TRY(fc_forward(m, 0, m->fcin, n, train));
    TRY(fc_forward(m, 1, m->f[0].y, n, train));
    return fc_forward(m, 2, m->f[1].y, n, train);
}

int model_forward(model *m, int n, int train)
{
    return m->act_bf16 ? forward_t<bf16>(m, n, train) : forward_t<float>(m, n, train);
}

static float *feat_of(model *m) { return m->cfg.arch == DFEW_ARCH_R3D18 ? m->gap : m->f[1].y; }
static float *logits_of(model *m) { return m->f[m->plan->nfc - 1].y; }

int model_outputs(model *m, int n)
{
    ctx *cx = &m->cx;
    const int K = m->cfg.num_classes;
    TRY(softmax_crossentropy_forward(NULL, m->probs, logits_of(m), NULL, n, K, NULL, cx));
    CU_TRY(cx, cudaMemcpyAsync(m->hprobs, m->probs, sizeof(float) * n * K, cudaMemcpyDeviceToHost, cx->stream));
    CU_TRY(cx, cudaMemcpyAsync(m->hlogits, logits_of(m), sizeof(float) * n * K, cudaMemcpyDeviceToHost, cx->stream));
    CU_TRY(cx, cudaEventRecord(m->ready, cx->stream));
    return 0;
}

/* ------------------------------------------------------------ loss + backward */

/* dout: gradient at the unit's output; the unit's own relu (u->relu) is
 * undone inside (mask recomputed with batchnorm, read from out without);
 * dx = input gradient (NULL: none), accumulated when accumulate. */
template <typename T>
static int unit_backward(model *m, int ui, const T *x, T *dout, T *dx, T *tmp, int n, int accumulate)
{
    const struct unit *u = &m->plan->units[ui];
    conv3d_shape cs = u->cs;
    cs.n = n;
    const int64_t S = unit_s(u);
    const T *g = dout;
    if (u->bn) {
        TRY(batchnorm3d_act_backward<T>(tmp, G(m, u->g), G(m, u->be), dout, (const T *)m->u[ui].pre, P(m, u->g),
                                        P(m, u->be), m->u[ui].smean, m->u[ui].srstd, u->relu, n, cs.oc, S, &m->cx));
        g = tmp;
    } else if (u->relu) {
        TRY(relu_backward<T>(dout, dout, (const T *)m->u[ui].out, unit_count(u, n), &m->cx));
    }
    return conv3d_backward<T>(dx, G(m, u->w), u->b >= 0 ? G(m, u->b) : NULL, g, x, W<T>(m, u->w), &cs, &m->cx,
                              accumulate);
}

/* dy N x out (modified in place) -> dx N x in */
static int fc_backward(model *m, int fi, const float *x, float *dy, float *dx, int n)
{
    const struct fc *f = &m->plan->fcs[fi];
    const int64_t cnt = (int64_t)n * f->out;
    if (f->dropout && m->cfg.dropout > 0)
        TRY(dropout_backward(dy, dy, m->f[fi].mask, cnt, m->cfg.dropout, &m->cx));
    if (f->relu)
        TRY(relu_backward<float>(dy, dy, m->f[fi].y, cnt, &m->cx));
    return linear_backward(dx, G(m, f->w), G(m, f->b), dy, x, P(m, f->w), n, f->in, f->out, &m->cx);
}

template <typename T> static int backward_t(model *m, int n)
{
    const struct dfew_train_model *pl = m->plan;
    T *g[4] = {(T *)m->g[0], (T *)m->g[1], (T *)m->g[2], (T *)m->g[3]};
    if (m->cfg.arch == DFEW_ARCH_R3D18) {
        const struct unit *last = &pl->units[pl->blocks[pl->nblocks - 1].u2];
        TRY(avgpool_global_backward<T>(g[0], m->dfeat, n, last->cs.oc, unit_s(last), &m->cx));
        for (int bi = pl->nblocks - 1; bi >= 0; bi--) {
            const struct block *b = &pl->blocks[bi];
            const struct unit *u1 = &pl->units[b->u1], *u2 = &pl->units[b->u2];
            const T *x = (const T *)(bi > 0 ? m->u[pl->blocks[bi - 1].u2].out : m->u[pl->ops[0].idx].out);
            /* g0: d(block out) -> d(sum) through the block's relu */
            TRY(relu_backward<T>(g[0], g[0], (const T *)m->u[b->u2].out, unit_count(u2, n), &m->cx));
            TRY(unit_backward<T>(m, b->u2, (const T *)m->u[b->u1].out, g[0], g[1], g[2], n, 0)); /* g1 = d(u1 out) */
            TRY(unit_backward<T>(m, b->u1, x, g[1], g[3], g[2], n, 0));                          /* g3 = dx, main path */
            if (b->down >= 0) {
                TRY(unit_backward<T>(m, b->down, x, g[0], g[3], g[1], n, 1)); /* g3 += dx, shortcut */
            } else {
                TRY(add_inplace<T>(g[3], g[0], (int64_t)n * u1->cs.c * u1->cs.t * u1->cs.h * u1->cs.w, &m->cx));
            }
            T *t = g[0];
            g[0] = g[3];
            g[3] = t;
        }
        return unit_backward<T>(m, pl->ops[0].idx, (const T *)m->input, g[0], NULL, g[1], n, 0);
    }
    /* C3D: fc7, fc6 (fc8 done by the caller; dfeat = d(fc7 out)) */
    const struct pool *p5 = &pl->pools[pl->ops[pl->nops - 1].idx];
    TRY(fc_backward(m, 1, m->f[0].y, m->dfeat, m->fcg, n));
    TRY(fc_backward(m, 0, m->fcin, m->fcg, m->dfcin, n));
    TRY(ncs_f32_to_nsc<T>(g[0], m->dfcin, n, p5->cs.c, (int64_t)p5->cs.to * p5->cs.ho * p5->cs.wo, &m->cx));
    for (int i = pl->nops - 1; i >= 0; i--) {
        const T *x;
        if (i == 0)
            x = (const T *)m->input;
        else if (pl->ops[i - 1].kind == OP_UNIT)
            x = (const T *)m->u[pl->ops[i - 1].idx].out;
        else
            x = (const T *)m->p[pl->ops[i - 1].idx].out;
        if (pl->ops[i].kind == OP_POOL) {
            const int pi = pl->ops[i].idx;
            conv3d_shape cs = pl->pools[pi].cs;
            cs.n = n;
            TRY(maxpool3d_backward<T>(g[1], g[0], m->p[pi].argmax, &cs, &m->cx));
        } else {
            TRY(unit_backward<T>(m, pl->ops[i].idx, x, g[0], i > 0 ? g[1] : NULL, g[2], n, 0));
        }
        T *t = g[0];
        g[0] = g[1];
        g[1] = t;
    }
    return 0;
}

int model_loss_backward(model *m, int n, int want_logits)
{
    ctx *cx = &m->cx;
    const struct dfew_train_model *pl = m->plan;
    const int K = m->cfg.num_classes, D = pl->feat_dim;
    float *feat = feat_of(m), *logits = logits_of(m);
    CU_TRY(cx, cudaMemsetAsync(m->dl, 0, sizeof(dev_losses), cx->stream));
    TRY(softmax_crossentropy_forward(&m->dl->ce, m->probs, logits, m->labels, n, K, &m->dl->correct, cx));
    switch (m->cfg.loss) {
    case DFEW_LOSS_ECSTFL:
        TRY(ecstfl_forward(&m->dl->aux, feat, m->labels, n, D, &m->dl->active, cx));
        break;
    case DFEW_LOSS_ECSTFL_L1:
        TRY(ecstfl_l1_forward(&m->dl->aux, feat, m->labels, n, D, &m->dl->active, cx));
        break;
    case DFEW_LOSS_CENTER:
        TRY(center_loss_forward(&m->dl->aux, feat, P(m, pl->centers), m->labels, n, D, cx));
        break;
    }
    CU_TRY(cx, cudaMemcpyAsync(m->hl, m->dl, sizeof(dev_losses), cudaMemcpyDeviceToHost, cx->stream));
    if (want_logits)
        CU_TRY(cx, cudaMemcpyAsync(m->hlogits, logits, sizeof(float) * n * K, cudaMemcpyDeviceToHost, cx->stream));
    CU_TRY(cx, cudaEventRecord(m->ready, cx->stream));

    /* backward: classifier, then the aux gradient added at the features */
    TRY(softmax_crossentropy_backward(m->dlogits, m->probs, m->labels, n, K, 1.f, cx));
    const struct fc *head = &pl->fcs[pl->nfc - 1];
    TRY(linear_backward(m->dfeat, G(m, head->w), G(m, head->b), m->dlogits, feat, P(m, head->w), n, head->in,
                        head->out, cx));
    const float lam = m->cfg.lambda;
    switch (m->cfg.loss) { /* each adds nothing when its term is inactive (decided on the device) */
    case DFEW_LOSS_ECSTFL:
        TRY(ecstfl_backward_add(m->dfeat, feat, m->labels, n, D, lam, cx));
        break;
    case DFEW_LOSS_ECSTFL_L1:
        TRY(ecstfl_l1_backward_add(m->dfeat, feat, m->labels, n, D, lam, cx));
        break;
    case DFEW_LOSS_CENTER:
        TRY(center_loss_backward_add(m->dfeat, feat, P(m, pl->centers), m->labels, n, D, lam, cx));
        TRY(center_update(P(m, pl->centers), feat, m->labels, n, D, K, m->cfg.center_alpha, cx));
        break;
    }
    return m->act_bf16 ? backward_t<bf16>(m, n) : backward_t<float>(m, n);
}

int model_sgd(model *m)
{
    const struct dfew_train_model *pl = m->plan;
    TRY(sgd_update(m->params, m->mom, m->grads, pl->param_floats, m->lr, m->cfg.momentum, m->cfg.weight_decay,
                   m->sgd_steps == 0, &m->cx, m->params16));
    m->sgd_steps++;
    return 0;
}

} // namespace cu
