/* The CPU backend's kernels (OpenMP loops, oneDNN for the linear layers' products, OpenBLAS for
 * attention's); see ops/ops.h for semantics, and ops/cpu/cpu_isa.h for how the instruction set
 * of each is chosen. */
#ifndef GPT2C_CPU_KERNELS_H
#define GPT2C_CPU_KERNELS_H

#include "ops/ops.h"

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

void cpu_embed_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                       int B, int T, int C);
void cpu_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                        int B, int T, int C);
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C);
void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C, float *scratch);
/* C[M,N] = op(A) op(B) (+ bias[N]) (+ C when accumulate), row-major and contiguous; A is [M,K]
 * ([K,M] read transposed when ta), B is [K,N] ([N,K] when tb); inputs fp32 or bf16, C fp32. */
/* GEMM_BF16 only where cpu_bf16_native() (oneDNN's bf16 kernels need AVX512_BF16 or AMX). */
typedef enum { GEMM_F32, GEMM_BF16 } gemm_type;
void cpu_gemm(gemm_type type, int ta, int tb, int M, int N, int K, const void *A, const void *B,
              const float *bias, float *C, int accumulate);

/* bf16 conversions (bf16.c). Those without _serial use the threads. */
gpt2_bf16 cpu_bf16_round(float f);
float cpu_bf16_to_float(gpt2_bf16 h);
int cpu_bf16_instruction(void); /* the AVX512_BF16 conversion runs (the level has it) */
void cpu_to_bf16(gpt2_bf16 *dst, const float *src, size_t n);
void cpu_to_bf16_serial(gpt2_bf16 *dst, const float *src, size_t n);
void cpu_to_bf16_scalar(gpt2_bf16 *dst, const float *src, size_t n); /* the reference */
void cpu_round_bf16(float *dst, const float *src, size_t n); /* to bf16 values, kept in fp32 */
void cpu_from_bf16(float *dst, const gpt2_bf16 *src, size_t n);

/* Scratch of one bf16 product of a linear layer (fp32 needs none), on this CPU's route. */
size_t cpu_matmul_scratch_floats(int N, int C, int OC);
/* Up to how many rows a bf16 product reads the bf16 weights directly (generation). */
int cpu_matmul_few_rows_bf16(void);
void cpu_matmul_forward(float *out, const float *inp, const float *w, const gpt2_bf16 *w_bf16,
                        const float *bias, int N, int C, int OC, float *scratch);
void cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, const gpt2_bf16 *w_bf16, int N, int C,
                         int OC, float *scratch);
void cpu_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH,
                           float *scratch);
void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *lse, int B, int T, int C, int NH, float *scratch);
void cpu_attention_forward_kv(float *out, const float *qkv, float *kcache, float *vcache,
                              int nseq, int n, int pos, int len, int C, int NH, float *scratch);
void cpu_gelu_forward(float *out, const float *inp, size_t n);
void cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void cpu_residual_forward(float *out, const float *a, const float *b, size_t n);
size_t cpu_classifier_scratch_floats(int C, int Vp, int bf16);
void cpu_classifier(float *losses, float *dinp, float *dwte, const float *inp, const float *wte,
                    const gpt2_bf16 *wte_bf16, const int32_t *targets, int N, int C, int V, int Vp,
                    float dloss, float *scratch);
double cpu_sum_squares(const float *x, size_t n);
void cpu_adamw(float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n, double lr,
               float beta1, float beta2, float eps, float weight_decay, float grad_scale,
               double bias_c1, double bias_c2);

#endif
