/* Generation: the KV-cache forward against full recomputation and against the training forward's
 * losses, batched decoding against one sequence at a time, and the sampler's distribution. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "generate/generate.h"
#include "model/gpt2_infer.h"

#define V GPT2_VOCAB
#define VP GPT2_VOCAB_PADDED

/* Largest difference relative to the largest logit. */
static float max_rel_diff(const float *a, const float *b, int n) {
    float worst = 0, scale = 0;
    for (int i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d > worst) worst = d;
        if (fabsf(b[i]) > scale) scale = fabsf(b[i]);
    }
    return worst / scale;
}

/* n tokens of sequence seq at positions pos.., one span. */
static void run_span(const gpt2_model *m, gpt2_kv *kv, const int32_t *tokens, int seq, int n,
                     int pos) {
    gpt2_span span = {seq, pos, n};
    gpt2_infer(m, kv, tokens, &span, 1);
}

static void test_cache_equals_recompute(const gpt2_model *m, const int32_t *tokens, int T) {
    gpt2c_error err;
    gpt2_kv inc, full;
    CHECK(gpt2_kv_plan(&inc, m, 1, T, T, 0, &err) == 0);
    CHECK(gpt2_kv_plan(&full, m, 1, T, T, 0, &err) == 0);
    float worst = 0;
    /* the first 70 tokens in one call (more than one block of attention rows), then one by one */
    int first = 70;
    run_span(m, &inc, tokens, 0, first, 0);
    for (int t = first; t <= T; t++) {
        if (t > first) run_span(m, &inc, tokens + t - 1, 0, 1, t - 1);
        run_span(m, &full, tokens, 0, t, 0);
        float d = max_rel_diff(inc.logits, full.logits, V);
        if (d > worst) worst = d;
    }
    if (worst > 1e-5f) fprintf(stderr, "cache vs recompute: %g\n", worst);
    CHECK(worst <= 1e-5f);
    gpt2_kv_free(&inc);
    gpt2_kv_free(&full);
}

/* The losses of the training forward equal -log softmax of the cached logits at every position. */
static void test_cache_equals_training_forward(gpt2_model *m, const int32_t *tokens, int T) {
    gpt2c_error err;
    CHECK(gpt2_plan(m, 1, T, 0, &err) == 0);
    memcpy(m->inputs, tokens, T * sizeof *tokens);
    memcpy(m->targets, tokens + 1, T * sizeof *tokens);
    gpt2_forward(m, 0.0f);
    gpt2_kv kv;
    CHECK(gpt2_kv_plan(&kv, m, 1, T, T, 0, &err) == 0);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        run_span(m, &kv, tokens + t, 0, 1, t);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++) mx = kv.logits[j] > mx ? kv.logits[j] : mx;
        for (int j = 0; j < V; j++) sum += exp(kv.logits[j] - mx);
        double loss = log(sum) + mx - kv.logits[tokens[t + 1]];
        double d = fabs(loss - m->losses[t]);
        if (d > worst) worst = d;
    }
    if (worst > 1e-4) fprintf(stderr, "cache vs training forward: %g\n", worst);
    CHECK(worst <= 1e-4);
    gpt2_kv_free(&kv);
}

/* Scoring a prompt: the LM head over every row of a prefill (gpt2_infer_scores, a few rows at a
 * time), after a long chunk and after spans of two sequences, gives the training forward's
 * losses at every position. Run after test_cache_equals_training_forward (m->losses). */
static void test_scores_equal_training_forward(const gpt2_model *m, const int32_t *tokens, int T) {
    gpt2c_error err;
    gpt2_kv kv;
    CHECK(gpt2_kv_plan(&kv, m, 2, T, T, 16, &err) == 0 && kv.score_rows == 16);
    double worst = 0;
    for (int way = 0; way < 2; way++) {
        int first = 0; /* sequence 1 holds positions 0..T-1 of the tokens in both ways */
        if (way == 0) {
            run_span(m, &kv, tokens, 1, T, 0);
        } else { /* positions 0..29 first, then 30..T-1 as a span beside another sequence's */
            gpt2_prefill(m, &kv, tokens, 1, 30, 0);
            gpt2_span spans[2] = {{0, 0, 5}, {1, 30, T - 30}};
            int32_t both[5 + T];
            memcpy(both, tokens + 40, 5 * sizeof *both);
            memcpy(both + 5, tokens + 30, (T - 30) * sizeof *both);
            gpt2_infer(m, &kv, both, spans, 2);
            first = 30;
        }
        int span = way == 0 ? 0 : 1;
        for (int t = first; t < T; t += kv.score_rows) {
            int n = T - t < kv.score_rows ? T - t : kv.score_rows;
            gpt2_infer_scores(m, &kv, span, t - first, n);
            for (int i = 0; i < n; i++) {
                const float *z = kv.scores + (size_t)i * VP;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
                for (int j = 0; j < V; j++) sum += exp(z[j] - mx);
                double d = fabs(log(sum) + mx - z[tokens[t + i + 1]] - m->losses[t + i]);
                if (d > worst) worst = d;
            }
        }
    }
    if (worst > 1e-4) fprintf(stderr, "scores vs training forward: %g\n", worst);
    CHECK(worst <= 1e-4);
    gpt2_kv_free(&kv);
}

