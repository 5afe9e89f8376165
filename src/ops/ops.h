/* The operations a backend supplies to the model. The model's math (model/gpt2.c) is written
 * once against this table; the CPU backend (ops/cpu/) is the fp32 reference that other backends
 * are tested against. All tensors are row-major float arrays in the backend's memory.
 * Shapes: N = B*T rows, C channels, OC output channels, NH heads, Vp padded vocabulary.
 * Pointers are to the backend's memory (see alloc below) unless they say host.
 * Conventions: forward ops overwrite their outputs; backward ops OVERWRITE the gradient of their
 * input activations (dinp) and ADD to parameter gradients (dw, db), so gradients accumulate over
 * micro-batches. Results never depend on the number of threads, except inside the BLAS. */
#ifndef GPT2C_OPS_H
#define GPT2C_OPS_H

#include <stddef.h>
#include <stdint.h>

/* A bfloat16 value: the upper 16 bits of a float32 (rounded to nearest even). */
typedef uint16_t gpt2_bf16;

typedef struct gpt2_ops {
    const char *name;

    /* The backend's memory. Every buffer an op reads or writes comes from alloc (zeroed). With
     * host_memory set (the CPU) it is the host's: callers may use it directly and the copies are
     * memcpy. Otherwise (a GPU) the host reaches it only through upload and download. */
    int host_memory;
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*memset0)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes); /* within the backend */
    void (*upload)(void *dst, const void *host, size_t bytes);
    void (*download)(void *host, const void *src, size_t bytes);
    /* Bytes that alloc can still hand out (the host's MemAvailable, a GPU's free memory), or -1
     * when unknown: plans larger than this are refused with a message, not left to fail. */
    double (*mem_available)(void);

    /* out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] */
    void (*embed_forward)(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                          int B, int T, int C);
    void (*embed_backward)(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                           int B, int T, int C);

    /* out = (inp - mean) * rstd * w + b per row (eps GPT2_LN_EPS); saves mean and rstd. */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C);
    /* dinp += (the residual stream's gradient accumulates), dw += , db += ; scratch as sized by
     * scratch_floats. */
    void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C, float *scratch);

    /* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias (bias may be NULL).
     * Mixed precision: with w_bf16 (w rounded to bf16) non-NULL, the product's inputs are bf16
     * (inp rounded by the op) and it accumulates in fp32; with NULL, everything is fp32. */
    void (*matmul_forward)(float *out, const float *inp, const float *w, const gpt2_bf16 *w_bf16,
                           const float *bias, int N, int C, int OC, float *scratch);
    /* dinp = dout @ w ; dw += dout^T @ inp ; dbias += column sums of dout (dbias may be NULL).
     * With w_bf16, both products take bf16 inputs (dout and inp rounded by the op). */
    void (*matmul_backward)(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, const gpt2_bf16 *w_bf16, int N,
                            int C, int OC, float *scratch);

    /* Causal self-attention over qkv[B,T,3C] (q, k, v blocks of C, heads of C/NH).
     * out[B,T,C]; lse[B,NH,T] is each row's log-sum-exp of the scaled scores, all the backward
     * needs to recompute the probabilities (no T x T matrix is kept). */
    void (*attention_forward)(float *out, float *lse, const float *qkv, int B, int T, int C,
                              int NH, float *scratch);
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *out,
                               const float *lse, int B, int T, int C, int NH, float *scratch);

    /* Attention with a cache (generation): n new tokens of each of nseq sequences, at positions
     * pos..pos+n-1. Their keys and values (from qkv[nseq][n][3C]) are stored at those positions
     * of kcache/vcache, len * C floats per sequence laid out as the backend likes, then each
     * attends to positions 0..its own. */
    void (*attention_forward_kv)(float *out, const float *qkv, float *kcache, float *vcache,
                                 int nseq, int n, int pos, int len, int C, int NH, float *scratch);

    /* GELU, tanh approximation. backward: dinp = dout * gelu'(inp) (dinp may equal dout). */
    void (*gelu_forward)(float *out, const float *inp, size_t n);
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);

    /* out = a + b (out may alias either). */
    void (*residual_forward)(float *out, const float *a, const float *b, size_t n);

    /* Fused LM head + softmax + cross-entropy over the V real tokens (columns V..Vp-1 of the
     * logits are padding and ignored), a chunk of rows at a time so the N x Vp logits never exist
     * at once. losses[N] gets each row's loss. With dinp non-NULL it also computes the gradient
     * of dloss * sum(losses): dinp = (overwritten), dwte += . With wte_bf16 its three products
     * take bf16 inputs, as matmul's; softmax and loss stay fp32. */
    void (*classifier)(float *losses, float *dinp, float *dwte, const float *inp, const float *wte,
                       const gpt2_bf16 *wte_bf16, const int32_t *targets, int N, int C, int V,
                       int Vp, float dloss, float *scratch);

    /* Sum of squares of x[0..n), in double, in a fixed order. */
    double (*sum_squares)(const float *x, size_t n);
    /* One AdamW step (PyTorch's formula) on n parameters, the gradient first multiplied by
     * grad_scale (gradient clipping); bias_c1/bias_c2 = 1 - beta^t. It then sets the gradient
     * to zero (ready for the next step's accumulation, without a pass of its own) and, with
     * p_bf16 non-NULL, writes the updated parameters rounded to bf16 there. */
    void (*adamw)(float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n, double lr,
                  float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                  double bias_c1, double bias_c2);
    /* dst = src rounded to bf16 (nearest even; NaN stays NaN). */
    void (*to_bf16)(gpt2_bf16 *dst, const float *src, size_t n);
    /* The kernels this backend runs on this machine for fp32 (bf16 0) or bf16 products (bf16 1),
     * in words for the plan line: "fp32 (AVX2)", "bf16 (AMX)", "bf16 (emulated: AVX2, fp32
     * GEMM on rounded inputs)"; NULL when it cannot run that precision here. */
    const char *(*precision_path)(int bf16);

    /* Threads the kernels use from now on (the CPU's OpenMP loops and its BLAS). */
    void (*set_threads)(int n);

    /* Floats of scratch the ops need for these shapes (shared by all ops; one op at a time),
     * with bf16 weight copies (bf16 1) or without. */
    size_t (*scratch_floats)(int B, int T, int C, int NH, int Vp, int bf16);

    /* The backend's clock in milliseconds, read once the work queued so far is done (the
     * profiler's: wall time around each op on the CPU, whose ops finish before they return). */
    double (*clock_ms)(void);
} gpt2_ops;

#ifdef __cplusplus
extern "C" {
#endif
extern const gpt2_ops gpt2_ops_cpu;
#ifdef GPT2C_HAVE_CUDA
/* ops/cuda/: the same ops on device pointers (built when a CUDA compiler is found). */
extern const gpt2_ops gpt2_ops_cuda;
#endif
#ifdef __cplusplus
}
#endif

#endif
