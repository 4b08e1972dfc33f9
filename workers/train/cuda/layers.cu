/* layers.cu: the CUDA backend's layers declared in layers.cuh: conv3d through
 * cuDNN (legacy Nd API, NDHWC, algorithms found once per shape and cached),
 * linear layers through cuBLAS, and own kernels for batchnorm (train / eval /
 * backward, fused with the residual sum and ReLU), ReLU, pooling, dropout,
 * softmax cross entropy, SGD and the model's glue (input normalisation,
 * layout changes, casts). Also the execution context and error reporting of
 * common.cuh. The feature losses are in losses.cu.
 *
 * Reductions (batchnorm statistics and gradients, bias gradients, pools,
 * softmax) accumulate in double and combine per-block partial sums in a fixed
 * order, so a result does not depend on timing (cuDNN's own algorithms may
 * still use atomics). */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "../dfew_train.h"
#include "conv_graph.cuh"
#include "layers.cuh"

namespace cu {

/* ================================================================ context and errors */

int fail(ctx *cx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cx->err, sizeof cx->err, fmt, ap);
    va_end(ap);
    return code < 0 ? code : -EIO;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int fail_cuda(ctx *cx, cudaError_t e, const char *what, const char *file, int line)
{
    int code = -EIO;
    const char *hint = "; a kernel that failed leaves the device unusable for this process: recreate the model, and "
                       "check the GPU with nvidia-smi";
    if (e == cudaErrorMemoryAllocation) {
        code = -ENOMEM;
        hint = "; lower max_batch, use the bf16 precision, or free the GPU of other processes";
    } else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
        code = -ENODEV;
        hint = "; install or update the NVIDIA driver, or use the CPU backend";
    } else if (e == cudaErrorInvalidValue || e == cudaErrorInvalidConfiguration) {
        code = -EINVAL;
        hint = "; this is a bug in the CUDA backend: report it with the model configuration";
    }
    cudaGetLastError(); /* clears the error if it is not sticky */
    return fail(cx, code, "CUDA error %s (%s) in %s at %s:%d%s", cudaGetErrorName(e), cudaGetErrorString(e), what,
                base_name(file), line, hint);
}

int fail_dnn(ctx *cx, cudnnStatus_t s, const char *what, const char *file, int line)
{
    char detail[160] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    int code = s == CUDNN_STATUS_ALLOC_FAILED         ? -ENOMEM
               : s == CUDNN_STATUS_NOT_SUPPORTED       ? -ENOTSUP
               : s == CUDNN_STATUS_BAD_PARAM           ? -EINVAL
                                                       : -EIO;
    return fail(cx, code, "cuDNN error %s in %s at %s:%d (%s); check that cuDNN 9 matches the CUDA driver (LD_LIBRARY_PATH)",
                cudnnGetErrorString(s), what, base_name(file), line, detail[0] ? detail : "no detail");
}

int fail_blas(ctx *cx, cublasStatus_t s, const char *what, const char *file, int line)
{
    int code = s == CUBLAS_STATUS_ALLOC_FAILED ? -ENOMEM : s == CUBLAS_STATUS_INVALID_VALUE ? -EINVAL : -EIO;
    return fail(cx, code, "cuBLAS error %s in %s at %s:%d; check that cuBLAS matches the CUDA driver (LD_LIBRARY_PATH)",
                cublasGetStatusString(s), what, base_name(file), line);
}

int ctx_init(ctx *cx, int device, int precision)
{
    memset(cx, 0, sizeof *cx);
    cx->device = device;
    cx->precision = precision;
    CU_TRY(cx, cudaSetDevice(device));
    CU_TRY(cx, cudaDeviceGetAttribute(&cx->sm_count, cudaDevAttrMultiProcessorCount, device));
    CU_TRY(cx, cudaStreamCreateWithFlags(&cx->stream, cudaStreamNonBlocking));
    DNN_TRY(cx, cudnnCreate(&cx->dnn));
    DNN_TRY(cx, cudnnSetStream(cx->dnn, cx->stream));
    BLAS_TRY(cx, cublasCreate(&cx->blas));
    BLAS_TRY(cx, cublasSetStream(cx->blas, cx->stream));
    BLAS_TRY(cx, cublasSetMathMode(cx->blas, precision == DFEW_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                 : CUBLAS_DEFAULT_MATH));
    const char *f = getenv("DFEW_CUDA_CONV_FIND");
    cx->find = !(f && !strcmp(f, "0"));
    /* fp32 convolutions: "accurate" takes FMA kernels without FFT/Winograd
     * transforms first; "fast" lets the fastest FMA kernel win, transforms
     * included (PyTorch's fp32 with allow_tf32 off does that). */
    const char *fc = getenv("DFEW_CUDA_FP32_CONV");
    cx->fp32_transforms = fc && !strcmp(fc, "fast");
    /* convolutions: cuDNN's legacy API (cudnnFind*, the default) or its graph
     * API (engine heuristics and fallback list, timed; conv_graph.cu) */
    const char *api = getenv("DFEW_CUDA_CONV_API");
    if (api && *api && strcmp(api, "legacy") && strcmp(api, "graph"))
        return fail(cx, -EINVAL, "DFEW_CUDA_CONV_API=%s: use legacy or graph", api);
    cx->graph_api = api && !strcmp(api, "graph");
    const char *wl = getenv("DFEW_CUDA_WORKSPACE_MB");
    cx->ws_limit = (size_t)(wl && atol(wl) >= 0 ? atol(wl) : 4096) << 20;
    return 0;
}

void ctx_destroy(ctx *cx)
{
    if (cx->stream)
        cudaStreamSynchronize(cx->stream);
    for (int i = 0; i < SCR_KINDS; i++)
        if (cx->scratch[i])
            cudaFree(cx->scratch[i]);
    if (cx->ws)
        cudaFree(cx->ws);
    if (cx->blas)
        cublasDestroy(cx->blas);
    if (cx->dnn)
        cudnnDestroy(cx->dnn);
    if (cx->stream)
        cudaStreamDestroy(cx->stream);
    memset(cx->scratch, 0, sizeof cx->scratch);
    cx->ws = NULL;
    cx->blas = NULL;
    cx->dnn = NULL;
    cx->stream = NULL;
}

static int grow(ctx *cx, void **buf, size_t *have, size_t bytes)
{
    if (*have >= bytes && (*buf || bytes == 0))
        return 0;
    bytes = (bytes + 4095) & ~(size_t)4095;
    CU_TRY(cx, cudaStreamSynchronize(cx->stream)); /* queued work may still use the old buffer */
    if (*buf)
        CU_TRY(cx, cudaFree(*buf));
    *buf = NULL;
    *have = 0;
    CU_TRY(cx, cudaMalloc(buf, bytes));
    *have = bytes;
    return 0;
}

int ctx_scratch(ctx *cx, int kind, size_t bytes, void **out)
{
    TRY(grow(cx, &cx->scratch[kind], &cx->scratch_bytes[kind], bytes ? bytes : 1));
    *out = cx->scratch[kind];
    return 0;
}

int ctx_workspace(ctx *cx, size_t bytes)
{
    if (!bytes)
        return 0;
    return grow(cx, &cx->ws, &cx->ws_bytes, bytes);
}

/* ================================================================ small helpers */

template <typename T> static inline cudnnDataType_t dnn_type();
template <> inline cudnnDataType_t dnn_type<float>() { return CUDNN_DATA_FLOAT; }
template <> inline cudnnDataType_t dnn_type<bf16>() { return CUDNN_DATA_BFLOAT16; }

static inline int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* The vector width of an elementwise pass over rows of c channels: a 16-byte
 * pack when c (or the element count) is a multiple and the arrays are aligned. */
template <typename T> static inline int vec_of(int64_t c, const void *a, const void *b = NULL, const void *d = NULL)
{
    const int V = 16 / (int)sizeof(T);
    if (c % V == 0 && aligned16(a) && (!b || aligned16(b)) && (!d || aligned16(d)))
        return V;
    return 1;
}

template <typename T, int V> __device__ __forceinline__ pack<T, V> ld(const T *p)
{
    return *reinterpret_cast<const pack<T, V> *>(p);
}
template <typename T, int V> __device__ __forceinline__ void st(T *p, const pack<T, V> &v)
{
    *reinterpret_cast<pack<T, V> *>(p) = v;
}


/* ================================================================ conv3d (cuDNN) */

struct conv_key {
    int n, c, t, h, w, oc, kt, kh, kw, st, sh, sw, pt, ph, pw;
    int dtype, tensor_ops;
};

struct conv_plan {
    conv_key key;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd[3]; /* per direction: each keeps its algorithm's math type */
    int have[3];
    int algo[3];
    size_t ws[3];
    int ncdhw; /* cuDNN runs this shape channels-first: the data are transposed around it */
    /* graph API plans (always channels-last) per direction, [3] backward-data
     * adding to its output; NULL after a try: that direction runs legacy */
    conv_graph *g[4];
    int gtried[4];
};

/* Process-wide: a plan depends on the shape, data type and math mode only, so
 * every model (and every test model) shares the algorithms found once. */
#define CONV_CACHE_MAX 512
static conv_plan *g_plans[CONV_CACHE_MAX];
static int g_nplans;
static pthread_mutex_t g_plan_lock = PTHREAD_MUTEX_INITIALIZER;

int conv_cache_size(void) { return g_nplans; }

static void plan_free(conv_plan *p)
{
    if (p->xd)
        cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd)
        cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd)
        cudnnDestroyFilterDescriptor(p->wd);
    for (int i = 0; i < 3; i++)
        if (p->cd[i])
            cudnnDestroyConvolutionDescriptor(p->cd[i]);
    for (int i = 0; i < 4; i++)
        conv_graph_free(p->g[i]);
    free(p);
}

static int tensor_desc(ctx *cx, cudnnTensorDescriptor_t d, cudnnDataType_t dt, int n, int c, int t, int h, int w,
                       int ncdhw)
{
    /* dims in cuDNN's N, C, D, H, W order; strides of channels-last (or channels-first) memory */
    int dims[5] = {n, c, t, h, w};
    int cl[5] = {c * t * h * w, 1, h * w * c, w * c, c}, cf[5] = {c * t * h * w, t * h * w, h * w, w, 1};
    DNN_TRY(cx, cudnnSetTensorNdDescriptor(d, dt, 5, dims, ncdhw ? cf : cl));
    return 0;
}

