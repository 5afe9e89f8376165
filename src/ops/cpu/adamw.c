/* The optimizer's kernels: the gradient's sum of squares (for the global norm) and AdamW. */
#include <math.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"

/* Fixed blocks whose partial sums are added in order: the same result for any number of
 * threads. 2^20 floats per block keeps the partials of even GPT-2 1.5B on the stack (12 KB). */
#define SUMSQ_BLOCK ((size_t)1 << 20)

CPU_KERNEL(sum_squares_block, (const float *x, size_t n, double *out), (x, n, out)) {
    double s = 0.0;
    /* vector lanes, then lanes added: a fixed order for a given build and CPU */
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    *out = s;
}

void cpu_sum_squares(double *sum, const float *x, size_t n) {
    size_t nblocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    *sum = 0.0;
    if (nblocks == 0) return;
    double partial[nblocks];
    void (*sum_squares)(const float *, size_t, double *) = CPU_PICK(sum_squares_block);
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nblocks; k++) {
        size_t i1 = (k + 1) * SUMSQ_BLOCK < n ? (k + 1) * SUMSQ_BLOCK : n;
        double block_sum;
        sum_squares(x + k * SUMSQ_BLOCK, i1 - k * SUMSQ_BLOCK, &block_sum);
        partial[k] = block_sum;
    }
    double total = 0.0;
    for (size_t k = 0; k < nblocks; k++) total += partial[k];
    *sum = total;
}

typedef struct adamw_consts {
    float beta1, beta2, eps, decay, step_size, bc2_sqrt, grad_scale;
} adamw_consts;

CPU_KERNEL(adamw_block, (float *p, float *g, float *m, float *v, size_t n, const adamw_consts *c),
           (p, g, m, v, n, c)) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float grad = g[i] * c->grad_scale;
        g[i] = 0.0f;
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * grad;
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * grad * grad;
        float denom = sqrtf(v[i]) / c->bc2_sqrt + c->eps;
        p[i] = p[i] * c->decay;
        p[i] -= c->step_size * (m[i] / denom);
    }
}

/* PyTorch's AdamW (torch.optim.AdamW, single-tensor path), operation for operation:
 *   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
 *   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
 * One pass over memory, in blocks: each block's gradient is zeroed and its bf16 copy written
 * while it is in cache. */
#define ADAMW_BLOCK ((size_t)1 << 14)

static void adamw_run(float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n,
                      const adamw_consts *c) {
    void (*adamw)(float *, float *, float *, float *, size_t, const adamw_consts *) =
        CPU_PICK(adamw_block);
    CPU_FOR_BLOCKS(n, ADAMW_BLOCK, {
        adamw(p + i0, g + i0, m + i0, v + i0, len, c);
        /* the block is still in cache */
        if (p_bf16) cpu_to_bf16_serial(p_bf16 + i0, p + i0, len);
    });
}

void cpu_adamw(float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n,
               const gpt2_decay_run *runs, int nruns, double lr, float beta1, float beta2,
               float eps, float weight_decay, float grad_scale, double bias_c1, double bias_c2) {
    for (int r = 0; r < nruns; r++) {
        size_t a = runs[r].start, b = r + 1 < nruns ? runs[r + 1].start : n;
        adamw_consts c = {beta1, beta2, eps, (float)(1.0 - lr * (runs[r].decay ? weight_decay : 0.0f)),
                          (float)(lr / bias_c1), (float)sqrt(bias_c2), grad_scale};
        adamw_run(p + a, p_bf16 ? p_bf16 + a : NULL, g + a, m + a, v + a, b - a, &c);
    }
}
