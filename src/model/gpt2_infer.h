/* GPT-2 inference with a KV cache: each call runs only the new tokens, whose keys and values
 * join the cache, so a generated token costs the same however long the text before it is (up
 * to the context). The same block as training (gpt2_block_forward), the same ops. */
#ifndef GPT2C_GPT2_INFER_H
#define GPT2C_GPT2_INFER_H

#include "model/gpt2.h"

typedef struct gpt2_kv {
    int batch, len;   /* sequences, and positions per sequence (at most the model's) */
    int max_rows;     /* new tokens per call, all sequences together */
    gpt2_act *k, *v;  /* [n_layer][batch][len * C, laid out by the backend] */
    /* Work for max_rows rows: the residual stream, a LayerNorm's output, attention's input and
     * output, the MLP's hidden rows (GELU in place), a projection before it joins the stream. */
    gpt2_act *x, *normed, *qkv, *atty, *fch, *proj;
    gpt2_act *last;   /* each span's last row, for the LM head (batch rows) */
    float *mean, *rstd;
    float *logits;    /* host, [batch][GPT2_VOCAB_PADDED]: the last new token's of each sequence */
    int score_rows;   /* rows of gpt2_infer_scores per call (0: not planned) */
    float *scores;    /* host, [score_rows][GPT2_VOCAB_PADDED]: its logits */
    float *scratch;
    /* Where each span of the last call has its rows in x (its classes run apart), and the
     * class being run: its spans and where their tokens start. */
    int *first_row;
    gpt2_span *group;
    int *group_token;
    /* On a device: the backend's copies of the logits and scores, and of the tokens. */
    float *logits_dev, *scores_dev;
    int32_t *tokens_dev;
    void *mem;        /* the backend's allocation holding the buffers above */
    float *logits_host, *scores_host;
    const gpt2_backend *be;
} gpt2_kv;

/* batch sequences of len positions, max_rows new tokens per call; score_rows > 0 also plans
 * gpt2_infer_scores for that many rows per call (at most max_rows). */
int gpt2_kv_plan(gpt2_kv *kv, const gpt2_model *m, int batch, int len, int max_rows, int score_rows,
                 gpt2c_error *err);
void gpt2_kv_free(gpt2_kv *kv);

/* The one inference call: prompt chunks and decoded tokens of several sequences, each at its
 * own position. Span s (ops/ops.h) is tokens[first .. first+n) of sequence seq at positions
 * pos..pos+n-1, the spans' tokens one after another, their cache holding positions 0..pos-1;
 * spans ascend by seq (each sequence at most once), rows in all <= max_rows, pos+n <= len.
 * Each span's last row leaves its logits in kv->logits[seq]; those of the sequences between the
 * first and the last span's that have no span are not kept.
 *
 * Every span gets the bits it gets alone, whatever the spans beside it: the spans run by
 * class, each class's products through an op that computes its rows each alone (ops/ops.h's
 * Rows):
 * - one token (decoding): matmul_forward, the few-rows kernels, all such spans together (up to
 *   GPT2_FEW_ROWS of them for the promise to hold);
 * - up to gpt2_short_chunk(m) tokens: matmul_forward_rowwise, all such spans together;
 * - longer: matmul_forward (the GEMM library, fastest there), each span alone. */
void gpt2_infer(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, const gpt2_span *spans,
                int nspans);
/* Rows a server decodes together (and sequences it serves at once), every row as it is alone. */
#define GPT2_BATCH_ROWS GPT2_FEW_ROWS
/* The longest span that shares its products with others (the backend's rows_chunk for the
 * model's precision, up to GPT2_SHORT_CHUNK; 0: every prompt chunk runs alone). */
#define GPT2_SHORT_CHUNK 32
int gpt2_short_chunk(const gpt2_model *m);
/* A prompt runs through the model in chunks of this many tokens (gpt2_prefill), so that `sample`
 * and a server that interleaves prompts with other requests' decoding compute the same. 512, as
 * llama.cpp's micro-batch: an 834-token prompt of d12 in bf16 takes 236 ms in 512-token chunks,
 * as in one piece, against 307 ms in chunks of 128 (fp32: 633, 580, 775 ms). */
#define GPT2_PREFILL_CHUNK 512
/* Run tokens[0..n) of sequence seq at positions pos.. in chunks of GPT2_PREFILL_CHUNK, a
 * gpt2_infer call each. */
void gpt2_prefill(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int seq, int n, int pos);

/* Scoring a prompt: the LM head over rows [first, first+n) of span s of the last gpt2_infer
 * call, n <= kv->score_rows, into kv->scores (host). Each prompt position's logits, a chunk of
 * rows at a time: the T x V matrix of a whole prompt never exists. */
void gpt2_infer_scores(const gpt2_model *m, gpt2_kv *kv, int s, int first, int n);

/* Make sequence `to`'s cache hold positions 0..npos-1 of sequence `from`'s (a shared prompt). */
void gpt2_kv_copy(gpt2_kv *kv, const gpt2_model *m, int from, int to, int npos);

#endif
