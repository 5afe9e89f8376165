/* Linear layers: the products through oneDNN (gemm.c), in fp32 or with bf16 inputs. Weights are
 * [OC, C] (PyTorch's nn.Linear layout). */
#include "ops/cpu/cpu_kernels.h"

/* Few rows in fp32 (generation: one token per sequence). GEMM libraries repack the whole weight
 * matrix on every call, which for 1-8 rows costs more than the product (OpenBLAS: 10 GB/s of
 * weights on this machine's 22 GB/s); here each pair of weight rows is read once for up to 4
 * input rows at a time (28 GB/s at one row). Cloned for AVX-512 and AVX2, picked at load time. */
#define SMALL_ROWS 8

CPU_CLONES static void dot4x2(const float *x, int ldx, const float *w0, const float *w1, int n,
                          float r[8]) {
    const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
    for (int i = 0; i < n; i++) {
        a0 += x0[i] * w0[i], a1 += x1[i] * w0[i], a2 += x2[i] * w0[i], a3 += x3[i] * w0[i];
        b0 += x0[i] * w1[i], b1 += x1[i] * w1[i], b2 += x2[i] * w1[i], b3 += x3[i] * w1[i];
    }
    r[0] = a0, r[1] = a1, r[2] = a2, r[3] = a3, r[4] = b0, r[5] = b1, r[6] = b2, r[7] = b3;
}

CPU_CLONES static void dot1x2(const float *x, const float *w0, const float *w1, int n, float r[2]) {
    float a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int i = 0; i < n; i++) a += x[i] * w0[i], b += x[i] * w1[i];
    r[0] = a, r[1] = b;
}

static void matmul_few_rows(float *out, const float *inp, const float *w, const float *bias, int N,
                            int C, int OC) {
    int pairs = (OC + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < pairs; k++) {
        int o = 2 * k, two = o + 1 < OC;
        const float *w0 = w + (size_t)o * C, *w1 = two ? w0 + C : w0; /* odd OC: last row twice */
        float b0 = bias ? bias[o] : 0.0f, b1 = bias && two ? bias[o + 1] : 0.0f;
        int m = 0;
        for (; m + 4 <= N; m += 4) {
            float r[8];
            dot4x2(inp + (size_t)m * C, C, w0, w1, C, r);
            for (int j = 0; j < 4; j++) {
                out[(size_t)(m + j) * OC + o] = b0 + r[j];
                if (two) out[(size_t)(m + j) * OC + o + 1] = b1 + r[4 + j];
            }
        }
        for (; m < N; m++) {
            float r[2];
            dot1x2(inp + (size_t)m * C, w0, w1, C, r);
            out[(size_t)m * OC + o] = b0 + r[0];
            if (two) out[(size_t)m * OC + o + 1] = b1 + r[1];
        }
    }
}

/* Where the bf16 copies of a product's inputs go in the scratch: b elements after a, rounded up
 * to a cache line. */
static gpt2_bf16 *after(gpt2_bf16 *a, size_t n) { return a + ((n + 31) & ~(size_t)31); }

void cpu_matmul_forward(float *out, const float *inp, const float *w, const gpt2_bf16 *w_bf16,
                        const float *bias, int N, int C, int OC, float *scratch) {
    if (w_bf16) {
        gpt2_bf16 *inp_bf16 = (gpt2_bf16 *)scratch;
        cpu_to_bf16(inp_bf16, inp, (size_t)N * C);
        cpu_gemm(GEMM_BF16, 0, 1, N, OC, C, inp_bf16, w_bf16, bias, out, 0);
    } else if (N <= SMALL_ROWS) {
        matmul_few_rows(out, inp, w, bias, N, C, OC);
    } else {
        cpu_gemm(GEMM_F32, 0, 1, N, OC, C, inp, w, bias, out, 0);
    }
}

void cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, const gpt2_bf16 *w_bf16, int N, int C,
                         int OC, float *scratch) {
    if (w_bf16) {
        gpt2_bf16 *dout_bf16 = (gpt2_bf16 *)scratch, *inp_bf16 = after(dout_bf16, (size_t)N * OC);
        cpu_to_bf16(dout_bf16, dout, (size_t)N * OC);
        cpu_to_bf16(inp_bf16, inp, (size_t)N * C);
        cpu_gemm(GEMM_BF16, 0, 0, N, C, OC, dout_bf16, w_bf16, NULL, dinp, 0);
        cpu_gemm(GEMM_BF16, 1, 0, OC, C, N, dout_bf16, inp_bf16, NULL, dw, 1);
    } else {
        cpu_gemm(GEMM_F32, 0, 0, N, C, OC, dout, w, NULL, dinp, 0);
        cpu_gemm(GEMM_F32, 1, 0, OC, C, N, dout, inp, NULL, dw, 1);
    }
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
