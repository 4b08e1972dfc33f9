/* layers.h: the CPU backend's layers as forward/backward pairs (llm.c style),
 * plain float arrays with their shapes in the comments. The CUDA backend
 * (workers/train/cuda/) implements the same functions under the same names
 * with the same argument order, on device pointers. Not a model: the models
 * (model.c) own the memory and call these in order.
 *
 * Layout: activations N x C x T x H x W (S = T*H*W spatial positions), conv
 * weights Cout x Cin x kT x kH x kW, linear weights OC x C (PyTorch layouts).
 * A model running its convolutions through oneDNN keeps every activation
 * in the layout oneDNN's convolutions read on this CPU (conv_dnnl.c picks
 * it): channels-last N x T x H x W x C (LAYOUT_NDHWC: PyTorch's
 * channels_last_3d, the CUDA backend's layout) or channel-blocked
 * N x ceil(C/B) x T x H x W x B (LAYOUT_BLOCKED: oneDNN's nCdhw8c / nCdhw16c,
 * what its AVX2 and AVX-512 jit kernels want). The layers whose maths
 * depends on the layout have a blocked twin with the suffix _blk and one
 * more argument, blk, the channels per block: blk = C is channels-last, blk
 * = 1 channels-first; the channels-last twins (suffix _cl) are the _blk ones
 * with blk = C. In a blocked tensor the lanes of the last block past C
 * (padding, when B does not divide C) hold zeros: the _blk layers assume it
 * of their inputs and keep it in their outputs, as oneDNN does.
 *
 * Conventions:
 * - Backward functions OVERWRITE their outputs (dinp, dweight, dbias); a NULL
 *   dinp skips the input gradient (first layer). Residual sums and the aux
 *   loss gradient are added by the caller. The only "adding" functions say so
 *   in their name (*_backward_add).
 * - Every reduction has a fixed order, so a run is bitwise reproducible for
 *   a given thread count and CPU (OpenBLAS and oneDNN pick their kernels,
 *   and so the rounding of a product, by instruction set). Matrix
 *   products go through OpenBLAS (cblas_sgemm) running single-threaded inside
 *   one OpenMP pool (two pools spinning on the same two cores cost 10-30x
 *   under load); oneDNN, built with the OpenMP runtime, runs on the same
 *   pool. The reference conv3d gives each thread whole samples (one parallel
 *   region per call, few barriers), other products split the output's rows or
 *   columns. What the thread count changes, in rounding only: the order in
 *   which conv3d adds the per-thread weight-gradient sums (oneDNN: its
 *   blocking), and OpenBLAS's rounding of a split product (with its Haswell
 *   kernels, AVX2 CPUs', a block can round differently from the whole
 *   product, so even the forward pass changes; test_train_misc bounds the
 *   difference); our own reductions run one thread per output element in
 *   index order.
 */
#ifndef DFEW_TRAIN_LAYERS_H
#define DFEW_TRAIN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* A 3D window (conv or pool): input C x T x H x W -> output OC x TO x HO x WO. */
struct conv3d_shape {
    int n;            /* batch */
    int c, t, h, w;   /* input channels and size */
    int oc;           /* output channels (pools: = c) */
    int kt, kh, kw;   /* kernel */
    int st, sh, sw;   /* stride */
    int pt, ph, pw;   /* zero padding (pools: -inf padding) */
    int to, ho, wo;   /* output size, filled by conv3d_shape_init */
    int in_ncdhw;     /* 1: inp and dinp are channels-first whatever ws->layout (a model's 3-channel input
                         beside blocked activations: what oneDNN's first-layer kernels read); oneDNN only */
};
/* Fills to/ho/wo = (in + 2*pad - k) / stride + 1; returns 0, or -EINVAL when the
 * output would be empty. */
int conv3d_shape_init(struct conv3d_shape *s);

/* How conv3d_forward / conv3d_backward compute:
 * - CONV3D_REF: the reference in layers.c, tiled vol2col + OpenBLAS sgemm,
 *   readable and checked by finite differences;
 * - CONV3D_DNNL: oneDNN's convolution primitives (conv_dnnl.c), created once
 *   per shape and cached in the workspace; a shape oneDNN cannot run falls
 *   back to the reference. Only in builds with oneDNN.
 * The model takes its choice from the environment (conv3d_config_from_env). */
