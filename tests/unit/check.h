/* A minimal test harness for dfew's C unit tests: CHECK records a failure
 * with file:line and carries on; main returns non-zero when any failed. */
#ifndef DFEW_CHECK_H
#define DFEW_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        check_count++;                                                                                                 \
        if (!(cond)) {                                                                                                 \
            check_failures++;                                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                  \
        }                                                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                             \
    do {                                                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                            \
        check_count++;                                                                                                 \
        if (a_ != b_) {                                                                                                \
            check_failures++;                                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, a_, b_);    \
        }                                                                                                              \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                                             \
    do {                                                                                                               \
        const char *a_ = (a), *b_ = (b);                                                                               \
        check_count++;                                                                                                 \
        if (!a_ || !b_ || strcmp(a_, b_)) {                                                                            \
            check_failures++;                                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a, #b,         \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                                           \
        }                                                                                                              \
    } while (0)

#define RUN(test)                                                                                                      \
    do {                                                                                                               \
        int before_ = check_failures;                                                                                  \
        test();                                                                                                        \
        printf("%s %s\n", check_failures == before_ ? "ok  " : "FAIL", #test);                                         \
    } while (0)

static inline int check_report(void)
{
    printf("%d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