/* Three sequences decoded together give each one's logits alone. */
static void test_batch_equals_single(const gpt2_model *m, const int32_t *tokens) {
    gpt2c_error err;
    gpt2_kv batch, single;
    enum { S = 3, STEPS = 10 };
    CHECK(gpt2_kv_plan(&batch, m, S, 16, 16, 0, &err) == 0);
    CHECK(gpt2_kv_plan(&single, m, 1, 16, 16, 0, &err) == 0);
    float worst = 0;
    for (int s = 0; s < S; s++) run_span(m, &batch, tokens + 5 * s, s, 4, 0);
    for (int t = 4; t < 4 + STEPS; t++) {
        int32_t step[S];
        for (int s = 0; s < S; s++) step[s] = tokens[5 * s + t];
        gpt2_span rows[S];
        for (int s = 0; s < S; s++) rows[s] = (gpt2_span){s, t, 1};
        gpt2_infer(m, &batch, step, rows, S);
    }
    for (int s = 0; s < S; s++) {
        run_span(m, &single, tokens + 5 * s, 0, 4, 0);
        for (int t = 4; t < 4 + STEPS; t++) run_span(m, &single, tokens + 5 * s + t, 0, 1, t);
        float d = max_rel_diff(batch.logits + (size_t)s * VP, single.logits, V);
        if (d > worst) worst = d;
    }
    CHECK(worst <= 1e-4f);
    gpt2_kv_free(&batch);
    gpt2_kv_free(&single);
}

/* Sequences at their own positions in one batch (a server's requests) give each row the same
 * bits as running that sequence alone through the same prefill and steps. */
static void test_rows_equal_alone(const gpt2_model *m, const int32_t *tokens) {
    gpt2c_error err;
    gpt2_kv batch, single;
    enum { S = 3, STEPS = 6 };
    int lens[S] = {3, 7, 5};
    float *want = malloc((size_t)S * STEPS * V * sizeof *want);
    CHECK(gpt2_kv_plan(&batch, m, S, 32, 16, 0, &err) == 0);
    CHECK(gpt2_kv_plan(&single, m, 1, 32, 16, 0, &err) == 0);
    for (int s = 0; s < S; s++) { /* alone: the prompt, then one token at a time */
        gpt2_prefill(m, &single, tokens + 10 * s, 0, lens[s], 0);
        for (int step = 0; step < STEPS; step++) {
            int t = lens[s] + step;
            run_span(m, &single, tokens + 10 * s + t, 0, 1, t);
            memcpy(want + ((size_t)s * STEPS + step) * V, single.logits, V * sizeof *want);
        }
    }
    for (int s = 0; s < S; s++) gpt2_prefill(m, &batch, tokens + 10 * s, s, lens[s], 0);
    for (int step = 0; step < STEPS; step++) {
        int32_t next[S];
        gpt2_span rows[S];
        for (int s = 0; s < S; s++)
            next[s] = tokens[10 * s + lens[s] + step], rows[s] = (gpt2_span){s, lens[s] + step, 1};
        /* the first sequence skips the last step: a batch of the other two then */
        int first = step == STEPS - 1;
        gpt2_infer(m, &batch, next + first, rows + first, S - first);
        for (int s = first; s < S; s++)
            CHECK(memcmp(batch.logits + (size_t)s * VP, want + ((size_t)s * STEPS + step) * V,
                         V * sizeof *want) == 0);
    }
    free(want);
    gpt2_kv_free(&batch);
    gpt2_kv_free(&single);
}

/* Prompt chunks of several sequences in one forward (a server's new requests) give each the bits
 * it gets alone, whatever their lengths (1 to GPT2_SHORT_CHUNK) and positions: the logits of
 * each chunk's end, and the cache it leaves (the next token's logits). */
