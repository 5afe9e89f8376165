/* libFuzzer target: `prepare --format jsonl`'s reader on any bytes (one chunk, as a worker
 * thread tokenizes it): refused with a one-line message naming file:line, or documents whose
 * tokens each start with <|endoftext|> and are all in the vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "data/prepare_chunk.h"
#include "gpt2c.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len) {
    static gpt2c_tokenizer *tok;
    static gpt2c_encoder *enc;
    gpt2c_error err;
    if (!tok && (!(tok = gpt2c_tokenizer_new(&err)) || !(enc = gpt2c_encoder_new(tok, &err)))) abort();
    gpt2c_prepare_opts o = {.format = GPT2C_FORMAT_JSONL};
    input_file f = {.path = "fuzz.jsonl", .data = data, .len = len};
    chunk c = {.file = &f, .start = 0, .end = len, .first_line = 1, .first_of_file = 1};
    if (chunk_tokenize(enc, &o, &c) != 0) {
        if (!strstr(c.err.msg, "fuzz.jsonl:") || strchr(c.err.msg, '\n')) abort();
    } else {
        if (c.documents && (c.ids.len == 0 || c.tokens[0] != GPT2C_EOT)) abort();
        for (size_t i = 0; i < c.ids.len; i++)
            if (c.ids.data[i] >= GPT2C_VOCAB_SIZE) abort();
    }
    gpt2c_ids_free(&c.ids);
    free(c.tokens);
    return 0;
}
