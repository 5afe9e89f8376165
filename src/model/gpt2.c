/* GPT-2 forward and backward, one function each, top to bottom. Every kernel is an op of the
 * backend (m->ops); this file only says which op runs on which buffer, in which order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gpt2.h"
#include "ops/host_view.h"
#include "util/error.h"
#include "util/rng.h"

int gpt2_create(gpt2_model *m, const gpt2_config *cfg, const gpt2_ops *ops, gpt2c_error *err) {
    memset(m, 0, sizeof *m);
    if (gpt2_config_check(cfg, err) != 0) return -1;
    m->cfg = *cfg;
    m->ops = ops;
    if (gpt2_param_table_build(&m->table, cfg, err) != 0) return -1;
    gpt2_layer_tensors *wl = calloc((size_t)cfg->n_layer, sizeof *wl);
    m->params = ops->alloc(m->table.total * sizeof(float));
    if (!wl || !m->params) {
        free(wl);
        gpt2_free(m);
        return err_set(err, "out of memory for %zu parameters", m->table.total);
    }
    gpt2_tensors_bind(&m->w, wl, &m->table, cfg, m->params);
    return 0;
}

void gpt2_free(gpt2_model *m) {
    const gpt2_ops *ops = m->ops;
    free(m->w.layers);
    free(m->g.layers);
    if (ops) {
        ops->free(m->params);
        ops->free(m->params_bf16);
        ops->free(m->grads);
        ops->free(m->acts);
        if (!ops->host_memory) {
            ops->free(m->tokens_dev);
            free(m->losses_host);
        }
    }
    free(m->layer_acts);
    free(m->inputs);
    free(m->targets);
    gpt2_param_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

int gpt2_init_random(gpt2_model *m, uint64_t seed, gpt2c_error *err) {
    rng r;
    rng_seed(&r, seed);
    double residual_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    float *host = host_view(m->ops, m->params, m->table.total, 0);
    if (!host) return err_set(err, "out of memory for %zu parameters", m->table.total);
    for (size_t i = 0; i < m->table.count; i++) {
        const gpt2_param *p = &m->table.params[i];
        float *x = host + p->offset;
        /* wte: only the real rows are drawn; the padding stays zero. */
        size_t n = (size_t)p->hf_shape[0] * (p->ndim == 2 ? (size_t)p->hf_shape[1] : 1);
        memset(x, 0, p->numel * sizeof *x);
        for (size_t j = 0; j < n; j++)
            x[j] = p->init == INIT_ONE ? 1.0f
                 : p->init == INIT_NORMAL ? (float)(0.02 * rng_normal(&r))
                 : p->init == INIT_NORMAL_RESIDUAL ? (float)(residual_std * rng_normal(&r))
                 : 0.0f;
    }
    host_view_done(m->ops, m->params, host, m->table.total, 1);
    gpt2_params_changed(m);
    return 0;
}

int gpt2_set_precision(gpt2_model *m, gpt2_precision p, gpt2c_error *err) {
    if (m->acts && (p == GPT2_BF16) != (m->params_bf16 != NULL)) /* the scratch was sized for it */
        return err_set(err, "internal error: the precision changes after the plan was made");
    if (p == GPT2_FP32) {
        m->ops->free(m->params_bf16);
        m->params_bf16 = NULL;
        return 0;
    }
    if (!m->ops->precision_path(1))
        return err_set(err, "--precision bf16: the %s backend cannot run bf16 products here; use "
                            "--precision fp32", m->ops->name);
    if (!m->params_bf16) m->params_bf16 = m->ops->alloc(m->table.total * sizeof(gpt2_bf16));
    if (!m->params_bf16)
        return err_set(err, "out of memory for the bf16 copy of %zu parameters", m->table.total);
    gpt2_params_changed(m);
    return 0;
}

void gpt2_params_changed(gpt2_model *m) {
    if (m->params_bf16) m->ops->to_bf16(m->params_bf16, m->params, m->table.total);
}