static void test_spans_equal_alone(const gpt2_model *m, const int32_t *tokens) {
    gpt2c_error err;
    gpt2_kv batch, single;
    enum { S = 4 };
    /* sequence s: `before` tokens already in its cache, then a chunk of n */
    int before[S] = {0, 5, 0, 40}, n[S] = {1, 9, GPT2_SHORT_CHUNK, 4};
    float *want = malloc((size_t)S * 2 * V * sizeof *want);
    CHECK(gpt2_kv_plan(&batch, m, S, 80, 64, 0, &err) == 0);
    CHECK(gpt2_kv_plan(&single, m, 1, 80, 64, 1, &err) == 0);
    for (int s = 0; s < S; s++) { /* alone: what came before, the chunk, one more token */
        const int32_t *t = tokens + 7 * s;
        if (before[s]) gpt2_prefill(m, &single, t, 0, before[s], 0);
        run_span(m, &single, t + before[s], 0, n[s], before[s]);
        memcpy(want + (size_t)2 * s * V, single.logits, V * sizeof *want);
        run_span(m, &single, t + before[s] + n[s], 0, 1, before[s] + n[s]);
        memcpy(want + (size_t)(2 * s + 1) * V, single.logits, V * sizeof *want);
    }
    int32_t chunks[80];
    gpt2_span spans[S];
    int at = 0;
    for (int s = 0; s < S; s++) {
        const int32_t *t = tokens + 7 * s;
        if (before[s]) gpt2_prefill(m, &batch, t, s, before[s], 0);
        memcpy(chunks + at, t + before[s], (size_t)n[s] * sizeof *chunks);
        spans[s] = (gpt2_span){s, before[s], n[s]};
        at += n[s];
    }
    gpt2_infer(m, &batch, chunks, spans, S);
    for (int s = 0; s < S; s++) {
        CHECK(memcmp(batch.logits + (size_t)s * VP, want + (size_t)2 * s * V, V * sizeof *want) == 0);
        run_span(m, &batch, tokens + 7 * s + before[s] + n[s], s, 1, before[s] + n[s]);
        CHECK(memcmp(batch.logits + (size_t)s * VP, want + (size_t)(2 * s + 1) * V,
                     V * sizeof *want) == 0);
    }
    /* and the rowwise products compute what the GEMM library does, to float tolerance: the
     * same 32 tokens as a short span (above) and as the start of a long one */
    run_span(m, &single, tokens + 7 * 2, 0, GPT2_SHORT_CHUNK + 1, 0);
    gpt2_infer_scores(m, &single, 0, n[2] - 1, 1);
    CHECK(max_rel_diff(single.scores, want + (size_t)2 * 2 * V, V) < 1e-5);
    free(want);
    gpt2_kv_free(&batch);
    gpt2_kv_free(&single);
}

