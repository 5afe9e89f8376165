/* The engine's thread: admit, decode every generating slot in one forward, run prompt chunks,
 * draw; see engine.h. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate/sampler.h"
#include "serve/engine.h"
#include "util/error.h"
#include "util/time.h"

/* The engine's own per-request state. */
typedef struct request_state {
    int *slots;       /* ascending, one per choice */
    int prefilled;    /* prompt tokens run so far */
    int steps;        /* draws so far (tokens per choice) */
    int32_t *last;    /* each choice's last token */
    sampler smp;
    rng rng;
    int greedy;
    token_logprob *prompt_lp; /* scoring (echo with logprobs): per prompt token */
    float *row;       /* the logits of one row with the logit bias applied */
    int waits;        /* it was queued beyond the free slots */
    int in_batch;     /* some choice of it is in this step's decoding forward */
} request_state;

/* Rows of logits per call when scoring a prompt: 128 x 50304 floats, 26 MB (64 rows: 5% slower). */
#define SCORE_ROWS 128

struct engine {
    const gpt2_model *m;
    const gpt2c_tokenizer *tok;
    gpt2_kv kv;
    int parallel, max_queue, ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;
    int stopping, started;
    serve_request *head, *tail; /* the queue */
    int queued, waiting, reserved; /* queued requests; of them beyond the slots; their slots */
    serve_request **owner;         /* per slot */
    serve_request **active;        /* admitted, in admission order */
    int nactive;
    unsigned long long requests, tokens, prompt_tokens;
    double rate_t0, rate_tokens, tokens_per_s;
};

static int free_slots(const engine *e) {
    int n = 0;
    for (int s = 0; s < e->parallel; s++) n += !e->owner[s];
    return n;
}

serve_request *request_new(int n) {
    serve_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->n = n, r->logprobs = -1, r->refs = 1, r->first_token_ms = -1;
    r->choices = calloc((size_t)n, sizeof *r->choices);
    if (!r->choices) {
        free(r);
        return NULL;
    }
    pthread_cond_init(&r->changed, NULL);
    return r;
}

static void state_free(request_state *st) {
    if (!st) return;
    free(st->slots), free(st->last), free(st->row), free(st->prompt_lp);
    sampler_free(&st->smp);
    free(st);
}

static void request_free(serve_request *r) {
    state_free(r->state);
    for (int c = 0; c < r->n; c++) choice_free(&r->choices[c]);
    for (int i = 0; i < r->nstop; i++) free(r->stop[i]);
    free(r->choices), free(r->prompt), free(r->bias_ids), free(r->bias_values);
    pthread_cond_destroy(&r->changed);
    free(r);
}

/* Under the lock. */
static void unref(serve_request *r) {
    if (--r->refs == 0) request_free(r);
}

/* ---- choices ending (under the lock) ---- */

static void finish(engine *e, serve_request *r, int c, const char *reason) {
    serve_choice *ch = &r->choices[c];
    if (ch->finished) return;
    ch->finished = 1, ch->finish_reason = reason;
    e->owner[r->state->slots[c]] = NULL; /* its slot is free from the next step on */
}

/* Memory ran out for what r produced: every choice ends, and its answer is an error. */
static void fail(engine *e, serve_request *r) {
    r->failed = 1;
    for (int c = 0; c < r->n; c++) finish(e, r, c, "error");
}

/* One draw for every choice of r, in order, from the logits of each choice's own slot, or of
 * the first slot's (from_first: right after the prompt). */
