/* dfew_train.h: the trainer plugin ABI (public, pure C). A backend is a shared
 * module exporting ONE symbol, dfew_train_backend_entry, that returns a
 * versioned table of function pointers over opaque model handles (the
 * ggml-backend way). The host (workers/train/host.c) dlopens backends, checks
 * api_version and struct_size, prefers a backend whose device_probe finds a
 * device (CUDA) and falls back to the CPU reference backend.
 *
 * This header is the whole contract between host and backends: no backend
 * includes host code and the host sees no backend internals. It is not the
 * layer API (that is workers/train/cpu/layers.h, mirrored by the CUDA backend).
 *
 * Conventions, for every backend:
 * - Return values: 0 (or a count) on success, a negative errno-style code on
 *   failure; after a failure last_error(model) says what went wrong and what to
 *   do next (model may be NULL for errors of model_create).
 * - Layout: activations are N x C x T x H x W (PyTorch NCDHW), conv weights
 *   Cout x Cin x kT x kH x kW, linear weights out x in. Parameter names and
 *   shapes equal PyTorch's state_dict of the same model (torchvision r3d_18
 *   naming for "r3d18"), so reference files and checkpoints can be compared
 *   tensor by tensor.
 * - Input: a batch is either uint8 clips exactly as the preprocessing stage
 *   stores them, N x T x H x W x 3 (RGB, HWC per frame), which the backend
 *   normalises per channel, x = (u / 255 - mean[c]) / std[c], and transposes to
 *   NCTHW; or float clips N x 3 x T x H x W that are already normalised (used by
 *   the reference tests). The uint8 form is the production path: it is 4x less
 *   to move to a device and lets a GPU backend normalise on the device.
 * - Determinism: for a fixed seed, configuration and thread count a backend
 *   gives the same results on every run on one machine (the CPU backend
 *   bitwise; what the thread count and the CPU may change, in rounding only,
 *   is in cpu/layers.h).
 */
#ifndef DFEW_TRAIN_H
#define DFEW_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bump on any incompatible change of this header. The host refuses a backend
 * whose api_version differs, or whose struct_size is smaller than the table it
 * was built against. */
#define DFEW_TRAIN_API_VERSION 1u
#define DFEW_TRAIN_ENTRY_SYMBOL "dfew_train_backend_entry"
#define DFEW_TRAIN_MAX_CLASSES 16
#define DFEW_TRAIN_NAME_MAX 64

enum dfew_train_arch {
    DFEW_ARCH_R3D18 = 0, /* 3D ResNet-18, layer shapes of torchvision's r3d_18 */
    DFEW_ARCH_C3D = 1,   /* C3D (Tran et al. 2015): 8 conv, 5 pool, fc6/fc7/fc8 */
};

enum dfew_train_loss {
    DFEW_LOSS_CE = 0,        /* softmax cross entropy only */
    DFEW_LOSS_ECSTFL = 1,    /* CE + lambda * EC-STFL, paper eq. (9), L2 distances */
    DFEW_LOSS_ECSTFL_L1 = 2, /* CE + lambda * EC-STFL as in the authors' later code (L1) */
    DFEW_LOSS_CENTER = 3,    /* CE + lambda * center loss (Wen et al. 2016) */
};

/* Arithmetic of a backend with a choice (CUDA); the CPU backend always
 * computes in fp32 and ignores the field. The losses are fp32 in every mode. */
enum dfew_train_precision {
    DFEW_PRECISION_FP32 = 0, /* fp32 everywhere (default; the parity tests) */
    DFEW_PRECISION_TF32 = 1, /* fp32 storage, TF32 tensor cores in convolutions and matrix products */
    DFEW_PRECISION_BF16 = 2, /* autocast-style: bf16 activations and conv weights, fp32 master
                              * weights, batchnorm statistics, classifier and losses */
};

