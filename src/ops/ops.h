/* The operations a backend supplies to the model, declared once in GPT2_OPS below with
 * everything about each: parameters, argument names, profile kind, FLOP count and activation
 * arguments. The table type (gpt2_ops), every backend's prototypes and table, --profile's timed
 * table and the tests' backends follow from that list, so an op cannot be left out, misnamed,
 * put in another op's place, untimed or untested.
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
 * Rows. The forward ops compute the rows of their output (tokens) each the same whatever the
 * other rows of the call, but for the products: matmul_forward and logits_forward promise it up
 * to GPT2_FEW_ROWS rows, matmul_forward_rowwise for any number; beyond that a GEMM library's
 * product does not (nor do the backward ops, whose sums run over the rows). Generation relies
 * on it: a server's requests batched together get the bits each gets alone in `gpt2c sample`
 * (model/gpt2_infer.h). The CPU backend keeps it, at every instruction-set level; the CUDA
 * backend's products do not yet, and its handle says so (rows_chunk 0: prompts never share a
 * product there). tests/test_ops.c checks it on every backend that claims it.
 *
 * Determinism. Every op is deterministic: for the same inputs it gives the same bits, whatever
 * the number of threads or the launch configuration (a fixed reduction order, no floating-point
 * atomics), except inside a vendor library's GEMM, which is deterministic for a fixed thread count.
 * The CPU backend meets this. The CUDA backend's kernels are written to (no float atomics: its
 * LayerNorm and bias gradients sum over fixed chunks of rows, then in order, cuda_common.cuh;
 * the embedding's sorts the positions by token, then sums each token's rows in order; the
 * attention backward writes dk and dv from a block per key tile and dq from a block per query
 * tile, each value summed by one thread in a fixed order), but that is tested only
 * on the emulated GPU (ops/cuda/emulate/), which could not show an atomic's varying order
 * anyway: it runs one block at a time on one OS thread. A GPU run must confirm it. */
#ifndef GPT2C_OPS_H
#define GPT2C_OPS_H

#include <stddef.h>
#include <stdint.h>

/* A bfloat16 value: the upper 16 bits of a float32 (rounded to nearest even). */
typedef uint16_t gpt2_bf16;

/* LayerNorm's epsilon, added to the variance (GPT-2's and PyTorch's default). */
#define GPT2_LN_EPS 1e-5f

/* An activation element in the backend's storage type: opaque outside the backend, so that
 * nothing else can index it as a float (offsets go through act_bytes). */
typedef struct gpt2_act gpt2_act;

/* Shapes of a call over several sequences with a cache (generation): span s is n new tokens of
 * sequence seq at positions pos..pos+n-1; the spans' rows come one after another. */
typedef struct gpt2_span {
    int seq, pos, n;
} gpt2_span;

/* Parameters from `start` up to the next run's start (or the end) that take weight decay
 * (decay 1) or not (decay 0): AdamW's groups over one flat buffer. */
typedef struct gpt2_decay_run {
    size_t start;
    int decay;
} gpt2_decay_run;

/* A product a plan runs, for prepare_products: a linear layer of C inputs and OC outputs
 * (matmul_forward, matmul_backward), the same with the GELU after it fused into the forward
 * (matmul_gelu_forward) or the GELU before it fused into the backward (matmul_backward_dgelu),
 * or the LM head (classifier, OC the padded vocabulary). */
typedef enum { GPT2_LINEAR, GPT2_LINEAR_GELU, GPT2_LINEAR_DGELU, GPT2_LM_HEAD } gpt2_product_kind;
typedef struct gpt2_product {
    gpt2_product_kind kind;
    int C, OC, bias;
} gpt2_product;

/* An activation argument of an op and its element count (see GPT2_OPS' last column). */
typedef struct gpt2_op_act {
    const gpt2_act *a;
    size_t n;
} gpt2_op_act;
#define GPT2_NO_ACTS {NULL, 0}
#define GPT2_UNPAREN(...) __VA_ARGS__

