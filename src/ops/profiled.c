/* The profiling table: each op of the backend's, timed with the backend's clock and added to its
 * kind. See profiled.h. */
#include <string.h>

#include "model/config.h"
#include "ops/profiled.h"

static const char *const kind_names[GPT2C_PROF_KINDS] = {
    "matmul_fwd", "matmul_bwd", "attention", "lm_head",  "elementwise", "optimizer", "data",
    "comm",       "checkpoint", "validation", "samples",  "sampling",    "prompt",    "other"};

const char *gpt2c_profile_kind_name(int kind) {
    return kind >= 0 && kind < GPT2C_PROF_KINDS ? kind_names[kind] : NULL;
}

static struct {
    gpt2c_profile *p;   /* NULL: not profiling */
    const gpt2_ops *in; /* the backend timed */
    gpt2_ops table;
    double start_ms, ops_ms; /* when the run started; what the ops took so far */
    int whole;               /* inside a prof_begin_whole: ops are not timed on their own */
} pr;

static double clock_ms(void) { return pr.in->clock_ms(); }

static void add(gpt2c_profile_kind kind, double ms, double flops) {
    pr.p->ms[kind] += ms;
    pr.p->flops[kind] += flops;
    pr.p->calls[kind]++;
    pr.ops_ms += ms;
}

#define TIMED(kind, flops, call)                                                                   \
    do {                                                                                           \
        if (pr.whole) {                                                                            \
            call;                                                                                  \
        } else {                                                                                   \
            double t0_ = clock_ms();                                                               \
            call;                                                                                  \
            add(kind, clock_ms() - t0_, flops);                                                    \
        }                                                                                          \
    } while (0)
#define ELEMENTWISE(call) TIMED(GPT2C_PROF_ELEMENTWISE, 0, call)

static void p_memset0(void *p, size_t bytes) { ELEMENTWISE(pr.in->memset0(p, bytes)); }
static void p_copy(void *dst, const void *src, size_t bytes) {
    ELEMENTWISE(pr.in->copy(dst, src, bytes));
}
static void p_upload(void *dst, const void *src, size_t bytes) {
    ELEMENTWISE(pr.in->upload(dst, src, bytes));
}
static void p_download(void *dst, const void *src, size_t bytes) {
    ELEMENTWISE(pr.in->download(dst, src, bytes));
}
static void p_embed_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                            int B, int T, int C) {
    ELEMENTWISE(pr.in->embed_forward(out, tokens, wte, wpe, B, T, C));
}
static void p_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                             int B, int T, int C) {
    ELEMENTWISE(pr.in->embed_backward(dwte, dwpe, dout, tokens, B, T, C));
}
static void p_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C) {
    ELEMENTWISE(pr.in->layernorm_forward(out, mean, rstd, inp, w, b, N, C));
}
static void p_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C, float *scratch) {
    ELEMENTWISE(pr.in->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, scratch));
}
/* The LM head of generation is a product without a bias over the padded vocabulary (every
 * linear layer of GPT-2 has a bias). */