/* (Re)describes the plan's tensors in one layout and resets its algorithms. */
static int plan_layout(ctx *cx, conv_plan *p, int ncdhw)
{
    const conv_key *k = &p->key;
    cudnnDataType_t dt = (cudnnDataType_t)k->dtype;
    int to = (k->t + 2 * k->pt - k->kt) / k->st + 1, ho = (k->h + 2 * k->ph - k->kh) / k->sh + 1;
    int wo = (k->w + 2 * k->pw - k->kw) / k->sw + 1;
    TRY(tensor_desc(cx, p->xd, dt, k->n, k->c, k->t, k->h, k->w, ncdhw));
    TRY(tensor_desc(cx, p->yd, dt, k->n, k->oc, to, ho, wo, ncdhw));
    /* NHWC filter format: OC x kT x kH x kW x C in memory; NCHW: OC x C x kT x kH x kW */
    int fdims[5] = {k->oc, k->c, k->kt, k->kh, k->kw};
    DNN_TRY(cx, cudnnSetFilterNdDescriptor(p->wd, dt, ncdhw ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC, 5, fdims));
    for (int i = 0; i < 3; i++) {
        DNN_TRY(cx, cudnnSetConvolutionMathType(p->cd[i], k->tensor_ops ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
        p->have[i] = 0;
    }
    p->ncdhw = ncdhw;
    int od[5];
    DNN_TRY(cx, cudnnGetConvolutionNdForwardOutputDim(p->cd[0], p->xd, p->wd, 5, od));
    if (od[0] != k->n || od[1] != k->oc || od[2] != to || od[3] != ho || od[4] != wo)
        return fail(cx, -EINVAL,
                    "cuDNN computes a %dx%dx%dx%dx%d output for a conv that should give %dx%dx%dx%dx%d; this is a bug "
                    "in the CUDA backend",
                    od[0], od[1], od[2], od[3], od[4], k->n, k->oc, to, ho, wo);
    return 0;
}

static int plan_make(ctx *cx, const conv_key *k, conv_plan **out)
{
    conv_plan *p = (conv_plan *)calloc(1, sizeof *p);
    if (!p)
        return fail(cx, -ENOMEM, "out of host memory for a convolution plan");
    p->key = *k;
    int rc = 0;
    cudnnStatus_t st = cudnnCreateTensorDescriptor(&p->xd);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnCreateTensorDescriptor(&p->yd);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnCreateFilterDescriptor(&p->wd);
    int pad[3] = {k->pt, k->ph, k->pw}, stride[3] = {k->st, k->sh, k->sw}, dil[3] = {1, 1, 1};
    for (int i = 0; i < 3 && st == CUDNN_STATUS_SUCCESS; i++) {
        st = cudnnCreateConvolutionDescriptor(&p->cd[i]);
        if (st == CUDNN_STATUS_SUCCESS)
            st = cudnnSetConvolutionNdDescriptor(p->cd[i], 3, pad, stride, dil, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT);
    }
    if (st != CUDNN_STATUS_SUCCESS)
        rc = fail_dnn(cx, st, "convolution descriptors", __FILE__, __LINE__);
    if (!rc) {
        const char *f = getenv("DFEW_CUDA_CONV_NCDHW"); /* tests: every conv through the channels-first path */
        int first = f && !strcmp(f, "1");
        rc = plan_layout(cx, p, first);
        if (rc && !first) { /* descriptors refused channels-last: describe it channels-first */
            fprintf(stderr, "dfew cuda: %s; trying channels-first\n", cx->err);
            rc = plan_layout(cx, p, 1);
        }
    }
    if (rc) {
        plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int plan_get(ctx *cx, const conv3d_shape *s, cudnnDataType_t dt, conv_plan **out)
{
    conv_key k;
    memset(&k, 0, sizeof k);
    k.n = s->n, k.c = s->c, k.t = s->t, k.h = s->h, k.w = s->w, k.oc = s->oc;
    k.kt = s->kt, k.kh = s->kh, k.kw = s->kw, k.st = s->st, k.sh = s->sh, k.sw = s->sw;
    k.pt = s->pt, k.ph = s->ph, k.pw = s->pw;
    k.dtype = (int)dt;
    k.tensor_ops = cx->precision != DFEW_PRECISION_FP32;
    for (int i = 0; i < g_nplans; i++)
        if (!memcmp(&g_plans[i]->key, &k, sizeof k)) {
            *out = g_plans[i];
            return 0;
        }
    if (g_nplans >= CONV_CACHE_MAX)
        return fail(cx, -ENOSPC, "more than %d convolution shapes in one process; this is a bug", CONV_CACHE_MAX);
    TRY(plan_make(cx, &k, out));
    g_plans[g_nplans++] = *out;
    return 0;
}

/* Scratch for timing the algorithms: an output of out_bytes (so the real
 * outputs are never written, which matters when a gradient accumulates) and
 * as much workspace as allowed, halving the workspace while memory is short. */
static int find_buffers(ctx *cx, size_t out_bytes, void **buf, void **out, void **ws, size_t *ws_bytes)
{
    size_t freeb = 0, total = 0;
    CU_TRY(cx, cudaStreamSynchronize(cx->stream));
    CU_TRY(cx, cudaMemGetInfo(&freeb, &total));
    size_t lim = cx->ws_limit, ob = (out_bytes + 255) & ~(size_t)255;
    if (freeb > ob + (256u << 20) && lim > (freeb - ob - (256u << 20)) / 2)
        lim = (freeb - ob - (256u << 20)) / 2;
    for (;;) {
        if (cudaMalloc(buf, ob + lim) == cudaSuccess)
            break;
        cudaGetLastError();
        if (lim == 0)
            return fail(cx, -ENOMEM, "no device memory left to choose a convolution algorithm (%zu bytes); lower "
                                     "max_batch or use the bf16 precision", ob);
        lim = lim > (16u << 20) ? lim / 2 : 0;
    }
    *out = *buf;
    *ws = lim ? (char *)*buf + ob : NULL;
    *ws_bytes = lim;
    return 0;
}

static int find_done(ctx *cx, void *buf)
{
    CU_TRY(cx, cudaStreamSynchronize(cx->stream));
    CU_TRY(cx, cudaFree(buf));
    return 0;
}

static void shape_str(char *b, size_t len, const conv_plan *p)
{
    const conv_key *k = &p->key;
    snprintf(b, len, "n%d c%d %dx%dx%d -> oc%d k%dx%dx%d s%dx%dx%d p%dx%dx%d %s%s", k->n, k->c, k->t, k->h, k->w, k->oc,
             k->kt, k->kh, k->kw, k->st, k->sh, k->sw, k->pt, k->ph, k->pw,
             k->dtype == CUDNN_DATA_BFLOAT16 ? "bf16" : "fp32", k->tensor_ops ? " tensor-ops" : "");
    if (p->ncdhw)
        snprintf(b + strlen(b), len - strlen(b), " (channels-first)");
}

/* Is algorithm a of direction dir a transform (FFT, Winograd)? */
static int is_transform(int dir, int a)
{
    if (dir == DIR_FWD)
        return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
               a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
    if (dir == DIR_BWD_DATA)
        return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
               a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

/* Acceptance levels of an fp32 (no tensor ops) plan, tried in order:
 * 0 = FMA kernels without transforms (the accurate choice), 1 = FMA kernels
 * with transforms, 2 = cuDNN's default math, which may use TF32 (a warning
 * is printed: only when cuDNN has nothing else for the shape). Tensor-op
 * plans (tf32, bf16) accept anything at level 0. */
static int acceptable(const ctx *cx, const conv_plan *p, int level, int dir, int a, cudnnMathType_t mt)
{
    if (p->key.tensor_ops || level >= 2)
        return 1;
    if (mt == CUDNN_TENSOR_OP_MATH || mt == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
        return 0;
    return level >= 1 || cx->fp32_transforms || !is_transform(dir, a);
}

/* Takes the fastest acceptable algorithm of perf[0..got) (cuDNN sorts them);
 * returns 1 when one was taken, 0 when none fits, negative on error. */
template <typename Perf>
static int pick(ctx *cx, conv_plan *p, int dir, const Perf *perf, int got, size_t ws_lim, int level)
{
    static const char *what[3] = {"forward", "backward-data", "backward-filter"};
    for (int i = 0; i < got; i++) {
        const int a = (int)perf[i].algo;
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ws_lim ||
            !acceptable(cx, p, level, dir, a, perf[i].mathType))
            continue;
        cudnnMathType_t mt = perf[i].mathType;
        if (!p->key.tensor_ops && level < 2)
            mt = CUDNN_FMA_MATH; /* DEFAULT_MATH would allow TF32 on this GPU */
        DNN_TRY(cx, cudnnSetConvolutionMathType(p->cd[dir], mt));
        p->algo[dir] = a;
        p->ws[dir] = perf[i].memory;
        p->have[dir] = 1;
        char sh[200];
        shape_str(sh, sizeof sh, p);
        if (level > 0)
            fprintf(stderr, "dfew cuda: no accurate fp32 %s algorithm for conv %s; using algo %d (%s)\n", what[dir],
                    sh, a, level == 1 ? "an FFT / Winograd transform" : "cuDNN's default math, TF32 possible");
        if (getenv("DFEW_CUDA_VERBOSE"))
            fprintf(stderr, "dfew cuda: %-15s %s: algo %d, math %d, %.3f ms, workspace %zu\n", what[dir], sh, a,
                    (int)mt, (double)perf[i].time, perf[i].memory);
        return 1;
    }
    return 0;
}

/* Times (or asks cuDNN's heuristics for) the algorithms of one direction on
 * scratch outputs and takes the fastest acceptable one. */
template <int DIR> static int choose(ctx *cx, conv_plan *p, const void *a, const void *b, size_t out_bytes)
{
    typedef typename std::conditional<
        DIR == DIR_FWD, cudnnConvolutionFwdAlgoPerf_t,
        typename std::conditional<DIR == DIR_BWD_DATA, cudnnConvolutionBwdDataAlgoPerf_t,
                                  cudnnConvolutionBwdFilterAlgoPerf_t>::type>::type Perf;
    const int count = DIR == DIR_FWD ? (int)CUDNN_CONVOLUTION_FWD_ALGO_COUNT
                      : DIR == DIR_BWD_DATA ? (int)CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT
                                            : (int)CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
    Perf perf[8];
    static_assert(CUDNN_CONVOLUTION_FWD_ALGO_COUNT <= 8 && CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT <= 8 &&
                      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT <= 8,
                  "perf array");
    cudnnConvolutionDescriptor_t cd = p->cd[DIR];
    for (int attempt = 0; attempt < 2; attempt++) {
        /* attempt 1 (fp32 only): cuDNN's default math, when FMA kernels gave nothing */
        if (attempt == 1) {
            if (p->key.tensor_ops)
                break;
            DNN_TRY(cx, cudnnSetConvolutionMathType(cd, CUDNN_DEFAULT_MATH));
        }
        int got = 0;
        size_t wsb = cx->ws_limit;
        cudnnStatus_t st;
        if (!cx->find) {
            if constexpr (DIR == DIR_FWD)
                st = cudnnGetConvolutionForwardAlgorithm_v7(cx->dnn, p->xd, p->wd, cd, p->yd, count, &got, perf);
            else if constexpr (DIR == DIR_BWD_DATA)
                st = cudnnGetConvolutionBackwardDataAlgorithm_v7(cx->dnn, p->wd, p->yd, cd, p->xd, count, &got, perf);
            else
                st = cudnnGetConvolutionBackwardFilterAlgorithm_v7(cx->dnn, p->xd, p->yd, cd, p->wd, count, &got,
                                                                   perf);
        } else {
            void *buf, *out, *ws;
            TRY(find_buffers(cx, out_bytes, &buf, &out, &ws, &wsb));
            if constexpr (DIR == DIR_FWD) /* a = x, b = w, out = y */
                st = cudnnFindConvolutionForwardAlgorithmEx(cx->dnn, p->xd, a, p->wd, b, cd, p->yd, out, count, &got,
                                                            perf, ws, wsb);
            else if constexpr (DIR == DIR_BWD_DATA) /* a = w, b = dy, out = dx */
                st = cudnnFindConvolutionBackwardDataAlgorithmEx(cx->dnn, p->wd, a, p->yd, b, cd, p->xd, out, count,
                                                                 &got, perf, ws, wsb);
            else /* a = x, b = dy, out = dw */
                st = cudnnFindConvolutionBackwardFilterAlgorithmEx(cx->dnn, p->xd, a, p->yd, b, cd, p->wd, out, count,
                                                                   &got, perf, ws, wsb);
            TRY(find_done(cx, buf));
        }
        if (st != CUDNN_STATUS_SUCCESS) { /* no algorithm at all for this math and layout: try the next */
            char sh[200], detail[160] = "";
            shape_str(sh, sizeof sh, p);
            cudnnGetLastErrorString(detail, sizeof detail);
            fprintf(stderr, "dfew cuda: %s for conv %s (%s): %s %s\n", cx->find ? "cudnnFind" : "cudnnGet*_v7", sh,
                    DIR == DIR_FWD ? "forward" : DIR == DIR_BWD_DATA ? "backward-data" : "backward-filter",
                    cudnnGetErrorString(st), detail);
            if (st == CUDNN_STATUS_ALLOC_FAILED)
                return fail_dnn(cx, st, "choosing a convolution algorithm", __FILE__, __LINE__);
            got = 0;
        }
        for (int level = attempt ? 2 : 0; level <= (attempt ? 2 : 1); level++) {
            int rc = pick(cx, p, DIR, perf, got, wsb, level);
            if (rc)
                return rc < 0 ? rc : 0;
        }
    }
    static const char *what[3] = {"forward", "backward-data", "backward-filter"};
    char sh[200];
    shape_str(sh, sizeof sh, p);
    if (!p->ncdhw) { /* cuDNN's channels-first kernels cover every shape: transpose around them */
        fprintf(stderr, "dfew cuda: no channels-last %s algorithm for conv %s; this shape runs channels-first\n",
                what[DIR], sh);
        TRY(plan_layout(cx, p, 1));
        return choose<DIR>(cx, p, a, b, out_bytes);
    }
    return fail(cx, -ENOTSUP,
                "cuDNN has no usable %s algorithm for conv %s (workspace limit %zu MB); try "
                "DFEW_CUDA_WORKSPACE_MB=8192 or another precision",
                what[DIR], sh, cx->ws_limit >> 20);
}

static int64_t conv_in_count(const conv3d_shape *s) { return (int64_t)s->n * s->c * s->t * s->h * s->w; }
static int64_t conv_out_count(const conv3d_shape *s) { return (int64_t)s->n * s->oc * s->to * s->ho * s->wo; }
static int64_t conv_w_count(const conv3d_shape *s) { return (int64_t)s->oc * s->c * s->kt * s->kh * s->kw; }

/* Times the graph API's engines for one direction of p (acc: backward-data
 * adding to its output) on scratch outputs; p->g[gi] stays NULL when none fits. */
static int graph_choose(ctx *cx, conv_plan *p, int dir, int acc, const void *a, const void *b, size_t out_bytes)
{
    const conv_key *k = &p->key;
    conv_graph_desc d = {k->n, k->c, k->t, k->h, k->w, k->oc, k->kt, k->kh, k->kw, k->st, k->sh, k->sw,
                         k->pt, k->ph, k->pw, (cudnnDataType_t)k->dtype, k->tensor_ops, cx->fp32_transforms,
                         dir, acc ? 1.f : 0.f, !cx->find};
    void *buf, *out, *ws;
    size_t wsb;
    TRY(find_buffers(cx, out_bytes, &buf, &out, &ws, &wsb));
    int rc = 0;
    if (acc) /* beta = 1 reads the scratch output: start it at zero */
        rc = cudaMemsetAsync(out, 0, out_bytes, cx->stream) == cudaSuccess ? 0 : fail(cx, -EIO, "cudaMemsetAsync");
    if (!rc)
        rc = conv_graph_make(cx, &d, a, b, out, ws, wsb, &p->g[dir == DIR_BWD_DATA && acc ? 3 : dir]);
    int rc2 = find_done(cx, buf);
    return rc ? rc : rc2;
}

/* Looks up (or makes) the plan and its algorithm for one direction: a graph
 * API plan in *g when DFEW_CUDA_CONV_API=graph found one (acc: a backward-data
 * plan that adds to its output), else *g = NULL and the legacy algorithm. */
static int conv_prepare(ctx *cx, const conv3d_shape *s, cudnnDataType_t dt, size_t esz, int dir, int acc,
                        const void *a, const void *b, conv_plan **out, conv_graph **g)
{
    const size_t out_bytes = (size_t)(dir == DIR_FWD ? conv_out_count(s)
                                      : dir == DIR_BWD_DATA ? conv_in_count(s)
                                                            : conv_w_count(s)) *
                             esz;
    const int gi = dir == DIR_BWD_DATA && acc ? 3 : dir;
    pthread_mutex_lock(&g_plan_lock);
    conv_plan *p = NULL;
    int rc = plan_get(cx, s, dt, &p);
    *g = NULL;
    if (!rc && cx->graph_api) {
        if (!p->gtried[gi]) {
            rc = graph_choose(cx, p, dir, acc, a, b, out_bytes);
            p->gtried[gi] = 1;
        }
        *g = p->g[gi];
    }
    if (!rc && !*g && !p->have[dir]) {
        if (dir == DIR_FWD)
            rc = choose<DIR_FWD>(cx, p, a, b, out_bytes);
        else if (dir == DIR_BWD_DATA)
            rc = choose<DIR_BWD_DATA>(cx, p, a, b, out_bytes);
        else
            rc = choose<DIR_BWD_FILTER>(cx, p, a, b, out_bytes);
    }
    pthread_mutex_unlock(&g_plan_lock);
    if (rc)
        return rc;
    TRY(ctx_workspace(cx, *g ? conv_graph_workspace(*g) : p->ws[dir]));
    *out = p;
    return 0;
}

/* channels-last <-> channels-first copies of the data of a plan that runs
 * channels-first (defined with the layout kernels below) */
template <typename TI, typename TO>
static int relayout(TO *dst, const TI *src, int n, int c, int64_t s, int to_ncs, int accumulate, ctx *cx);

template <typename T>
int conv3d_forward(T *out, const T *inp, const T *weight, const float *bias, const conv3d_shape *s, ctx *cx)
{
    conv_plan *p;
    conv_graph *g;
    TRY(conv_prepare(cx, s, dnn_type<T>(), sizeof(T), DIR_FWD, 0, inp, weight, &p, &g));
    const float one = 1.f, zero = 0.f;
    const int64_t S = (int64_t)s->t * s->h * s->w, SO = (int64_t)s->to * s->ho * s->wo, KV = (int64_t)s->kt * s->kh * s->kw;
    if (g) {
        TRY(conv_graph_run(cx, g, inp, weight, out));
    } else if (!p->ncdhw) {
        DNN_TRY(cx, cudnnConvolutionForward(cx->dnn, &one, p->xd, inp, p->wd, weight, p->cd[0],
                                            (cudnnConvolutionFwdAlgo_t)p->algo[0], cx->ws, p->ws[0], &zero, p->yd,
                                            out));
    } else {
        void *x, *y, *w;
        TRY(ctx_scratch(cx, SCR_TX, sizeof(T) * (size_t)conv_in_count(s), &x));
        TRY(ctx_scratch(cx, SCR_TY, sizeof(T) * (size_t)conv_out_count(s), &y));
        TRY(ctx_scratch(cx, SCR_TW, sizeof(T) * (size_t)conv_w_count(s), &w));
        TRY((relayout<T, T>((T *)x, inp, s->n, s->c, S, 1, 0, cx)));
        TRY((relayout<T, T>((T *)w, weight, s->oc, s->c, KV, 1, 0, cx)));
        DNN_TRY(cx, cudnnConvolutionForward(cx->dnn, &one, p->xd, x, p->wd, w, p->cd[0],
                                            (cudnnConvolutionFwdAlgo_t)p->algo[0], cx->ws, p->ws[0], &zero, p->yd, y));
        TRY((relayout<T, T>(out, (const T *)y, s->n, s->oc, SO, 0, 0, cx)));
    }
    if (bias)
        TRY(bias_act_forward(out, bias, (int64_t)s->n * SO, s->oc, 0, cx));
    return 0;
}

template <typename T>
int conv3d_backward(T *dinp, float *dweight, float *dbias, const T *dout, const T *inp, const T *weight,
                    const conv3d_shape *s, ctx *cx, int accumulate)
{
    const float one = 1.f, zero = 0.f, beta_in = accumulate ? 1.f : 0.f;
    const int64_t S = (int64_t)s->t * s->h * s->w, SO = (int64_t)s->to * s->ho * s->wo, KV = (int64_t)s->kt * s->kh * s->kw;
    if (dbias)
        TRY(channel_sum(dbias, dout, (int64_t)s->n * SO, s->oc, cx));
    conv_plan *p;
    conv_graph *g;
    /* weight gradient: bf16 convolutions produce a bf16 gradient, widened into the fp32 one */
    const int64_t wn = conv_w_count(s);
    TRY(conv_prepare(cx, s, dnn_type<T>(), sizeof(T), DIR_BWD_FILTER, 0, inp, dout, &p, &g));
    const void *x = inp, *dy = dout, *w = weight;
    void *dw = dweight;
    const int filter_cf = !g && p->ncdhw; /* the filter gradient runs channels-first */
    if (filter_cf || sizeof(T) != sizeof(float))
        TRY(ctx_scratch(cx, SCR_DW16, (size_t)wn * sizeof(T), &dw));
    if (g) {
        TRY(conv_graph_run(cx, g, inp, dout, dw));
    } else {
        if (filter_cf) {
            void *tx, *ty;
            TRY(ctx_scratch(cx, SCR_TX, sizeof(T) * (size_t)conv_in_count(s), &tx));
            TRY(ctx_scratch(cx, SCR_TY, sizeof(T) * (size_t)conv_out_count(s), &ty));
            TRY((relayout<T, T>((T *)tx, inp, s->n, s->c, S, 1, 0, cx)));
            TRY((relayout<T, T>((T *)ty, dout, s->n, s->oc, SO, 1, 0, cx)));
            x = tx, dy = ty;
        }
        DNN_TRY(cx, cudnnConvolutionBackwardFilter(cx->dnn, &one, p->xd, x, p->yd, dy, p->cd[2],
                                                   (cudnnConvolutionBwdFilterAlgo_t)p->algo[2], cx->ws, p->ws[2],
                                                   &zero, p->wd, dw));
    }
    if (filter_cf) /* OC x C x kT x kH x kW -> OC x kT x kH x kW x C, widened */
        TRY((relayout<T, float>(dweight, (const T *)dw, s->oc, s->c, KV, 0, 0, cx)));
    else if (sizeof(T) != sizeof(float))
        TRY(cast_bf16_to_f32(dweight, (const bf16 *)dw, wn, cx));
    if (!dinp)
        return 0;
    conv_plan *q; /* the same plan; choosing its data algorithm may have moved it to channels-first */
    TRY(conv_prepare(cx, s, dnn_type<T>(), sizeof(T), DIR_BWD_DATA, accumulate, weight, dout, &q, &g));
    if (g)
        return conv_graph_run(cx, g, weight, dout, dinp);
    if (!q->ncdhw) {
        DNN_TRY(cx, cudnnConvolutionBackwardData(cx->dnn, &one, q->wd, weight, q->yd, dout, q->cd[1],
                                                 (cudnnConvolutionBwdDataAlgo_t)q->algo[1], cx->ws, q->ws[1],
                                                 &beta_in, q->xd, dinp));
        return 0;
    }
    void *tw, *tx;
    TRY(ctx_scratch(cx, SCR_TW, sizeof(T) * (size_t)wn, &tw));
    TRY(ctx_scratch(cx, SCR_TX, sizeof(T) * (size_t)conv_in_count(s), &tx));
    TRY((relayout<T, T>((T *)tw, weight, s->oc, s->c, KV, 1, 0, cx)));
    w = tw;
    if (dy == (const void *)dout) { /* the filter gradient ran channels-last */
        void *ty;
        TRY(ctx_scratch(cx, SCR_TY, sizeof(T) * (size_t)conv_out_count(s), &ty));
        TRY((relayout<T, T>((T *)ty, dout, s->n, s->oc, SO, 1, 0, cx)));
        dy = ty;
    }
    DNN_TRY(cx, cudnnConvolutionBackwardData(cx->dnn, &one, q->wd, w, q->yd, dy, q->cd[1],
                                             (cudnnConvolutionBwdDataAlgo_t)q->algo[1], cx->ws, q->ws[1], &zero,
                                             q->xd, tx));
    return relayout<T, T>(dinp, (const T *)tx, s->n, s->c, S, 0, accumulate, cx);
}

/* ================================================================ per-channel reductions
 *
 * A tensor of rows x c (channels last) is cut into blocks of 32 channels x
 * chunks of rows; each block writes one double2 partial per channel, and a
 * finalize kernel sums the chunks of a channel in order. */

#define RED_TX 32
#define RED_TY 8
enum { RED_STATS = 0, RED_SUM = 1, RED_BWD = 2 };

struct red_plan {
    int cblocks, chunks;
    int64_t rpc; /* rows per chunk */
};

static red_plan reduce_plan(const ctx *cx, int64_t rows, int c)
{
    red_plan r;
    r.cblocks = (c + RED_TX - 1) / RED_TX;
    int64_t target = 8LL * (cx->sm_count > 0 ? cx->sm_count : 80); /* 2048 threads per SM */
    int64_t maxc = target / r.cblocks, want = (rows + 255) / 256;
    if (maxc < 1)
        maxc = 1;
    int64_t ch = want < maxc ? want : maxc;
    if (ch < 1)
        ch = 1;
    if (ch > 65535)
        ch = 65535;
    r.rpc = (rows + ch - 1) / ch;
    if (r.rpc < 1)
        r.rpc = 1;
    r.chunks = (int)((rows + r.rpc - 1) / r.rpc);
    if (r.chunks < 1)
        r.chunks = 1;
    return r;
}

/* The normalisation of batchnorm, y = x * scale + shift (bn_norm), and its
 * scale and shift, with the CPU's rounding (no fused multiply-add): the
 * forward pass and the ReLU masks of the backward pass compute them the same
 * way, bit for bit. */
__device__ __forceinline__ void bn_scale_shift(float gamma, float beta, float mean, float rstd, float *sc, float *sh)
{
    *sc = __fmul_rn(gamma, rstd);
    *sh = __fsub_rn(beta, __fmul_rn(mean, *sc));
}

__device__ __forceinline__ float bn_norm(float x, float sc, float sh) { return __fadd_rn(__fmul_rn(x, sc), sh); }

template <int MODE, bool RELU>
__device__ __forceinline__ void red_acc(double &s1, double &s2, float v, float x, float k, float mu, float sc, float sh)
{
    if (MODE == RED_STATS) {
        double d = (double)v - (double)k;
        s1 += d;
        s2 += d * d;
    } else if (MODE == RED_SUM) {
        s1 += v;
    } else {
        float g = v;
        if (RELU && !(bn_norm(x, sc, sh) > 0.f))
            g = 0.f;
        s1 += g;
        s2 += (double)g * ((double)x - (double)mu);
    }
}

/* MODE STATS: a = inp; sums of (x - k) and (x - k)^2 with k = the channel's first value.
 * MODE SUM:   a = x; sum of x.
 * MODE BWD:   a = dout, b = inp; sums of g and g * (x - mean), g masked by the ReLU. */
template <typename T, int MODE, bool RELU>
__global__ void __launch_bounds__(RED_TX *RED_TY)
    chan_reduce_kernel(double2 *__restrict__ partial, const T *__restrict__ a, const T *__restrict__ b,
                       const float *__restrict__ mean, const float *__restrict__ rstd, const float *__restrict__ gamma,
                       const float *__restrict__ beta, int64_t rows, int c, int64_t rpc)
{
    __shared__ double2 sh[RED_TY][RED_TX];
    const int tx = threadIdx.x, ty = threadIdx.y, ch = blockIdx.x * RED_TX + tx;
    const int64_t r0 = (int64_t)blockIdx.y * rpc, r1 = r0 + rpc < rows ? r0 + rpc : rows;
    double s1 = 0, s2 = 0;
    if (ch < c) {
        float k = 0.f, mu = 0.f, sc = 0.f, shf = 0.f;
        if (MODE == RED_STATS)
            k = to_f(a[ch]);
        if (MODE == RED_BWD) {
            mu = mean[ch];
            if (RELU)
                bn_scale_shift(gamma[ch], beta[ch], mu, rstd[ch], &sc, &shf);
        }
        int64_t r = r0 + ty;
        for (; r + 3 * RED_TY < r1; r += 4 * RED_TY) { /* four independent loads in flight */
            float v[4], x[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
            for (int u = 0; u < 4; u++)
                v[u] = to_f(a[(r + u * RED_TY) * c + ch]);
            if (MODE == RED_BWD) {
#pragma unroll
                for (int u = 0; u < 4; u++)
                    x[u] = to_f(b[(r + u * RED_TY) * c + ch]);
            }
#pragma unroll
            for (int u = 0; u < 4; u++)
                red_acc<MODE, RELU>(s1, s2, v[u], x[u], k, mu, sc, shf);
        }
        for (; r < r1; r += RED_TY) {
            float v = to_f(a[r * c + ch]), x = MODE == RED_BWD ? to_f(b[r * c + ch]) : 0.f;
            red_acc<MODE, RELU>(s1, s2, v, x, k, mu, sc, shf);
        }
    }
    sh[ty][tx] = make_double2(s1, s2);
    __syncthreads();
    if (ty == 0 && ch < c) {
        double2 acc = sh[0][tx];
        for (int j = 1; j < RED_TY; j++) {
            acc.x += sh[j][tx].x;
            acc.y += sh[j][tx].y;
        }
        partial[(int64_t)blockIdx.y * c + ch] = acc;
    }
}

/* Sums the chunks of each channel in a fixed order: (tx, ty) threads of a
 * RED_TX x FIN_TY block, ty strides over the chunks, four loads in flight. */
#define FIN_TY 32
__device__ __forceinline__ double2 sum_chunks(const double2 *partial, int chunks, int c, int ch, double2 (*sh)[RED_TX])
{
    const int tx = threadIdx.x, ty = threadIdx.y;
    double2 acc = make_double2(0, 0);
    if (ch < c) {
        int j = ty;
        for (; j + 3 * FIN_TY < chunks; j += 4 * FIN_TY) {
            double2 p[4];
#pragma unroll
            for (int u = 0; u < 4; u++)
                p[u] = partial[(int64_t)(j + u * FIN_TY) * c + ch];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                acc.x += p[u].x;
                acc.y += p[u].y;
            }
        }
        for (; j < chunks; j += FIN_TY) {
            double2 p = partial[(int64_t)j * c + ch];
            acc.x += p.x;
            acc.y += p.y;
        }
    }
    sh[ty][tx] = acc;
    __syncthreads();
    acc = sh[0][tx];
    for (int j = 1; j < FIN_TY; j++) {
        acc.x += sh[j][tx].x;
        acc.y += sh[j][tx].y;
    }
    return acc;
}

/* Batchnorm statistics of one channel, running estimates, and the scale and
 * shift of the normalisation: coef[ch] = gamma * rstd, coef[c + ch] = beta - mean * scale. */
template <typename T>
__global__ void __launch_bounds__(RED_TX *FIN_TY)
    bn_stats_finalize_kernel(float *coef, float *save_mean, float *save_rstd, float *running_mean, float *running_var,
                             const double2 *partial, const T *inp, const float *gamma, const float *beta, int chunks,
                             int c, double rows, float momentum, float eps)
{
    __shared__ double2 sh[FIN_TY][RED_TX];
    const int ch = blockIdx.x * RED_TX + threadIdx.x;
    double2 s = sum_chunks(partial, chunks, c, ch, sh);
    if (threadIdx.y != 0 || ch >= c)
        return;
    double dm = s.x / rows, mean = (double)to_f(inp[ch]) + dm, var = s.y / rows - dm * dm;
    if (var < 0)
        var = 0;
    float rstd = (float)(1.0 / sqrt(var + (double)eps));
    save_mean[ch] = (float)mean;
    save_rstd[ch] = rstd;
    float unb = (float)(rows > 1 ? var * rows / (rows - 1) : var);
    running_mean[ch] = __fadd_rn(__fmul_rn(1.f - momentum, running_mean[ch]), __fmul_rn(momentum, (float)mean));
    running_var[ch] = __fadd_rn(__fmul_rn(1.f - momentum, running_var[ch]), __fmul_rn(momentum, unb));
    float sc, shift;
    bn_scale_shift(gamma[ch], beta[ch], (float)mean, rstd, &sc, &shift);
    coef[ch] = sc;
    coef[c + ch] = shift;
}

__global__ void bn_eval_coef_kernel(float *coef, const float *gamma, const float *beta, const float *rm,
                                    const float *rv, int c, float eps)
{
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c)
        return;
    float sc = __fdiv_rn(gamma[ch], __fsqrt_rn(__fadd_rn(rv[ch], eps)));
    coef[ch] = sc;
    coef[c + ch] = __fsub_rn(beta[ch], __fmul_rn(rm[ch], sc));
}

/* Backward coefficients: dbeta, dgamma, and for dx = k (g - mg - (x - mean) q):
 * coef = [k | mg | q | scale | shift | mean] (scale and shift: the forward's, for the ReLU mask). */
__global__ void __launch_bounds__(RED_TX *FIN_TY)
    bn_bwd_finalize_kernel(float *coef, float *dgamma, float *dbeta, const double2 *partial, const float *gamma,
                           const float *beta, const float *save_mean, const float *save_rstd, int chunks, int c,
                           double rows)
{
    __shared__ double2 sh[FIN_TY][RED_TX];
    const int ch = blockIdx.x * RED_TX + threadIdx.x;
    double2 s = sum_chunks(partial, chunks, c, ch, sh);
    if (threadIdx.y != 0 || ch >= c)
        return;
    float rs = save_rstd[ch], mu = save_mean[ch];
    dbeta[ch] = (float)s.x;
    dgamma[ch] = (float)(s.y * rs);
    float k = gamma[ch] * rs, mg = (float)(s.x / rows), mgx = (float)(s.y * rs / rows);
    coef[ch] = k;
    coef[c + ch] = mg;
    coef[2 * c + ch] = rs * mgx;
    float sc, shift;
    bn_scale_shift(gamma[ch], beta[ch], mu, rs, &sc, &shift);
    coef[3 * c + ch] = sc;
    coef[4 * c + ch] = shift;
    coef[5 * c + ch] = mu;
}

__global__ void __launch_bounds__(RED_TX *FIN_TY)
    sum_finalize_kernel(float *out, const double2 *partial, int chunks, int c)
{
    __shared__ double2 sh[FIN_TY][RED_TX];
    const int ch = blockIdx.x * RED_TX + threadIdx.x;
    double2 s = sum_chunks(partial, chunks, c, ch, sh);
    if (threadIdx.y == 0 && ch < c)
        out[ch] = (float)s.x;
}

template <typename T, int MODE, bool RELU>
static int chan_reduce(const red_plan &rp, double2 *partial, const T *a, const T *b, const float *mean,
                       const float *rstd, const float *gamma, const float *beta, int64_t rows, int c, ctx *cx)
{
    dim3 grid(rp.cblocks, rp.chunks), block(RED_TX, RED_TY);
    chan_reduce_kernel<T, MODE, RELU><<<grid, block, 0, cx->stream>>>(partial, a, b, mean, rstd, gamma, beta, rows, c,
                                                                      rp.rpc);
    LAUNCH_TRY(cx, "chan_reduce_kernel");
    return 0;
}

/* ================================================================ batchnorm apply kernels */

template <typename T, int V, bool RELU, bool RES>
__global__ void bn_apply_kernel(T *out, const T *inp, const T *res, const float *__restrict__ coef, int64_t nvec, int c)
{
    GRID_STRIDE(i, nvec)
    {
        const int64_t e = i * V;
        const int ch = (int)(e % c);
        pack<T, V> x = ld<T, V>(inp + e), r, y;
        if (RES)
            r = ld<T, V>(res + e);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float v = bn_norm(to_f(x.v[j]), coef[ch + j], coef[c + ch + j]);
            if (RES)
                v += to_f(r.v[j]);
            if (RELU)
                v = v > 0.f ? v : 0.f;
            y.v[j] = from_f<T>(v);
        }
        st<T, V>(out + e, y);
    }
}

template <typename T, int V, bool RELU>
__global__ void bn_bwd_apply_kernel(T *dinp, const T *dout, const T *inp, const float *__restrict__ coef, int64_t nvec,
                                    int c)
{
    GRID_STRIDE(i, nvec)
    {
        const int64_t e = i * V;
        const int ch = (int)(e % c);
        pack<T, V> g = ld<T, V>(dout + e), x = ld<T, V>(inp + e), y;
#pragma unroll
        for (int j = 0; j < V; j++) {
            const int q = ch + j;
            float xv = to_f(x.v[j]), gv = to_f(g.v[j]);
            if (RELU && !(bn_norm(xv, coef[3 * c + q], coef[4 * c + q]) > 0.f))
                gv = 0.f;
            y.v[j] = from_f<T>(coef[q] * (gv - coef[c + q] - (xv - coef[5 * c + q]) * coef[2 * c + q]));
        }
        st<T, V>(dinp + e, y);
    }
}

template <typename T, int V>
static int bn_apply_launch(T *out, const T *inp, const T *res, int relu, const float *coef, int64_t count, int c,
                           ctx *cx)
{
    int64_t nvec = count / V;
    unsigned g = grid_for(cx, nvec);
    if (relu && res)
        bn_apply_kernel<T, V, true, true><<<g, ELT_THREADS, 0, cx->stream>>>(out, inp, res, coef, nvec, c);
    else if (relu)
        bn_apply_kernel<T, V, true, false><<<g, ELT_THREADS, 0, cx->stream>>>(out, inp, res, coef, nvec, c);
    else if (res)
        bn_apply_kernel<T, V, false, true><<<g, ELT_THREADS, 0, cx->stream>>>(out, inp, res, coef, nvec, c);
    else
        bn_apply_kernel<T, V, false, false><<<g, ELT_THREADS, 0, cx->stream>>>(out, inp, res, coef, nvec, c);
    LAUNCH_TRY(cx, "bn_apply_kernel");
    return 0;
}

template <typename T>
static int bn_apply(T *out, const T *inp, const T *res, int relu, const float *coef, int64_t count, int c, ctx *cx)
{
    if (vec_of<T>(c, out, inp, res) > 1)
        return bn_apply_launch<T, 16 / sizeof(T)>(out, inp, res, relu, coef, count, c, cx);
    return bn_apply_launch<T, 1>(out, inp, res, relu, coef, count, c, cx);
}

template <typename T>
int batchnorm3d_act_forward_train(T *out, float *save_mean, float *save_rstd, float *running_mean,
                                  float *running_var, const T *inp, const float *gamma, const float *beta,
                                  const T *res, int relu, int n, int c, int64_t s, float momentum, float eps,
                                  ctx *cx)
{
    const int64_t rows = (int64_t)n * s;
    red_plan rp = reduce_plan(cx, rows, c);
    void *partial, *coef;
    TRY(ctx_scratch(cx, SCR_PARTIAL, sizeof(double2) * (size_t)rp.chunks * c, &partial));
    TRY(ctx_scratch(cx, SCR_COEF, sizeof(float) * 6 * (size_t)c, &coef));
    TRY((chan_reduce<T, RED_STATS, false>(rp, (double2 *)partial, inp, NULL, NULL, NULL, NULL, NULL, rows, c, cx)));
    bn_stats_finalize_kernel<T><<<rp.cblocks, dim3(RED_TX, FIN_TY), 0, cx->stream>>>(
        (float *)coef, save_mean, save_rstd, running_mean, running_var, (const double2 *)partial, inp, gamma, beta,
        rp.chunks, c, (double)rows, momentum, eps);
    LAUNCH_TRY(cx, "bn_stats_finalize_kernel");
    return bn_apply(out, inp, res, relu, (const float *)coef, rows * c, c, cx);
}

template <typename T>
int batchnorm3d_act_forward_eval(T *out, const T *inp, const float *gamma, const float *beta,
                                 const float *running_mean, const float *running_var, const T *res, int relu, int n,
                                 int c, int64_t s, float eps, ctx *cx)
{
    void *coef;
    TRY(ctx_scratch(cx, SCR_COEF, sizeof(float) * 6 * (size_t)c, &coef));
    bn_eval_coef_kernel<<<(c + 127) / 128, 128, 0, cx->stream>>>((float *)coef, gamma, beta, running_mean,
                                                                 running_var, c, eps);
    LAUNCH_TRY(cx, "bn_eval_coef_kernel");
    return bn_apply(out, inp, res, relu, (const float *)coef, (int64_t)n * s * c, c, cx);
}

template <typename T>
int batchnorm3d_act_backward(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp, const float *gamma,
                             const float *beta, const float *save_mean, const float *save_rstd, int relu, int n,
                             int c, int64_t s, ctx *cx)
{
    const int64_t rows = (int64_t)n * s, count = rows * c;
    red_plan rp = reduce_plan(cx, rows, c);
    void *partial, *coef;
    TRY(ctx_scratch(cx, SCR_PARTIAL, sizeof(double2) * (size_t)rp.chunks * c, &partial));
    TRY(ctx_scratch(cx, SCR_COEF, sizeof(float) * 6 * (size_t)c, &coef));
    if (relu)
        TRY((chan_reduce<T, RED_BWD, true>(rp, (double2 *)partial, dout, inp, save_mean, save_rstd, gamma, beta, rows,
                                           c, cx)));
    else
        TRY((chan_reduce<T, RED_BWD, false>(rp, (double2 *)partial, dout, inp, save_mean, save_rstd, gamma, beta,
                                            rows, c, cx)));
    bn_bwd_finalize_kernel<<<rp.cblocks, dim3(RED_TX, FIN_TY), 0, cx->stream>>>(
        (float *)coef, dgamma, dbeta, (const double2 *)partial, gamma, beta, save_mean, save_rstd, rp.chunks, c,
        (double)rows);
    LAUNCH_TRY(cx, "bn_bwd_finalize_kernel");
    const float *cf = (const float *)coef;
    if (vec_of<T>(c, dinp, dout, inp) > 1) {
        const int V = 16 / sizeof(T);
        int64_t nvec = count / V;
        if (relu)
            bn_bwd_apply_kernel<T, 16 / sizeof(T), true>
                <<<grid_for(cx, nvec), ELT_THREADS, 0, cx->stream>>>(dinp, dout, inp, cf, nvec, c);
        else
            bn_bwd_apply_kernel<T, 16 / sizeof(T), false>
                <<<grid_for(cx, nvec), ELT_THREADS, 0, cx->stream>>>(dinp, dout, inp, cf, nvec, c);
    } else {
        if (relu)
            bn_bwd_apply_kernel<T, 1, true><<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(dinp, dout, inp, cf,
                                                                                                 count, c);
        else
            bn_bwd_apply_kernel<T, 1, false><<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(dinp, dout, inp, cf,
                                                                                                  count, c);
    }
    LAUNCH_TRY(cx, "bn_bwd_apply_kernel");
    return 0;
}

template <typename T>
int batchnorm3d_forward_train(T *out, float *save_mean, float *save_rstd, float *running_mean, float *running_var,
                              const T *inp, const float *gamma, const float *beta, int n, int c, int64_t s,
                              float momentum, float eps, ctx *cx)
{
    return batchnorm3d_act_forward_train<T>(out, save_mean, save_rstd, running_mean, running_var, inp, gamma, beta,
                                            NULL, 0, n, c, s, momentum, eps, cx);
}

template <typename T>
int batchnorm3d_forward_eval(T *out, const T *inp, const float *gamma, const float *beta, const float *running_mean,
                             const float *running_var, int n, int c, int64_t s, float eps, ctx *cx)
{
    return batchnorm3d_act_forward_eval<T>(out, inp, gamma, beta, running_mean, running_var, NULL, 0, n, c, s, eps,
                                           cx);
}

template <typename T>
int batchnorm3d_backward(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp, const float *gamma,
                         const float *save_mean, const float *save_rstd, int n, int c, int64_t s, ctx *cx)
{
    /* beta only feeds the ReLU mask, which is off here */
    return batchnorm3d_act_backward<T>(dinp, dgamma, dbeta, dout, inp, gamma, gamma, save_mean, save_rstd, 0, n, c,
                                       s, cx);
}

template <typename T> int channel_sum(float *out, const T *x, int64_t rows, int c, ctx *cx)
{
    red_plan rp = reduce_plan(cx, rows, c);
    void *partial;
    TRY(ctx_scratch(cx, SCR_PARTIAL, sizeof(double2) * (size_t)rp.chunks * c, &partial));
    TRY((chan_reduce<T, RED_SUM, false>(rp, (double2 *)partial, x, NULL, NULL, NULL, NULL, NULL, rows, c, cx)));
    sum_finalize_kernel<<<rp.cblocks, dim3(RED_TX, FIN_TY), 0, cx->stream>>>(out, (const double2 *)partial, rp.chunks,
                                                                             c);
    LAUNCH_TRY(cx, "sum_finalize_kernel");
    return 0;
}

/* ================================================================ elementwise */

template <typename T, int V, int OP>
__global__ void eltwise_kernel(T *y, const T *a, const T *b, int64_t nvec)
{
    /* OP 0: y = relu(a); 1: y = b > 0 ? a : 0 (relu backward, b = forward output); 2: y = a + b */
    GRID_STRIDE(i, nvec)
    {
        pack<T, V> x = ld<T, V>(a + i * V), z, o;
        if (OP != 0)
            z = ld<T, V>(b + i * V);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float v = to_f(x.v[j]);
            if (OP == 0)
                v = v > 0.f ? v : 0.f;
            else if (OP == 1)
                v = to_f(z.v[j]) > 0.f ? v : 0.f;
            else
                v = v + to_f(z.v[j]);
            o.v[j] = from_f<T>(v);
        }
        st<T, V>(y + i * V, o);
    }
}

template <typename T, int OP> static int eltwise(T *y, const T *a, const T *b, int64_t count, ctx *cx)
{
    if (count <= 0)
        return 0;
    if (vec_of<T>(count, y, a, b) > 1) {
        int64_t nvec = count / (16 / sizeof(T));
        eltwise_kernel<T, 16 / sizeof(T), OP><<<grid_for(cx, nvec), ELT_THREADS, 0, cx->stream>>>(y, a, b, nvec);
    } else {
        eltwise_kernel<T, 1, OP><<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(y, a, b, count);
    }
    LAUNCH_TRY(cx, "eltwise_kernel");
    return 0;
}

template <typename T> int relu_forward(T *out, const T *inp, int64_t count, ctx *cx)
{
    return eltwise<T, 0>(out, inp, NULL, count, cx);
}
template <typename T> int relu_backward(T *dinp, const T *dout, const T *out, int64_t count, ctx *cx)
{
    return eltwise<T, 1>(dinp, dout, out, count, cx);
}
template <typename T> int add_inplace(T *y, const T *x, int64_t count, ctx *cx)
{
    return eltwise<T, 2>(y, y, x, count, cx);
}

template <typename T, int V, bool RELU>
__global__ void bias_act_kernel(T *y, const float *__restrict__ bias, int64_t nvec, int c)
{
    GRID_STRIDE(i, nvec)
    {
        const int64_t e = i * V;
        const int ch = (int)(e % c);
        pack<T, V> x = ld<T, V>(y + e);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float v = to_f(x.v[j]);
            if (bias)
                v += bias[ch + j];
            if (RELU)
                v = v > 0.f ? v : 0.f;
            x.v[j] = from_f<T>(v);
        }
        st<T, V>(y + e, x);
    }
}

template <typename T> int bias_act_forward(T *y, const float *bias, int64_t rows, int c, int relu, ctx *cx)
{
    const int64_t count = rows * c;
    if (count <= 0 || (!bias && !relu))
        return 0;
    if (vec_of<T>(c, y) > 1) {
        const int V = 16 / sizeof(T);
        int64_t nvec = count / V;
        if (relu)
            bias_act_kernel<T, 16 / sizeof(T), true><<<grid_for(cx, nvec), ELT_THREADS, 0, cx->stream>>>(y, bias, nvec, c);
        else
            bias_act_kernel<T, 16 / sizeof(T), false><<<grid_for(cx, nvec), ELT_THREADS, 0, cx->stream>>>(y, bias, nvec, c);
    } else if (relu) {
        bias_act_kernel<T, 1, true><<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(y, bias, count, c);
    } else {
        bias_act_kernel<T, 1, false><<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(y, bias, count, c);
    }
    LAUNCH_TRY(cx, "bias_act_kernel");
    return 0;
}

/* ================================================================ pooling */

template <typename T>
__global__ void maxpool_fwd_kernel(T *out, int32_t *argmax, const T *__restrict__ inp, conv3d_shape s, int64_t total)
{
    GRID_STRIDE(o, total)
    {
        const int ch = (int)(o % s.c);
        int64_t r = o / s.c;
        const int ow = (int)(r % s.wo);
        r /= s.wo;
        const int oh = (int)(r % s.ho);
        r /= s.ho;
        const int ot = (int)(r % s.to);
        const int64_t n = r / s.to;
        const T *x = inp + n * (int64_t)s.t * s.h * s.w * s.c + ch;
        float best = -INFINITY;
        int32_t bi = -1;
        for (int a = 0; a < s.kt; a++) {
            int ti = ot * s.st - s.pt + a;
            if (ti < 0 || ti >= s.t)
                continue;
            for (int b = 0; b < s.kh; b++) {
                int hi = oh * s.sh - s.ph + b;
                if (hi < 0 || hi >= s.h)
                    continue;
                for (int e = 0; e < s.kw; e++) {
                    int wi = ow * s.sw - s.pw + e;
                    if (wi < 0 || wi >= s.w)
                        continue;
                    int32_t idx = (ti * s.h + hi) * s.w + wi;
                    float v = to_f(x[(int64_t)idx * s.c]);
                    if (v > best || bi < 0 || isnan(v)) { /* the CPU's rule: first maximum, NaN wins */
                        best = v;
                        bi = idx;
                    }
                }
            }
        }
        out[o] = from_f<T>(best);
        argmax[o] = bi;
    }
}

/* Gather form: each input element sums the gradients of the windows that chose
 * it (no atomics, fixed order, overlapping windows allowed). */
template <typename T>
__global__ void maxpool_bwd_kernel(T *dinp, const T *__restrict__ dout, const int32_t *__restrict__ argmax,
                                   conv3d_shape s, int64_t total)
{
    GRID_STRIDE(i, total)
    {
        const int ch = (int)(i % s.c);
        int64_t r = i / s.c;
        const int w = (int)(r % s.w);
        r /= s.w;
        const int h = (int)(r % s.h);
        r /= s.h;
        const int t = (int)(r % s.t);
        const int64_t n = r / s.t;
        const int32_t me = (t * s.h + h) * s.w + w;
        int lt = t + s.pt - s.kt + 1, lh = h + s.ph - s.kh + 1, lw = w + s.pw - s.kw + 1;
        int t0 = lt <= 0 ? 0 : (lt + s.st - 1) / s.st, t1 = (t + s.pt) / s.st;
        int h0 = lh <= 0 ? 0 : (lh + s.sh - 1) / s.sh, h1 = (h + s.ph) / s.sh;
        int w0 = lw <= 0 ? 0 : (lw + s.sw - 1) / s.sw, w1 = (w + s.pw) / s.sw;
        if (t1 > s.to - 1)
            t1 = s.to - 1;
        if (h1 > s.ho - 1)
            h1 = s.ho - 1;
        if (w1 > s.wo - 1)
            w1 = s.wo - 1;
        float acc = 0.f;
        for (int ot = t0; ot <= t1; ot++)
            for (int oh = h0; oh <= h1; oh++)
                for (int ow = w0; ow <= w1; ow++) {
                    int64_t o = (((n * s.to + ot) * s.ho + oh) * s.wo + ow) * s.c + ch;
                    if (argmax[o] == me)
                        acc += to_f(dout[o]);
                }
        dinp[i] = from_f<T>(acc);
    }
}

template <typename T> int maxpool3d_forward(T *out, int32_t *argmax, const T *inp, const conv3d_shape *s, ctx *cx)
{
    if (s->oc != s->c)
        return fail(cx, -EINVAL, "maxpool3d: output channels %d differ from input channels %d", s->oc, s->c);
    int64_t total = (int64_t)s->n * s->to * s->ho * s->wo * s->c;
    maxpool_fwd_kernel<T><<<grid_for(cx, total), ELT_THREADS, 0, cx->stream>>>(out, argmax, inp, *s, total);
    LAUNCH_TRY(cx, "maxpool_fwd_kernel");
    return 0;
}

template <typename T>
int maxpool3d_backward(T *dinp, const T *dout, const int32_t *argmax, const conv3d_shape *s, ctx *cx)
{
    int64_t total = (int64_t)s->n * s->t * s->h * s->w * s->c;
    maxpool_bwd_kernel<T><<<grid_for(cx, total), ELT_THREADS, 0, cx->stream>>>(dinp, dout, argmax, *s, total);
    LAUNCH_TRY(cx, "maxpool_bwd_kernel");
    return 0;
}

template <typename T>
__global__ void __launch_bounds__(RED_TX *RED_TY) avgpool_fwd_kernel(float *out, const T *__restrict__ inp, int c, int64_t s)
{
    __shared__ double sh[RED_TY][RED_TX];
    const int tx = threadIdx.x, ty = threadIdx.y, ch = blockIdx.x * RED_TX + tx;
    const int64_t n = blockIdx.y;
    double acc = 0;
    if (ch < c)
        for (int64_t p = ty; p < s; p += RED_TY)
            acc += to_f(inp[(n * s + p) * c + ch]);
    sh[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && ch < c) {
        for (int j = 1; j < RED_TY; j++)
            acc += sh[j][tx];
        out[n * c + ch] = (float)(acc / (double)s);
    }
}

template <typename T>
__global__ void avgpool_bwd_kernel(T *dinp, const float *__restrict__ dout, int c, int64_t s, int64_t total)
{
    GRID_STRIDE(i, total)
    {
        const int ch = (int)(i % c);
        const int64_t n = i / ((int64_t)c * s);
        dinp[i] = from_f<T>(dout[n * c + ch] / (float)s);
    }
}

template <typename T> int avgpool_global_forward(float *out, const T *inp, int n, int c, int64_t s, ctx *cx)
{
    if (n > 65535)
        return fail(cx, -EINVAL, "avgpool: batch %d above 65535", n);
    dim3 grid((c + RED_TX - 1) / RED_TX, n);
    avgpool_fwd_kernel<T><<<grid, dim3(RED_TX, RED_TY), 0, cx->stream>>>(out, inp, c, s);
    LAUNCH_TRY(cx, "avgpool_fwd_kernel");
    return 0;
}

template <typename T> int avgpool_global_backward(T *dinp, const float *dout, int n, int c, int64_t s, ctx *cx)
{
    int64_t total = (int64_t)n * c * s;
    avgpool_bwd_kernel<T><<<grid_for(cx, total), ELT_THREADS, 0, cx->stream>>>(dinp, dout, c, s, total);
    LAUNCH_TRY(cx, "avgpool_bwd_kernel");
    return 0;
}

/* ================================================================ linear (cuBLAS, column-major view)
 * A row-major R x C matrix is a column-major C x R matrix with ld = C. */

int linear_forward(float *out, const float *inp, const float *weight, const float *bias, int n, int c, int oc,
                   ctx *cx)
{
    const float one = 1.f, zero = 0.f;
    /* out^T (oc x n) = W (oc x c) . inp^T (c x n) */
    BLAS_TRY(cx, cublasSgemm(cx->blas, CUBLAS_OP_T, CUBLAS_OP_N, oc, n, c, &one, weight, c, inp, c, &zero, out, oc));
    if (bias)
        TRY(bias_act_forward<float>(out, bias, n, oc, 0, cx));
    return 0;
}

int linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int n, int c, int oc, ctx *cx)
{
    const float one = 1.f, zero = 0.f;
    /* dW^T (c x oc) = inp^T (c x n) . dout (n x oc) */
    BLAS_TRY(cx, cublasSgemm(cx->blas, CUBLAS_OP_N, CUBLAS_OP_T, c, oc, n, &one, inp, c, dout, oc, &zero, dweight, c));
    if (dinp) /* dinp^T (c x n) = W^T (c x oc) . dout^T (oc x n) */
        BLAS_TRY(cx, cublasSgemm(cx->blas, CUBLAS_OP_N, CUBLAS_OP_N, c, n, oc, &one, weight, c, dout, oc, &zero, dinp, c));
    if (dbias)
        TRY(channel_sum<float>(dbias, dout, n, oc, cx));
    return 0;
}

