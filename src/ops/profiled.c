/* The profiling table: each op of the backend's, timed with the backend's clock and added to its
 * kind. See profiled.h. */
#include <string.h>

#include "ops/profiled.h"

static const char *const kind_names[GPT2C_PROF_KINDS] = {
    "matmul_fwd", "matmul_bwd", "attention", "lm_head",  "elementwise", "optimizer", "data",
    "comm",       "checkpoint", "validation", "samples",  "sampling",    "prompt",    "other"};

const char *gpt2c_profile_kind_name(int kind) {
    return kind >= 0 && kind < GPT2C_PROF_KINDS ? kind_names[kind] : NULL;
}

static struct {
    gpt2c_profile *p;   /* NULL: not profiling */
    const gpt2_ops *in; /* the backend's ops, timed */
    gpt2_ops table;
    gpt2_backend handle; /* the backend's handle, with the timing table */
    double start_ms, ops_ms; /* when the run started; what the ops took so far */
    int whole;               /* inside a prof_begin_whole: ops are not timed on their own */
} pr;

static double clock_ms(void) { return pr.in->clock_ms(); }

static void add(gpt2c_profile_kind kind, double ms, double flops) {
    pr.p->ms[kind] += ms;
    pr.p->flops[kind] += flops;
    pr.p->calls[kind]++;
    pr.ops_ms += ms;
}

/* Every op of the list, timed: its kind gets the time and the op's FLOPs (ops/ops.h). Inside a
 * prof_begin_whole the op runs untimed (the whole counts it). */
#define TIMED_OP(name, params, args, kind, flops, acts)                                            \
    static void p_##name params {                                                                  \
        if (pr.whole) {                                                                            \
            pr.in->name args;                                                                      \
            return;                                                                                \
        }                                                                                          \
        double t0_ = clock_ms();                                                                   \
        pr.in->name args;                                                                          \
        add(GPT2C_PROF_##kind, clock_ms() - t0_, (double)(flops));                                 \
    }
GPT2_OPS(TIMED_OP)
#undef TIMED_OP

static int recorded_never(void) { return -1; }

const gpt2_backend *prof_start(gpt2c_profile *p, const gpt2_backend *inner) {
    memset(p, 0, sizeof *p);
    pr.p = p, pr.in = inner->ops, pr.ops_ms = 0, pr.whole = 0;
    pr.table = *inner->ops; /* the services (memory, sizes, the clock): the backend's own */
#define TIMED_ENTRY(name, ...) pr.table.name = p_##name;
    GPT2_OPS(TIMED_ENTRY)
#undef TIMED_ENTRY
    pr.table.capture_begin = recorded_never; /* each op is timed as it runs */
    pr.handle = *inner;
    pr.handle.ops = &pr.table;
    pr.start_ms = clock_ms();
    return &pr.handle;
}

void prof_stop(void) {
    if (!pr.p) return;
    gpt2c_profile *p = pr.p;
    p->total_ms = clock_ms() - pr.start_ms;
    double measured = 0;
    for (int k = 0; k < GPT2C_PROF_OTHER; k++) measured += p->ms[k];
    p->ms[GPT2C_PROF_OTHER] = p->total_ms > measured ? p->total_ms - measured : 0;
    pr.p = NULL;
}

prof_mark prof_begin(void) {
    if (!pr.p || pr.whole) return (prof_mark){0}; /* inside a whole, the whole counts it */
    return (prof_mark){clock_ms(), pr.ops_ms, 0};
}

prof_mark prof_begin_whole(void) {
    if (!pr.p || pr.whole) return (prof_mark){0}; /* a whole inside a whole: the outer counts */
    prof_mark m = {clock_ms(), pr.ops_ms, 1};
    pr.whole = 1;
    return m;
}

void prof_end(prof_mark m, gpt2c_profile_kind kind) {
    if (!pr.p || m.t == 0) return;
    double ms = clock_ms() - m.t;
    if (m.whole) pr.whole = 0;
    else ms -= pr.ops_ms - m.ops_ms; /* the ops inside kept their own kinds */
    pr.p->ms[kind] += ms > 0 ? ms : 0;
    pr.p->calls[kind]++;
}
