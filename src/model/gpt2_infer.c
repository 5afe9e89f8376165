#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gpt2_infer.h"
#include "model/memory_fit.h"
#include "util/error.h"

/* The next `bytes` of the cache's memory from base (NULL: only counting), 256-byte aligned. */
static void *take(char *base, size_t *off, size_t bytes) {
    void *p = base ? base + *off : NULL;
    *off += (bytes + 255) / 256 * 256;
    return p;
}

/* The one layout of the cache's memory (see plan_layout in gpt2.c); returns the bytes. */
static size_t kv_layout(gpt2_kv *kv, const gpt2_model *m, int batch, int len, int max_rows,
                        int score_rows, char *base) {
    const gpt2_config *c = &m->cfg;
    size_t C = (size_t)c->n_embd, R = (size_t)max_rows, ab = m->be->act_bytes, off = 0;
    size_t cache = (size_t)c->n_layer * batch * len * C;
#define ACT(n) ((gpt2_act *)take(base, &off, (n) * ab))
#define FLT(n) ((float *)take(base, &off, (n) * sizeof(float)))
    kv->k = ACT(cache), kv->v = ACT(cache);
    kv->x = ACT(R * C), kv->ln = ACT(R * C), kv->qkv = ACT(3 * R * C), kv->att = ACT(R * C);
    kv->fch = ACT(4 * R * C), kv->last = ACT((size_t)batch * C);
    kv->mean = FLT(R), kv->rstd = FLT(R);
    kv->logits_dev = FLT((size_t)batch * GPT2_VOCAB_PADDED);
    kv->scores_dev = score_rows ? FLT((size_t)score_rows * GPT2_VOCAB_PADDED) : NULL;
    /* the ops' scratch for the forward over the cache, and for the LM head over score_rows */
    size_t (*scratch)(int, int, int, int, int, int) = m->be->ops->scratch_floats;
    int bf16 = m->params_bf16 != NULL;
    size_t fwd = scratch(batch, len, c->n_embd, c->n_head, GPT2_VOCAB_PADDED, bf16);
    size_t head = score_rows ? scratch(score_rows, 1, c->n_embd, c->n_head, GPT2_VOCAB_PADDED, bf16) : 0;
    kv->scratch = FLT(fwd > head ? fwd : head);
#undef ACT
#undef FLT
    return off;
}

int gpt2_kv_plan(gpt2_kv *kv, const gpt2_model *m, int batch, int len, int max_rows, int score_rows,
                 gpt2c_error *err) {
    memset(kv, 0, sizeof *kv);
    const gpt2_config *c = &m->cfg;
    if (len > c->max_seq_len)
        return err_set(err, "cache of %d positions is longer than the model's %d", len, c->max_seq_len);
    if (score_rows > max_rows) score_rows = max_rows;
    const gpt2_backend *be = m->be;
    size_t total = kv_layout(kv, m, batch, len, max_rows, score_rows, NULL);
    char what[80];
    snprintf(what, sizeof what, "a KV cache for %d sample(s) of %d positions", batch, len);
    if (memory_fit(be, (double)total, 0, what, "", "ask for fewer samples or tokens", err) != 0)
        return -1;
    kv->be = be;
    kv->mem = be->ops->alloc(total);
    size_t logits = (size_t)batch * GPT2_VOCAB_PADDED, scores = (size_t)score_rows * GPT2_VOCAB_PADDED;
    int host_ok = 1;
    if (!be->host_memory) { /* the logits come back to the host; the tokens go to the device */
        kv->logits_host = calloc(logits, sizeof(float));
        kv->scores_host = score_rows ? calloc(scores, sizeof(float)) : NULL;
        kv->tokens_dev = be->ops->alloc((size_t)max_rows * sizeof(int32_t));
        host_ok = kv->logits_host && kv->tokens_dev && (kv->scores_host || !score_rows);
    }
    if (!kv->mem || !host_ok) {
        gpt2_kv_free(kv);
        return err_set(err, "out of memory for a KV cache of %d x %d positions (%.0f MB)", batch,
                       len, total / 1e6);
    }
    kv->batch = batch, kv->len = len, kv->max_rows = max_rows, kv->score_rows = score_rows;
    kv->bytes = total;
    kv_layout(kv, m, batch, len, max_rows, score_rows, kv->mem);
    kv->logits = be->host_memory ? kv->logits_dev : kv->logits_host;
    kv->scores = be->host_memory ? kv->scores_dev : kv->scores_host;
    return 0;
}

