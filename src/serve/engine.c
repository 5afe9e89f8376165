/* The engine's thread: admit, decode every generating slot in one forward, run one prompt chunk,
 * draw, publish text; see engine.h. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <math.h>
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
    gpt2c_stream_decoder *sd;
    char **pending;   /* decoded bytes held back (a stop string may be starting) */
    size_t *npending, *cap_pending;
    float *row;       /* the logits of one row with the logit bias applied */
    int waits;        /* it was queued beyond the free slots */
    int in_batch;     /* some choice of it is in this step's decoding forward */
} request_state;

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
    unsigned long long requests, tokens;
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

static void state_free(request_state *st, int n) {
    if (!st) return;
    for (int c = 0; st->pending && c < n; c++) free(st->pending[c]);
    free(st->pending), free(st->npending), free(st->cap_pending), free(st->sd);
    free(st->slots), free(st->last), free(st->row);
    sampler_free(&st->smp);
    free(st);
}

static void request_free(serve_request *r) {
    state_free(r->state, r->n);
    for (int c = 0; c < r->n; c++) {
        serve_choice *ch = &r->choices[c];
        free(ch->text), free(ch->token_ids), free(ch->token_logprobs);
        free(ch->top_ids), free(ch->top_logprobs);
    }
    for (int i = 0; i < r->nstop; i++) free(r->stop[i]);
    free(r->choices), free(r->prompt), free(r->bias_ids), free(r->bias_values);
    pthread_cond_destroy(&r->changed);
    free(r);
}

/* Under the lock. */
static void unref(serve_request *r) {
    if (--r->refs == 0) request_free(r);
}

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *len + n + 1) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return -1;
        *buf = b, *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

/* ---- per choice: text, stop strings, finishing (under the lock) ---- */

static void publish(serve_request *r, int c, size_t n) {
    request_state *st = r->state;
    serve_choice *ch = &r->choices[c];
    if (n && append(&ch->text, &ch->len, &ch->cap, st->pending[c], n) != 0) return;
    memmove(st->pending[c], st->pending[c] + n, st->npending[c] - n);
    st->npending[c] -= n;
}

static void finish(engine *e, serve_request *r, int c, const char *reason) {
    serve_choice *ch = &r->choices[c];
    if (ch->finished) return;
    ch->finished = 1, ch->finish_reason = reason;
    e->owner[r->state->slots[c]] = NULL; /* its slot is free from the next step on */
}

/* New bytes of choice c: publish what cannot be the start of a stop string; stop at one. */
static void take_text(engine *e, serve_request *r, int c, const char *bytes, size_t n, int last) {
    request_state *st = r->state;
    if (n) append(&st->pending[c], &st->npending[c], &st->cap_pending[c], bytes, n);
    const char *p = st->pending[c] ? st->pending[c] : "";
    size_t len = st->npending[c], cut = len;
    for (int i = 0; i < r->nstop; i++) { /* the earliest stop string ends the text before it */
        const char *hit = memmem(p, len, r->stop[i], strlen(r->stop[i]));
        if (hit && (size_t)(hit - p) < cut) cut = (size_t)(hit - p);
    }
    if (cut < len) {
        publish(r, c, cut);
        st->npending[c] = 0;
        finish(e, r, c, "stop");
        return;
    }
    size_t hold = 0; /* the longest end of the text that begins a stop string */
    for (int i = 0; !last && i < r->nstop; i++) {
        size_t sl = strlen(r->stop[i]);
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > hold; k--)
            if (memcmp(p + len - k, r->stop[i], k) == 0) {
                hold = k;
                break;
            }
    }
    publish(r, c, len - hold);
}

/* logprobs of the chosen token and the top ones, from the (biased) logits */
static void record_logprobs(serve_request *r, int c, const float *logits, int32_t id) {
    serve_choice *ch = &r->choices[c];
    if (ch->ntokens == ch->tokens_cap) {
        int cap = ch->tokens_cap ? 2 * ch->tokens_cap : 32;
        int32_t *ids = realloc(ch->token_ids, cap * sizeof *ids);
        if (ids) ch->token_ids = ids;
        float *lp = realloc(ch->token_logprobs, cap * sizeof *lp);
        if (lp) ch->token_logprobs = lp;
        void *ti = realloc(ch->top_ids, cap * sizeof *ch->top_ids);
        if (ti) ch->top_ids = ti;
        void *tl = realloc(ch->top_logprobs, cap * sizeof *ch->top_logprobs);
        if (tl) ch->top_logprobs = tl;
        if (!ids || !lp || !ti || !tl) return;
        ch->tokens_cap = cap;
    }
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < GPT2_VOCAB; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < GPT2_VOCAB; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    int k = r->logprobs, *top = ch->top_ids[ch->ntokens];
    for (int j = 0; j < SERVE_MAX_LOGPROBS; j++) top[j] = -1;
    for (int i = 0; i < GPT2_VOCAB; i++) { /* insertion into the k best, by logit then id */
        int j = k;
        while (j > 0 && (top[j - 1] < 0 || logits[i] > logits[top[j - 1]])) j--;
        if (j >= k) continue;
        for (int t = k - 1; t > j; t--) top[t] = top[t - 1];
        top[j] = i;
    }
    for (int j = 0; j < k; j++) ch->top_logprobs[ch->ntokens][j] = (float)(logits[top[j]] - lse);
    ch->token_ids[ch->ntokens] = id;
    ch->token_logprobs[ch->ntokens] = (float)(logits[id] - lse);
    ch->ntokens++;
}

/* One draw for every choice of r, in order, from the logits of `from` (each choice's own slot,
 * or -1: the first slot's, after the prompt). Under the lock. */
