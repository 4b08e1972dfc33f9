/* backend.cu: the CUDA backend behind the plugin ABI of dfew_train.h: the
 * function table, the device probe, batch checks, the asynchronous train
 * step, tensor access and checkpoints. Checkpoints go through the host shadow
 * and the CPU backend's own save/load, so the file format is the CPU's by
 * construction. The shared module dfew-train-cuda.so exports the table
 * through entry.cu; tests link this code statically and call
 * dfew_train_cuda_backend(). Not the model maths (model.cu, layers.cu). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.cuh"

extern "C" {
#include "../cpu/backend.h" /* the CPU backend's table: its save / load work on the shadow */
#include "backend.h"
}

using cu::model;

#ifndef DFEW_CUDA_MIN_CC
#define DFEW_CUDA_MIN_CC 90 /* the oldest compute capability the module carries code for (meson option gpu_arch) */
#endif

static model *M(struct dfew_train_model *m) { return reinterpret_cast<model *>(m); }
static const model *CM(const struct dfew_train_model *m) { return reinterpret_cast<const model *>(m); }

/* 1 with the device's name, 0 (not an error) without a usable device: no
 * driver, no GPU, or a GPU older than the code in this module. */
static int probe_device(int device, struct dfew_train_device *dev)
{
    memset(dev, 0, sizeof *dev);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(dev->name, sizeof dev->name, "%s", cudaGetErrorString(e));
        return 0;
    }
    if (n <= device) {
        snprintf(dev->name, sizeof dev->name, "%d CUDA devices, device %d asked for", n, device);
        return 0;
    }
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(dev->name, sizeof dev->name, "%s", cudaGetErrorString(e));
        return 0;
    }
    if (p.major * 10 + p.minor < DFEW_CUDA_MIN_CC) {
        snprintf(dev->name, sizeof dev->name, "%.60s has compute capability %d.%d, this module needs %d.%d", p.name,
                 p.major, p.minor, DFEW_CUDA_MIN_CC / 10, DFEW_CUDA_MIN_CC % 10);
        return 0;
    }
    snprintf(dev->name, sizeof dev->name, "%.120s", p.name);
    dev->memory_bytes = p.totalGlobalMem;
    dev->compute_units = p.multiProcessorCount;
    return 1;
}

static int device_index(void)
{
    const char *d = getenv("DFEW_CUDA_DEVICE");
    return d && *d ? atoi(d) : 0;
}

static int cuda_probe(struct dfew_train_device *dev)
{
    return probe_device(device_index(), dev);
}

static int parse_precision(const char *s)
{
    if (!strcmp(s, "fp32"))
        return DFEW_PRECISION_FP32;
    if (!strcmp(s, "tf32"))
        return DFEW_PRECISION_TF32;
    if (!strcmp(s, "bf16"))
        return DFEW_PRECISION_BF16;
    return -1;
}

static int cuda_create(const struct dfew_train_config *cfg, struct dfew_train_model **out, char *err, size_t err_len)
{
    *out = NULL;
    if (!cfg || cfg->struct_size < sizeof *cfg) {
        snprintf(err, err_len, "trainer config struct_size %u is older than this backend's %zu; rebuild the host",
                 cfg ? cfg->struct_size : 0, sizeof *cfg);
        return -EINVAL;
    }
    struct dfew_train_config c = *cfg;
    const char *env = getenv("DFEW_CUDA_PRECISION");
    if (env && *env) {
        int p = parse_precision(env);
        if (p < 0) {
            snprintf(err, err_len, "DFEW_CUDA_PRECISION=%s: use fp32, tf32 or bf16", env);
            return -EINVAL;
        }
        c.precision = p;
    }
    if (c.precision < DFEW_PRECISION_FP32 || c.precision > DFEW_PRECISION_BF16) {
        snprintf(err, err_len, "bad trainer config: precision %d; use 0 (fp32), 1 (tf32) or 2 (bf16)", c.precision);
        return -EINVAL;
    }
    struct dfew_train_device dev;
    int device = device_index();
    if (probe_device(device, &dev) != 1) {
        snprintf(err, err_len, "no usable CUDA device (%s); use the CPU backend", dev.name);
        return -ENODEV;
    }
    model *m;
    int rc = cu::model_create(&m, &c, device, dev.name, err, err_len);
    if (rc)
        return rc;
    *out = reinterpret_cast<struct dfew_train_model *>(m);
    return 0;
}

static void cuda_destroy(struct dfew_train_model *m)
{
    cu::model_destroy(M(m));
}

static const char *cuda_last_error(const struct dfew_train_model *m)
{
    return m ? CM(m)->cx.err : "no model";
}

