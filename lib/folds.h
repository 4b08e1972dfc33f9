/* Splitting labelled clips into k folds for cross-validation, as a pure
 * computation: stratified by label (every fold gets each class's share, to
 * within one clip, and the folds' sizes differ by at most one), optionally
 * keeping each group (movie) inside one fold. Deterministic for a seed, and
 * independent of the order the items are given in. The database side (which
 * clips are eligible, storing the split) is ctl/folds.c. */
#ifndef DFEW_FOLDS_H
#define DFEW_FOLDS_H

#include <stddef.h>
#include <stdint.h>

struct fold_item {
    int64_t id;    /* unique; the order of the items is taken from it */
    int label;     /* class, 0 .. FOLD_CLASSES - 1 */
    int64_t group; /* e.g. the movie; used with by_group */
};

#define FOLD_CLASSES 7

/* Writes fold[i] in 0..k-1 for items[i].
 * Without by_group: each class is shuffled and dealt round-robin, one class
 * after another, so fold sizes and per-fold class counts are within 1.
 * With by_group: whole groups are placed, largest first (ties in shuffled
 * order), each on the fold where it adds least to the label-weighted load;
 * balance is as good as the group sizes allow, not guaranteed within 1.
 * -EINVAL: k < 2, n < k, a label out of range, or (by_group) fewer than k
 * groups. */
int folds_assign(const struct fold_item *items, size_t n, int k, uint64_t seed, int by_group, int *fold);

/* The generator behind the shuffles (splitmix64), for tests that need
 * reproducible random data. */
uint64_t folds_rand(uint64_t *state);

#endif