static void test_sampler(void) {
    gpt2c_error err;
    enum { NV = 10, DRAWS = 200000 };
    float logits[NV] = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 2.5f, 0.0f, 1.7f, 3.0f, -2.0f};
    rng r;
    rng_seed(&r, 7);
    sampler s;
    /* top-k 1 is greedy at any temperature; greedy takes the lowest id on ties */
    CHECK(sampler_init(&s, 5.0f, 1, 1.0f, NV, &err) == 0);
    CHECK(sampler_next(&s, logits, NV, &r) == 8);
    sampler_free(&s);
    float tied[4] = {1, 3, 3, 0};
    CHECK(sampler_init(&s, 0.0f, 50, 1.0f, 4, &err) == 0);
    CHECK(sampler_next(&s, tied, 4, &r) == 1);
    sampler_free(&s);
    /* top-k 4 at temperature 0.8: the draws follow softmax(top-4 logits / 0.8) (chi-square,
     * 3 degrees of freedom; 16.27 is the 0.1% critical value; the seed is fixed) */
    CHECK(sampler_init(&s, 0.8f, 4, 1.0f, NV, &err) == 0);
    int counts[NV] = {0};
    for (int i = 0; i < DRAWS; i++) counts[sampler_next(&s, logits, NV, &r)]++;
    const int top[4] = {8, 1, 5, 3}; /* 3.0, 2.5, 2.5, 2.0 */
    double z = 0, chi2 = 0;
    for (int i = 0; i < 4; i++) z += exp(logits[top[i]] / 0.8);
    int outside = DRAWS;
    for (int i = 0; i < 4; i++) {
        double expect = DRAWS * exp(logits[top[i]] / 0.8) / z;
        chi2 += (counts[top[i]] - expect) * (counts[top[i]] - expect) / expect;
        outside -= counts[top[i]];
    }
    if (chi2 >= 16.27) fprintf(stderr, "top-k chi-square %g\n", chi2);
    CHECK(chi2 < 16.27);
    CHECK(outside == 0);
    sampler_free(&s);
    /* top-p 0.5 at temperature 1: the smallest prefix reaching half the mass */
    CHECK(sampler_init(&s, 1.0f, NV, 0.5f, NV, &err) == 0);
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 20000; i++) counts[sampler_next(&s, logits, NV, &r)]++;
    /* 3.0 alone has 32% of the mass, with the first 2.5 (id 1, the lower id) 51% */
    CHECK(counts[8] + counts[1] == 20000 && counts[8] > counts[1] && counts[1] > 0);
    sampler_free(&s);
    /* every token a candidate (the server's default, no top-k) at temperature 1: the draws follow
     * softmax(logits) (chi-square, 9 degrees of freedom; 27.88 is the 0.1% critical value) */
    CHECK(sampler_init(&s, 1.0f, NV, 1.0f, NV, &err) == 0);
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < DRAWS; i++) counts[sampler_next(&s, logits, NV, &r)]++;
    z = 0, chi2 = 0;
    for (int i = 0; i < NV; i++) z += exp(logits[i]);
    for (int i = 0; i < NV; i++) {
        double expect = DRAWS * exp(logits[i]) / z;
        chi2 += (counts[i] - expect) * (counts[i] - expect) / expect;
    }
    if (chi2 >= 27.88) fprintf(stderr, "all-token chi-square %g\n", chi2);
    CHECK(chi2 < 27.88);
    sampler_free(&s);
    /* a nucleus of 500 tokens out of 1000 equal ones, beyond the first ranked candidates looked
     * at: ties rank by id, so exactly ids 0..499 are drawn, the last of them too */
    enum { WIDE = 1000 };
    static float flat[WIDE];
    CHECK(sampler_init(&s, 1.0f, WIDE, 0.5f, WIDE, &err) == 0);
    int lowest = WIDE, highest = -1;
    for (int i = 0; i < 20000; i++) {
        int id = sampler_next(&s, flat, WIDE, &r);
        lowest = id < lowest ? id : lowest, highest = id > highest ? id : highest;
    }
    CHECK(lowest == 0 && highest == 499);
    sampler_free(&s);
    /* bad settings */
    CHECK(sampler_init(&s, 1.0f, 0, 1.0f, NV, &err) == -1);
    CHECK(sampler_init(&s, 1.0f, 5, 0.0f, NV, &err) == -1);
    CHECK(sampler_init(&s, 1.0f, 5, 1.5f, NV, &err) == -1);
    CHECK(sampler_init(&s, -1.0f, 5, 1.0f, NV, &err) == -1);
}

int main(void) {
    gpt2c_error err;
    gpt2_model m;
    gpt2_config cfg = {2, 2, 32, 128};
    gpt2_backend cpu;
    if (gpt2_backend_open(&cpu, "cpu", 0, &err) != 0) return 1;
    if (gpt2_create(&m, &cfg, &cpu, &err) != 0) return 1;
    if (gpt2_init_random(&m, 3, &err) != 0) return 1;
    /* bigger than GPT-2's init, so that the logits are far from uniform */
    for (size_t i = 0; i < m.table.total; i++) m.params[i] *= 5.0f;
    enum { T = 90 };
    int32_t tokens[T + 1];
    rng r;
    rng_seed(&r, 11);
    for (int i = 0; i <= T; i++) tokens[i] = (int32_t)(rng_next(&r) % V);
    test_cache_equals_recompute(&m, tokens, T);
    test_cache_equals_training_forward(&m, tokens, T);
    test_scores_equal_training_forward(&m, tokens, T);
    test_batch_equals_single(&m, tokens);
    test_rows_equal_alone(&m, tokens);
    test_spans_equal_alone(&m, tokens);
    gpt2_free(&m); /* the same in bf16, on a model without a training plan */
    CHECK(gpt2_create(&m, &cfg, &cpu, &err) == 0 && gpt2_init_random(&m, 3, &err) == 0);
    CHECK(gpt2_set_precision(&m, GPT2_BF16, &err) == 0);
    test_rows_equal_alone(&m, tokens);
    test_spans_equal_alone(&m, tokens);
    test_sampler();
    gpt2_free(&m);
    return check_done();
}