void gpt2_kv_free(gpt2_kv *kv) {
    if (kv->be) {
        kv->be->ops->free(kv->mem);
        kv->be->ops->free(kv->tokens_dev);
    }
    free(kv->logits_host);
    free(kv->scores_host);
    memset(kv, 0, sizeof *kv);
}

/* The blocks of the forward over the N rows in kv->x: attention(i, kc, vc) runs the attention of
 * layer l for its rows with that layer's caches; the rest is the same for every caller. */
typedef void attend_fn(const gpt2_model *m, gpt2_kv *kv, int l, void *ctx);

static void blocks_forward(const gpt2_model *m, gpt2_kv *kv, int N, attend_fn *attend, void *ctx,
                           int rows_alone) {
    const gpt2_ops *op = m->be->ops;
    /* rows_alone: every row's products as alone (gpt2_infer_spans) */
    void (*matmul)(gpt2_act *, const gpt2_act *, const float *, const gpt2_bf16 *, const float *,
                   int, int, int, float *) = rows_alone ? op->matmul_forward_rows : op->matmul_forward;
#define BF16(w) gpt2_bf16_copy(m, w)
    int C = m->cfg.n_embd;
    size_t NC = (size_t)N * C;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        float **w = m->w.layers[l].t;
        op->layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, w[P_LN1_W], w[P_LN1_B], N, C);
        matmul(kv->qkv, kv->ln, w[P_QKV_W], BF16(w[P_QKV_W]), w[P_QKV_B], N, C, 3 * C,
                           kv->scratch);
        attend(m, kv, l, ctx);
        matmul(kv->ln, kv->att, w[P_ATTN_PROJ_W], BF16(w[P_ATTN_PROJ_W]),
                           w[P_ATTN_PROJ_B], N, C, C, kv->scratch);
        op->residual_forward(kv->x, kv->x, kv->ln, NC);
        op->layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, w[P_LN2_W], w[P_LN2_B], N, C);
        matmul(kv->fch, kv->ln, w[P_FC_W], BF16(w[P_FC_W]), w[P_FC_B], N, C, 4 * C,
                           kv->scratch);
        op->gelu_forward(kv->fch, kv->fch, 4 * NC);
        matmul(kv->ln, kv->fch, w[P_MLP_PROJ_W], BF16(w[P_MLP_PROJ_W]),
                           w[P_MLP_PROJ_B], N, 4 * C, C, kv->scratch);
        op->residual_forward(kv->x, kv->x, kv->ln, NC);
    }
#undef BF16
}

/* Sequence seq's cache of layer l. */
static gpt2_act *cache_of(const gpt2_model *m, const gpt2_kv *kv, gpt2_act *base, int l, int seq) {
    size_t C = (size_t)m->cfg.n_embd, layer = (size_t)kv->batch * kv->len * C;
    return act_at(m->be, base, l * layer + (size_t)seq * kv->len * C);
}

/* The LM head over nseq rows of kv->last, into the logits of sequences seq0.. (first) or, with
 * seqs, of seqs[r]; brought to the host on a device. */
