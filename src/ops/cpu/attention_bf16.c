/* Causal attention whose products take bf16 inputs and accumulate in fp32, for --precision bf16
 * where oneDNN has bf16 kernels (AVX512_BF16, AMX): q, k, v, the probabilities, dO and dS are
 * rounded to bf16 for the products; the scores, the softmax, its log-sum-exp and every gradient
 * are fp32. As PyTorch's autocast runs scaled_dot_product_attention in bf16 on the CPU.
 *
 * A sequence at a time: its qkv rows (and dO) rounded to bf16 once, then for each block of
 * CPU_ATTN_ROWS query rows one batched product over all its heads (oneDNN's matmul, reading q,
 * k and v as strided views of those rows, writing out and dqkv in place): the forward's S = Q K^T
 * and O = P V, the backward's S (recomputed), dP = dO V^T, dQ = dS K, dK += dS^T Q and
 * dV += P^T dO. Between them the rows' softmax (or its backward) in fp32 on the threads, as
 * attention.c's, each row's probabilities (and dS) then rounded to bf16. Per-head products from
 * inside the threads' loop, as attention.c runs OpenBLAS's, would serialise on oneDNN's one
 * stream; batched over the heads, oneDNN spreads each product over the threads itself (at d12's
 * shapes on an AMD EPYC with AVX512_BF16: Q K^T 340 GFLOP/s, against OpenBLAS's fp32 per head
 * 147). */
#include <math.h>
#include <string.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "util/mem.h"

#define ROWS CPU_ATTN_ROWS

/* The scratch: for one block of all a sequence's heads the scores S and dP (fp32, rows of T: a
 * fixed stride whatever the block) and P and dS in bf16, then the sequence's qkv and dO in bf16.
 * Each piece starts on a cache line; `layout` gives their offsets in bytes (and the end: the
 * size), which both the pieces and the size the plan reserves come from. */
typedef struct layout {
    size_t S, dP, P, dS, x, dy, end;
} layout;

static layout layout_of(int T, int C, int NH) {
    size_t block = (size_t)NH * ROWS * T;
    layout l = {0};
    l.dP = mem_after(l.S, block, sizeof(float));
    l.P = mem_after(l.dP, block, sizeof(float));
    l.dS = mem_after(l.P, block, sizeof(gpt2_bf16));
    l.x = mem_after(l.dS, block, sizeof(gpt2_bf16));
    l.dy = mem_after(l.x, (size_t)T * 3 * C, sizeof(gpt2_bf16));
    l.end = mem_after(l.dy, (size_t)T * C, sizeof(gpt2_bf16));
    return l;
}

typedef struct buffers {
    gpt2_bf16 *x;  /* [T][3C]: the sequence's qkv */
    gpt2_bf16 *dy; /* [T][C]: its dO */
    float *S, *dP; /* [NH][ROWS][T] */
    gpt2_bf16 *P, *dS;
} buffers;

static buffers carve(float *scratch, int T, int C, int NH) {
    layout l = layout_of(T, C, NH);
    char *base = (char *)scratch;
    return (buffers){.x = (gpt2_bf16 *)(base + l.x), .dy = (gpt2_bf16 *)(base + l.dy),
                     .S = (float *)(base + l.S), .dP = (float *)(base + l.dP),
                     .P = (gpt2_bf16 *)(base + l.P), .dS = (gpt2_bf16 *)(base + l.dS)};
}

size_t cpu_attention_bf16_scratch_floats(int T, int C, int NH) {
    return layout_of(T, C, NH).end / sizeof(float);
}

/* The views, in elements. A block's S, dP, P and dS: head h, row r, key u at h*ROWS*T + r*T + u;
 * its transpose (P^T, dS^T) swaps the row and column strides. The sequence's qkv rows: q of head
 * h at row t is x + t*3C + h*hs, k at + C, v at + 2C; dO and out (and dqkv's rows of 3C) alike. */
typedef struct views {
    long block[3], block_t[3], block_c[2]; /* a block's [NH][ROWS][T] as A, as A^T, as C */
    long rows[3], rows_t[3];               /* rows of 3C, head by head: [t][d], as B^T [d][t] */
    long dy_rows[3];                       /* rows of C (dO) */
    long out3[2], out1[2];                 /* C of rows of 3C (dqkv), of C (out) */
} views;

static views views_of(int T, int C, int NH) {
    long hs = C / NH, blk = (long)ROWS * T;
    return (views){.block = {blk, T, 1},       .block_t = {blk, 1, T},  .block_c = {blk, T},
                   .rows = {hs, 3L * C, 1},    .rows_t = {hs, 1, 3L * C},
                   .dy_rows = {hs, C, 1},
                   .out3 = {hs, 3L * C},       .out1 = {hs, C}};
}

