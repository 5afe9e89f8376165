/* The command-line face of libgpt2c: each subcommand parses its flags, calls the library and
 * prints. Errors go to stderr as one line and a non-zero exit status. */
#ifndef GPT2C_CLI_H
#define GPT2C_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gpt2c.h"

#define EXIT_USAGE 2

int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* Print "gpt2c: error: ..." and return 1 (for `return cli_error(...)`). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the error and a pointer to --help; return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whole file (or stdin for NULL or "-") into a malloc'ed buffer. */
int cli_read_all(const char *path, unsigned char **data, size_t *len, gpt2c_error *err);
/* stdout for NULL or "-", else the file, truncated. */
FILE *cli_open_output(const char *path, gpt2c_error *err);
int cli_close_output(FILE *f, const char *path, gpt2c_error *err);

/* Strict decimal parsing: the whole string, no sign, within [min, max]. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Text to GPT-2 ids (appended to *ids). The tokenizer is made and handed back in *tok for
 * decoding later (the caller frees it, also after a failure); the encoder is freed here. */
int cli_encode_text(const void *text, size_t len, gpt2c_tokenizer **tok, gpt2c_ids *ids,
                    gpt2c_error *err);

/* --profile's report (profile.c): a table on f, "step" naming what a step is; or as JSON. */
void cli_print_profile(FILE *f, const gpt2c_profile *p, const char *step);
typedef struct json_t json_t;
json_t *cli_profile_json(const gpt2c_profile *p);
/* Print root as one compact line on stdout and release it; 1 (an error printed) if it is NULL. */
int cli_print_json(json_t *root);

/* A command's option table (options.c): each flag, where its value goes, its range and its
 * help. Parsing, --help and the defaults follow from it; a default is what the field holds
 * before parsing (the library's *_opts_default), unless default_text says it in words ("" for
 * none). OPT_HEADING rows title the groups of --help.
 *   OPT_CHOICE: one of the words in arg ("text|jsonl"); dst is an int, the word's index.
 *   OPT_LIST:   the flag may repeat; each value is appended to the cli_list at dst.
 *   OPT_SHORT:  a one-letter alias (CLI_SHORT), not a flag of its own: "-o" for "--output". */
typedef enum {
    OPT_STR,
    OPT_INT,
    OPT_I64,
    OPT_U64,
    OPT_DOUBLE,
    OPT_FLAG,
    OPT_CHOICE,
    OPT_LIST,
    OPT_SHORT,
    OPT_HEADING
} cli_opt_kind;
typedef struct cli_opt {
    const char *name; /* the flag, without "--" (OPT_SHORT: the letter, without "-") */
    cli_opt_kind kind;
    void *dst;        /* const char *, int, long long, unsigned long long, double, cli_list;
                         int for flags and choices */
    double min, max;  /* numbers: the range accepted */
    const char *arg;  /* the value's name in --help ("N", "DIR"); NULL for flags */
    const char *help; /* lines after the first are indented under it (OPT_SHORT: the long flag) */
    const char *default_text;
} cli_opt;
/* A repeatable flag's values; items has room for argc entries (no flag can repeat more often),
 * so parsing allocates nothing. */
typedef struct cli_list {
    const char **items;
    int n;
} cli_list;
#define CLI_HEADING(text) {NULL, OPT_HEADING, NULL, 0, 0, NULL, text, NULL}
#define CLI_SHORT(letter, flag) {letter, OPT_SHORT, NULL, 0, 0, NULL, flag, NULL}
/* Parse argv by the table: -1 to go on, or the exit status when the command is done (--help
 * shown: 0; a bad flag or value: EXIT_USAGE, said on stderr). */
int cli_parse_opts(const char *cmd, const char *usage, const cli_opt *specs, int n, int argc,
                   char **argv);
/* The same for a command that takes arguments besides its flags: they are argv[*first_arg ..
 * argc). */
int cli_parse_opts_args(const char *cmd, const char *usage, const cli_opt *specs, int n,
                        int argc, char **argv, int *first_arg);

/* Strict floating-point parsing: the whole string, a finite number. */
int cli_parse_double(const char *s, double *out);

/* How tokenize writes and detokenize reads ids: --format u16|text, in that order. */
typedef enum { IDS_U16, IDS_TEXT } ids_format;
/* tokenize's and detokenize's flags, [FILE|-] [-o OUT] [--format u16|text] (out_help and
 * text_help say what goes out and what the text form is): -1 to go on, with in_path (NULL:
 * standard input), out_path and format set; else the exit status (--help, a bad flag). */
int cli_parse_ids_io(const char *cmd, const char *usage, const char *out_help,
                     const char *text_help, int argc, char **argv, const char **in_path,
                     const char **out_path, int *format);

#endif
