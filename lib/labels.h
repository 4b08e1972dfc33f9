/* Emotion labels and inter-annotator agreement, as pure computations: the
 * seven emotions in the DFEW order, the single-label rule (l_k > r) and
 * Fleiss' kappa (DFEW paper, eqs. 1-5) with its interpretation band (paper's
 * Table 3). No database here: ctl/labels.c reads the votes and calls these. */
#ifndef DFEW_LABELS_H
#define DFEW_LABELS_H

#include <stddef.h>

/* 1 happy, 2 sad, 3 neutral, 4 angry, 5 surprise, 6 disgust, 7 fear:
 * the paper's and the DFEW release's order. Arrays below are indexed 0..6. */
#define EMOTION_COUNT 7
#define EMOTION_NAMES_HELP "happy, sad, neutral, angry, surprise, disgust, fear (or 1..7)"

/* "happy" .. "fear" for 1..7; NULL otherwise. */
const char *emotion_name(int emotion);
/* A name (case-insensitive; common variants such as "happiness", "anger",
 * "surprised", "disgusted", "fearful" too) or a number 1..7. Returns 1..7, or
 * -EINVAL. */
int emotion_parse(const char *s);

/* The single label of a 7-vote distribution: the emotion k (1..7) whose count
 * l_k is greater than r and greater than every other count; 0 (ambiguous)
 * when there is none. With 10 annotators and r = 6 (the paper's) at most one
 * emotion can pass, so the tie rule only matters for small r. */
int single_label(const int votes[EMOTION_COUNT], int r);

/* Fleiss' kappa over n subjects with per-subject category counts
 * table[i * ncat + j]. With the same number of raters m for every subject this
 * is exactly the paper's:
 *   p_j = sum_i n_ij / (N m)                          (eq. 1)
 *   P_i = (sum_j n_ij^2 - m) / (m (m - 1))            (eq. 2)
 *   Pbar = mean P_i                                   (eq. 3)
 *   Pe = sum_j p_j^2                                  (eq. 4)
 *   kappa = (Pbar - Pe) / (1 - Pe)                    (eq. 5)
 * When the raters per subject vary, P_i uses the subject's own m_i and p_j
 * divides by the total number of ratings (Fleiss' own generalisation).
 * Subjects with fewer than 2 ratings carry no agreement and are skipped.
 * Returns 0, or -EDOM when kappa is undefined (fewer than one subject with 2
 * ratings, or every rating in one category: Pe = 1). */
struct kappa_result {
    double kappa, pbar, pe;
    int subjects;          /* subjects used (>= 2 ratings) */
    int min_raters, max_raters;
    long ratings;          /* total ratings over the subjects used */
};
int fleiss_kappa(const int *table, int n, int ncat, struct kappa_result *out);

/* The paper's Table 3 (Landis and Koch): "poor" (kappa <= 0), "slight" (up to
 * 0.20), "fair" (0.40), "moderate" (0.60), "substantial" (0.80), "almost
 * perfect" (above 0.80). */
const char *kappa_band(double kappa);

#endif
