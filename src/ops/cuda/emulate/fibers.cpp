/* A block's threads as fibers on one OS thread. A fiber runs until it reaches __syncthreads, a
 * warp collective (shuffle, vote, __syncwarp) or its end; the scheduler then picks the next
 * runnable one in the order asked for. A warp collective completes when every lane of its mask
 * has arrived at it (each lane then gets its result); a barrier when every thread of the block
 * waits at it. When no fiber can run and the block is not done, the barrier or collective that
 * cannot be met is named and the run stops.
 *
 * A context switch is a few instructions of assembly on x86-64 (no system call: a kernel's warp
 * reduction switches 32 fibers five times); elsewhere it is ucontext's swapcontext. Under
 * AddressSanitizer each switch tells it which stack is live. */
#include "fibers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#if !defined(__x86_64__) || defined(GPT2C_CUEMU_UCONTEXT)
#define CUEMU_UCONTEXT 1
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUEMU_ASAN 1
#endif
#endif
#ifdef CUEMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuemu {

/* Plain globals, not thread-local (whose every access was a call under the sanitizers): one
 * block runs at a time in the whole process, under runtime.cpp's lock. */
const block_context *current_block;
const uint3 *current_thread;

void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("gpt2c: CUDA emulation: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(3); /* now: neither the half-run block's fibers nor exit handlers run on */
}

thread_order order_from_env() {
    const char *s = getenv("GPT2C_CUDA_EMULATE_ORDER");
    if (!s || !*s || !strcmp(s, "warp")) return ORDER_WARP;
    if (!strcmp(s, "reversed")) return ORDER_REVERSED;
    if (!strcmp(s, "lockstep")) return ORDER_LOCKSTEP;
    fail("GPT2C_CUDA_EMULATE_ORDER must be warp, reversed or lockstep, not '%s'", s);
}

