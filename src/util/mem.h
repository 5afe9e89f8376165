/* Big float buffers: 64-byte aligned for vector loads, and zeroed by writing, so that the pages
 * are really mapped when the plan is made and not by page faults during the first step. */
#ifndef GPT2C_MEM_H
#define GPT2C_MEM_H

#include <stdlib.h>
#include <string.h>

/* n bytes rounded up to whole cache lines of 64 (aligned allocations; scratch pieces that each
 * start on a line). */
static inline size_t mem_lines(size_t n) { return (n + 63) / 64 * 64; }

/* Where the next piece of a scratch starts, in bytes, after n elements of `size` bytes at
 * offset `at` (each piece on its own cache lines). */
static inline size_t mem_after(size_t at, size_t n, size_t size) {
    return at + mem_lines(n * size);
}

static inline float *mem_floats(size_t n) {
    size_t bytes = mem_lines(n * sizeof(float)); /* aligned_alloc wants a multiple */
    float *p = (float *)aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes);
    return p;
}

/* The larger of two sizes (the scratch that several uses share). */
static inline size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

#endif
