/* GPT-2 forward and backward, one function each, top to bottom. Every kernel is an op of the
 * backend (m->be->ops); this file only says which op runs on which buffer, in which order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gpt2.h"
#include "model/layout.h"
#include "ops/host_view.h"
#include "util/error.h"
#include "util/rng.h"

int gpt2_create(gpt2_model *m, const gpt2_config *cfg, const gpt2_backend *be, gpt2c_error *err) {
    memset(m, 0, sizeof *m);
    if (gpt2_config_check(cfg, err) != 0) return -1;
    if (gpt2_backend_check_shapes(be, cfg->n_embd, cfg->n_head, err) != 0) return -1;
    m->cfg = *cfg;
    m->be = be;
    const gpt2_ops *ops = be->ops;
    if (gpt2_param_table_build(&m->table, cfg, err) != 0) return -1;
    gpt2_layer_tensors *wl = calloc((size_t)cfg->n_layer, sizeof *wl);
    m->params = ops->alloc(m->table.total * sizeof(float));
    if (!wl || !m->params) {
        free(wl);
        gpt2_free(m);
        return err_set(err, "out of memory for %zu parameters", m->table.total);
    }
    gpt2_tensors_bind(&m->w, wl, &m->table, cfg, m->params);
    m->flat = m->table.total;
    return 0;
}

int gpt2_pad_flat(gpt2_model *m, size_t floats, gpt2c_error *err) {
    if (floats <= m->flat) return 0;
    if (m->grads) return err_set(err, "the model's buffers are padded before it is planned");
    const gpt2_ops *ops = m->be->ops;
    float *p = ops->alloc(floats * sizeof(float)); /* zeroed: the padding stays 0 */
    if (!p) return err_set(err, "out of memory for %zu parameters", floats);
    ops->copy(p, m->params, m->table.total * sizeof(float));
    ops->free(m->params);
    m->params = p, m->flat = floats;
    gpt2_tensors_bind(&m->w, m->w.layers, &m->table, &m->cfg, m->params);
    return 0;
}

void gpt2_unplan(gpt2_model *m) {
    if (m->be) {
        const gpt2_ops *ops = m->be->ops;
        ops->recording_free(m->recording); /* (its pointers are the plan's) */
        m->recording = NULL, m->no_recording = 0;
        ops->free(m->acts);
        if (!m->be->host_memory) {
            ops->free(m->tokens_dev);
            free(m->losses_host);
        }
    }
    free(m->layer_acts);
    free(m->inputs);
    free(m->targets);
    m->acts = NULL, m->layer_acts = NULL, m->inputs = m->targets = NULL;
    m->inputs_dev = m->targets_dev = m->tokens_dev = NULL, m->losses_host = NULL;
    m->B = m->T = m->training = 0;
}

