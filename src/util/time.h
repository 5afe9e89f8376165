/* A monotonic clock in milliseconds, for step times and throughput. */
#ifndef GPT2C_TIME_H
#define GPT2C_TIME_H

#include <time.h>

static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif
