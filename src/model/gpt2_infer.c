#include <stdlib.h>
#include <string.h>

#include "model/gpt2_infer.h"
#include "util/error.h"

int gpt2_kv_plan(gpt2_kv *kv, const gpt2_model *m, int batch, int len, int max_rows,
                 gpt2c_error *err) {
    memset(kv, 0, sizeof *kv);
    const gpt2_config *c = &m->cfg;
    if (len > c->max_seq_len)
        return err_set(err, "cache of %d positions is longer than the model's %d", len, c->max_seq_len);
    size_t C = (size_t)c->n_embd, R = (size_t)max_rows;
    size_t cache = (size_t)c->n_layer * batch * len * C;
    size_t work = R * (C + C + 3 * C + C + 4 * C + 2) + (size_t)batch * C;
    size_t logits = (size_t)batch * GPT2_VOCAB_PADDED;
    size_t scratch = m->ops->scratch_floats(batch, len, c->n_embd, c->n_head, GPT2_VOCAB_PADDED,
                                            m->params_bf16 != NULL);
    size_t total = 2 * cache + work + logits + scratch;
    double avail = m->ops->mem_available();
    if (avail >= 0 && total * 4.0 > avail)
        return err_set(err, "a KV cache for %d sample(s) of %d positions needs %.1f GB, the %s "
                            "has %.1f GB available: ask for fewer samples or tokens", batch, len,
                       total * 4.0 / 1e9, m->ops->host_memory ? "machine" : "GPU", avail / 1e9);
    const gpt2_ops *ops = m->ops;
    kv->ops = ops;
    kv->mem = ops->alloc(total * sizeof(float));
    int host_ok = 1;
    if (!ops->host_memory) { /* the logits come back to the host; the tokens go to the device */
        kv->logits_host = calloc(logits, sizeof(float));
        kv->tokens_dev = ops->alloc((size_t)max_rows * sizeof(int32_t));
        host_ok = kv->logits_host && kv->tokens_dev;
    }
    if (!kv->mem || !host_ok) {
        gpt2_kv_free(kv);
        return err_set(err, "out of memory for a KV cache of %d x %d positions (%.0f MB)", batch,
                       len, total * 4.0 / 1e6);
    }
    kv->batch = batch, kv->len = len, kv->max_rows = max_rows;
    kv->bytes = total * sizeof(float);
    float *p = kv->mem;
#define TAKE(n) (p += (n), p - (n))
    kv->k = TAKE(cache), kv->v = TAKE(cache);
    kv->x = TAKE(R * C), kv->ln = TAKE(R * C), kv->qkv = TAKE(3 * R * C), kv->att = TAKE(R * C);
    kv->fch = TAKE(4 * R * C), kv->mean = TAKE(R), kv->rstd = TAKE(R);
    kv->last = TAKE((size_t)batch * C);
    kv->logits_dev = TAKE(logits), kv->scratch = TAKE(scratch);
#undef TAKE
    kv->logits = ops->host_memory ? kv->logits_dev : kv->logits_host;
    return 0;
}

void gpt2_kv_free(gpt2_kv *kv) {
    if (kv->ops) {
        kv->ops->free(kv->mem);
        kv->ops->free(kv->tokens_dev);
    }
    free(kv->logits_host);
    memset(kv, 0, sizeof *kv);
}

void gpt2_infer(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int seq0, int nseq,
                int n, int pos) {
    const gpt2_ops *op = m->ops;
#define BF16(w) gpt2_bf16_copy(m, w)
    int C = m->cfg.n_embd, NH = m->cfg.n_head, N = nseq * n;
    size_t NC = (size_t)N * C, layer_cache = (size_t)kv->batch * kv->len * C;
    size_t seq_off = (size_t)seq0 * kv->len * C;
    if (!op->host_memory) {
        op->upload(kv->tokens_dev, tokens, (size_t)N * sizeof *tokens);
        tokens = kv->tokens_dev;
    }
    /* positions start at pos: the embedding reads wpe from row pos on */
    op->embed_forward(kv->x, tokens, m->w.wte, m->w.wpe + (size_t)pos * C, nseq, n, C);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        float **w = m->w.layers[l].t;
        float *kc = kv->k + l * layer_cache + seq_off, *vc = kv->v + l * layer_cache + seq_off;
        op->layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, w[P_LN1_W], w[P_LN1_B], N, C);
        op->matmul_forward(kv->qkv, kv->ln, w[P_QKV_W], BF16(w[P_QKV_W]), w[P_QKV_B], N, C, 3 * C,
                           kv->scratch);
        op->attention_forward_kv(kv->att, kv->qkv, kc, vc, nseq, n, pos, kv->len, C, NH, kv->scratch);
        op->matmul_forward(kv->ln, kv->att, w[P_ATTN_PROJ_W], BF16(w[P_ATTN_PROJ_W]),
                           w[P_ATTN_PROJ_B], N, C, C, kv->scratch);
        op->residual_forward(kv->x, kv->x, kv->ln, NC);
        op->layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, w[P_LN2_W], w[P_LN2_B], N, C);
        op->matmul_forward(kv->fch, kv->ln, w[P_FC_W], BF16(w[P_FC_W]), w[P_FC_B], N, C, 4 * C,
                           kv->scratch);
        op->gelu_forward(kv->fch, kv->fch, 4 * NC);
        op->matmul_forward(kv->ln, kv->fch, w[P_MLP_PROJ_W], BF16(w[P_MLP_PROJ_W]),
                           w[P_MLP_PROJ_B], N, 4 * C, C, kv->scratch);
        op->residual_forward(kv->x, kv->x, kv->ln, NC);
    }
    /* only each sequence's last position needs logits */
    for (int s = 0; s < nseq; s++)
        op->copy(kv->last + (size_t)s * C, kv->x + ((size_t)s * n + n - 1) * C, C * sizeof(float));
    op->layernorm_forward(kv->att, kv->mean, kv->rstd, kv->last, m->w.lnf_w, m->w.lnf_b, nseq, C);
    size_t first = (size_t)seq0 * GPT2_VOCAB_PADDED;
    op->matmul_forward(kv->logits_dev + first, kv->att, m->w.wte, BF16(m->w.wte), NULL, nseq, C,
                       GPT2_VOCAB_PADDED, kv->scratch);
    if (!op->host_memory)
        op->download(kv->logits + first, kv->logits_dev + first,
                     (size_t)nseq * GPT2_VOCAB_PADDED * sizeof(float));
#undef BF16
}

void gpt2_kv_copy(gpt2_kv *kv, const gpt2_model *m, int from, int to, int npos) {
    /* The layout inside a sequence's len * C floats is the backend's, so the whole block is copied
     * (positions from npos on are written before they are read). */
    (void)npos;
    size_t C = (size_t)m->cfg.n_embd, layer_cache = (size_t)kv->batch * kv->len * C;
    size_t block = (size_t)kv->len * C;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int which = 0; which < 2; which++) {
            float *base = (which ? kv->v : kv->k) + l * layer_cache;
            m->ops->copy(base + (size_t)to * block, base + (size_t)from * block,
                         block * sizeof(float));
        }
}