void gpt2_free(gpt2_model *m) {
    gpt2_unplan(m);
    free(m->w.layers);
    free(m->g.layers);
    if (m->be) {
        const gpt2_ops *ops = m->be->ops;
        ops->free(m->params);
        ops->free(m->params_bf16);
        ops->free(m->grads);
    }
    gpt2_param_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void gpt2_view(gpt2_model *view, const gpt2_model *m) {
    memset(view, 0, sizeof *view);
    view->cfg = m->cfg, view->be = m->be, view->table = m->table;
    view->params = m->params, view->w = m->w, view->params_bf16 = m->params_bf16;
    view->flat = m->flat;
}

int gpt2_init_random(gpt2_model *m, uint64_t seed, gpt2c_error *err) {
    rng r;
    rng_seed(&r, seed);
    double residual_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    float *host = host_view(m->be, m->params, m->table.total, 0);
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
    host_view_done(m->be, m->params, host, m->table.total, 1);
    gpt2_params_changed(m);
    return 0;
}

int gpt2_set_precision(gpt2_model *m, gpt2_precision p, gpt2c_error *err) {
    if (m->acts && (p == GPT2_BF16) != (m->params_bf16 != NULL)) /* the scratch was sized for it */
        return err_set(err, "internal error: the precision changes after the plan was made");
    if (gpt2_backend_supports(m->be, p, err) != 0) return -1;
    if (m->be->set_precision && p != m->be->precision) /* its activations are of the other type */
        return err_set(err, "internal error: a %s model on a backend handle that runs %s",
                       p == GPT2_BF16 ? "bf16" : "fp32", p == GPT2_BF16 ? "fp32" : "bf16");
    if (p == GPT2_FP32) {
        m->be->ops->free(m->params_bf16);
        m->params_bf16 = NULL;
        return 0;
    }
    if (!m->params_bf16) m->params_bf16 = m->be->ops->alloc(m->table.total * sizeof(gpt2_bf16));
    if (!m->params_bf16)
        return err_set(err, "out of memory for the bf16 copy of %zu parameters", m->table.total);
    gpt2_params_changed(m);
    return 0;
}

void gpt2_params_changed(gpt2_model *m) {
    if (m->params_bf16) m->be->ops->to_bf16(m->params_bf16, m->params, m->table.total);
}

/* Whether the GELU outputs share one buffer instead of one per layer: without a backward nothing
 * reads them again, and with --recompute the backward recomputes each from fch. */
static int gelu_shared(const gpt2_model *m, int training) { return !training || m->recompute; }

/* The one layout of the plan: every buffer's place, written into m (into m->layer_acts when
 * placing); while counting (l->base NULL) nothing is written but the count. Activations take
 * the backend's act_bytes each, statistics and losses a float, the ops' scratch what they ask. */
static void plan_layout(gpt2_model *m, int B, int T, int training, layout *l) {
    const gpt2_config *c = &m->cfg;
    size_t N = (size_t)B * T, C = (size_t)c->n_embd;
    gpt2_act *shared = gelu_shared(m, training) ? layout_acts(l, 4 * N * C) : NULL;
    for (int i = 0; i < c->n_layer; i++) {
        gpt2_layer_acts counted, *a = l->base ? &m->layer_acts[i] : &counted;
        a->ln1 = layout_acts(l, N * C), a->ln1_mean = layout_floats(l, N);
        a->ln1_rstd = layout_floats(l, N);
        a->qkv = layout_acts(l, 3 * N * C);
        a->atty = layout_acts(l, N * C), a->lse = layout_floats(l, (size_t)B * c->n_head * T);
        a->res2 = layout_acts(l, N * C);
        a->ln2 = layout_acts(l, N * C), a->ln2_mean = layout_floats(l, N);
        a->ln2_rstd = layout_floats(l, N);
        a->fch = layout_acts(l, 4 * N * C);
        a->fch_gelu = shared ? shared : layout_acts(l, 4 * N * C);
        a->res3 = layout_acts(l, N * C);
    }
    m->encoded = layout_acts(l, N * C), m->lnf = layout_acts(l, N * C);
    m->lnf_mean = layout_floats(l, N), m->lnf_rstd = layout_floats(l, N);
    m->losses = layout_floats(l, N);
    m->loss_acc = (double *)layout_take(l, sizeof(double));
    if (training)
        m->dres = layout_acts(l, N * C), m->dC = layout_acts(l, N * C),
        m->d4C = layout_acts(l, 4 * N * C);
    m->scratch = layout_floats(l, m->be->ops->scratch_floats(B, T, c->n_embd, c->n_head,
                                                             GPT2_VOCAB_PADDED,
                                                             m->params_bf16 != NULL));
}

static size_t plan_count(const gpt2_model *m, int B, int T, int training) {
    gpt2_model counting = *m; /* plan_layout writes its (NULL) pointers here, not into m */
    layout l = {NULL, 0, m->be->act_bytes};
    plan_layout(&counting, B, T, training, &l);
    return l.bytes;
}

gpt2_plan_memory gpt2_plan_parts(const gpt2_model *m, int B, int T, int training, size_t moments) {
    const gpt2_config *c = &m->cfg;
    gpt2_plan_memory p = {.params = (double)m->flat * sizeof(float)};
    p.copy = m->params_bf16 ? (double)m->table.total * sizeof(gpt2_bf16) : 0;
    p.grads = training ? p.params : 0, p.adamw = training ? 2.0 * moments * sizeof(float) : 0;
    layout scratch = {NULL, 0, m->be->act_bytes}; /* as plan_layout takes it */
    layout_floats(&scratch, m->be->ops->scratch_floats(B, T, c->n_embd, c->n_head,
                                                       GPT2_VOCAB_PADDED, m->params_bf16 != NULL));
    p.scratch = (double)scratch.bytes;
    p.acts = (double)plan_count(m, B, T, training) - p.scratch;
    return p;
}

double gpt2_plan_bytes(const gpt2_model *m, int B, int T, int training, size_t moments) {
    gpt2_plan_memory p = gpt2_plan_parts(m, B, T, training, moments);
    return p.params + p.copy + p.grads + p.adamw + p.acts + p.scratch;
}

int gpt2_plan(gpt2_model *m, int B, int T, int training, gpt2c_error *err) {
    const gpt2_config *c = &m->cfg;
    if (T > c->max_seq_len)
        return err_set(err, "sequence length %d is longer than the model's %d positions", T,
                       c->max_seq_len);
    size_t N = (size_t)B * T, L = (size_t)c->n_layer;
    size_t total = plan_count(m, B, T, training);
    const gpt2_ops *ops = m->be->ops;
    m->acts = ops->alloc(total);
    m->layer_acts = calloc(L, sizeof *m->layer_acts);
    m->inputs = calloc(N, sizeof *m->inputs);
    m->targets = calloc(N, sizeof *m->targets);
    int tokens_ok = 1;
    if (m->be->host_memory) { /* the ops read the host's arrays themselves */
        m->inputs_dev = m->inputs, m->targets_dev = m->targets;
    } else { /* a device copy of both, and a host copy of the losses (gpt2_row_losses) */
        m->tokens_dev = ops->alloc(2 * N * sizeof(int32_t));
        m->losses_host = calloc(N, sizeof *m->losses_host);
        tokens_ok = m->tokens_dev && m->losses_host;
        if (m->tokens_dev) m->inputs_dev = m->tokens_dev, m->targets_dev = m->tokens_dev + N;
    }
    if (training) {
        m->grads = ops->alloc(m->flat * sizeof(float));
        gpt2_layer_tensors *gl = calloc(L, sizeof *gl);
        if (gl && m->grads) gpt2_tensors_bind(&m->g, gl, &m->table, c, m->grads);
        else free(gl);
    }
    if (!m->acts || !m->layer_acts || !m->inputs || !m->targets || !tokens_ok ||
        (training && !m->g.layers))
        return err_set(err, "out of memory planning activations for batch %d x %d (%.0f MB)", B,
                       T, total / 1e6);
    m->B = B, m->T = T, m->training = training;
    layout l = {m->acts, 0, m->be->act_bytes};
    plan_layout(m, B, T, training, &l);
    /* The products gpt2_block_forward, gpt2_backward and the LM head run below, prepared now
     * (GPT2C_CUDA_GEMM_LOG=1 names any a GPU meets only at its first call). */
    int C = c->n_embd;
    const gpt2_product products[] = {
        {GPT2_LINEAR, C, 3 * C, 1},       /* attention's q, k, v */
        {GPT2_LINEAR, C, C, 1},           /* attention's projection */
        {GPT2_LINEAR_GELU, C, 4 * C, 1},  /* the MLP's first layer */
        {GPT2_LINEAR_DGELU, 4 * C, C, 1}, /* its second: the backward through the GELU */
        {GPT2_LM_HEAD, C, GPT2_VOCAB_PADDED, 0},
    };
    ops->prepare_products(products, sizeof products / sizeof *products, N, training,
                          m->params_bf16 != NULL);
    return 0;
}


/* In the passes below: a weight's bf16 copy (NULL in fp32), and the ops' shared scratch. */
#define BF16(w) gpt2_bf16_copy(m, w)
#define S m->scratch

void gpt2_block_forward(const gpt2_model *m, int l, const gpt2_act *res, gpt2_layer_acts *a,
                        const gpt2_block_pass *p) {
    const gpt2_ops *op = m->be->ops;
    void (*matmul)(gpt2_act *, const gpt2_act *, const float *, const gpt2_bf16 *, const float *,
                   int, int, int, float *) =
        p->rowwise ? op->matmul_forward_rowwise : op->matmul_forward;
    int N = p->N, C = m->cfg.n_embd, NH = m->cfg.n_head;
    size_t NC = (size_t)N * C;
    float **w = m->w.layers[l].t;
    /* attention: res2 = res + proj(attention(ln_1(res))) */
    op->layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, res, w[P_LN1_W], w[P_LN1_B], N, C);
    matmul(a->qkv, a->ln1, w[P_QKV_W], BF16(w[P_QKV_W]), w[P_QKV_B], N, C, 3 * C, p->scratch);
    if (p->spans)
        op->attention_forward_kv(a->atty, a->qkv, p->kcache, p->vcache, p->spans, p->nspans,
                                 p->len, C, NH, p->scratch);
    else
        op->attention_forward(a->atty, a->lse, a->qkv, p->B, p->T, C, NH, m->params_bf16 != NULL,
                              p->scratch);
    gpt2_act *proj = p->proj ? p->proj : a->res2;
    matmul(proj, a->atty, w[P_ATTN_PROJ_W], BF16(w[P_ATTN_PROJ_W]), w[P_ATTN_PROJ_B], N, C, C,
           p->scratch);
    /* res2 = res + proj and its ln_2 in one op; then the MLP: res3 = res2 + proj(gelu(fc(ln_2))) */
    op->residual_layernorm_forward(a->res2, a->ln2, a->ln2_mean, a->ln2_rstd, proj, res,
                                   w[P_LN2_W], w[P_LN2_B], N, C);
    if (p->rowwise) { /* (matmul_forward_rowwise's promise: no fused form of it) */
        matmul(a->fch, a->ln2, w[P_FC_W], BF16(w[P_FC_W]), w[P_FC_B], N, C, 4 * C, p->scratch);
        op->gelu_forward(a->fch_gelu, a->fch, 4 * NC);
    } else {
        op->matmul_gelu_forward(a->fch, a->fch_gelu, a->ln2, w[P_FC_W], BF16(w[P_FC_W]),
                                w[P_FC_B], N, C, 4 * C, p->scratch);
    }
    proj = p->proj ? p->proj : a->res3;
    matmul(proj, a->fch_gelu, w[P_MLP_PROJ_W], BF16(w[P_MLP_PROJ_W]), w[P_MLP_PROJ_B], N, 4 * C, C,
           p->scratch);
    op->residual_forward(a->res3, proj, a->res2, NC);
}

/* The batch the caller filled, to the device. */
static void upload_batch(gpt2_model *m) {
    size_t N = (size_t)m->B * m->T;
    if (m->be->host_memory) return;
    m->be->ops->upload(m->inputs_dev, m->inputs, N * sizeof *m->inputs);
    m->be->ops->upload(m->targets_dev, m->targets, N * sizeof *m->targets);
}

/* The embedding and the blocks on the batch's inputs already on the backend, then the final
 * LayerNorm into m->lnf. */
static void trunk_forward(gpt2_model *m, int T) {
    const gpt2_ops *op = m->be->ops;
    int B = m->B, C = m->cfg.n_embd, N = B * T;
    op->embed_forward(m->encoded, m->inputs_dev, m->w.wte, m->w.wpe, B, T, C);
    gpt2_block_pass pass = {.N = N, .B = B, .T = T, .scratch = m->scratch};
    const gpt2_act *res = m->encoded; /* the residual stream entering each block */
    for (int l = 0; l < m->cfg.n_layer; l++) {
        gpt2_block_forward(m, l, res, &m->layer_acts[l], &pass);
        res = m->layer_acts[l].res3;
    }
    op->layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, res, m->w.lnf_w, m->w.lnf_b, N, C);
}

/* The forward on the batch already on the backend, its loss into the accumulator. */
static void forward_pass(gpt2_model *m, float dloss, float weight) {
    const gpt2_ops *op = m->be->ops;
    int C = m->cfg.n_embd, N = m->B * m->T;
    trunk_forward(m, m->T);
    /* LM head (tied to wte) + cross-entropy; when training, dC = d(loss)/d(lnf), dwte += . */
    int grad = dloss > 0.0f && m->training;
    op->classifier(m->losses, grad ? m->dC : NULL, grad ? m->g.wte : NULL, m->lnf, m->w.wte,
                   BF16(m->w.wte), m->targets_dev, N, C, GPT2_VOCAB, GPT2_VOCAB_PADDED, dloss, S);
    op->loss_sum(m->loss_acc, m->losses, N, weight);
}