static void draw(engine *e, serve_request *r, int from_first) {
    request_state *st = r->state;
    for (int c = 0; c < r->n && !r->failed; c++) {
        serve_choice *ch = &r->choices[c];
        if (ch->finished) { /* its draw is taken all the same, as `sample` does */
            if (!st->greedy) rng_uniform(&st->rng);
            continue;
        }
        int slot = from_first ? st->slots[0] : st->slots[c];
        const float *logits = e->kv.logits + (size_t)slot * GPT2_VOCAB_PADDED;
        if (r->nbias) {
            memcpy(st->row, logits, GPT2_VOCAB * sizeof *st->row);
            for (int i = 0; i < r->nbias; i++) st->row[r->bias_ids[i]] += r->bias_values[i];
            logits = st->row;
        }
        int32_t id = sampler_next(&st->smp, logits, GPT2_VOCAB, &st->rng);
        st->last[c] = id;
        r->completion_tokens++;
        e->tokens++, e->rate_tokens++;
        int rc = 0;
        if (r->logprobs >= 0) { /* from the logits with the bias, which drew it */
            token_logprob lp;
            logprob_of(logits, GPT2_VOCAB, r->logprobs, id, &lp);
            rc = choice_add_logprobs(ch, &lp, 1);
        }
        const char *end = NULL; /* why the choice ends here, if it does */
        if (rc == 0 && id == GPT2C_EOT) {
            rc = choice_flush(ch, r->stop, r->nstop), end = "stop";
        } else if (rc == 0) {
            rc = choice_push(ch, e->tok, id, r->stop, r->nstop);
            if (rc == 0 && st->steps + 1 >= r->max_tokens)
                rc = choice_flush(ch, r->stop, r->nstop), end = "length";
        }
        if (rc < 0) fail(e, r);
        else if (rc == 1 || end) finish(e, r, c, rc == 1 ? "stop" : end);
    }
    st->steps++;
    if (r->first_token_ms < 0) r->first_token_ms = now_ms() - r->submit_ms;
    pthread_cond_broadcast(&r->changed);
}

/* The prompt has run: each choice starts with it (echo), and draws its first token, unless it
 * asked for none (a prompt scored, max_tokens 0). */
static void prompt_done(engine *e, serve_request *r) {
    request_state *st = r->state;
    e->prompt_tokens += (unsigned long long)r->nprompt;
    for (int c = 0; r->echo && c < r->n; c++) {
        serve_choice *ch = &r->choices[c];
        int rc = choice_echo(ch, e->tok, r->prompt, r->nprompt);
        if (rc == 0 && st->prompt_lp) rc = choice_add_logprobs(ch, st->prompt_lp, r->nprompt);
        if (rc == 0 && r->max_tokens == 0) rc = choice_flush(ch, NULL, 0);
        if (rc < 0) {
            fail(e, r);
            pthread_cond_broadcast(&r->changed);
            return;
        }
    }
    if (r->max_tokens > 0) {
        draw(e, r, 1);
        return;
    }
    for (int c = 0; c < r->n; c++) finish(e, r, c, "length");
    if (r->first_token_ms < 0) r->first_token_ms = now_ms() - r->submit_ms;
    pthread_cond_broadcast(&r->changed);
}

/* ---- admission and the end of requests (under the lock) ---- */

static int state_new(serve_request *r, gpt2c_error *err) {
    request_state *st = calloc(1, sizeof *st);
    r->state = st;
    if (!st) return err_set(err, "out of memory");
    int n = r->n;
    st->slots = calloc(n, sizeof *st->slots), st->last = calloc(n, sizeof *st->last);
    st->row = r->nbias ? malloc(GPT2_VOCAB_PADDED * sizeof *st->row) : NULL;
    int score = r->echo && r->logprobs >= 0;
    st->prompt_lp = score ? calloc((size_t)r->nprompt, sizeof *st->prompt_lp) : NULL;
    if (!st->slots || !st->last || (r->nbias && !st->row) || (score && !st->prompt_lp))
        return err_set(err, "out of memory");
    if (score) st->prompt_lp[0] = (token_logprob){.id = r->prompt[0], .ntop = -1}; /* null */
    if (sampler_init(&st->smp, r->temperature, r->top_k, r->top_p, GPT2_VOCAB, err) != 0) return -1;
    st->greedy = r->temperature == 0.0f || r->top_k == 1;
    rng_seed(&st->rng, r->seed);
    return 0;
}

