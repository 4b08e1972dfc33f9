/* model.cuh: the CUDA backend's model: 3D ResNet-18 and C3D on the device,
 * built from the CPU backend's plan (a host shadow made by
 * model_build_shadow, workers/train/cpu/model.h: the same units, tensor
 * table, parameter offsets, PyTorch initialisation and checkpoint format) and
 * run with the layers of layers.cuh. One device allocation each for
 * parameters (+ buffers), gradients, momentum and activations (+ a bf16 copy
 * of the parameters in the bf16 mode), reused across steps.
 *
 * The input pipeline: each batch goes through one of two pinned host slots,
 * is copied on a second stream (copy), and is normalised (uint8) or
 * transposed (float) on the device into the input activation. train_step
 * and forward_backward return as soon as the loss is known (after the
 * forward pass) and leave the backward pass and the SGD update running on
 * the device; the next call fills the other pinned slot and starts its copy
 * while they run. Everything that reads device state from the host
 * synchronises first. Internal to the CUDA backend (backend.cu wraps it in
 * the plugin ABI). */
#ifndef DFEW_TRAIN_CUDA_MODEL_CUH
#define DFEW_TRAIN_CUDA_MODEL_CUH

#include "layers.cuh"

extern "C" {
#include "../cpu/model.h"
}

namespace cu {

struct dev_losses {
    float ce, aux;
    int correct, active;
};

struct staging_slot {
    uint8_t *host;         /* pinned: the batch bytes, then the labels at lab_off */
    uint8_t *dev;          /* the same on the device */
    size_t cap;            /* bytes of each */
    cudaEvent_t uploaded;  /* on the copy stream: the pinned bytes are on the device */
    cudaEvent_t consumed;  /* on the compute stream: the device bytes were read */
};

struct model {
    struct dfew_train_model *plan; /* host shadow of the CPU backend: plan, tensors, params + momentum on the host */
    dfew_train_config cfg;
    ctx cx;
    cudaStream_t copy;
    int act_bf16; /* activations and conv weights in bf16 */
    char device_name[128];

    float *params, *grads, *mom; /* device, at the shadow's offsets; conv weights OC x kT x kH x kW x C */
    bf16 *params16;              /* bf16 copy of the learnable range (bf16 mode) */
    char *arena;                 /* every activation below */
    size_t arena_bytes;
    struct {
        void *pre, *out; /* out == pre without batchnorm */
        float *smean, *srstd;
    } u[MODEL_MAX_UNITS];
    struct {
        void *out;
        int32_t *argmax;
    } p[5];
    struct {
        float *y;
        uint8_t *mask;
    } f[3];
    void *input, *g[4];
    float *gap, *probs, *dlogits, *dfeat, *fcin, *dfcin, *fcg;
    int32_t *labels;
    dev_losses *dl;

    char *host_io; /* pinned: losses, logits, probs */
    dev_losses *hl;
    float *hlogits, *hprobs;
    cudaEvent_t ready; /* the losses / outputs of the last forward are in host_io */
    staging_slot slot[2];
    int next_slot;

    /* DFEW_CUDA_PROFILE=1: device time of the phases of train_step (input,
     * forward, loss + backward, SGD) from the fourth step on, summed and
     * printed by model_destroy */
    int profile;
    cudaEvent_t pev[2][5]; /* two sets: a step's set is read two steps later, when it has surely completed */
    int pset, pending[2];
    double pms[4];
    int64_t psteps, pseen;

    uint64_t rng;      /* dropout stream, the CPU's */
    int64_t sgd_steps; /* momentum valid when > 0 */
    float lr;
};

/* Creates the model on device `device` (plan, allocations, initial weights
 * uploaded). Returns 0 or negative with a message in err. */
int model_create(model **out, const dfew_train_config *cfg, int device, const char *device_name, char *err,
                 size_t err_len);
void model_destroy(model *m);

/* Queues the upload of batch b (data and labels) into the input activation. */
int model_set_input(model *m, const dfew_train_batch *b);
/* Queues the forward pass; train = batch statistics and dropout. */
int model_forward(model *m, int n, int train);
/* Queues the losses, their copy to host_io (+ logits when want_logits), records
 * `ready`, then queues the whole backward pass into grads (overwritten) and the
 * centre update. */
int model_loss_backward(model *m, int n, int want_logits);
/* Queues the SGD step. */
int model_sgd(model *m);
/* Profile mode: records phase boundary i (0..4) of a step; model_profile_collect
 * adds the phase times of earlier steps whose events completed (wait: all). */
int model_profile_mark(model *m, int i);
void model_profile_collect(model *m, int wait);
/* Queues softmax probabilities of the last forward and their copy (with the
 * logits) to host_io; records `ready`. */
int model_outputs(model *m, int n);

/* Parameters between the device and the shadow (host, PyTorch layout).
 * These synchronise the compute stream. */
int model_download(model *m, int with_momentum);
int model_upload(model *m, int with_momentum);

/* One tensor between PyTorch's layout (conv weights OC x C x kT x kH x kW)
 * and the device's (OC x kT x kH x kW x C); other tensors are copied. */
void tensor_layout(float *dst, const float *src, const struct dfew_train_tensor_info *ti, int to_device);

} // namespace cu

#endif
