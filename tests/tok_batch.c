/* Test helper: encodes many byte strings, each on its own, for the cross-checks against
 * tiktoken (tests/test_tiktoken.py). Built with the sanitizers like every test.
 *
 * stdin:  repeated [u32 length][bytes]      (little-endian)
 * stdout: repeated [u32 count][u32 ids...]  one record per input string
 * With --roundtrip it also decodes each result and fails if the bytes differ.
 * With --pieces it writes the byte lengths of the pre-tokenizer's pieces instead of ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2c.h"
#include "tokenizer/pretokenize.h"

static int read_u32(FILE *f, uint32_t *v) {
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static void write_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    fwrite(b, 1, 4, f);
}

int main(int argc, char **argv) {
    int roundtrip = argc > 1 && strcmp(argv[1], "--roundtrip") == 0;
    int pieces = argc > 1 && strcmp(argv[1], "--pieces") == 0;
    gpt2c_error err;
    gpt2c_tokenizer *tok = gpt2c_tokenizer_new(&err);
    gpt2c_encoder *enc = tok ? gpt2c_encoder_new(tok, &err) : NULL;
    if (!enc) {
        fprintf(stderr, "tok_batch: %s\n", err.msg);
        return 1;
    }
    uint32_t len;
    unsigned char *buf = NULL;
    size_t cap = 0, count = 0;
    while (read_u32(stdin, &len) == 0) {
        if (len > cap) {
            free(buf);
            cap = len;
            buf = malloc(cap);
            if (!buf) return 1;
        }
        if (len && fread(buf, 1, len, stdin) != len) {
            fprintf(stderr, "tok_batch: truncated input\n");
            return 1;
        }
        gpt2c_ids ids = {0};
        if (pieces) {
            for (size_t i = 0; i < len;) {
                size_t end = pretok_next(buf, len, i);
                gpt2c_ids_push(&ids, (uint32_t)(end - i), &err);
                i = end;
            }
        } else if (gpt2c_encode(enc, buf, len, &ids, &err)) {
            fprintf(stderr, "tok_batch: %s\n", err.msg);
            return 1;
        }
        if (roundtrip) {
            char *back;
            size_t back_len;
            if (gpt2c_decode(tok, ids.data, ids.len, &back, &back_len, &err) || back_len != len ||
                memcmp(back, buf, len) != 0) {
                fprintf(stderr, "tok_batch: string %zu does not survive encode+decode\n", count);
                return 1;
            }
            free(back);
        }
        write_u32(stdout, (uint32_t)ids.len);
        for (size_t i = 0; i < ids.len; i++) write_u32(stdout, ids.data[i]);
        gpt2c_ids_free(&ids);
        count++;
    }
    free(buf);
    gpt2c_encoder_free(enc);
    gpt2c_tokenizer_free(tok);
    return fflush(stdout) == 0 ? 0 : 1;
}
