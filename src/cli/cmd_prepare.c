/* gpt2c prepare --input PATH... --out-dir DIR [...] */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *help =
    "usage: gpt2c prepare --input PATH... --out-dir DIR [--format text|jsonl]\n"
    "                     [--split-blank-lines] [--val-tokens N] [--shard-tokens N]\n"
    "                     [--threads N] [--quiet]\n\n"
    "Tokenize documents into llm.c token shards: DIR/val_000000.bin holds the first N tokens,\n"
    "DIR/train_000000.bin, train_000001.bin, ... the rest. Each document starts with\n"
    "<|endoftext|> (50256). Shards are written under a temporary name and renamed when complete;\n"
    "on any error no shard of this run is left behind.\n\n"
    "  --input PATH...        input files, in order (more paths may follow, or repeat --input)\n"
    "  --out-dir DIR          output directory, created if missing\n"
    "  --format text          each file is one document (default)\n"
    "  --format jsonl         one JSON object per line; its \"text\" string is a document\n"
    "  --split-blank-lines    text: a document ends after each \"\\n\\n\" (llm.c's tinyshakespeare)\n"
    "  --val-tokens N         tokens for validation (default 32768; 0: no val shard)\n"
    "  --shard-tokens N       tokens per train shard (default 100000000)\n"
    "  --threads N            tokenizer threads (default: the number of CPUs)\n"
    "  --quiet                no progress bar\n";

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
    static const struct option opts[] = {
        {"input", required_argument, 0, 'i'},       {"out-dir", required_argument, 0, 'o'},
        {"format", required_argument, 0, 'f'},      {"split-blank-lines", no_argument, 0, 'b'},
        {"val-tokens", required_argument, 0, 'v'},  {"shard-tokens", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'},     {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) return cli_error("out of memory");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    gpt2c_prepare_opts o = {.inputs = inputs, .format = GPT2C_FORMAT_TEXT, .val_tokens = 32768,
                            .shard_tokens = 100000000, .threads = ncpu > 0 ? (int)ncpu : 1};
    int quiet = 0, c, rc = -1;
    uint64_t v;
    while (rc < 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': inputs[o.ninputs++] = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'f':
            if (!strcmp(optarg, "text")) o.format = GPT2C_FORMAT_TEXT;
            else if (!strcmp(optarg, "jsonl")) o.format = GPT2C_FORMAT_JSONL;
            else rc = cli_usage_error("prepare", "--format must be text or jsonl");
            break;
        case 'b': o.split_blank_lines = 1; break;
        case 'v':
            if (cli_parse_u64(optarg, 0, 2147483647, &o.val_tokens))
                rc = cli_usage_error("prepare", "--val-tokens must be 0..2147483647");
            break;
        case 's':
            if (cli_parse_u64(optarg, 1, 2147483647, &o.shard_tokens))
                rc = cli_usage_error("prepare", "--shard-tokens must be 1..2147483647");
            break;
        case 't':
            if (cli_parse_u64(optarg, 1, 1024, &v)) rc = cli_usage_error("prepare", "--threads must be 1..1024");
            o.threads = (int)v;
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(help, stdout); rc = 0; break;
        default: rc = cli_bad_option("prepare", argv);
        }
    }
    if (rc < 0) {
        if (o.ninputs == 0 && optind == argc) rc = cli_usage_error("prepare", "no --input given");
        else if (o.ninputs == 0) rc = cli_usage_error("prepare", "input files follow --input");
        else if (!o.out_dir) rc = cli_usage_error("prepare", "no --out-dir given");
    }
    while (rc < 0 && optind < argc) inputs[o.ninputs++] = argv[optind++];
    if (rc >= 0) {
        free(inputs);
        return rc;
    }
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
