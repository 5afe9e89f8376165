/* /v1/completions: checking a request as OpenAI does (wrong types and ranges, unknown fields and
 * unsupported values are 400s that name the field), and building its answers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/openai.h"
#include "util/json_text.h"
#include "util/time.h"

static void set_param(api_error *err, const char *param) {
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
}

static int bad(api_error *err, const char *param, const char *fmt, const char *what) {
    err->status = 400;
    set_param(err, param);
    snprintf(err->message, sizeof err->message, fmt, what);
    return -1;
}

/* A number field within [lo, hi] (integers only when integral). Absent or null: *out stays. */
static int number(json_t *req, const char *key, double lo, double hi, int integral, double *out,
                  api_error *err) {
    json_t *v = json_object_get(req, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v) || (integral && !json_is_integer(v)))
        return bad(err, key, integral ? "'%s' must be an integer" : "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) {
        err->status = 400;
        set_param(err, key);
        snprintf(err->message, sizeof err->message, "'%s' must be in [%g, %g], not %g", key, lo, hi, d);
        return -1;
    }
    *out = d;
    return 0;
}

/* Fields of OpenAI's API we accept only at their neutral value. */
static int neutral(json_t *req, api_error *err) {
    static const struct {
        const char *key;
        double value; /* numbers */
    } numbers[] = {{"frequency_penalty", 0}, {"presence_penalty", 0}};
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        json_t *v = json_object_get(req, numbers[i].key);
        if (v && !json_is_null(v) && (!json_is_number(v) || json_number_value(v) != numbers[i].value))
            return bad(err, numbers[i].key, "'%s' is not supported (only its neutral value 0)",
                       numbers[i].key);
    }
    json_t *v = json_object_get(req, "echo");
    if (v && !json_is_null(v) && !json_is_false(v))
        return bad(err, "echo", "'%s' is not supported (only false)", "echo");
    v = json_object_get(req, "suffix");
    if (v && !json_is_null(v) && !(json_is_string(v) && !*json_string_value(v)))
        return bad(err, "suffix", "'%s' is not supported (only null)", "suffix");
    return 0;
}

static const char *const known[] = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream",
    "stream_options", "logit_bias", "logprobs", "top_k", "user", "frequency_penalty",
    "presence_penalty", "echo", "best_of", "suffix", NULL};

static int prompt_ids(const gpt2c_tokenizer *tok, json_t *p, int context, int32_t **ids, int *n,
                      api_error *err) {
    gpt2c_error e;
    gpt2c_encoder *enc = gpt2c_encoder_new(tok, &e);
    gpt2c_ids out = {0};
    int rc = enc && gpt2c_encode(enc, json_string_value(p), json_string_length(p), &out, &e) == 0;
    gpt2c_encoder_free(enc);
    if (!rc) {
        gpt2c_ids_free(&out);
        err->status = 500;
        set_param(err, NULL);
        snprintf(err->message, sizeof err->message, "%s", e.msg);
        return -1;
    }
    if (out.len == 0) gpt2c_ids_push(&out, GPT2C_EOT, &e); /* as `sample`: from <|endoftext|> */
    if (out.len >= (size_t)context) {
        gpt2c_ids_free(&out);
        err->status = 400;
        set_param(err, "prompt");
        snprintf(err->message, sizeof err->message, "the prompt has %zu tokens; the model's "
                 "context is %d, and at least one new token must fit", out.len, context);
        return -1;
    }
    *n = (int)out.len;
    *ids = malloc(out.len * sizeof **ids);
    for (size_t i = 0; *ids && i < out.len; i++) (*ids)[i] = (int32_t)out.data[i];
    gpt2c_ids_free(&out);
    return *ids ? 0 : bad(err, NULL, "out of memory%s", "");
}

