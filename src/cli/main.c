/* gpt2c: the command-line program. One subcommand per file in this folder. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"tokenize", cmd_tokenize, "text to GPT-2 token ids (tiktoken's gpt2 encoding)"},
    {"detokenize", cmd_detokenize, "GPT-2 token ids back to text"},
    {"prepare", cmd_prepare, "text or JSON Lines to llm.c token shards (train/val)"},
    {"inspect", cmd_inspect, "check token shards and show what they hold"},
    {"train", cmd_train, "train GPT-2 (from scratch or a Hugging Face checkpoint)"},
    {"eval", cmd_eval, "the loss of a model on token shards, and HellaSwag"},
    {"sample", cmd_sample, "continue a prompt (top-k/top-p sampling with a KV cache)"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP API and a page over a model (continuous batching)"},
    {"plot", cmd_plot, "loss curves and the rest of runs' logs as a picture (SVG or PNG, gnuplot)"},
    {"info", cmd_info, "what this machine and build run (CPU paths, CUDA, MPI)"},
};

static void usage(FILE *f) {
    fprintf(f,
            "gpt2c %s: GPT-2 training and inference in C\n\n"
            "usage: gpt2c <command> [options]   (gpt2c <command> --help for its options)\n\n"
            "commands:\n",
            GPT2C_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    gpt2c_error err;
    if (gpt2c_apply_cpu_isa(argv, &err) != 0) { /* returns only when GPT2C_CPU_ISA needs nothing */
        fprintf(stderr, "gpt2c: error: %s\n", err.msg);
        return 1;
    }
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("gpt2c %s\n", GPT2C_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(name, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gpt2c: unknown command '%s' (see gpt2c --help)\n", name);
    return EXIT_USAGE;
}
