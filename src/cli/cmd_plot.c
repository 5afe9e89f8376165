/* gpt2c plot RUN_DIR... -o FILE.svg|FILE.png: the runs' logs as six panels, drawn by gnuplot
 * (README: why gnuplot), overlaid with a legend, with GPT-2's reference figures dashed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/run_series.h"
#include "util/error.h"

static const char *usage =
    "usage: gpt2c plot RUN_DIR... -o FILE.svg|FILE.png [--baseline gpt2-124m]\n\n"
    "Draw training runs' logs (RUN_DIR/log.jsonl, as `gpt2c train` writes it, also while it\n"
    "runs): train loss (each step, and smoothed), validation loss, HellaSwag acc_norm, the\n"
    "learning rate, the gradient norm and tokens/s against the step, the runs overlaid.\n"
    "Needs gnuplot (Debian: gnuplot-nox).\n\n";

/* Reference lines (--baseline gpt2-124m): build-nanogpt's figures for OpenAI's GPT-2 124M
 * checkpoint: its loss on the FineWeb-Edu 10B validation split, and HellaSwag acc_norm (the raw
 * jsonl, completion style); and GPT-3 paper's Small (125M) on HellaSwag. */
#define GPT2_124M_VAL_LOSS 3.2924
#define GPT2_124M_HELLASWAG 0.2955
#define GPT3_125M_HELLASWAG 0.337

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                     "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
#define NCOLORS (sizeof colors / sizeof *colors)

/* A string for gnuplot's double quotes. */
static void put_quoted(FILE *g, const char *s) {
    fputc('"', g);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', g);
        if (*s == '\n') continue;
        fputc(*s, g);
    }
    fputc('"', g);
}

/* $d<run>_<kind>: step, value (and for the train loss a smoothed value: an exponential moving
 * average of weight 0.9, debiased as TensorBoard's smoothing is). */
static void put_data(FILE *g, const run_series *runs, int nruns) {
    for (int r = 0; r < nruns; r++)
        for (int k = 0; k < SERIES_KINDS; k++) {
            const series *s = &runs[r].s[k];
            if (!s->n) continue;
            fprintf(g, "$d%d_%d << EOD\n", r, k);
            double ema = 0, w = 1;
            for (size_t i = 0; i < s->n; i++) {
                ema = 0.9 * ema + 0.1 * s->value[i], w *= 0.9;
                fprintf(g, "%.0f %.9g %.9g\n", s->step[i], s->value[i], ema / (1 - w));
            }
            fputs("EOD\n", g);
        }
}

typedef struct panel {
    series_kind kind;
    const char *title, *ylabel, *none;
    int logy;
} panel;

static const panel panels[] = {
    {SERIES_LOSS, "train loss", "loss (nats per token)", NULL, 0},
    {SERIES_VAL_LOSS, "validation loss", "loss (nats per token)", "no validation in these runs", 0},
    {SERIES_HELLASWAG, "HellaSwag", "acc_norm (fraction right)", "no HellaSwag in these runs", 0},
    {SERIES_LR, "learning rate", "learning rate", NULL, 0},
    {SERIES_NORM, "gradient norm", "global L2 norm, before clipping", NULL, 1},
    {SERIES_TOK_S, "throughput", "tokens per second", NULL, 0},
};

