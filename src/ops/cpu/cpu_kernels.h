/* The CPU backend's kernels (OpenMP loops, oneDNN for the linear layers' products, OpenBLAS for
 * attention's); see ops/ops.h for semantics, and ops/cpu/cpu_isa.h for how the instruction set
 * of each is chosen. */
#ifndef GPT2C_CPU_KERNELS_H
#define GPT2C_CPU_KERNELS_H

#include "ops/ops.h"

/* The ops of ops/ops.h (cpu_alloc, cpu_embed_forward, ...), one file per op. */
#define CPU_SERVICE_PROTO(ret, name, params) ret cpu_##name params;
#define CPU_OP_PROTO(name, params, ...) void cpu_##name params;
GPT2_SERVICES(CPU_SERVICE_PROTO)
GPT2_OPS(CPU_OP_PROTO)
#undef CPU_SERVICE_PROTO
#undef CPU_OP_PROTO

/* The CPU stores activations as fp32: its kernels see them as floats. */
static inline float *cpu_f(gpt2_act *a) { return (float *)a; }
static inline const float *cpu_cf(const gpt2_act *a) { return (const float *)a; }

/* A loop over n values in blocks of `block`, spread over the threads (one thread when there is
 * one block); body sees i0 and len. */
#define CPU_FOR_BLOCKS(n, block, body)                                                             \
    do {                                                                                           \
        size_t nblocks_ = ((n) + (block) - 1) / (block);                                           \
        _Pragma("omp parallel for schedule(static) if (nblocks_ > 1)")                             \
        for (size_t k_ = 0; k_ < nblocks_; k_++) {                                                 \
            size_t i0 = k_ * (block), len = (n) - i0 < (block) ? (n) - i0 : (block);               \
            body;                                                                                  \
        }                                                                                          \
    } while (0)

/* Row blocks of the layernorm backward's weight-gradient reduction: a fixed count, so the
 * summation order (and the result) does not depend on the number of threads. */
#define CPU_LN_BLOCKS 64
/* Query rows per attention block, and the scratch one thread needs for blocks of T keys:
 * the probabilities and their gradient. */
#define CPU_ATTN_ROWS 64
#define CPU_ATTN_SCRATCH(T) ((size_t)2 * CPU_ATTN_ROWS * (size_t)(T))
/* Rows of logits the fused classifier holds at once (512 x 50304 floats: 103 MB). Each chunk
 * streams the whole wte gradient once more, so fewer, larger chunks: 512 rows instead of 256
 * made the LM head of d12 at B=8 T=256 7% faster. */
#define CPU_CLASSIFIER_ROWS 512

/* C[M,N] = op(A) op(B) (+ bias[N]) (+ C when accumulate), row-major and contiguous; A is [M,K]
 * ([K,M] read transposed when ta), B is [K,N] ([N,K] when tb); inputs fp32 or bf16, C fp32. */
/* GEMM_BF16 only where cpu_bf16_native() (oneDNN's bf16 kernels need AVX512_BF16 or AMX). */
typedef enum { GEMM_F32, GEMM_BF16 } gemm_type;
void cpu_gemm(gemm_type type, int ta, int tb, int M, int N, int K, const void *A, const void *B,
              const float *bias, float *C, int accumulate);

/* Batch products of bf16 views, C (fp32) = A B (+ C when accumulate), each of the batch: A is
 * M x K, B is K x N, C is M x N; element (i, r, c) of A at A + i * sa[0] + r * sa[1] + c * sa[2],
 * of B likewise by sb, of C at C + i * sc[0] + r * sc[1] + c. Only where cpu_bf16_native()
 * (attention's products under bf16, attention_bf16.c). */
void cpu_gemm_batched(int batch, int M, int N, int K, const gpt2_bf16 *A, const long sa[3],
                      const gpt2_bf16 *B, const long sb[3], float *C, const long sc[2],
                      int accumulate);
/* attention_bf16.c: the bf16-product attention (attention.c takes it under bf16 where
 * cpu_bf16_native()), and the scratch it needs. */
void cpu_attention_bf16_forward(float *out, float *lse, const float *qkv, int B, int T, int C,
                                int NH, float *scratch);
void cpu_attention_bf16_backward(float *dqkv, const float *dout, const float *qkv,
                                 const float *out, const float *lse, int B, int T, int C, int NH,
                                 float *scratch);
size_t cpu_attention_bf16_scratch_floats(int T, int C, int NH);
/* attention.c's row kernels, which attention_bf16.c shares: the softmax of a row of n scores
 * times scale, in place, zeros up to len, its log-sum-exp; and its backward from the scores
 * (times scale) and lse, ds = dP in, dS out. */
void cpu_attention_softmax_row(float *row, int n, int len, float scale, float *lse);
void cpu_attention_softmax_backward_row(float *p, float *ds, int n, int len, float scale,
                                        float lse, float d);

/* bf16 conversions (bf16.c). Those without _serial use the threads. */
gpt2_bf16 cpu_bf16_round(float f);
float cpu_bf16_to_float(gpt2_bf16 h);
int cpu_bf16_instruction(void); /* the AVX512_BF16 conversion runs (the level has it) */
void cpu_to_bf16_serial(gpt2_bf16 *dst, const float *src, size_t n);
void cpu_to_bf16_scalar(gpt2_bf16 *dst, const float *src, size_t n); /* the reference */
void cpu_round_bf16(float *dst, const float *src, size_t n); /* to bf16 values, kept in fp32 */
void cpu_from_bf16(float *dst, const gpt2_bf16 *src, size_t n);

/* Scratch of one bf16 product of a linear layer (fp32 needs none), on this CPU's route. */
size_t cpu_matmul_scratch_floats(int N, int C, int OC);
/* Rows of n floats (n even) rounded to bf16 and split into their even then their odd elements,
 * for the kernels that read bf16 weights as pairs (matmul.c, matmul_rows.c). */
void cpu_deinterleave_rounded(float *dst, const float *src, int rows, int n);
/* out[N,OC] = x[N,C] . w^T (+ bias) for bf16 rows x and weights w with AVX512_BF16's pair
 * products, each row computed alike whatever the rows beside it (matmul_dpbf16.c); only where
 * cpu_rows_dpbf16_available(). */
int cpu_rows_dpbf16_available(void);
void cpu_rows_dpbf16(float *out, const gpt2_bf16 *x, const gpt2_bf16 *w, const float *bias, int N,
                     int C, int OC);
/* Up to how many rows a bf16 product reads the bf16 weights directly (generation). */
int cpu_matmul_few_rows_bf16(void);
size_t cpu_classifier_scratch_floats(int C, int Vp, int bf16);

#endif