static void admit(engine *e) {
    while (e->head && free_slots(e) >= e->head->n) {
        serve_request *r = e->head;
        e->head = r->next;
        if (!e->head) e->tail = NULL;
        e->queued--, e->reserved -= r->n;
        if (r->state && r->state->waits) e->waiting--;
        int k = 0;
        for (int s = 0; s < e->parallel && k < r->n; s++)
            if (!e->owner[s]) e->owner[s] = r, r->state->slots[k++] = s;
        e->active[e->nactive++] = r;
    }
}

/* Requests that are done (or cancelled) leave: slots freed, waiters woken, the engine's ref
 * dropped. */
static void retire(engine *e) {
    int k = 0;
    for (int i = 0; i < e->nactive; i++) {
        serve_request *r = e->active[i];
        int all = 1;
        for (int c = 0; c < r->n; c++) all &= r->choices[c].finished;
        if (!all && !r->cancelled && !e->stopping) {
            e->active[k++] = r;
            continue;
        }
        for (int s = 0; s < e->parallel; s++)
            if (e->owner[s] == r) e->owner[s] = NULL;
        r->done = 1;
        pthread_cond_broadcast(&r->changed);
        unref(r);
    }
    e->nactive = k;
}

/* ---- the thread ---- */

/* k more prompt tokens of r have run. Scoring: they were span `span` of the forward, whose rows'
 * logits each score the prompt token after them (the last one's predicts the first new token).
 * Outside the lock: prompt_lp is read only once the prompt is done, which the lock orders. */
static void score_chunk(engine *e, serve_request *r, int span, int k) {
    request_state *st = r->state;
    int done = st->prefilled;
    if (!st->prompt_lp) return;
    if (done + k == r->nprompt) k--;
    for (int i = 0; i < k; i += e->kv.score_rows) {
        int n = k - i < e->kv.score_rows ? k - i : e->kv.score_rows;
        gpt2_infer_scores(e->m, &e->kv, span, i, n);
        logprob_rows(e->kv.scores, GPT2_VOCAB_PADDED, n, GPT2_VOCAB, r->logprobs,
                     r->prompt + done + i + 1, st->prompt_lp + done + i + 1);
    }
}

/* ...where that ends the prompt, every choice starts from its cache (outside the lock: tens of
 * MB)... */
static void share_prompt(engine *e, serve_request *r, int k) {
    request_state *st = r->state;
    if (st->prefilled + k == r->nprompt)
        for (int c = 1; c < r->n; c++)
            gpt2_kv_copy(&e->kv, e->m, st->slots[0], st->slots[c], r->nprompt);
}
/* ...and, under the lock, the prompt is done. */
static void prefilled(engine *e, serve_request *r, int k) {
    r->state->prefilled += k;
    if (r->state->prefilled == r->nprompt && !r->cancelled) prompt_done(e, r);
}

/* One token for every generating slot, in one forward; each request draws, in its order. */
static void decode(engine *e) {
    int32_t tokens[GPT2_BATCH_ROWS];
    gpt2_span rows[GPT2_BATCH_ROWS];
    int nrows = 0;
    for (int s = 0; s < e->parallel; s++) {
        serve_request *r = e->owner[s];
        if (!r || r->cancelled || r->state->prefilled < r->nprompt) continue;
        int c = 0;
        while (r->state->slots[c] != s) c++;
        r->state->in_batch = 1;
        tokens[nrows] = r->state->last[c];
        rows[nrows++] = (gpt2_span){s, r->nprompt + r->state->steps - 1, 1};
    }
    if (!nrows) return;
    pthread_mutex_unlock(&e->mu);
    gpt2_infer(e->m, &e->kv, tokens, rows, nrows);
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->nactive; i++) {
        serve_request *r = e->active[i];
        if (r->state->in_batch && !r->cancelled) draw(e, r, 0);
        r->state->in_batch = 0;
    }
    double t = now_ms();
    if (t - e->rate_t0 > 2000) {
        e->tokens_per_s = e->rate_tokens / ((t - e->rate_t0) / 1e3);
        e->rate_t0 = t, e->rate_tokens = 0;
    }
}

