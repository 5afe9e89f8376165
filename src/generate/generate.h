/* Generating continuations of a prompt, a batch of samples at once, with a KV cache planned
 * once for the batch and the length. Used by `gpt2c sample` and by training's --sample-every. */
#ifndef GPT2C_GENERATE_H
#define GPT2C_GENERATE_H

#include "generate/sampler.h"
#include "model/gpt2_infer.h"

typedef struct generator {
    gpt2c_sample_opts o;
    int max_prompt;       /* prompt tokens the plan allows (longer prompts keep their end) */
    gpt2_kv kv;
    sampler smp;
    int32_t *history;     /* [num_samples][max_prompt + max_tokens]: every token, for sliding */
    int32_t *step_tokens; /* [num_samples] */
    gpt2_span *rows;      /* [num_samples]: a decoding step, one token of each sample */
    unsigned char *done;
    int steps_run;        /* the last run's draws per sample */
} generator;

/* Plan the cache for prompts of up to max_prompt tokens (clamped to the context). */
int generator_init(generator *g, const gpt2_model *m, const gpt2c_sample_opts *o, int max_prompt,
                   gpt2c_error *err);
void generator_free(generator *g);
/* Generate from prompt[0..n) (n == 0: from <|endoftext|>, as GPT-2 does). The samples draw from
 * one RNG seeded with o->seed, in sample order at each step: the same seed and flags give the
 * same samples. stats: prompt tokens, tokens generated, milliseconds. */
int generator_run(generator *g, const gpt2_model *m, const uint32_t *prompt, size_t n,
                  const gpt2c_sample_callbacks *cb, gpt2c_sample_stats *stats, gpt2c_error *err);

#endif