/* ================================================================ dropout */

#define GOLDEN 0x9E3779B97F4A7C15ull

__global__ void dropout_fwd_kernel(float *out, uint8_t *mask, const float *inp, int64_t count, float p, float scale,
                                   uint64_t s0)
{
    GRID_STRIDE(i, count)
    {
        uint64_t z = s0 + (uint64_t)(i + 1) * GOLDEN; /* the CPU's rng_next, draw i */
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float u = (float)(z >> 40) * (1.0f / 16777216.0f);
        uint8_t keep = u >= p;
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.f;
    }
}

__global__ void dropout_bwd_kernel(float *dinp, const float *dout, const uint8_t *mask, int64_t count, float scale)
{
    GRID_STRIDE(i, count)
    dinp[i] = mask[i] ? dout[i] * scale : 0.f;
}

int dropout_forward(float *out, uint8_t *mask, const float *inp, int64_t count, float p, uint64_t *rng, ctx *cx)
{
    const float scale = p < 1.f ? 1.f / (1.f - p) : 0.f;
    if (count > 0) {
        dropout_fwd_kernel<<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(out, mask, inp, count, p, scale, *rng);
        LAUNCH_TRY(cx, "dropout_fwd_kernel");
    }
    *rng += (uint64_t)count * GOLDEN;
    return 0;
}