static void logits_forward(const gpt2_model *m, gpt2_kv *kv, int nseq, int seq0, const int *seqs) {
    const gpt2_backend *be = m->be;
    const gpt2_ops *op = be->ops;
    int C = m->cfg.n_embd;
    op->layernorm_forward(kv->att, kv->mean, kv->rstd, kv->last, m->w.lnf_w, m->w.lnf_b, nseq, C);
    float *out = kv->logits_dev + (seqs ? 0 : (size_t)seq0 * GPT2_VOCAB_PADDED);
    op->logits_forward(out, kv->att, m->w.wte, gpt2_bf16_copy(m, m->w.wte), nseq, C,
                       GPT2_VOCAB_PADDED, kv->scratch);
    size_t row = GPT2_VOCAB_PADDED * sizeof(float);
    if (!seqs) {
        if (!be->host_memory)
            op->download(kv->logits + (size_t)seq0 * GPT2_VOCAB_PADDED, out, nseq * row);
        return;
    }
    /* rows came out in batch order: each to its sequence's place, from the last (seqs ascend,
     * so row r's place is at least r and no row is overwritten before it has moved) */
    float *host = be->host_memory ? kv->logits_dev : kv->logits_host;
    if (!be->host_memory) op->download(host, out, nseq * row);
    for (int r = nseq - 1; r >= 0; r--)
        if (seqs[r] != r)
            memmove(host + (size_t)seqs[r] * GPT2_VOCAB_PADDED, host + (size_t)r * GPT2_VOCAB_PADDED,
                    row);
}

typedef struct same_pos {
    int seq0, nseq, n, pos;
} same_pos;

static void attend_same_pos(const gpt2_model *m, gpt2_kv *kv, int l, void *ctx) {
    const same_pos *c = ctx;
    m->be->ops->attention_forward_kv(kv->att, kv->qkv, cache_of(m, kv, kv->k, l, c->seq0),
                                     cache_of(m, kv, kv->v, l, c->seq0), c->nseq, c->n, c->pos,
                                     kv->len, m->cfg.n_embd, m->cfg.n_head, kv->scratch);
}

void gpt2_infer(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int seq0, int nseq,
                int n, int pos) {
    const gpt2_backend *be = m->be;
    const gpt2_ops *op = be->ops;
    int C = m->cfg.n_embd, N = nseq * n;
    if (!be->host_memory) {
        op->upload(kv->tokens_dev, tokens, (size_t)N * sizeof *tokens);
        tokens = kv->tokens_dev;
    }
    /* positions start at pos: the embedding reads wpe from row pos on */
    op->embed_forward(kv->x, tokens, m->w.wte, m->w.wpe + (size_t)pos * C, nseq, n, C);
    same_pos ctx = {seq0, nseq, n, pos};
    blocks_forward(m, kv, N, attend_same_pos, &ctx, 0);
    /* only each sequence's last position needs logits */
    for (int s = 0; s < nseq; s++)
        op->copy(act_at(be, kv->last, (size_t)s * C),
                 act_at(be, kv->x, ((size_t)s * n + n - 1) * C), C * be->act_bytes);
    logits_forward(m, kv, nseq, seq0, NULL);
}

typedef struct spans_ctx {
    const gpt2_span *spans;
    int nspans;
} spans_ctx;

static void attend_spans(const gpt2_model *m, gpt2_kv *kv, int l, void *ctx) {
    const spans_ctx *c = ctx;
    const gpt2_backend *be = m->be;
    size_t C = (size_t)m->cfg.n_embd, row = 0;
    for (int s = 0; s < c->nspans; s++) {
        const gpt2_span *sp = &c->spans[s];
        be->ops->attention_forward_kv(act_at(be, kv->att, row * C), act_at(be, kv->qkv, 3 * row * C),
                                      cache_of(m, kv, kv->k, l, sp->seq),
                                      cache_of(m, kv, kv->v, l, sp->seq), 1, sp->n, sp->pos,
                                      kv->len, (int)C, m->cfg.n_head, kv->scratch);
        row += (size_t)sp->n;
    }
}

/* The forward of spans of several sequences, each at its own position (one row each for
 * decoding); rows_alone as blocks_forward's. */
