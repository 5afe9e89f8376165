/* Which instruction set the CPU backend runs: the machine's best, or less when the environment
 * variable GPT2C_CPU_ISA caps it (x86-64, avx2, avx512, avx512_bf16, amx), so that every path can
 * be run and tested on one machine. The cap covers our own vector kernels (each built three
 * times, see CPU_KERNEL), the bf16 conversions, and oneDNN (dnnl_set_max_cpu_isa, before its
 * first use). OpenBLAS chooses its kernels when it is loaded, from OPENBLAS_CORETYPE alone:
 * gpt2c_apply_cpu_isa (gpt2c.h) sets that and restarts the program. */
#ifndef GPT2C_CPU_ISA_H
#define GPT2C_CPU_ISA_H

#include "gpt2c.h"

typedef enum {
    CPU_ISA_X86_64,      /* SSE2: the build's baseline (oneDNN's JIT wants SSE4.1 on top) */
    CPU_ISA_AVX2,        /* AVX2 and FMA (x86-64-v3: Haswell, AMD Zen 1-3) */
    CPU_ISA_AVX512,      /* AVX-512 F, BW, DQ, VL (Skylake-SP, Ice Lake) */
    CPU_ISA_AVX512_BF16, /* ... and AVX512_BF16 (Cooper Lake, AMD Zen 4/5): bf16 products */
    CPU_ISA_AMX,         /* ... and AMX-BF16 tiles (Sapphire Rapids and later) */
    CPU_ISA_LEVELS
} cpu_isa_level;

/* The level in use (detected, then capped, once per process). */
cpu_isa_level cpu_isa(void);
/* The machine's own best level, whatever the cap. */
cpu_isa_level cpu_isa_machine(void);
/* 0, or -1 with the reason when GPT2C_CPU_ISA is not a level this CPU can run. */
int cpu_isa_check(gpt2c_error *err);
/* "x86-64", "avx2", ...: the names GPT2C_CPU_ISA takes; NULL past the last. */
const char *cpu_isa_name(cpu_isa_level level);
/* bf16 products in oneDNN's own kernels (AVX512_BF16 or AMX), rather than emulated: the fp32
 * GEMM on inputs rounded to bf16. */
int cpu_bf16_native(void);
/* OpenBLAS's OPENBLAS_CORETYPE for a level. */
const char *cpu_isa_blas_core(cpu_isa_level level);

/* Our vector kernels are built for three widths and picked at run time by the level:
 *
 *   CPU_KERNEL(gelu_block, (float *out, const float *in, size_t n), (out, in, n)) { ...loop... }
 *   CPU_PICK(gelu_block)(out, in, n);
 *
 * The body is inlined into an AVX-512, an AVX2+FMA and a plain x86-64 function, and the
 * compiler vectorises each loop at that width. Kernels return void. CPU_PICK reads the level:
 * pick outside hot loops. */
enum { CPU_VEC_BASE, CPU_VEC_AVX2, CPU_VEC_AVX512, CPU_VEC_WIDTHS };
int cpu_vec_width(void); /* CPU_VEC_*: the build CPU_PICK takes */

#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define CPU_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define CPU_KERNEL(name, params, args)                                                             \
    static inline __attribute__((always_inline)) void name##_body params;                          \
    CPU_TARGET_AVX512 static void name##_avx512 params { name##_body args; }                       \
    CPU_TARGET_AVX2 static void name##_avx2 params { name##_body args; }                           \
    static void name##_base params { name##_body args; }                                           \
    static void (*const name##_builds[CPU_VEC_WIDTHS]) params = {name##_base, name##_avx2,         \
                                                                 name##_avx512};                   \
    static inline __attribute__((always_inline)) void name##_body params
#define CPU_PICK(name) (name##_builds[cpu_vec_width()])
#else
#define CPU_KERNEL(name, params, args) static void name params
#define CPU_PICK(name) (name)
#endif

#endif