enum conv3d_impl { CONV3D_REF = 0, CONV3D_DNNL = 1 };
/* Activation layouts: channels-first N x C x S, channels-last N x S x C,
 * channel-blocked N x ceil(C/B) x S x B (B = conv3d_work.block). LAYOUT_AUTO
 * is only a request (conv3d_config_from_env): the model asks oneDNN
 * (conv3d_dnnl_pick_layout) and runs one of the others. */
enum act_layout { LAYOUT_AUTO = -1, LAYOUT_NCDHW = 0, LAYOUT_NDHWC = 1, LAYOUT_BLOCKED = 2 };

/* Channels per block of a tensor of c channels in layout / block: 1, c or
 * block; and its channels with the padding, which its size counts
 * (N x act_padded_c x S floats). */
static inline int act_block(int layout, int block, int c)
{
    return layout == LAYOUT_BLOCKED ? block : layout == LAYOUT_NDHWC ? c : 1;
}
static inline int act_padded_c(int layout, int block, int c)
{
    return layout == LAYOUT_BLOCKED ? (c + block - 1) / block * block : c;
}

/* Directions of a convolution, for the time counters of conv3d_work */
enum conv3d_dir { CONV3D_FWD = 0, CONV3D_BWD_DATA = 1, CONV3D_BWD_WEIGHTS = 2 };

/* The state of conv3d calls: the implementation, the activation layout,
 * scratch memory and oneDNN's primitives. Set threads, max_tile_floats, impl
 * and layout (zero: the reference, channels-first), then conv3d_work_plan
 * each shape; conv3d_work_release frees what the workspace holds.
 * Scratch memory: the reference uses per thread one column tile of the tiled
 * vol2col, (C*kT*kH*kW) x P_tile floats with P_tile whole output rows and the
 * tile at most max_tile_floats (at least one row), so a conv's memory is
 * bounded whatever the input size; plus, for threads - 1 threads, a
 * weight-gradient partial sum. It uses min(threads, OpenMP threads, batch)
 * threads, each taking whole samples. oneDNN uses buf for the tensors it
 * reorders into its own formats (weights; activations where a primitive
 * wants another layout than the workspace's) and for its scratchpad.
 * seconds[dir] adds up the wall time of the calls per direction (enum
 * conv3d_dir, reorders included; the reference's whole backward counts as
 * CONV3D_BWD_WEIGHTS); the caller may reset it. */
struct conv3d_work {
    float *buf;    /* owned; conv3d_work_plan (re)allocates it */
    size_t floats; /* of buf */
    size_t max_tile_floats;
    int threads;
    int impl;                 /* enum conv3d_impl; zero = the reference */
    int layout;               /* enum act_layout of inp / out; all but channels-first need CONV3D_DNNL */
    int block;                /* LAYOUT_BLOCKED: channels per block (4, 8 or 16) */
    struct conv3d_dnnl *dnnl; /* oneDNN primitive cache (conv_dnnl.c), NULL until used */
    double seconds[3];        /* per enum conv3d_dir */
};
/* Floats of buf that the reference conv3d_* need for s. */
size_t conv3d_work_floats(const struct conv3d_shape *s, size_t max_tile_floats, int threads);
/* Makes ws ready for s (bias: the conv has one): for CONV3D_DNNL creates the
 * primitives of s (once; later calls find them), and grows buf to what they
 * and the reference need (a channels-first oneDNN workspace falls back to the
 * reference for a shape oneDNN cannot run). conv3d_* plan the shapes they
 * meet themselves, so calling this first only moves the cost and the errors
 * to a time of the caller's choosing. 0, or negative with the reason in err
 * (may be NULL). */
int conv3d_work_plan(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, char *err, size_t err_len);
/* Frees buf and the primitives. */
void conv3d_work_release(struct conv3d_work *ws);
/* The model's choice: DFEW_TRAIN_CPU_CONV = "ref", "dnnl", or unset / empty =
 * dnnl when this build has oneDNN, else ref; DFEW_TRAIN_CPU_LAYOUT = "auto",
 * "ncdhw", "ndhwc", "nCdhw8c", "nCdhw16c" (all but ncdhw: dnnl only), or
 * unset / empty = auto with dnnl (LAYOUT_AUTO: the layout oneDNN picks on
 * this CPU), ncdhw with ref. Sets *impl, *layout and *block (the blocked
 * layouts' channels per block, else 0); 0, or -EINVAL with the reason in err. */