int dropout_backward(float *dinp, const float *dout, const uint8_t *mask, int64_t count, float p, ctx *cx)
{
    const float scale = p < 1.f ? 1.f / (1.f - p) : 0.f;
    if (count <= 0)
        return 0;
    dropout_bwd_kernel<<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(dinp, dout, mask, count, scale);
    LAUNCH_TRY(cx, "dropout_bwd_kernel");
    return 0;
}

/* ================================================================ softmax cross entropy */

#define SMX_THREADS 256
__global__ void __launch_bounds__(SMX_THREADS)
    softmax_ce_kernel(float *loss, int *correct, float *probs, const float *__restrict__ logits,
                      const int32_t *__restrict__ labels, int n, int k)
{
    __shared__ double sl[SMX_THREADS];
    __shared__ int sc[SMX_THREADS];
    double my_loss = 0;
    int my_ok = 0;
    for (int i = threadIdx.x; i < n; i += SMX_THREADS) {
        const float *z = logits + (int64_t)i * k;
        float *pr = probs + (int64_t)i * k;
        int am = 0;
        float mx = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > mx) {
                mx = z[j];
                am = j;
            }
        double sum = 0;
        for (int j = 0; j < k; j++)
            sum += exp((double)z[j] - mx);
        for (int j = 0; j < k; j++)
            pr[j] = (float)(exp((double)z[j] - mx) / sum);
        if (labels) {
            my_loss += log(sum) - ((double)z[labels[i]] - mx);
            my_ok += am == labels[i];
        }
    }
    sl[threadIdx.x] = my_loss;
    sc[threadIdx.x] = my_ok;
    __syncthreads();
    for (int w = SMX_THREADS / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) {
            sl[threadIdx.x] += sl[threadIdx.x + w];
            sc[threadIdx.x] += sc[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        if (loss)
            *loss = (float)(sl[0] / n);
        if (correct)
            *correct = sc[0];
    }
}