static void draw(engine *e, serve_request *r, int from_first) {
    request_state *st = r->state;
    for (int c = 0; c < r->n; c++) {
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
        if (r->logprobs >= 0) record_logprobs(r, c, logits, id);
        st->last[c] = id;
        r->completion_tokens++;
        e->tokens++, e->rate_tokens++;
        if (id == GPT2C_EOT) {
            take_text(e, r, c, NULL, 0, 1);
            finish(e, r, c, "stop");
            continue;
        }
        char buf[GPT2C_STREAM_OUT_MAX];
        int nb = gpt2c_stream_push(&st->sd[c], e->tok, (uint32_t)id, buf, NULL);
        int last = st->steps + 1 >= r->max_tokens;
        if (nb > 0) take_text(e, r, c, buf, (size_t)nb, 0);
        if (last && !ch->finished) {
            nb = gpt2c_stream_finish(&st->sd[c], buf);
            take_text(e, r, c, buf, nb > 0 ? (size_t)nb : 0, 1);
            finish(e, r, c, "length");
        }
    }
    st->steps++;
    if (r->first_token_ms < 0) r->first_token_ms = now_ms() - r->submit_ms;
    pthread_cond_broadcast(&r->changed);
}

/* ---- admission and the end of requests (under the lock) ---- */

static int state_new(serve_request *r, gpt2c_error *err) {
    request_state *st = calloc(1, sizeof *st);
    r->state = st;
    if (!st) return -1;
    int n = r->n;
    st->slots = calloc(n, sizeof *st->slots), st->last = calloc(n, sizeof *st->last);
    st->sd = calloc(n, sizeof *st->sd), st->pending = calloc(n, sizeof *st->pending);
    st->npending = calloc(n, sizeof *st->npending), st->cap_pending = calloc(n, sizeof(size_t));
    st->row = r->nbias ? malloc(GPT2_VOCAB_PADDED * sizeof *st->row) : NULL;
    if (!st->slots || !st->last || !st->sd || !st->pending || !st->npending ||
        !st->cap_pending || (r->nbias && !st->row))
        return -1;
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

/* k more prompt tokens of r have run. Where that ends the prompt, every choice starts from its
 * cache (outside the lock: tens of MB)... */
static void share_prompt(engine *e, serve_request *r, int k) {
    request_state *st = r->state;
    if (st->prefilled + k == r->nprompt)
        for (int c = 1; c < r->n; c++)
            gpt2_kv_copy(&e->kv, e->m, st->slots[0], st->slots[c], r->nprompt);
}
/* ...and, under the lock, the first draw is made. */
static void prefilled(engine *e, serve_request *r, int k) {
    r->state->prefilled += k;
    if (r->state->prefilled == r->nprompt && !r->cancelled) draw(e, r, 1);
}

static void step(engine *e) {
    const gpt2_model *m = e->m;
    int32_t tokens[GPT2_BATCH_ROWS];
    int seqs[GPT2_BATCH_ROWS], pos[GPT2_BATCH_ROWS], nrows = 0;
    /* under the lock: who decodes now */
    for (int s = 0; s < e->parallel; s++) {
        serve_request *r = e->owner[s];
        if (!r || r->cancelled || r->state->prefilled < r->nprompt) continue;
        int c = 0;
        while (r->state->slots[c] != s) c++;
        r->state->in_batch = 1;
        tokens[nrows] = r->state->last[c], seqs[nrows] = s;
        pos[nrows++] = r->nprompt + r->state->steps - 1;
    }
    pthread_mutex_unlock(&e->mu);
    if (nrows) gpt2_infer_rows(m, &e->kv, tokens, seqs, pos, nrows);
    pthread_mutex_lock(&e->mu);
    if (nrows) {
        for (int i = 0; i < e->nactive; i++) { /* each decoded request draws, in its order */
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
    /* then waiting prompts, a chunk each (the chunks `sample` runs: GPT2_PREFILL_CHUNK tokens
     * from the start), up to the forward's rows in all per step but at least one chunk: prompts
     * that arrive together start together, and a long one does not stall the streams. The short
     * chunks share one forward (gpt2_infer_spans: each gets its bits alone), a long one has its
     * own, as in `sample`. */
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
        int n = 0, at = 0;
        for (int s = 0; s < e->parallel; s++)
            for (int j = 0, off = 0; j < nshort; off += spans[j++].n)
                if (spans[j].seq == s) {
                    memcpy(by_slot + at, gathered + off, (size_t)spans[j].n * sizeof *by_slot);
                    sorted[n++] = spans[j], at += spans[j].n;
                }
        pthread_mutex_unlock(&e->mu);
        gpt2_infer_spans(m, &e->kv, by_slot, sorted, nshort);
        for (int j = 0; j < nshort; j++) share_prompt(e, order[j], spans[j].n);
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
        gpt2_infer(m, &e->kv, r->prompt + done, st->slots[0], 1, k, done);
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
        step(e);
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
    if (!planned || gpt2_kv_plan(&e->kv, m, parallel, e->ctx, rows, err) != 0) {
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
int engine_context(const engine *e) { return e->ctx; }

int engine_submit(engine *e, serve_request *r) {
    gpt2c_error err;
    pthread_mutex_lock(&e->mu);
    int fits = free_slots(e) - e->reserved >= r->n;
    if (e->stopping || (!fits && e->waiting >= e->max_queue) || state_new(r, &err) != 0) {
        pthread_mutex_unlock(&e->mu);
        return -1;
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
    s->active_slots = e->parallel - free_slots(e);
    s->tokens_per_s = e->tokens_per_s;
    pthread_mutex_unlock(&e->mu);
}
