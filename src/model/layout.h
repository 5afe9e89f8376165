/* Laying out a plan's buffers in one allocation: the model's activations (gpt2_plan) and the KV
 * cache's (gpt2_kv_plan) are each one backend allocation cut into buffers by one walk that first
 * counts (base NULL) and then, with the allocation made, places. */
#ifndef GPT2C_LAYOUT_H
#define GPT2C_LAYOUT_H

#include "ops/ops.h"

/* Every buffer starts on a 256-byte boundary (GPU libraries, AVX-512 loads). */
#define LAYOUT_ALIGN ((size_t)256)

typedef struct layout {
    char *base;       /* NULL: only counting */
    size_t bytes;     /* taken so far */
    size_t act_bytes; /* one activation's size in the backend */
} layout;

/* The next `bytes` (NULL while counting). */
static inline void *layout_take(layout *l, size_t bytes) {
    void *p = l->base ? l->base + l->bytes : NULL;
    l->bytes += (bytes + LAYOUT_ALIGN - 1) / LAYOUT_ALIGN * LAYOUT_ALIGN;
    return p;
}
static inline gpt2_act *layout_acts(layout *l, size_t n) {
    return (gpt2_act *)layout_take(l, n * l->act_bytes);
}
static inline float *layout_floats(layout *l, size_t n) {
    return (float *)layout_take(l, n * sizeof(float));
}

#endif