void gpt2_forward_accumulate(gpt2_model *m, float dloss, float weight) {
    upload_batch(m);
    forward_pass(m, dloss, weight);
}

void gpt2_train_micro_step(gpt2_model *m, float dloss, float weight) {
    const gpt2_ops *op = m->be->ops;
    upload_batch(m); /* (outside the recording: its bytes change every time) */
    if (m->recording && (m->recorded_dloss != dloss || m->recorded_weight != weight)) {
        op->recording_free(m->recording); /* its numbers are no longer the step's */
        m->recording = NULL;
    }
    if (!m->recording && !m->no_recording && op->capture_begin() == 0) {
        forward_pass(m, dloss, weight);
        gpt2_backward(m);
        m->recording = op->capture_end(); /* (NULL: the backend said why, and nothing ran) */
        m->no_recording = !m->recording;
        m->recorded_dloss = dloss, m->recorded_weight = weight;
    }
    if (m->recording) {
        op->replay(m->recording);
        return;
    }
    forward_pass(m, dloss, weight);
    gpt2_backward(m);
}

double gpt2_loss_take(gpt2_model *m) {
    double sum;
    m->be->ops->download(&sum, m->loss_acc, sizeof sum);
    m->be->ops->memset0(m->loss_acc, sizeof *m->loss_acc);
    return sum;
}

