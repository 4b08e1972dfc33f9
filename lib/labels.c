/* Emotions, the single-label rule and Fleiss' kappa (see labels.h). */
#include "labels.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>

#include "util.h"

static const char *const names[EMOTION_COUNT] = {"happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"};

/* Other spellings seen in label files (MEAD uses "surprised", "disgusted"). */
static const struct {
    const char *alias;
    int emotion;
} aliases[] = {
    {"happiness", 1}, {"sadness", 2},   {"anger", 4},   {"surprised", 5},
    {"disgusted", 6}, {"fearful", 7},   {"afraid", 7},
};

const char *emotion_name(int emotion)
{
    return emotion >= 1 && emotion <= EMOTION_COUNT ? names[emotion - 1] : NULL;
}

int emotion_parse(const char *s)
{
    if (!s || !*s)
        return -EINVAL;
    int n;
    if (parse_int(s, &n) == 0)
        return n >= 1 && n <= EMOTION_COUNT ? n : -EINVAL;
    for (int i = 0; i < EMOTION_COUNT; i++)
        if (!strcasecmp(s, names[i]))
            return i + 1;
    for (size_t i = 0; i < ARRAY_LEN(aliases); i++)
        if (!strcasecmp(s, aliases[i].alias))
            return aliases[i].emotion;
    return -EINVAL;
}

int single_label(const int votes[EMOTION_COUNT], int r)
{
    int best = 0;
    for (int k = 1; k < EMOTION_COUNT; k++)
        if (votes[k] > votes[best])
            best = k;
    if (votes[best] <= r)
        return 0;
    for (int k = 0; k < EMOTION_COUNT; k++)
        if (k != best && votes[k] == votes[best])
            return 0;
    return best + 1;
}

int fleiss_kappa(const int *table, int n, int ncat, struct kappa_result *out)
{
    *out = (struct kappa_result){.kappa = NAN, .pbar = NAN, .pe = NAN};
    double *colsum = xcalloc((size_t)ncat, sizeof *colsum);
    double sum_pi = 0;
    for (int i = 0; i < n; i++) {
        const int *row = table + (size_t)i * (size_t)ncat;
        long m = 0;
        double sq = 0;
        for (int j = 0; j < ncat; j++) {
            m += row[j];
            sq += (double)row[j] * row[j];
        }
        if (m < 2)
            continue;
        for (int j = 0; j < ncat; j++)
            colsum[j] += row[j];
        sum_pi += (sq - (double)m) / ((double)m * (double)(m - 1)); /* eq. 2 */
        if (!out->subjects || m < out->min_raters)
            out->min_raters = (int)m;
        if (m > out->max_raters)
            out->max_raters = (int)m;
        out->subjects++;
        out->ratings += m;
    }
    int rc = -EDOM;
    if (out->subjects > 0) {
        double pe = 0;
        for (int j = 0; j < ncat; j++) {
            double p = colsum[j] / (double)out->ratings; /* eq. 1 */
            pe += p * p;                                  /* eq. 4 */
        }
        out->pbar = sum_pi / out->subjects; /* eq. 3 */
        out->pe = pe;
        if (pe < 1 - 1e-12) {
            out->kappa = (out->pbar - pe) / (1 - pe); /* eq. 5 */
            rc = 0;
        }
    }
    free(colsum);
    return rc;
}

const char *kappa_band(double kappa)
{
    if (isnan(kappa))
        return "undefined";
    if (kappa <= 0)
        return "poor";
    if (kappa <= 0.20)
        return "slight";
    if (kappa <= 0.40)
        return "fair";
    if (kappa <= 0.60)
        return "moderate";
    if (kappa <= 0.80)
        return "substantial";
    return "almost perfect";
}