int conv3d_config_from_env(int *impl, int *layout, int *block, char *err, size_t err_len);
/* "NCDHW", "NDHWC", "nCdhw8c", ... for ws->layout / ws->block */
const char *conv3d_layout_name(const struct conv3d_work *ws);

/* out  N x OC x TO x HO x WO (ws->layout NDHWC: N x TO x HO x WO x OC,
 *      BLOCKED: N x OC/B x TO x HO x WO x B with OC padded to a multiple of B)
 * inp  N x C x T x H x W      (NDHWC: N x T x H x W x C, BLOCKED likewise)
 * weight OC x C x kT x kH x kW, bias OC or NULL (all layouts).
 * With another layout than channels-first and a shape oneDNN cannot run (plan
 * it to get the reason) the outputs are NaN: the reference reads
 * channels-first only. */
void conv3d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const struct conv3d_shape *s, struct conv3d_work *ws);
/* dinp N x C x T x H x W (or NULL), dweight OC x C x kT x kH x kW,
 * dbias OC (or NULL), dout N x OC x TO x HO x WO, inp and weight as forward. */
void conv3d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, const struct conv3d_shape *s, struct conv3d_work *ws);

/* Batch normalisation over N and S per channel (PyTorch BatchNorm3d).
 * Train: batch statistics, biased variance for normalising, unbiased variance
 * into the running estimate: running = (1 - momentum) * running + momentum * batch.
 * out, inp N x C x S; gamma, beta, running_mean, running_var C;
 * save_mean, save_rstd C (kept for backward; rstd = 1 / sqrt(var + eps)). */
void batchnorm3d_forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean,
                               float *running_var, const float *inp, const float *gamma, const float *beta,
                               int n, int c, int64_t s, float momentum, float eps);
/* Eval: running statistics. out may equal inp. */
void batchnorm3d_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var, int n, int c, int64_t s,
                              float eps);
/* dinp N x C x S (may equal dout), dgamma, dbeta C; inp the forward input. */
void batchnorm3d_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                          const float *gamma, const float *save_mean, const float *save_rstd, int n, int c,
                          int64_t s);

/* out = max(inp, 0), count elements; out may equal inp. */
void relu_forward(float *out, const float *inp, int64_t count);
/* dinp = dout where out > 0, else 0; out is the forward OUTPUT (so the input
 * need not be kept); dinp may equal dout. */
void relu_backward(float *dinp, const float *dout, const float *out, int64_t count);
/* The gradient through a sum of two branches, then a relu that produced out:
 * dinp = dinp + dadd where out > 0, else 0 (= the sum, then relu_backward). */
void add_relu_backward(float *dinp, const float *dadd, const float *out, int64_t count);

/* Channels-last twins: out, inp, dout, dinp N x S x C. Each is its _blk
 * twin (below) with blk = c. */
void batchnorm3d_forward_train_cl(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                  float *running_var, const float *inp, const float *gamma, const float *beta,
                                  int n, int c, int64_t s, float momentum, float eps);
void batchnorm3d_forward_eval_cl(float *out, const float *inp, const float *gamma, const float *beta,
                                 const float *running_mean, const float *running_var, int n, int c, int64_t s,
                                 float eps);
void batchnorm3d_backward_cl(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                             const float *gamma, const float *save_mean, const float *save_rstd, int n, int c,
                             int64_t s);
/* Fused channels-last batchnorm + ReLU (the conv units that have both): out =
 * relu(batchnorm(inp)) in one pass over the data; the backward takes dout,
 * the gradient of out, and beta: it recomputes the ReLU's mask from inp with
 * the forward's arithmetic (out > 0 exactly where inp * gamma * rstd + beta -
 * mean * gamma * rstd > 0), so out need not be read. Each equals the
 * batchnorm3d_*_cl call and relu_forward / relu_backward around it. */
void batchnorm3d_relu_forward_train_cl(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                       float *running_var, const float *inp, const float *gamma, const float *beta,
                                       int n, int c, int64_t s, float momentum, float eps);
void batchnorm3d_relu_forward_eval_cl(float *out, const float *inp, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var, int n, int c, int64_t s,
                                      float eps);
