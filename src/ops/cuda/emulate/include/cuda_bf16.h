/* The subset of the toolkit's cuda_bf16.h the kernels use, for the CPU (gpt2c's CUDA-on-CPU
 * runtime). Conversions round to nearest even, as the device's __float2bfloat16_rn; a NaN stays a
 * NaN (quiet). Arithmetic widens to float and rounds back: float's 24 bits are more than twice
 * bf16's 8 plus 2, so that single rounding of the exact result is what the device's bf16
 * instructions give for +, -, *, /. */
#ifndef GPT2C_CUEMU_CUDA_BF16_H
#define GPT2C_CUEMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

#include "cuda_runtime.h"

struct __nv_bfloat16_raw {
    unsigned short x;
};

static inline unsigned short cuemu_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40); /* NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (unsigned short)(u >> 16);
}

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(__nv_bfloat16_raw r) : __x(r.x) {}
    __nv_bfloat16(float f) : __x(cuemu_bf16_bits(f)) {}
    __nv_bfloat16(double d) : __x(cuemu_bf16_bits((float)d)) {}
    __nv_bfloat16(int i) : __x(cuemu_bf16_bits((float)i)) {}
    operator float() const {
        uint32_t u = (uint32_t)__x << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    operator __nv_bfloat16_raw() const { return {__x}; }
    __nv_bfloat16 &operator+=(__nv_bfloat16 o) { return *this = (float)*this + (float)o; }
    __nv_bfloat16 &operator-=(__nv_bfloat16 o) { return *this = (float)*this - (float)o; }
    __nv_bfloat16 &operator*=(__nv_bfloat16 o) { return *this = (float)*this * (float)o; }
};
typedef __nv_bfloat16 nv_bfloat16;

struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
typedef __nv_bfloat162 nv_bfloat162;

static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
static inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
static inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {a, b}; }
static inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return {v.x, v.y}; }
static inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {(float)v.x, (float)v.y}; }
static inline float __low2float(__nv_bfloat162 v) { return (float)v.x; }
static inline float __high2float(__nv_bfloat162 v) { return (float)v.y; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16_raw{u}; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }

static inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a + (float)b; }
static inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a - (float)b; }
static inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a * (float)b; }
/* fused: one rounding of a*b+c (float's fma is exact enough for bf16 inputs: a*b has 16 bits) */
static inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
    return fmaf((float)a, (float)b, (float)c);
}
static inline __nv_bfloat16 __hmax(__nv_bfloat16 a, __nv_bfloat16 b) {
    return fmaxf((float)a, (float)b);
}
static inline __nv_bfloat16 operator+(__nv_bfloat16 a, __nv_bfloat16 b) { return __hadd(a, b); }
static inline __nv_bfloat16 operator-(__nv_bfloat16 a, __nv_bfloat16 b) { return __hsub(a, b); }
static inline __nv_bfloat16 operator*(__nv_bfloat16 a, __nv_bfloat16 b) { return __hmul(a, b); }

#endif
