/* A minimal test harness for the C unit tests: CHECK records a failure and goes on, and
 * check_done prints "N passed, M failed" and gives the exit status. */
#ifndef GPT2C_CHECK_H
#define GPT2C_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (cond) check_passed++;                                                  \
        else {                                                                     \
            check_failed++;                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                          \
    } while (0)

static inline int check_done(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
