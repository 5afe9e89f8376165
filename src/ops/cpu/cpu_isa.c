/* The CPU backend's instruction set: detected once, capped by GPT2C_CPU_ISA, and handed to
 * oneDNN as its own cap before oneDNN runs anything. */
#include <oneapi/dnnl/dnnl.h>
#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_isa.h"
#include "util/error.h"

static const char *const names[CPU_ISA_LEVELS] = {"x86-64", "avx2", "avx512", "avx512_bf16", "amx"};
/* oneDNN's cap for each level; its JIT starts at SSE4.1, so that is x86-64's */
static const dnnl_cpu_isa_t onednn_caps[CPU_ISA_LEVELS] = {
    dnnl_cpu_isa_sse41, dnnl_cpu_isa_avx2, dnnl_cpu_isa_avx512_core,
    dnnl_cpu_isa_avx512_core_bf16, dnnl_cpu_isa_avx512_core_amx};
static const char *const blas_cores[CPU_ISA_LEVELS] = {"Prescott", "Haswell", "SkylakeX",
                                                       "SkylakeX", "SkylakeX"};

static struct {
    pthread_once_t once;
    cpu_isa_level machine, active;
    gpt2c_error error; /* GPT2C_CPU_ISA's problem, if any */
    int bad;
} st = {.once = PTHREAD_ONCE_INIT};

static cpu_isa_level detect(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return CPU_ISA_X86_64;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return CPU_ISA_AVX2;
    if (!__builtin_cpu_supports("avx512bf16")) return CPU_ISA_AVX512;
    /* AMX from CPUID itself (leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE): not every
     * compiler's __builtin_cpu_supports knows it (clang 14, the fuzzing build's, does not) */
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d >> 22 & 1) || !(d >> 24 & 1))
        return CPU_ISA_AVX512_BF16;
    return CPU_ISA_AMX;
#else
    return CPU_ISA_X86_64;
#endif
}

static int parse(const char *s, cpu_isa_level *out) {
    for (int i = 0; i < CPU_ISA_LEVELS; i++)
        if (!strcmp(s, names[i])) return *out = (cpu_isa_level)i, 0;
    return -1;
}

static void init(void) {
    st.machine = detect();
    const char *want = getenv("GPT2C_CPU_ISA");
    cpu_isa_level cap = st.machine;
    int capped = want && *want;
    if (capped && parse(want, &cap) != 0) {
        st.bad = 1;
        err_set(&st.error, "GPT2C_CPU_ISA=%s: not one of x86-64, avx2, avx512, avx512_bf16, amx",
                want);
        cap = st.machine;
    }
    if (capped && !st.bad) dnnl_set_max_cpu_isa(onednn_caps[cap]);
    /* AMX also needs the kernel's permission, which oneDNN asks for: its answer decides */
    if (st.machine == CPU_ISA_AMX && cap == CPU_ISA_AMX &&
        dnnl_get_effective_cpu_isa() != dnnl_cpu_isa_avx512_core_amx)
        st.machine = CPU_ISA_AVX512_BF16;
    if (!st.bad && cap > st.machine) {
        st.bad = 1;
        err_set(&st.error, "GPT2C_CPU_ISA=%s: this CPU can run at most %s", want,
                names[st.machine]);
    }
    st.active = cap < st.machine ? cap : st.machine;
}

cpu_isa_level cpu_isa(void) {
    pthread_once(&st.once, init);
    return st.active;
}

cpu_isa_level cpu_isa_machine(void) {
    pthread_once(&st.once, init);
    return st.machine;
}

int cpu_isa_check(gpt2c_error *err) {
    pthread_once(&st.once, init);
    if (!st.bad) return 0;
    if (err) *err = st.error;
    return -1;
}

const char *cpu_isa_name(cpu_isa_level level) {
    return level >= 0 && level < CPU_ISA_LEVELS ? names[level] : NULL;
}

const char *cpu_isa_blas_core(cpu_isa_level level) { return blas_cores[level]; }

int cpu_bf16_native(void) { return cpu_isa() >= CPU_ISA_AVX512_BF16; }

int cpu_vec_width(void) {
    cpu_isa_level l = cpu_isa();
    return l >= CPU_ISA_AVX512 ? CPU_VEC_AVX512 : l == CPU_ISA_AVX2 ? CPU_VEC_AVX2 : CPU_VEC_BASE;
}
