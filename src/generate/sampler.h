/* Choosing the next token from the logits: greedy, or temperature + top-k + top-p (nucleus)
 * sampling, always over the 50257 real tokens only. */
#ifndef GPT2C_SAMPLER_H
#define GPT2C_SAMPLER_H

#include <stdint.h>

#include "gpt2c.h"
#include "util/rng.h"

typedef struct sampler {
    float temperature; /* 0: greedy (argmax, lowest id on ties) */
    int top_k;         /* >= 1; at most the vocabulary */
    float top_p;       /* (0, 1]: 1 keeps every top-k candidate */
    /* work space for the candidates, sized once */
    int32_t *ids;
    float *vals;
    int cap;
} sampler;

int sampler_init(sampler *s, float temperature, int top_k, float top_p, int vocab, gpt2c_error *err);
void sampler_free(sampler *s);
/* The next token from logits[0..vocab), drawing from r (one uniform number per call unless
 * greedy). Deterministic: candidates are ordered by logit, then id (when every token is a
 * candidate and there is no nucleus, by id: the order does not change what is drawn, and it
 * needs no sort). */
int32_t sampler_next(sampler *s, const float *logits, int vocab, rng *r);

#endif