__global__ void softmax_ce_bwd_kernel(float *dlogits, const float *probs, const int32_t *labels, int n, int k, float f)
{
    GRID_STRIDE(e, (int64_t)n * k)
    {
        int i = (int)(e / k), j = (int)(e % k);
        dlogits[e] = f * (probs[e] - (j == labels[i] ? 1.f : 0.f));
    }
}

int softmax_crossentropy_forward(float *loss, float *probs, const float *logits, const int32_t *labels, int n, int k,
                                 int *correct, ctx *cx)
{
    if (n < 1 || k < 1)
        return fail(cx, -EINVAL, "softmax over %d x %d logits", n, k);
    softmax_ce_kernel<<<1, SMX_THREADS, 0, cx->stream>>>(loss, correct, probs, logits, labels, n, k);
    LAUNCH_TRY(cx, "softmax_ce_kernel");
    return 0;
}

int softmax_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, int n, int k,
                                  float scale, ctx *cx)
{
    softmax_ce_bwd_kernel<<<grid_for(cx, (int64_t)n * k), ELT_THREADS, 0, cx->stream>>>(dlogits, probs, labels, n, k,
                                                                                       scale / (float)n);
    LAUNCH_TRY(cx, "softmax_ce_bwd_kernel");
    return 0;
}

