/* Every op of ops/ops.h on every backend, case by case (op_cases.c: an op's test at some shapes
 * and precision), in the spirit of ggml's test-backend-ops. Each case runs
 *  - on the CPU at one thread, against float64 references (op_reference.c): the forwards'
 *    values, the backwards' against central finite differences of L = sum(out * R);
 *  - twice on every backend, which must give the same bits both times (ops.h, Determinism);
 *  - on the CPU at all threads: the one-thread CPU's bits, except what a vendor GEMM computes
 *    (deterministic only for a fixed thread count): that within the case's tolerance;
 *  - on backends made of the CPU's kernels ("wide", "detached": test_backends.h): the CPU's bits
 *    at the same thread count; on backends with kernels of their own (CUDA), or whose storage
 *    rounds (bf16 activations: "narrow"), the one-thread CPU's results within the case's
 *    tolerance;
 *  - and each backend's results must keep the op's contract on their own (a row gets what it
 *    gets alone, on a backend that claims it; in place equals out of place).
 * A backend that does not open here (no CUDA build, no GPU) is reported skipped on stderr. To
 * add one, give it a line in `backends` below. Plus the CPU's bf16 conversions (helpers of its
 * kernels, not ops). Quiet when all is well: failures print one line each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "op_cases.h"
#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "test_backends.h"
#ifdef GPT2C_HAVE_CUDA
#include "ops/cuda/cuda_kernels.h"
#endif

/* What a backend's results are compared with. */
typedef enum {
    CPU_REFERENCE, /* the CPU itself; at one thread (the first line), everyone's reference */
    CPU_KERNELS,   /* the CPU's kernels behind another handle: the CPU's bits */
    OWN_KERNELS,   /* kernels of its own: the CPU's results within the case's tolerance */
} kernels_kind;

typedef struct test_backend {
    const char *label;
    /* opened with gpt2_backend_open(device, threads), or by `open` (the tests' own backends) */
    const char *device;
    int threads; /* 0: all CPUs */
    int (*open)(gpt2_backend *be, gpt2c_error *err);
    kernels_kind kernels;
} test_backend;

static int open_wide(gpt2_backend *be, gpt2c_error *err) {
    if (!test_cpu.ops && test_backends_open(0, err) != 0) return -1;
    *be = test_wide;
    return 0;
}
static int open_narrow(gpt2_backend *be, gpt2c_error *err) {
    if (!test_cpu.ops && test_backends_open(0, err) != 0) return -1;
    *be = test_narrow;
    return 0;
}
static int open_detached(gpt2_backend *be, gpt2c_error *err) {
    if (!test_cpu.ops && test_backends_open(0, err) != 0) return -1;
    *be = test_detached;
    return 0;
}

/* One line a backend. The first is the reference; the CPU at all threads must come second. */
static const test_backend backends[] = {
    {"cpu", "cpu", 1, NULL, CPU_REFERENCE},
    {"cpu", "cpu", 0, NULL, CPU_REFERENCE},
    {"wide", NULL, 0, open_wide, CPU_KERNELS},
    {"detached", NULL, 0, open_detached, CPU_KERNELS},
    /* the CPU's kernels, activations in bf16 under bf16: within the rounding's tolerance */
    {"narrow", NULL, 0, open_narrow, OWN_KERNELS},
    {"cuda", "cuda", 0, NULL, OWN_KERNELS},
};
enum { NBACKENDS = sizeof backends / sizeof *backends };

typedef struct slot {
    const test_backend *t;
    gpt2_backend be;
    int open, ran, skipped;
    int no_contract; /* of those run, the cases whose contract it does not claim */
} slot;

/* Whether `word` is one of the space-separated words of `list`. */
static int listed(const char *list, const char *word) {
    size_t len = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && !strncmp(p, word, len)) return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Why a case does not run on this backend, or NULL. */
