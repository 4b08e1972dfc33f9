/* test_conv_graph_desc.cu: the part of the CUDA backend's graph-API
 * convolutions (workers/train/cuda/conv_graph.cu) that runs without a GPU:
 * for every convolution of the full 3D ResNet-18 and C3D at batch 24 (and of
 * a small r3d18), in fp32 and bf16, each direction (backward-data also adding
 * to its output) is described as cuDNN tensors, a convolution and an
 * operation, and cuDNN must finalize all of them; a convolution whose kernel
 * is larger than its padded input must be refused; and the engine filter by
 * numerical notes must keep and drop what each precision allows (table
 * below). Engine choice and
 * execution need a device: tests/gpu/check.sh runs those (steps *_graph).
 * Host code only, compiled by nvcc to reach the C++ API. */
#include <stdio.h>
#include <string.h>

#include "conv_graph.cuh"

extern "C" {
#include "../cpu/model.h"
#include "host.h"
}

static int g_fail, g_checks;

static void check_model(const char *name, int arch, float width, int t, int hw, int batch)
{
    struct dfew_train_config cfg;
    dfew_train_config_defaults(&cfg);
    cfg.arch = arch, cfg.width = width, cfg.in_t = t, cfg.in_h = cfg.in_w = hw, cfg.max_batch = batch;
    static struct dfew_train_model m;
    char err[512];
    if (model_build_shadow(&m, &cfg, err, sizeof err)) {
        printf("FAIL %s: model_build_shadow: %s\n", name, err);
        g_fail++;
        return;
    }
    static const cudnnDataType_t types[2] = {CUDNN_DATA_FLOAT, CUDNN_DATA_BFLOAT16};
    int n = 0;
    for (int u = 0; u < m.nunits; u++) {
        const struct conv3d_shape *s = &m.units[u].cs;
        for (int ty = 0; ty < 2; ty++)
            for (int dir = 0; dir < 4; dir++) { /* 3: backward-data with beta 1 */
                cu::conv_graph_desc d = {batch, s->c, s->t, s->h, s->w, s->oc, s->kt, s->kh, s->kw, s->st, s->sh,
                                         s->sw, s->pt, s->ph, s->pw, types[ty], ty == 1, 0,
                                         dir == 3 ? (int)cu::DIR_BWD_DATA : dir, dir == 3 ? 1.f : 0.f, 0};
                g_checks++, n++;
                if (cu::conv_graph_check(&d, err, sizeof err)) {
                    printf("FAIL %s unit %d: %s\n", name, u, err);
                    g_fail++;
                }
            }
    }
    printf("%s: %d convolutions, %d descriptions checked\n", name, m.nunits, n);
    model_free(&m);
}

/* The engine filter: one row per precision policy and set of notes. */
static void check_notes(void)
{
    enum { FP32, FP32_FAST, TENSOR }; /* fp32 accurate, fp32 with PyTorch's engine set, tf32 / bf16 */
    static const struct {
        const char *what;
        cudnnBackendNumericalNote_t notes[2];
        int count;
        int allowed[3];
    } rows[] = {
        {"no notes", {}, 0, {1, 1, 1}},
        {"nondeterministic", {CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC}, 1, {1, 1, 1}},
        {"tensor core", {CUDNN_NUMERICAL_NOTE_TENSOR_CORE}, 1, {0, 0, 1}},
        {"down-converted inputs", {CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS}, 1, {0, 0, 0}},
        {"tensor core, down-converted", {CUDNN_NUMERICAL_NOTE_TENSOR_CORE, CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS},
         2, {0, 0, 0}},
        {"FFT", {CUDNN_NUMERICAL_NOTE_FFT}, 1, {0, 1, 1}},
        {"Winograd 4x4", {CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4}, 1, {0, 1, 1}},
        {"reduced-precision reduction", {CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION}, 1, {0, 1, 1}},
        {"FFT on tensor cores", {CUDNN_NUMERICAL_NOTE_FFT, CUDNN_NUMERICAL_NOTE_TENSOR_CORE}, 2, {0, 0, 1}},
    };
    static const char *policy[3] = {"fp32", "fp32 fast", "tf32/bf16"};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        for (int k = 0; k < 3; k++) {
            cu::conv_graph_desc d = {};
            d.dtype = k == TENSOR ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
            d.tensor_ops = k == TENSOR, d.fp32_transforms = k == FP32_FAST;
            const int got = cu::conv_graph_notes_allowed(&d, rows[r].notes, rows[r].count);
            g_checks++;
            if (got != rows[r].allowed[k]) {
                printf("FAIL engine filter: %s engine %s under %s (expected %s)\n", rows[r].what,
                       got ? "allowed" : "dropped", policy[k], rows[r].allowed[k] ? "allowed" : "dropped");
                g_fail++;
            }
        }
    printf("engine filter: %zu note sets x 3 precisions checked\n", sizeof rows / sizeof rows[0]);
}

int main(void)
{
    check_notes();
    check_model("r3d18 16x112x112", DFEW_ARCH_R3D18, 1.f, 16, 112, 24);
    check_model("c3d 16x112x112", DFEW_ARCH_C3D, 1.f, 16, 112, 24);
    check_model("r3d18 width 0.25, 8x32x32", DFEW_ARCH_R3D18, 0.25f, 8, 32, 4);

    /* the check can fail: a 3 x 7 x 7 kernel over a 2 x 4 x 4 input without padding */
    cu::conv_graph_desc bad = {2, 8, 2, 4, 4, 16, 3, 7, 7, 1, 1, 1, 0, 0, 0, CUDNN_DATA_FLOAT, 0, 0, cu::DIR_FWD, 0.f, 0};
    char err[512] = "";
    g_checks++;
    if (!cu::conv_graph_check(&bad, err, sizeof err)) {
        printf("FAIL: a kernel larger than its input was accepted\n");
        g_fail++;
    } else {
        printf("refused as it should be: %s\n", err);
    }
    printf("%d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
