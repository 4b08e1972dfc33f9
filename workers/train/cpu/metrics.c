/* metrics.c: confusion matrix, per-class recall, UAR, WAR (see metrics.h). */
#include <errno.h>
#include <string.h>

#include "metrics.h"

void metrics_predict(int32_t *pred, const float *probs, int n, int k)
{
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < k; j++)
            if (probs[(int64_t)i * k + j] > probs[(int64_t)i * k + best])
                best = j;
        pred[i] = best;
    }
}

int metrics_confusion_add(int64_t *conf, const int32_t *truth, const int32_t *pred, int n, int k)
{
    for (int i = 0; i < n; i++)
        if (truth[i] < 0 || truth[i] >= k || pred[i] < 0 || pred[i] >= k)
            return -EINVAL;
    for (int i = 0; i < n; i++)
        conf[truth[i] * k + pred[i]]++;
    return 0;
}

void metrics_from_confusion(struct metrics *out, const int64_t *conf, int k)
{
    memset(out, 0, sizeof *out);
    out->k = k;
    int present = 0;
    double sum = 0;
    for (int t = 0; t < k && t < METRICS_MAX_CLASSES; t++) {
        int64_t row = 0;
        for (int p = 0; p < k; p++)
            row += conf[t * k + p];
        out->support[t] = row;
        out->total += row;
        out->correct += conf[t * k + t];
        if (row > 0) {
            out->recall[t] = (float)((double)conf[t * k + t] / (double)row);
            sum += (double)conf[t * k + t] / (double)row;
            present++;
        }
    }
    out->uar = present ? (float)(sum / present) : 0.f;
    out->war = out->total ? (float)((double)out->correct / (double)out->total) : 0.f;
}
