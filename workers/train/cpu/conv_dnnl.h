/* conv_dnnl.h: conv3d through oneDNN (Debian libdnnl), the fast path behind
 * conv3d_forward / conv3d_backward of layers.h when a workspace's impl is
 * CONV3D_DNNL, and the activation layout oneDNN wants on this CPU. Internal
 * to the CPU backend: layers.c calls it and runs the reference (vol2col +
 * sgemm) when it returns an error; model.c asks it for the layout. Built as
 * stubs that return -ENOTSUP when meson found no oneDNN. */
#ifndef DFEW_TRAIN_CPU_CONV_DNNL_H
#define DFEW_TRAIN_CPU_CONV_DNNL_H

#include <stddef.h>

#include "layers.h"

/* 1 when this build has oneDNN with the OpenMP runtime (the one pool the
 * backend uses); else 0 and why in why (may be NULL). */
int conv3d_dnnl_available(char *why, size_t why_len);

/* "oneDNN 2.6.3" (the library loaded), or "no oneDNN". */
void conv3d_dnnl_version(char *buf, size_t len);

/* Creates (once per shape, batch size and bias) the forward, backward-data
 * and backward-weights primitives of s and sets *floats to the staging
 * memory they need in ws->buf (reordered tensors and oneDNN's scratchpad).
 * 0, or a negative errno code with the reason in why. */
int conv3d_dnnl_plan(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, size_t *floats, char *why,
                     size_t why_len);

/* The layers.h functions through oneDNN; 0, or negative when oneDNN could
 * not run this shape (nothing usable was written; the caller runs the
 * reference instead). */
int conv3d_dnnl_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const struct conv3d_shape *s, struct conv3d_work *ws);
int conv3d_dnnl_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, const struct conv3d_shape *s, struct conv3d_work *ws);

/* The implementations oneDNN chose for s (planned first), e.g. "fwd
 * jit:avx2, bwd_w jit:avx2 (padded input: t), bwd_d x64:gemm:jit (per
 * sample)", into buf; 0, or negative when s has no primitives. */
int conv3d_dnnl_describe(struct conv3d_work *ws, const struct conv3d_shape *s, int bias, char *buf, size_t len);

/* The activation layout for a model of these convolutions (count shapes at
 * the batch size it runs), from what oneDNN dispatches on this CPU (under
 * ONEDNN_MAX_CPU_ISA): LAYOUT_NDHWC when every forward conv runs on a
 * brgemm kernel on channels-last activations; else LAYOUT_BLOCKED with
 * *block = B when, with their formats left free, every conv's output is
 * picked nCdhw{B}c; else LAYOUT_NDHWC (what every conv reads). The reason
 * in why ("auto: ..."). Deterministic for a CPU: nothing is timed. 0, or
 * -ENOTSUP without oneDNN or when it has no convolution for a shape. */
int conv3d_dnnl_pick_layout(const struct conv3d_shape *s, int count, int *layout, int *block, char *why,
                            size_t why_len);

/* The instruction set oneDNN dispatches to ("avx2", "avx512_core", ...:
 * this CPU's, capped by ONEDNN_MAX_CPU_ISA), or "none" without oneDNN. */
void conv3d_dnnl_isa(char *buf, size_t len);

/* Frees the primitive cache of ws (not ws->buf). */
void conv3d_dnnl_release(struct conv3d_work *ws);

#endif
