/* Stratified fold assignment (see folds.h). */
#include "folds.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

uint64_t folds_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound), without modulo bias. */
static uint64_t rand_below(uint64_t *state, uint64_t bound)
{
    uint64_t limit = -bound % bound; /* 2^64 mod bound */
    for (;;) {
        uint64_t r = folds_rand(state);
        if (r >= limit)
            return r % bound;
    }
}

static void shuffle(size_t *v, size_t n, uint64_t *state)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rand_below(state, i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static int by_id(const void *a, const void *b, void *ud)
{
    const struct fold_item *items = ud;
    int64_t x = items[*(const size_t *)a].id, y = items[*(const size_t *)b].id;
    return x < y ? -1 : x > y;
}

static int by_group_then_id(const void *a, const void *b, void *ud)
{
    const struct fold_item *items = ud, *x = &items[*(const size_t *)a], *y = &items[*(const size_t *)b];
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

struct group {
    size_t first, size; /* a run in the (group, id)-sorted order */
    int count[FOLD_CLASSES];
};

static int assign_stratified(const struct fold_item *items, const size_t *order, size_t n, int k,
                             uint64_t *state, int *fold)
{
    size_t *byclass = xmalloc(n * sizeof *byclass);
    size_t *perm = xmalloc((size_t)k * sizeof *perm);
    for (int f = 0; f < k; f++)
        perm[f] = (size_t)f;
    shuffle(perm, (size_t)k, state);
    size_t pos = 0;
    for (int c = 0; c < FOLD_CLASSES; c++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (items[order[i]].label == c)
                byclass[m++] = order[i];
        shuffle(byclass, m, state);
        for (size_t i = 0; i < m; i++, pos++)
            fold[byclass[i]] = (int)perm[pos % (size_t)k];
    }
    free(byclass);
    free(perm);
    return 0;
}

static int assign_by_group(const struct fold_item *items, const size_t *order, size_t n, int k, uint64_t *state,
                           int *fold)
{
    /* Groups as runs of the (group, id) order, each with its class histogram. */
    size_t *byg = xmalloc(n * sizeof *byg);
    for (size_t i = 0; i < n; i++)
        byg[i] = order[i];
    qsort_r(byg, n, sizeof *byg, by_group_then_id, (void *)items);
    struct group *g = xcalloc(n, sizeof *g);
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || items[byg[i]].group != items[byg[i - 1]].group)
            g[ng++].first = i;
        g[ng - 1].size++;
        g[ng - 1].count[items[byg[i]].label]++;
    }
    if (ng < (size_t)k) {
        free(byg);
        free(g);
        return -EINVAL;
    }
    /* Shuffle, then a stable sort by size (largest first): groups of equal
     * size stay in shuffled order. */
    size_t *go = xmalloc(ng * sizeof *go);
    for (size_t i = 0; i < ng; i++)
        go[i] = i;
    shuffle(go, ng, state);
    size_t *tmp = xmalloc(ng * sizeof *tmp);
    for (size_t width = 1; width < ng; width *= 2) { /* bottom-up merge sort: stable */
        for (size_t lo = 0; lo < ng; lo += 2 * width) {
            size_t mid = lo + width < ng ? lo + width : ng, hi = lo + 2 * width < ng ? lo + 2 * width : ng;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                tmp[o++] = g[go[j]].size > g[go[i]].size ? go[j++] : go[i++];
            while (i < mid)
                tmp[o++] = go[i++];
            while (j < hi)
                tmp[o++] = go[j++];
        }
        memcpy(go, tmp, ng * sizeof *go);
    }
    free(tmp);
    size_t *perm = xmalloc((size_t)k * sizeof *perm);
    for (int f = 0; f < k; f++)
        perm[f] = (size_t)f;
    shuffle(perm, (size_t)k, state);
    /* Targets: a class's share per fold, and the fold size. */
    double target[FOLD_CLASSES] = {0}, tsize = (double)n / k;
    for (size_t i = 0; i < n; i++)
        target[items[i].label] += 1.0 / k;
    double *load = xcalloc((size_t)k * FOLD_CLASSES, sizeof *load);
    double *size = xcalloc((size_t)k, sizeof *size);
    for (size_t gi = 0; gi < ng; gi++) {
        const struct group *G = &g[go[gi]];
        /* Adding G to fold f raises the sum of squared, target-normalised
         * loads by 2 * (sum_c x_fc g_c / t_c + s_f |G| / t) + a term that does
         * not depend on f: take the fold with the least. */
        int best = -1;
        double best_cost = 0;
        for (int pf = 0; pf < k; pf++) {
            int f = (int)perm[pf];
            double cost = size[f] * (double)G->size / tsize;
            for (int c = 0; c < FOLD_CLASSES; c++)
                if (G->count[c])
                    cost += load[f * FOLD_CLASSES + c] * G->count[c] / target[c];
            if (best < 0 || cost < best_cost - 1e-9) {
                best = f;
                best_cost = cost;
            }
        }
        size[best] += (double)G->size;
        for (int c = 0; c < FOLD_CLASSES; c++)
            load[best * FOLD_CLASSES + c] += G->count[c];
        for (size_t i = G->first; i < G->first + G->size; i++)
            fold[byg[i]] = best;
    }
    free(byg);
    free(g);
    free(go);
    free(perm);
    free(load);
    free(size);
    return 0;
}

int folds_assign(const struct fold_item *items, size_t n, int k, uint64_t seed, int by_group, int *fold)
{
    if (k < 2 || n < (size_t)k)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (items[i].label < 0 || items[i].label >= FOLD_CLASSES)
            return -EINVAL;
    size_t *order = xmalloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof *order, by_id, (void *)items);
    uint64_t state = seed;
    int rc = by_group ? assign_by_group(items, order, n, k, &state, fold)
                      : assign_stratified(items, order, n, k, &state, fold);
    free(order);
    return rc;
}
