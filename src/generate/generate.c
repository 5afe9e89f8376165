#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/generate.h"
#include "ops/profiled.h"
#include "util/error.h"
#include "util/time.h"

int generator_init(generator *g, const gpt2_model *m, const gpt2c_sample_opts *o, int max_prompt,
                   gpt2c_error *err) {
    memset(g, 0, sizeof *g);
    int ctx = m->cfg.max_seq_len;
    if (o->num_samples < 1 || o->num_samples > 1024) return err_set(err, "the number of samples must be 1..1024");
    if (o->max_tokens < 1 || o->max_tokens > 1000000) return err_set(err, "max tokens must be 1..1000000");
    g->o = *o;
    g->max_prompt = max_prompt < 1 ? 1 : max_prompt > ctx ? ctx : max_prompt;
    long want = (long)g->max_prompt + o->max_tokens;
    int len = want < ctx ? (int)want : ctx;
    /* rows of one forward: a prompt chunk, or one new token of every sample */
    int chunk = len < GPT2_PREFILL_CHUNK ? len : GPT2_PREFILL_CHUNK;
    int rows = chunk > o->num_samples ? chunk : o->num_samples;
    if (sampler_init(&g->smp, (float)o->temperature, o->top_k, (float)o->top_p, GPT2_VOCAB, err) != 0)
        return -1;
    if (gpt2_kv_plan(&g->kv, m, o->num_samples, len, rows, 0, err) != 0) {
        generator_free(g);
        return -1;
    }
    g->history = malloc((size_t)o->num_samples * (size_t)want * sizeof *g->history);
    g->step_tokens = malloc((size_t)o->num_samples * sizeof *g->step_tokens);
    g->done = malloc((size_t)o->num_samples);
    g->rows = malloc((size_t)o->num_samples * sizeof *g->rows);
    if (!g->history || !g->step_tokens || !g->done || !g->rows) {
        generator_free(g);
        return err_set(err, "out of memory for %d samples of %ld tokens", o->num_samples, want);
    }
    return 0;
}

void generator_free(generator *g) {
    gpt2_kv_free(&g->kv);
    sampler_free(&g->smp);
    free(g->history);
    free(g->step_tokens);
    free(g->done);
    free(g->rows);
    memset(g, 0, sizeof *g);
}

static void note(const gpt2c_sample_callbacks *cb, const char *msg) {
    if (cb && cb->on_note) cb->on_note(cb->user, msg);
}

int generator_run(generator *g, const gpt2_model *m, const uint32_t *prompt, size_t n,
                  const gpt2c_sample_callbacks *cb, gpt2c_sample_stats *stats, gpt2c_error *err) {
    const gpt2c_sample_opts *o = &g->o;
    double t0 = now_ms();
    int S = o->num_samples, len = g->kv.len;
    size_t stride = (size_t)g->max_prompt + o->max_tokens; /* history row */
    int32_t eot = GPT2C_EOT;
    /* the prompt: <|endoftext|> when empty; its last max_prompt tokens when longer */
    if (n == 0) prompt = (const uint32_t *)&eot, n = 1;
    if (n > (size_t)g->max_prompt) {
        char msg[160];
        snprintf(msg, sizeof msg, "the prompt has %zu tokens; only its last %d are used (the "
                 "model's context is %d)", n, g->max_prompt, m->cfg.max_seq_len);
        note(cb, msg);
        prompt += n - (size_t)g->max_prompt, n = (size_t)g->max_prompt;
    }
    int np = (int)n;
    for (int i = 0; i < np; i++) g->history[i] = (int32_t)prompt[i];
    /* the prompt runs once; every sample starts from a copy of its cache and logits */
    prof_mark prompt_mark = prof_begin_whole();
    gpt2_prefill(m, &g->kv, g->history, 0, np, 0);
    for (int s = 1; s < S; s++) {
        memcpy(g->history + (size_t)s * stride, g->history, (size_t)np * sizeof *g->history);
        gpt2_kv_copy(&g->kv, m, 0, s, np);
        memcpy(g->kv.logits + (size_t)s * GPT2_VOCAB_PADDED, g->kv.logits,
               GPT2_VOCAB_PADDED * sizeof(float));
    }
    prof_end(prompt_mark, GPT2C_PROF_PROMPT);
    memset(g->done, 0, (size_t)S);
    stats->prompt_tokens = n;
    stats->generated = 0;
    stats->prompt_ms = now_ms() - t0;
    t0 = now_ms();
    rng r;
    rng_seed(&r, o->seed);
    int pos = np, ndone = 0, slid = 0, step;
    for (step = 0; step < o->max_tokens && ndone < S; step++) {
        for (int s = 0; s < S; s++) {
            prof_mark draw = prof_begin();
            int32_t id = sampler_next(&g->smp, g->kv.logits + (size_t)s * GPT2_VOCAB_PADDED, GPT2_VOCAB, &r);
            prof_end(draw, GPT2C_PROF_SAMPLING);
            g->step_tokens[s] = id;
            g->history[(size_t)s * stride + (size_t)np + step] = id;
            if (g->done[s]) continue;
            stats->generated++;
            if (cb && cb->on_token) cb->on_token(cb->user, s, (uint32_t)id);
            if (o->stop_at_eot && id == GPT2C_EOT) g->done[s] = 1, ndone++;
        }
        if (step == o->max_tokens - 1 || ndone == S) break;
        if (pos == len) {
            /* The context is full: keep the last half of each sequence and recompute its cache
             * (once every len/2 tokens), then go on. */
            int keep = len / 2;
            if (!slid) {
                char msg[160];
                snprintf(msg, sizeof msg, "the text reached the model's context of %d tokens; "
                         "the window slides (the last %d tokens are kept)", len, keep);
                note(cb, msg);
                slid = 1;
            }
            for (int s = 0; keep > 0 && s < S; s++) { /* (a 1-position model keeps nothing) */
                const int32_t *h = g->history + (size_t)s * stride + (size_t)np + step - keep;
                gpt2_prefill(m, &g->kv, h, s, keep, 0);
            }
            pos = keep;
        }
        for (int s = 0; s < S; s++) g->rows[s] = (gpt2_span){s, pos, 1};
        gpt2_infer(m, &g->kv, g->step_tokens, g->rows, S);
        pos++;
    }
    stats->generate_ms = now_ms() - t0;
    g->steps_run = step + 1; /* the loop ends by a break after the draw of step */
    (void)err;
    return 0;
}
