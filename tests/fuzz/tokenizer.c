/* libFuzzer target for the tokenizer (make fuzz). For any bytes: encoding never emits
 * <|endoftext|> or an id outside the vocabulary; decoding gives the bytes back, whole or streamed;
 * pieces cover the input; cutting at a safe place keeps the tokens. */
#include <stdlib.h>
#include <string.h>

#include "gpt2c.h"
#include "tokenizer/pretokenize.h"

static gpt2c_tokenizer *tok;
static gpt2c_encoder *enc;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len) {
    gpt2c_error err;
    if (!tok) {
        tok = gpt2c_tokenizer_new(&err);
        enc = gpt2c_encoder_new(tok, &err);
    }
    gpt2c_ids ids = {0};
    if (gpt2c_encode(enc, data, len, &ids, &err)) abort();
    for (size_t i = 0; i < ids.len; i++)
        if (ids.data[i] >= GPT2C_EOT) abort();

    char *back;
    size_t back_len;
    if (gpt2c_decode(tok, ids.data, ids.len, &back, &back_len, &err)) abort();
    if (back_len != len || memcmp(back, data, len) != 0) abort();

    gpt2c_stream_decoder sd = {0};
    char out[GPT2C_STREAM_OUT_MAX];
    size_t k = 0;
    for (size_t i = 0; i < ids.len; i++) {
        int n = gpt2c_stream_push(&sd, tok, ids.data[i], out, &err);
        if (n < 0 || k + (size_t)n > len || memcmp(out, data + k, (size_t)n) != 0) abort();
        k += (size_t)n;
    }
    int n = gpt2c_stream_finish(&sd, out);
    if (k + (size_t)n != len || memcmp(out, data + k, (size_t)n) != 0) abort();

    for (size_t i = 0; i < len;) {
        size_t end = pretok_next(data, len, i);
        if (end <= i || end > len) abort();
        i = end;
    }

    /* the first safe cut keeps the tokens */
    for (size_t p = 1; p < len; p++) {
        if (!pretok_safe_cut(data, p)) continue;
        gpt2c_ids parts = {0};
        if (gpt2c_encode(enc, data, p, &parts, &err) || gpt2c_encode(enc, data + p, len - p, &parts, &err)) abort();
        if (parts.len != ids.len || memcmp(parts.data, ids.data, ids.len * sizeof *ids.data) != 0) abort();
        gpt2c_ids_free(&parts);
        break;
    }
    free(back);
    gpt2c_ids_free(&ids);
    return 0;
}
