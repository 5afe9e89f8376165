/* Token + position embedding. */
#include "ops/cpu/cpu_kernels.h"

void cpu_embed_forward(gpt2_act *out_, const int32_t *tokens, const float *wte, const float *wpe,
                       int B, int T, int C) {
    float *out = cpu_f(out_);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C >= 16384)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *te = wte + (size_t)tokens[b * T + t] * C, *pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
        }
}

/* Several positions may hold the same token, so rows of dwte are shared: threads split the
 * channels instead, and each walks all positions in order (deterministic, no atomics). */
void cpu_embed_backward(float *dwte, float *dwpe, const gpt2_act *dout_, const int32_t *tokens,
                        int B, int T, int C, float *scratch) {
    (void)scratch;
    const float *dout = cpu_cf(dout_);
    enum { CHUNK = 32 };
    int nchunks = (C + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        int c0 = k * CHUNK, c1 = c0 + CHUNK < C ? c0 + CHUNK : C;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float *d = dout + ((size_t)b * T + t) * C;
                float *te = dwte + (size_t)tokens[b * T + t] * C, *pe = dwpe + (size_t)t * C;
                for (int c = c0; c < c1; c++) {
                    te[c] += d[c];
                    pe[c] += d[c];
                }
            }
    }
}