/* ================================================================ SGD */

__global__ void sgd_kernel(float *w, float *v, const float *__restrict__ grad, int64_t count, float lr, float momentum,
                           float wd, int first, bf16 *w16)
{
    GRID_STRIDE(i, count)
    {
        float wi = w[i];
        float g = __fadd_rn(grad[i], __fmul_rn(wd, wi));
        float vi = first ? g : __fadd_rn(__fmul_rn(momentum, v[i]), g);
        v[i] = vi;
        wi = __fsub_rn(wi, __fmul_rn(lr, vi));
        w[i] = wi;
        if (w16)
            w16[i] = __float2bfloat16_rn(wi);
    }
}

int sgd_update(float *w, float *v, const float *grad, int64_t count, float lr, float momentum, float wd, int first,
               ctx *cx, bf16 *w16)
{
    if (count <= 0)
        return 0;
    sgd_kernel<<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(w, v, grad, count, lr, momentum, wd, first, w16);
    LAUNCH_TRY(cx, "sgd_kernel");
    return 0;
}

/* ================================================================ input, layouts, casts */

struct norm3 {
    float sc[3], sh[3];
};

template <typename T> __global__ void input_u8_kernel(T *out, const uint8_t *__restrict__ u, int64_t count, norm3 nm)
{
    GRID_STRIDE(i, count)
    {
        int c = (int)(i % 3);
        out[i] = from_f<T>(__fadd_rn(__fmul_rn((float)u[i], nm.sc[c]), nm.sh[c])); /* the CPU's arithmetic */
    }
}

