/* gpt2c detokenize [FILE|-] [-o OUT] [--format u16|text] */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/error.h"

static const char *usage =
    "usage: gpt2c detokenize [FILE|-] [-o OUT] [--format u16|text]\n\n"
    "Decode GPT-2 token ids back to the bytes they stand for (the inverse of tokenize).\n\n"
    "  FILE                   ids to decode (default: standard input)\n";

static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static int parse_ids(const unsigned char *data, size_t len, ids_format fmt, gpt2c_ids *ids,
                     gpt2c_error *err) {
    if (fmt == IDS_U16) {
        if (len % 2) return err_set(err, "the input has an odd number of bytes (%zu): not uint16 ids", len);
        if (gpt2c_ids_reserve(ids, len / 2, err)) return -1;
        for (size_t i = 0; i < len; i += 2) ids->data[ids->len++] = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8;
        return 0;
    }
    for (size_t i = 0; i < len;) {
        if (is_space(data[i])) { i++; continue; }
        size_t start = i;
        uint64_t v = 0;
        for (; i < len && data[i] >= '0' && data[i] <= '9'; i++)
            v = v < GPT2C_VOCAB_SIZE ? v * 10 + (uint64_t)(data[i] - '0') : v;
        if (i == start || (i < len && !is_space(data[i])))
            return err_set(err, "id number %zu (at byte %zu) is not a decimal number", ids->len + 1, start);
        if (v >= GPT2C_VOCAB_SIZE)
            return err_set(err, "id number %zu (at byte %zu) is %.*s, outside the vocabulary (0..%d)",
                           ids->len + 1, start, (int)(i - start > 20 ? 20 : i - start),
                           (const char *)data + start, GPT2C_VOCAB_SIZE - 1);
        if (gpt2c_ids_push(ids, (uint32_t)v, err)) return -1;
    }
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    const char *in_path, *out_path;
    int format;
    int done = cli_parse_ids_io("detokenize", usage, "where the text goes",
                                "decimal ids separated by white space", argc, argv,
                                &in_path, &out_path, &format);
    if (done >= 0) return done;

    gpt2c_error err;
    unsigned char *data = NULL;
    size_t len = 0;
    if (cli_read_all(in_path, &data, &len, &err)) return cli_error("%s", err.msg);
    gpt2c_ids ids = {0};
    gpt2c_tokenizer *tok = NULL;
    char *text = NULL;
    size_t text_len = 0;
    int rc = parse_ids(data, len, format, &ids, &err) || !(tok = gpt2c_tokenizer_new(&err)) ||
             gpt2c_decode(tok, ids.data, ids.len, &text, &text_len, &err);
    free(data);
    FILE *out = rc ? NULL : cli_open_output(out_path, &err);
    if (out) {
        size_t w = fwrite(text, 1, text_len, out);
        rc = cli_close_output(out, out_path, &err) != 0 || w != text_len;
    } else rc = 1;
    free(text);
    gpt2c_ids_free(&ids);
    gpt2c_tokenizer_free(tok);
    return rc ? cli_error("%s", err.msg) : 0;
}
