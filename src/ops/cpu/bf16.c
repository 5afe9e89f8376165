/* float32 -> bfloat16 rounding: AVX512_BF16's VCVTNEPS2BF16 where the CPU has it (checked at run
 * time), else the same rounding in plain C. Both give identical bits (tests/test_ops.c checks):
 * round to nearest even, NaN kept NaN (made quiet), and subnormal inputs flushed to a zero of the
 * same sign, as the instruction does. */
#include <string.h>

#include "ops/cpu/cpu_kernels.h"

gpt2_bf16 cpu_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (gpt2_bf16)((u >> 16) | 0x0040u); /* NaN */
    if ((u & 0x7f800000u) == 0) return (gpt2_bf16)((u >> 16) & 0x8000u);        /* 0, subnormal */
    return (gpt2_bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float cpu_bf16_to_float(gpt2_bf16 h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define HAVE_AVX512_BF16_PATH 1

__attribute__((target("avx512f,avx512bf16"))) static void to_bf16_avx512(gpt2_bf16 *dst,
                                                                            const float *src,
                                                                            size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    for (; i < n; i++) dst[i] = cpu_bf16_round(src[i]);
}
#endif

/* A read of libgcc's CPU model, which its constructor filled before main. */
int cpu_has_avx512_bf16(void) {
#ifdef HAVE_AVX512_BF16_PATH
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

void cpu_to_bf16_scalar(gpt2_bf16 *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = cpu_bf16_round(src[i]);
}

void cpu_to_bf16_serial(gpt2_bf16 *dst, const float *src, size_t n) {
#ifdef HAVE_AVX512_BF16_PATH
    if (cpu_has_avx512_bf16()) {
        to_bf16_avx512(dst, src, n);
        return;
    }
#endif
    cpu_to_bf16_scalar(dst, src, n);
}

/* Blocks of 64K values per thread: big enough to amortise the fork, small enough to spread. */
#define BF16_BLOCK ((size_t)1 << 16)

void cpu_to_bf16(gpt2_bf16 *dst, const float *src, size_t n) {
    size_t nblocks = (n + BF16_BLOCK - 1) / BF16_BLOCK;
#pragma omp parallel for schedule(static) if (nblocks > 1)
    for (size_t k = 0; k < nblocks; k++) {
        size_t i0 = k * BF16_BLOCK, len = n - i0 < BF16_BLOCK ? n - i0 : BF16_BLOCK;
        cpu_to_bf16_serial(dst + i0, src + i0, len);
    }
}

int cpu_bf16_supported(void) { return cpu_gemm_supported(GEMM_BF16); }