#define PLAN_ALIGN ((size_t)64) /* floats */

/* Whether the GELU outputs share one buffer instead of one per layer: without a backward nothing
 * reads them again, and with --recompute the backward recomputes each from fch. */
static int gelu_shared(const gpt2_model *m, int training) { return !training || m->recompute; }

/* Floats of the activation plan for B x T (and its backward work buffers when training). */
static size_t plan_floats(const gpt2_model *m, int B, int T, int training, size_t *scratch) {
    const gpt2_config *c = &m->cfg;
    size_t N = (size_t)B * T, C = (size_t)c->n_embd, L = (size_t)c->n_layer;
    size_t gelu = 4 * N * C;
    size_t per_layer = 12 * N * C + 4 * N + (size_t)B * c->n_head * T;
    size_t top = 2 * N * C + 3 * N;                      /* encoded, lnf, lnf stats, losses */
    size_t backward = training ? 6 * N * C : 0;           /* dres, dC, d4C */
    *scratch = m->ops->scratch_floats(B, T, c->n_embd, c->n_head, GPT2_VOCAB_PADDED,
                                      m->params_bf16 != NULL);
    /* every buffer starts on a 256-byte boundary (GPU libraries, AVX-512 loads): room for the
     * rounding of its at most 13 L + 10 starts */
    size_t slack = PLAN_ALIGN * (13 * L + 10);
    return L * per_layer + (gelu_shared(m, training) ? 1 : L) * gelu + top + backward + *scratch +
           slack;
}

double gpt2_plan_bytes(const gpt2_model *m, int B, int T, int training) {
    size_t scratch;
    double params = (double)m->table.total * sizeof(float);
    double copy = m->params_bf16 ? (double)m->table.total * sizeof(gpt2_bf16) : 0;
    /* the parameters exist already; training adds gradients and AdamW's two moments */
    return (double)plan_floats(m, B, T, training, &scratch) * sizeof(float) +
           params + copy + (training ? 3 * params : 0);
}

int gpt2_plan(gpt2_model *m, int B, int T, int training, gpt2c_error *err) {
    const gpt2_config *c = &m->cfg;
    if (T > c->max_seq_len)
        return err_set(err, "sequence length %d is longer than the model's %d positions", T,
                       c->max_seq_len);
    size_t N = (size_t)B * T, C = (size_t)c->n_embd, L = (size_t)c->n_layer, scratch;
    size_t total = plan_floats(m, B, T, training, &scratch);
    const gpt2_ops *ops = m->ops;
    m->acts = ops->alloc(total * sizeof(float));
    m->layer_acts = calloc(L, sizeof *m->layer_acts);
    m->inputs = calloc(N, sizeof *m->inputs);
    m->targets = calloc(N, sizeof *m->targets);
    int tokens_ok = 1;
    if (ops->host_memory) { /* the ops read the host's arrays themselves */
        m->inputs_dev = m->inputs, m->targets_dev = m->targets;
    } else { /* a device copy of both, and the losses brought back */
        m->tokens_dev = ops->alloc(2 * N * sizeof(int32_t));
        m->losses_host = calloc(N, sizeof *m->losses_host);
        tokens_ok = m->tokens_dev && m->losses_host;
        if (m->tokens_dev) m->inputs_dev = m->tokens_dev, m->targets_dev = m->tokens_dev + N;
    }
    if (training) {
        m->grads = ops->alloc(m->table.total * sizeof(float));
        gpt2_layer_tensors *gl = calloc(L, sizeof *gl);
        if (gl && m->grads) gpt2_tensors_bind(&m->g, gl, &m->table, c, m->grads);
        else free(gl);
    }
    if (!m->acts || !m->layer_acts || !m->inputs || !m->targets || !tokens_ok ||
        (training && !m->g.layers))
        return err_set(err, "out of memory planning activations for batch %d x %d (%.0f MB)", B,
                       T, total * 4.0 / 1e6);
    m->B = B, m->T = T, m->training = training;
    m->act_bytes = total * sizeof(float);

    float *p = m->acts;
    /* the next n floats, the one after rounded up to PLAN_ALIGN (acts itself is aligned) */
#define TAKE(n) (p += ((n) + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN, \
                 p - ((n) + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN)
    float *shared = gelu_shared(m, training) ? TAKE(4 * N * C) : NULL;
    for (size_t l = 0; l < L; l++) {
        gpt2_layer_acts *a = &m->layer_acts[l];
        a->ln1 = TAKE(N * C), a->ln1_mean = TAKE(N), a->ln1_rstd = TAKE(N);
        a->qkv = TAKE(3 * N * C);
        a->atty = TAKE(N * C), a->lse = TAKE((size_t)B * c->n_head * T);
        a->res2 = TAKE(N * C);
        a->ln2 = TAKE(N * C), a->ln2_mean = TAKE(N), a->ln2_rstd = TAKE(N);
        a->fch = TAKE(4 * N * C), a->fch_gelu = shared ? shared : TAKE(4 * N * C);
        a->res3 = TAKE(N * C);
    }
    m->encoded = TAKE(N * C), m->lnf = TAKE(N * C);
    m->lnf_mean = TAKE(N), m->lnf_rstd = TAKE(N), m->losses = TAKE(N);
    if (training) m->dres = TAKE(N * C), m->dC = TAKE(N * C), m->d4C = TAKE(4 * N * C);
    m->scratch = TAKE(scratch);
#undef TAKE
    return 0;
}

