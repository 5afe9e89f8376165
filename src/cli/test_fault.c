#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/test_fault.h"

int test_fault_read(test_fault *f) {
    const char *s = getenv("GPT2C_TEST_FAULT");
    char *end;
    if (!s) return 0;
    *f = (test_fault){.step = strtol(s, &end, 10)};
    if (end == s || f->step < 0) return 0;
    if (*end == '+') f->onward = 1, end++;
    if (!strcmp(end, ":nan")) f->scale = NAN;
    else if (!strncmp(end, ":scale=", 7)) f->scale = strtod(end + 7, NULL);
    else return 0;
    return 1;
}

double test_fault_scale(const test_fault *f, int step, int micro, int rank) {
    int hit = step == f->step || (f->onward && step > f->step);
    return hit && micro == 0 && rank == 0 ? f->scale : 1.0;
}
