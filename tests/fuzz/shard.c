/* libFuzzer target: llm.c token shards (their 1024-byte header and uint16 tokens) on any bytes.
 * Both readers refuse a bad file with a one-line message; what `inspect` accepts has every token
 * in the vocabulary, and the reader gives as many tokens as the header says. */
#include "fuzz/scratch.h"
#include "gpt2c.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len) {
    const char *path = fuzz_file("train_000000.bin", data, len);
    gpt2c_error err;
    gpt2c_shard_info info;
    int valid = gpt2c_shard_inspect(path, &info, &err) == 0;
    if (!valid && (!err.msg[0] || strchr(err.msg, '\n'))) abort();
    uint16_t *tokens = NULL;
    uint64_t n = 0;
    if (gpt2c_shard_read(path, &tokens, &n, &err) != 0) {
        if (valid || !err.msg[0] || strchr(err.msg, '\n')) abort();
        return 0;
    }
    if (n * 2 + 1024 != len) abort(); /* the header's count is the file's */
    for (uint64_t i = 0; valid && i < n; i++)
        if (tokens[i] >= GPT2C_VOCAB_SIZE) abort();
    free(tokens);
    return 0;
}
