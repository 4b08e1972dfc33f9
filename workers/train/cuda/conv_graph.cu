/* conv_graph.cu: conv3d directions through cuDNN's graph (backend) API,
 * declared in conv_graph.cuh: tensor, convolution and operation descriptors,
 * an operation graph of the one operation, the engine configurations of
 * cuDNN's heuristics (mode A) and of its fallback list, filtered by their
 * numerical notes, each finalized into an execution plan, timed, the fastest
 * kept with everything it was built from. */
#include "conv_graph.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

namespace cu {

enum { UID_X = 1, UID_W = 2, UID_Y = 3 };
#define MAX_HEUR 24     /* configurations taken from heuristics mode A, best ranked first */
#define MAX_FALLBACK 8  /* and from the fallback list */
#define TIMED_RUNS 2
/* Once one plan is usable, configurations still untried after this many
 * seconds of search for one direction are skipped (heuristics rank the likely
 * fastest first; a plan of an engine compiled at run time can take seconds to
 * finalize). DFEW_CUDA_GRAPH_SEARCH_S overrides it. */
#define SEARCH_S_DEFAULT 2.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct conv_graph {
    int dir;
    int64_t ws;
    int64_t engine; /* cuDNN's global engine index, for the log */
    float ms;
    /* the plan and what it was built from, kept alive together */
    cudnnBackendDescriptor_t x, w, y, conv, op, graph, cfg, plan;
};

/* The first failure of a sequence of backend calls; later calls are skipped. */
struct chain {
    cudnnStatus_t st;
    const char *what;
    int line;
};
#define G(b, call)                                                                                                    \
    do {                                                                                                              \
        if ((b)->st == CUDNN_STATUS_SUCCESS) {                                                                        \
            cudnnStatus_t s_ = (call);                                                                                \
            if (s_ != CUDNN_STATUS_SUCCESS) {                                                                         \
                (b)->st = s_;                                                                                         \
                (b)->what = #call;                                                                                    \
                (b)->line = __LINE__;                                                                                 \
            }                                                                                                         \
        }                                                                                                             \
    } while (0)

static cudnnBackendDescriptor_t create(chain *b, cudnnBackendDescriptorType_t type)
{
    cudnnBackendDescriptor_t d = NULL;
    G(b, cudnnBackendCreateDescriptor(type, &d));
    return d;
}

static void destroy(cudnnBackendDescriptor_t d)
{
    if (d)
        cudnnBackendDestroyDescriptor(d);
}

static void set(chain *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                cudnnBackendAttributeType_t type, int64_t count, const void *v)
{
    G(b, cudnnBackendSetAttribute(d, name, type, count, v));
}

static void set_desc(chain *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                     cudnnBackendDescriptor_t v)
{
    set(b, d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v);
}

