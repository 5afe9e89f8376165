/* A choice's text and logprobs; see choices.h. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serve/choices.h"
#include "util/bytes.h"

void logprob_of(const float *logits, int V, int k, int32_t id, token_logprob *out) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += expf(logits[i] - mx);
    double lse = mx + log(sum);
    int32_t *top = out->top_ids;
    int n = 0;
    for (int i = 0; i < V; i++) { /* insertion into the k best: by logit, then lower id */
        if (n == k && (k == 0 || !(logits[i] > logits[top[k - 1]]))) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && logits[i] > logits[top[j - 1]]) top[j] = top[j - 1], j--;
        top[j] = i;
    }
    int has = 0;
    for (int j = 0; j < n; j++) has |= top[j] == id;
    if (!has) top[n++] = id; /* the token itself, OpenAI's "+1" */
    out->id = id, out->ntop = n;
    out->logprob = (float)(logits[id] - lse);
    for (int j = 0; j < n; j++) out->top_logprobs[j] = (float)(logits[top[j]] - lse);
}

void logprob_rows(const float *logits, size_t stride, int n, int V, int k, const int32_t *ids,
                  token_logprob *out) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) logprob_of(logits + (size_t)r * stride, V, k, ids[r], &out[r]);
}

void choice_free(serve_choice *ch) {
    free(ch->text), free(ch->lp), free(ch->pending);
    memset(ch, 0, sizeof *ch);
}

int choice_echo(serve_choice *ch, const gpt2c_tokenizer *tok, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        char buf[GPT2C_STREAM_OUT_MAX];
        int nb = gpt2c_stream_push(&ch->sd, tok, (uint32_t)ids[i], buf, NULL);
        if (nb > 0 && bytes_append(&ch->text, &ch->len, &ch->cap, buf, (size_t)nb) != 0) return -1;
    }
    return 0;
}

/* The first n bytes held back join the published text. */
static int publish(serve_choice *ch, size_t n) {
    if (bytes_append(&ch->text, &ch->len, &ch->cap, ch->pending, n) != 0) return -1;
    memmove(ch->pending, ch->pending + n, ch->npending - n);
    ch->npending -= n;
    return 0;
}

/* New bytes: publish what cannot be the start of a stop string; cut at one (1). */
static int take(serve_choice *ch, const char *bytes, size_t n, char *const *stops, int nstop,
                int last) {
    if (bytes_append(&ch->pending, &ch->npending, &ch->cap_pending, bytes, n) != 0) return -1;
    const char *p = ch->pending;
    size_t len = ch->npending, cut = len;
    for (int i = 0; i < nstop; i++) { /* the earliest stop string ends the text before it */
        const char *hit = memmem(p, len, stops[i], strlen(stops[i]));
        if (hit && (size_t)(hit - p) < cut) cut = (size_t)(hit - p);
    }
    if (cut < len) {
        if (publish(ch, cut) != 0) return -1;
        ch->npending = 0;
        return 1;
    }
    size_t hold = 0; /* the longest end of the text that begins a stop string */
    for (int i = 0; !last && i < nstop; i++) {
        size_t sl = strlen(stops[i]);
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > hold; k--)
            if (memcmp(p + len - k, stops[i], k) == 0) {
                hold = k;
                break;
            }
    }
    return publish(ch, len - hold);
}

int choice_push(serve_choice *ch, const gpt2c_tokenizer *tok, int32_t id, char *const *stops,
                int nstop) {
    char buf[GPT2C_STREAM_OUT_MAX];
    int nb = gpt2c_stream_push(&ch->sd, tok, (uint32_t)id, buf, NULL);
    return take(ch, buf, nb > 0 ? (size_t)nb : 0, stops, nstop, 0);
}

int choice_flush(serve_choice *ch, char *const *stops, int nstop) {
    char buf[GPT2C_STREAM_OUT_MAX];
    int nb = gpt2c_stream_finish(&ch->sd, buf);
    return take(ch, buf, nb > 0 ? (size_t)nb : 0, stops, nstop, 1);
}

int choice_add_logprobs(serve_choice *ch, const token_logprob *lp, int n) {
    if (ch->nlp + n > ch->lp_cap) {
        int cap = ch->lp_cap ? ch->lp_cap : 32;
        while (cap < ch->nlp + n) cap *= 2;
        token_logprob *b = realloc(ch->lp, (size_t)cap * sizeof *b);
        if (!b) return -1;
        ch->lp = b, ch->lp_cap = cap;
    }
    memcpy(ch->lp + ch->nlp, lp, (size_t)n * sizeof *lp);
    ch->nlp += n;
    return 0;
}