int openai_parse_completion(const char *body, size_t len, const gpt2c_tokenizer *tok, int slots,
                            int context, completion *c, api_error *err) {
    memset(c, 0, sizeof *c);
    c->capped_max_tokens = -1;
    json_error_t je;
    json_t *req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        err->status = 400;
        set_param(err, NULL);
        snprintf(err->message, sizeof err->message, "the body is not a JSON object: %s", je.text);
        return -1;
    }
    int rc = -1;
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = !strcmp(key, known[i]);
        if (!ok) {
            bad(err, key, "unrecognized request argument supplied: %s", key);
            goto out;
        }
    }
    double max_tokens = 16, temperature = 1, top_p = 1, n = 1, top_k = GPT2_VOCAB, logprobs = -1;
    double seed = -1, best_of = -1;
    if (number(req, "max_tokens", 1, 1e9, 1, &max_tokens, err) ||
        number(req, "temperature", 0, 2, 0, &temperature, err) ||
        number(req, "top_p", 1e-300, 1, 0, &top_p, err) || number(req, "n", 1, slots, 1, &n, err) ||
        number(req, "top_k", 1, GPT2_VOCAB, 1, &top_k, err) ||
        number(req, "logprobs", 0, SERVE_MAX_LOGPROBS, 1, &logprobs, err) ||
        number(req, "seed", 0, 9007199254740991.0, 1, &seed, err) ||
        number(req, "best_of", 1, slots, 1, &best_of, err) || neutral(req, err))
        goto out;
    if (best_of >= 0 && best_of != n) {
        bad(err, "best_of", "'%s' is not supported (only equal to n)", "best_of");
        goto out;
    }
    v = json_object_get(req, "model");
    if (v && !json_is_string(v)) {
        bad(err, "model", "'%s' must be a string", "model");
        goto out;
    }
    v = json_object_get(req, "user");
    if (v && !json_is_null(v) && !json_is_string(v)) {
        bad(err, "user", "'%s' must be a string", "user");
        goto out;
    }
    v = json_object_get(req, "stream");
    if (v && !json_is_null(v) && !json_is_boolean(v)) {
        bad(err, "stream", "'%s' must be a boolean", "stream");
        goto out;
    }
    c->stream = json_is_true(v);
    v = json_object_get(req, "stream_options");
    if (v && !json_is_null(v)) {
        json_t *u = json_object_get(v, "include_usage");
        if (!json_is_object(v) || (u && !json_is_boolean(u)) || json_object_size(v) != (u != NULL)) {
            bad(err, "stream_options", "'%s' must be {\"include_usage\": true|false}", "stream_options");
            goto out;
        }
        c->include_usage = json_is_true(u);
    }
    /* stop: a string or up to 4 non-empty strings */
    const char *stops[SERVE_MAX_STOP];
    int nstop = 0;
    v = json_object_get(req, "stop");
    if (v && json_is_string(v)) stops[nstop++] = json_string_value(v);
    else if (v && json_is_array(v) && json_array_size(v) <= SERVE_MAX_STOP) {
        size_t i;
        json_t *s;
        json_array_foreach(v, i, s) {
            if (!json_is_string(s)) break;
            stops[nstop++] = json_string_value(s);
        }
        if ((size_t)nstop != json_array_size(v)) nstop = -1;
    } else if (v && !json_is_null(v)) nstop = -1;
    for (int i = 0; i < nstop; i++)
        if (!*stops[i]) nstop = -1;
    if (nstop < 0) {
        bad(err, "stop", "'%s' must be a non-empty string or a list of up to 4 of them", "stop");
        goto out;
    }
    /* logit_bias: {"token id": -100..100} */
    json_t *bias = json_object_get(req, "logit_bias");
    if (bias && !json_is_null(bias) && !json_is_object(bias)) {
        bad(err, "logit_bias", "'%s' must be an object of token ids to numbers", "logit_bias");
        goto out;
    }
    json_object_foreach(bias, key, v) {
        char *end;
        long id = strtol(key, &end, 10);
        if (!*key || *end || id < 0 || id >= GPT2_VOCAB || !json_is_number(v) ||
            !(fabs(json_number_value(v)) <= 100)) {
            bad(err, "logit_bias", "'%s' takes token ids 0..50256 and values in [-100, 100]",
                "logit_bias");
            goto out;
        }
    }
    /* prompt: a string or a list of them */
    json_t *p = json_object_get(req, "prompt"), *prompts = json_array();
    if (p && json_is_string(p)) json_array_append(prompts, p);
    else if (p && json_is_array(p) && json_array_size(p) > 0) {
        size_t i;
        json_t *s;
        json_array_foreach(p, i, s) if (json_is_string(s)) json_array_append(prompts, s);
    }
    if (!p || json_array_size(prompts) == 0 || (json_is_array(p) && json_array_size(prompts) != json_array_size(p))) {
        json_decref(prompts);
        bad(err, "prompt", "'%s' must be a string or a non-empty list of strings", "prompt");
        goto out;
    }
    if ((double)json_array_size(prompts) * n > slots) {
        json_decref(prompts);
        err->status = 400;
        set_param(err, "n");
        snprintf(err->message, sizeof err->message, "%zu prompt(s) x n=%d choices need more than "
                 "the server's %d slots", json_array_size(prompts), (int)n, slots);
        goto out;
    }
    c->n = (int)n;
    c->nreqs = (int)json_array_size(prompts);
    c->reqs = calloc((size_t)c->nreqs, sizeof *c->reqs);
    unsigned long long base_seed = seed >= 0 ? (unsigned long long)seed
                                             : (unsigned long long)(now_ms() * 1e3);
    for (int i = 0; c->reqs && i < c->nreqs; i++) {
        serve_request *r = c->reqs[i] = request_new(c->n);
        if (!r || prompt_ids(tok, json_array_get(prompts, (size_t)i), context, &r->prompt,
                             &r->nprompt, err) != 0) {
            if (!r) bad(err, NULL, "out of memory%s", "");
            json_decref(prompts);
            goto out;
        }
        int room = context - r->nprompt;
        r->max_tokens = (int)max_tokens < room ? (int)max_tokens : room;
        if (r->max_tokens < (int)max_tokens) c->capped_max_tokens = r->max_tokens;
        r->temperature = (float)temperature, r->top_p = (float)top_p, r->top_k = (int)top_k;
        r->seed = base_seed, r->logprobs = (int)logprobs;
        for (int k = 0; k < nstop; k++) r->stop[r->nstop++] = strdup(stops[k]);
        r->nbias = (int)json_object_size(bias);
        r->bias_ids = calloc((size_t)r->nbias + 1, sizeof *r->bias_ids);
        r->bias_values = calloc((size_t)r->nbias + 1, sizeof *r->bias_values);
        int k = 0;
        json_object_foreach(bias, key, v) {
            r->bias_ids[k] = (int32_t)strtol(key, NULL, 10);
            r->bias_values[k++] = (float)json_number_value(v);
        }
    }
    json_decref(prompts);
    if (!c->reqs) {
        bad(err, NULL, "out of memory%s", "");
        goto out;
    }
    long long t = (long long)time(NULL);
    c->created = t;
    snprintf(c->id, sizeof c->id, "cmpl-%llx%04x", (unsigned long long)(now_ms() * 1e3),
             (unsigned)rand() & 0xffff);
    rc = 0;
