/* The tokenizer endpoints; see tokenize.h. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/tokenize.h"
#include "util/error.h"
#include "util/json_text.h"

#define EOT_TEXT "<|endoftext|>"

int serve_encode(const gpt2c_tokenizer *tok, const char *text, size_t len, gpt2c_ids *out,
                 gpt2c_error *err) {
    gpt2c_encoder *enc = gpt2c_encoder_new(tok, err);
    if (!enc) return -1;
    int rc = 0;
    const size_t eot = sizeof EOT_TEXT - 1;
    while (rc == 0) {
        const char *hit = memmem(text, len, EOT_TEXT, eot);
        size_t piece = hit ? (size_t)(hit - text) : len;
        if (piece) rc = gpt2c_encode(enc, text, piece, out, err);
        if (rc != 0 || !hit) break;
        rc = gpt2c_ids_push(out, GPT2C_EOT, err);
        text += piece + eot, len -= piece + eot;
    }
    gpt2c_encoder_free(enc);
    return rc;
}

/* The body as a JSON object whose keys are all among `known` (NULL-ended). */
static json_t *load_object(const char *body, size_t len, const char *const *known, const char *shape,
                           api_error *err) {
    json_error_t je;
    json_t *req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(req)) {
        json_decref(req);
        api_fail(err, 400, NULL, "the body must be %s%s%s", shape, req ? "" : ": ", req ? "" : je.text);
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = !strcmp(key, known[i]);
        if (!ok) {
            api_fail(err, 400, key, "unrecognized argument: %s (the body must be %s)", key, shape);
            json_decref(req);
            return NULL;
        }
    }
    return req;
}

int tokenize_parse(const char *body, size_t len, const gpt2c_tokenizer *tok, int context,
                   tokenized *t, api_error *err) {
    memset(t, 0, sizeof *t);
    static const char *const known[] = {"content", "add_special", "prompt", "add_special_tokens",
                                        "model", NULL};
    const char *shape = "{\"content\": text} or {\"prompt\": text}";
    json_t *req = load_object(body, len, known, shape, err);
    if (!req) return -1;
    json_t *content = json_object_get(req, "content"), *prompt = json_object_get(req, "prompt");
    json_t *text = content ? content : prompt;
    json_t *a = json_object_get(req, "add_special"), *b = json_object_get(req, "add_special_tokens");
    int rc = 0;
    if (!json_is_string(text) || (content && prompt))
        rc = api_fail(err, 400, content ? "content" : "prompt", "the body must be %s", shape);
    else if ((a && !json_is_boolean(a)) || (b && !json_is_boolean(b)))
        rc = api_fail(err, 400, a ? "add_special" : "add_special_tokens", "'%s' must be a boolean",
                      a ? "add_special" : "add_special_tokens");
    gpt2c_error e;
    if (rc == 0 && serve_encode(tok, json_string_value(text), json_string_length(text), &t->ids, &e) != 0)
        rc = api_fail(err, 500, NULL, "%s", e.msg);
    t->vllm = prompt != NULL, t->context = context;
    json_decref(req);
    return rc;
}

size_t tokenized_write(tokenized *t, char *buf, size_t max) {
    size_t n = 0;
    if (t->stage == 0) n += (size_t)snprintf(buf, max, "{\"tokens\":["), t->stage = 1;
    while (t->stage == 1 && n + 16 <= max) { /* an id and a comma: at most 6 bytes */
        if (t->at == t->ids.len) {
            t->stage = 2;
            break;
        }
        n += (size_t)snprintf(buf + n, max - n, "%s%u", t->at ? "," : "", t->ids.data[t->at]);
        t->at++;
    }
    if (t->stage == 2 && n + 64 <= max) {
        if (t->vllm)
            n += (size_t)snprintf(buf + n, max - n, "],\"count\":%zu,\"max_model_len\":%d}",
                                  t->ids.len, t->context);
        else
            n += (size_t)snprintf(buf + n, max - n, "]}");
        t->stage = 3;
    }
    return n;
}

void tokenized_free(tokenized *t) { gpt2c_ids_free(&t->ids); }

json_t *detokenize(const char *body, size_t len, const gpt2c_tokenizer *tok, api_error *err) {
    static const char *const known[] = {"tokens", "model", NULL};
    const char *shape = "{\"tokens\": [token ids]}";
    json_t *req = load_object(body, len, known, shape, err);
    if (!req) return NULL;
    json_t *tokens = json_object_get(req, "tokens");
    size_t n = json_is_array(tokens) ? json_array_size(tokens) : 0;
    uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    int ok = json_is_array(tokens) && ids;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *t = json_array_get(tokens, i);
        ok = json_is_integer(t) && json_integer_value(t) >= 0 &&
             json_integer_value(t) < GPT2C_VOCAB_SIZE;
        if (ok) ids[i] = (uint32_t)json_integer_value(t);
    }
    json_decref(req);
    if (!ok) {
        free(ids);
        if (n && !ids) api_fail(err, 500, NULL, "out of memory");
        else api_fail(err, 400, "tokens", "the body must be {\"tokens\": [ids 0..%d]}", GPT2C_EOT);
        return NULL;
    }
    char *text;
    size_t tlen;
    gpt2c_error e;
    ok = gpt2c_decode(tok, ids, n, &text, &tlen, &e) == 0;
    free(ids);
    if (!ok) {
        api_fail(err, 500, NULL, "%s", e.msg);
        return NULL;
    }
    json_t *j = json_text(text, tlen);
    free(text);
    json_t *o = j ? json_pack("{s:O, s:O}", "content", j, "prompt", j) : NULL;
    json_decref(j);
    if (!o) api_fail(err, 500, NULL, "out of memory");
    return o;
}

json_t *tokenizer_info(int context) {
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "tokenizer_class", "GPT2TokenizerFast",
                     "eos_token", EOT_TEXT, "bos_token", EOT_TEXT, "unk_token", EOT_TEXT,
                     "model_max_length", context, "max_model_len", context, "vocab_size",
                     GPT2C_VOCAB_SIZE);
}
