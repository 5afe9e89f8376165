/* gpt2c tokenize [FILE|-] [-o OUT] [--format u16|text] */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *usage =
    "usage: gpt2c tokenize [FILE|-] [-o OUT] [--format u16|text]\n\n"
    "Encode UTF-8 text (any bytes, in fact) to GPT-2 token ids, exactly as tiktoken's \"gpt2\"\n"
    "encoding does with encode_ordinary: \"<|endoftext|>\" in the text is ordinary text.\n\n"
    "  FILE                   input (default: standard input)\n";

static void write_ids(FILE *out, const gpt2c_ids *ids, ids_format fmt) {
    if (fmt == IDS_TEXT) {
        for (size_t i = 0; i < ids->len; i++)
            fprintf(out, i ? " %u" : "%u", ids->data[i]);
        fputc('\n', out);
        return;
    }
    unsigned char buf[8192];
    for (size_t i = 0; i < ids->len;) {
        size_t k = 0;
        for (; k < sizeof buf / 2 && i < ids->len; k++, i++) {
            buf[2 * k] = (unsigned char)ids->data[i];
            buf[2 * k + 1] = (unsigned char)(ids->data[i] >> 8);
        }
        if (fwrite(buf, 2, k, out) != k) return;
    }
}

int cmd_tokenize(int argc, char **argv) {
    const char *in_path, *out_path;
    int format;
    int done = cli_parse_ids_io("tokenize", usage, "where the ids go",
                                "decimal ids separated by spaces, then a newline", argc, argv,
                                &in_path, &out_path, &format);
    if (done >= 0) return done;
    if (format == IDS_U16 && (!out_path || !strcmp(out_path, "-")) && isatty(STDOUT_FILENO))
        return cli_usage_error("tokenize", "refusing to write binary ids to a terminal: use -o FILE or --format text");

    gpt2c_error err;
    unsigned char *text = NULL;
    size_t len = 0;
    if (cli_read_all(in_path, &text, &len, &err)) return cli_error("%s", err.msg);
    gpt2c_tokenizer *tok = NULL;
    gpt2c_ids ids = {0};
    int rc = cli_encode_text(text, len, &tok, &ids, &err) != 0;
    free(text);
    FILE *out = rc ? NULL : cli_open_output(out_path, &err);
    if (out) {
        write_ids(out, &ids, format); /* a failed write shows in the stream's error flag */
        rc = cli_close_output(out, out_path, &err) != 0;
    } else rc = 1;
    gpt2c_ids_free(&ids);
    gpt2c_tokenizer_free(tok);
    return rc ? cli_error("%s", err.msg) : 0;
}