static int cuda_describe(const struct dfew_train_model *mm, struct dfew_train_info *info)
{
    const model *m = CM(mm);
    const struct dfew_train_model *pl = m->plan;
    memset(info, 0, sizeof *info);
    snprintf(info->backend, sizeof info->backend, "cuda");
    snprintf(info->device, sizeof info->device, "%s", m->device_name);
    snprintf(info->arch, sizeof info->arch, "%s", m->cfg.arch == DFEW_ARCH_R3D18 ? "r3d18" : "c3d");
    info->num_params = pl->num_params;
    info->num_tensors = pl->ntensors;
    info->feature_dim = pl->feat_dim;
    info->param_bytes = (int64_t)sizeof(float) * (pl->num_floats + 2 * pl->param_floats) +
                        (m->params16 ? (int64_t)sizeof(cu::bf16) * pl->param_floats : 0);
    info->activation_bytes = (int64_t)m->arena_bytes;
    info->workspace_bytes = (int64_t)m->cx.ws_bytes;
    return 0;
}

static int check_batch(model *m, const struct dfew_train_batch *b, int need_labels)
{
    int rc = model_check_batch(m->plan, b, need_labels); /* the CPU backend's checks and messages */
    if (rc)
        snprintf(m->cx.err, sizeof m->cx.err, "%s", m->plan->err);
    return rc;
}

/* Queues forward, loss and backward (and the SGD step when sgd), then waits
 * only for the loss: the backward pass runs on while the caller prepares the
 * next batch. */
static int step(model *m, const struct dfew_train_batch *b, struct dfew_train_losses *out, float *logits, int sgd)
{
    TRY(check_batch(m, b, 1));
    cu::model_profile_collect(m, 0);
    TRY(cu::model_profile_mark(m, 0));
    TRY(cu::model_set_input(m, b));
    TRY(cu::model_profile_mark(m, 1));
    TRY(cu::model_forward(m, b->n, 1));
    TRY(cu::model_profile_mark(m, 2));
    TRY(cu::model_loss_backward(m, b->n, logits != NULL));
    TRY(cu::model_profile_mark(m, 3));
    if (sgd)
        TRY(cu::model_sgd(m));
    TRY(cu::model_profile_mark(m, 4));
    CU_TRY(&m->cx, cudaEventSynchronize(m->ready));
    struct dfew_train_losses l;
    memset(&l, 0, sizeof l);
    l.ce = m->hl->ce;
    l.aux = m->hl->aux;
    l.correct = m->hl->correct;
    l.aux_active = m->cfg.loss == DFEW_LOSS_CENTER ? 1 : m->cfg.loss == DFEW_LOSS_CE ? 0 : m->hl->active;
    l.total = l.ce + (l.aux_active ? m->cfg.lambda * l.aux : 0.f);
    if (out)
        *out = l;
    if (logits)
        memcpy(logits, m->hlogits, sizeof(float) * (size_t)b->n * m->cfg.num_classes);
    return 0;
}

static int cuda_forward_backward(struct dfew_train_model *m, const struct dfew_train_batch *b,
                                 struct dfew_train_losses *out, float *logits)
{
    return step(M(m), b, out, logits, 0);
}

static int cuda_train_step(struct dfew_train_model *m, const struct dfew_train_batch *b, struct dfew_train_losses *out)
{
    return step(M(m), b, out, NULL, 1);
}

static int cuda_sgd_update(struct dfew_train_model *m)
{
    return cu::model_sgd(M(m));
}

static int cuda_set_lr(struct dfew_train_model *mm, float lr)
{
    model *m = M(mm);
    if (!(lr >= 0))
        return cu::fail(&m->cx, -EINVAL, "learning rate %g is not a non-negative number", lr);
    m->lr = lr;
    m->cfg.lr = lr;
    return 0;
}

static int cuda_evaluate(struct dfew_train_model *mm, const struct dfew_train_batch *b, float *probs, float *logits)
{
    model *m = M(mm);
    TRY(check_batch(m, b, 0));
    TRY(cu::model_set_input(m, b));
    TRY(cu::model_forward(m, b->n, 0));
    TRY(cu::model_outputs(m, b->n));
    CU_TRY(&m->cx, cudaEventSynchronize(m->ready));
    const size_t bytes = sizeof(float) * (size_t)b->n * m->cfg.num_classes;
    if (probs)
        memcpy(probs, m->hprobs, bytes);
    if (logits)
        memcpy(logits, m->hlogits, bytes);
    return 0;
}

/* ------------------------------------------------------------ tensors */

