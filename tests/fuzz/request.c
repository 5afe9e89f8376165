/* libFuzzer target: the bodies of POST /v1/completions (OpenAI's JSON), /tokenize and
 * /detokenize on any bytes, against a running engine of a tiny model: refused with an OpenAI
 * error (status 4xx, a message), or requests within the slots, the queue and the context, and
 * answers that are JSON. */
#include <stdlib.h>
#include <string.h>

#include "ops/backend.h"
#include "serve/engine.h"
#include "serve/openai.h"
#include "serve/tokenize.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len) {
    static gpt2_backend be;
    static gpt2_model m;
    static gpt2c_tokenizer *tok;
    static engine *e;
    gpt2c_error err;
    if (!e) {
        gpt2_config cfg = {2, 2, 32, 64};
        if (gpt2_backend_open(&be, "cpu", 1, &err) || gpt2_create(&m, &cfg, &be, &err) ||
            gpt2_init_random(&m, 1, &err) || !(tok = gpt2c_tokenizer_new(&err)) ||
            engine_start(&e, &m, tok, 4, 8, &err))
            abort();
    }
    completion c;
    api_error ae;
    memset(&ae, 0, sizeof ae);
    serve_limits lim = {4, 8, 64};
    if (openai_parse_completion((const char *)data, len, tok, &lim, &c, &ae) != 0) {
        if (ae.status < 400 || ae.status > 499 || !ae.message[0]) abort();
    } else {
        if (c.nreqs < 1 || c.nreqs > 4 + 8) abort();
        for (int i = 0; i < c.nreqs; i++) {
            const serve_request *r = c.reqs[i];
            if (r->n < 1 || r->n > 4 || r->nprompt < 1 || r->max_tokens < 0 ||
                r->nprompt + r->max_tokens > 64 || (r->max_tokens == 0 && !r->echo))
                abort();
        }
    }
    completion_free(&c, e);
    tokenized t;
    if (tokenize_parse((const char *)data, len, tok, 64, &t, &ae) != 0) {
        if (ae.status < 400 || ae.status > 499 || !ae.message[0]) abort();
    } else { /* the whole answer, written in small pieces, is JSON */
        char piece[64], *all = NULL;
        size_t n = 0, k;
        while ((k = tokenized_write(&t, piece, sizeof piece)) > 0) {
            all = realloc(all, n + k);
            memcpy(all + n, piece, k), n += k;
        }
        json_t *j = json_loadb(all, n, 0, NULL);
        if (!json_is_array(json_object_get(j, "tokens"))) abort();
        json_decref(j), free(all);
    }
    tokenized_free(&t);
    json_t *d = detokenize((const char *)data, len, tok, &ae);
    if (!d && (ae.status < 400 || ae.status > 499 || !ae.message[0])) abort();
    json_decref(d);
    return 0;
}