out:
    json_decref(req);
    return rc;
}

void completion_free(completion *c, engine *e) {
    for (int i = 0; i < c->nreqs; i++)
        if (c->reqs[i]) engine_release(e, c->reqs[i]);
    free(c->reqs);
    memset(c, 0, sizeof *c);
}

/* A token as a key of top_logprobs: its text where its bytes are UTF-8, else OpenAI's form for
 * a piece of a character, bytes:\xe2\x80 (so that two such tokens do not share one key). */
static size_t token_key(char *out, const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)utf8_decode(b + i, n - i, &cp);
        if (cp == UTF8_INVALID) {
            size_t k = (size_t)sprintf(out, "bytes:");
            for (size_t j = 0; j < n; j++) k += (size_t)sprintf(out + k, "\\x%02x", b[j]);
            return k;
        }
    }
    memcpy(out, b, n);
    return n;
}

static json_t *logprobs_json(const serve_choice *ch, const gpt2c_tokenizer *tok, int k, int from,
                             int to) {
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t offset = 0;
    for (int t = 0; t < to; t++) {
        size_t n;
        const unsigned char *b = gpt2c_token_bytes(tok, (uint32_t)ch->token_ids[t], &n);
        if (t >= from) {
            json_array_append_new(tokens, json_text((const char *)b, n));
            json_array_append_new(lps, json_real(ch->token_logprobs[t]));
            json_t *top = json_object();
            for (int j = 0; j < k; j++) {
                size_t m;
                const unsigned char *tb = gpt2c_token_bytes(tok, (uint32_t)ch->top_ids[t][j], &m);
                char name[6 + 4 * GPT2C_MAX_TOKEN_BYTES + 1];
                size_t len = token_key(name, tb, m);
                json_object_setn_new(top, name, len, json_real(ch->top_logprobs[t][j]));
            }
            json_array_append_new(tops, top);
            json_array_append_new(offs, json_integer((json_int_t)offset));
        }
        offset += n;
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps,
                     "top_logprobs", tops, "text_offset", offs);
}