template <typename T>
int input_from_u8(T *out, const uint8_t *u, int64_t count, const float mean[3], const float stdv[3], ctx *cx)
{
    norm3 nm;
    for (int c = 0; c < 3; c++) {
        nm.sc[c] = 1.f / (255.f * stdv[c]);
        nm.sh[c] = -mean[c] / stdv[c];
    }
    input_u8_kernel<T><<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(out, u, count, nm);
    LAUNCH_TRY(cx, "input_u8_kernel");
    return 0;
}

template <typename T> __global__ void input_f32_kernel(T *out, const float *__restrict__ x, int64_t s, int64_t total)
{
    GRID_STRIDE(i, total)
    {
        int c = (int)(i % 3);
        int64_t p = (i / 3) % s, n = i / (3 * s);
        out[i] = from_f<T>(x[(n * 3 + c) * s + p]);
    }
}

template <typename T> int input_from_f32_ncs(T *out, const float *x, int n, int64_t s, ctx *cx)
{
    int64_t total = (int64_t)n * 3 * s;
    input_f32_kernel<T><<<grid_for(cx, total), ELT_THREADS, 0, cx->stream>>>(out, x, s, total);
    LAUNCH_TRY(cx, "input_f32_kernel");
    return 0;
}

/* dst = (or +=) src between N x S x C (channels last) and N x C x S; i indexes dst */
template <typename TI, typename TO, bool TO_NCS, bool ACC>
__global__ void relayout_kernel(TO *dst, const TI *__restrict__ src, int c, int64_t s, int64_t total)
{
    GRID_STRIDE(i, total)
    {
        int64_t from;
        if (TO_NCS) {
            const int64_t p = i % s, ch = (i / s) % c, n = i / (s * c);
            from = (n * s + p) * c + ch;
        } else {
            const int64_t ch = i % c, p = (i / c) % s, n = i / (s * c);
            from = (n * c + ch) * s + p;
        }
        float v = to_f(src[from]);
        if (ACC)
            v += to_f(dst[i]);
        dst[i] = from_f<TO>(v);
    }
}

