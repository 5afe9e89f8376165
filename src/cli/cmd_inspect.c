/* gpt2c inspect SHARD... [--head N] */
#include <stdlib.h>

#include "cli/cli.h"

static const char *usage =
    "usage: gpt2c inspect SHARD... [--head N]\n\n"
    "Check llm.c token shards (header, size, every id in the vocabulary) and print what each\n"
    "holds: tokens and documents (<|endoftext|> tokens).\n\n";

static int print_head(const gpt2c_tokenizer *tok, const char *path, uint64_t n, gpt2c_error *err) {
    uint16_t *tokens;
    uint64_t count;
    if (gpt2c_shard_read(path, &tokens, &count, err)) return -1;
    if (n > count) n = count;
    gpt2c_ids ids = {0};
    int rc = gpt2c_ids_reserve(&ids, n, err);
    for (uint64_t i = 0; i < n && rc == 0; i++) ids.data[ids.len++] = tokens[i];
    char *text = NULL;
    size_t len = 0;
    if (rc == 0) rc = gpt2c_decode(tok, ids.data, ids.len, &text, &len, err);
    if (rc == 0) {
        printf("--- first %llu tokens ---\n", (unsigned long long)n);
        fwrite(text, 1, len, stdout);
        printf("\n---\n");
    }
    free(text);
    free(tokens);
    gpt2c_ids_free(&ids);
    return rc;
}

int cmd_inspect(int argc, char **argv) {
    unsigned long long head = 0;
    int first = 0;
    const cli_opt specs[] = {
        {"head", OPT_U64, &head, 0, 1000000, "N",
         "also print the text of the first N tokens of each shard", ""},
    };
    int done = cli_parse_opts_args("inspect", usage, specs, sizeof specs / sizeof *specs, argc,
                                   argv, &first);
    if (done >= 0) return done;
    if (first >= argc) return cli_usage_error("inspect", "no shard given");
    gpt2c_error err;
    gpt2c_tokenizer *tok = head ? gpt2c_tokenizer_new(&err) : NULL;
    if (head && !tok) return cli_error("%s", err.msg);
    uint64_t total = 0, docs = 0;
    int rc = 0;
    for (int i = first; i < argc && rc == 0; i++) {
        gpt2c_shard_info info;
        if (gpt2c_shard_inspect(argv[i], &info, &err)) {
            rc = cli_error("%s", err.msg);
            break;
        }
        printf("%s: %llu tokens, %llu documents, largest id %u\n", argv[i], (unsigned long long)info.tokens,
               (unsigned long long)info.eot_count, info.max_id);
        total += info.tokens;
        docs += info.eot_count;
        if (head && print_head(tok, argv[i], head, &err)) rc = cli_error("%s", err.msg);
    }
    if (rc == 0 && argc - first > 1)
        printf("total: %llu tokens, %llu documents in %d shards\n", (unsigned long long)total,
               (unsigned long long)docs, argc - first);
    gpt2c_tokenizer_free(tok);
    return rc;
}
