#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gpt2_infer.h"
#include "model/layout.h"
#include "model/memory_fit.h"
#include "util/error.h"

/* The one layout of the cache's memory (see plan_layout in gpt2.c). */
static void kv_layout(gpt2_kv *kv, const gpt2_model *m, int batch, int len, int max_rows,
                      int score_rows, layout *l) {
    const gpt2_config *c = &m->cfg;
    size_t C = (size_t)c->n_embd, R = (size_t)max_rows;
    size_t cache = (size_t)c->n_layer * batch * len * C;
    kv->k = layout_acts(l, cache), kv->v = layout_acts(l, cache);
    kv->x = layout_acts(l, R * C), kv->normed = layout_acts(l, R * C);
    kv->qkv = layout_acts(l, 3 * R * C), kv->atty = layout_acts(l, R * C);
    kv->fch = layout_acts(l, 4 * R * C), kv->proj = layout_acts(l, R * C);
    kv->last = layout_acts(l, (size_t)batch * C);
    kv->mean = layout_floats(l, R), kv->rstd = layout_floats(l, R);
    kv->logits_dev = layout_floats(l, (size_t)batch * GPT2_VOCAB_PADDED);
    kv->scores_dev = score_rows ? layout_floats(l, (size_t)score_rows * GPT2_VOCAB_PADDED) : NULL;
    /* the ops' scratch for the forward over the cache, and for the LM head over score_rows */
    size_t (*scratch)(int, int, int, int, int, int) = m->be->ops->scratch_floats;
    int bf16 = m->params_bf16 != NULL;
    size_t fwd = scratch(batch, len, c->n_embd, c->n_head, GPT2_VOCAB_PADDED, bf16);
    size_t head = score_rows ? scratch(score_rows, 1, c->n_embd, c->n_head, GPT2_VOCAB_PADDED, bf16) : 0;
    kv->scratch = layout_floats(l, fwd > head ? fwd : head);
}

int gpt2_kv_plan(gpt2_kv *kv, const gpt2_model *m, int batch, int len, int max_rows, int score_rows,
                 gpt2c_error *err) {
    memset(kv, 0, sizeof *kv);
    const gpt2_config *c = &m->cfg;
    if (len > c->max_seq_len)
        return err_set(err, "cache of %d positions is longer than the model's %d", len, c->max_seq_len);
    if (score_rows > max_rows) score_rows = max_rows;
    const gpt2_backend *be = m->be;
    gpt2_kv counting;
    layout l = {NULL, 0, be->act_bytes};
    kv_layout(&counting, m, batch, len, max_rows, score_rows, &l);
    size_t total = l.bytes;
    char what[80];
    snprintf(what, sizeof what, "a KV cache for %d sample(s) of %d positions", batch, len);
    if (memory_fit(be, (double)total, 0, what, "", "ask for fewer samples or tokens", err) != 0)
        return -1;
    kv->be = be;
    kv->mem = be->ops->alloc(total);
    /* a call has at most one span per row */
    kv->group = calloc((size_t)max_rows, sizeof *kv->group);
    kv->first_row = calloc((size_t)max_rows, sizeof *kv->first_row);
    kv->group_token = calloc((size_t)max_rows, sizeof *kv->group_token);
    size_t logits = (size_t)batch * GPT2_VOCAB_PADDED, scores = (size_t)score_rows * GPT2_VOCAB_PADDED;
    int host_ok = kv->group && kv->first_row && kv->group_token;
    if (!be->host_memory) { /* the logits come back to the host; the tokens go to the device */
        kv->logits_host = calloc(logits, sizeof(float));
        kv->scores_host = score_rows ? calloc(scores, sizeof(float)) : NULL;
        kv->tokens_dev = be->ops->alloc((size_t)max_rows * sizeof(int32_t));
        host_ok = host_ok && kv->logits_host && kv->tokens_dev && (kv->scores_host || !score_rows);
    }
    if (!kv->mem || !host_ok) {
        gpt2_kv_free(kv);
        return err_set(err, "out of memory for a KV cache of %d x %d positions (%.0f MB)", batch,
                       len, total / 1e6);
    }
    kv->batch = batch, kv->len = len, kv->max_rows = max_rows, kv->score_rows = score_rows;
    l = (layout){kv->mem, 0, be->act_bytes};
    kv_layout(kv, m, batch, len, max_rows, score_rows, &l);
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
    free(kv->group);
    free(kv->first_row);
    free(kv->group_token);
    memset(kv, 0, sizeof *kv);
}

int gpt2_short_chunk(const gpt2_model *m) {
    int k = m->be->rows_chunk[m->params_bf16 ? GPT2_BF16 : GPT2_FP32];
    return k < GPT2_SHORT_CHUNK ? k : GPT2_SHORT_CHUNK;
}

/* The classes of gpt2_infer, in the order they run. */
enum { ONE_TOKEN, SHORT, LONG };

static int class_of(const gpt2_model *m, int n) {
    return n == 1 ? ONE_TOKEN : n <= gpt2_short_chunk(m) ? SHORT : LONG;
}

/* The forward of kv->group[0..ngroup) (one class; their tokens from kv->group_token[g] on),
 * whose rows start at row `first` of x: the embedding at each one's positions, then every
 * block. */