static const char *skip_reason(const op_case *c, const slot *s) {
    gpt2c_error err;
    if (c->bf16 && gpt2_backend_supports(&s->be, GPT2_BF16, &err) != 0) return "no bf16 here";
    if (c->test->model_shape) {
        int C, NH;
        c->test->model_shape(c, &C, &NH);
        if (gpt2_backend_check_shapes(&s->be, C, NH, &err) != 0) return "shapes it refuses";
    }
    return NULL;
}

/* Whether the case's contract is left out on this backend (its values are compared all the
 * same). The rows contract (matmul_forward and logits_forward up to GPT2_FEW_ROWS rows,
 * matmul_forward_rowwise for any) binds a backend that shares forwards among prompts:
 * rows_chunk > 0 for the precision. The CUDA backend's is 0, for it does not meet it yet: left
 * out there. The CPU's kernels meet it in both precisions (ops.h), also where a CPU with native
 * bf16 sets rows_chunk[bf16] to 0 for speed, so they always run it. */
static int contract_left_out(const op_case *c, const slot *s) {
    return c->test->rows_contract && s->t->kernels == OWN_KERNELS &&
           s->be.rows_chunk[c->bf16 ? GPT2_BF16 : GPT2_FP32] == 0;
}

/* "matmul_forward matmul_backward N=5 C=7 OC=9 bf16 on wide (2 threads)" */
static void describe(char *tag, size_t size, const op_case *c, const slot *s) {
    int at = snprintf(tag, size, "%s", c->test->ops);
    for (int i = 0; i < 4 && c->test->dims[i]; i++)
        at += snprintf(tag + at, size - (size_t)at, " %s=%d", c->test->dims[i], c->n[i]);
    if (c->nspans) at += snprintf(tag + at, size - (size_t)at, " spans=%d", c->nspans);
    snprintf(tag + at, size - (size_t)at, "%s on %s (%d thread%s)", c->bf16 ? " bf16" : "",
             s->t->label, s->be.threads, s->be.threads == 1 ? "" : "s");
}

static const char *part(const char *tag, const char *name, const char *how) {
    static char line[320];
    snprintf(line, sizeof line, "%s: %s %s", tag, name, how);
    return line;
}

/* Two runs of the same configuration: the same bits. */
static void check_repeat(const char *tag, const op_data *d, double *const *got,
                         double *const *again) {
    for (int i = 0; i < d->n; i++)
        if (d->b[i].out) check_same(part(tag, d->b[i].name, "run twice"), got[i], again[i], d->b[i].n);
}

/* The results against the CPU's (want, at want_threads): bit for bit, or within the case's
 * tolerance times the buffer's where `within` says so for that buffer. */
static void compare(const char *tag, const op_case *c, const op_data *d, double *const *got,
                    double *const *want, int want_threads, int (*within)(const op_buf *)) {
    char how[64];
    snprintf(how, sizeof how, "vs cpu (%d thread%s)", want_threads, want_threads == 1 ? "" : "s");
    for (int i = 0; i < d->n; i++) {
        const op_buf *b = &d->b[i];
        if (!b->out) continue;
        /* bf16 storage: the results, and what the op computed them from, rounded (the case's
         * values are near 1: the slack is absolute too) */
        double slack = b->tol > 0 ? d->act_slack : 0;
        if (within(b))
            check_near(part(tag, b->name, how), got[i], want[i], b->n, c->atol * b->tol + slack,
                       c->rtol * b->tol + slack);
        else check_same(part(tag, b->name, how), got[i], want[i], b->n);
    }
}
static int never(const op_buf *b) { return (void)b, 0; }
static int gemm_only(const op_buf *b) { return b->gemm; }
static int always(const op_buf *b) { return (void)b, 1; }

/* Another backend's results against the CPU's: its own kernels within the case's tolerance of
 * the one-thread CPU's; the CPU's kernels with the CPU's bits at the same thread count, or
 * across thread counts with the bits of all but a vendor GEMM's results. */
