/* conv_graph.cuh: one direction of a conv3d as one execution plan of cuDNN's
 * graph (backend) API, chosen by timing the engines cuDNN's heuristics and
 * fallback list offer for the shape; the alternative to the legacy
 * cudnnFind* algorithms in layers.cu, selected with DFEW_CUDA_CONV_API=graph.
 * Tensors are channels-last (N x T x H x W x C, weights OC x kT x kH x kW x
 * C), as everywhere in the CUDA backend, and 16-byte aligned. */
#ifndef DFEW_TRAIN_CUDA_CONV_GRAPH_CUH
#define DFEW_TRAIN_CUDA_CONV_GRAPH_CUH

#include "common.cuh"

namespace cu {

/* the three directions of a convolution (also the legacy path's indices) */
enum { DIR_FWD = 0, DIR_BWD_DATA = 1, DIR_BWD_FILTER = 2 };

/* What a plan is for: the shape, the element type, whether tensor cores may
 * run it (tf32, bf16) and, for backward-data, beta (1 adds the gradient to
 * what the output holds). */
struct conv_graph_desc {
    int n, c, t, h, w, oc, kt, kh, kw, st, sh, sw, pt, ph, pw;
    cudnnDataType_t dtype;
    int tensor_ops;
    int fp32_transforms; /* fp32 only: PyTorch's engine set with TF32 off (FFT, Winograd, reduced-precision
                          * reductions allowed; DFEW_CUDA_FP32_CONV=fast) */
    int dir;
    float beta;
    int untimed; /* take the first usable engine in cuDNN's heuristic order (DFEW_CUDA_CONV_FIND=0) */
};

struct conv_graph;

/* Describes d's tensors, convolution and operation and has cuDNN finalize
 * them: what conv_graph_make does first, and all of it that needs no device
 * (tests run it on machines without a GPU). 0, or -EINVAL with what cuDNN
 * refused in err. */
int conv_graph_check(const conv_graph_desc *d, char *err, size_t err_len);

/* Does the precision of d allow an engine with these numerical notes?
 * Never one that down-converts its inputs; in fp32 never tensor cores (TF32)
 * and, unless d->fp32_transforms, no FFT, Winograd or reduced-precision
 * reduction either (the accurate default, for the parity tests); tf32 and
 * bf16 allow the rest. d->fp32_transforms is the filter PyTorch applies to
 * cuDNN's engines in fp32 with TF32 off. */
int conv_graph_notes_allowed(const conv_graph_desc *d, const cudnnBackendNumericalNote_t *notes, int count);

/* Builds the operation graph of d, times every engine configuration that
 * finalizes, fits in ws_bytes and whose numerical notes the precision
 * allows, on a (x / w), b (w / dy) and the scratch output out (never the
 * caller's real output), with ws as workspace, and keeps the fastest in *g
 * (d->untimed: the first such configuration, not run).
 * *g = NULL (and 0 returned) when no engine qualifies: the caller uses the
 * legacy path. Negative with cx->err on errors of CUDA itself. */
int conv_graph_make(ctx *cx, const conv_graph_desc *d, const void *a, const void *b, void *out, void *ws,
                    size_t ws_bytes, conv_graph **g);
/* Runs the plan on cx->stream with cx->ws (at least conv_graph_workspace
 * bytes): forward a = x, b = w, out = y; backward-data a = w, b = dy, out =
 * dx; backward-filter a = x, b = dy, out = dw. */
int conv_graph_run(ctx *cx, const conv_graph *g, const void *a, const void *b, void *out);
size_t conv_graph_workspace(const conv_graph *g);
void conv_graph_free(conv_graph *g);

} // namespace cu

#endif
