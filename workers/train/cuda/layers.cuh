/* layers.cuh: the CUDA backend's layers, forward/backward pairs with the same
 * names and argument order as the CPU reference (workers/train/cpu/layers.h),
 * in namespace cu, on device pointers. Not a model (model.cu calls these in
 * order) and not the feature losses' maths (see cpu/losses.c for equations).
 *
 * Differences from the CPU signatures, all of one kind:
 * - every function takes the execution context last (cu::ctx: stream,
 *   cuDNN / cuBLAS handles, workspace) and returns 0 or a negative errno code
 *   with the reason in cx->err; work is queued on cx->stream, nothing waits;
 * - where the CPU function returns a value (a loss) it is written to a device
 *   pointer given first; the CPU's int *correct / int *active outputs are
 *   device pointers too;
 * - activations are CHANNELS-LAST on the device: N x T x H x W x C ("NDHWC",
 *   PyTorch's channels_last_3d), conv weights OC x kT x kH x kW x C (cuDNN's
 *   NHWC filter layout). This is what the tensor cores of cuDNN's NHWC
 *   kernels want, and the uint8 clips arrive as N x T x H x W x 3 already. The
 *   backend converts conv weights to and from PyTorch's layout in
 *   tensor_read / tensor_write, so checkpoints and reference files are shared
 *   with the CPU backend unchanged;
 * - T, the activation type, is float or bf16 (the bf16 mode); batchnorm
 *   parameters and statistics, biases, linear layers, losses and all
 *   parameter gradients are fp32 in every mode.
 *
 * The *_act_* and bias_act functions are fusions the model uses (batchnorm +
 * residual + ReLU in one pass, ReLU masks recomputed instead of read); each
 * equals a composition of the CPU layers, which the GPU tests check. */
#ifndef DFEW_TRAIN_CUDA_LAYERS_CUH
#define DFEW_TRAIN_CUDA_LAYERS_CUH

#include "common.cuh"

extern "C" {
#include "../cpu/layers.h" /* struct conv3d_shape, conv3d_shape_init */
}

namespace cu {

/* ---- conv3d (cuDNN, algorithms chosen once per shape, precision and batch size)
 * out  N x TO x HO x WO x OC, inp N x T x H x W x C,
 * weight OC x kT x kH x kW x C (T), bias OC (fp32) or NULL. */
template <typename T>
int conv3d_forward(T *out, const T *inp, const T *weight, const float *bias, const conv3d_shape *s, ctx *cx);
/* dinp N x T x H x W x C (or NULL), dweight OC x kT x kH x kW x C (fp32,
 * overwritten), dbias OC (fp32) or NULL, dout as out. accumulate = 1 adds the
 * input gradient to dinp instead of overwriting it (residual sums). */
template <typename T>
int conv3d_backward(T *dinp, float *dweight, float *dbias, const T *dout, const T *inp, const T *weight,
                    const conv3d_shape *s, ctx *cx, int accumulate = 0);

/* ---- batchnorm3d over N and S per channel; inp, out N x S x C */
template <typename T>
int batchnorm3d_forward_train(T *out, float *save_mean, float *save_rstd, float *running_mean, float *running_var,
                              const T *inp, const float *gamma, const float *beta, int n, int c, int64_t s,
                              float momentum, float eps, ctx *cx);
template <typename T>
int batchnorm3d_forward_eval(T *out, const T *inp, const float *gamma, const float *beta, const float *running_mean,
                             const float *running_var, int n, int c, int64_t s, float eps, ctx *cx);
template <typename T>
int batchnorm3d_backward(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp, const float *gamma,
                         const float *save_mean, const float *save_rstd, int n, int c, int64_t s, ctx *cx);

/* Fused: out = relu?(bn(inp) + res) (res N x S x C or NULL). */
template <typename T>
int batchnorm3d_act_forward_train(T *out, float *save_mean, float *save_rstd, float *running_mean,
                                  float *running_var, const T *inp, const float *gamma, const float *beta,
                                  const T *res, int relu, int n, int c, int64_t s, float momentum, float eps,
                                  ctx *cx);
template <typename T>
int batchnorm3d_act_forward_eval(T *out, const T *inp, const float *gamma, const float *beta,
                                 const float *running_mean, const float *running_var, const T *res, int relu, int n,
                                 int c, int64_t s, float eps, ctx *cx);
/* Backward of relu(bn(inp)) when relu (the mask is recomputed from inp and the
 * saved statistics, so the output need not be read), of bn(inp) otherwise. */
template <typename T>
int batchnorm3d_act_backward(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp, const float *gamma,
                             const float *beta, const float *save_mean, const float *save_rstd, int relu, int n,
                             int c, int64_t s, ctx *cx);

/* ---- relu (elementwise, any layout); out may equal inp, dinp may equal dout */
template <typename T> int relu_forward(T *out, const T *inp, int64_t count, ctx *cx);
template <typename T> int relu_backward(T *dinp, const T *dout, const T *out, int64_t count, ctx *cx);

/* ---- max pooling (s->oc == s->c), out and argmax N x TO x HO x WO x C;
 * argmax = index of the winner within its input plane T*H*W, as on the CPU. */
template <typename T> int maxpool3d_forward(T *out, int32_t *argmax, const T *inp, const conv3d_shape *s, ctx *cx);
template <typename T>
int maxpool3d_backward(T *dinp, const T *dout, const int32_t *argmax, const conv3d_shape *s, ctx *cx);

/* ---- global average pool: out N x C (fp32) = mean over S of inp N x S x C */
template <typename T> int avgpool_global_forward(float *out, const T *inp, int n, int c, int64_t s, ctx *cx);
template <typename T> int avgpool_global_backward(T *dinp, const float *dout, int n, int c, int64_t s, ctx *cx);

/* ---- linear (cuBLAS, fp32): out N x OC = inp N x C . weight^T + bias */
int linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n, int c, int oc,
                   ctx *cx);
int linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int n, int c, int oc, ctx *cx);

/* ---- dropout: the CPU's masks exactly (splitmix64 draw i from *rng + i + 1
 * steps; *rng, a HOST value, advances by count as on the CPU) */
int dropout_forward(float *out, uint8_t *mask, const float *inp, int64_t count, float p, uint64_t *rng, ctx *cx);
int dropout_backward(float *dinp, const float *dout, const uint8_t *mask, int64_t count, float p, ctx *cx);

/* ---- softmax cross entropy: *loss (device) = mean loss, probs N x K;
 * labels NULL = probabilities only; correct (device, may be NULL) */
int softmax_crossentropy_forward(float *loss, float *probs, const float *logits, const int32_t *labels, int n, int k,
                                 int *correct, ctx *cx);
int softmax_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, int n, int k,
                                  float scale, ctx *cx);

/* ---- feature losses (losses.cu); loss and active are device pointers */
int ecstfl_forward(float *loss, const float *feat, const int32_t *labels, int n, int d, int *active, ctx *cx);
int ecstfl_backward_add(float *dfeat, const float *feat, const int32_t *labels, int n, int d, float scale, ctx *cx);
int ecstfl_l1_forward(float *loss, const float *feat, const int32_t *labels, int n, int d, int *active, ctx *cx);
int ecstfl_l1_backward_add(float *dfeat, const float *feat, const int32_t *labels, int n, int d, float scale,
                           ctx *cx);
int center_loss_forward(float *loss, const float *feat, const float *centers, const int32_t *labels, int n, int d,
                        ctx *cx);
int center_loss_backward_add(float *dfeat, const float *feat, const float *centers, const int32_t *labels, int n,
                             int d, float scale, ctx *cx);
int center_update(float *centers, const float *feat, const int32_t *labels, int n, int d, int k, float alpha,
                  ctx *cx);

/* ---- SGD (PyTorch semantics, the CPU's arithmetic without fused
 * multiply-adds); w16 (may be NULL) receives bf16(w) for the bf16 mode */
int sgd_update(float *w, float *v, const float *grad, int64_t count, float lr, float momentum, float wd, int first,
               ctx *cx, bf16 *w16 = NULL);

/* ---- glue the model needs */
/* out N x S x 3 = (u / 255 - mean[c]) / std[c] from uint8 N x S x 3 */
template <typename T>
int input_from_u8(T *out, const uint8_t *u, int64_t count, const float mean[3], const float stdv[3], ctx *cx);
/* out N x S x 3 from float N x 3 x S (the reference tests' input) */
template <typename T> int input_from_f32_ncs(T *out, const float *x, int n, int64_t s, ctx *cx);
/* y[r][c] = relu?(y[r][c] + bias[c]) over rows x c (bias may be NULL) */
template <typename T> int bias_act_forward(T *y, const float *bias, int64_t rows, int c, int relu, ctx *cx);
/* out[c] = sum over rows of x[r][c] (fp32, overwritten) */
template <typename T> int channel_sum(float *out, const T *x, int64_t rows, int c, ctx *cx);
template <typename T> int add_inplace(T *y, const T *x, int64_t count, ctx *cx);
/* channels-last N x S x C <-> channels-first fp32 N x C x S (C3D's flatten) */
template <typename T> int nsc_to_ncs_f32(float *dst, const T *src, int n, int c, int64_t s, ctx *cx);
template <typename T> int ncs_f32_to_nsc(T *dst, const float *src, int n, int c, int64_t s, ctx *cx);
int cast_f32_to_bf16(bf16 *dst, const float *src, int64_t count, ctx *cx);
int cast_bf16_to_f32(float *dst, const bf16 *src, int64_t count, ctx *cx);

/* Conv algorithm cache statistics (for the benchmark's log) */
int conv_cache_size(void);

} // namespace cu

#endif