static void put_panel(FILE *g, const panel *p, const run_series *runs, int nruns, int baseline) {
    fprintf(g, "set title \"%s\" noenhanced\nset ylabel \"%s\" noenhanced\n", p->title, p->ylabel);
    fprintf(g, "%s\n", p->logy ? "set logscale y" : "unset logscale y");
    fprintf(g, "set format y \"%s\"\n", p->kind == SERIES_LR ? "%.1e" : "%g");
    int any = 0;
    for (int r = 0; r < nruns; r++) any |= runs[r].s[p->kind].n > 0;
    if (!any) { /* the panel stays, saying why it is empty */
        fprintf(g, "set label 1 \"%s\" at graph 0.5, graph 0.5 center\n", p->none);
        fputs("unset key\nset offsets 0, 0, 0, 0\nplot [] [0:1] 2 notitle\nunset label 1\n", g);
        return;
    }
    /* the runs are named once, in the first panel (one colour each throughout); the reference
     * lines in theirs. Room above the curves for the legend. */
    int named = p->kind == SERIES_LOSS, keyed = named || (baseline && (p->kind == SERIES_VAL_LOSS ||
                                                                      p->kind == SERIES_HELLASWAG));
    fputs(keyed ? "set key top right box opaque\nset offsets 0, 0, graph 0.25, 0\n"
                : "unset key\nset offsets 0, 0, graph 0.05, 0\n", g);
    int sparse = p->kind == SERIES_VAL_LOSS || p->kind == SERIES_HELLASWAG;
    int lines = 0;
    fputs("plot ", g);
    for (int r = 0; r < nruns; r++) {
        const char *c = colors[r % NCOLORS];
        if (!runs[r].s[p->kind].n) continue;
        if (lines++) fputs(", \\\n     ", g);
        if (p->kind == SERIES_LOSS) { /* each step faint, the smoothed line over it */
            fprintf(g, "$d%d_%d using 1:2 with lines lw 1 lc rgb \"#B0%s\" notitle, \\\n     ", r,
                    p->kind, c + 1);
            fprintf(g, "$d%d_%d using 1:3 with lines lw 2.5 lc rgb \"%s\"", r, p->kind, c);
        } else {
            fprintf(g, "$d%d_%d using 1:2 with %s lw 2 lc rgb \"%s\"", r, p->kind,
                    sparse ? "linespoints pt 7 ps 0.6" : "lines", c);
        }
        if (named) {
            fputs(" title ", g);
            put_quoted(g, runs[r].name);
            fputs(" noenhanced", g);
        } else {
            fputs(" notitle", g);
        }
    }
    if (baseline && p->kind == SERIES_VAL_LOSS)
        fprintf(g, ", \\\n     %g with lines dt 2 lw 2 lc rgb \"#555555\" title "
                   "\"GPT-2 124M, FineWeb-Edu val: %.4g\"", GPT2_124M_VAL_LOSS,
                GPT2_124M_VAL_LOSS);
    if (baseline && p->kind == SERIES_HELLASWAG)
        fprintf(g, ", \\\n     %g with lines dt 2 lw 2 lc rgb \"#555555\" title \"GPT-2 124M: %.4g\""
                   ", \\\n     %g with lines dt 3 lw 2 lc rgb \"#999999\" title \"GPT-3 Small 125M: %.3g\"",
                GPT2_124M_HELLASWAG, GPT2_124M_HELLASWAG, GPT3_125M_HELLASWAG, GPT3_125M_HELLASWAG);
    fputc('\n', g);
}

static void put_script(FILE *g, const char *out, int png, const run_series *runs, int nruns,
                       int baseline) {
    if (png) fputs("set terminal pngcairo size 1500,900 enhanced font \"Sans,11\" background \"white\"\n", g);
    else fputs("set terminal svg size 1500,900 dynamic enhanced font \"Sans,12\" background \"white\"\n", g);
    fputs("set output ", g);
    put_quoted(g, out);
    fputc('\n', g);
    put_data(g, runs, nruns);
    size_t len = 0;
    for (int r = 0; r < nruns; r++) len += strlen(runs[r].name) + 2;
    char *title = malloc(len + 1);
    if (title) {
        title[0] = 0;
        for (int r = 0; r < nruns; r++) strcat(strcat(title, runs[r].name), r + 1 < nruns ? ", " : "");
        fputs("set multiplot layout 2,3 title ", g);
        put_quoted(g, title);
        fputs(" font \",14\" noenhanced\n", g);
        free(title);
    } else {
        fputs("set multiplot layout 2,3\n", g);
    }
    double last = 1; /* every panel over the same steps */
    for (int r = 0; r < nruns; r++)
        for (int k = 0; k < SERIES_KINDS; k++)
            if (runs[r].s[k].n && runs[r].s[k].step[runs[r].s[k].n - 1] > last)
                last = runs[r].s[k].step[runs[r].s[k].n - 1];
    fprintf(g, "set grid lc rgb \"#dddddd\"\nset xlabel \"step\"\n"
               "set border lc rgb \"#444444\"\nset autoscale\nset xrange [0:%.0f]\n", last);
    for (size_t i = 0; i < sizeof panels / sizeof *panels; i++) put_panel(g, &panels[i], runs, nruns, baseline);
    fputs("unset multiplot\nset output\n", g);
}