/* Waiting prompts, a chunk each (the chunks `sample` runs: GPT2_PREFILL_CHUNK tokens from the
 * start), up to the forward's rows in all per step but at least one chunk: prompts that arrive
 * together start together, and a long one does not stall the streams. The short chunks share
 * one forward (each gets its bits alone), a long one has its own, as in `sample`. */
static void prefill(engine *e) {
    const gpt2_model *m = e->m;
    serve_request *order[GPT2_BATCH_ROWS]; /* the short chunks' requests, in admission order */
    gpt2_span spans[GPT2_BATCH_ROWS];
    int32_t gathered[GPT2_BATCH_ROWS * GPT2_SHORT_CHUNK], by_slot[GPT2_BATCH_ROWS * GPT2_SHORT_CHUNK];
    int nshort = 0, rows = 0, budget = e->kv.max_rows, ran = 0, short_chunk = gpt2_short_chunk(m);
    for (int i = 0; i < e->nactive; i++) {
        serve_request *r = e->active[i];
        int k = r->nprompt - r->state->prefilled;
        if (r->cancelled || k == 0) continue;
        if (k > GPT2_PREFILL_CHUNK) k = GPT2_PREFILL_CHUNK;
        if (k > short_chunk || rows + k > budget) continue;
        memcpy(gathered + rows, r->prompt + r->state->prefilled, (size_t)k * sizeof(int32_t));
        order[nshort] = r;
        spans[nshort++] = (gpt2_span){r->state->slots[0], r->state->prefilled, k};
        rows += k;
    }
    if (nshort) {
        gpt2_span sorted[GPT2_BATCH_ROWS]; /* by slot, as the model wants them; tokens follow */
        int span_of[GPT2_BATCH_ROWS];     /* each chunk's place among them */
        int n = 0, at = 0;
        for (int s = 0; s < e->parallel; s++)
            for (int j = 0, off = 0; j < nshort; off += spans[j++].n)
                if (spans[j].seq == s) {
                    memcpy(by_slot + at, gathered + off, (size_t)spans[j].n * sizeof *by_slot);
                    span_of[j] = n, sorted[n++] = spans[j], at += spans[j].n;
                }
        pthread_mutex_unlock(&e->mu);
        gpt2_infer(m, &e->kv, by_slot, sorted, nshort);
        for (int j = 0; j < nshort; j++) {
            score_chunk(e, order[j], span_of[j], spans[j].n);
            share_prompt(e, order[j], spans[j].n);
        }
        pthread_mutex_lock(&e->mu);
        for (int j = 0; j < nshort; j++) prefilled(e, order[j], spans[j].n);
        budget -= rows, ran = 1;
    }
    for (int i = 0; i < e->nactive && budget > 0; i++) {
        serve_request *r = e->active[i];
        request_state *st = r->state;
        int done = st->prefilled, k = r->nprompt - done;
        if (r->cancelled || k == 0 || k <= short_chunk) continue; /* (a short one ran above) */
        if (k > GPT2_PREFILL_CHUNK) k = GPT2_PREFILL_CHUNK;
        if (k > budget && ran) break;
        budget -= k, ran = 1;
        pthread_mutex_unlock(&e->mu);
        gpt2_span chunk = {st->slots[0], done, k};
        gpt2_infer(m, &e->kv, r->prompt + done, &chunk, 1);
        score_chunk(e, r, 0, k);
        share_prompt(e, r, k);
        pthread_mutex_lock(&e->mu);
        prefilled(e, r, k);
    }
}

