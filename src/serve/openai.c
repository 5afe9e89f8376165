/* /v1/completions: checking a request as OpenAI does (wrong types and ranges, unknown fields and
 * unsupported values are 400s that name the field), field by field from one table, and building
 * its answers. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/openai.h"
#include "serve/tokenize.h"
#include "util/json_text.h"
#include "util/time.h"

int api_vfail(api_error *err, int status, const char *param, const char *fmt, va_list ap) {
    err->status = status;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    err->param[utf8_whole_len(err->param, strlen(err->param))] = 0;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    err->message[utf8_whole_len(err->message, strlen(err->message))] = 0;
    return -1;
}

int api_fail(api_error *err, int status, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    api_vfail(err, status, param, fmt, ap);
    va_end(ap);
    return -1;
}

json_t *openai_error(const api_error *err) {
    const char *type = err->status == 401 ? "authentication_error"
                     : err->status >= 500 ? "server_error"
                                          : "invalid_request_error";
    /* (json_text: the message may quote what a client sent, which need not be UTF-8) */
    json_t *param = err->param[0] ? json_text(err->param, strlen(err->param)) : json_null();
    return json_pack("{s:{s:o, s:s, s:o, s:n}}", "error", "message",
                     json_text(err->message, strlen(err->message)), "type", type, "param", param,
                     "code");
}

/* ---- the fields ---- */

/* A request's fields as read, before they are checked together. */
typedef struct fields {
    json_t *prompt, *logit_bias;
    double max_tokens, temperature, top_p, n, top_k, logprobs, seed, best_of;
    int stream, echo, include_usage;
    const char *stops[SERVE_MAX_STOP];
    int nstop;
} fields;

typedef struct field field;
/* Reads v (present, maybe null) into f's place in out; -1 with the error. */
typedef int read_fn(json_t *v, const field *f, fields *out, api_error *err);
struct field {
    const char *name;
    read_fn *read;
    double lo, hi;  /* numbers: the range */
    size_t at;      /* offsetof(fields, ...) */
};

#define AT(member) offsetof(fields, member)
#define PLACE(out, f, type) ((type *)((char *)(out) + (f)->at))

/* A number within [lo, hi]; an integer where the range's name says so (read_int). Null: as
 * absent. */
static int read_number_as(json_t *v, const field *f, fields *out, api_error *err, int integral) {
    if (json_is_null(v)) return 0;
    if (!json_is_number(v) || (integral && !json_is_integer(v)))
        return api_fail(err, 400, f->name, integral ? "'%s' must be an integer"
                                                    : "'%s' must be a number", f->name);
    double d = json_number_value(v);
    if (!(d >= f->lo && d <= f->hi))
        return api_fail(err, 400, f->name, "'%s' must be in [%g, %g], not %g", f->name, f->lo,
                        f->hi, d);
    *PLACE(out, f, double) = d;
    return 0;
}
static int read_number(json_t *v, const field *f, fields *out, api_error *err) {
    return read_number_as(v, f, out, err, 0);
}
static int read_int(json_t *v, const field *f, fields *out, api_error *err) {
    return read_number_as(v, f, out, err, 1);
}