enum dfew_train_input {
    DFEW_INPUT_U8_NTHWC = 0,  /* uint8 N x T x H x W x 3, normalised by the backend */
    DFEW_INPUT_F32_NCTHW = 1, /* float N x 3 x T x H x W, already normalised */
};

/* Everything that defines a model and its training. Fill with
 * dfew_train_config_defaults() (in the host) or by hand; struct_size lets a
 * later version append fields. */
struct dfew_train_config {
    uint32_t struct_size; /* sizeof(struct dfew_train_config) */
    int32_t arch;         /* enum dfew_train_arch */
    int32_t num_classes;  /* 7 for DFEW (1..DFEW_TRAIN_MAX_CLASSES) */
    float width;          /* channel width multiplier; 1.0 = the published model */
    int32_t in_t, in_h, in_w; /* input clip size; 16 x 112 x 112 for the paper */
    int32_t max_batch;    /* activations are sized for batches up to this */
    int32_t loss;         /* enum dfew_train_loss */
    float lambda;         /* L = CE + lambda * aux (10 for EC-STFL, 1e-4 for center) */
    float center_alpha;   /* centre update rate of the center loss (Wen et al.: 0.5) */
    uint64_t seed;        /* weight init, dropout masks */
    float lr, momentum, weight_decay; /* SGD (PyTorch semantics, see sgd_update) */
    float dropout;        /* C3D fc6/fc7 dropout probability (r3d18 has none) */
    float mean[3], std[3];/* per-channel normalisation of uint8 input */
    int32_t threads;      /* CPU threads for the backend; 0 = all online cores */
    int32_t precision;    /* enum dfew_train_precision (appended after version 1's
                           * fields; it fills what was tail padding, so struct_size
                           * is unchanged and 0 = fp32 for older hosts) */
};

/* What device_probe found. */
struct dfew_train_device {
    char name[128];        /* "Intel Xeon ... (2 threads)", "NVIDIA H100 80GB HBM3" */
    uint64_t memory_bytes; /* device memory (GPU) or physical memory (CPU) */
    int32_t compute_units; /* cores or SMs */
};

/* One mini-batch. labels may be NULL for evaluate. */
struct dfew_train_batch {
    int32_t n;             /* 1..max_batch */
    int32_t input;         /* enum dfew_train_input */
    const void *data;      /* uint8 N x T x H x W x 3, or float N x 3 x T x H x W */
    const int32_t *labels; /* N labels in 0..num_classes-1 */
};

/* The parts of one step's loss. */
struct dfew_train_losses {
    float total;       /* ce + lambda * aux */
    float ce;          /* mean softmax cross entropy */
    float aux;         /* EC-STFL or center loss (0 for CE) */
    int32_t aux_active;/* 0 when the aux term was skipped (EC-STFL, one class) */
    int32_t correct;   /* argmax(logits) == label count over the batch */
};

/* Where training stands; saved in and restored from a checkpoint so a job can
 * resume exactly. The backend stores it verbatim (plus its own RNG state). */
struct dfew_train_progress {
    int32_t epoch;           /* epochs completed */
    int64_t step;            /* optimizer steps completed */
    float lr;                /* current learning rate */
    float best_loss;         /* plateau scheduler state (see plateau.h) */
    int32_t bad_epochs;
    int32_t reserved[7];
};

/* What a created model is. */
struct dfew_train_info {
    char backend[DFEW_TRAIN_NAME_MAX]; /* "cpu", "cuda" */
    char device[128];
    char arch[DFEW_TRAIN_NAME_MAX];    /* "r3d18", "c3d" */
    int64_t num_params;                /* learnable scalars */
    int64_t num_tensors;               /* tensors enumerated by tensor_info */
    int64_t feature_dim;               /* size of the last hidden layer */
    int64_t param_bytes, activation_bytes, workspace_bytes; /* the allocations */
};