static void *engine_main(void *arg) {
    engine *e = arg;
    gpt2_backend_enter_thread(e->m->be); /* --threads, in this thread too */
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        retire(e);
        admit(e);
        if (e->nactive == 0) {
            pthread_cond_wait(&e->work, &e->mu);
            continue;
        }
        decode(e);
        prefill(e);
    }
    retire(e); /* every active request ends; the queued ones too */
    while (e->head) {
        serve_request *r = e->head;
        e->head = r->next;
        r->done = 1;
        pthread_cond_broadcast(&r->changed);
        unref(r);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int engine_start(engine **out, const gpt2_model *m, const gpt2c_tokenizer *tok, int parallel,
                 int max_queue, gpt2c_error *err) {
    *out = NULL;
    if (parallel < 1 || parallel > GPT2_BATCH_ROWS)
        return err_set(err, "--parallel must be 1..%d (slots decoded together, each row as "
                            "alone)", GPT2_BATCH_ROWS);
    engine *e = calloc(1, sizeof *e);
    if (!e) return err_set(err, "out of memory");
    e->m = m, e->tok = tok, e->parallel = parallel, e->max_queue = max_queue;
    e->ctx = m->cfg.max_seq_len;
    int rows = GPT2_PREFILL_CHUNK > parallel ? GPT2_PREFILL_CHUNK : parallel;
    if (rows > e->ctx) rows = e->ctx > parallel ? e->ctx : parallel;
    e->owner = calloc(parallel, sizeof *e->owner);
    e->active = calloc(parallel, sizeof *e->active);
    int planned = e->owner && e->active;
    if (!planned || gpt2_kv_plan(&e->kv, m, parallel, e->ctx, rows, SCORE_ROWS, err) != 0) {
        free(e->owner), free(e->active), free(e);
        return planned ? -1 : err_set(err, "out of memory");
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    e->rate_t0 = now_ms();
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        gpt2_kv_free(&e->kv);
        free(e->owner), free(e->active), free(e);
        return err_set(err, "cannot start the inference thread");
    }
    *out = e;
    return 0;
}

void engine_stop(engine *e) {
    if (!e || e->stopping) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
}

void engine_free(engine *e) {
    if (!e) return;
    gpt2_kv_free(&e->kv);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    free(e->owner), free(e->active), free(e);
}

int engine_slots(const engine *e) { return e->parallel; }
int engine_max_queue(const engine *e) { return e->max_queue; }
int engine_context(const engine *e) { return e->ctx; }

int engine_submit(engine *e, serve_request *r) {
    gpt2c_error err;
    pthread_mutex_lock(&e->mu);
    int fits = free_slots(e) - e->reserved >= r->n;
    if (e->stopping || (!fits && e->waiting >= e->max_queue)) {
        pthread_mutex_unlock(&e->mu);
        return ENGINE_BUSY;
    }
    if (state_new(r, &err) != 0) { /* (the request was checked: only memory can fail here) */
        pthread_mutex_unlock(&e->mu);
        return ENGINE_NO_MEMORY;
    }
    r->state->waits = !fits;
    e->waiting += !fits, e->queued++, e->reserved += r->n;
    r->refs++; /* the engine's */
    r->submit_ms = now_ms();
    r->next = NULL;
    if (e->tail) e->tail->next = r;
    else e->head = r;
    e->tail = r;
    e->requests++;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void engine_cancel(engine *e, serve_request *r) {
    pthread_mutex_lock(&e->mu);
    r->cancelled = 1;
    /* still queued: it leaves the queue now */
    for (serve_request **p = &e->head, *prev = NULL; *p; prev = *p, p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            if (e->tail == r) e->tail = prev;
            e->queued--, e->reserved -= r->n;
            if (r->state->waits) e->waiting--;
            r->done = 1;
            unref(r);
            break;
        }
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
}

void engine_release(engine *e, serve_request *r) {
    pthread_mutex_lock(&e->mu);
    unref(r);
    pthread_mutex_unlock(&e->mu);
}

void engine_lock(engine *e) { pthread_mutex_lock(&e->mu); }
void engine_unlock(engine *e) { pthread_mutex_unlock(&e->mu); }

void engine_wait(engine *e, serve_request *r, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&r->changed, &e->mu, &ts);
}

void engine_stats(engine *e, serve_stats *s) {
    pthread_mutex_lock(&e->mu);
    s->requests = e->requests, s->tokens = e->tokens, s->queued = e->queued;
    s->prompt_tokens = e->prompt_tokens;
    s->active_slots = e->parallel - free_slots(e);
    s->tokens_per_s = e->tokens_per_s;
    pthread_mutex_unlock(&e->mu);
}