static int cuda_tensor_info(const struct dfew_train_model *mm, int64_t i, struct dfew_train_tensor_info *ti)
{
    const model *m = CM(mm);
    if (i < 0 || i >= m->plan->ntensors)
        return -ERANGE;
    *ti = m->plan->tensors[i].info;
    return 0;
}

static float *device_part(const model *m, int64_t i, int part)
{
    if (i < 0 || i >= m->plan->ntensors)
        return NULL;
    const struct tensor *t = &m->plan->tensors[i];
    if (part == DFEW_PART_VALUE)
        return m->params + t->off;
    if (t->info.kind != DFEW_TENSOR_PARAM)
        return NULL;
    if (part == DFEW_PART_GRAD)
        return m->grads + t->off;
    if (part == DFEW_PART_MOMENTUM)
        return m->mom + t->off;
    return NULL;
}

/* One tensor between the host (PyTorch layout) and the device. */
static int tensor_io(model *m, int64_t i, int part, float *host, int to_device)
{
    float *p = device_part(m, i, part);
    if (!p)
        return -ERANGE;
    const struct dfew_train_tensor_info *ti = &m->plan->tensors[i].info;
    const size_t bytes = sizeof(float) * (size_t)ti->numel;
    float *tmp = (float *)malloc(bytes);
    if (!tmp)
        return cu::fail(&m->cx, -ENOMEM, "out of host memory for tensor %s", ti->name);
    if (to_device)
        cu::tensor_layout(tmp, host, ti, 1);
    cudaError_t e = cudaMemcpyAsync(to_device ? (void *)p : (void *)tmp, to_device ? (void *)tmp : (void *)p, bytes,
                                    to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, m->cx.stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(m->cx.stream); /* after queued work; tmp is pageable and freed next */
    if (e == cudaSuccess && !to_device)
        cu::tensor_layout(host, tmp, ti, 0);
    free(tmp);
    if (e != cudaSuccess)
        return cu::fail_cuda(&m->cx, e, to_device ? "tensor_write" : "tensor_read", __FILE__, __LINE__);
    if (to_device && m->params16 && part == DFEW_PART_VALUE && ti->kind == DFEW_TENSOR_PARAM)
        TRY(cu::cast_f32_to_bf16(m->params16 + (p - m->params), p, ti->numel, &m->cx));
    return 0;
}

static int cuda_tensor_read(const struct dfew_train_model *mm, int64_t i, int part, float *dst)
{
    return tensor_io(const_cast<model *>(CM(mm)), i, part, dst, 0);
}

static int cuda_tensor_write(struct dfew_train_model *mm, int64_t i, int part, const float *src)
{
    return tensor_io(M(mm), i, part, const_cast<float *>(src), 1);
}

/* ------------------------------------------------------------ checkpoints (the CPU backend's format) */

static int cuda_save(struct dfew_train_model *mm, const char *path, const struct dfew_train_progress *p)
{
    model *m = M(mm);
    TRY(cu::model_download(m, 1));
    m->plan->rng = m->rng;
    m->plan->sgd_steps = m->sgd_steps;
    m->plan->cfg.lr = m->lr;
    int rc = dfew_train_cpu_backend()->save(m->plan, path, p);
    if (rc)
        snprintf(m->cx.err, sizeof m->cx.err, "%s", m->plan->err);
    return rc;
}

static int cuda_load(struct dfew_train_model *mm, const char *path, struct dfew_train_progress *p)
{
    model *m = M(mm);
    TRY(cu::model_download(m, 1)); /* the shadow mirrors the device, so a refused file changes nothing */
    int rc = dfew_train_cpu_backend()->load(m->plan, path, p);
    if (rc) {
        snprintf(m->cx.err, sizeof m->cx.err, "%s", m->plan->err);
        return rc;
    }
    TRY(cu::model_upload(m, 1));
    m->rng = m->plan->rng;
    m->sgd_steps = m->plan->sgd_steps;
    m->lr = m->plan->cfg.lr;
    m->cfg.lr = m->lr;
    return 0;
}

static const struct dfew_train_backend cuda_backend = {
    DFEW_TRAIN_API_VERSION,
    (uint32_t)sizeof(struct dfew_train_backend),
    "cuda",
    cuda_probe,
    cuda_create,
    cuda_destroy,
    cuda_describe,
    cuda_last_error,
    cuda_train_step,
    cuda_forward_backward,
    cuda_sgd_update,
    cuda_set_lr,
    cuda_evaluate,
    cuda_save,
    cuda_load,
    cuda_tensor_info,
    cuda_tensor_read,
    cuda_tensor_write,
};

extern "C" const struct dfew_train_backend *dfew_train_cuda_backend(void)
{
    return &cuda_backend;
}
