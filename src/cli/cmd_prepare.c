/* gpt2c prepare --input PATH... --out-dir DIR [...] */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *usage =
    "usage: gpt2c prepare --input PATH... --out-dir DIR [--format text|jsonl]\n"
    "                     [--split-blank-lines] [--val-tokens N] [--shard-tokens N]\n"
    "                     [--threads N] [--quiet]\n\n"
    "Tokenize documents into llm.c token shards: DIR/val_000000.bin holds the first N tokens,\n"
    "DIR/train_000000.bin, train_000001.bin, ... the rest. Each document starts with\n"
    "<|endoftext|> (50256). Shards are written under a temporary name and renamed when complete;\n"
    "on any error no shard of this run is left behind.\n\n";

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || s > 359999) snprintf(buf, n, "--:--");
    else snprintf(buf, n, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
}

static void show_progress(const gpt2c_prepare_progress *p, void *user) {
    (void)user;
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1.0;
    double mbs = p->seconds > 0 ? (double)p->bytes_done / 1e6 / p->seconds : 0;
    double eta = mbs > 0 ? ((double)(p->bytes_total - p->bytes_done) / 1e6) / mbs : -1;
    char bar[31], etabuf[16];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : ' ';
    bar[30] = 0;
    fmt_duration(etabuf, sizeof etabuf, eta);
    fprintf(stderr, "\r[%s] %3.0f%%  %.1f/%.1f MB  %llu tokens  %.1f MB/s  ETA %s ", bar, frac * 100,
            (double)p->bytes_done / 1e6, (double)p->bytes_total / 1e6, (unsigned long long)p->tokens, mbs,
            etabuf);
}

int cmd_prepare(int argc, char **argv) {
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) return cli_error("out of memory");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cli_list input = {inputs, 0};
    const char *out_dir = NULL;
    unsigned long long val_tokens = 32768, shard_tokens = 100000000;
    int format = 0, split = 0, threads = ncpu > 0 ? (int)ncpu : 1, quiet = 0, first = 0;
    const cli_opt specs[] = {
        {"input", OPT_LIST, &input, 0, 0, "PATH...",
         "input files, in order (more paths may follow, or repeat --input)", NULL},
        {"out-dir", OPT_STR, &out_dir, 0, 0, "DIR", "output directory, created if missing", NULL},
        {"format", OPT_CHOICE, &format, 0, 0, "text|jsonl",
         "text: each file is one document;\n"
         "jsonl: one JSON object per line, its \"text\" a document",
         NULL},
        {"split-blank-lines", OPT_FLAG, &split, 0, 0, NULL,
         "text: a document ends after each \"\\n\\n\" (llm.c's tinyshakespeare)", NULL},
        {"val-tokens", OPT_U64, &val_tokens, 0, 2147483647, "N",
         "tokens for validation (0: no val shard)", NULL},
        {"shard-tokens", OPT_U64, &shard_tokens, 1, 2147483647, "N", "tokens per train shard",
         NULL},
        {"threads", OPT_INT, &threads, 1, 1024, "N", "tokenizer threads", "the number of CPUs"},
        {"quiet", OPT_FLAG, &quiet, 0, 0, NULL, "no progress bar", NULL},
    };
    int rc = cli_parse_opts_args("prepare", usage, specs, sizeof specs / sizeof *specs, argc, argv,
                                 &first);
    if (rc < 0) {
        if (input.n == 0 && first == argc) rc = cli_usage_error("prepare", "no --input given");
        else if (input.n == 0) rc = cli_usage_error("prepare", "input files follow --input");
        else if (!out_dir) rc = cli_usage_error("prepare", "no --out-dir given");
    }
    if (rc >= 0) {
        free(inputs);
        return rc;
    }
    while (first < argc) inputs[input.n++] = argv[first++];
    gpt2c_prepare_opts o = {.inputs = inputs, .ninputs = input.n, .out_dir = out_dir,
                            .format = format ? GPT2C_FORMAT_JSONL : GPT2C_FORMAT_TEXT,
                            .split_blank_lines = split, .val_tokens = val_tokens,
                            .shard_tokens = shard_tokens, .threads = threads};
    int bar = !quiet && isatty(STDERR_FILENO);
    if (bar) o.progress = show_progress;

    gpt2c_error err;
    gpt2c_prepare_result r;
    gpt2c_tokenizer *tok = gpt2c_tokenizer_new(&err);
    rc = !tok || gpt2c_prepare(tok, &o, &r, &err);
    if (bar) fputc('\n', stderr);
    if (rc) rc = cli_error("%s", err.msg);
    else {
        const gpt2c_prepare_progress *t = &r.totals;
        printf("prepared %d file%s, %.2f MB, %llu documents -> %llu tokens (%.2f bytes/token) in %.2f s "
               "(%.1f MB/s, %d thread%s)\n",
               o.ninputs, o.ninputs == 1 ? "" : "s", (double)t->bytes_done / 1e6,
               (unsigned long long)t->documents, (unsigned long long)t->tokens,
               t->tokens ? (double)t->bytes_done / (double)t->tokens : 0.0, t->seconds,
               t->seconds > 0 ? (double)t->bytes_done / 1e6 / t->seconds : 0.0, o.threads,
               o.threads == 1 ? "" : "s");
        if (r.val_tokens) printf("%s: val %llu tokens (val_000000.bin), ", o.out_dir, (unsigned long long)r.val_tokens);
        else printf("%s: no val shard, ", o.out_dir);
        printf("train %llu tokens in %d shard%s (train_000000.bin...)\n", (unsigned long long)r.train_tokens,
               r.train_shards, r.train_shards == 1 ? "" : "s");
        if (r.stale_removed) printf("removed %d stale shard%s left by an earlier run\n", r.stale_removed,
                                    r.stale_removed == 1 ? "" : "s");
    }
    gpt2c_tokenizer_free(tok);
    free(inputs);
    return rc;
}
