/* Loading the vocabulary built into the library into the lookup tables BPE needs. */
#include <stdlib.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/vocab_data.h"

static uint32_t pow2_at_least(uint32_t n) {
    uint32_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

static void pair_insert(gpt2c_tokenizer *t, uint32_t a, uint32_t b, uint32_t id) {
    uint32_t h = tok_hash_pair(a, b) & t->pair_mask;
    while (t->pairs[h].left != NO_TOKEN) h = (h + 1) & t->pair_mask;
    t->pairs[h] = (struct pair_slot){a, b, id};
}

gpt2c_tokenizer *gpt2c_tokenizer_new(gpt2c_error *err) {
    gpt2c_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { err_set(err, "out of memory loading the tokenizer"); return NULL; }
    t->blob = gpt2c_vocab_blob;
    t->offsets = gpt2c_vocab_offsets;

    /* every mergeable token, bytes -> id, at most half full */
    t->tok_mask = pow2_at_least(2 * GPT2C_EOT) - 1;
    t->tok_slots = calloc((size_t)t->tok_mask + 1, sizeof *t->tok_slots);
    if (!t->tok_slots) goto oom;
    for (uint32_t id = 0; id < GPT2C_EOT; id++) {
        unsigned off = t->offsets[id], n = t->offsets[id + 1] - off;
        uint32_t h = (uint32_t)tok_hash_bytes(t->blob + off, n) & t->tok_mask;
        while (t->tok_slots[h]) h = (h + 1) & t->tok_mask;
        t->tok_slots[h] = id + 1;
        if (n == 1) t->byte_token[t->blob[off]] = id;
    }
    t->pair_mask = pow2_at_least(2 * gpt2c_vocab_npairs) - 1;
    t->pairs = malloc(((size_t)t->pair_mask + 1) * sizeof *t->pairs);
    if (!t->pairs) goto oom;
    memset(t->pairs, 0xFF, ((size_t)t->pair_mask + 1) * sizeof *t->pairs); /* all NO_TOKEN */
    for (unsigned i = 0; i < gpt2c_vocab_npairs; i++)
        pair_insert(t, gpt2c_vocab_pairs[i][0], gpt2c_vocab_pairs[i][1], gpt2c_vocab_pairs[i][2]);
    return t;
oom:
    gpt2c_tokenizer_free(t);
    err_set(err, "out of memory loading the tokenizer");
    return NULL;
}

void gpt2c_tokenizer_free(gpt2c_tokenizer *t) {
    if (!t) return;
    free(t->tok_slots);
    free(t->pairs);
    free(t);
}

const unsigned char *gpt2c_token_bytes(const gpt2c_tokenizer *t, uint32_t id, size_t *len) {
    if (id >= GPT2C_VOCAB_SIZE) return NULL;
    *len = t->offsets[id + 1] - t->offsets[id];
    return t->blob + t->offsets[id];
}
