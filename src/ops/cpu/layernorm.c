/* LayerNorm over the channels of each row (biased variance, eps 1e-5, as PyTorch). */
#include <math.h>
#include <string.h>

#include "model/config.h"
#include "ops/cpu/cpu_kernels.h"

void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float var = 0.0f;
        for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
        var /= C;
        float s = 1.0f / sqrtf(var + GPT2_LN_EPS);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

/* dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), with dnorm = dout * w.
 * dw and db are sums over rows: each of CPU_LN_BLOCKS row blocks sums into its own slice of
 * scratch, and the slices are added in block order. */
void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C, float *scratch) {
    int nblocks = N < CPU_LN_BLOCKS ? N : CPU_LN_BLOCKS;
    memset(scratch, 0, (size_t)nblocks * 2 * C * sizeof *scratch);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nblocks; k++) {
        int n0 = (int)((long)N * k / nblocks), n1 = (int)((long)N * (k + 1) / nblocks);
        float *pdw = scratch + (size_t)k * 2 * C, *pdb = pdw + C;
        for (int n = n0; n < n1; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * s, dnorm = w[c] * d[c];
                dnorm_mean += dnorm;
                dnorm_norm_mean += dnorm * norm;
            }
            dnorm_mean /= C;
            dnorm_norm_mean /= C;
            float *di = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * s, dnorm = w[c] * d[c];
                pdb[c] += d[c];
                pdw[c] += norm * d[c];
                di[c] += s * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
            }
        }
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
