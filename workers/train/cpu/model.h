/* model.h: the CPU backend's models (3D ResNet-18, C3D) built from the layers
 * of layers.h: one allocation each for parameters (+ buffers), gradients,
 * momentum and activations, reused across steps. Internal to the CPU backend
 * (backend.c wraps it in the plugin ABI; unit tests link it statically). */
#ifndef DFEW_TRAIN_CPU_MODEL_H
#define DFEW_TRAIN_CPU_MODEL_H

#include "../dfew_train.h"
#include "layers.h"

struct tensor {
    struct dfew_train_tensor_info info;
    int64_t off; /* into params (PARAM: also into grads and mom) */
};

/* conv [+ bias] [+ batchnorm] [+ relu] */
struct unit {
    struct conv3d_shape cs; /* cs.n = max_batch; set per call */
    int w, b, g, be, rm, rv; /* tensor indices, -1 = none */
    int bn, relu;
    int64_t pre, out, smean, srstd; /* activation offsets (pre == out without bn) */
};

struct block { /* r3d BasicBlock: relu(u2(u1(x)) + shortcut(x)) */
    int u1, u2, down; /* unit indices, down = -1 for identity */
    int64_t out;
};

struct pool {
    struct conv3d_shape cs;
    int64_t out, argmax;
};

struct fc {
    int w, b;
    int in, out, relu, dropout;
    int64_t y, mask; /* y N x out (after relu/dropout, in place) */
};

enum op_kind { OP_UNIT, OP_POOL };
struct op {
    int kind, idx;
};

#define MODEL_MAX_UNITS 32
#define MODEL_MAX_TENSORS 160

struct dfew_train_model {
    struct dfew_train_config cfg;
    struct tensor tensors[MODEL_MAX_TENSORS];
    int ntensors;
    int64_t num_params, num_floats; /* learnable scalars; + buffers */
    int64_t param_floats;           /* the learnable range (with alignment padding) */
    float *params, *grads, *mom;
    float *acts;
    int64_t act_floats, max_act; /* max_act: largest activation (max_batch) */
    struct conv3d_work ws;

    struct unit units[MODEL_MAX_UNITS];
    int nunits;
    struct block blocks[8]; /* r3d18 */
    int nblocks;
    struct pool pools[5]; /* c3d */
    struct op ops[16];    /* c3d feature extractor, in order */
    int nops;
    struct fc fcs[3]; /* r3d18: fc; c3d: fc6, fc7, fc8 */
    int nfc;
    int centers;      /* tensor index of the center loss centres, -1 */
    int64_t input, gap, feat, logits, probs, dfeat, dlogits, gbuf[3]; /* gbuf: backward scratch, max_act each */
    int64_t flat; /* C3D with channels-last or blocked activations: pool5's output channels-first, for fc6; else -1 */
    int feat_dim;
    int64_t in_floats; /* per sample */

    uint64_t rng;      /* dropout stream */
    int64_t sgd_steps; /* momentum buffers valid when > 0 */
    char layout_note[96]; /* why ws.layout: "auto: brgemm convs", "DFEW_TRAIN_CPU_LAYOUT", ... */
    char err[256];
};

/* Builds the model (weights initialised as torchvision / PyTorch do, from
 * cfg->seed). Returns 0 or negative, with a message in err. */
int model_build(struct dfew_train_model *m, const struct dfew_train_config *cfg, char *err, size_t err_len);
/* The same plan and initial weights with only params and mom allocated (grads,
 * acts and ws stay NULL): the CUDA backend's host shadow, which gives it the
 * layer plan, PyTorch's init and the checkpoint format of this backend. */
int model_build_shadow(struct dfew_train_model *m, const struct dfew_train_config *cfg, char *err, size_t err_len);
void model_free(struct dfew_train_model *m);
/* Checks batch b against the model's config (size, input format, labels);
 * 0, or -EINVAL with the reason in m->err. In backend.c; the CUDA backend
 * calls it on its host shadow so that both refuse alike. */
int model_check_batch(struct dfew_train_model *m, const struct dfew_train_batch *b, int need_labels);

/* Makes the convolutions ready for batches of n (oneDNN primitives, created
 * once per batch size; workspace). 0, or negative with the reason in m->err.
 * Before model_forward with an n not seen before. */
int model_prepare(struct dfew_train_model *m, int n);
/* Loads batch b into the input activation (normalising uint8). */
int model_set_input(struct dfew_train_model *m, const struct dfew_train_batch *b);
/* Forward from the input activation; train = batch statistics and dropout.
 * Leaves logits and probs (and the features) in the activations. */
void model_forward(struct dfew_train_model *m, int n, int train);
/* Losses, then backward into m->grads (overwritten); updates the centres of
 * the center loss. Needs the train-mode forward of the same batch. */
void model_loss_backward(struct dfew_train_model *m, int n, const int32_t *labels, struct dfew_train_losses *out);
void model_sgd(struct dfew_train_model *m);

static inline float *model_act(const struct dfew_train_model *m, int64_t off) { return m->acts + off; }
static inline float *model_param(const struct dfew_train_model *m, int t) { return m->params + m->tensors[t].off; }
static inline float *model_grad(const struct dfew_train_model *m, int t) { return m->grads + m->tensors[t].off; }

#endif
