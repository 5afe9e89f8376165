/* Linear layers for a few rows with bf16 weights, on AVX512_BF16 (which every AMX CPU has too):
 * out = inp @ w^T + bias with the input rounded to bf16, fp32 sums. VDPBF16PS multiplies 16
 * pairs of bf16 values and adds each pair's two products to an fp32 lane: 32 multiply-adds an
 * instruction and no widening, where matmul.c's few-rows kernel widens the weights in registers
 * and does 8. Generation (a server's decoding rows, short prompt chunks) is compute-bound there
 * once a few rows share the weights' read.
 *
 * Every output is one fixed computation, whatever the rows beside it (ops.h's Rows): 16 lanes
 * over the channels in chunks of 32 in order (the last chunk zero-filled by a masked load), then
 * _mm512_reduce_add_ps's fixed tree, then the bias. Tiles of 4 rows x 4 weight rows only share
 * loads; a tile of one row does for it what a tile of four does. The products of two bf16 values
 * are exact in fp32, so the sums differ from the emulated route's only in their order (and in
 * the instruction flushing subnormal sums to zero; bf16.c's rounding already flushes subnormal
 * inputs). */
#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define HAVE_DPBF16 1
#define DP_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

enum { DP_ROWS = 4, DP_J = 4, DP_CHUNK = 32 };

/* The weights stream from memory once; asking for each weight row 4 KB ahead keeps enough reads
 * in flight (as matmul.c's few-rows kernel does). */
#define DP_PREFETCH_ELEMS 2048

/* r[m * DP_J + j] = row m of x (stride ldx) . weight row j (stride ldw), n values, m < R. */
DP_TARGET static inline __attribute__((always_inline)) void dp_tile(int R, const gpt2_bf16 *x,
                                                                     int ldx, const gpt2_bf16 *w,
                                                                     int ldw, int n, float *r) {
    __m512 acc[DP_ROWS][DP_J];
    for (int m = 0; m < R; m++)
        for (int j = 0; j < DP_J; j++) acc[m][j] = _mm512_setzero_ps();
    for (int i = 0; i < n; i += DP_CHUNK) {
        __mmask32 k = n - i >= DP_CHUNK ? (__mmask32)~0u : (__mmask32)((1u << (n - i)) - 1);
        __m512i wv[DP_J];
        for (int j = 0; j < DP_J; j++) {
            const gpt2_bf16 *wj = w + (size_t)j * ldw + i;
            _mm_prefetch((const char *)(wj + DP_PREFETCH_ELEMS), _MM_HINT_T0);
            wv[j] = _mm512_maskz_loadu_epi16(k, wj);
        }
        for (int m = 0; m < R; m++) {
            __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(k, x + (size_t)m * ldx + i);
            for (int j = 0; j < DP_J; j++) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], xv, (__m512bh)wv[j]);
        }
    }
    for (int m = 0; m < R; m++)
        for (int j = 0; j < DP_J; j++) r[m * DP_J + j] = _mm512_reduce_add_ps(acc[m][j]);
}

DP_TARGET static void dp_tile4(const gpt2_bf16 *x, int ldx, const gpt2_bf16 *w, int ldw, int n,
                               float *r) {
    dp_tile(DP_ROWS, x, ldx, w, ldw, n, r);
}
DP_TARGET static void dp_tile1(const gpt2_bf16 *x, int ldx, const gpt2_bf16 *w, int ldw, int n,
                               float *r) {
    dp_tile(1, x, ldx, w, ldw, n, r);
}

void cpu_rows_dpbf16(float *out, const gpt2_bf16 *x, const gpt2_bf16 *w, const float *bias, int N,
                     int C, int OC) {
    int groups = (OC + DP_J - 1) / DP_J;
    /* rows a block at a time, so that a block of inputs stays in L2 while the weights pass */
    int block = (int)(131072 / (size_t)C) / DP_ROWS * DP_ROWS;
    if (block < DP_ROWS) block = DP_ROWS;
    for (int r0 = 0; r0 < N; r0 += block) {
        int r1 = r0 + block < N ? r0 + block : N;
#pragma omp parallel for schedule(static)
        for (int g = 0; g < groups; g++) {
            int o0 = g * DP_J, nj = OC - o0 < DP_J ? OC - o0 : DP_J;
            const gpt2_bf16 *wg = w + (size_t)o0 * C;
            float r[DP_ROWS * DP_J], rj[DP_ROWS * DP_J];
            for (int m = r0; m < r1;) {
                int rows = m + DP_ROWS <= r1 ? DP_ROWS : 1;
                const gpt2_bf16 *xm = x + (size_t)m * C;
                if (nj == DP_J) {
                    (rows == DP_ROWS ? dp_tile4 : dp_tile1)(xm, C, wg, C, C, r);
                } else { /* the short last group, a weight row at a time (ldw 0: every slot reads
                          * that row; each slot's sums are its own) */
                    for (int j = 0; j < nj; j++) {
                        (rows == DP_ROWS ? dp_tile4 : dp_tile1)(xm, C, wg + (size_t)j * C, 0, C, rj);
                        for (int a = 0; a < rows; a++) r[a * DP_J + j] = rj[a * DP_J];
                    }
                }
                for (int a = 0; a < rows; a++)
                    for (int j = 0; j < nj; j++)
                        out[(size_t)(m + a) * OC + o0 + j] =
                            (bias ? bias[o0 + j] : 0.0f) + r[a * DP_J + j];
                m += rows;
            }
        }
    }
}
#endif

int cpu_rows_dpbf16_available(void) {
#ifdef HAVE_DPBF16
    return cpu_isa() >= CPU_ISA_AVX512_BF16;
#else
    return 0;
#endif
}

#ifndef HAVE_DPBF16
void cpu_rows_dpbf16(float *out, const gpt2_bf16 *x, const gpt2_bf16 *w, const float *bias, int N,
                     int C, int OC) {
    (void)out, (void)x, (void)w, (void)bias, (void)N, (void)C, (void)OC;
    __builtin_trap(); /* callers ask cpu_rows_dpbf16_available() first */
}
#endif