static int read_bool(json_t *v, const field *f, fields *out, api_error *err) {
    if (json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return api_fail(err, 400, f->name, "'%s' must be a boolean", f->name);
    *PLACE(out, f, int) = json_is_true(v);
    return 0;
}

/* model and user: strings we accept and do not use (one model is served). */
static int read_string(json_t *v, const field *f, fields *out, api_error *err) {
    (void)out;
    if (json_is_null(v) || json_is_string(v)) return 0;
    return api_fail(err, 400, f->name, "'%s' must be a string", f->name);
}

/* Kept as JSON, checked with the others (prompt, logit_bias). */
static int read_json(json_t *v, const field *f, fields *out, api_error *err) {
    (void)err;
    *PLACE(out, f, json_t *) = json_is_null(v) ? NULL : v;
    return 0;
}

/* Fields of OpenAI's API taken only at their neutral value. */
static int read_zero(json_t *v, const field *f, fields *out, api_error *err) {
    (void)out;
    if (json_is_null(v) || (json_is_number(v) && json_number_value(v) == 0)) return 0;
    return api_fail(err, 400, f->name, "'%s' is not supported (only its neutral value 0)", f->name);
}
static int read_suffix(json_t *v, const field *f, fields *out, api_error *err) {
    (void)out;
    if (json_is_null(v) || (json_is_string(v) && !*json_string_value(v))) return 0;
    return api_fail(err, 400, f->name, "'%s' is not supported (only null)", f->name);
}

/* A string or a list of non-empty strings. */
static int read_stop(json_t *v, const field *f, fields *out, api_error *err) {
    if (json_is_null(v)) return 0;
    if (json_is_string(v) && *json_string_value(v)) {
        out->stops[out->nstop++] = json_string_value(v);
        return 0;
    }
    size_t i;
    json_t *s;
    int ok = json_is_array(v) && json_array_size(v) <= SERVE_MAX_STOP;
    json_array_foreach(v, i, s) {
        if (!ok) break;
        ok = json_is_string(s) && *json_string_value(s);
        if (ok) out->stops[out->nstop++] = json_string_value(s);
    }
    if (ok) return 0;
    return api_fail(err, 400, f->name, "'%s' must be a non-empty string or a list of up to %d of "
                    "them", f->name, SERVE_MAX_STOP);
}

static int read_stream_options(json_t *v, const field *f, fields *out, api_error *err) {
    if (json_is_null(v)) return 0;
    json_t *u = json_object_get(v, "include_usage");
    if (!json_is_object(v) || (u && !json_is_boolean(u)) || json_object_size(v) != (u != NULL))
        return api_fail(err, 400, f->name, "'%s' must be {\"include_usage\": true|false}", f->name);
    out->include_usage = json_is_true(u);
    return 0;
}

/* {"token id": -100..100} */
static int read_logit_bias(json_t *v, const field *f, fields *out, api_error *err) {
    if (!json_is_null(v) && !json_is_object(v))
        return api_fail(err, 400, f->name, "'%s' must be an object of token ids to numbers", f->name);
    const char *key;
    json_t *b;
    json_object_foreach(v, key, b) {
        char *end;
        long id = strtol(key, &end, 10);
        if (!*key || *end || id < 0 || id >= GPT2_VOCAB || !json_is_number(b) ||
            !(fabs(json_number_value(b)) <= 100))
            return api_fail(err, 400, f->name, "'%s' takes token ids 0..%d and values in "
                            "[-100, 100]", f->name, GPT2_VOCAB - 1);
    }
    return read_json(v, f, out, err);
}

static const field FIELDS[] = {
    {"model", read_string, 0, 0, 0},
    {"user", read_string, 0, 0, 0},
    {"prompt", read_json, 0, 0, AT(prompt)},
    {"max_tokens", read_int, 0, 1e9, AT(max_tokens)},
    {"temperature", read_number, 0, 2, AT(temperature)},
    /* (the sampler's top_p is a float: the least above 0 that one can hold) */
    {"top_p", read_number, FLT_TRUE_MIN, 1, AT(top_p)},
    {"n", read_int, 1, GPT2_BATCH_ROWS, AT(n)},
    {"top_k", read_int, 1, GPT2_VOCAB, AT(top_k)},
    {"logprobs", read_int, 0, SERVE_MAX_LOGPROBS, AT(logprobs)},
    {"seed", read_int, 0, 9007199254740991.0, AT(seed)},
    {"best_of", read_int, 1, GPT2_BATCH_ROWS, AT(best_of)},
    {"stream", read_bool, 0, 0, AT(stream)},
    {"echo", read_bool, 0, 0, AT(echo)},
    {"stream_options", read_stream_options, 0, 0, 0},
    {"stop", read_stop, 0, 0, 0},
    {"logit_bias", read_logit_bias, 0, 0, AT(logit_bias)},
    {"frequency_penalty", read_zero, 0, 0, 0},
    {"presence_penalty", read_zero, 0, 0, 0},
    {"suffix", read_suffix, 0, 0, 0},
};

static int read_fields(json_t *req, fields *out, api_error *err) {
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v) {
        const field *f = NULL;
        for (size_t i = 0; !f && i < sizeof FIELDS / sizeof *FIELDS; i++)
            if (!strcmp(key, FIELDS[i].name)) f = &FIELDS[i];
        if (!f) return api_fail(err, 400, key, "unrecognized request argument supplied: %s", key);
        if (f->read(v, f, out, err) != 0) return -1;
    }
    return 0;
}