/* In the passes below: a weight's bf16 copy (NULL in fp32), and the ops' shared scratch. */
#define BF16(w) gpt2_bf16_copy(m, w)
#define S m->scratch

float gpt2_forward(gpt2_model *m, float dloss) {
    const gpt2_ops *op = m->ops;
    int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, N = B * T;
    size_t NC = (size_t)N * C;
    if (!op->host_memory) { /* the batch the caller filled, to the device */
        op->upload(m->inputs_dev, m->inputs, (size_t)N * sizeof *m->inputs);
        op->upload(m->targets_dev, m->targets, (size_t)N * sizeof *m->targets);
    }
    op->embed_forward(m->encoded, m->inputs_dev, m->w.wte, m->w.wpe, B, T, C);
    const float *res = m->encoded; /* the residual stream entering each block */
    for (int l = 0; l < m->cfg.n_layer; l++) {
        gpt2_layer_acts *a = &m->layer_acts[l];
        float **w = m->w.layers[l].t;
        /* attention: res2 = res + proj(attention(ln_1(res))) */
        op->layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, res, w[P_LN1_W], w[P_LN1_B], N, C);
        op->matmul_forward(a->qkv, a->ln1, w[P_QKV_W], BF16(w[P_QKV_W]), w[P_QKV_B], N, C, 3 * C, S);
        op->attention_forward(a->atty, a->lse, a->qkv, B, T, C, NH, m->scratch);
        op->matmul_forward(a->res2, a->atty, w[P_ATTN_PROJ_W], BF16(w[P_ATTN_PROJ_W]), w[P_ATTN_PROJ_B],
                           N, C, C, S);
        op->residual_forward(a->res2, a->res2, res, NC);
        /* MLP: res3 = res2 + proj(gelu(fc(ln_2(res2)))) */
        op->layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, w[P_LN2_W], w[P_LN2_B], N, C);
        op->matmul_forward(a->fch, a->ln2, w[P_FC_W], BF16(w[P_FC_W]), w[P_FC_B], N, C, 4 * C, S);
        op->gelu_forward(a->fch_gelu, a->fch, 4 * NC);
        op->matmul_forward(a->res3, a->fch_gelu, w[P_MLP_PROJ_W], BF16(w[P_MLP_PROJ_W]),
                           w[P_MLP_PROJ_B], N, 4 * C, C, S);
        op->residual_forward(a->res3, a->res3, a->res2, NC);
        res = a->res3;
    }
    op->layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, res, m->w.lnf_w, m->w.lnf_b, N, C);
    /* LM head (tied to wte) + cross-entropy; when training, dC = d(loss)/d(lnf), dwte += . */
    int grad = dloss > 0.0f && m->training;
    op->classifier(m->losses, grad ? m->dC : NULL, grad ? m->g.wte : NULL, m->lnf, m->w.wte,
                   BF16(m->w.wte), m->targets_dev, N, C, GPT2_VOCAB, GPT2_VOCAB_PADDED, dloss, S);
    const float *losses = m->losses;
    if (!op->host_memory) {
        op->download(m->losses_host, m->losses, (size_t)N * sizeof *m->losses_host);
        losses = m->losses_host;
    }
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += losses[i];
    return (float)(sum / N);
}