static void group_forward(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int ngroup,
                          size_t first, int rowwise) {
    const gpt2_backend *be = m->be;
    size_t C = (size_t)m->cfg.n_embd, row = first;
    gpt2_act *x = act_at(be, kv->x, first * C);
    for (int g = 0; g < ngroup; g++) {
        const gpt2_span *sp = &kv->group[g];
        be->ops->embed_forward(act_at(be, kv->x, row * C), tokens + kv->group_token[g], m->w.wte,
                               m->w.wpe + (size_t)sp->pos * C, 1, sp->n, (int)C);
        row += (size_t)sp->n;
    }
    /* one buffer is the block's input and both residual outputs; the rest is shared work */
    gpt2_layer_acts a = {.ln1 = kv->normed, .ln1_mean = kv->mean, .ln1_rstd = kv->rstd,
                         .qkv = kv->qkv, .atty = kv->atty, .res2 = x, .ln2 = kv->normed,
                         .ln2_mean = kv->mean, .ln2_rstd = kv->rstd, .fch = kv->fch,
                         .fch_gelu = kv->fch, .res3 = x};
    gpt2_block_pass pass = {.N = (int)(row - first), .rowwise = rowwise, .spans = kv->group,
                            .nspans = ngroup, .len = kv->len, .proj = kv->proj,
                            .scratch = kv->scratch};
    size_t layer_cache = (size_t)kv->batch * kv->len * C;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        pass.kcache = act_at(be, kv->k, l * layer_cache);
        pass.vcache = act_at(be, kv->v, l * layer_cache);
        gpt2_block_forward(m, l, x, &a, &pass);
    }
}

/* The LM head over n rows after the final LayerNorm, into logits (the backend's memory). */
static void lm_head(const gpt2_model *m, gpt2_kv *kv, const gpt2_act *rows, int n, float *logits) {
    const gpt2_ops *op = m->be->ops;
    int C = m->cfg.n_embd;
    op->layernorm_forward(kv->normed, kv->mean, kv->rstd, rows, m->w.lnf_w, m->w.lnf_b, n, C);
    op->logits_forward(logits, kv->normed, m->w.wte, gpt2_bf16_copy(m, m->w.wte), n, C,
                       GPT2_VOCAB_PADDED, kv->scratch);
}

void gpt2_infer(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, const gpt2_span *spans,
                int nspans) {
    const gpt2_backend *be = m->be;
    const gpt2_ops *op = be->ops;
    size_t C = (size_t)m->cfg.n_embd, rows = gpt2_spans_rows(spans, nspans);
    if (nspans <= 0) return;
    if (!be->host_memory) {
        op->upload(kv->tokens_dev, tokens, rows * sizeof *tokens);
        tokens = kv->tokens_dev;
    }
    /* each class's spans together (the long ones each alone), their rows one after another in
     * x: class by class, in span order within a class */
    size_t next_row = 0;
    for (int cls = ONE_TOKEN; cls <= LONG; cls++) {
        int ngroup = 0;
        size_t first = next_row, token = 0;
        for (int s = 0; s < nspans; token += (size_t)spans[s++].n) {
            if (class_of(m, spans[s].n) != cls) continue;
            kv->first_row[s] = (int)next_row;
            kv->group[ngroup] = spans[s], kv->group_token[ngroup++] = (int)token;
            next_row += (size_t)spans[s].n;
            if (cls == LONG) { /* alone */
                group_forward(m, kv, tokens, 1, first, 0);
                ngroup = 0, first = next_row;
            }
        }
        if (ngroup) group_forward(m, kv, tokens, ngroup, first, cls == SHORT);
    }
    /* each span's last row to the LM head, in span order, from the first span's sequence on */
    for (int s = 0; s < nspans; s++)
        op->copy(act_at(be, kv->last, (size_t)s * C),
                 act_at(be, kv->x, ((size_t)kv->first_row[s] + spans[s].n - 1) * C),
                 C * be->act_bytes);
    size_t row = GPT2_VOCAB_PADDED, first = (size_t)spans[0].seq * row;
    lm_head(m, kv, kv->last, nspans, kv->logits_dev + first);
    if (!be->host_memory)
        op->download(kv->logits + first, kv->logits_dev + first, nspans * row * sizeof(float));
    /* then each row to its sequence's place, from the last (seqs ascend, so row r's place is at
     * least r rows on and no row is overwritten before it has moved) */
    float *rows_out = kv->logits + first;
    for (int r = nspans - 1; r >= 0; r--) {
        size_t to = (size_t)(spans[r].seq - spans[0].seq);
        if (to != (size_t)r)
            memmove(rows_out + to * row, rows_out + (size_t)r * row, row * sizeof(float));
    }
}

void gpt2_prefill(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int seq, int n, int pos) {
    for (int i = 0; i < n; i += GPT2_PREFILL_CHUNK) {
        gpt2_span chunk = {seq, pos + i, n - i < GPT2_PREFILL_CHUNK ? n - i : GPT2_PREFILL_CHUNK};
        gpt2_infer(m, kv, tokens + i, &chunk, 1);
    }
}

void gpt2_infer_scores(const gpt2_model *m, gpt2_kv *kv, int s, int first, int n) {
    const gpt2_backend *be = m->be;
    size_t C = (size_t)m->cfg.n_embd;
    /* x holds the last call's rows after the final block */
    lm_head(m, kv, act_at(be, kv->x, ((size_t)kv->first_row[s] + first) * C), n, kv->scores_dev);
    if (!be->host_memory)
        be->ops->download(kv->scores, kv->scores_dev, (size_t)n * GPT2_VOCAB_PADDED * sizeof(float));
}

void gpt2_kv_copy(gpt2_kv *kv, const gpt2_model *m, int from, int to, int npos) {
    /* The layout inside a sequence's len * C activations is the backend's, so the whole block is
     * copied (positions from npos on are written before they are read). */
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
