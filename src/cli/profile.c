/* --profile's report: where the time went, per kind of work, as a table or as JSON. */
#include <jansson.h>
#include <stdlib.h>

#include "cli/cli.h"

/* The products' kinds get a GFLOP/s column. */
static int counts_flops(const gpt2c_profile *p, int k) { return p->flops[k] > 0 && p->ms[k] > 0; }

static int shown(const gpt2c_profile *p, int k) {
    return p->calls[k] > 0 || k == GPT2C_PROF_OTHER;
}

/* The run less its occasional work (validation, samples, checkpoints, the prompt): the step
 * itself. */
static double steps_alone_ms(const gpt2c_profile *p) {
    return p->total_ms - p->ms[GPT2C_PROF_VALIDATION] - p->ms[GPT2C_PROF_SAMPLES] -
           p->ms[GPT2C_PROF_CHECKPOINT] - p->ms[GPT2C_PROF_PROMPT];
}

void cli_print_profile(FILE *f, const gpt2c_profile *p, const char *step) {
    long steps = p->steps > 0 ? p->steps : 1;
    fprintf(f, "profile: %ld %s%s, %.2f ms per %s (%.1f ms in all; %.2f ms per %s without "
            "validation, samples, checkpoints and the prompt)\n", p->steps, step,
            p->steps == 1 ? "" : "s", p->total_ms / steps, step, p->total_ms,
            steps_alone_ms(p) / steps, step);
    fprintf(f, "  %-12s %10s %7s %9s\n", "kind", "ms/" "step", "share", "GFLOP/s");
    for (int k = 0; k < GPT2C_PROF_KINDS; k++) {
        if (!shown(p, k)) continue;
        fprintf(f, "  %-12s %10.2f %6.1f%%", gpt2c_profile_kind_name(k), p->ms[k] / steps,
                p->total_ms > 0 ? 100.0 * p->ms[k] / p->total_ms : 0.0);
        if (counts_flops(p, k)) fprintf(f, " %9.1f", p->flops[k] / (p->ms[k] * 1e6));
        fputc('\n', f);
    }
    fflush(f);
}

json_t *cli_profile_json(const gpt2c_profile *p) {
    long steps = p->steps > 0 ? p->steps : 1;
    json_t *kinds = json_object();
    for (int k = 0; k < GPT2C_PROF_KINDS; k++) {
        if (!shown(p, k)) continue;
        json_t *kind = json_pack("{s:f, s:f, s:f, s:I}", "ms_per_step", p->ms[k] / steps, "ms",
                                 p->ms[k], "share", p->total_ms > 0 ? p->ms[k] / p->total_ms : 0.0,
                                 "calls", (json_int_t)p->calls[k]);
        if (kind && counts_flops(p, k))
            json_object_set_new(kind, "gflops", json_real(p->flops[k] / (p->ms[k] * 1e6)));
        json_object_set_new(kinds, gpt2c_profile_kind_name(k), kind);
    }
    return json_pack("{s:I, s:f, s:f, s:f, s:o}", "steps", (json_int_t)p->steps, "total_ms",
                     p->total_ms, "step_ms", p->total_ms / steps, "step_alone_ms",
                     steps_alone_ms(p) / steps, "kinds", kinds);
}

int cli_print_json(json_t *root) {
    char *dump = root ? json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(root);
    if (!dump) return cli_error("out of memory");
    puts(dump);
    free(dump);
    fflush(stdout);
    return 0;
}
