/* The profiling table: each op of the backend's, timed with the backend's clock and added to its
 * kind. See profiled.h. */
#include <string.h>

#include "ops/profiled.h"

static const char *const kind_names[GPT2C_PROF_KINDS] = {
    "matmul_fwd", "matmul_bwd", "attention", "lm_head",  "elementwise", "optimizer", "data",
    "comm",       "checkpoint", "validation", "samples",  "sampling",    "prompt",    "other"};

const char *gpt2c_profile_kind_name(int kind) {
    return kind >= 0 && kind < GPT2C_PROF_KINDS ? kind_names[kind] : NULL;
}

static struct {
    gpt2c_profile *p;   /* NULL: not profiling */
    const gpt2_ops *in; /* the backend's ops, timed */
    gpt2_ops table;
    gpt2_backend handle; /* the backend's handle, with the timing table */
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
static void p_embed_forward(gpt2_act *out, const int32_t *tokens, const float *wte,
                            const float *wpe, int B, int T, int C) {
    ELEMENTWISE(pr.in->embed_forward(out, tokens, wte, wpe, B, T, C));
}
static void p_embed_backward(float *dwte, float *dwpe, const gpt2_act *dout, const int32_t *tokens,
                             int B, int T, int C) {
    ELEMENTWISE(pr.in->embed_backward(dwte, dwpe, dout, tokens, B, T, C));
}
static void p_layernorm_forward(gpt2_act *out, float *mean, float *rstd, const gpt2_act *inp,
                                const float *w, const float *b, int N, int C) {
    ELEMENTWISE(pr.in->layernorm_forward(out, mean, rstd, inp, w, b, N, C));
}
static void p_layernorm_backward(gpt2_act *dinp, float *dw, float *db, const gpt2_act *dout,
                                 const gpt2_act *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C, float *scratch) {
    ELEMENTWISE(pr.in->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, scratch));
}
static void p_matmul_forward(gpt2_act *out, const gpt2_act *inp, const float *w,
                             const gpt2_bf16 *w_bf16, const float *bias, int N, int C, int OC,
                             float *scratch) {
    TIMED(GPT2C_PROF_MATMUL_FWD, 2.0 * N * C * OC,
          pr.in->matmul_forward(out, inp, w, w_bf16, bias, N, C, OC, scratch));
}
static void p_matmul_forward_rows(gpt2_act *out, const gpt2_act *inp, const float *w,
                                  const gpt2_bf16 *w_bf16, const float *bias, int N, int C,
                                  int OC, float *scratch) {
    TIMED(GPT2C_PROF_MATMUL_FWD, 2.0 * N * C * OC,
          pr.in->matmul_forward_rows(out, inp, w, w_bf16, bias, N, C, OC, scratch));
}
static void p_matmul_backward(gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout,
                              const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16, int N,
                              int C, int OC, float *scratch) {
    TIMED(GPT2C_PROF_MATMUL_BWD, 4.0 * N * C * OC,
          pr.in->matmul_backward(dinp, dw, dbias, dout, inp, w, w_bf16, N, C, OC, scratch));
}
static void p_attention_forward(gpt2_act *out, float *lse, const gpt2_act *qkv, int B, int T, int C,
                                int NH, float *scratch) {
    TIMED(GPT2C_PROF_ATTENTION, 0, pr.in->attention_forward(out, lse, qkv, B, T, C, NH, scratch));
}
static void p_attention_backward(gpt2_act *dqkv, const gpt2_act *dout, const gpt2_act *qkv,
                                 const gpt2_act *out, const float *lse, int B, int T, int C, int NH,
                                 float *scratch) {
    TIMED(GPT2C_PROF_ATTENTION, 0,
          pr.in->attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, scratch));
}
static void p_attention_forward_kv(gpt2_act *out, const gpt2_act *qkv, gpt2_act *kcache,
                                   gpt2_act *vcache,
                                   int nseq, int n, int pos, int len, int C, int NH,
                                   float *scratch) {
    TIMED(GPT2C_PROF_ATTENTION, 0,
          pr.in->attention_forward_kv(out, qkv, kcache, vcache, nseq, n, pos, len, C, NH, scratch));
}
static void p_gelu_forward(gpt2_act *out, const gpt2_act *inp, size_t n) {
    ELEMENTWISE(pr.in->gelu_forward(out, inp, n));
}
static void p_gelu_backward(gpt2_act *dinp, const gpt2_act *inp, const gpt2_act *dout, size_t n) {
    ELEMENTWISE(pr.in->gelu_backward(dinp, inp, dout, n));
}
static void p_residual_forward(gpt2_act *out, const gpt2_act *a, const gpt2_act *b, size_t n) {
    ELEMENTWISE(pr.in->residual_forward(out, a, b, n));
}
static void p_classifier(float *losses, gpt2_act *dinp, float *dwte, const gpt2_act *inp,
                         const float *wte, const gpt2_bf16 *wte_bf16, const int32_t *targets,
                         int N, int C, int V, int Vp, float dloss, float *scratch) {
    TIMED(GPT2C_PROF_LM_HEAD, (dinp ? 6.0 : 2.0) * N * C * Vp,
          pr.in->classifier(losses, dinp, dwte, inp, wte, wte_bf16, targets, N, C, V, Vp, dloss,
                            scratch));
}
static void p_logits_forward(float *logits, const gpt2_act *inp, const float *wte,
                             const gpt2_bf16 *wte_bf16, int N, int C, int Vp, float *scratch) {
    TIMED(GPT2C_PROF_LM_HEAD, 2.0 * N * C * Vp,
          pr.in->logits_forward(logits, inp, wte, wte_bf16, N, C, Vp, scratch));
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

const gpt2_backend *prof_start(gpt2c_profile *p, const gpt2_backend *inner) {
    memset(p, 0, sizeof *p);
    pr.p = p, pr.in = inner->ops, pr.ops_ms = 0, pr.whole = 0;
    pr.table = *inner->ops; /* memory, sizes and the clock: the backend's own */
    pr.table.memset0 = p_memset0, pr.table.copy = p_copy;
    pr.table.upload = p_upload, pr.table.download = p_download;
    pr.table.embed_forward = p_embed_forward, pr.table.embed_backward = p_embed_backward;
    pr.table.layernorm_forward = p_layernorm_forward;
    pr.table.layernorm_backward = p_layernorm_backward;
    pr.table.matmul_forward = p_matmul_forward, pr.table.matmul_backward = p_matmul_backward;
    pr.table.matmul_forward_rows = p_matmul_forward_rows;
    pr.table.attention_forward = p_attention_forward;
    pr.table.attention_backward = p_attention_backward;
    pr.table.attention_forward_kv = p_attention_forward_kv;
    pr.table.gelu_forward = p_gelu_forward, pr.table.gelu_backward = p_gelu_backward;
    pr.table.residual_forward = p_residual_forward, pr.table.classifier = p_classifier;
    pr.table.logits_forward = p_logits_forward;
    pr.table.sum_squares = p_sum_squares, pr.table.adamw = p_adamw, pr.table.to_bf16 = p_to_bf16;
    pr.handle = *inner;
    pr.handle.ops = &pr.table;
    pr.start_ms = clock_ms();
    return &pr.handle;
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
