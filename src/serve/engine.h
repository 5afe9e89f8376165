/* The server's engine: one inference thread owns the model and `parallel` slots (a KV-cache
 * sequence each, planned at start) and schedules them by continuous batching. Each step decodes
 * one token for every generating slot in one batched forward (gpt2_infer), then runs prompt
 * chunks of the waiting requests (gpt2_prefill's chunks) up to one chunk's worth of tokens, so
 * that prompts arriving together start together and a long prompt does not stall the streams.
 * A request with n choices takes n slots, which share its prompt's prefill. Requests beyond the
 * slots wait in a bounded queue. What the tokens become (text, stop strings, logprobs) is
 * choices.c's business.
 *
 * Same numbers as `gpt2c sample`: a request draws from its own RNG seeded with its seed, for its
 * choices in order at each step (a finished choice still takes its draw), on logits that do not
 * depend on the other rows of the batch (gpt2_infer's promise).
 *
 * Scoring (echo with logprobs): the prompt's logprobs come from its prefill, the LM head over
 * every row of each chunk, a few rows at a time (gpt2_infer_scores). */
#ifndef GPT2C_SERVE_ENGINE_H
#define GPT2C_SERVE_ENGINE_H

#include <pthread.h>
#include <stdint.h>

#include "model/gpt2_infer.h"
#include "serve/choices.h"

typedef struct serve_request {
    /* set before engine_submit, read-only afterwards */
    int32_t *prompt;
    int nprompt, n, max_tokens, top_k;
    int logprobs;          /* -1: none; else 0..SERVE_MAX_LOGPROBS best ones, and the token's */
    int echo;              /* each choice starts with the prompt (its logprobs too) */
    float temperature, top_p;
    unsigned long long seed;
    char *stop[SERVE_MAX_STOP];
    int nstop;
    int nbias;
    int32_t *bias_ids;
    float *bias_values;
    /* under the engine's lock */
    serve_choice *choices;
    int done;              /* every choice finished (or the server stops, or it failed) */
    int cancelled;         /* the client went away */
    int failed;            /* memory ran out while it ran: its answer is an error */
    int completion_tokens;
    double first_token_ms; /* since submit; -1 until then */
    pthread_cond_t changed; /* signalled when text is published or the request ends */
    int refs;               /* the engine's and the HTTP side's */
    struct request_state *state; /* the engine's own */
    struct serve_request *next;  /* the queue */
    double submit_ms;
} serve_request;

typedef struct serve_stats {
    unsigned long long requests, tokens, prompt_tokens;
    int active_slots, queued;
    double tokens_per_s; /* over the last seconds of decoding */
} serve_stats;

typedef struct engine engine;

/* The model must outlive the engine. parallel: 1..GPT2_BATCH_ROWS slots; max_queue: waiting
 * requests beyond them. */
int engine_start(engine **e, const gpt2_model *m, const gpt2c_tokenizer *tok, int parallel,
                 int max_queue, gpt2c_error *err);
/* Ends every request (their waiters wake with done set) and joins the thread; afterwards new
 * requests are refused, and the calls below stay valid until engine_free. */
void engine_stop(engine *e);
void engine_free(engine *e);

int engine_slots(const engine *e);
int engine_max_queue(const engine *e);
int engine_context(const engine *e);

/* A new request (refs 1, the caller's), or NULL out of memory. The caller fills its inputs, then
 * submits it. */
serve_request *request_new(int n);
/* Hand it to the engine: 0; ENGINE_BUSY when the queue is full (503); ENGINE_NO_MEMORY. */
enum { ENGINE_BUSY = -1, ENGINE_NO_MEMORY = -2 };
int engine_submit(engine *e, serve_request *r);
/* The HTTP side is done with it (after a cancel or at the end); frees it at the last ref. */
void engine_release(engine *e, serve_request *r);
/* The client went away: the engine frees its slots within one step. */
void engine_cancel(engine *e, serve_request *r);
/* Wait, with the engine's lock held around the read of r (lock/unlock/wait below), until r
 * changes or timeout_ms passes. */
void engine_lock(engine *e);
void engine_unlock(engine *e);
void engine_wait(engine *e, serve_request *r, int timeout_ms);
void engine_stats(engine *e, serve_stats *s);

#endif
