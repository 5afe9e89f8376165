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

/* Each weight row is asked for 16 KB ahead, into L2 (L1 holds the tile's inputs): a d12 step's
 * products (bench/rows_bench.c, AMD EPYC, min of 15, 3 rounds) at 8 rows took 14.0-22.0 ms when
 * asked for 4 KB ahead into L1, 9.8-11.3 ms so; one row 7.5-8.9 ms with the hardware prefetcher
 * alone, 6.8-8.3 ms so. */
#define DP_PREFETCH_ELEMS 8192
#define DP_PREFETCH(p) _mm_prefetch((const char *)((p) + DP_PREFETCH_ELEMS), _MM_HINT_T1)

/* Chunk i of 32 values (the last one, of n - i < 32, zero-filled by the mask). */
#define DP_LOAD(p, i, n)                                                                           \
    _mm512_maskz_loadu_epi16(                                                                      \
        (n) - (i) >= DP_CHUNK ? (__mmask32)~0u : (__mmask32)((1u << ((n) - (i))) - 1), (p) + (i))

/* r[m * 4 + j] = row m of x (stride ldx) . weight row j (stride ldw), n values. The sixteen
 * sums are named variables: written as an array indexed in loops, GCC kept a copy of the array
 * in memory and stored all sixteen to it every chunk, which ran at a third of the speed or less
 * (hot in L1, one core of the EPYC: 0.6-1.1 against 3.1-3.3 G VDPBF16PS a second). */
DP_TARGET static void dp_tile4x4(const gpt2_bf16 *x, int ldx, const gpt2_bf16 *w, int ldw, int n,
                                 float *r) {
    const gpt2_bf16 *w0 = w, *w1 = w + ldw, *w2 = w + 2 * (size_t)ldw, *w3 = w + 3 * (size_t)ldw;
#define DP_SUMS(m) __m512 s##m##0 = _mm512_setzero_ps(), s##m##1 = s##m##0, s##m##2 = s##m##0, \
                          s##m##3 = s##m##0;
    DP_SUMS(0) DP_SUMS(1) DP_SUMS(2) DP_SUMS(3)
    for (int i = 0; i < n; i += DP_CHUNK) {
        DP_PREFETCH(w0 + i);
        DP_PREFETCH(w1 + i);
        DP_PREFETCH(w2 + i);
        DP_PREFETCH(w3 + i);
        __m512bh v0 = (__m512bh)DP_LOAD(w0, i, n), v1 = (__m512bh)DP_LOAD(w1, i, n),
                 v2 = (__m512bh)DP_LOAD(w2, i, n), v3 = (__m512bh)DP_LOAD(w3, i, n);
#define DP_ROW(m)                                                                                  \
    {                                                                                              \
        __m512bh xv = (__m512bh)DP_LOAD(x + (size_t)(m) * ldx, i, n);                              \
        s##m##0 = _mm512_dpbf16_ps(s##m##0, xv, v0);                                               \
        s##m##1 = _mm512_dpbf16_ps(s##m##1, xv, v1);                                               \
        s##m##2 = _mm512_dpbf16_ps(s##m##2, xv, v2);                                               \
        s##m##3 = _mm512_dpbf16_ps(s##m##3, xv, v3);                                               \
    }
        DP_ROW(0) DP_ROW(1) DP_ROW(2) DP_ROW(3)
    }
#define DP_REDUCE(m)                                                                               \
    r[(m) * 4 + 0] = _mm512_reduce_add_ps(s##m##0);                                                \
    r[(m) * 4 + 1] = _mm512_reduce_add_ps(s##m##1);                                                \
    r[(m) * 4 + 2] = _mm512_reduce_add_ps(s##m##2);                                                \
    r[(m) * 4 + 3] = _mm512_reduce_add_ps(s##m##3);
    DP_REDUCE(0) DP_REDUCE(1) DP_REDUCE(2) DP_REDUCE(3)
#undef DP_SUMS
#undef DP_ROW
#undef DP_REDUCE
}

/* One output: what the tile does for each of its sixteen. */
DP_TARGET static float dp_dot(const gpt2_bf16 *x, const gpt2_bf16 *w, int n) {
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < n; i += DP_CHUNK) {
        DP_PREFETCH(w + i);
        s = _mm512_dpbf16_ps(s, (__m512bh)DP_LOAD(x, i, n), (__m512bh)DP_LOAD(w, i, n));
    }
    return _mm512_reduce_add_ps(s);
}

/* Rows in tiles of 4 rows x 4 weight rows; the rows left over (a decoding step's single row)
 * one output at a time, one weight row after the other. Chosen by measurement (bench/rows_bench.c,
 * a d12 step's products, min of reps; AMD EPYC with AVX512_BF16, 2 threads): one row in tiles of
 * 4 weight rows, read side by side, took 10.4-11.1 ms a step (about 23 GB/s of weights), one
 * weight row after the other 6.5-6.9 ms; at 8 rows 8 x 2 tiles were no faster than 4 x 4. */
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