void gpt2_forward_rows(gpt2_model *m, int T, const int32_t *rows, int n) {
    const gpt2_backend *be = m->be;
    size_t C = (size_t)m->cfg.n_embd;
    if (!be->host_memory)
        be->ops->upload(m->inputs_dev, m->inputs, (size_t)m->B * T * sizeof *m->inputs);
    trunk_forward(m, T);
    /* the rows to the front of lnf and their targets to the front of targets, in place: rows
     * ascend, so row i's source (at or after i) is read before anything is written over it */
    for (int i = 0; i < n; i++) {
        m->targets[i] = m->targets[rows[i]];
        if (rows[i] != i)
            be->ops->copy(act_at(be, m->lnf, (size_t)i * C),
                          act_at(be, m->lnf, (size_t)rows[i] * C), C * be->act_bytes);
    }
    if (!be->host_memory)
        be->ops->upload(m->targets_dev, m->targets, (size_t)n * sizeof *m->targets);
    be->ops->classifier(m->losses, NULL, NULL, m->lnf, m->w.wte, BF16(m->w.wte), m->targets_dev,
                        n, (int)C, GPT2_VOCAB, GPT2_VOCAB_PADDED, 0.0f, m->scratch);
}

float gpt2_forward(gpt2_model *m, float dloss) {
    gpt2_forward_accumulate(m, dloss, 1.0f);
    return (float)gpt2_loss_take(m);
}

const float *gpt2_row_losses(gpt2_model *m) {
    if (m->be->host_memory) return m->losses;
    int N = m->B * m->T;
    m->be->ops->download(m->losses_host, m->losses, (size_t)N * sizeof *m->losses_host);
    return m->losses_host;
}

void gpt2_backward(gpt2_model *m) {
    const gpt2_ops *op = m->be->ops;
    int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, N = B * T, L = m->cfg.n_layer;
    size_t NC = (size_t)N * C;
    gpt2_act *dres = m->dres, *dC = m->dC, *d4C = m->d4C;
    /* final LayerNorm: the classifier left d(lnf) in dC; layernorm_backward adds to dres */
    op->memset0(dres, NC * m->be->act_bytes);
    op->layernorm_backward(dres, m->g.lnf_w, m->g.lnf_b, dC, m->layer_acts[L - 1].res3, m->w.lnf_w,
                           m->lnf_mean, m->lnf_rstd, N, C, m->scratch);
    for (int l = L - 1; l >= 0; l--) {
        gpt2_layer_acts *a = &m->layer_acts[l];
        const gpt2_act *res = l == 0 ? m->encoded : m->layer_acts[l - 1].res3;
        float **w = m->w.layers[l].t, **g = m->g.layers[l].t;
        /* MLP; dres holds d(res3) and becomes d(res2) */
        if (m->recompute) op->gelu_forward(a->fch_gelu, a->fch, 4 * NC);
        op->matmul_backward_dgelu(d4C, g[P_MLP_PROJ_W], g[P_MLP_PROJ_B], dres, a->fch_gelu,
                                  a->fch, w[P_MLP_PROJ_W], BF16(w[P_MLP_PROJ_W]), N, 4 * C, C, S);
        op->matmul_backward(dC, g[P_FC_W], g[P_FC_B], d4C, a->ln2, w[P_FC_W], BF16(w[P_FC_W]), N,
                            C, 4 * C, S);
        op->layernorm_backward(dres, g[P_LN2_W], g[P_LN2_B], dC, a->res2, w[P_LN2_W], a->ln2_mean,
                               a->ln2_rstd, N, C, m->scratch);
        /* attention; dres becomes d(res), the block's input (d4C serves as dqkv) */
        op->matmul_backward(dC, g[P_ATTN_PROJ_W], g[P_ATTN_PROJ_B], dres, a->atty,
                            w[P_ATTN_PROJ_W], BF16(w[P_ATTN_PROJ_W]), N, C, C, S);
        op->attention_backward(d4C, dC, a->qkv, a->atty, a->lse, B, T, C, NH,
                               m->params_bf16 != NULL, m->scratch);
        op->matmul_backward(dC, g[P_QKV_W], g[P_QKV_B], d4C, a->ln1, w[P_QKV_W], BF16(w[P_QKV_W]),
                            N, C, 3 * C, S);
        op->layernorm_backward(dres, g[P_LN1_W], g[P_LN1_B], dC, res, w[P_LN1_W], a->ln1_mean,
                               a->ln1_rstd, N, C, m->scratch);
    }
    op->embed_backward(m->g.wte, m->g.wpe, dres, m->inputs_dev, B, T, C, m->scratch);
}

#undef BF16
#undef S
