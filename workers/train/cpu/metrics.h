/* metrics.h: the paper's evaluation measures from predictions: confusion
 * matrix, per-class recall, UAR (unweighted average recall = mean per-class
 * recall) and WAR (weighted average recall = accuracy). Pooling over folds,
 * as the paper does, is adding the folds' confusion matrices (the same as
 * concatenating their predictions). Pure functions; no database. */
#ifndef DFEW_TRAIN_METRICS_H
#define DFEW_TRAIN_METRICS_H

#include <stdint.h>

#define METRICS_MAX_CLASSES 16

struct metrics {
    int k;                                    /* classes */
    int64_t total, correct;
    int64_t support[METRICS_MAX_CLASSES];     /* true clips per class */
    float recall[METRICS_MAX_CLASSES];        /* per class; 0 where support is 0 */
    float uar;                                /* mean recall over classes with support > 0 */
    float war;                                /* correct / total */
};

/* argmax of each row of probs N x K (first maximum wins) into pred. */
void metrics_predict(int32_t *pred, const float *probs, int n, int k);
/* conf K x K (row = true label, column = prediction) += the n pairs.
 * Returns -EINVAL (nothing added) when a label is outside 0..k-1. */
int metrics_confusion_add(int64_t *conf, const int32_t *truth, const int32_t *pred, int n, int k);
/* Everything from a (possibly pooled) confusion matrix. */
void metrics_from_confusion(struct metrics *out, const int64_t *conf, int k);

#endif
