/* common.cuh: what every file of the CUDA trainer backend shares: the
 * execution context of a model (stream, cuDNN and cuBLAS handles, cuDNN
 * workspace, small scratch buffers), the checks that turn CUDA / cuDNN /
 * cuBLAS failures into negative errno codes with a message (ctx.err), and the
 * activation element types (float, bf16). Not the layers (layers.cuh) and not
 * the model (model.cuh). CUDA C++ compiled by nvcc, written in a C style. */
#ifndef DFEW_TRAIN_CUDA_COMMON_CUH
#define DFEW_TRAIN_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

namespace cu {

typedef __nv_bfloat16 bf16;

/* What a layer call needs besides its arrays; one per model (tests make their
 * own with ctx_init). Scratch buffers grow on first use and are then reused:
 * after the first step of a model no allocation happens. */
struct ctx {
    int device;
    cudaStream_t stream;   /* every layer call is ordered on this stream */
    cudnnHandle_t dnn;     /* bound to stream */
    cublasHandle_t blas;   /* bound to stream */
    int precision;         /* enum dfew_train_precision */
    int sm_count;
    int find;              /* 1: time the cuDNN algorithms (cudnnFind*Ex), 0: cuDNN's heuristics */
    int fp32_transforms;   /* 1: fp32 convolutions may use FFT / Winograd (DFEW_CUDA_FP32_CONV=fast) */
    int graph_api;         /* 1: convolutions through cuDNN's graph API (DFEW_CUDA_CONV_API=graph) */
    size_t ws_limit;       /* the most workspace one convolution algorithm may use */
    void *ws;              /* cuDNN workspace (the largest the chosen algorithms need) */
    size_t ws_bytes;
    void *scratch[7];      /* see enum scratch_kind */
    size_t scratch_bytes[7];
    char err[384];         /* what failed and what to do, after a negative return */
};

enum scratch_kind {
    SCR_PARTIAL = 0, /* double2 per-chunk, per-channel partial sums of the channel reductions */
    SCR_COEF = 1,    /* float per-channel coefficients (batchnorm) */
    SCR_LOSS = 2,    /* double pairwise distances and weights of the feature losses */
    SCR_DW16 = 3,    /* bf16 weight gradient of a convolution before it is widened to fp32 */
    SCR_TX = 4,      /* channels-first copies for convolutions cuDNN runs in NCDHW only: input, */
    SCR_TY = 5,      /* output, */
    SCR_TW = 6,      /* weights */
    SCR_KINDS = 7,
};

/* Creates the stream and the handles (precision sets the math modes);
 * returns 0 or negative with cx->err. */
int ctx_init(ctx *cx, int device, int precision);
void ctx_destroy(ctx *cx);
/* Makes scratch kind at least bytes large (synchronises the stream when it
 * has to grow); *out receives the buffer. */
int ctx_scratch(ctx *cx, int kind, size_t bytes, void **out);
/* The workspace for a convolution algorithm that needs bytes. */
int ctx_workspace(ctx *cx, size_t bytes);

/* Error reporting: each writes cx->err and returns the negative errno code. */
int fail(ctx *cx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int fail_cuda(ctx *cx, cudaError_t e, const char *what, const char *file, int line);
int fail_dnn(ctx *cx, cudnnStatus_t s, const char *what, const char *file, int line);
int fail_blas(ctx *cx, cublasStatus_t s, const char *what, const char *file, int line);

#define CU_TRY(cx, call)                                                                                              \
    do {                                                                                                              \
        cudaError_t e_ = (call);                                                                                      \
        if (e_ != cudaSuccess)                                                                                        \
            return cu::fail_cuda((cx), e_, #call, __FILE__, __LINE__);                                                \
    } while (0)
#define DNN_TRY(cx, call)                                                                                             \
    do {                                                                                                              \
        cudnnStatus_t s_ = (call);                                                                                    \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                                               \
            return cu::fail_dnn((cx), s_, #call, __FILE__, __LINE__);                                                 \
    } while (0)
#define BLAS_TRY(cx, call)                                                                                            \
    do {                                                                                                              \
        cublasStatus_t s_ = (call);                                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                              \
            return cu::fail_blas((cx), s_, #call, __FILE__, __LINE__);                                                \
    } while (0)
/* after every kernel launch: a bad launch configuration fails here, at once */
#define LAUNCH_TRY(cx, kernel_name)                                                                                   \
    do {                                                                                                              \
        cudaError_t e_ = cudaGetLastError();                                                                          \
        if (e_ != cudaSuccess)                                                                                        \
            return cu::fail_cuda((cx), e_, "launch of " kernel_name, __FILE__, __LINE__);                             \
    } while (0)
#define TRY(expr)                                                                                                     \
    do {                                                                                                              \
        int rc_ = (expr);                                                                                             \
        if (rc_)                                                                                                      \
            return rc_;                                                                                               \
    } while (0)

/* ---- element types */
template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<bf16>(bf16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }

/* V elements moved as one aligned access (16 bytes for V = 16 / sizeof(T)) */
template <typename T, int V> struct __align__(sizeof(T) * V) pack {
    T v[V];
};

/* a grid-stride loop over [0, n) */
#define GRID_STRIDE(i, n)                                                                                             \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Threads per block of the elementwise kernels, and a grid for n work items
 * that a grid-stride loop covers (at most 32 blocks per SM). */
#define ELT_THREADS 256
static inline unsigned grid_for(const ctx *cx, int64_t n, int threads = ELT_THREADS)
{
    int64_t b = (n + threads - 1) / threads, cap = (int64_t)(cx->sm_count > 0 ? cx->sm_count : 80) * 32;
    if (b < 1)
        b = 1;
    return (unsigned)(b < cap ? b : cap);
}

} // namespace cu

#endif
