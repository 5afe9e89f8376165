/* One option table per command: parsing, --help and the defaults all follow from it. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* For getopt's '?' and ':' (the optstring starts with ':', so getopt prints nothing). */
static int bad_option(const char *cmd, char **argv) {
    const char *arg = argv[optind - 1];
    if (optopt && arg[0] == '-' && arg[1] != '-') /* a short option, perhaps with others */
        return cli_usage_error(cmd, "unknown option or missing value: -%c", optopt);
    return cli_usage_error(cmd, "unknown option or missing value: %s", arg);
}

/* The index of an OPT_CHOICE's word in "a|b|c", or -1. */
static int choice_index(const char *words, const char *word) {
    size_t len = strlen(word);
    for (int i = 0;; i++) {
        size_t n = strcspn(words, "|");
        if (n == len && strncmp(words, word, len) == 0) return i;
        if (!words[n]) return -1;
        words += n + 1;
    }
}

/* "a|b|c" as "a, b or c" */
static void choice_list(const char *words, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (const char *p = words; *p && k + 8 < cap; p++) {
        if (*p != '|') buf[k++] = *p;
        else if (strchr(p + 1, '|')) k += (size_t)snprintf(buf + k, cap - k, ", ");
        else k += (size_t)snprintf(buf + k, cap - k, " or ");
    }
    buf[k] = 0;
}

/* Store arg by the row's kind: -1 when it is good, else the usage error's exit status, said
 * with what the flag accepts. */
static int parse_value(const char *cmd, const cli_opt *s, const char *arg) {
    char range[256];
    if (s->kind == OPT_STR) {
        *(const char **)s->dst = arg;
        return -1;
    }
    if (s->kind == OPT_LIST) {
        cli_list *l = s->dst;
        l->items[l->n++] = arg;
        return -1;
    }
    if (s->kind == OPT_CHOICE) {
        int i = choice_index(s->arg, arg);
        if (i >= 0) {
            *(int *)s->dst = i;
            return -1;
        }
        choice_list(s->arg, range, sizeof range);
    } else if (s->kind == OPT_DOUBLE) {
        double d;
        if (cli_parse_double(arg, &d) == 0 && d >= s->min && d <= s->max) {
            *(double *)s->dst = d;
            return -1;
        }
        snprintf(range, sizeof range, "%g..%g", s->min, s->max);
    } else {
        uint64_t v;
        if (cli_parse_u64(arg, (uint64_t)s->min, (uint64_t)s->max, &v) == 0) {
            if (s->kind == OPT_INT) *(int *)s->dst = (int)v;
            else if (s->kind == OPT_I64) *(long long *)s->dst = (long long)v;
            else *(unsigned long long *)s->dst = v;
            return -1;
        }
        snprintf(range, sizeof range, "%llu..%llu", (unsigned long long)s->min,
                 (unsigned long long)s->max);
    }
    return cli_usage_error(cmd, "invalid value for --%s: '%s' (must be %s)", s->name, arg, range);
}

/* The default is the value the table's fields hold before parsing: the library's defaults. */
static void format_default(const cli_opt *s, char *buf, size_t n) {
    buf[0] = 0;
    if (s->default_text) {
        if (*s->default_text) snprintf(buf, n, " (default: %s)", s->default_text);
        return;
    }
    switch (s->kind) {
    case OPT_INT: snprintf(buf, n, " (default %d)", *(const int *)s->dst); break;
    case OPT_I64: snprintf(buf, n, " (default %lld)", *(const long long *)s->dst); break;
    case OPT_U64: snprintf(buf, n, " (default %llu)", *(const unsigned long long *)s->dst); break;
    case OPT_DOUBLE: snprintf(buf, n, " (default %g)", *(const double *)s->dst); break;
    case OPT_STR:
        if (*(const char *const *)s->dst)
            snprintf(buf, n, " (default %s)", *(const char *const *)s->dst);
        break;
    case OPT_CHOICE: {
        const char *w = s->arg;
        for (int i = *(const int *)s->dst; i > 0 && strchr(w, '|'); i--) w = strchr(w, '|') + 1;
        snprintf(buf, n, " (default %.*s)", (int)strcspn(w, "|"), w);
        break;
    }
    default: break;
    }
}

enum { HELP_INDENT = 25, HELP_WIDTH = 100 };

/* text after the flag, wrapped at spaces to HELP_WIDTH and at its own newlines, each line after
 * the first indented under the first */
static void print_wrapped(const char *text) {
    int col = HELP_INDENT;
    for (const char *p = text; *p;) {
        if (*p == '\n' || *p == ' ') {
            const char *word = p + 1;
            size_t len = strcspn(word, " \n");
            if (*p == '\n' || col + 1 + (int)len > HELP_WIDTH) {
                printf("\n%*s", HELP_INDENT, "");
                col = HELP_INDENT;
            } else {
                putchar(' ');
                col++;
            }
            p++;
            continue;
        }
        putchar(*p++);
        col++;
    }
    putchar('\n');
}