void gpt2_backward(gpt2_model *m) {
    const gpt2_ops *op = m->ops;
    int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, N = B * T, L = m->cfg.n_layer;
    size_t NC = (size_t)N * C;
    float *dres = m->dres, *dC = m->dC, *d4C = m->d4C;
    /* final LayerNorm: the classifier left d(lnf) in dC */
    op->memset0(dres, NC * sizeof *dres);
    op->layernorm_backward(dres, m->g.lnf_w, m->g.lnf_b, dC, m->layer_acts[L - 1].res3, m->w.lnf_w,
                           m->lnf_mean, m->lnf_rstd, N, C, m->scratch);
    for (int l = L - 1; l >= 0; l--) {
        gpt2_layer_acts *a = &m->layer_acts[l];
        const float *res = l == 0 ? m->encoded : m->layer_acts[l - 1].res3;
        float **w = m->w.layers[l].t, **g = m->g.layers[l].t;
        /* MLP; dres holds d(res3) and becomes d(res2) */
        if (m->recompute) op->gelu_forward(a->fch_gelu, a->fch, 4 * NC);
        op->matmul_backward(d4C, g[P_MLP_PROJ_W], g[P_MLP_PROJ_B], dres, a->fch_gelu,
                            w[P_MLP_PROJ_W], BF16(w[P_MLP_PROJ_W]), N, 4 * C, C, S);
        op->gelu_backward(d4C, a->fch, d4C, 4 * NC);
        op->matmul_backward(dC, g[P_FC_W], g[P_FC_B], d4C, a->ln2, w[P_FC_W], BF16(w[P_FC_W]), N,
                            C, 4 * C, S);
        op->layernorm_backward(dres, g[P_LN2_W], g[P_LN2_B], dC, a->res2, w[P_LN2_W], a->ln2_mean,
                               a->ln2_rstd, N, C, m->scratch);
        /* attention; dres becomes d(res), the block's input (d4C serves as dqkv) */
        op->matmul_backward(dC, g[P_ATTN_PROJ_W], g[P_ATTN_PROJ_B], dres, a->atty,
                            w[P_ATTN_PROJ_W], BF16(w[P_ATTN_PROJ_W]), N, C, C, S);
        op->attention_backward(d4C, dC, a->qkv, a->atty, a->lse, B, T, C, NH, m->scratch);
        op->matmul_backward(dC, g[P_QKV_W], g[P_QKV_B], d4C, a->ln1, w[P_QKV_W], BF16(w[P_QKV_W]),
                            N, C, 3 * C, S);
        op->layernorm_backward(dres, g[P_LN1_W], g[P_LN1_B], dC, res, w[P_LN1_W], a->ln1_mean,
                               a->ln1_rstd, N, C, m->scratch);
    }
    op->embed_backward(m->g.wte, m->g.wpe, dres, m->inputs_dev, B, T, C);
}

#undef BF16
#undef S
