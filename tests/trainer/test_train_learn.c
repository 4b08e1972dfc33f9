/* test_train_learn.c: the CPU backend learns. A generated 7-class set of
 * moving patterns (a bright square moving right, left, down, up, along a
 * diagonal, standing still, or blinking; random start, noise),
 * 16 x 20 x 20 uint8 clips cropped at random to 16 x 16 for training and at
 * the centre for testing. A small 3D ResNet-18 (width 1/16) trained with the
 * paper's loss (CE + 10 EC-STFL) must reach >= 90% test accuracy within a
 * bounded number of steps. Left and right differ only in time, so the model
 * must use its temporal convolutions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "backend.h"
#include "check.h"
#include "host.h"
#include "metrics.h"
#include "patterns.h"
#include "rng.h"

#define T 8
#define H 20
#define W 20
#define C 16 /* crop */
#define K 7
#define NTRAIN 210
#define NTEST 70
#define BATCH 14
#define MAX_STEPS 300

static void test_learns_moving_patterns(void)
{
    const size_t clip_sz = (size_t)T * H * W * 3, crop_sz = (size_t)T * C * C * 3;
    uint8_t *train = malloc(clip_sz * NTRAIN), *test = malloc(clip_sz * NTEST), *batch = malloc(crop_sz * BATCH);
    int32_t ytrain[NTRAIN], ytest[NTEST], lab[BATCH], pred[BATCH];
    uint64_t rng = 2020;
    for (int i = 0; i < NTRAIN; i++)
        pattern_clip(train + i * clip_sz, ytrain[i] = i % K, T, H, W, &rng);
    for (int i = 0; i < NTEST; i++)
        pattern_clip(test + i * clip_sz, ytest[i] = i % K, T, H, W, &rng);

    const struct dfew_train_backend *be = dfew_train_cpu_backend();
    struct dfew_train_config cfg;
    dfew_train_config_defaults(&cfg);
    cfg.width = 1.f / 16, cfg.in_t = T, cfg.in_h = C, cfg.in_w = C, cfg.max_batch = BATCH;
    cfg.lr = 0.02f, cfg.seed = 7; /* loss: the default CE + 10 EC-STFL */
    cfg.threads = 1; /* small layers: one thread is fastest, and immune to a loaded machine */
    struct dfew_train_model *m;
    char err[256];
    CHECK(be->model_create(&cfg, &m, err, sizeof err) == 0);
    if (!m)
        return;
    int order[NTRAIN];
    for (int i = 0; i < NTRAIN; i++)
        order[i] = i;
    uint64_t aug = 11;
    float acc = 0, first_loss = 0, last_loss = 0;
    int step = 0;
    while (step < MAX_STEPS) {
        for (int i = NTRAIN - 1; i > 0; i--) { /* shuffle each epoch */
            int j = (int)rng_below(&aug, (uint32_t)(i + 1)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (int b0 = 0; b0 + BATCH <= NTRAIN && step < MAX_STEPS; b0 += BATCH, step++) {
            for (int i = 0; i < BATCH; i++) {
                augment_clip(batch + i * crop_sz, train + order[b0 + i] * clip_sz, T, H, W, C, C, 0, &aug, NULL);
                lab[i] = ytrain[order[b0 + i]];
            }
            struct dfew_train_batch b = {BATCH, DFEW_INPUT_U8_NTHWC, batch, lab};
            struct dfew_train_losses L;
            CHECK(be->train_step(m, &b, &L) == 0);
            if (step == 0)
                first_loss = L.total;
            last_loss = L.total;
        }
        /* evaluate after each epoch */
        int64_t conf[K * K] = {0};
        for (int b0 = 0; b0 < NTEST; b0 += BATCH) {
            for (int i = 0; i < BATCH; i++)
                center_crop_clip(batch + i * crop_sz, test + (b0 + i) * clip_sz, T, H, W, C, C);
            struct dfew_train_batch b = {BATCH, DFEW_INPUT_U8_NTHWC, batch, NULL};
            float probs[BATCH * K];
            CHECK(be->evaluate(m, &b, probs, NULL) == 0);
            metrics_predict(pred, probs, BATCH, K);
            metrics_confusion_add(conf, ytest + b0, pred, BATCH, K);
        }
        struct metrics mt;
        metrics_from_confusion(&mt, conf, K);
        acc = mt.war;
        printf("  step %3d: loss %.3f, test accuracy %.3f, UAR %.3f\n", step, last_loss, mt.war, mt.uar);
        if (acc >= 0.9f)
            break;
    }
    printf("  reached %.1f%% after %d steps (loss %.3f -> %.3f)\n", 100 * acc, step, first_loss, last_loss);
    CHECK(acc >= 0.9f);
    CHECK(last_loss < first_loss);
    be->destroy(m);
    free(train), free(test), free(batch);
}

int main(void)
{
    RUN(test_learns_moving_patterns);
    return check_report();
}