namespace {

#ifndef CUEMU_UCONTEXT
/* Saves the callee-saved registers on the current stack, stores its pointer in *save and
 * continues on the stack `load` (one saved the same way). The SSE and x87 control words are not
 * switched: nothing in a kernel changes them (saving them made a switch twice as slow). */
extern "C" void cuemu_switch(void **save, void *load);
asm(R"(
    .pushsection .text
    .globl cuemu_switch
    .type cuemu_switch, @function
cuemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuemu_switch, .-cuemu_switch
    .popsection
)");
#endif

enum fiber_state { RUNNABLE, AT_BARRIER, AT_WARP, EXITED };

struct fiber {
#ifdef CUEMU_UCONTEXT
    ucontext_t uc;
#else
    void *sp;
#endif
    char *stack; /* NULL until it first runs */
    uint3 idx;
    fiber_state state;
    const char *file; /* where it waits */
    int line;
    /* its warp collective: what it asked for, what it gets */
    collective_kind kind;
    unsigned mask;
    uint64_t value, result;
    int arg, width;
    void *asan_fake_stack;
};

/* 128 KB of stack a fiber (kernels keep a few registers' worth), a guard page below it. */
const size_t STACK_BYTES = (size_t)128 << 10, GUARD_BYTES = 4096;
const int MAX_THREADS = 1024;

/* The lanes of a warp waiting at one collective (lanes at others have disjoint masks). */
struct warp_group {
    unsigned mask, arrived;
    collective_kind kind;
    const char *file;
    int line;
};

struct block_run {
    const char *name;
    const block_context *ctx;
    thread_order order;
    const std::function<void()> *thread;
    int n, running;
    fiber *f;
    warp_group *groups; /* 32 a warp */
    int ngroups[MAX_THREADS / 32];
    uint64_t ready[MAX_THREADS / 64]; /* runnable fibers, not running now */
    /* Stacks: a thread gets one when it first runs and gives it back when it ends, so the
     * threads of a kernel without barriers all run on one stack, warm in the cache. */
    std::vector<char *> free_stacks;
    size_t stacks_made;
#ifdef CUEMU_UCONTEXT
    ucontext_t sched;
#else
    void *sched_sp;
#endif
    std::vector<void *> fresh; /* static shared variables refilled for this block */
    void *sched_fake_stack;
    const void *sched_bottom;
    size_t sched_size;
};

block_run *run;
std::vector<char *> stacks; /* reused by every block */
std::vector<fiber> fiber_pool;
std::vector<warp_group> group_pool;

char *stack_for(size_t i) {
    while (stacks.size() <= i) {
        void *m = mmap(nullptr, STACK_BYTES + GUARD_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) fail("no memory for a fiber's stack");
        mprotect(m, GUARD_BYTES, PROT_NONE); /* an overflow faults instead of writing below */
        stacks.push_back((char *)m + GUARD_BYTES);
    }
    return stacks[i];
}

void asan_start(void **fake, const void *bottom, size_t size) {
#ifdef CUEMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}
void asan_finish(void *fake, const void **bottom, size_t *size) {
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

/* From a fiber back to the scheduler; `done`: it will not be resumed. */
void yield(block_run *r, fiber *me, bool done) {
    asan_start(done ? nullptr : &me->asan_fake_stack, r->sched_bottom, r->sched_size);
#ifdef CUEMU_UCONTEXT
    swapcontext(&me->uc, &r->sched);
#else
    cuemu_switch(&me->sp, r->sched_sp);
#endif
    asan_finish(me->asan_fake_stack, &r->sched_bottom, &r->sched_size);
}

void fiber_main() {
    block_run *r = run;
    fiber *me = &r->f[r->running];
    asan_finish(nullptr, &r->sched_bottom, &r->sched_size);
    (*r->thread)();
    me->state = EXITED;
    yield(r, me, true);
    fail("a finished thread was resumed");
}

void start_fiber(fiber *f) {
#ifdef CUEMU_UCONTEXT
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack;
    f->uc.uc_stack.ss_size = STACK_BYTES;
    f->uc.uc_link = nullptr;
    makecontext(&f->uc, fiber_main, 0);
#else
    /* the frame cuemu_switch pops: six registers, then "returns" into fiber_main with the stack
     * as after a call (a null return address above it) */
    void **sp = (void **)(((uintptr_t)(f->stack + STACK_BYTES)) & ~(uintptr_t)15);
    *--sp = nullptr;
    *--sp = (void *)fiber_main;
    for (int i = 0; i < 6; i++) *--sp = nullptr;
    f->sp = sp;
#endif
}

void resume(block_run *r, int i) {
    fiber *f = &r->f[i];
    if (!f->stack) {
        if (r->free_stacks.empty()) r->free_stacks.push_back(stack_for(r->stacks_made++));
        f->stack = r->free_stacks.back();
        r->free_stacks.pop_back();
        start_fiber(f);
    }
    r->running = i;
    current_thread = &f->idx;
    asan_start(&r->sched_fake_stack, f->stack, STACK_BYTES);
#ifdef CUEMU_UCONTEXT
    swapcontext(&r->sched, &f->uc);
#else
    cuemu_switch(&r->sched_sp, f->sp);
#endif
    asan_finish(r->sched_fake_stack, nullptr, nullptr);
}

void set_ready(block_run *r, int i) { r->ready[i / 64] |= (uint64_t)1 << (i % 64); }

/* The next fiber to run after `last`, or -1. */
int pick(const block_run *r, int last) {
    int words = (r->n + 63) / 64;
    if (r->order == ORDER_REVERSED) {
        for (int w = words - 1; w >= 0; w--)
            if (r->ready[w]) return w * 64 + 63 - __builtin_clzll(r->ready[w]);
        return -1;
    }
    int from = r->order == ORDER_LOCKSTEP ? last + 1 : 0;
    for (int pass = 0; pass < 2; pass++, from = 0) {
        for (int w = from / 64; w < words; w++) {
            uint64_t bits = r->ready[w];
            if (w == from / 64 && from % 64) bits &= ~(uint64_t)0 << (from % 64);
            if (bits) return w * 64 + __builtin_ctzll(bits);
        }
        if (from == 0) break;
    }
    return -1;
}

/* "0-31, 64" for the members of [0, n) that `in` says. */
template <class F> std::string ranges(int n, F in) {
    std::string s;
    char buf[32];
    for (int i = 0; i < n;) {
        if (!in(i)) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < n && in(j + 1)) j++;
        snprintf(buf, sizeof buf, i == j ? "%s%d" : "%s%d-%d", s.empty() ? "" : ", ", i, j);
        s += buf;
        i = j + 1;
    }
    return s;
}

const char *kind_name(collective_kind k) {
    switch (k) {
    case SYNCWARP: return "__syncwarp";
    case VOTE: return "warp vote";
    default: return "warp shuffle";
    }
}

std::string where_block(const block_run *r) {
    char buf[256];
    const uint3 &b = r->ctx->block_idx;
    snprintf(buf, sizeof buf, "kernel %s, block (%u,%u,%u)", r->name, b.x, b.y, b.z);
    return buf;
}

/* What lane l of warp w is doing instead of joining the collective. */
std::string lane_state(const block_run *r, int t) {
    char buf[300];
    if (t >= r->n) return "do not exist (the block has fewer threads)";
    const fiber &g = r->f[t];
    switch (g.state) {
    case EXITED: return "have exited";
    case AT_BARRIER: snprintf(buf, sizeof buf, "wait at __syncthreads (%s:%d)", g.file, g.line); return buf;
    case AT_WARP:
        snprintf(buf, sizeof buf, "wait at a %s with mask 0x%08x (%s:%d)", kind_name(g.kind), g.mask,
                 g.file, g.line);
        return buf;
    default: return "are running";
    }
}

[[noreturn]] void fail_collective(const block_run *r, const fiber &f, int warp, unsigned arrived) {
    std::string missing;
    unsigned todo = f.mask & ~arrived;
    while (todo) {
        int l = __builtin_ctz(todo);
        std::string st = lane_state(r, warp * 32 + l);
        unsigned same = 0;
        for (unsigned t = todo; t; t &= t - 1) {
            int m = __builtin_ctz(t);
            if (lane_state(r, warp * 32 + m) == st) same |= 1u << m;
        }
        todo &= ~same;
        missing += (missing.empty() ? "" : "; ") + std::string("lanes ") +
                   ranges(32, [&](int i) { return (same >> i) & 1; }) + " " + st;
    }
    char what[64];
    if (f.mask == 0xffffffffu) snprintf(what, sizeof what, "all 32 lanes");
    else snprintf(what, sizeof what, "all lanes of its mask 0x%08x", f.mask);
    fail("%s, warp %d: %s without %s (%s:%d): %s", where_block(r).c_str(), warp, kind_name(f.kind),
         what, f.file, f.line, missing.c_str());
}

/* Nothing can run: the block is done (false), a barrier is met and its threads go on (true),
 * or what cannot be met is reported. */
bool release_barrier(block_run *r) {
    int exited = 0, first_waiting = -1;
    for (int i = 0; i < r->n; i++) {
        const fiber &g = r->f[i];
        if (g.state == EXITED) exited++;
        else if (g.state == AT_WARP) {
            unsigned arrived = 0;
            int w = i / 32;
            for (int l = 0; l < 32 && w * 32 + l < r->n; l++) {
                const fiber &h = r->f[w * 32 + l];
                if (h.state == AT_WARP && h.mask == g.mask) arrived |= 1u << l;
            }
            fail_collective(r, g, w, arrived);
        } else if (first_waiting < 0) first_waiting = i;
    }
    if (exited == r->n) return false;
    const fiber &b = r->f[first_waiting];
    if (exited)
        fail("%s: __syncthreads (%s:%d) that threads %s have exited without reaching",
             where_block(r).c_str(), b.file, b.line,
             ranges(r->n, [&](int i) { return r->f[i].state == EXITED; }).c_str());
    for (int i = 0; i < r->n; i++) {
        const fiber &g = r->f[i];
        if (g.line != b.line || strcmp(g.file, b.file) != 0)
            fail("%s: threads of a block wait at different barriers: threads %s at %s:%d, "
                 "threads %s at %s:%d",
                 where_block(r).c_str(),
                 ranges(r->n, [&](int k) { return r->f[k].line == b.line && !strcmp(r->f[k].file, b.file); }).c_str(),
                 b.file, b.line,
                 ranges(r->n, [&](int k) { return r->f[k].line == g.line && !strcmp(r->f[k].file, g.file); }).c_str(),
                 g.file, g.line);
    }
    for (int i = 0; i < r->n; i++) r->f[i].state = RUNNABLE, set_ready(r, i);
    return true;
}

block_run *running_block(const char *what, const char *file, int line) {
    if (!run) fail("%s outside a kernel (%s:%d)", what, file, line);
    return run;
}

/* The lane whose value lane `lane` gets, as the CUDA programming guide says for each shuffle. */
int source_lane(const fiber &g, int lane) {
    int w = g.width, base = lane & ~(w - 1), in = lane & (w - 1);
    switch (g.kind) {
    case SHFL_IDX: return base + (((g.arg % w) + w) % w);
    case SHFL_UP: return in >= g.arg ? lane - g.arg : lane;
    case SHFL_DOWN: return in + g.arg < w ? lane + g.arg : lane;
    case SHFL_XOR: {
        int s = lane ^ g.arg;
        return s >= base + w || s > 31 ? lane : s; /* a later group's lane: its own value */
    }
    default: return lane;
    }
}

} // namespace

void syncthreads(const char *file, int line) {
    block_run *r = running_block("__syncthreads", file, line);
    fiber *me = &r->f[r->running];
    me->state = AT_BARRIER, me->file = file, me->line = line;
    yield(r, me, false);
}

uint64_t warp_collective(collective_kind kind, unsigned mask, uint64_t value, int arg, int width,
                         const char *file, int line) {
    block_run *r = running_block(kind_name(kind), file, line);
    int t = r->running, warp = t / 32, lane = t % 32;
    fiber *me = &r->f[t];
    if (!((mask >> lane) & 1))
        fail("%s: thread %d calls a %s (%s:%d) with mask 0x%08x, which leaves out its own lane %d",
             where_block(r).c_str(), t, kind_name(kind), file, line, mask, lane);
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail("%s: a %s (%s:%d) with width %d (a power of two up to 32)", where_block(r).c_str(),
             kind_name(kind), file, line, width);
    me->state = AT_WARP, me->kind = kind, me->mask = mask, me->value = value, me->arg = arg;
    me->width = width, me->file = file, me->line = line;
    warp_group *groups = r->groups + warp * 32, *mine = nullptr;
    int &ngroups = r->ngroups[warp];
    for (int k = 0; k < ngroups; k++) {
        warp_group &g = groups[k];
        if (g.mask == mask && g.kind != kind)
            fail("%s, warp %d: lanes of a warp meet at different warp collectives: a %s (%s:%d) "
                 "and a %s (%s:%d)",
                 where_block(r).c_str(), warp, kind_name(g.kind), g.file, g.line, kind_name(kind),
                 file, line);
        if (g.mask != mask && (g.mask & mask))
            fail("%s, warp %d: lanes of a warp wait at warp collectives with overlapping masks "
                 "0x%08x (%s:%d) and 0x%08x (%s:%d)",
                 where_block(r).c_str(), warp, g.mask, g.file, g.line, mask, file, line);
        if (g.mask == mask) mine = &g;
    }
    if (!mine) {
        mine = &groups[ngroups++];
        *mine = {mask, 0, kind, file, line};
    }
    mine->arrived |= 1u << lane;
    if (mine->arrived == mask) { /* the last lane: every lane gets its result and runs on */
        *mine = groups[--ngroups];
        unsigned ballot = 0;
        for (unsigned m = mask; m; m &= m - 1) {
            int l = __builtin_ctz(m);
            if (r->f[warp * 32 + l].value) ballot |= 1u << l;
        }
        for (unsigned m = mask; m; m &= m - 1) {
            int l = __builtin_ctz(m);
            fiber &g = r->f[warp * 32 + l];
            if (kind == VOTE) g.result = ballot;
            else if (kind != SYNCWARP) {
                int s = source_lane(g, l);
                if (!((mask >> s) & 1))
                    fail("%s, warp %d: lane %d's shuffle (%s:%d) reads lane %d, outside its mask "
                         "0x%08x",
                         where_block(r).c_str(), warp, l, g.file, g.line, s, mask);
                g.result = r->f[warp * 32 + s].value;
            }
            g.state = RUNNABLE;
            set_ready(r, warp * 32 + l);
        }
    }
    yield(r, me, false);
    return me->result;
}

void fresh_shared(void *p, size_t bytes) {
    block_run *r = running_block("a __shared__ variable", __FILE__, __LINE__);
    for (void *q : r->fresh)
        if (q == p) return;
    r->fresh.push_back(p);
    memset(p, 0xff, bytes);
}

void *dynamic_shared() {
    if (!current_block) fail("dynamic shared memory outside a kernel");
    return current_block->dynamic_shared;
}

void run_block(const char *name, const block_context &ctx, thread_order order,
               const std::function<void()> &thread) {
    block_run r{};
    r.name = name, r.ctx = &ctx, r.order = order, r.thread = &thread;
    const dim3 &d = ctx.block_dim;
    r.n = (int)(d.x * d.y * d.z);
    if (fiber_pool.size() < (size_t)r.n) fiber_pool.resize((size_t)r.n);
    if (group_pool.size() < (size_t)MAX_THREADS) group_pool.resize(MAX_THREADS);
    r.f = fiber_pool.data(), r.groups = group_pool.data();
    uint3 idx = {0, 0, 0};
    for (int i = 0; i < r.n; i++) {
        fiber &f = r.f[i];
        f.idx = idx;
        f.stack = nullptr, f.state = RUNNABLE, f.asan_fake_stack = nullptr;
        if (++idx.x == d.x && (idx.x = 0, ++idx.y == d.y)) idx.y = 0, idx.z++;
    }
    for (int w = 0; w < (r.n + 63) / 64; w++)
        r.ready[w] = r.n - w * 64 >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << (r.n - w * 64)) - 1;
    run = &r, current_block = &ctx; /* (never nested: kernels launch nothing) */
    for (int last = -1;;) {
        int i = pick(&r, last);
        if (i < 0) {
            if (!release_barrier(&r)) break;
            last = -1;
            continue;
        }
        r.ready[i / 64] &= ~((uint64_t)1 << (i % 64));
        last = i;
        resume(&r, i);
        if (r.f[i].state == EXITED) r.free_stacks.push_back(r.f[i].stack); /* off it now */
    }
    run = nullptr, current_block = nullptr, current_thread = nullptr;
}

} // namespace cuemu