template <typename TI, typename TO>
static int relayout(TO *dst, const TI *src, int n, int c, int64_t s, int to_ncs, int accumulate, ctx *cx)
{
    const int64_t total = (int64_t)n * c * s;
    const unsigned g = grid_for(cx, total);
    if (to_ncs && accumulate)
        relayout_kernel<TI, TO, true, true><<<g, ELT_THREADS, 0, cx->stream>>>(dst, src, c, s, total);
    else if (to_ncs)
        relayout_kernel<TI, TO, true, false><<<g, ELT_THREADS, 0, cx->stream>>>(dst, src, c, s, total);
    else if (accumulate)
        relayout_kernel<TI, TO, false, true><<<g, ELT_THREADS, 0, cx->stream>>>(dst, src, c, s, total);
    else
        relayout_kernel<TI, TO, false, false><<<g, ELT_THREADS, 0, cx->stream>>>(dst, src, c, s, total);
    LAUNCH_TRY(cx, "relayout_kernel");
    return 0;
}

template <typename T> int nsc_to_ncs_f32(float *dst, const T *src, int n, int c, int64_t s, ctx *cx)
{
    return relayout<T, float>(dst, src, n, c, s, 1, 0, cx);
}

template <typename T> int ncs_f32_to_nsc(T *dst, const float *src, int n, int c, int64_t s, ctx *cx)
{
    return relayout<float, T>(dst, src, n, c, s, 0, 0, cx);
}

__global__ void f2b_kernel(bf16 *dst, const float *__restrict__ src, int64_t count)
{
    GRID_STRIDE(i, count)
    dst[i] = __float2bfloat16_rn(src[i]);
}
__global__ void b2f_kernel(float *dst, const bf16 *__restrict__ src, int64_t count)
{
    GRID_STRIDE(i, count)
    dst[i] = __bfloat162float(src[i]);
}

int cast_f32_to_bf16(bf16 *dst, const float *src, int64_t count, ctx *cx)
{
    if (count <= 0)
        return 0;
    f2b_kernel<<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(dst, src, count);
    LAUNCH_TRY(cx, "f2b_kernel");
    return 0;
}

int cast_bf16_to_f32(float *dst, const bf16 *src, int64_t count, ctx *cx)
{
    if (count <= 0)
        return 0;
    b2f_kernel<<<grid_for(cx, count), ELT_THREADS, 0, cx->stream>>>(dst, src, count);
    LAUNCH_TRY(cx, "b2f_kernel");
    return 0;
}

/* ================================================================ instantiations */

#define INSTANTIATE(T)                                                                                                \
    template int conv3d_forward<T>(T *, const T *, const T *, const float *, const conv3d_shape *, ctx *);            \
    template int conv3d_backward<T>(T *, float *, float *, const T *, const T *, const T *, const conv3d_shape *,     \
                                    ctx *, int);                                                                      \
    template int batchnorm3d_forward_train<T>(T *, float *, float *, float *, float *, const T *, const float *,       \
                                              const float *, int, int, int64_t, float, float, ctx *);                 \
    template int batchnorm3d_forward_eval<T>(T *, const T *, const float *, const float *, const float *,             \
                                             const float *, int, int, int64_t, float, ctx *);                         \
    template int batchnorm3d_backward<T>(T *, float *, float *, const T *, const T *, const float *, const float *,   \
                                         const float *, int, int, int64_t, ctx *);                                    \
    template int batchnorm3d_act_forward_train<T>(T *, float *, float *, float *, float *, const T *, const float *,   \
                                                  const float *, const T *, int, int, int, int64_t, float, float,     \
                                                  ctx *);                                                             \
    template int batchnorm3d_act_forward_eval<T>(T *, const T *, const float *, const float *, const float *,         \
                                                 const float *, const T *, int, int, int, int64_t, float, ctx *);     \
    template int batchnorm3d_act_backward<T>(T *, float *, float *, const T *, const T *, const float *,               \
                                             const float *, const float *, const float *, int, int, int, int64_t,     \
                                             ctx *);                                                                  \
    template int relu_forward<T>(T *, const T *, int64_t, ctx *);                                                     \
    template int relu_backward<T>(T *, const T *, const T *, int64_t, ctx *);                                         \
    template int maxpool3d_forward<T>(T *, int32_t *, const T *, const conv3d_shape *, ctx *);                        \
    template int maxpool3d_backward<T>(T *, const T *, const int32_t *, const conv3d_shape *, ctx *);                 \
    template int avgpool_global_forward<T>(float *, const T *, int, int, int64_t, ctx *);                             \
    template int avgpool_global_backward<T>(T *, const float *, int, int, int64_t, ctx *);                            \
    template int input_from_u8<T>(T *, const uint8_t *, int64_t, const float *, const float *, ctx *);                \
    template int input_from_f32_ncs<T>(T *, const float *, int, int64_t, ctx *);                                      \
    template int bias_act_forward<T>(T *, const float *, int64_t, int, int, ctx *);                                   \
    template int channel_sum<T>(float *, const T *, int64_t, int, ctx *);                                             \
    template int add_inplace<T>(T *, const T *, int64_t, ctx *);                                                      \
    template int nsc_to_ncs_f32<T>(float *, const T *, int, int, int64_t, ctx *);                                     \
    template int ncs_f32_to_nsc<T>(T *, const float *, int, int, int64_t, ctx *);

INSTANTIATE(float)
INSTANTIATE(bf16)

} // namespace cu
