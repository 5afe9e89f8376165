/* LayerNorm over the channels of each row (biased variance, eps 1e-5, as PyTorch). The row loops
 * are vector kernels (CPU_KERNEL); rows go to the threads when there are enough of them. */
#include <math.h>
#include <string.h>

#include "model/config.h"
#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"

/* Below this many values a layernorm runs in the caller's thread (generation: one row). */
#define LN_PARALLEL_MIN 16384

CPU_KERNEL(ln_forward_row, (float *o, float *mean, float *rstd, const float *x, const float *w,
                            const float *b, int C), (o, mean, rstd, x, w, b, C)) {
    float m = 0.0f, var = 0.0f;
#pragma omp simd reduction(+ : m)
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
#pragma omp simd reduction(+ : var)
    for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
    var /= C;
    float s = 1.0f / sqrtf(var + GPT2_LN_EPS);
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
    *mean = m, *rstd = s;
}

void cpu_layernorm_forward(gpt2_act *out_, float *mean, float *rstd, const gpt2_act *inp_,
                           const float *w, const float *b, int N, int C) {
    float *out = cpu_f(out_);
    const float *inp = cpu_cf(inp_);
    void (*row)(float *, float *, float *, const float *, const float *, const float *, int) =
        CPU_PICK(ln_forward_row);
#pragma omp parallel for schedule(static) if ((size_t)N * C >= LN_PARALLEL_MIN)
    for (int n = 0; n < N; n++)
        row(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, w, b, C);
}

/* One row: di += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w, and
 * the row's part of dw and db added to pdw, pdb. */
CPU_KERNEL(ln_backward_row, (float *di, float *pdw, float *pdb, const float *d, const float *x,
                             const float *w, float m, float s, int C),
           (di, pdw, pdb, d, x, w, m, s, C)) {
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
    for (int c = 0; c < C; c++) {
        float norm = (x[c] - m) * s, dnorm = w[c] * d[c];
        dnorm_mean += dnorm;
        dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
#pragma omp simd
    for (int c = 0; c < C; c++) {
        float norm = (x[c] - m) * s, dnorm = w[c] * d[c];
        pdb[c] += d[c];
        pdw[c] += norm * d[c];
        di[c] += s * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
    }
}

/* dw and db are sums over rows: each of CPU_LN_BLOCKS row blocks sums into its own slice of
 * scratch, and the slices are added in block order, so the result does not depend on the
 * number of threads. */
void cpu_layernorm_backward(gpt2_act *dinp_, float *dw, float *db, const gpt2_act *dout_,
                            const gpt2_act *inp_, const float *w, const float *mean,
                            const float *rstd, int N, int C, float *scratch) {
    float *dinp = cpu_f(dinp_);
    const float *dout = cpu_cf(dout_);
    const float *inp = cpu_cf(inp_);
    int nblocks = N < CPU_LN_BLOCKS ? N : CPU_LN_BLOCKS;
    memset(scratch, 0, (size_t)nblocks * 2 * C * sizeof *scratch);
    void (*row)(float *, float *, float *, const float *, const float *, const float *, float,
                float, int) = CPU_PICK(ln_backward_row);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nblocks; k++) {
        int n0 = (int)((long)N * k / nblocks), n1 = (int)((long)N * (k + 1) / nblocks);
        float *pdw = scratch + (size_t)k * 2 * C, *pdb = pdw + C;
        for (int n = n0; n < n1; n++)
            row(dinp + (size_t)n * C, pdw, pdb, dout + (size_t)n * C, inp + (size_t)n * C, w,
                mean[n], rstd[n], C);
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float sw = 0.0f, sb = 0.0f;
        for (int k = 0; k < nblocks; k++) {
            sw += scratch[(size_t)k * 2 * C + c];
            sb += scratch[(size_t)k * 2 * C + C + c];
        }
        dw[c] += sw;
        db[c] += sb;
    }
}

/* The composite: the CPU's two passes are each memory-bound already (a fused pass would save
 * one read of res, a small part of a step here), and give the same bits as the ops alone. */
void cpu_residual_layernorm_forward(gpt2_act *res, gpt2_act *out, float *mean, float *rstd,
                                    const gpt2_act *a, const gpt2_act *b, const float *w,
                                    const float *bias, int N, int C) {
    cpu_residual_forward(res, a, b, (size_t)N * C);
    cpu_layernorm_forward(out, mean, rstd, res, w, bias, N, C);
}
