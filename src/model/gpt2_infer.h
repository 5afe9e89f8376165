/* GPT-2 inference with a KV cache: each call runs only the new tokens, whose keys and values
 * join the cache, so a generated token costs the same however long the text before it is (up
 * to the context). The same ops as training (ops/ops.h), in the same order. */
#ifndef GPT2C_GPT2_INFER_H
#define GPT2C_GPT2_INFER_H

#include "model/gpt2.h"

typedef struct gpt2_kv {
    int batch, len;   /* sequences, and positions per sequence (at most the model's) */
    int max_rows;     /* new tokens per call, all sequences together */
    gpt2_act *k, *v;  /* [n_layer][batch][len * C, laid out by the backend] */
    gpt2_act *x, *ln, *qkv, *att, *fch, *last; /* work: max_rows rows (last: batch rows) */
    float *mean, *rstd;
    float *logits;    /* host, [batch][GPT2_VOCAB_PADDED]: the last new token's of each sequence */
    int score_rows;   /* rows of gpt2_infer_logits_rows per call (0: not planned) */
    float *scores;    /* host, [score_rows][GPT2_VOCAB_PADDED]: its logits */
    float *scores_dev, *scores_host; /* as logits_dev and logits_host */
    float *logits_dev; /* where the ops write them (the same array on a host-memory backend) */
    float *scratch;
    void *mem;        /* the backend's memory holding all of the above but logits (on a device) */
    float *logits_host;
    int32_t *tokens_dev;
    const gpt2_backend *be;
    size_t bytes;
} gpt2_kv;

/* batch sequences of len positions, max_rows new tokens per call; score_rows > 0 also plans
 * gpt2_infer_logits_rows for that many rows per call (at most max_rows). */
int gpt2_kv_plan(gpt2_kv *kv, const gpt2_model *m, int batch, int len, int max_rows, int score_rows,
                 gpt2c_error *err);
void gpt2_kv_free(gpt2_kv *kv);

/* Run tokens[s][0..n) of sequences seq0 .. seq0+nseq-1 at positions pos..pos+n-1 (their cache
 * must hold positions 0..pos-1). nseq*n <= max_rows, pos+n <= len. Leaves the logits of each
 * sequence's last new token in kv->logits[seq0 + s]. */
void gpt2_infer(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int seq0, int nseq,
                int n, int pos);
/* Decoding for a batch of sequences each at its own position (a server's requests): row r is
 * token tokens[r] of sequence seqs[r] at position pos[r], whose cache must hold positions
 * 0..pos[r]-1 (pos[r] < len; seqs ascending; nrows <= batch and <= GPT2_BATCH_ROWS). The
 * products run once over all rows, attention row by row over each row's own cache (it is
 * gpt2_infer_spans with a span of one token per row, but through matmul_forward). Leaves row
 * r's logits in kv->logits[seqs[r]]; those of sequences outside the batch are not kept. A row
 * gets the same bits as gpt2_infer gives it alone (the CPU's few-rows products compute each row
 * alike, whatever the rows beside it). */
void gpt2_infer_rows(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, const int *seqs,
                     const int *pos, int nrows);
/* Rows a decoding batch may have for its rows to be computed as each alone would be. */
#define GPT2_BATCH_ROWS 8
/* Prompt chunks of several sequences in one forward (a server's new requests): span s is
 * tokens[first .. first+n) of sequence seq at positions pos..pos+n-1, the spans' tokens one after
 * another, their cache holding positions 0..pos-1 (spans ascending by seq, nspans <=
 * GPT2_BATCH_ROWS, rows in all <= max_rows). The products run once over all rows, through
 * matmul_forward_rows, attention span by span; each span's last row leaves its logits in
 * kv->logits[seq]. Every span gets the bits it gets alone. */
typedef struct gpt2_span {
    int seq, pos, n;
} gpt2_span;
void gpt2_infer_spans(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens,
                      const gpt2_span *spans, int nspans);
/* A prompt chunk of at most gpt2_short_chunk(m) tokens runs through gpt2_infer_spans (alone in
 * `sample`, with others in a server: the same bits), a longer one through gpt2_infer (the GEMM
 * library, faster from there on). The backend says how long, per precision (rows_chunk in
 * ops/backend.h), up to GPT2_SHORT_CHUNK; 0: every chunk through gpt2_infer. */
#define GPT2_SHORT_CHUNK 32
int gpt2_short_chunk(const gpt2_model *m);
/* A prompt runs through the model in chunks of this many tokens (gpt2_prefill), so that `sample`
 * and a server that interleaves prompts with other requests' decoding compute the same. 512, as
 * llama.cpp's micro-batch: an 834-token prompt of d12 in bf16 takes 236 ms in 512-token chunks,
 * as in one piece, against 307 ms in chunks of 128 (fp32: 633, 580, 775 ms). */
#define GPT2_PREFILL_CHUNK 512
/* Run tokens[0..n) of sequence seq at positions pos.. in chunks of GPT2_PREFILL_CHUNK (each
 * through gpt2_infer_spans or gpt2_infer by its length, gpt2_short_chunk). */
void gpt2_prefill(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int seq, int n, int pos);

/* Scoring a prompt: the LM head over rows [row0, row0+n) of the new tokens of the last
 * gpt2_infer or gpt2_infer_spans call (in the order that call took them), n <= kv->score_rows,
 * into kv->scores (host). Each prompt position's logits, a chunk of rows at a time: the
 * T x V matrix of a whole prompt never exists. */
void gpt2_infer_logits_rows(const gpt2_model *m, gpt2_kv *kv, int row0, int n);

/* Make sequence `to`'s cache hold positions 0..npos-1 of sequence `from`'s (a shared prompt). */
void gpt2_kv_copy(gpt2_kv *kv, const gpt2_model *m, int from, int to, int npos);

#endif
