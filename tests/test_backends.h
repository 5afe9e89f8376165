/* Backends unlike the CPU's, made from the CPU's kernels so that they run without a GPU:
 * - "detached": host_memory off, so every path that uploads, downloads or stages a host copy
 *   runs; its allocations are counted (test_live_buffers).
 * - "wide": activations stored as doubles (act_bytes 8, not 4), so that nothing outside a
 *   backend may assume 4-byte activations (a plan, an offset or a copy sized in floats would
 *   read the wrong values). Its ops follow from the op list (ops/ops.h): each narrows its
 *   activation arguments to floats in place, runs the CPU's kernel and widens them back, so an
 *   op added to the list is wrapped here without an edit.
 * test_backends_open fills test_cpu, test_detached and test_wide. */
#ifndef GPT2C_TEST_BACKENDS_H
#define GPT2C_TEST_BACKENDS_H

#include <stdlib.h>
#include <string.h>

#include "ops/backend.h"

static gpt2_backend test_cpu, test_detached, test_wide;
static gpt2_ops test_detached_ops, test_wide_ops;
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
    return 0;
}

#endif
