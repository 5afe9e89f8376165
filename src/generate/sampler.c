#include <math.h>
#include <stdlib.h>

#include "generate/sampler.h"
#include "util/error.h"

int sampler_init(sampler *s, float temperature, int top_k, float top_p, int vocab, gpt2c_error *err) {
    if (!(temperature >= 0.0f) || !isfinite(temperature))
        return err_set(err, "temperature must be a finite number >= 0");
    if (top_k < 1) return err_set(err, "top-k must be at least 1");
    if (!(top_p > 0.0f && top_p <= 1.0f)) return err_set(err, "top-p must be in (0, 1]");
    *s = (sampler){.temperature = temperature, .top_k = top_k < vocab ? top_k : vocab,
                   .top_p = top_p, .cap = vocab};
    s->ids = malloc((size_t)vocab * sizeof *s->ids);
    s->vals = malloc((size_t)vocab * sizeof *s->vals);
    if (!s->ids || !s->vals) {
        sampler_free(s);
        return err_set(err, "out of memory");
    }
    return 0;
}

void sampler_free(sampler *s) {
    free(s->ids);
    free(s->vals);
    s->ids = NULL, s->vals = NULL;
}

/* Candidate a ranks before b: higher logit, then lower id. */
static int before(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

/* Sift-down in a heap whose root is the candidate ranked LAST (so it is the one to replace). */
static void sift_down(float *v, int32_t *id, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && before(v[worst], id[worst], v[l], id[l])) worst = l;
        if (r < n && before(v[worst], id[worst], v[r], id[r])) worst = r;
        if (worst == i) return;
        float tv = v[i];
        int32_t ti = id[i];
        v[i] = v[worst], id[i] = id[worst];
        v[worst] = tv, id[worst] = ti;
        i = worst;
    }
}

/* The k best candidates in rank order, in s->vals / s->ids [0..k). */
static void top_candidates(sampler *s, const float *logits, int vocab, int k) {
    float *v = s->vals;
    int32_t *id = s->ids;
    for (int i = 0; i < k; i++) v[i] = logits[i], id[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(v, id, k, i);
    for (int i = k; i < vocab; i++)
        if (before(logits[i], i, v[0], id[0])) {
            v[0] = logits[i], id[0] = i;
            sift_down(v, id, k, 0);
        }
    /* heap sort: repeatedly move the worst to the end */
    for (int n = k - 1; n > 0; n--) {
        float tv = v[0];
        int32_t ti = id[0];
        v[0] = v[n], id[0] = id[n];
        v[n] = tv, id[n] = ti;
        sift_down(v, id, n, 0);
    }
}

/* exp((logit - max) / temperature), the candidates' unnormalised probability (in double, then
 * float: the same value whichever way a candidate is reached). */
static float weight(float logit, float maxv, float temperature) {
    return (float)exp(((double)logit - maxv) / temperature);
}

/* The index at which the running sum of w[0..n) first exceeds u (the last one if u is within
 * rounding of the total). */
static int walk(const float *w, int n, double u) {
    double acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += w[i];
        if (u < acc) return i;
    }
    return n - 1;
}

/* Every token a candidate (no top-k). Without a nucleus the order of the walk does not change
 * the distribution, so it goes in id order and nothing is sorted; with one, the ranked prefix
 * that reaches top_p of the total comes from the m best tokens for m = 64, 512, ... until it fits
 * (a sort of the whole vocabulary per draw took 9 ms, as long as a d12 forward). */
static int32_t draw_from_all(sampler *s, const float *logits, int vocab, rng *r) {
    float maxv = logits[0];
    for (int i = 1; i < vocab; i++)
        if (logits[i] > maxv) maxv = logits[i];
    double total = 0.0;
    for (int i = 0; i < vocab; i++) total += s->vals[i] = weight(logits[i], maxv, s->temperature);
    if (s->top_p >= 1.0f) return walk(s->vals, vocab, rng_uniform(r) * total);
    for (int m = 64;; m *= 8) {
        if (m > vocab) m = vocab;
        top_candidates(s, logits, vocab, m);
        double acc = 0.0;
        int n = 0;
        while (n < m) {
            acc += s->vals[n] = weight(s->vals[n], maxv, s->temperature);
            n++;
            if (acc >= s->top_p * total) break;
        }
        if (acc >= s->top_p * total || m == vocab)
            return s->ids[walk(s->vals, n, rng_uniform(r) * acc)];
    }
}

int32_t sampler_next(sampler *s, const float *logits, int vocab, rng *r) {
    if (s->temperature == 0.0f || s->top_k == 1) {
        int32_t best = 0;
        for (int i = 1; i < vocab; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    if (s->top_k >= vocab) return draw_from_all(s, logits, vocab, r);
    int k = s->top_k;
    top_candidates(s, logits, vocab, k);
    /* softmax(logits / temperature) over the candidates, in double */
    double sum = 0.0;
    float maxv = s->vals[0];
    for (int i = 0; i < k; i++) sum += s->vals[i] = weight(s->vals[i], maxv, s->temperature);
    /* nucleus: the shortest prefix whose mass reaches top_p of the total */
    int n = k;
    if (s->top_p < 1.0f) {
        double acc = 0.0;
        for (n = 0; n < k;) {
            acc += s->vals[n++];
            if (acc >= s->top_p * sum) break;
        }
        sum = acc;
    }
    return s->ids[walk(s->vals, n, rng_uniform(r) * sum)];
}