static void spans_forward(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens,
                          const gpt2_span *spans, int nspans, int rows_alone) {
    const gpt2_backend *be = m->be;
    const gpt2_ops *op = be->ops;
    size_t C = (size_t)m->cfg.n_embd, N = 0;
    int seqs[GPT2_BATCH_ROWS];
    for (int s = 0; s < nspans; s++) N += (size_t)spans[s].n;
    if (!be->host_memory) {
        op->upload(kv->tokens_dev, tokens, N * sizeof *tokens);
        tokens = kv->tokens_dev;
    }
    size_t row = 0;
    for (int s = 0; s < nspans; s++) { /* each span from its own position in wpe */
        const gpt2_span *sp = &spans[s];
        op->embed_forward(act_at(be, kv->x, row * C), tokens + row, m->w.wte,
                          m->w.wpe + (size_t)sp->pos * C, 1, sp->n, (int)C);
        row += (size_t)sp->n;
        seqs[s] = sp->seq;
    }
    spans_ctx ctx = {spans, nspans};
    blocks_forward(m, kv, (int)N, attend_spans, &ctx, rows_alone);
    row = 0;
    for (int s = 0; s < nspans; s++) { /* each span's last row to the LM head */
        row += (size_t)spans[s].n;
        op->copy(act_at(be, kv->last, (size_t)s * C), act_at(be, kv->x, (row - 1) * C),
                 C * be->act_bytes);
    }
    logits_forward(m, kv, nspans, 0, seqs);
}

void gpt2_infer_spans(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens,
                      const gpt2_span *spans, int nspans) {
    spans_forward(m, kv, tokens, spans, nspans, 1);
}

/* (decoding's rows go through matmul_forward: its few-rows kernels compute each row alike up to
 * GPT2_BATCH_ROWS rows, and read the weights once for all of them) */
void gpt2_infer_rows(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, const int *seqs,
                     const int *pos, int nrows) {
    gpt2_span spans[GPT2_BATCH_ROWS];
    for (int r = 0; r < nrows; r++) spans[r] = (gpt2_span){seqs[r], pos[r], 1};
    spans_forward(m, kv, tokens, spans, nrows, 0);
}

int gpt2_short_chunk(const gpt2_model *m) {
    int k = m->be->rows_chunk[m->params_bf16 ? GPT2_BF16 : GPT2_FP32];
    return k < GPT2_SHORT_CHUNK ? k : GPT2_SHORT_CHUNK;
}

void gpt2_prefill(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int seq, int n, int pos) {
    int short_chunk = gpt2_short_chunk(m);
    for (int i = 0; i < n; i += GPT2_PREFILL_CHUNK) {
        int k = n - i < GPT2_PREFILL_CHUNK ? n - i : GPT2_PREFILL_CHUNK;
        if (k <= short_chunk) {
            gpt2_span span = {seq, pos + i, k};
            gpt2_infer_spans(m, kv, tokens + i, &span, 1);
        } else {
            gpt2_infer(m, kv, tokens + i, seq, 1, k, pos + i);
        }
    }
}

void gpt2_infer_logits_rows(const gpt2_model *m, gpt2_kv *kv, int row0, int n) {
    const gpt2_backend *be = m->be;
    const gpt2_ops *op = be->ops;
    int C = m->cfg.n_embd;
    /* kv->x holds the last call's rows after the final block: ln_f, then the LM head */
    op->layernorm_forward(kv->att, kv->mean, kv->rstd, act_at(be, kv->x, (size_t)row0 * C),
                          m->w.lnf_w, m->w.lnf_b, n, C);
    op->logits_forward(kv->scores_dev, kv->att, m->w.wte, gpt2_bf16_copy(m, m->w.wte), n, C,
                       GPT2_VOCAB_PADDED, kv->scratch);
    if (!be->host_memory)
        op->download(kv->scores, kv->scores_dev, (size_t)n * GPT2_VOCAB_PADDED * sizeof(float));
}

void gpt2_kv_copy(gpt2_kv *kv, const gpt2_model *m, int from, int to, int npos) {
    /* The layout inside a sequence's len * C floats is the backend's, so the whole block is copied
     * (positions from npos on are written before they are read). */
    (void)npos;
    size_t C = (size_t)m->cfg.n_embd, layer_cache = (size_t)kv->batch * kv->len * C;
    size_t block = (size_t)kv->len * C;
    const gpt2_backend *be = m->be;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int which = 0; which < 2; which++) {
            gpt2_act *layer = act_at(be, which ? kv->v : kv->k, l * layer_cache);
            be->ops->copy(act_at(be, layer, (size_t)to * block),
                          act_at(be, layer, (size_t)from * block), block * be->act_bytes);
        }
}
