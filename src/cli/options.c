/* One option table per command: parsing, --help and the defaults all follow from it. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int parse_value(const cli_opt *s, const char *arg) {
    if (s->kind == OPT_STR) {
        *(const char **)s->dst = arg;
        return 0;
    }
    if (s->kind == OPT_DOUBLE) {
        double d;
        if (cli_parse_double(arg, &d) != 0 || d < s->min || d > s->max) return -1;
        *(double *)s->dst = d;
        return 0;
    }
    uint64_t v;
    if (cli_parse_u64(arg, (uint64_t)s->min, (uint64_t)s->max, &v) != 0) return -1;
    if (s->kind == OPT_INT) *(int *)s->dst = (int)v;
    else if (s->kind == OPT_I64) *(long long *)s->dst = (long long)v;
    else *(unsigned long long *)s->dst = v;
    return 0;
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

static void print_help(const char *usage, const cli_opt *specs, int n) {
    fputs(usage, stdout);
    for (int i = 0; i < n; i++) {
        const cli_opt *s = &specs[i];
        if (s->kind == OPT_HEADING) {
            printf("%s:\n", s->help);
            continue;
        }
        char flag[64], def[256], text[1024];
        snprintf(flag, sizeof flag, "--%s%s%s", s->name, s->arg ? " " : "", s->arg ? s->arg : "");
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

int cli_parse_opts_args(const char *cmd, const char *usage, const cli_opt *specs, int n,
                        int argc, char **argv, int *first_arg) {
    struct option *opts = calloc((size_t)n + 2, sizeof *opts);
    if (!opts) return cli_error("out of memory");
    int k = 0;
    for (int i = 0; i < n; i++)
        if (specs[i].kind != OPT_HEADING)
            opts[k++] = (struct option){specs[i].name,
                                        specs[i].kind == OPT_FLAG ? no_argument : required_argument,
                                        0, 1000 + i};
    opts[k] = (struct option){"help", no_argument, 0, 'h'};
    int c, rc = -1;
    optind = 1;
    while (rc < 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            print_help(usage, specs, n);
            rc = 0;
        } else if (c < 1000) {
            rc = cli_bad_option(cmd, argv);
        } else if (specs[c - 1000].kind == OPT_FLAG) {
            *(int *)specs[c - 1000].dst = 1;
        } else if (parse_value(&specs[c - 1000], optarg) != 0) {
            rc = cli_usage_error(cmd, "invalid value for --%s: '%s'", specs[c - 1000].name, optarg);
        }
    }
    if (first_arg) *first_arg = optind; /* getopt_long put the arguments after the flags */
    else if (rc < 0 && optind < argc) rc = cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    free(opts);
    return rc;
}
