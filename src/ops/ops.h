/* The operations a backend supplies to the model, declared once in GPT2_OPS below: the table type
 * (gpt2_ops) and every backend's prototypes follow from that list, and every backend's table is
 * built from it by name, so an op cannot be left out, misnamed or put in another op's place.
 * The model's math (model/gpt2.c) is written once against this table; the CPU backend (ops/cpu/)
 * is the fp32 reference that other backends are tested against. Which backend runs, and what it
 * can do, is the backend handle's business (ops/backend.h).
 *
 * Memory. Every pointer is to the backend's memory (from alloc, zeroed) unless it says host.
 * Activations (gpt2_act) are stored in the backend's own element type, act_bytes bytes each (the
 * handle says which: fp32 on the CPU); their layout is row-major, so element i of a buffer is
 * act_bytes * i bytes in. Parameters, their gradients, the AdamW moments, LayerNorm's mean and
 * rstd, attention's log-sum-exp and the losses are float (fp32) on every backend.
 * Shapes: N = B*T rows, C channels, OC output channels, NH heads, Vp padded vocabulary.
 *
 * Results. Forward ops overwrite their outputs. Backward ops overwrite the gradient of their
 * input activations (dinp), except layernorm_backward, which adds to it (the residual stream's
 * gradient accumulates there over the branches); all of them add to parameter gradients (dw, db),
 * so that gradients accumulate over micro-batches.
 *
 * Determinism. Every op is deterministic: for the same inputs it gives the same bits, whatever
 * the number of threads or the launch configuration (a fixed reduction order, no floating-point
 * atomics), except inside a vendor library's GEMM, which is deterministic for a fixed thread count.
 * The CPU backend meets this. The CUDA backend does not yet, and the GPU work must fix it:
 * embed_backward, layernorm_backward (dw, db) and attention_backward (dq, dk, dv) sum with float
 * atomicAdd, and its bias gradient is a serial column sum (deterministic, but slow). */
#ifndef GPT2C_OPS_H
#define GPT2C_OPS_H

#include <stddef.h>
#include <stdint.h>

/* A bfloat16 value: the upper 16 bits of a float32 (rounded to nearest even). */
typedef uint16_t gpt2_bf16;

/* An activation element in the backend's storage type: opaque outside the backend, so that
 * nothing else can index it as a float (offsets go through act_bytes). */
typedef struct gpt2_act gpt2_act;

