/* GELU (tanh approximation, PyTorch's approximate="tanh" and Hugging Face's gelu_new) and the
 * residual addition. */
#include <math.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/fast_exp.h"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

/* tanh(u) for the GELU: tanh|u| = (1 - e) / (1 + e) with e = exp(-2|u|), vectorised. For small u
 * the 1 - e loses relative accuracy but not absolute (~1e-7), which is what the GELU's
 * 0.5 * x * (1 + tanh) needs. */
static inline float gelu_tanh(float u) {
    float e = fast_exp_nonpos(-2.0f * fabsf(u));
    return copysignf((1.0f - e) / (1.0f + e), u);
}

static inline float gelu_inner(float x) { return GELU_SCALE * (x + 0.044715f * x * x * x); }

/* The loops, on blocks that the OpenMP loops below hand to each thread. */
CPU_KERNEL(gelu_forward_block, (float *out, const float *inp, size_t n), (out, inp, n)) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + gelu_tanh(gelu_inner(inp[i])));
}

CPU_KERNEL(gelu_backward_block, (float *dinp, const float *inp, const float *dout, size_t n),
           (dinp, inp, dout, n)) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], th = gelu_tanh(gelu_inner(x));
        float sech2 = 1.0f - th * th;
        float local = 0.5f * (1.0f + th) +
                      0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = local * dout[i];
    }
}

CPU_KERNEL(add_block, (float *out, const float *a, const float *b, size_t n), (out, a, b, n)) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

#define BLOCK ((size_t)1 << 14)

void cpu_gelu_forward(gpt2_act *out, const gpt2_act *inp, size_t n) {
    void (*gelu)(float *, const float *, size_t) = CPU_PICK(gelu_forward_block);
    float *o = cpu_f(out);
    const float *x = cpu_cf(inp);
    CPU_FOR_BLOCKS(n, BLOCK, gelu(o + i0, x + i0, len));
}

void cpu_gelu_backward(gpt2_act *dinp, const gpt2_act *inp, const gpt2_act *dout, size_t n) {
    void (*gelu)(float *, const float *, const float *, size_t) = CPU_PICK(gelu_backward_block);
    float *dx = cpu_f(dinp);
    const float *x = cpu_cf(inp), *dy = cpu_cf(dout);
    CPU_FOR_BLOCKS(n, BLOCK, gelu(dx + i0, x + i0, dy + i0, len));
}

void cpu_residual_forward(gpt2_act *out, const gpt2_act *a, const gpt2_act *b, size_t n) {
    void (*add)(float *, const float *, const float *, size_t) = CPU_PICK(add_block);
    float *o = cpu_f(out);
    const float *x = cpu_cf(a), *y = cpu_cf(b);
    CPU_FOR_BLOCKS(n, BLOCK, add(o + i0, x + i0, y + i0, len));
}
