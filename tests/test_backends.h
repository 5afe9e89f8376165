/* Backends unlike the CPU's, made from the CPU's kernels so that they run without a GPU:
 * - "detached": host_memory off, so every path that uploads, downloads or stages a host copy
 *   runs; its allocations are counted (test_live_buffers).
 * - "wide": activations stored as doubles (act_bytes 8, not 4), so that nothing outside a
 *   backend may assume 4-byte activations (a plan, an offset or a copy sized in floats would
 *   read the wrong values). Its ops follow from the op list (ops/ops.h): each narrows its
 *   activation arguments to floats in place, runs the CPU's kernel and widens them back, so an
 *   op added to the list is wrapped here without an edit.
 * - "narrow": activations stored as bf16 (act_bytes 2) under --precision bf16, as a GPU stores
 *   them, fp32 under fp32: the model's plans, offsets, copies and caches at 2 bytes an
 *   activation, and the handle's precision switching its type (gpt2_backend_precision). Its bf16
 *   ops widen their activation arguments into float copies, run the CPU's kernel on those and
 *   round the results back (each argument is swapped for its copy by type: NARROW_ARG).
 * test_backends_open fills test_cpu, test_detached, test_wide and test_narrow. */
#ifndef GPT2C_TEST_BACKENDS_H
#define GPT2C_TEST_BACKENDS_H

#include <stdlib.h>
#include <string.h>

#include "ops/backend.h"
#include "ops/cpu/cpu_kernels.h"

static gpt2_backend test_cpu, test_detached, test_wide, test_narrow;
static gpt2_ops test_detached_ops, test_wide_ops, test_narrow_ops;
static size_t test_live_buffers; /* the detached backend's, handed out and not taken back */

static void *detached_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64), test_live_buffers++;
    return p;
}
static void detached_free(void *p) {
    if (p) test_live_buffers--;
    free(p);
}
/* copy, upload and download alike: the "device" memory is the host's */
static void detached_copy(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }

/* The activations of a call, doubles to floats in place (front to back: float i is written
 * after double i, and every double before it, was read) and back (back to front); a pointer
 * passed twice (out aliasing an input) is converted once. */
static int wide_seen_before(const gpt2_op_act *acts, size_t i) {
    for (size_t j = 0; j < i; j++)
        if (acts[j].a == acts[i].a) return 1;
    return 0;
}
static void wide_narrow(const gpt2_op_act *acts, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!acts[i].a || wide_seen_before(acts, i)) continue;
        const double *d = (const double *)acts[i].a;
        float *f = (float *)acts[i].a;
        for (size_t k = 0; k < acts[i].n; k++) f[k] = (float)d[k];
    }
}
static void wide_widen(const gpt2_op_act *acts, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!acts[i].a || wide_seen_before(acts, i)) continue;
        double *d = (double *)acts[i].a;
        const float *f = (const float *)acts[i].a;
        for (size_t k = acts[i].n; k-- > 0;) d[k] = f[k];
    }
}

#define WIDE_OP(name, params, args, kind, flops, acts)                                             \
    static void wide_##name params {                                                               \
        gpt2_op_act acts_[] = {GPT2_UNPAREN acts};                                                 \
        wide_narrow(acts_, sizeof acts_ / sizeof *acts_);                                          \
        test_cpu.ops->name args;                                                                   \
        wide_widen(acts_, sizeof acts_ / sizeof *acts_);                                           \
    }
GPT2_OPS(WIDE_OP)
#undef WIDE_OP

/* The narrow backend's float copies of a call's activations (a pointer passed twice, once). */
typedef struct narrow_copies {
    const gpt2_op_act *acts;
    size_t n;
    float *copy[8];
} narrow_copies;

/* Rounded as the GPU's __float2bfloat16_rn: nearest even, NaN stays NaN, subnormals kept (the
 * CPU's cpu_to_bf16 flushes them). */
static gpt2_bf16 float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (gpt2_bf16)((u >> 16) | 0x40);
    return (gpt2_bf16)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static void narrow_widen(narrow_copies *nc, const gpt2_op_act *acts, size_t n) {
    nc->acts = acts, nc->n = n;
    for (size_t i = 0; i < n; i++) {
        nc->copy[i] = NULL;
        if (!acts[i].a || wide_seen_before(acts, i)) continue;
        nc->copy[i] = malloc((acts[i].n ? acts[i].n : 1) * sizeof(float));
        cpu_from_bf16(nc->copy[i], (const gpt2_bf16 *)acts[i].a, acts[i].n);
    }
}
/* The copy standing for an activation argument (its first listing's). */
static void *narrow_find(const narrow_copies *nc, const void *a) {
    for (size_t i = 0; i < nc->n; i++)
        if (nc->copy[i] && nc->acts[i].a == a) return nc->copy[i];
    abort(); /* an activation argument missing from the op's list in ops.h */
}
static void narrow_round(narrow_copies *nc) {
    for (size_t i = 0; i < nc->n; i++) {
        if (!nc->copy[i]) continue;
        gpt2_bf16 *h = (gpt2_bf16 *)nc->acts[i].a;
        for (size_t k = 0; k < nc->acts[i].n; k++) h[k] = float_to_bf16(nc->copy[i][k]);
        free(nc->copy[i]);
    }
}

/* An argument as the CPU's kernel gets it: an activation pointer swapped for its float copy,
 * anything else as it is. (Every branch of _Generic must compile for every argument's type:
 * hence the detour through uintptr_t.) */
