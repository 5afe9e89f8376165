/* The optimizer's kernels: the gradient's sum of squares (for the global norm) and AdamW. */
#include <math.h>

#include "ops/cpu/cpu_kernels.h"

/* Fixed blocks whose partial sums are added in order: the same result for any number of
 * threads. 2^20 floats per block keeps the partials of even GPT-2 1.5B on the stack (12 KB). */
#define SUMSQ_BLOCK ((size_t)1 << 20)

double cpu_sum_squares(const float *x, size_t n) {
    size_t nblocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    if (nblocks == 0) return 0.0;
    double partial[nblocks];
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nblocks; k++) {
        size_t i1 = (k + 1) * SUMSQ_BLOCK < n ? (k + 1) * SUMSQ_BLOCK : n;
        double s = 0.0;
        for (size_t i = k * SUMSQ_BLOCK; i < i1; i++) s += (double)x[i] * x[i];
        partial[k] = s;
    }
    double total = 0.0;
    for (size_t k = 0; k < nblocks; k++) total += partial[k];
    return total;
}

/* PyTorch's AdamW (torch.optim.AdamW, single-tensor path), operation for operation:
 *   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
 *   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps). */
void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, double lr, float beta1,
               float beta2, float eps, float weight_decay, float grad_scale, double bias_c1,
               double bias_c2) {
    float decay = (float)(1.0 - lr * weight_decay);
    float step_size = (float)(lr / bias_c1);
    float bc2_sqrt = (float)sqrt(bias_c2);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float grad = g[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * grad;
        v[i] = beta2 * v[i] + (1.0f - beta2) * grad * grad;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] * decay;
        p[i] -= step_size * (m[i] / denom);
    }
}
