/* The CUDA backend's kernels: the same ops and semantics as ops/ops.h (and as the CPU reference,
 * which tests/test_cuda_ops.c compares them with), on device pointers. C-callable. Matmuls go
 * through cuBLASLt (TF32 for fp32 products unless cuda_set_tf32(0), bf16 inputs with fp32
 * accumulation when a bf16 weight copy is given); everything else is written here. One stream. */
#ifndef GPT2C_CUDA_KERNELS_H
#define GPT2C_CUDA_KERNELS_H

#include "gpt2c.h"
#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows of logits the fused classifier holds at once (1024 x 50304 floats: 206 MB). */
#define CUDA_CLASSIFIER_ROWS 1024
/* Head sizes the attention kernels handle: multiples of 32 up to 128 (GPT-2's are all 64). */
#define CUDA_ATTN_MAX_HS 128

/* Devices visible (0 when there is no driver or GPU: never an error). */
int cuda_device_count(void);
/* The first call picks device 0 and makes the cuBLASLt handle and workspace; 0 or -1. */
int cuda_init(gpt2c_error *err);
/* TF32 for fp32 products (default on, as PyTorch's allow_tf32 in the seed); tests turn it off. */
void cuda_set_tf32(int on);

/* Memory, for the model's plan and the tests. */
void *cuda_alloc(size_t bytes);
void cuda_free(void *p);
void cuda_to_device(void *dst, const void *src, size_t bytes);
void cuda_to_host(void *dst, const void *src, size_t bytes);
void cuda_memset0(void *p, size_t bytes);
void cuda_sync(void);

/* Row-major C[M,N] = op(A) op(B) (+ bias[N]) (+ C when accumulate), as cpu_gemm. */
void cuda_gemm(int bf16, int ta, int tb, int M, int N, int K, const void *A, const void *B,
               const float *bias, float *C, int accumulate);

void cuda_embed_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                        int B, int T, int C);
void cuda_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                         int B, int T, int C);
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *w, const float *b, int N, int C);
void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w, const float *mean,
                             const float *rstd, int N, int C, float *scratch);
void cuda_matmul_forward(float *out, const float *inp, const float *w, const gpt2_bf16 *w_bf16,
                         const float *bias, int N, int C, int OC, float *scratch);
void cuda_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                          const float *inp, const float *w, const gpt2_bf16 *w_bf16, int N, int C,
                          int OC, float *scratch);
void cuda_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH,
                            float *scratch);
void cuda_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                             const float *lse, int B, int T, int C, int NH, float *scratch);
void cuda_attention_forward_kv(float *out, const float *qkv, float *kcache, float *vcache,
                               int nseq, int n, int pos, int len, int C, int NH, float *scratch);
void cuda_gelu_forward(float *out, const float *inp, size_t n);
void cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void cuda_residual_forward(float *out, const float *a, const float *b, size_t n);
void cuda_classifier(float *losses, float *dinp, float *dwte, const float *inp, const float *wte,
                     const gpt2_bf16 *wte_bf16, const int32_t *targets, int N, int C, int V,
                     int Vp, float dloss, float *scratch);
double cuda_sum_squares(const float *x, size_t n);
void cuda_adamw(float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n, double lr,
                float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                double bias_c1, double bias_c2);
void cuda_to_bf16(gpt2_bf16 *dst, const float *src, size_t n);
const char *cuda_precision_path(int bf16);
double cuda_clock_ms(void);
size_t cuda_scratch_floats(int B, int T, int C, int NH, int Vp, int bf16);

#ifdef __cplusplus
}
#endif

#endif
