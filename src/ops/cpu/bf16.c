/* float32 <-> bfloat16: AVX512_BF16's VCVTNEPS2BF16 where the level has it, else the same
 * rounding in C, vectorised at the level's width (CPU_KERNEL). Both give identical bits
 * (tests/test_ops.c checks): round to nearest even, NaN kept NaN (made quiet), and subnormal
 * inputs flushed to a zero of the same sign, as the instruction does. The emulated bf16 path
 * (fp32 GEMM on rounded inputs) also rounds to bf16 values kept in fp32, and widens bf16
 * weights back to fp32: exact, a shift. */
#include <string.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"

/* The rounded value's bits, bf16 in the upper half and zeros below. Branch-free, to vectorise. */
static inline uint32_t round_bits(uint32_t u) {
    uint32_t nearest = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    uint32_t quiet_nan = (u | 0x00400000u) & 0xffff0000u, signed_zero = u & 0x80000000u;
    return (u & 0x7fffffffu) > 0x7f800000u ? quiet_nan
         : (u & 0x7f800000u) == 0         ? signed_zero
                                          : nearest;
}

typedef union {
    uint32_t u;
    float f;
} bits32;

gpt2_bf16 cpu_bf16_round(float f) { return (gpt2_bf16)(round_bits((bits32){.f = f}.u) >> 16); }

float cpu_bf16_to_float(gpt2_bf16 h) { return (bits32){.u = (uint32_t)h << 16}.f; }

CPU_KERNEL(to_bf16_block, (gpt2_bf16 *dst, const float *src, size_t n), (dst, src, n)) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = (gpt2_bf16)(round_bits((bits32){.f = src[i]}.u) >> 16);
}

CPU_KERNEL(round_block, (float *dst, const float *src, size_t n), (dst, src, n)) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = (bits32){.u = round_bits((bits32){.f = src[i]}.u)}.f;
}

CPU_KERNEL(widen_block, (float *dst, const gpt2_bf16 *src, size_t n), (dst, src, n)) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = (bits32){.u = (uint32_t)src[i] << 16}.f;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define HAVE_AVX512_BF16_PATH 1

__attribute__((target("avx512f,avx512bf16"))) static void to_bf16_avx512_bf16(gpt2_bf16 *dst,
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

int cpu_bf16_instruction(void) {
#ifdef HAVE_AVX512_BF16_PATH
    return cpu_isa() >= CPU_ISA_AVX512_BF16;
#else
    return 0;
#endif
}

void cpu_to_bf16_scalar(gpt2_bf16 *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = cpu_bf16_round(src[i]);
}

void cpu_to_bf16_serial(gpt2_bf16 *dst, const float *src, size_t n) {
#ifdef HAVE_AVX512_BF16_PATH
    if (cpu_bf16_instruction()) {
        to_bf16_avx512_bf16(dst, src, n);
        return;
    }
#endif
    CPU_PICK(to_bf16_block)(dst, src, n);
}

/* Blocks of 64K values per thread: big enough to amortise the fork, small enough to spread. */
#define BF16_BLOCK ((size_t)1 << 16)

void cpu_to_bf16(gpt2_bf16 *dst, const float *src, size_t n) {
    CPU_FOR_BLOCKS(n, BF16_BLOCK, cpu_to_bf16_serial(dst + i0, src + i0, len));
}

void cpu_round_bf16(float *dst, const float *src, size_t n) {
    void (*round)(float *, const float *, size_t) = CPU_PICK(round_block);
    CPU_FOR_BLOCKS(n, BF16_BLOCK, round(dst + i0, src + i0, len));
}

void cpu_from_bf16(float *dst, const gpt2_bf16 *src, size_t n) {
    void (*widen)(float *, const gpt2_bf16 *, size_t) = CPU_PICK(widen_block);
    CPU_FOR_BLOCKS(n, BF16_BLOCK, widen(dst + i0, src + i0, len));
}