/* S = Q[r0 .. r0+nq) K[0 .. nk)^T for every head (unscaled) */
static void scores(const buffers *b, const views *v, int r0, int nq, int nk, int C, int NH) {
    int hs = C / NH;
    cpu_gemm_batched(NH, nq, nk, hs, b->x + (size_t)r0 * 3 * C, v->rows, b->x + C, v->rows_t,
                     b->S, v->block_c, 0);
}

void cpu_attention_bf16_forward(float *out, float *lse, const float *qkv, int B, int T, int C,
                                int NH, float *scratch) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    buffers b = carve(scratch, T, C, NH);
    views v = views_of(T, C, NH);
    for (int s = 0; s < B; s++) {
        cpu_to_bf16(b.x, qkv + (size_t)s * T * 3 * C, (size_t)T * 3 * C);
        float *o = out + (size_t)s * T * C, *l = lse + (size_t)s * NH * T;
        for (int r0 = 0; r0 < T; r0 += ROWS) {
            int nq = T - r0 < ROWS ? T - r0 : ROWS, nk = r0 + nq;
            scores(&b, &v, r0, nq, nk, C, NH);
#pragma omp parallel for collapse(2) schedule(static)
            for (int h = 0; h < NH; h++)
                for (int r = 0; r < nq; r++) { /* the query at position t sees keys 0..t */
                    size_t at = ((size_t)h * ROWS + r) * T;
                    int t = r0 + r;
                    cpu_attention_softmax_row(b.S + at, t + 1, nk, scale, &l[(size_t)h * T + t]);
                    cpu_to_bf16_serial(b.P + at, b.S + at, (size_t)nk);
                }
            cpu_gemm_batched(NH, nq, hs, nk, b.P, v.block, b.x + 2 * C, v.rows,
                             o + (size_t)r0 * C, v.out1, 0);
        }
    }
}

/* With P recomputed from lse (as attention.c): dP = dO V^T, dS = P * (dP - rowsum(dO * O)) *
 * scale, dQ = dS K, dK += dS^T Q, dV += P^T dO. */
void cpu_attention_bf16_backward(float *dqkv, const float *dout, const float *qkv,
                                 const float *out, const float *lse, int B, int T, int C, int NH,
                                 float *scratch) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    buffers b = carve(scratch, T, C, NH);
    views v = views_of(T, C, NH);
    for (int s = 0; s < B; s++) {
        const float *y = out + (size_t)s * T * C, *dy = dout + (size_t)s * T * C;
        const float *l = lse + (size_t)s * NH * T;
        float *dx = dqkv + (size_t)s * T * 3 * C;
        cpu_to_bf16(b.x, qkv + (size_t)s * T * 3 * C, (size_t)T * 3 * C);
        cpu_to_bf16(b.dy, dy, (size_t)T * C);
        for (int t = 0; t < T; t++) memset(dx + (size_t)t * 3 * C + C, 0, 2 * C * sizeof *dx);
        for (int r0 = 0; r0 < T; r0 += ROWS) {
            int nq = T - r0 < ROWS ? T - r0 : ROWS, nk = r0 + nq;
            scores(&b, &v, r0, nq, nk, C, NH);
            cpu_gemm_batched(NH, nq, nk, hs, b.dy + (size_t)r0 * C, v.dy_rows, b.x + 2 * C,
                             v.rows_t, b.dP, v.block_c, 0);
#pragma omp parallel for collapse(2) schedule(static)
            for (int h = 0; h < NH; h++)
                for (int r = 0; r < nq; r++) {
                    size_t at = ((size_t)h * ROWS + r) * T;
                    int t = r0 + r;
                    const float *y_t = y + (size_t)t * C + (size_t)h * hs;
                    const float *dy_t = dy + (size_t)t * C + (size_t)h * hs;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) d += dy_t[i] * y_t[i];
                    cpu_attention_softmax_backward_row(b.S + at, b.dP + at, t + 1, nk, scale,
                                                       l[(size_t)h * T + t], d);
                    cpu_to_bf16_serial(b.P + at, b.S + at, (size_t)nk);
                    cpu_to_bf16_serial(b.dS + at, b.dP + at, (size_t)nk);
                }
            /* dQ of the block's rows; dK and dV of keys 0 .. nk, summed over the blocks */
            cpu_gemm_batched(NH, nq, hs, nk, b.dS, v.block, b.x + C, v.rows,
                             dx + (size_t)r0 * 3 * C, v.out3, 0);
            cpu_gemm_batched(NH, nk, hs, nq, b.dS, v.block_t, b.x + (size_t)r0 * 3 * C, v.rows,
                             dx + C, v.out3, 1);
            cpu_gemm_batched(NH, nk, hs, nq, b.P, v.block_t, b.dy + (size_t)r0 * C, v.dy_rows,
                             dx + 2 * C, v.out3, 1);
        }
    }
}