static void p_matmul_forward(float *out, const float *inp, const float *w, const gpt2_bf16 *w_bf16,
                             const float *bias, int N, int C, int OC, float *scratch) {
    gpt2c_profile_kind kind = !bias && OC == GPT2_VOCAB_PADDED ? GPT2C_PROF_LM_HEAD
                                                               : GPT2C_PROF_MATMUL_FWD;
    TIMED(kind, 2.0 * N * C * OC,
          pr.in->matmul_forward(out, inp, w, w_bf16, bias, N, C, OC, scratch));
}
static void p_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                              const float *inp, const float *w, const gpt2_bf16 *w_bf16, int N,
                              int C, int OC, float *scratch) {
    TIMED(GPT2C_PROF_MATMUL_BWD, 4.0 * N * C * OC,
          pr.in->matmul_backward(dinp, dw, dbias, dout, inp, w, w_bf16, N, C, OC, scratch));
}
static void p_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C,
                                int NH, float *scratch) {
    TIMED(GPT2C_PROF_ATTENTION, 0, pr.in->attention_forward(out, lse, qkv, B, T, C, NH, scratch));
}
static void p_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                 const float *out, const float *lse, int B, int T, int C, int NH,
                                 float *scratch) {
    TIMED(GPT2C_PROF_ATTENTION, 0,
          pr.in->attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, scratch));
}
static void p_attention_forward_kv(float *out, const float *qkv, float *kcache, float *vcache,
                                   int nseq, int n, int pos, int len, int C, int NH,
                                   float *scratch) {
    TIMED(GPT2C_PROF_ATTENTION, 0,
          pr.in->attention_forward_kv(out, qkv, kcache, vcache, nseq, n, pos, len, C, NH, scratch));
}
static void p_gelu_forward(float *out, const float *inp, size_t n) {
    ELEMENTWISE(pr.in->gelu_forward(out, inp, n));
}
static void p_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    ELEMENTWISE(pr.in->gelu_backward(dinp, inp, dout, n));
}
static void p_residual_forward(float *out, const float *a, const float *b, size_t n) {
    ELEMENTWISE(pr.in->residual_forward(out, a, b, n));
}
static void p_classifier(float *losses, float *dinp, float *dwte, const float *inp,
                         const float *wte, const gpt2_bf16 *wte_bf16, const int32_t *targets,
                         int N, int C, int V, int Vp, float dloss, float *scratch) {
    TIMED(GPT2C_PROF_LM_HEAD, (dinp ? 6.0 : 2.0) * N * C * Vp,
          pr.in->classifier(losses, dinp, dwte, inp, wte, wte_bf16, targets, N, C, V, Vp, dloss,
                            scratch));
}
static double p_sum_squares(const float *x, size_t n) {
    double s = 0;
    TIMED(GPT2C_PROF_OPTIMIZER, 0, s = pr.in->sum_squares(x, n));
    return s;
}
static void p_adamw(float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n, double lr,
                    float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                    double bias_c1, double bias_c2) {
    TIMED(GPT2C_PROF_OPTIMIZER, 0,
          pr.in->adamw(p, p_bf16, g, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale,
                       bias_c1, bias_c2));
}
static void p_to_bf16(gpt2_bf16 *dst, const float *src, size_t n) {
    TIMED(GPT2C_PROF_OPTIMIZER, 0, pr.in->to_bf16(dst, src, n));
}

const gpt2_ops *prof_start(gpt2c_profile *p, const gpt2_ops *inner) {
    memset(p, 0, sizeof *p);
    pr.p = p, pr.in = inner, pr.ops_ms = 0, pr.whole = 0;
    pr.table = *inner; /* memory, threads, sizes and names: as the backend's */
    pr.table.memset0 = p_memset0, pr.table.copy = p_copy;
    pr.table.upload = p_upload, pr.table.download = p_download;
    pr.table.embed_forward = p_embed_forward, pr.table.embed_backward = p_embed_backward;
    pr.table.layernorm_forward = p_layernorm_forward;
    pr.table.layernorm_backward = p_layernorm_backward;
    pr.table.matmul_forward = p_matmul_forward, pr.table.matmul_backward = p_matmul_backward;
    pr.table.attention_forward = p_attention_forward;
    pr.table.attention_backward = p_attention_backward;
    pr.table.attention_forward_kv = p_attention_forward_kv;
    pr.table.gelu_forward = p_gelu_forward, pr.table.gelu_backward = p_gelu_backward;
    pr.table.residual_forward = p_residual_forward, pr.table.classifier = p_classifier;
    pr.table.sum_squares = p_sum_squares, pr.table.adamw = p_adamw, pr.table.to_bf16 = p_to_bf16;
    pr.start_ms = clock_ms();
    return &pr.table;
}

void prof_stop(void) {
    if (!pr.p) return;
    gpt2c_profile *p = pr.p;
    p->total_ms = clock_ms() - pr.start_ms;
    double measured = 0;
    for (int k = 0; k < GPT2C_PROF_OTHER; k++) measured += p->ms[k];
    p->ms[GPT2C_PROF_OTHER] = p->total_ms > measured ? p->total_ms - measured : 0;
    pr.p = NULL;
}

prof_mark prof_begin(void) {
    if (!pr.p || pr.whole) return (prof_mark){0}; /* inside a whole, the whole counts it */
    return (prof_mark){clock_ms(), pr.ops_ms, 0};
}

prof_mark prof_begin_whole(void) {
    if (!pr.p || pr.whole) return (prof_mark){0}; /* a whole inside a whole: the outer counts */
    prof_mark m = {clock_ms(), pr.ops_ms, 1};
    pr.whole = 1;
    return m;
}

void prof_end(prof_mark m, gpt2c_profile_kind kind) {
    if (!pr.p || m.t == 0) return;
    double ms = clock_ms() - m.t;
    if (m.whole) pr.whole = 0;
    else ms -= pr.ops_ms - m.ops_ms; /* the ops inside kept their own kinds */
    pr.p->ms[kind] += ms > 0 ? ms : 0;
    pr.p->calls[kind]++;
}
