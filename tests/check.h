/* A minimal test harness for the C unit tests: CHECK records a failure and goes on, check_near
 * and check_same compare arrays of numbers (within a tolerance; bit for bit) as one check each,
 * and check_done prints "N passed, M failed" and gives the exit status. */
#ifndef GPT2C_CHECK_H
#define GPT2C_CHECK_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The counts: one pair for the whole executable, also when several of its files include this
 * (weak definitions, which the linker merges into one). */
__attribute__((weak)) int check_passed, check_failed;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (cond) check_passed++;                                                  \
        else {                                                                     \
            check_failed++;                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                          \
    } while (0)

/* One check: every got[i] within atol + rtol * |want[i]| of want[i]. With atol = rtol = 0 the
 * values must be equal (the ratio below would be 0/0 for equal values: a check that could
 * never pass). A NaN matches only a NaN. On failure one line: what, then the worst element,
 * both values and how many tolerances apart they are. Returns whether it passed. (Doubles: a
 * float widens to a double exactly, so float results compare through a double copy.) */
static inline int check_near(const char *what, const double *got, const double *want, size_t n,
                             double atol, double rtol) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e;
        if (isnan(got[i]) || isnan(want[i])) e = isnan(got[i]) && isnan(want[i]) ? 0 : INFINITY;
        else if (got[i] == want[i]) e = 0; /* also infinities of the same sign */
        else if (atol == 0 && rtol == 0) e = INFINITY;
        else e = fabs(got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (e > worst) worst = e, at = i;
    }
    if (worst <= 1.0) {
        check_passed++;
        return 1;
    }
    check_failed++;
    if (atol == 0 && rtol == 0)
        fprintf(stderr, "%s: element %zu is %.9g, want exactly %.9g\n", what, at, got[at], want[at]);
    else
        fprintf(stderr, "%s: element %zu is %.9g, want %.9g (%.3g x the tolerance %g + %g|want|)\n",
                what, at, got[at], want[at], worst, atol, rtol);
    return 0;
}

/* One check: got and want the same bits (memcmp: -0 differs from 0, NaNs by their payload);
 * on failure one line with the first element that differs. */
static inline int check_same(const char *what, const double *got, const double *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0) {
            check_failed++;
            fprintf(stderr, "%s: element %zu is %.9g, want the same bits as %.9g\n", what, i, got[i],
                    want[i]);
            return 0;
        }
    check_passed++;
    return 1;
}

static inline int check_done(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