/* The letter of the OPT_SHORT row that stands for specs[i], or 0. */
static char short_of(const cli_opt *specs, int n, int i) {
    for (int j = 0; j < n; j++)
        if (specs[j].kind == OPT_SHORT && strcmp(specs[j].help, specs[i].name) == 0)
            return specs[j].name[0];
    return 0;
}

static void print_help(const char *usage, const cli_opt *specs, int n) {
    fputs(usage, stdout);
    for (int i = 0; i < n; i++) {
        const cli_opt *s = &specs[i];
        if (s->kind == OPT_SHORT) continue;
        if (s->kind == OPT_HEADING) {
            printf("%s:\n", s->help);
            continue;
        }
        char flag[64], def[256], text[1024], alias[8] = "", letter = short_of(specs, n, i);
        if (letter) snprintf(alias, sizeof alias, "-%c, ", letter);
        snprintf(flag, sizeof flag, "%s--%s%s%s", alias, s->name, s->arg ? " " : "",
                 s->arg ? s->arg : "");
        printf("  %-22s ", flag);
        if (strlen(flag) > 22) printf("\n%*s", HELP_INDENT, "");
        format_default(s, def, sizeof def);
        snprintf(text, sizeof text, "%s%s", s->help, def);
        print_wrapped(text);
    }
}

int cli_parse_opts(const char *cmd, const char *usage, const cli_opt *specs, int n, int argc,
                   char **argv) {
    return cli_parse_opts_args(cmd, usage, specs, n, argc, argv, NULL);
}

/* The row a flag's value goes to: getopt_long gives 1000 + the row of a long flag, and the
 * letter of a short one, which names its long flag's row. */
static const cli_opt *row_of(const cli_opt *specs, int n, int c) {
    if (c >= 1000) return &specs[c - 1000];
    for (int j = 0; j < n; j++)
        if (specs[j].kind == OPT_SHORT && specs[j].name[0] == c)
            for (int i = 0; i < n; i++)
                if (specs[i].name && specs[i].kind != OPT_SHORT &&
                    !strcmp(specs[i].name, specs[j].help))
                    return &specs[i];
    return NULL;
}

int cli_parse_opts_args(const char *cmd, const char *usage, const cli_opt *specs, int n,
                        int argc, char **argv, int *first_arg) {
    struct option *opts = calloc((size_t)n + 2, sizeof *opts);
    char *shorts = malloc(2 * (size_t)n + 3); /* ":h", then a letter and perhaps ':' per alias */
    if (!opts || !shorts) {
        free(opts);
        free(shorts);
        return cli_error("out of memory");
    }
    int k = 0, m = 0;
    shorts[m++] = ':';
    shorts[m++] = 'h';
    for (int i = 0; i < n; i++) {
        if (specs[i].kind == OPT_HEADING) continue;
        if (specs[i].kind == OPT_SHORT) {
            const cli_opt *target = row_of(specs, n, specs[i].name[0]);
            shorts[m++] = specs[i].name[0];
            if (target && target->kind != OPT_FLAG) shorts[m++] = ':';
            continue;
        }
        opts[k++] = (struct option){specs[i].name,
                                    specs[i].kind == OPT_FLAG ? no_argument : required_argument, 0,
                                    1000 + i};
    }
    shorts[m] = 0;
    opts[k] = (struct option){"help", no_argument, 0, 'h'};
    int c, rc = -1;
    optind = 1;
    while (rc < 0 && (c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
        const cli_opt *s = c == 'h' ? NULL : row_of(specs, n, c);
        if (c == 'h') {
            print_help(usage, specs, n);
            rc = 0;
        } else if (!s) {
            rc = bad_option(cmd, argv);
        } else if (s->kind == OPT_FLAG) {
            *(int *)s->dst = 1;
        } else {
            rc = parse_value(cmd, s, optarg);
        }
    }
    if (first_arg) *first_arg = optind; /* getopt_long put the arguments after the flags */
    else if (rc < 0 && optind < argc) rc = cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    free(opts);
    free(shorts);
    return rc;
}

int cli_parse_ids_io(const char *cmd, const char *usage, const char *out_help,
                     const char *text_help, int argc, char **argv, const char **in_path,
                     const char **out_path, int *format) {
    char format_help[160];
    snprintf(format_help, sizeof format_help, "u16: little-endian uint16 per id, raw;\ntext: %s",
             text_help);
    const cli_opt specs[] = {
        {"output", OPT_STR, out_path, 0, 0, "OUT", out_help, "standard output"},
        CLI_SHORT("o", "output"),
        {"format", OPT_CHOICE, format, 0, 0, "u16|text", format_help, NULL},
    };
    int first = 0;
    *out_path = NULL, *format = IDS_U16;
    int done = cli_parse_opts_args(cmd, usage, specs, sizeof specs / sizeof *specs, argc, argv,
                                   &first);
    if (done >= 0) return done;
    if (argc - first > 1) return cli_usage_error(cmd, "takes one input file");
    *in_path = first < argc ? argv[first] : NULL;
    return -1;
}