static void compare_with_cpu(const char *tag, const op_case *c, const op_data *d,
                             double *const *got, const slot *s, double *cpu[2][OP_MAX_BUFS],
                             const int cpu_threads[2]) {
    if (s->t->kernels == OWN_KERNELS) {
        compare(tag, c, d, got, cpu[0], cpu_threads[0], always);
        return;
    }
    int j = cpu_threads[1] == s->be.threads ? 1 : 0;
    compare(tag, c, d, got, cpu[j], cpu_threads[j],
            s->be.threads == cpu_threads[j] ? never : gemm_only);
}

/* The CPU's results against float64 (with the backwards' finite differences, most of a run's
 * time): where the CPU itself is under test (every backend, or "cpu" asked for), not in a run
 * for other backends only (the CUDA backend's thread orders), which compares with its results. */
static int check_reference;

/* GPT2C_ATTN=cudnn (a ctest entry on the emulated GPU: cuDNN's stand-in): the CUDA backend's
 * bf16 attention cases must run cuDNN's attention, which its plan line names, not fall back to
 * our own kernels unseen (a shape cuDNN refuses says so on stderr, and this fails). */
static int cudnn_asked;
static void check_attention_path(const char *tag, const op_case *c, const slot *s) {
    if (!cudnn_asked || !c->bf16 || strcmp(s->t->label, "cuda") != 0 ||
        !listed(c->test->ops, "attention_backward"))
        return;
    const char *path = s->be.path[GPT2_BF16];
    int ran = strstr(path, "cuDNN") != NULL;
    if (!ran) fprintf(stderr, "%s: GPT2C_ATTN=cudnn, but the plan ran %s\n", tag, path);
    CHECK(ran);
}

static void test_case(int index, slot *slots) {
    const op_case *c = &op_cases[index];
    op_data d = {0};
    rng r;
    rng_seed(&r, 1000 + (uint64_t)index);
    c->test->make(c, &d, &r);
    if (c->bf16) op_round_acts_bf16(&d);
    /* the CPU's results: at one thread (the first slot), at all threads (the second) */
    double *cpu[2][OP_MAX_BUFS] = {{NULL}};
    int cpu_threads[2] = {0, 0};
    char tag[256];
    for (int k = 0; k < NBACKENDS; k++) {
        slot *s = &slots[k];
        if (!s->open) continue;
        if (skip_reason(c, s)) {
            s->skipped++;
            continue;
        }
        s->ran++;
        describe(tag, sizeof tag, c, s);
        /* the handle runs the case's precision, which its activations' type follows */
        gpt2_precision p;
        gpt2c_error err;
        if (gpt2_backend_precision(&s->be, c->bf16 ? "bf16" : "fp32", &p, &err) != 0) {
            fprintf(stderr, "%s: %s\n", tag, err.msg);
            CHECK(0);
            continue;
        }
        d.act_slack = op_act_slack(s->be.act_bytes);
        double *got[OP_MAX_BUFS], *again[OP_MAX_BUFS];
        gpt2_backend_enter_thread(&s->be);
        op_run(&s->be, c, &d, got);
        check_attention_path(tag, c, s);
        op_run(&s->be, c, &d, again);
        check_repeat(tag, &d, got, again);
        op_results_free(again);
        if (c->test->contract && !contract_left_out(c, s)) c->test->contract(c, &d, got, tag);
        else if (c->test->contract) s->no_contract++;
        if (k == 0) {
            if (check_reference) c->test->reference(c, &d, got, tag);
        } else compare_with_cpu(tag, c, &d, got, s, cpu, cpu_threads);
        if (s->t->kernels == CPU_REFERENCE && k < 2) {
            memcpy(cpu[k], got, sizeof got);
            cpu_threads[k] = s->be.threads;
        } else op_results_free(got);
    }
    op_results_free(cpu[0]);
    op_results_free(cpu[1]);
    op_data_free(&d);
}