/* A backend's services, untimed: X(return type, name, (parameters)). */
#define GPT2_SERVICES(X)                                                                           \
    /* alloc's buffers are zeroed. */                                                              \
    X(void *, alloc, (size_t bytes))                                                               \
    X(void, free, (void *p))                                                                       \
    /* Bytes alloc can still hand out (the host's MemAvailable, a GPU's free memory), or -1 when \
     * unknown: plans larger than this are refused with a message, not left to fail. */          \
    X(double, mem_available, (void))                                                               \
    /* Floats of scratch the ops need for these shapes (shared by all ops; one op at a time),   \
     * with bf16 weight copies (bf16 1) or without. */                                           \
    X(size_t, scratch_floats, (int B, int T, int C, int NH, int Vp, int bf16))                     \
    /* Get ready, when a plan is made, for the products its ops will run on N-row micro-batches \
     * (with bf16 weight copies or not; their backward too when training): a GPU library's      \
     * descriptors and algorithms chosen now, once per shape, not in the first step. */        \
    X(void, prepare_products, (const gpt2_product *products, int n, int N, int training, int bf16)) \
    /* A recording of the ops called between capture_begin and capture_end, replayed as one     \
     * launch (a GPU's CUDA graph: no launch cost per op). capture_begin: 0 when the backend     \
     * records what follows (it does not run until replayed), -1 when the ops run as called     \
     * (the CPU; a GPU unless GPT2C_CUDA_GRAPH=1). capture_end: the recording, or NULL when it    \
     * failed (the backend says why; the recorded ops did not run). The pointers and numbers of  \
     * the recorded calls are the replay's. */                                                  \
    X(int, capture_begin, (void))                                                                  \
    X(void *, capture_end, (void))                                                                 \
    X(void, replay, (void *recording))                                                             \
    X(void, recording_free, (void *recording))                                                     \
    /* The backend's clock in milliseconds, read once the work queued so far is done (the      \
     * profiler's: wall time around each op on the CPU, whose ops finish before they return). */ \
    X(double, clock_ms, (void))

/* Every op: X(name, (parameters), (arguments), profile kind, FLOPs, (activations)).
 * - The arguments are the parameters' names: wrappers (--profile's timing, the tests' backends)
 *   are generated from this list, so an op cannot go untimed or untested.
 * - The profile kind is gpt2c_profile_kind's without its prefix; FLOPs, an expression of the
 *   arguments, is the op's arithmetic (0 where it is memory-bound and not worth a rate).
 * - The activations are the op's gpt2_act arguments with their element counts, {pointer, n}
 *   (a NULL pointer: not passed this time): what a backend storing activations its own way must
 *   convert around a kernel.
 * Every op returns nothing; results go to its output arguments. */
