/* Unit tests for lib/folds.c: stratified folds are disjoint, cover every item
 * once, have sizes and per-class counts within 1, are the same for the same
 * seed whatever the input order, differ for another seed; by-group folds keep
 * every group in one fold. */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "folds.h"

/* n items with a skewed class mix like DFEW's (many happy/neutral, few
 * disgust) spread over ngroups groups of uneven size. */
static struct fold_item *make_items(size_t n, int ngroups, uint64_t seed)
{
    static const int weight[FOLD_CLASSES] = {25, 17, 27, 15, 9, 1, 6};
    struct fold_item *it = calloc(n, sizeof *it);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        int r = (int)(folds_rand(&s) % 100), c = 0;
        while (r >= weight[c]) {
            r -= weight[c];
            c++;
        }
        it[i].id = (int64_t)(1000 + 7 * i); /* ids with gaps */
        it[i].label = c;
        /* uneven groups: square the uniform draw */
        double u = (double)(folds_rand(&s) % 10000) / 10000.0;
        it[i].group = 1 + (int64_t)(u * u * ngroups);
    }
    return it;
}

struct balance {
    int min_size, max_size, max_class_spread;
};

static struct balance check_partition(const struct fold_item *it, size_t n, int k, const int *fold)
{
    int size[64] = {0}, cnt[64][FOLD_CLASSES] = {{0}};
    for (size_t i = 0; i < n; i++) {
        CHECK(fold[i] >= 0 && fold[i] < k); /* every item in exactly one fold */
        if (fold[i] < 0 || fold[i] >= k)
            continue;
        size[fold[i]]++;
        cnt[fold[i]][it[i].label]++;
    }
    struct balance b = {size[0], size[0], 0};
    int total = 0;
    for (int f = 0; f < k; f++) {
        total += size[f];
        if (size[f] < b.min_size)
            b.min_size = size[f];
        if (size[f] > b.max_size)
            b.max_size = size[f];
    }
    CHECK_EQ_INT(total, (int)n);
    for (int c = 0; c < FOLD_CLASSES; c++) {
        int lo = cnt[0][c], hi = cnt[0][c];
        for (int f = 1; f < k; f++) {
            if (cnt[f][c] < lo)
                lo = cnt[f][c];
            if (cnt[f][c] > hi)
                hi = cnt[f][c];
        }
        if (hi - lo > b.max_class_spread)
            b.max_class_spread = hi - lo;
    }
    return b;
}

static void test_stratified(void)
{
    static const size_t sizes[] = {5, 17, 100, 1003, 11697};
    static const int ks[] = {2, 3, 5, 10};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            size_t n = sizes[si];
            int k = ks[ki];
            if (n < (size_t)k)
                continue;
            struct fold_item *it = make_items(n, 40, n * 31 + (size_t)k);
            int *fold = malloc(n * sizeof *fold);
            CHECK_EQ_INT(folds_assign(it, n, k, 42, 0, fold), 0);
            struct balance b = check_partition(it, n, k, fold);
            CHECK(b.max_size - b.min_size <= 1);
            CHECK(b.max_class_spread <= 1);
            if (n == 11697 && k == 5)
                printf("n=%zu k=%d: fold sizes %d..%d, per-class spread %d\n", n, k, b.min_size, b.max_size,
                       b.max_class_spread);
            free(fold);
            free(it);
        }
    }
}

static void test_deterministic(void)
{
    size_t n = 500;
    struct fold_item *it = make_items(n, 30, 7);
    int *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    for (int by_group = 0; by_group <= 1; by_group++) {
        CHECK_EQ_INT(folds_assign(it, n, 5, 1234, by_group, a), 0);
        CHECK_EQ_INT(folds_assign(it, n, 5, 1234, by_group, b), 0);
        CHECK(memcmp(a, b, n * sizeof *a) == 0);
        /* Same items in another order: each id lands in the same fold. */
        struct fold_item *rev = malloc(n * sizeof *rev);
        for (size_t i = 0; i < n; i++)
            rev[i] = it[n - 1 - i];
        CHECK_EQ_INT(folds_assign(rev, n, 5, 1234, by_group, c), 0);
        int same = 1;
        for (size_t i = 0; i < n; i++)
            same &= c[n - 1 - i] == a[i];
        CHECK(same);
        free(rev);
        /* Another seed gives another split. */
        CHECK_EQ_INT(folds_assign(it, n, 5, 1235, by_group, c), 0);
        CHECK(memcmp(a, c, n * sizeof *a) != 0);
    }
    free(a);
    free(b);
    free(c);
    free(it);
}

static void test_by_group(void)
{
    size_t n = 2000;
    int k = 5;
    struct fold_item *it = make_items(n, 120, 99);
    int *fold = malloc(n * sizeof *fold);
    CHECK_EQ_INT(folds_assign(it, n, k, 5, 1, fold), 0);
    /* Every group in exactly one fold. */
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (it[i].group == it[j].group && fold[i] != fold[j])
                ok = 0;
    CHECK(ok);
    struct balance b = check_partition(it, n, k, fold);
    printf("by group: %zu items in 120 uneven groups, k=%d: fold sizes %d..%d, per-class spread %d\n", n, k,
           b.min_size, b.max_size, b.max_class_spread);
    /* Not exact, but close: within 5 % of the mean fold size. */
    CHECK(b.max_size - b.min_size <= (int)(n / (size_t)k / 20));
    free(fold);
    free(it);
}

static void test_errors(void)
{
    struct fold_item it[4] = {{1, 0, 1}, {2, 1, 1}, {3, 2, 2}, {4, 3, 2}};
    int fold[4];
    CHECK_EQ_INT(folds_assign(it, 4, 1, 0, 0, fold), -EINVAL);  /* k < 2 */
    CHECK_EQ_INT(folds_assign(it, 4, 5, 0, 0, fold), -EINVAL);  /* fewer items than folds */
    CHECK_EQ_INT(folds_assign(it, 4, 3, 0, 1, fold), -EINVAL);  /* 2 groups, 3 folds */
    CHECK_EQ_INT(folds_assign(it, 4, 2, 0, 1, fold), 0);
    CHECK(fold[0] == fold[1] && fold[2] == fold[3] && fold[0] != fold[2]);
    it[3].label = FOLD_CLASSES;
    CHECK_EQ_INT(folds_assign(it, 4, 2, 0, 0, fold), -EINVAL); /* label out of range */
}

int main(void)
{
    RUN(test_stratified);
    RUN(test_deterministic);
    RUN(test_by_group);
    RUN(test_errors);
    return check_report();
}