/* X(return type, name, (parameters)) for every op. */
#define GPT2_OPS(X)                                                                                \
    /* Memory. alloc's buffers are zeroed; copy is within the backend; upload and download      \
     * move bytes between the host and the backend (memcpy where the memory is the host's). */  \
    X(void *, alloc, (size_t bytes))                                                               \
    X(void, free, (void *p))                                                                       \
    X(void, memset0, (void *p, size_t bytes))                                                      \
    X(void, copy, (void *dst, const void *src, size_t bytes))                                      \
    X(void, upload, (void *dst, const void *host, size_t bytes))                                   \
    X(void, download, (void *host, const void *src, size_t bytes))                                 \
    /* Bytes alloc can still hand out (the host's MemAvailable, a GPU's free memory), or -1 when \
     * unknown: plans larger than this are refused with a message, not left to fail. */          \
    X(double, mem_available, (void))                                                               \
    /* Floats of scratch the ops need for these shapes (shared by all ops; one op at a time),   \
     * with bf16 weight copies (bf16 1) or without. */                                           \
    X(size_t, scratch_floats, (int B, int T, int C, int NH, int Vp, int bf16))                     \
    /* The backend's clock in milliseconds, read once the work queued so far is done (the      \
     * profiler's: wall time around each op on the CPU, whose ops finish before they return). */ \
    X(double, clock_ms, (void))                                                                    \
                                                                                                   \
    /* out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] */                                               \
    X(void, embed_forward,                                                                         \
      (gpt2_act *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T,     \
       int C))                                                                                     \
    X(void, embed_backward,                                                                        \
      (float *dwte, float *dwpe, const gpt2_act *dout, const int32_t *tokens, int B, int T, int C)) \
    /* out = (inp - mean) * rstd * w + b per row (eps GPT2_LN_EPS); saves mean and rstd. */      \
    X(void, layernorm_forward,                                                                     \
      (gpt2_act *out, float *mean, float *rstd, const gpt2_act *inp, const float *w,              \
       const float *b, int N, int C))                                                              \
    /* dinp += (it accumulates: see Results above), dw += , db += . */                            \
    X(void, layernorm_backward,                                                                    \
      (gpt2_act *dinp, float *dw, float *db, const gpt2_act *dout, const gpt2_act *inp,            \
       const float *w, const float *mean, const float *rstd, int N, int C, float *scratch))        \
    /* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias (bias may be NULL). Mixed precision: with w_bf16  \
     * (w rounded to bf16) non-NULL, the product's inputs are bf16 (inp rounded by the op) and   \
     * it accumulates in fp32; with NULL, everything is fp32. */                                  \
    X(void, matmul_forward,                                                                        \
      (gpt2_act *out, const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16,               \
       const float *bias, int N, int C, int OC, float *scratch))                                   \
    /* matmul_forward for inference, each output row computed as it would be alone (the same   \
     * bits whatever the other rows: several requests' prompts share one product). The CPU    \
     * meets this; the CUDA backend runs matmul_forward, which does not promise it yet. */     \
    X(void, matmul_forward_rows,                                                                   \
      (gpt2_act *out, const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16,               \
       const float *bias, int N, int C, int OC, float *scratch))                                   \
    /* dinp = dout @ w ; dw += dout^T @ inp ; dbias += column sums of dout (dbias may be NULL). \
     * With w_bf16, both products take bf16 inputs (dout and inp rounded by the op). */         \
    X(void, matmul_backward,                                                                       \
      (gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout, const gpt2_act *inp,         \
       const float *w, const gpt2_bf16 *w_bf16, int N, int C, int OC, float *scratch))             \
    /* Causal self-attention over qkv[B,T,3C] (q, k, v blocks of C, heads of C/NH). out[B,T,C];  \
     * lse[B,NH,T] is each row's log-sum-exp of the scaled scores, all the backward needs to    \
     * recompute the probabilities (no T x T matrix is kept). */                                 \
    X(void, attention_forward,                                                                     \
      (gpt2_act *out, float *lse, const gpt2_act *qkv, int B, int T, int C, int NH,                \
       float *scratch))                                                                            \
    X(void, attention_backward,                                                                    \
      (gpt2_act *dqkv, const gpt2_act *dout, const gpt2_act *qkv, const gpt2_act *out,             \
       const float *lse, int B, int T, int C, int NH, float *scratch))                             \
    /* Attention with a cache (generation): n new tokens of each of nseq sequences, at positions \
     * pos..pos+n-1. Their keys and values (from qkv[nseq][n][3C]) are stored at those positions \
     * of kcache/vcache, len * C activations per sequence laid out as the backend likes, then    \
     * each attends to positions 0..its own. */                                                  \
    X(void, attention_forward_kv,                                                                  \
      (gpt2_act *out, const gpt2_act *qkv, gpt2_act *kcache, gpt2_act *vcache, int nseq, int n,    \
       int pos, int len, int C, int NH, float *scratch))                                           \
    /* GELU, tanh approximation. backward: dinp = dout * gelu'(inp) (dinp may equal dout; out    \
     * may equal inp). */                                                                          \
    X(void, gelu_forward, (gpt2_act *out, const gpt2_act *inp, size_t n))                          \
    X(void, gelu_backward, (gpt2_act *dinp, const gpt2_act *inp, const gpt2_act *dout, size_t n))  \
    /* out = a + b (out may alias either). */                                                     \
    X(void, residual_forward, (gpt2_act *out, const gpt2_act *a, const gpt2_act *b, size_t n))     \
    /* Fused LM head + softmax + cross-entropy over the V real tokens (columns V..Vp-1 of the    \
     * logits are padding and ignored), a chunk of rows at a time so the N x Vp logits never     \
     * exist at once. losses[N] gets each row's loss. With dinp non-NULL it also computes the    \
     * gradient of dloss * sum(losses): dinp = (overwritten), dwte += . With wte_bf16 its three  \
     * products take bf16 inputs, as matmul's; softmax and loss stay fp32. */                    \
    X(void, classifier,                                                                            \
      (float *losses, gpt2_act *dinp, float *dwte, const gpt2_act *inp, const float *wte,          \
       const gpt2_bf16 *wte_bf16, const int32_t *targets, int N, int C, int V, int Vp,            \
       float dloss, float *scratch))                                                               \
    /* Generation's LM head: logits[N,Vp] = inp @ wte^T in fp32 (whatever the activations'     \
     * type), the products' inputs bf16 with wte_bf16 as matmul_forward's. */                   \
    X(void, logits_forward,                                                                        \
      (float *logits, const gpt2_act *inp, const float *wte, const gpt2_bf16 *wte_bf16, int N,     \
       int C, int Vp, float *scratch))                                                             \
    /* Sum of squares of x[0..n), in double, in a fixed order. */                                 \
    X(double, sum_squares, (const float *x, size_t n))                                             \
    /* One AdamW step (PyTorch's formula) on n parameters, the gradient first multiplied by     \
     * grad_scale (gradient clipping); bias_c1/bias_c2 = 1 - beta^t. It then sets the gradient  \
     * to zero (ready for the next step's accumulation, without a pass of its own) and, with    \
     * p_bf16 non-NULL, writes the updated parameters rounded to bf16 there. */                 \
    X(void, adamw,                                                                                 \
      (float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n, double lr,             \
       float beta1, float beta2, float eps, float weight_decay, float grad_scale, double bias_c1, \
       double bias_c2))                                                                            \
    /* dst = src rounded to bf16 (nearest even; NaN stays NaN). */                                \
    X(void, to_bf16, (gpt2_bf16 * dst, const float *src, size_t n))

#define GPT2_OP_FIELD(ret, name, params) ret(*name) params;
typedef struct gpt2_ops {
    GPT2_OPS(GPT2_OP_FIELD)
} gpt2_ops;
#undef GPT2_OP_FIELD

/* A backend declares its functions and builds its table from the same list, by name:
 *   #define CPU_OP_PROTO(ret, name, params) ret cpu_##name params;
 *   GPT2_OPS(CPU_OP_PROTO)                        (cpu_alloc, cpu_embed_forward, ...)
 *   #define CPU_OP_ENTRY(ret, name, params) .name = cpu_##name,
 *   static const gpt2_ops cpu_ops = {GPT2_OPS(CPU_OP_ENTRY)};  */

#endif