/* Run gnuplot on the script; 0, or -1 with its first line of complaint in err. */
static int run_gnuplot(const char *out, int png, const run_series *runs, int nruns, int baseline,
                       gpt2c_error *err) {
    int fds[2];
    FILE *errs = tmpfile();
    if (!errs || pipe(fds) != 0) {
        if (errs) fclose(errs);
        return err_set(err, "cannot start gnuplot: %s", strerror(errno));
    }
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[0], 0), dup2(fileno(errs), 2), dup2(fileno(errs), 1);
        close(fds[0]), close(fds[1]);
        execlp("gnuplot", "gnuplot", (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]), fclose(errs);
        return err_set(err, "cannot start gnuplot: %s", strerror(errno));
    }
    /* a gnuplot that is gone (not installed, or stopped at an error) must not end us with
     * SIGPIPE: its exit status says what happened */
    void (*was)(int) = signal(SIGPIPE, SIG_IGN);
    FILE *g = fdopen(fds[1], "w");
    if (g) {
        put_script(g, out, png, runs, nruns, baseline);
        fclose(g);
    } else {
        close(fds[1]);
    }
    signal(SIGPIPE, was);
    int status = 0;
    waitpid(pid, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (code == 0 && g) {
        fclose(errs);
        return 0;
    }
    char line[512] = "";
    rewind(errs);
    /* gnuplot echoes the offending line before its message: the last non-empty line says it */
    char buf[512];
    while (fgets(buf, sizeof buf, errs))
        if (strspn(buf, " \t\r\n^") != strlen(buf)) snprintf(line, sizeof line, "%s", buf);
    line[strcspn(line, "\r\n")] = 0;
    fclose(errs);
    if (code == 127)
        return err_set(err, "gpt2c plot draws with gnuplot, which is not installed (Debian: "
                            "apt-get install gnuplot-nox)");
    return err_set(err, "gnuplot failed: %s", line[0] ? line : "(no message)");
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *baseline = NULL;
    const cli_opt specs[] = {
        {"output", OPT_STR, &out, 0, 0, "FILE", "the picture: .svg or .png", NULL},
        CLI_SHORT("o", "output"),
        {"baseline", OPT_STR, &baseline, 0, 0, "NAME", "gpt2-124m: GPT-2 124M's validation loss and HellaSwag, and\n"
         "GPT-3 Small's HellaSwag, as dashed lines", "none"},
    };
    int first = 0;
    int done = cli_parse_opts_args("plot", usage, specs, sizeof specs / sizeof *specs, argc, argv, &first);
    if (done >= 0) return done;
    if (first >= argc) return cli_usage_error("plot", "give one or more run directories");
    if (!out) return cli_usage_error("plot", "-o FILE.svg or FILE.png is required");
    int png = ends_with(out, ".png");
    if (!png && !ends_with(out, ".svg")) return cli_usage_error("plot", "-o must name a .svg or .png file: '%s'", out);
    if (baseline && strcmp(baseline, "gpt2-124m") != 0)
        return cli_usage_error("plot", "unknown --baseline '%s' (there is gpt2-124m)", baseline);
    int nruns = argc - first;
    run_series *runs = calloc((size_t)nruns, sizeof *runs);
    if (!runs) return cli_error("out of memory");
    gpt2c_error err = {{0}};
    int rc = 0;
    for (int i = 0; i < nruns && rc == 0; i++) rc = run_series_read(&runs[i], argv[first + i], &err);
    /* drawn into FILE.tmp, renamed over FILE once whole: a failed plot leaves FILE as it was */
    size_t n = strlen(out);
    char *tmp = malloc(n + 16);
    if (rc == 0 && !tmp) rc = err_set(&err, "out of memory");
    if (rc == 0) {
        snprintf(tmp, n + 16, "%s.tmp%s", out, png ? ".png" : ".svg");
        FILE *probe = fopen(tmp, "wb");
        if (!probe) rc = err_set(&err, "cannot write %s: %s", out, strerror(errno));
        else fclose(probe);
    }
    if (rc == 0) rc = run_gnuplot(tmp, png, runs, nruns, baseline != NULL, &err);
    if (rc == 0 && rename(tmp, out) != 0)
        rc = err_set(&err, "cannot write %s: %s", out, strerror(errno));
    if (rc != 0 && tmp) unlink(tmp);
    free(tmp);
    for (int i = 0; i < nruns; i++) run_series_free(&runs[i]);
    free(runs);
    if (rc != 0) return cli_error("%s", err.msg);
    printf("%s: %d run(s)\n", out, nruns);
    return 0;
}
