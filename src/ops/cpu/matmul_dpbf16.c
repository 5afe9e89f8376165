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
 * loads; a tile of one output does for it what a tile of sixteen does. The products of two bf16
 * values are exact in fp32, so the sums differ from the emulated route's only in their order
 * (and in the instruction flushing subnormal sums to zero; bf16.c's rounding already flushes
 * subnormal inputs). */
#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define HAVE_DPBF16 1
#define DP_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

enum { DP_ROWS = 4, DP_J = 4, DP_CHUNK = 32 };

/* The 4 x 4 tiles ask for each weight row 4 KB ahead, which keeps enough reads in flight for
 * their 4 side-by-side streams (at 4 rows 12.4 ms a d12 step with it, 15.0 without); a single
 * stream does better with the hardware prefetcher alone. */
#define DP_PREFETCH_ELEMS 2048

/* r[m * J + j] = row m of x (stride ldx) . weight row j (stride ldw), n values, m < R, j < J. */
DP_TARGET static inline __attribute__((always_inline)) void dp_tile(int R, int J,
                                                                     const gpt2_bf16 *x, int ldx,
                                                                     const gpt2_bf16 *w, int ldw,
                                                                     int n, float *r) {
    __m512 acc[DP_ROWS][DP_J];
    for (int m = 0; m < R; m++)
        for (int j = 0; j < J; j++) acc[m][j] = _mm512_setzero_ps();
    for (int i = 0; i < n; i += DP_CHUNK) {
        __mmask32 k = n - i >= DP_CHUNK ? (__mmask32)~0u : (__mmask32)((1u << (n - i)) - 1);
        __m512i wv[DP_J];
        for (int j = 0; j < J; j++) {
            const gpt2_bf16 *wj = w + (size_t)j * ldw + i;
            if (J > 1) _mm_prefetch((const char *)(wj + DP_PREFETCH_ELEMS), _MM_HINT_T0);
            wv[j] = _mm512_maskz_loadu_epi16(k, wj);
        }
        for (int m = 0; m < R; m++) {
            __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(k, x + (size_t)m * ldx + i);
            for (int j = 0; j < J; j++) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], xv, (__m512bh)wv[j]);
        }
    }
    for (int m = 0; m < R; m++)
        for (int j = 0; j < J; j++) r[m * J + j] = _mm512_reduce_add_ps(acc[m][j]);
}

DP_TARGET static void dp_tile4x4(const gpt2_bf16 *x, int ldx, const gpt2_bf16 *w, int ldw, int n,
                                 float *r) {
    dp_tile(DP_ROWS, DP_J, x, ldx, w, ldw, n, r);
}
DP_TARGET static float dp_dot(const gpt2_bf16 *x, const gpt2_bf16 *w, int n) {
    float r;
    dp_tile(1, 1, x, 0, w, 0, n, &r);
    return r;
}

/* Rows in tiles of 4 rows x 4 weight rows; the rows left over (a decoding step's single row)
 * one output at a time, one weight row after the other. Chosen by measurement (bench/rows_bench.c,
 * a d12 step's products, min of reps; AMD EPYC with AVX512_BF16, 2 threads): one row in tiles of
 * 4 weight rows, read side by side, took 10.4-11.1 ms a step (about 23 GB/s of weights), one
 * weight row after the other 6.5-6.9 ms; from 4 rows on the 4 x 4 tiles are as fast as any
 * other shape tried (2 x 2 tiles: 8 rows 23.7 ms against 19.0). */
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
            float r[DP_ROWS * DP_J];
            int m = r0;
            if (nj == DP_J)
                for (; m + DP_ROWS <= r1; m += DP_ROWS) {
                    dp_tile4x4(x + (size_t)m * C, C, wg, C, C, r);
                    for (int a = 0; a < DP_ROWS; a++)
                        for (int j = 0; j < DP_J; j++)
                            out[(size_t)(m + a) * OC + o0 + j] =
                                (bias ? bias[o0 + j] : 0.0f) + r[a * DP_J + j];
                }
            for (; m < r1; m++) /* the rows left (and a short last group's) */
                for (int j = 0; j < nj; j++)
                    out[(size_t)m * OC + o0 + j] = (bias ? bias[o0 + j] : 0.0f) +
                                                   dp_dot(x + (size_t)m * C, wg + (size_t)j * C, C);
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