/* ---- the prompts ---- */

/* The prompts as token ids: a string, a list of strings, a list of ids or a list of such
 * lists, as OpenAI allows. */
typedef struct prompt_list {
    gpt2c_ids *p;
    size_t n;
} prompt_list;

static void prompts_free(prompt_list *pl) {
    for (size_t i = 0; pl->p && i < pl->n; i++) gpt2c_ids_free(&pl->p[i]);
    free(pl->p);
}

/* One list of ids: prompt[i] (or the whole prompt when i < 0). */
static int read_ids(json_t *list, long i, gpt2c_ids *out, api_error *err) {
    char where[32] = "prompt";
    if (i >= 0) snprintf(where, sizeof where, "prompt[%ld]", i);
    if (json_array_size(list) == 0) return api_fail(err, 400, "prompt", "%s is an empty list of token ids", where);
    gpt2c_error e;
    if (gpt2c_ids_reserve(out, json_array_size(list), &e) != 0)
        return api_fail(err, 500, NULL, "out of memory");
    size_t j;
    json_t *t;
    json_array_foreach(list, j, t) {
        json_int_t id = json_is_integer(t) ? json_integer_value(t) : -1;
        if (!json_is_integer(t) || id < 0 || id >= GPT2C_VOCAB_SIZE)
            return api_fail(err, 400, "prompt", "%s[%zu] must be a token id, 0..%d", where, j,
                            GPT2C_VOCAB_SIZE - 1);
        out->data[out->len++] = (uint32_t)id;
    }
    return 0;
}

static int read_text(const gpt2c_tokenizer *tok, json_t *s, gpt2c_ids *out, api_error *err) {
    gpt2c_error e;
    if (serve_encode(tok, json_string_value(s), json_string_length(s), out, &e) != 0)
        return api_fail(err, 500, NULL, "%s", e.msg);
    /* an empty prompt starts from <|endoftext|>, as `sample` does */
    if (out->len == 0 && gpt2c_ids_push(out, GPT2C_EOT, &e) != 0)
        return api_fail(err, 500, NULL, "out of memory");
    return 0;
}

static int read_prompts(json_t *p, const gpt2c_tokenizer *tok, size_t max_prompts,
                        prompt_list *out, api_error *err) {
    const char *shape = "'prompt' must be a string, a non-empty list of strings, a list of "
                        "token ids, or a list of such lists";
    if (!p) return api_fail(err, 400, "prompt", "%s", shape);
    int one = json_is_string(p) || (json_is_array(p) && json_is_integer(json_array_get(p, 0)));
    size_t n = one ? 1 : json_is_array(p) ? json_array_size(p) : 0;
    if (n == 0) return api_fail(err, 400, "prompt", "%s", shape);
    for (size_t i = 0; !one && i < n; i++) { /* a list of strings, or of lists: all alike */
        json_t *q = json_array_get(p, i);
        if (!(json_is_string(q) ? json_is_string(json_array_get(p, 0)) : json_is_array(q)))
            return api_fail(err, 400, "prompt", "%s", shape);
    }
    if (n > max_prompts)
        return api_fail(err, 400, "prompt", "%zu prompt(s) in one request; this server takes at "
                        "most %zu (its slots and queue)", n, max_prompts);
    out->p = calloc(n, sizeof *out->p);
    if (!out->p) return api_fail(err, 500, NULL, "out of memory");
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *q = one ? p : json_array_get(p, i);
        int rc = json_is_string(q) ? read_text(tok, q, &out->p[i], err)
                                   : read_ids(q, one ? -1 : (long)i, &out->p[i], err);
        if (rc != 0) return -1;
    }
    return 0;
}