static json_t *usage_of(const completion *c) {
    long long prompt = 0, gen = 0;
    for (int i = 0; i < c->nreqs; i++)
        prompt += c->reqs[i]->nprompt, gen += c->reqs[i]->completion_tokens;
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                     (json_int_t)gen, "total_tokens", (json_int_t)(prompt + gen));
}

json_t *openai_response(const completion *c, const char *model, const gpt2c_tokenizer *tok) {
    json_t *choices = json_array();
    for (int i = 0; i < c->nreqs * c->n; i++) {
        const serve_request *r = c->reqs[i / c->n];
        const serve_choice *ch = &r->choices[i % c->n];
        json_t *lp = r->logprobs >= 0 ? logprobs_json(ch, tok, r->logprobs, 0, ch->ntokens)
                                      : json_null();
        json_array_append_new(choices, json_pack("{s:o, s:i, s:o, s:s?}", "text",
                                                 json_text(ch->text, ch->len), "index", i,
                                                 "logprobs", lp, "finish_reason",
                                                 ch->finish_reason ? ch->finish_reason : "stop"));
    }
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", c->id, "object",
                          "text_completion", "created", (json_int_t)c->created, "model", model,
                          "choices", choices, "usage", usage_of(c));
    if (c->capped_max_tokens >= 0) /* said, as an extension: the context capped max_tokens */
        json_object_set_new(o, "max_tokens_capped_to", json_integer(c->capped_max_tokens));
    return o;
}

json_t *openai_chunk(const completion *c, const char *model, const gpt2c_tokenizer *tok, int i,
                     size_t from, size_t to, int tok_from, int tok_to, int final) {
    const serve_request *r = c->reqs[i / c->n];
    const serve_choice *ch = &r->choices[i % c->n];
    json_t *lp = r->logprobs >= 0 ? logprobs_json(ch, tok, r->logprobs, tok_from, tok_to) : json_null();
    json_t *choice = json_pack("{s:o, s:i, s:o}", "text", json_text(ch->text + from, to - from),
                               "index", i, "logprobs", lp);
    json_object_set_new(choice, "finish_reason",
                        final ? json_string(ch->finish_reason ? ch->finish_reason : "stop")
                              : json_null());
    return json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", c->id, "object", "text_completion",
                     "created", (json_int_t)c->created, "model", model, "choices", choice);
}

json_t *openai_usage(const completion *c) {
    return json_pack("{s:s, s:s, s:I, s:[], s:o}", "id", c->id, "object", "text_completion",
                     "created", (json_int_t)c->created, "choices", "usage", usage_of(c));
}

json_t *openai_error(const api_error *err) {
    const char *type = err->status == 401 ? "authentication_error"
                     : err->status >= 500 ? "server_error"
                                          : "invalid_request_error";
    return json_pack("{s:{s:s, s:s, s:s?, s:n}}", "error", "message", err->message, "type", type,
                     "param", err->param[0] ? err->param : NULL, "code");
}