/* Every op of the list has a case (an op added to ops.h without one fails here). */
#define OP_NAME(name, ...) #name,
static const char *const all_ops[] = {GPT2_OPS(OP_NAME)};
#undef OP_NAME

static void test_every_op_has_a_case(void) {
    for (size_t i = 0; i < sizeof all_ops / sizeof *all_ops; i++) {
        int found = 0;
        for (int k = 0; k < op_ncases && !found; k++) found = listed(op_cases[k].test->ops, all_ops[i]);
        if (!found) fprintf(stderr, "op %s has no case in op_cases.c\n", all_ops[i]);
        CHECK(found);
    }
}

/* The CPU's bf16 conversions: the AVX512_BF16 one (where the CPU has it) and the C one give
 * the same bits; both round to nearest even, keep NaN, flush subnormals. */
static void test_bf16_conversions(void) {
    uint32_t cases[][2] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* a tie, rounds to the even 0x3f80 */
        {0x3f818000u, 0x3f82}, /* a tie, rounds up to the even 0x3f82 */
        {0x3f808001u, 0x3f81}, /* above the tie */
        {0x7f7fffffu, 0x7f80}, /* the largest float rounds to infinity */
        {0xff800000u, 0xff80}, /* -inf */
        {0x7fc00001u, 0x7fc0}, /* a NaN stays a NaN */
        {0x7f800001u, 0x7fc0}, /* a signalling NaN comes out quiet, never infinity */
        {0x00000001u, 0x0000}, /* subnormal: flushed */
        {0x807fffffu, 0x8000}, /* negative subnormal: -0 */
    };
    enum { NC = sizeof cases / sizeof *cases, NR = 4099 };
    static float in[NC + NR], rounded[NC + NR], widened[NC + NR];
    static gpt2_bf16 fast[NC + NR], slow[NC + NR];
    for (int i = 0; i < NC; i++) {
        memcpy(&in[i], &cases[i][0], 4);
        if (cpu_bf16_round(in[i]) != cases[i][1])
            fprintf(stderr, "bf16 of 0x%08x: 0x%04x, want 0x%04x\n", cases[i][0],
                    cpu_bf16_round(in[i]), cases[i][1]);
        CHECK(cpu_bf16_round(in[i]) == cases[i][1]);
    }
    rng r;
    rng_seed(&r, 42);
    for (int i = 0; i < NR; i++) {
        uint32_t u = (uint32_t)rng_next(&r);
        memcpy(&in[NC + i], &u, 4);
    }
    cpu_to_bf16(fast, in, NC + NR);
    cpu_to_bf16_scalar(slow, in, NC + NR);
    if (cpu_bf16_instruction() && memcmp(fast, slow, sizeof fast) != 0)
        fprintf(stderr, "bf16 rounding: the AVX512_BF16 path differs from the C one\n");
    CHECK(memcmp(fast, slow, sizeof fast) == 0);
    /* the same rounding kept in fp32 (the emulated route), in place too, and widened back */
    cpu_round_bf16(rounded, in, NC + NR);
    cpu_from_bf16(widened, slow, NC + NR);
    CHECK(memcmp(rounded, widened, sizeof rounded) == 0);
    cpu_round_bf16(in, in, NC + NR);
    CHECK(memcmp(in, widened, sizeof in) == 0);
}

/* Whether backend `label` is one of the command line's (none: every backend). */
static int asked_for(int argc, char **argv, const char *label) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], label)) return 1;
    return argc < 2;
}

/* test_ops [--only OP] [LABEL...]: every backend, or the reference and the backends named (the
 * CPU's at each instruction-set level, the CUDA backend in each emulated thread order:
 * tests/CMakeLists.txt); every case, or only those of op OP (a run for one path of a backend:
 * the CUDA backend's cuDNN attention). */