#define GPT2_OPS(X)                                                                                \
    /* Memory: copy is within the backend; upload and download move bytes between the host and  \
     * the backend (memcpy where the memory is the host's). */                                   \
    X(memset0, (void *p, size_t bytes), (p, bytes), ELEMENTWISE, 0, (GPT2_NO_ACTS))                \
    X(copy, (void *dst, const void *src, size_t bytes), (dst, src, bytes), ELEMENTWISE, 0,         \
      (GPT2_NO_ACTS))                                                                              \
    X(upload, (void *dst, const void *host, size_t bytes), (dst, host, bytes), ELEMENTWISE, 0,     \
      (GPT2_NO_ACTS))                                                                              \
    X(download, (void *host, const void *src, size_t bytes), (host, src, bytes), ELEMENTWISE, 0,   \
      (GPT2_NO_ACTS))                                                                              \
                                                                                                   \
    /* out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] */                                               \
    X(embed_forward,                                                                               \
      (gpt2_act *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T,     \
       int C),                                                                                     \
      (out, tokens, wte, wpe, B, T, C), ELEMENTWISE, 0, ({out, (size_t)B * T * C}))                \
    X(embed_backward,                                                                              \
      (float *dwte, float *dwpe, const gpt2_act *dout, const int32_t *tokens, int B, int T, int C, \
       float *scratch),                                                                            \
      (dwte, dwpe, dout, tokens, B, T, C, scratch), ELEMENTWISE, 0, ({dout, (size_t)B * T * C}))   \
    /* out = (inp - mean) * rstd * w + b per row, with rstd = 1 / sqrt(variance + GPT2_LN_EPS)  \
     * (the biased variance, as PyTorch's); saves mean and rstd. */                              \
    X(layernorm_forward,                                                                           \
      (gpt2_act *out, float *mean, float *rstd, const gpt2_act *inp, const float *w,              \
       const float *b, int N, int C),                                                              \
      (out, mean, rstd, inp, w, b, N, C), ELEMENTWISE, 0,                                          \
      ({out, (size_t)N * C}, {inp, (size_t)N * C}))                                                \
    /* res = a + b (res may alias either), then out = layernorm_forward of res: the residual     \
     * addition and the next LayerNorm in one pass, the same bits as the two ops. */            \
    X(residual_layernorm_forward,                                                                  \
      (gpt2_act *res, gpt2_act *out, float *mean, float *rstd, const gpt2_act *a,                  \
       const gpt2_act *b, const float *w, const float *bias, int N, int C),                        \
      (res, out, mean, rstd, a, b, w, bias, N, C), ELEMENTWISE, 0,                                 \
      ({res, (size_t)N * C}, {out, (size_t)N * C}, {a, (size_t)N * C}, {b, (size_t)N * C}))        \
    /* dinp += (it accumulates: see Results above), dw += , db += . */                            \
    X(layernorm_backward,                                                                          \
      (gpt2_act *dinp, float *dw, float *db, const gpt2_act *dout, const gpt2_act *inp,            \
       const float *w, const float *mean, const float *rstd, int N, int C, float *scratch),        \
      (dinp, dw, db, dout, inp, w, mean, rstd, N, C, scratch), ELEMENTWISE, 0,                     \
      ({dinp, (size_t)N * C}, {dout, (size_t)N * C}, {inp, (size_t)N * C}))                        \
    /* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias (bias may be NULL). Mixed precision: with w_bf16  \
     * (w rounded to bf16) non-NULL, the product's inputs are bf16 (inp rounded by the op) and   \
     * it accumulates in fp32; with NULL, everything is fp32. Rows: with N <= GPT2_FEW_ROWS,    \
     * each output row is computed as it would be alone (decoding several sequences at once    \
     * gives each the bits it gets alone); with more rows, a GEMM library's bits may depend on N. */ \
    X(matmul_forward,                                                                              \
      (gpt2_act *out, const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16,               \
       const float *bias, int N, int C, int OC, float *scratch),                                   \
      (out, inp, w, w_bf16, bias, N, C, OC, scratch), MATMUL_FWD, 2.0 * N * C * OC,                \
      ({out, (size_t)N * OC}, {inp, (size_t)N * C}))                                               \
    /* matmul_forward whose every output row is computed as it would be alone, for any N (the   \
     * same bits whatever the other rows: several requests' prompt chunks share one product).   \
     * The CPU meets this; the CUDA backend runs its matmul_forward, which does not yet. */      \
    X(matmul_forward_rowwise,                                                                      \
      (gpt2_act *out, const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16,               \
       const float *bias, int N, int C, int OC, float *scratch),                                   \
      (out, inp, w, w_bf16, bias, N, C, OC, scratch), MATMUL_FWD, 2.0 * N * C * OC,                \
      ({out, (size_t)N * OC}, {inp, (size_t)N * C}))                                               \
    /* The MLP's first layer: pre = matmul_forward(inp, w, bias) and out = gelu(pre), in one op  \
     * (a GEMM epilogue on a GPU), with matmul_forward's rows promise and precision; out within \
     * GELU's tolerance of gelu_forward(pre) (the same bits on the CPU). */                     \
    X(matmul_gelu_forward,                                                                         \
      (gpt2_act *pre, gpt2_act *out, const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16, \
       const float *bias, int N, int C, int OC, float *scratch),                                   \
      (pre, out, inp, w, w_bf16, bias, N, C, OC, scratch), MATMUL_FWD, 2.0 * N * C * OC,           \
      ({pre, (size_t)N * OC}, {out, (size_t)N * OC}, {inp, (size_t)N * C}))                        \
    /* dinp = dout @ w ; dw += dout^T @ inp ; dbias += column sums of dout (dbias may be NULL). \
     * With w_bf16, both products take bf16 inputs (dout and inp rounded by the op). */         \
    X(matmul_backward,                                                                             \
      (gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout, const gpt2_act *inp,         \
       const float *w, const gpt2_bf16 *w_bf16, int N, int C, int OC, float *scratch),             \
      (dinp, dw, dbias, dout, inp, w, w_bf16, N, C, OC, scratch), MATMUL_BWD, 4.0 * N * C * OC,    \
      ({dinp, (size_t)N * C}, {dout, (size_t)N * OC}, {inp, (size_t)N * C}))                       \
    /* The MLP's second layer's backward through the GELU before it: matmul_backward, then    \
     * dinp = gelu_backward(pre, dinp) (pre: the GELU's input; a GEMM epilogue on a GPU). */   \
    X(matmul_backward_dgelu,                                                                       \
      (gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout, const gpt2_act *inp,         \
       const gpt2_act *pre, const float *w, const gpt2_bf16 *w_bf16, int N, int C, int OC,        \
       float *scratch),                                                                            \
      (dinp, dw, dbias, dout, inp, pre, w, w_bf16, N, C, OC, scratch), MATMUL_BWD,                 \
      4.0 * N * C * OC,                                                                            \
      ({dinp, (size_t)N * C}, {dout, (size_t)N * OC}, {inp, (size_t)N * C}, {pre, (size_t)N * C})) \
    /* Causal self-attention over qkv[B,T,3C] (q, k, v blocks of C, heads of C/NH). out[B,T,C];  \
     * lse[B,NH,T] is each row's log-sum-exp of the scaled scores, all the backward needs to    \
     * recompute the probabilities (no T x T matrix is kept). With bf16 non-zero (a bf16 model) \
     * the products may take bf16 inputs with fp32 sums (q, k, v, the probabilities, dO and dS  \
     * rounded; the softmax, lse and the gradients fp32), as the CPU does where its GEMM library \
     * has bf16 kernels; a backend whose activations are bf16 under bf16 is there already.     \
     * FLOPs: QK^T and PV over the causal half; the backward's five products. */                \
    X(attention_forward,                                                                           \
      (gpt2_act *out, float *lse, const gpt2_act *qkv, int B, int T, int C, int NH, int bf16,      \
       float *scratch),                                                                            \
      (out, lse, qkv, B, T, C, NH, bf16, scratch), ATTENTION, 2.0 * B * C * T * (T + 1.0),         \
      ({out, (size_t)B * T * C}, {qkv, (size_t)B * T * 3 * C}))                                    \
    X(attention_backward,                                                                          \
      (gpt2_act *dqkv, const gpt2_act *dout, const gpt2_act *qkv, const gpt2_act *out,             \
       const float *lse, int B, int T, int C, int NH, int bf16, float *scratch),                   \
      (dqkv, dout, qkv, out, lse, B, T, C, NH, bf16, scratch), ATTENTION,                          \
      5.0 * B * C * T * (T + 1.0),                                                                 \
      ({dqkv, (size_t)B * T * 3 * C}, {dout, (size_t)B * T * C}, {qkv, (size_t)B * T * 3 * C},     \
       {out, (size_t)B * T * C}))                                                                  \
    /* Attention with a cache (generation), for spans (host memory) of sequences each at its    \
     * own position, in ascending seq: span s's rows of qkv[rows][3C] store their keys and       \
     * values at positions pos..pos+n-1 of sequence seq's cache (len * C activations from        \
     * seq * len * C of kcache and vcache, laid out as the backend likes), then each attends to  \
     * positions 0..its own. A row's result does not depend on the other spans. */             \
    X(attention_forward_kv,                                                                        \
      (gpt2_act *out, const gpt2_act *qkv, gpt2_act *kcache, gpt2_act *vcache,                    \
       const gpt2_span *spans, int nspans, int len, int C, int NH, float *scratch),               \
      (out, qkv, kcache, vcache, spans, nspans, len, C, NH, scratch), ATTENTION,                   \
      gpt2_spans_attention_flops(spans, nspans, C),                                                \
      ({out, gpt2_spans_rows(spans, nspans) * C}, {qkv, gpt2_spans_rows(spans, nspans) * 3 * C},  \
       {kcache, gpt2_spans_seqs(spans, nspans) * len * C},                                         \
       {vcache, gpt2_spans_seqs(spans, nspans) * len * C}))                                        \
    /* GELU, tanh approximation. backward: dinp = dout * gelu'(inp) (dinp may equal dout; out    \
     * may equal inp). */                                                                          \
    X(gelu_forward, (gpt2_act *out, const gpt2_act *inp, size_t n), (out, inp, n), ELEMENTWISE, 0, \
      ({out, n}, {inp, n}))                                                                        \
    X(gelu_backward, (gpt2_act *dinp, const gpt2_act *inp, const gpt2_act *dout, size_t n),        \
      (dinp, inp, dout, n), ELEMENTWISE, 0, ({dinp, n}, {inp, n}, {dout, n}))                      \
    /* out = a + b (out may alias either). */                                                     \
    X(residual_forward, (gpt2_act *out, const gpt2_act *a, const gpt2_act *b, size_t n),           \
      (out, a, b, n), ELEMENTWISE, 0, ({out, n}, {a, n}, {b, n}))                                  \
    /* Fused LM head + softmax + cross-entropy over the V real tokens (columns V..Vp-1 of the    \
     * logits are padding and ignored), a chunk of rows at a time so the N x Vp logits never     \
     * exist at once. losses[N] gets each row's loss. With dinp non-NULL it also computes the    \
     * gradient of dloss * sum(losses): dinp = (overwritten), dwte += . With wte_bf16 its three  \
     * products take bf16 inputs, as matmul's; softmax and loss stay fp32. */                    \
    X(classifier,                                                                                  \
      (float *losses, gpt2_act *dinp, float *dwte, const gpt2_act *inp, const float *wte,          \
       const gpt2_bf16 *wte_bf16, const int32_t *targets, int N, int C, int V, int Vp,            \
       float dloss, float *scratch),                                                               \
      (losses, dinp, dwte, inp, wte, wte_bf16, targets, N, C, V, Vp, dloss, scratch), LM_HEAD,     \
      (dinp ? 6.0 : 2.0) * N * C * Vp, ({dinp, (size_t)N * C}, {inp, (size_t)N * C}))              \
    /* Generation's LM head: logits[N,Vp] = inp @ wte^T in fp32 (whatever the activations'     \
     * type), the products' inputs bf16 with wte_bf16 as matmul_forward's. */                   \
    X(logits_forward,                                                                              \
      (float *logits, const gpt2_act *inp, const float *wte, const gpt2_bf16 *wte_bf16, int N,     \
       int C, int Vp, float *scratch),                                                             \
      (logits, inp, wte, wte_bf16, N, C, Vp, scratch), LM_HEAD, 2.0 * N * C * Vp,                  \
      ({inp, (size_t)N * C}))                                                                      \
    /* acc[0] (one double) += weight * the mean of losses[0..N) (the mean summed in double in  \
     * a fixed order, rounded to float, times weight in float): a batch's loss accumulated where \
     * it was computed, so that a training step reads its loss once, not each micro-batch's.  */ \
    X(loss_sum, (double *acc, const float *losses, int N, float weight), (acc, losses, N, weight), \
      ELEMENTWISE, 0, (GPT2_NO_ACTS))                                                              \
    /* *sum (host) = the sum of squares of x[0..n), in double, in a fixed order. */              \
    X(sum_squares, (double *sum, const float *x, size_t n), (sum, x, n), OPTIMIZER, 0,                \
      (GPT2_NO_ACTS))                                                                              \
    /* One AdamW step (PyTorch's formula) on n parameters, in one pass over all of them (one     \
     * launch on a GPU), the gradient first multiplied by grad_scale (gradient clipping);        \
     * weight_decay applies to the runs (host memory, nruns of them, in order from start 0)    \
     * that say so; bias_c1/bias_c2 = 1 - beta^t. It then sets the gradient to zero (ready for \
     * the next step's accumulation, without a pass of its own) and, with p_bf16 non-NULL,     \
     * writes the updated parameters rounded to bf16 there. */                                  \
    X(adamw,                                                                                       \
      (float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n,                        \
       const gpt2_decay_run *runs, int nruns, double lr, float beta1, float beta2, float eps,     \
       float weight_decay, float grad_scale, double bias_c1, double bias_c2),                     \
      (p, p_bf16, g, m, v, n, runs, nruns, lr, beta1, beta2, eps, weight_decay, grad_scale,       \
       bias_c1, bias_c2),                                                                          \
      OPTIMIZER, 0, (GPT2_NO_ACTS))                                                                \
    /* dst = src rounded to bf16 (nearest even; NaN stays NaN). */                                \
    X(to_bf16, (gpt2_bf16 * dst, const float *src, size_t n), (dst, src, n), OPTIMIZER, 0,         \
      (GPT2_NO_ACTS))

