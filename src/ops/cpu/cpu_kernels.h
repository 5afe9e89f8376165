/* The CPU backend's kernels (fp32, OpenMP, BLAS for the matmuls); see ops/ops.h for semantics. */
#ifndef GPT2C_CPU_KERNELS_H
#define GPT2C_CPU_KERNELS_H

#include "ops/ops.h"

/* Row blocks of the layernorm backward's weight-gradient reduction: a fixed count, so the
 * summation order (and the result) does not depend on the number of threads. */
#define CPU_LN_BLOCKS 64
/* Query rows per attention block, and the scratch one thread needs for blocks of T keys:
 * the probabilities and their gradient. */
#define CPU_ATTN_ROWS 64
#define CPU_ATTN_SCRATCH(T) ((size_t)2 * CPU_ATTN_ROWS * (size_t)(T))
/* Rows of logits the fused classifier holds at once. */
#define CPU_CLASSIFIER_ROWS 128

void cpu_embed_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                       int B, int T, int C);
void cpu_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                        int B, int T, int C);
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C);
void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C, float *scratch);
void cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC);
void cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC);
void cpu_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH,
                           float *scratch);
void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *lse, int B, int T, int C, int NH, float *scratch);
void cpu_attention_forward_kv(float *out, const float *qkv, float *kcache, float *vcache,
                              int nseq, int n, int pos, int len, int C, int NH, float *scratch);
void cpu_gelu_forward(float *out, const float *inp, size_t n);
void cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void cpu_residual_forward(float *out, const float *a, const float *b, size_t n);
void cpu_classifier(float *losses, float *dinp, float *dwte, const float *inp, const float *wte,
                    const int32_t *targets, int N, int C, int V, int Vp, float dloss,
                    float *scratch);
double cpu_sum_squares(const float *x, size_t n);
void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, double lr, float beta1,
               float beta2, float eps, float weight_decay, float grad_scale, double bias_c1,
               double bias_c2);

#endif