/* ---- the request ---- */

/* An engine request's inputs: prompt ids, and the fields. 0, or -1 out of memory. */
static int fill_request(serve_request *r, const gpt2c_ids *ids, const fields *f,
                        unsigned long long seed) {
    r->nprompt = (int)ids->len;
    r->max_tokens = (int)f->max_tokens, r->temperature = (float)f->temperature;
    r->top_p = (float)f->top_p, r->top_k = (int)f->top_k, r->seed = seed;
    r->logprobs = (int)f->logprobs, r->echo = f->echo;
    if (!(r->prompt = malloc(ids->len * sizeof *r->prompt))) return -1;
    for (size_t i = 0; i < ids->len; i++) r->prompt[i] = (int32_t)ids->data[i];
    for (int k = 0; k < f->nstop; k++)
        if (!(r->stop[r->nstop++] = strdup(f->stops[k]))) return -1;
    int nbias = (int)json_object_size(f->logit_bias);
    if (nbias == 0) return 0;
    r->bias_ids = calloc((size_t)nbias, sizeof *r->bias_ids);
    r->bias_values = calloc((size_t)nbias, sizeof *r->bias_values);
    if (!r->bias_ids || !r->bias_values) return -1;
    const char *key;
    json_t *v;
    json_object_foreach(f->logit_bias, key, v) {
        r->bias_ids[r->nbias] = (int32_t)strtol(key, NULL, 10);
        r->bias_values[r->nbias++] = (float)json_number_value(v);
    }
    return 0;
}

int openai_parse_completion(const char *body, size_t len, const gpt2c_tokenizer *tok,
                            const serve_limits *lim, completion *c, api_error *err) {
    memset(c, 0, sizeof *c);
    c->capped_max_tokens = -1;
    json_error_t je;
    json_t *req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(req)) {
        json_decref(req);
        return req ? api_fail(err, 400, NULL, "the body must be a JSON object")
                   : api_fail(err, 400, NULL, "the body is not JSON: %s", je.text);
    }
    fields f = {.max_tokens = 16, .temperature = 1, .top_p = 1, .n = 1, .top_k = GPT2_VOCAB,
                .logprobs = -1, .seed = -1, .best_of = -1};
    prompt_list pl = {0};
    int rc = read_fields(req, &f, err);
    if (rc == 0 && f.best_of >= 0 && f.best_of != f.n)
        rc = api_fail(err, 400, "best_of", "'best_of' is not supported (only equal to n)");
    if (rc == 0 && f.n > lim->slots)
        rc = api_fail(err, 400, "n", "n=%d choices need more than the server's %d slots", (int)f.n,
                      lim->slots);
    if (rc == 0 && f.max_tokens == 0 && !f.echo)
        rc = api_fail(err, 400, "max_tokens", "'max_tokens' 0 generates nothing: it is for "
                      "scoring a prompt, with echo");
    if (rc == 0) rc = read_prompts(f.prompt, tok, (size_t)(lim->slots + lim->max_queue), &pl, err);
    for (size_t i = 0; rc == 0 && i < pl.n; i++) {
        int room = lim->context - (int)pl.p[i].len; /* a new token needs a place */
        if (room < (f.max_tokens > 0))
            rc = api_fail(err, 400, "prompt", "prompt %zu has %zu tokens; the model's context is "
                          "%d%s", i, pl.p[i].len, lim->context,
                          f.max_tokens > 0 ? ", and at least one new token must fit" : "");
    }
    c->n = (int)f.n;
    c->stream = f.stream, c->include_usage = f.include_usage;
    unsigned long long seed = f.seed >= 0 ? (unsigned long long)f.seed
                                          : (unsigned long long)(now_ms() * 1e3);
    if (rc == 0 && !(c->reqs = calloc(pl.n, sizeof *c->reqs)))
        rc = api_fail(err, 500, NULL, "out of memory");
    for (size_t i = 0; rc == 0 && i < pl.n; i++) {
        serve_request *r = request_new(c->n); /* (in c->reqs at once: completion_free frees it) */
        if (r) c->reqs[c->nreqs++] = r;
        if (!r || fill_request(r, &pl.p[i], &f, seed) != 0) {
            rc = api_fail(err, 500, NULL, "out of memory");
            break;
        }
        int room = lim->context - r->nprompt;
        if (r->max_tokens > room) r->max_tokens = c->capped_max_tokens = room;
    }
    prompts_free(&pl);
    json_decref(req);
    if (rc != 0) return -1;
    c->created = (long long)time(NULL);
    snprintf(c->id, sizeof c->id, "cmpl-%llx%04x", (unsigned long long)(now_ms() * 1e3),
             (unsigned)rand() & 0xffff);
    return 0;
}