/* Rows in all, and sequences the caches must hold (the last span's seq + 1), of a span list. */
static inline size_t gpt2_spans_rows(const gpt2_span *spans, int nspans) {
    size_t rows = 0;
    for (int s = 0; s < nspans; s++) rows += (size_t)spans[s].n;
    return rows;
}
static inline size_t gpt2_spans_seqs(const gpt2_span *spans, int nspans) {
    return nspans > 0 ? (size_t)spans[nspans - 1].seq + 1 : 0;
}
/* QK^T and PV of every new row over the positions it sees. */
static inline double gpt2_spans_attention_flops(const gpt2_span *spans, int nspans, int C) {
    double pairs = 0;
    for (int s = 0; s < nspans; s++)
        pairs += (double)spans[s].n * spans[s].pos + spans[s].n * (spans[s].n + 1.0) / 2;
    return 4.0 * C * pairs;
}

/* Rows up to which matmul_forward computes each row as it would be alone. */
#define GPT2_FEW_ROWS 8

#define GPT2_SERVICE_FIELD(ret, name, params) ret(*name) params;
#define GPT2_OP_FIELD(name, params, args, kind, flops, acts) void(*name) params;
typedef struct gpt2_ops {
    GPT2_SERVICES(GPT2_SERVICE_FIELD)
    GPT2_OPS(GPT2_OP_FIELD)
} gpt2_ops;
#undef GPT2_SERVICE_FIELD
#undef GPT2_OP_FIELD

/* A backend declares its functions and builds its table from the same lists, by name:
 *   #define CPU_SERVICE_PROTO(ret, name, params) ret cpu_##name params;
 *   #define CPU_OP_PROTO(name, params, ...) void cpu_##name params;
 *   GPT2_SERVICES(CPU_SERVICE_PROTO) GPT2_OPS(CPU_OP_PROTO)      (cpu_alloc, cpu_embed_forward...)
 *   #define CPU_ENTRY(name, ...) .name = cpu_##name,
 *   #define CPU_SERVICE_ENTRY(ret, name, params) .name = cpu_##name,
 *   static const gpt2_ops cpu_ops = {GPT2_SERVICES(CPU_SERVICE_ENTRY) GPT2_OPS(CPU_ENTRY)};  */

#endif