void batchnorm3d_relu_backward_cl(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                  const float *gamma, const float *beta, const float *save_mean,
                                  const float *save_rstd, int n, int c, int64_t s);

/* Channel-blocked twins of the batchnorm layers: out, inp, dout, dinp
 * N x ceil(c/blk) x S x blk (padding lanes zero); the statistics and
 * parameters c. With blk = 1 the same maths as the channels-first layers,
 * with blk = c the channels-last ones (bitwise: the sums go by the same
 * blocks of rows in the same order). */
void batchnorm3d_forward_train_blk(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                   float *running_var, const float *inp, const float *gamma, const float *beta,
                                   int n, int c, int64_t s, float momentum, float eps, int blk);
void batchnorm3d_forward_eval_blk(float *out, const float *inp, const float *gamma, const float *beta,
                                  const float *running_mean, const float *running_var, int n, int c, int64_t s,
                                  float eps, int blk);
void batchnorm3d_backward_blk(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                              const float *gamma, const float *save_mean, const float *save_rstd, int n, int c,
                              int64_t s, int blk);
void batchnorm3d_relu_forward_train_blk(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                        float *running_var, const float *inp, const float *gamma,
                                        const float *beta, int n, int c, int64_t s, float momentum, float eps,
                                        int blk);
void batchnorm3d_relu_forward_eval_blk(float *out, const float *inp, const float *gamma, const float *beta,
                                       const float *running_mean, const float *running_var, int n, int c,
                                       int64_t s, float eps, int blk);
void batchnorm3d_relu_backward_blk(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                   const float *gamma, const float *beta, const float *save_mean,
                                   const float *save_rstd, int n, int c, int64_t s, int blk);
/* A residual block's end, fused: out = relu(batchnorm(inp) + res), res
 * (the shortcut) in out's layout; out may equal res. Equals the batchnorm
 * call, then the sum and relu_forward. The backward of the relu and the sum
 * is add_relu_backward (its batchnorm's is batchnorm3d_backward_blk). */
void batchnorm3d_add_relu_forward_train_blk(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                            float *running_var, const float *inp, const float *res,
                                            const float *gamma, const float *beta, int n, int c, int64_t s,
                                            float momentum, float eps, int blk);
void batchnorm3d_add_relu_forward_eval_blk(float *out, const float *inp, const float *res, const float *gamma,
                                           const float *beta, const float *running_mean, const float *running_var,
                                           int n, int c, int64_t s, float eps, int blk);

/* Max pooling with -inf padding (PyTorch MaxPool3d); s->oc must equal s->c.
 * out N x C x TO x HO x WO; argmax same shape, the index of the winner within
 * its input plane T*H*W (first maximum in window order wins, as PyTorch). */
void maxpool3d_forward(float *out, int32_t *argmax, const float *inp, const struct conv3d_shape *s);
/* dinp N x C x T x H x W (overwritten), dout and argmax as forward. */
void maxpool3d_backward(float *dinp, const float *dout, const int32_t *argmax, const struct conv3d_shape *s);

/* Channels-last twins: out, argmax N x TO x HO x WO x C, inp, dinp N x T x H x W x C;
 * argmax as above (a position in the T*H*W plane of its channel). */
void maxpool3d_forward_cl(float *out, int32_t *argmax, const float *inp, const struct conv3d_shape *s);
void maxpool3d_backward_cl(float *dinp, const float *dout, const int32_t *argmax, const struct conv3d_shape *s);
/* Channel-blocked twins: out, argmax N x ceil(C/blk) x TO x HO x WO x blk,
 * inp, dinp N x ceil(C/blk) x T x H x W x blk; the same winners as the
 * channels-first layer (bitwise, whatever blk). */
void maxpool3d_forward_blk(float *out, int32_t *argmax, const float *inp, const struct conv3d_shape *s, int blk);
void maxpool3d_backward_blk(float *dinp, const float *dout, const int32_t *argmax, const struct conv3d_shape *s,
                            int blk);