/* A channels-last tensor of 5 dims in cuDNN's N, C, D, H, W order. */
static cudnnBackendDescriptor_t tensor(chain *b, int64_t uid, cudnnDataType_t dt, int64_t n, int64_t c, int64_t t,
                                       int64_t h, int64_t w)
{
    const int64_t dims[5] = {n, c, t, h, w}, strides[5] = {c * t * h * w, 1, h * w * c, w * c, c}, align = 16;
    cudnnBackendDescriptor_t d = create(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    set(b, d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    set(b, d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 5, dims);
    set(b, d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 5, strides);
    set(b, d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    set(b, d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    G(b, cudnnBackendFinalize(d));
    return d;
}

static void conv_graph_free_parts(conv_graph *g)
{
    cudnnBackendDescriptor_t all[] = {g->plan, g->cfg, g->graph, g->op, g->conv, g->x, g->w, g->y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        destroy(all[i]);
}

void conv_graph_free(conv_graph *g)
{
    if (!g)
        return;
    conv_graph_free_parts(g);
    free(g);
}

size_t conv_graph_workspace(const conv_graph *g) { return (size_t)g->ws; }

/* The tensors, convolution and operation of one direction, into g's
 * descriptors (no device needed). */
static void build_op(chain *b, const conv_graph_desc *d, conv_graph *g)
{
    const int64_t to = (d->t + 2 * d->pt - d->kt) / d->st + 1, ho = (d->h + 2 * d->ph - d->kh) / d->sh + 1;
    const int64_t wo = (d->w + 2 * d->pw - d->kw) / d->sw + 1;
    g->x = tensor(b, UID_X, d->dtype, d->n, d->c, d->t, d->h, d->w);
    g->w = tensor(b, UID_W, d->dtype, d->oc, d->c, d->kt, d->kh, d->kw);
    g->y = tensor(b, UID_Y, d->dtype, d->n, d->oc, to, ho, wo);

    const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    const int64_t dims = 3, pad[3] = {d->pt, d->ph, d->pw}, stride[3] = {d->st, d->sh, d->sw}, dil[3] = {1, 1, 1};
    g->conv = create(b, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    set(b, g->conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
    set(b, g->conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
    set(b, g->conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims);
    set(b, g->conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, dil);
    set(b, g->conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3, stride);
    set(b, g->conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3, pad);
    set(b, g->conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3, pad);
    G(b, cudnnBackendFinalize(g->conv));

    /* per direction: the operation and its attributes for x (or dx), w (or
     * dw), y (or dy), the convolution, alpha and beta */
    static const struct {
        cudnnBackendDescriptorType_t type;
        cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
    } ops[3] = {
        {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
        {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
        {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA},
    };
    const float alpha = 1.f, beta = d->dir == DIR_BWD_DATA ? d->beta : 0.f;
    const int k = d->dir;
    g->op = create(b, ops[k].type);
    set_desc(b, g->op, ops[k].x, g->x);
    set_desc(b, g->op, ops[k].w, g->w);
    set_desc(b, g->op, ops[k].y, g->y);
    set_desc(b, g->op, ops[k].conv, g->conv);
    set(b, g->op, ops[k].alpha, CUDNN_TYPE_FLOAT, 1, &alpha);
    set(b, g->op, ops[k].beta, CUDNN_TYPE_FLOAT, 1, &beta);
    G(b, cudnnBackendFinalize(g->op));
}

/* The operation graph of one direction, into g's descriptors. */
static void build_graph(chain *b, ctx *cx, const conv_graph_desc *d, conv_graph *g)
{
    build_op(b, d, g);
    g->graph = create(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    set(b, g->graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g->op);
    set(b, g->graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &cx->dnn);
    G(b, cudnnBackendFinalize(g->graph));
}

/* Up to max engine configurations of one heuristics mode into cfgs; returns
 * how many (0 when the mode offers none or fails). */
static int heuristics(cudnnBackendDescriptor_t graph, cudnnBackendHeurMode_t mode, cudnnBackendDescriptor_t *cfgs,
                      int max)
{
    chain b = {};
    cudnnBackendDescriptor_t h = create(&b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    set_desc(&b, h, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
    set(&b, h, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    G(&b, cudnnBackendFinalize(h));
    int64_t count = 0, got = 0;
    G(&b, cudnnBackendGetAttribute(h, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL));
    if (count > max)
        count = max;
    int made = 0;
    while (made < count) {
        cfgs[made] = create(&b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
        if (b.st != CUDNN_STATUS_SUCCESS)
            break;
        made++;
    }
    G(&b, cudnnBackendGetAttribute(h, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, made, &got, cfgs));
    destroy(h);
    if (b.st != CUDNN_STATUS_SUCCESS || got < 0) {
        for (int i = 0; i < made; i++)
            destroy(cfgs[i]);
        if (getenv("DFEW_CUDA_VERBOSE"))
            fprintf(stderr, "dfew cuda: graph heuristics mode %d: %s (%s)\n", (int)mode, cudnnGetErrorString(b.st),
                    b.what ? b.what : "");
        return 0;
    }
    for (int i = (int)got; i < made; i++)
        destroy(cfgs[i]);
    return (int)got;
}

int conv_graph_notes_allowed(const conv_graph_desc *d, const cudnnBackendNumericalNote_t *notes, int count)
{
    for (int i = 0; i < count; i++) {
        switch (notes[i]) {
        case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS: /* inputs narrowed below the precision asked for */
            return 0;
        case CUDNN_NUMERICAL_NOTE_TENSOR_CORE: /* TF32 for float data */
            if (!d->tensor_ops)
                return 0;
            break;
        case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:
        case CUDNN_NUMERICAL_NOTE_FFT:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13:
            if (!d->tensor_ops && !d->fp32_transforms)
                return 0;
            break;
        default:
            break;
        }
    }
    return 1;
}

/* Does the precision allow the engine of cfg? *index receives its global index. */
static int allowed(const conv_graph_desc *d, cudnnBackendDescriptor_t cfg, int64_t *index)
{
    chain b = {};
    cudnnBackendDescriptor_t eng = create(&b, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    int64_t n = 0;
    G(&b, cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng));
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t nn = 0;
    G(&b, cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                   CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &nn, notes));
    *index = -1;
    G(&b, cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, index));
    destroy(eng);
    return b.st == CUDNN_STATUS_SUCCESS && conv_graph_notes_allowed(d, notes, (int)nn);
}

/* One execution of plan on the given pointers; a cuDNN status. */
static cudnnStatus_t execute(cudnnHandle_t dnn, cudnnBackendDescriptor_t plan, void *x, void *w, void *y, void *ws)
{
    chain b = {};
    const int64_t uids[3] = {UID_X, UID_W, UID_Y};
    void *ptrs[3] = {x, w, y};
    cudnnBackendDescriptor_t vp = create(&b, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    set(&b, vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
    set(&b, vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptrs);
    set(&b, vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    G(&b, cudnnBackendFinalize(vp));
    G(&b, cudnnBackendExecute(dnn, plan, vp));
    destroy(vp);
    return b.st;
}

/* x, w, y of a direction's a, b, out */
static void operands(int dir, const void *a, const void *b, void *out, void **x, void **w, void **y)
{
    if (dir == DIR_FWD)
        *x = (void *)a, *w = (void *)b, *y = out;
    else if (dir == DIR_BWD_DATA)
        *w = (void *)a, *y = (void *)b, *x = out;
    else
        *x = (void *)a, *y = (void *)b, *w = out;
}

/* Milliseconds of one run (negative when the plan fails to execute). */
static float time_run(ctx *cx, cudnnBackendDescriptor_t plan, void *x, void *w, void *y, void *ws, cudaEvent_t e0,
                      cudaEvent_t e1)
{
    cudaEventRecord(e0, cx->stream);
    cudnnStatus_t st = execute(cx->dnn, plan, x, w, y, ws);
    cudaEventRecord(e1, cx->stream);
    if (cudaEventSynchronize(e1) != cudaSuccess || st != CUDNN_STATUS_SUCCESS)
        return -1.f;
    float ms = -1.f;
    cudaEventElapsedTime(&ms, e0, e1);
    return ms;
}

int conv_graph_check(const conv_graph_desc *d, char *err, size_t err_len)
{
    conv_graph g = {};
    chain b = {};
    build_op(&b, d, &g);
    conv_graph_free_parts(&g);
    if (b.st == CUDNN_STATUS_SUCCESS)
        return 0;
    snprintf(err, err_len, "cuDNN refuses the %s conv n%d c%d %dx%dx%d -> oc%d k%dx%dx%d s%dx%dx%d p%dx%dx%d: %s in %s",
             d->dir == DIR_FWD ? "forward" : d->dir == DIR_BWD_DATA ? "backward-data" : "backward-filter", d->n, d->c,
             d->t, d->h, d->w, d->oc, d->kt, d->kh, d->kw, d->st, d->sh, d->sw, d->pt, d->ph, d->pw,
             cudnnGetErrorString(b.st), b.what);
    return -EINVAL;
}

int conv_graph_make(ctx *cx, const conv_graph_desc *d, const void *a, const void *b, void *out, void *ws,
                    size_t ws_bytes, conv_graph **gout)
{
    static const char *what[3] = {"forward", "backward-data", "backward-filter"};
    const int verbose = getenv("DFEW_CUDA_VERBOSE") != NULL;
    *gout = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    CU_TRY(cx, cudaEventCreate(&e0));
    cudaError_t ce = cudaEventCreate(&e1);
    conv_graph *g = ce == cudaSuccess ? (conv_graph *)calloc(1, sizeof *g) : NULL;
    if (!g) {
        cudaEventDestroy(e0);
        if (e1)
            cudaEventDestroy(e1);
        return ce != cudaSuccess ? fail_cuda(cx, ce, "cudaEventCreate", __FILE__, __LINE__)
                                 : fail(cx, -ENOMEM, "out of host memory for a convolution graph");
    }
    g->dir = d->dir;
    chain bc = {};
    build_graph(&bc, cx, d, g);
    if (bc.st != CUDNN_STATUS_SUCCESS) {
        fprintf(stderr, "dfew cuda: graph API refuses the %s conv c%d -> oc%d k%dx%dx%d s%dx%dx%d: %s (%s, line %d)\n",
                what[d->dir], d->c, d->oc, d->kt, d->kh, d->kw, d->st, d->sh, d->sw, cudnnGetErrorString(bc.st),
                bc.what, bc.line);
        conv_graph_free(g);
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
        return 0;
    }
    cudnnBackendDescriptor_t cfgs[MAX_HEUR + MAX_FALLBACK];
    int ncfg = heuristics(g->graph, CUDNN_HEUR_MODE_A, cfgs, MAX_HEUR);
    ncfg += heuristics(g->graph, CUDNN_HEUR_MODE_FALLBACK, cfgs + ncfg, MAX_FALLBACK);

    void *x, *w, *y;
    operands(d->dir, a, b, out, &x, &w, &y);
    const char *limit_env = getenv("DFEW_CUDA_GRAPH_SEARCH_S");
    const double limit = limit_env && *limit_env ? atof(limit_env) : SEARCH_S_DEFAULT, t_start = now_s();
    int tried = 0, skipped = 0;
    for (int i = 0; i < ncfg; i++) {
        int64_t index = -1, wsz = 0;
        cudnnBackendDescriptor_t cfg = cfgs[i], plan = NULL;
        cfgs[i] = NULL;
        if (g->plan && now_s() - t_start > limit) { /* out of search time: keep the best so far */
            destroy(cfg);
            skipped++;
            continue;
        }
        const double t_cfg = now_s();
        chain pb = {};
        if (allowed(d, cfg, &index)) {
            plan = create(&pb, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
            set(&pb, plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &cx->dnn);
            set_desc(&pb, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfg);
            G(&pb, cudnnBackendFinalize(plan));
            int64_t n = 0;
            G(&pb, cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                            &wsz));
        } else {
            pb.st = CUDNN_STATUS_NOT_SUPPORTED;
        }
        float ms = -1.f;
        if (pb.st == CUDNN_STATUS_SUCCESS && wsz <= (int64_t)ws_bytes && d->untimed) {
            tried++;
            ms = 0.f;
        } else if (pb.st == CUDNN_STATUS_SUCCESS && wsz <= (int64_t)ws_bytes) {
            tried++;
            ms = time_run(cx, plan, x, w, y, ws, e0, e1); /* the first run pays one-time costs */
            for (int r = 0; r < TIMED_RUNS && ms >= 0 && (!g->plan || ms < 4 * g->ms); r++) {
                float t = time_run(cx, plan, x, w, y, ws, e0, e1);
                ms = r == 0 || t < ms ? t : ms;
            }
        }
        ce = cudaGetLastError();
        if (ce != cudaSuccess) { /* a sticky CUDA error: nothing more can run */
            destroy(plan);
            destroy(cfg);
            for (int j = i + 1; j < ncfg; j++)
                destroy(cfgs[j]);
            cudaEventDestroy(e0);
            cudaEventDestroy(e1);
            conv_graph_free(g);
            return fail_cuda(cx, ce, "timing a cuDNN graph engine", __FILE__, __LINE__);
        }
        if (verbose && pb.st == CUDNN_STATUS_SUCCESS)
            fprintf(stderr,
                    "dfew cuda: graph %s c%d -> oc%d %dx%dx%d k%dx%dx%d: engine %lld, workspace %lld, %.3f ms "
                    "(planned and timed in %.2f s)\n",
                    what[d->dir], d->c, d->oc, d->t, d->h, d->w, d->kt, d->kh, d->kw, (long long)index,
                    (long long)wsz, (double)ms, now_s() - t_cfg);
        if (ms >= 0 && (!g->plan || ms < g->ms)) {
            destroy(g->plan);
            destroy(g->cfg);
            g->plan = plan, g->cfg = cfg, g->ms = ms, g->ws = wsz, g->engine = index;
        } else {
            destroy(plan);
            destroy(cfg);
        }
        if (d->untimed && g->plan) { /* heuristic order: the first usable one */
            for (int j = i + 1; j < ncfg; j++)
                destroy(cfgs[j]);
            break;
        }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (!g->plan) {
        fprintf(stderr,
                "dfew cuda: no graph engine for the %s conv n%d c%d %dx%dx%d -> oc%d k%dx%dx%d s%dx%dx%d (%d configs, "
                "%d ran); it runs through the legacy API\n",
                what[d->dir], d->n, d->c, d->t, d->h, d->w, d->oc, d->kt, d->kh, d->kw, d->st, d->sh, d->sw, ncfg,
                tried);
        conv_graph_free(g);
        return 0;
    }
    if (verbose)
        fprintf(stderr,
                "dfew cuda: graph %s c%d -> oc%d %dx%dx%d: engine %lld chosen, %.3f ms (%d of %d configs ran, %d left "
                "untried after %.1f s of search)\n",
                what[d->dir], d->c, d->oc, d->t, d->h, d->w, (long long)g->engine, (double)g->ms, tried, ncfg, skipped,
                now_s() - t_start);
    *gout = g;
    return 0;
}

int conv_graph_run(ctx *cx, const conv_graph *g, const void *a, const void *b, void *out)
{
    void *x, *w, *y;
    operands(g->dir, a, b, out, &x, &w, &y);
    if (((uintptr_t)x | (uintptr_t)w | (uintptr_t)y | (uintptr_t)cx->ws) & 15)
        return fail(cx, -EINVAL,
                    "a convolution tensor is not 16-byte aligned, which the graph API plans assume; this is a bug in "
                    "the CUDA backend (unset DFEW_CUDA_CONV_API to use the legacy API)");
    DNN_TRY(cx, execute(cx->dnn, g->plan, x, w, y, cx->ws));
    return 0;
}

} // namespace cu
