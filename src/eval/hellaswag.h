/* HellaSwag, scored as build-nanogpt does (its "completion style"): each example's four rows are
 * the context's tokens followed by those of " " + ending (tokenized apart, as build-nanogpt
 * does); a row's loss is the sum of the per-token cross-entropies over its ending's tokens (the
 * mask shifted by one: the first token of a row is never predicted); `pred` is the row with the
 * smallest sum, `pred_norm` the one with the smallest mean per ending token (acc_norm), the first
 * on ties, as torch's argmin.
 *
 * Two files are read: the original hellaswag_val.jsonl (objects with ctx, endings[4], label) and
 * llama.cpp's text form (6 lines a task: context, label, four endings), either of them plain or
 * bzip2-compressed. */
#ifndef GPT2C_HELLASWAG_H
#define GPT2C_HELLASWAG_H

#include "gpt2c.h"
#include "model/gpt2.h"

typedef struct hellaswag_example {
    int label;
    int nctx, nend[4];
    int32_t *tokens; /* the context's nctx tokens, then the four endings' */
} hellaswag_example;

typedef struct hellaswag_set {
    hellaswag_example *ex;
    int n;
    int longest; /* tokens of the longest row */
} hellaswag_set;

/* The first `limit` examples of FILE (all: limit 0). A row longer than max_row tokens (the
 * model's context) keeps its ending and the end of its context. */
int hellaswag_read(hellaswag_set *s, const char *path, const gpt2c_tokenizer *tok, int limit,
                   int max_row, gpt2c_error *err);
void hellaswag_free(hellaswag_set *s);

/* Examples per forward: rows are 4 of them each. */
#define HELLASWAG_BATCH 8

/* Score examples [first, first + count) of s on m, planned for inference with B = 4 *
 * HELLASWAG_BATCH rows of T >= s->longest (hellaswag_plan: the plan checked against the
 * backend's free memory, as every plan is, memory_fit_plan). pred and pred_norm get each
 * example's choice (count entries). Each forward takes examples of about the same length
 * (sorted), its rows as long as its longest; the LM head runs only at the positions that predict
 * an ending's tokens (gpt2_forward_rows). 0, or -1 out of memory. */
int hellaswag_plan(gpt2_model *m, const hellaswag_set *s, gpt2c_error *err);
int hellaswag_score(gpt2_model *m, const hellaswag_set *s, int first, int count, int *pred,
                    int *pred_norm, gpt2c_error *err);

#endif