#define NARROW_ARG(x)                                                                              \
    _Generic((x),                                                                                  \
        gpt2_act *: (gpt2_act *)narrow_act(&nc_, (const void *)(uintptr_t)(x)),                    \
        const gpt2_act *: (const gpt2_act *)narrow_act(&nc_, (const void *)(uintptr_t)(x)),        \
        default: (x))
static void *narrow_act(const narrow_copies *nc, const void *a) {
    return a ? narrow_find(nc, a) : NULL;
}
/* NARROW_ARG on each of up to 16 arguments. */
#define NARROW_1(x) NARROW_ARG(x)
#define NARROW_2(x, ...) NARROW_ARG(x), NARROW_1(__VA_ARGS__)
#define NARROW_3(x, ...) NARROW_ARG(x), NARROW_2(__VA_ARGS__)
#define NARROW_4(x, ...) NARROW_ARG(x), NARROW_3(__VA_ARGS__)
#define NARROW_5(x, ...) NARROW_ARG(x), NARROW_4(__VA_ARGS__)
#define NARROW_6(x, ...) NARROW_ARG(x), NARROW_5(__VA_ARGS__)
#define NARROW_7(x, ...) NARROW_ARG(x), NARROW_6(__VA_ARGS__)
#define NARROW_8(x, ...) NARROW_ARG(x), NARROW_7(__VA_ARGS__)
#define NARROW_9(x, ...) NARROW_ARG(x), NARROW_8(__VA_ARGS__)
#define NARROW_10(x, ...) NARROW_ARG(x), NARROW_9(__VA_ARGS__)
#define NARROW_11(x, ...) NARROW_ARG(x), NARROW_10(__VA_ARGS__)
#define NARROW_12(x, ...) NARROW_ARG(x), NARROW_11(__VA_ARGS__)
#define NARROW_13(x, ...) NARROW_ARG(x), NARROW_12(__VA_ARGS__)
#define NARROW_14(x, ...) NARROW_ARG(x), NARROW_13(__VA_ARGS__)
#define NARROW_15(x, ...) NARROW_ARG(x), NARROW_14(__VA_ARGS__)
#define NARROW_16(x, ...) NARROW_ARG(x), NARROW_15(__VA_ARGS__)
#define NARROW_PICK(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, name, ...) name
#define NARROW_EACH(...)                                                                           \
    NARROW_PICK(__VA_ARGS__, NARROW_16, NARROW_15, NARROW_14, NARROW_13, NARROW_12, NARROW_11,    \
                NARROW_10, NARROW_9, NARROW_8, NARROW_7, NARROW_6, NARROW_5, NARROW_4, NARROW_3,  \
                NARROW_2, NARROW_1)(__VA_ARGS__)

#define NARROW_OP(name, params, args, kind, flops, acts)                                           \
    static void narrow_##name params {                                                             \
        gpt2_op_act acts_[] = {GPT2_UNPAREN acts};                                                 \
        narrow_copies nc_;                                                                         \
        narrow_widen(&nc_, acts_, sizeof acts_ / sizeof *acts_);                                   \
        test_cpu.ops->name(NARROW_EACH args);                                                      \
        narrow_round(&nc_);                                                                        \
    }
GPT2_OPS(NARROW_OP)
#undef NARROW_OP

/* The CPU's fused residual and LayerNorm normalizes the sum before it is stored; stored in
 * bf16, the op's contract (the two ops' bits) means normalizing the rounded sum, as the GPU's
 * kernel does: the two ops. */
static void narrow_residual_then_layernorm(gpt2_act *res, gpt2_act *out, float *mean, float *rstd,
                                           const gpt2_act *a, const gpt2_act *b, const float *w,
                                           const float *bias, int N, int C) {
    narrow_residual_forward(res, a, b, (size_t)N * C);
    narrow_layernorm_forward(out, mean, rstd, res, w, bias, N, C);
}

static void narrow_set_precision(gpt2_backend *be, gpt2_precision p) {
    be->act_bytes = p == GPT2_BF16 ? sizeof(gpt2_bf16) : sizeof(float);
    be->ops = p == GPT2_BF16 ? &test_narrow_ops : test_cpu.ops;
}

/* 0, or -1 with the reason (GPT2_CPU_ISA asks for more than this CPU has). */
static int test_backends_open(int threads, gpt2c_error *err) {
    if (gpt2_backend_open(&test_cpu, "cpu", threads, err) != 0) return -1;
    test_detached_ops = *test_cpu.ops;
    test_detached_ops.alloc = detached_alloc, test_detached_ops.free = detached_free;
    test_detached_ops.copy = test_detached_ops.upload = test_detached_ops.download = detached_copy;
    test_detached = test_cpu;
    test_detached.name = "detached", test_detached.host_memory = 0;
    test_detached.ops = &test_detached_ops;
    test_wide_ops = *test_cpu.ops;
#define WIDE_ENTRY(name, ...) test_wide_ops.name = wide_##name;
    GPT2_OPS(WIDE_ENTRY)
#undef WIDE_ENTRY
    test_wide = test_cpu;
    test_wide.name = "wide", test_wide.act_bytes = sizeof(double), test_wide.ops = &test_wide_ops;
    test_narrow_ops = *test_cpu.ops;
#define NARROW_ENTRY(name, ...) test_narrow_ops.name = narrow_##name;
    GPT2_OPS(NARROW_ENTRY)
#undef NARROW_ENTRY
    test_narrow_ops.residual_layernorm_forward = narrow_residual_then_layernorm;
    test_narrow = test_cpu;
    test_narrow.name = "narrow", test_narrow.set_precision = narrow_set_precision;
    return 0;
}

#endif
