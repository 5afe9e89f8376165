/* The CUDA backend's kernels: the ops of ops/ops.h with the same semantics (and as the CPU
 * reference, which tests/test_ops.c compares them with), on device pointers; one file per
 * op, named as the CPU's. C-callable. Matmuls go through cuBLASLt (TF32 for fp32 products unless
 * cuda_set_tf32(0), bf16 inputs with fp32 accumulation when a bf16 weight copy is given);
 * everything else is written here. One stream. Activations are stored in the precision's type:
 * fp32 under --precision fp32, bf16 under bf16 (cuda_set_precision; cuda_common.cuh). */
#ifndef GPT2C_CUDA_KERNELS_H
#define GPT2C_CUDA_KERNELS_H

#include "gpt2c.h"
#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ops (cuda_alloc, cuda_embed_forward, ...). */
#define CUDA_SERVICE_PROTO(ret, name, params) ret cuda_##name params;
#define CUDA_OP_PROTO(name, params, ...) void cuda_##name params;
GPT2_SERVICES(CUDA_SERVICE_PROTO)
GPT2_OPS(CUDA_OP_PROTO)
#undef CUDA_SERVICE_PROTO
#undef CUDA_OP_PROTO

/* The ops, each followed by a synchronize and an error check naming it and its shapes
 * (GPT2C_CUDA_SYNC_CHECK=1: sync_check.cu). */
extern const gpt2_ops cuda_checked_ops;

/* Rows of logits the fused classifier holds at once (1024 x 50304 floats: 206 MB). */
#define CUDA_CLASSIFIER_ROWS 1024
/* Head sizes the attention kernels handle: multiples of 32 up to 128 (GPT-2's are all 64). */
#define CUDA_ATTN_MAX_HS 128

/* The attention's scratch for a plan of these shapes (the backward's D, or cuDNN's workspace
 * when cuDNN takes the shape: prepared now), its words for the plan line, and the end of what
 * cuDNN holds (attention.cu). */
size_t cuda_attention_scratch_bytes(int B, int T, int C, int NH);
void cuda_attention_free(void);

/* Devices visible: 0 when there is no driver or no GPU (an answer, not an error); -1 with the
 * reason in err when the driver fails otherwise (err may be NULL). */
int cuda_device_count(gpt2c_error *err);
/* 1 when this backend runs on gpt2c's CUDA-on-CPU runtime (-DGPT2C_CUDA_EMULATE=ON), not a GPU. */
int cuda_emulated(void);
/* The first call picks device 0 and makes the stream, the cuBLASLt handle and workspace. */
int cuda_init(gpt2c_error *err);
/* The end of what cuda_init made (the handle's close). */
void cuda_close(void);
/* 0 when the kernels run a model of these shapes (the attention's head sizes), else -1. */
int cuda_check_shapes(int n_embd, int n_head, gpt2c_error *err);
/* Reads GPT2C_ATTN (auto, cudnn or own; unset: auto) once, at the backend's open: -1 with the
 * reason in err for a value this build cannot honour. */
int cuda_attention_configure(gpt2c_error *err);
/* Which attention the ops run, for the plan line (e.g. "own tiled attention (fp32 FMA)"). */
const char *cuda_attention_path(void);
/* TF32 for fp32 products (default on, as PyTorch's allow_tf32 in the seed); tests turn it off. */
void cuda_set_tf32(int on);
void cuda_sync(void);

/* A product's element types. */
typedef enum { CUDA_F32, CUDA_BF16 } cuda_type;
/* Row-major C[M,N] = op(A) op(B) (+ bias[N]) (+ C when accumulate), as cpu_gemm: A and B of
 * type `in`, C and the bias of type `out` (cuBLASLt wants the bias in the output's type), fp32
 * accumulation (TF32 for fp32 inputs unless turned off). */
void cuda_gemm(cuda_type in, cuda_type out, int ta, int tb, int M, int N, int K, const void *A,
               const void *B, const void *bias, void *C, int accumulate);
/* C = gelu(pre), pre[M,N] = A B^T (+ bias[N]) kept, both of type `out`: cuBLASLt's
 * GELU_AUX(_BIAS) epilogue, whose aux leading dimension (N) must be a multiple of 8. */
void cuda_gemm_gelu(cuda_type in, cuda_type out, int M, int N, int K, const void *A,
                    const void *B, const void *bias, void *C, void *pre);
/* C = (A B) * gelu'(pre), row-major A[M,K], B[K,N], pre[M,N] (pre of C's type): the DGELU
 * epilogue (N a multiple of 8, as GELU_AUX's). */
void cuda_gemm_dgelu(cuda_type in, cuda_type out, int M, int N, int K, const void *A,
                     const void *B, void *C, const void *pre);

/* Resolve ahead the product cuda_gemm (gelu 0), cuda_gemm_gelu (1) or cuda_gemm_dgelu (2) will
 * run at these shapes (matmul.cu and classifier.cu say which their ops run). */
void cuda_gemm_prepare(cuda_type in, cuda_type out, int ta, int tb, int M, int N, int K, int bias,
                       int gelu);
/* The products of a linear layer's ops, and of the classifier's, prepared. */
void cuda_prepare_linear(gpt2_product_kind kind, int N, int C, int OC, int bias, int bf16,
                         int training);
void cuda_prepare_classifier(int N, int C, int Vp, int bf16, int training);

#ifdef __cplusplus
}
#endif

#endif