/* Global average pool: out N x C = mean over S of inp N x C x S. */
void avgpool_global_forward(float *out, const float *inp, int n, int c, int64_t s);
/* dinp N x C x S = dout N x C / S. */
void avgpool_global_backward(float *dinp, const float *dout, int n, int c, int64_t s);
/* Channels-last twins: inp, dinp N x S x C. */
void avgpool_global_forward_cl(float *out, const float *inp, int n, int c, int64_t s);
void avgpool_global_backward_cl(float *dinp, const float *dout, int n, int c, int64_t s);
/* Channel-blocked twins: inp, dinp N x ceil(C/blk) x S x blk; out, dout N x C
 * (the forward bitwise the channels-first one's, whatever blk). */
void avgpool_global_forward_blk(float *out, const float *inp, int n, int c, int64_t s, int blk);
void avgpool_global_backward_blk(float *dinp, const float *dout, int n, int c, int64_t s, int blk);

/* Layout changes: dst N x S x C from src N x C x S, and back; dst N x
 * ceil(C/blk) x S x blk (padding zeroed) from src N x C x S, and back. */
void layout_ncs_to_nsc(float *dst, const float *src, int n, int c, int64_t s);
void layout_nsc_to_ncs(float *dst, const float *src, int n, int c, int64_t s);
void layout_ncs_to_blk(float *dst, const float *src, int n, int c, int64_t s, int blk);
void layout_blk_to_ncs(float *dst, const float *src, int n, int c, int64_t s, int blk);

/* out N x OC = inp N x C . weight^T (OC x C) + bias OC (bias may be NULL). */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n, int c, int oc);
/* dinp N x C (or NULL), dweight OC x C, dbias OC (or NULL), dout N x OC. */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int n, int c, int oc);

/* Inverted dropout (PyTorch): keep with probability 1 - p, scale kept values by
 * 1 / (1 - p). mask count bytes (1 = kept) drawn from *rng (advanced by the
 * call; one draw per element in index order). out may equal inp. */
void dropout_forward(float *out, uint8_t *mask, const float *inp, int64_t count, float p, uint64_t *rng);
void dropout_backward(float *dinp, const float *dout, const uint8_t *mask, int64_t count, float p);

/* Softmax cross entropy, mean over the batch.
 * probs N x K (written), logits N x K, labels N in 0..K-1; returns the mean
 * loss; *correct (may be NULL) = count of argmax == label. */
float softmax_crossentropy_forward(float *probs, const float *logits, const int32_t *labels, int n, int k,
                                   int *correct);
/* dlogits N x K = scale * (probs - onehot(labels)) / N (scale = dL/dloss). */
void softmax_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, int n, int k,
                                   float scale);

/* EC-STFL (Jiang et al. 2020, eq. 9) on features N x D, L2 distances.
 * Returns the loss and sets *active = 0 (loss 0, nothing to back-propagate)
 * when the batch holds one class only. See losses.c for the equation. */
float ecstfl_forward(const float *feat, const int32_t *labels, int n, int d, int *active);
/* dfeat N x D += scale * dL/dfeat (adds; skip when not active). */
void ecstfl_backward_add(float *dfeat, const float *feat, const int32_t *labels, int n, int d, float scale);

/* The variant of the authors' later public code: L1 distances, per sample
 * attract (mean same-label distance) x repel (mean inverse different-label
 * distance), averaged. See losses.c. */
float ecstfl_l1_forward(const float *feat, const int32_t *labels, int n, int d, int *active);
void ecstfl_l1_backward_add(float *dfeat, const float *feat, const int32_t *labels, int n, int d, float scale);

/* Center loss (Wen et al. 2016): L = 1/(2N) sum_i ||x_i - c_{y_i}||^2.
 * feat N x D, centers K x D. */
float center_loss_forward(const float *feat, const float *centers, const int32_t *labels, int n, int d);
/* dfeat N x D += scale * (x_i - c_{y_i}) / N (adds). */
void center_loss_backward_add(float *dfeat, const float *feat, const float *centers, const int32_t *labels,
                              int n, int d, float scale);
/* Centre update of Wen et al. eq. (4): for each class j in the batch,
 * c_j -= alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j). centers K x D. */
void center_update(float *centers, const float *feat, const int32_t *labels, int n, int d, int k, float alpha);

/* SGD with momentum and weight decay over count parameters (PyTorch
 * semantics): g = grad + wd * w; v = first ? g : momentum * v + g;
 * w -= lr * v. */
void sgd_update(float *w, float *v, const float *grad, int64_t count, float lr, float momentum, float wd,
                int first);

#endif