int main(int argc, char **argv) {
    gpt2c_error err;
    slot slots[NBACKENDS] = {{0}};
    const char *only = NULL;
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else argv[kept++] = argv[i];
    }
    argc = kept;
    for (int i = 1; i < argc; i++) {
        int known = 0;
        for (int k = 0; k < NBACKENDS; k++) known |= !strcmp(argv[i], backends[k].label);
        if (!known) {
            fprintf(stderr, "test_ops: no backend '%s'\n", argv[i]);
            return 2;
        }
    }
    /* capped at this machine's best level (test_ops_<level>, tests/CMakeLists.txt), the CPU's
     * backends would run exactly what the plain test_ops runs: skipped, as py_cpu_path_<level> is */
    const char *cap = getenv("GPT2C_CPU_ISA");
    if (cap && *cap && cpu_isa_check(NULL) == 0 && cpu_isa() == cpu_isa_machine()) {
        fprintf(stderr, "skipped: %s is this CPU's best level, which the plain test_ops covers\n", cap);
        return 77;
    }
#ifdef GPT2C_HAVE_CUDA
    cuda_set_tf32(0); /* the CUDA kernels' fp32 products in fp32, so that fp32's tolerances hold */
#endif
    for (int k = 0; k < NBACKENDS; k++) {
        const test_backend *t = slots[k].t = &backends[k];
        if (k > 0 && !asked_for(argc, argv, t->label)) continue;
        slots[k].open = (t->open ? t->open(&slots[k].be, &err)
                                 : gpt2_backend_open(&slots[k].be, t->device, t->threads, &err)) == 0;
        if (slots[k].open) continue;
        if (k == 0) { /* GPT2C_CPU_ISA asks for more than this CPU has */
            fprintf(stderr, "skipped: %s\n", err.msg);
            return 77;
        }
        fprintf(stderr, "%s: skipped: %s\n", backends[k].label, err.msg);
        if (argc > 1) return 1; /* a backend asked for by name must run */
    }
    fprintf(stderr, "instruction set %s: %s, %s\n", cpu_isa_name(cpu_isa()),
            slots[0].be.path[GPT2_FP32], slots[0].be.path[GPT2_BF16]);
    test_bf16_conversions();
    test_every_op_has_a_case();
    check_reference = asked_for(argc, argv, "cpu");
    const char *attn = getenv("GPT2C_ATTN");
    cudnn_asked = attn && !strcmp(attn, "cudnn");
    /* GPT2C_TEST_OPS_CASES=N: the first N cases only, for the dry run of scripts/gpu-check.sh
     * (tests/test_gpu_check.py), which tests the script's stage; every case runs in test_ops's
     * own entries */
    int ncases = op_ncases;
    const char *first_n = getenv("GPT2C_TEST_OPS_CASES");
    if (first_n && *first_n && atoi(first_n) >= 0 && atoi(first_n) < ncases) ncases = atoi(first_n);
    int ran = 0;
    for (int i = 0; i < ncases; i++)
        if (!only || listed(op_cases[i].test->ops, only)) test_case(i, slots), ran++;
    if (only && !ran) fprintf(stderr, "test_ops: no case of op '%s'\n", only);
    CHECK(ran > 0);
    CHECK(test_live_buffers == 0); /* every buffer on the detached backend given back */
    char line[768];
    int at = snprintf(line, sizeof line, "%d cases:", ran);
    for (int k = 0; k < NBACKENDS; k++)
        if (slots[k].open)
            at += snprintf(line + at, sizeof line - (size_t)at,
                           " %s (%d thread%s) %d run (%d without the rows contract), %d skipped;",
                           backends[k].label, slots[k].be.threads,
                           slots[k].be.threads == 1 ? "" : "s", slots[k].ran, slots[k].no_contract,
                           slots[k].skipped);
    fprintf(stderr, "%s\n", line);
    for (int k = 0; k < NBACKENDS; k++)
        if (slots[k].open) gpt2_backend_close(&slots[k].be);
    return check_done();
}
