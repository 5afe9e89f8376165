/* Linear layers through the BLAS (sgemm). Weights are [OC, C] (PyTorch's nn.Linear layout). */
#include <cblas.h>

#include "ops/cpu/cpu_kernels.h"

void cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC) {
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] = bias[o];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C,
                bias ? 1.0f : 0.0f, out, OC);
}

void cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 0.0f,
                dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                dw, C);
    if (!dbias) return;
    /* Column sums: threads split the columns and each walks the rows in order. */
    enum { CHUNK = 64 };
    int nchunks = (OC + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        int o0 = k * CHUNK, o1 = o0 + CHUNK < OC ? o0 + CHUNK : OC;
        float acc[CHUNK] = {0};
        for (int n = 0; n < N; n++)
            for (int o = o0; o < o1; o++) acc[o - o0] += dout[(size_t)n * OC + o];
        for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
    }
}