void completion_free(completion *c, engine *e) {
    for (int i = 0; i < c->nreqs; i++)
        if (c->reqs[i]) engine_release(e, c->reqs[i]);
    free(c->reqs);
    memset(c, 0, sizeof *c);
}

/* ---- the answers ---- */

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

/* The logprobs of a choice's tokens [from, to): tokens (each named as in top_logprobs),
 * token_logprobs, top_logprobs and text_offset (bytes into the choice's text). */
static json_t *logprobs_json(const serve_choice *ch, const gpt2c_tokenizer *tok, int from, int to) {
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t offset = 0;
    for (int t = 0; t < to; t++) {
        const token_logprob *lp = &ch->lp[t];
        size_t n;
        const unsigned char *b = gpt2c_token_bytes(tok, (uint32_t)lp->id, &n);
        if (t >= from) {
            char name[6 + 4 * GPT2C_MAX_TOKEN_BYTES + 1]; /* as top_logprobs' keys name it */
            json_array_append_new(tokens, json_stringn(name, token_key(name, b, n)));
            json_array_append_new(lps, lp->ntop < 0 ? json_null() : json_real(lp->logprob));
            json_t *top = lp->ntop < 0 ? json_null() : json_object();
            for (int j = 0; j < lp->ntop; j++) {
                size_t m;
                const unsigned char *tb = gpt2c_token_bytes(tok, (uint32_t)lp->top_ids[j], &m);
                char key[6 + 4 * GPT2C_MAX_TOKEN_BYTES + 1];
                size_t len = token_key(key, tb, m);
                json_object_setn_new(top, key, len, json_real(lp->top_logprobs[j]));
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
        json_t *lp = r->logprobs >= 0 ? logprobs_json(ch, tok, 0, ch->nlp) : json_null();
        json_array_append_new(choices, json_pack("{s:o, s:i, s:o, s:s?}", "text",
                                                 json_text(ch->text, ch->len), "index", i,
                                                 "logprobs", lp, "finish_reason",
                                                 ch->finish_reason ? ch->finish_reason : "stop"));
    }
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", c->id, "object",
                          "text_completion", "created", (json_int_t)c->created, "model", model,
                          "choices", choices, "usage", usage_of(c));
    if (o && c->capped_max_tokens >= 0) /* said, as an extension: the context capped max_tokens */
        json_object_set_new(o, "max_tokens_capped_to", json_integer(c->capped_max_tokens));
    return o;
}

json_t *openai_chunk(const completion *c, const char *model, const gpt2c_tokenizer *tok, int i,
                     size_t from, size_t to, int tok_from, int tok_to, int final) {
    const serve_request *r = c->reqs[i / c->n];
    const serve_choice *ch = &r->choices[i % c->n];
    json_t *lp = r->logprobs >= 0 ? logprobs_json(ch, tok, tok_from, tok_to) : json_null();
    json_t *choice = json_pack("{s:o, s:i, s:o}", "text", json_text(ch->text + from, to - from),
                               "index", i, "logprobs", lp);
    if (choice)
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