/* One named tensor of a model, for reference tests and inspection. */
enum dfew_train_tensor_kind {
    DFEW_TENSOR_PARAM = 0,  /* learnable; has a gradient and a momentum buffer */
    DFEW_TENSOR_BUFFER = 1, /* running statistics (batchnorm), centres of the center loss */
};
enum dfew_train_tensor_part {
    DFEW_PART_VALUE = 0,
    DFEW_PART_GRAD = 1,     /* PARAM only: gradient of the last forward_backward */
    DFEW_PART_MOMENTUM = 2, /* PARAM only: SGD momentum buffer */
};
struct dfew_train_tensor_info {
    char name[DFEW_TRAIN_NAME_MAX]; /* PyTorch state_dict name, "layer1.0.conv1.0.weight" */
    int32_t kind;                   /* enum dfew_train_tensor_kind */
    int32_t ndim;
    int64_t shape[5];
    int64_t numel;
};

struct dfew_train_model; /* opaque */

struct dfew_train_backend {
    uint32_t api_version; /* DFEW_TRAIN_API_VERSION */
    uint32_t struct_size; /* sizeof(struct dfew_train_backend) */
    const char *name;     /* "cpu", "cuda" */

    /* 1 when the backend's device is usable (fills *dev), 0 when absent (the
     * host then falls back), negative on error. Cheap; no model needed. */
    int (*device_probe)(struct dfew_train_device *dev);

    /* Allocate and initialise a model (PyTorch's default init, from cfg->seed).
     * On failure returns negative and writes a message into err. */
    int (*model_create)(const struct dfew_train_config *cfg, struct dfew_train_model **out, char *err,
                        size_t err_len);
    void (*destroy)(struct dfew_train_model *m);
    int (*describe)(const struct dfew_train_model *m, struct dfew_train_info *info);
    const char *(*last_error)(const struct dfew_train_model *m);

    /* One training step: forward (train mode), loss, backward, SGD update.
     * Equivalent to forward_backward followed by sgd_update. */
    int (*train_step)(struct dfew_train_model *m, const struct dfew_train_batch *b, struct dfew_train_losses *out);
    /* Forward in train mode, loss and backward into the gradients (which are
     * overwritten, not accumulated); batchnorm running statistics and the
     * centres of the center loss are updated as in a training step. logits
     * may be NULL, else receives N x num_classes. */
    int (*forward_backward)(struct dfew_train_model *m, const struct dfew_train_batch *b,
                            struct dfew_train_losses *out, float *logits);
    /* PyTorch SGD: g += wd * w; v = momentum * v + g (v = g on the first step);
     * w -= lr * v. */
    int (*sgd_update)(struct dfew_train_model *m);
    int (*set_lr)(struct dfew_train_model *m, float lr);

    /* Eval mode (running statistics, no dropout): probabilities N x num_classes
     * (softmax), and optionally the logits (may be NULL). */
    int (*evaluate)(struct dfew_train_model *m, const struct dfew_train_batch *b, float *probs, float *logits);

    /* Checkpoint: magic + version header, the config, progress, every tensor
     * (values, momentum), the optimizer step count and the RNG state, so that
     * training resumes bitwise. Written to path.tmp then renamed. load checks
     * that the file matches the model's config and refuses otherwise. */
    int (*save)(struct dfew_train_model *m, const char *path, const struct dfew_train_progress *p);
    int (*load)(struct dfew_train_model *m, const char *path, struct dfew_train_progress *p);

    /* Tensor access for reference tests (host memory, float32). */
    int (*tensor_info)(const struct dfew_train_model *m, int64_t i, struct dfew_train_tensor_info *ti);
    int (*tensor_read)(const struct dfew_train_model *m, int64_t i, int part, float *dst);
    int (*tensor_write)(struct dfew_train_model *m, int64_t i, int part, const float *src);
};

/* The one exported symbol of a backend module. */
typedef const struct dfew_train_backend *(*dfew_train_entry_fn)(void);
const struct dfew_train_backend *dfew_train_backend_entry(void);

#ifdef __cplusplus
}
#endif
#endif
