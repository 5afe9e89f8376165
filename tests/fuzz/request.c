/* libFuzzer target: the body of POST /v1/completions (OpenAI's JSON) on any bytes, against a
 * running engine of a tiny model: refused with an OpenAI error (status 4xx, a message, the field
 * when there is one), or requests within the slots and the context. */
#include <stdlib.h>
#include <string.h>

#include "ops/backend.h"
#include "serve/engine.h"
#include "serve/openai.h"

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
    if (openai_parse_completion((const char *)data, len, tok, 4, 64, &c, &ae) != 0) {
        if (ae.status < 400 || ae.status > 499 || !ae.message[0]) abort();
    } else {
        int slots = 0;
        for (int i = 0; i < c.nreqs; i++) {
            slots += c.reqs[i]->n;
            if (c.reqs[i]->nprompt < 1 || c.reqs[i]->nprompt + c.reqs[i]->max_tokens > 64) abort();
        }
        if (slots > 4) abort();
    }
    completion_free(&c, e);
    return 0;
}
