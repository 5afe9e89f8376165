/* What every CUDA file of the backend shares: the stream, error checks, launch sizes. */
#ifndef GPT2C_CUDA_COMMON_CUH
#define GPT2C_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops/cuda/cuda_kernels.h"

/* A failed CUDA call inside an op is a bug or a dead device, not bad input: say where, stop. */
#define CUDA_CHECK(call)                                                                          \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "gpt2c: CUDA error at %s:%d: %s\n", __FILE__, __LINE__,              \
                    cudaGetErrorString(e_));                                                      \
            abort();                                                                              \
        }                                                                                         \
    } while (0)
#define CUDA_LAUNCHED() CUDA_CHECK(cudaGetLastError())

extern cudaStream_t cuda_stream;
/* cuBLASLt's handle and workspace (cuda_runtime.cu), TF32 for fp32 products or not. */
extern cublasLtHandle_t cuda_lt;
extern void *cuda_lt_workspace;
extern int cuda_tf32;
static const size_t CUDA_LT_WORKSPACE_BYTES = (size_t)32 << 20; /* what cuBLASLt asks for on Hopper */
/* The products' resolved descriptors and algorithms (gemm.cu), freed at the backend's close. */
void cuda_gemm_plans_free(void);

/* Activations' element type on the device follows the handle's precision: float with --precision
 * fp32, __nv_bfloat16 with bf16 (cuda_set_precision). Kernels that touch activations are
 * templated on it (template <typename act_t>), read them through act_load and write them
 * through act_store<act_t> (bf16: rounded to nearest even), and compute in fp32; an op's C entry
 * picks the instantiation with CUDA_ACT_DISPATCH. One precision per process: the backend is one
 * device, one stream, one cuBLASLt handle. */
extern int cuda_bf16_acts;
__device__ __forceinline__ float act_load(float x) { return x; }
__device__ __forceinline__ float act_load(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename act_t> __device__ __forceinline__ act_t act_store(float x);
template <> __device__ __forceinline__ float act_store<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 act_store<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}
/* Call the template fn for the handle's activation type: CUDA_ACT_DISPATCH(fn, (args)). */
#define CUDA_ACT_DISPATCH(fn, args)                                                               \
    (cuda_bf16_acts ? fn<__nv_bfloat16> args : fn<float> args)

/* An activation buffer as the kernels' type. */
template <typename act_t> static inline act_t *acts(gpt2_act *a) { return (act_t *)a; }
template <typename act_t> static inline const act_t *acts(const gpt2_act *a) {
    return (const act_t *)a;
}

/* P values of one type in one load or store: 16 bytes (4 floats, 8 bf16) is a 128-bit access,
 * the widest one thread makes. Its address must be a multiple of its size (aligned16). */
template <typename T, int P> struct alignas(sizeof(T) * P) vec_of {
    T v[P];
};
static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

static inline unsigned blocks_for(size_t n, unsigned threads) {
    return (unsigned)((n + threads - 1) / threads);
}

/* Where a product's second bf16 input goes in the scratch: n values after a, 256-byte aligned. */
static inline gpt2_bf16 *bf16_after(gpt2_bf16 *a, size_t n) {
    return a + ((n + 127) & ~(size_t)127);
}

/* The product type of activations of type act_t. */
template <typename act_t> static inline cuda_type act_type(void);
template <> inline cuda_type act_type<float>(void) { return CUDA_F32; }
template <> inline cuda_type act_type<__nv_bfloat16>(void) { return CUDA_BF16; }

/* n activations as a product's input of type `in` (the weights'): themselves, or fp32 ones
 * rounded to bf16 at *scratch (which then moves past them) when the weights are bf16. bf16
 * activations with fp32 weights do not happen: a model's precision is its backend's
 * (gpt2_set_precision refuses the mix). */
template <typename act_t>
static inline const void *product_input(const gpt2_act *x, cuda_type in, size_t n,
                                        float **scratch) {
    if (act_type<act_t>() == in) return x;
    if (in == CUDA_F32) {
        fprintf(stderr, "gpt2c: internal error: bf16 activations in an fp32 product\n");
        abort();
    }
    gpt2_bf16 *rounded = (gpt2_bf16 *)*scratch;
    cuda_to_bf16(rounded, (const float *)x, n);
    *scratch = (float *)bf16_after(rounded, n);
    return rounded;
}

/* A bias as cuBLASLt's epilogue takes it, in the output's type: bf16 ones rounded at *scratch
 * (OC values; *scratch moves past them). NULL stays NULL. */
static inline const void *product_bias(const float *bias, cuda_type out, int OC, float **scratch) {
    if (!bias || out == CUDA_F32) return bias;
    gpt2_bf16 *rounded = (gpt2_bf16 *)*scratch;
    cuda_to_bf16(rounded, bias, (size_t)OC);
    *scratch = (float *)bf16_after(rounded, (size_t)OC);
    return rounded;
}

/* Column sums without float atomics, the same bits on every GPU: rows in fixed chunks of
 * COLUMN_CHUNK_ROWS (not a number of blocks that would follow the SM count), each chunk's sums
 * by one thread per column with the rows in order, then each column's chunk sums added in order.
 * The partials take column_partials_floats(N, C) floats of scratch. */
#define COLUMN_CHUNK_ROWS 256
static inline size_t column_partials_floats(size_t N, size_t C) {
    return (N + COLUMN_CHUNK_ROWS - 1) / COLUMN_CHUNK_ROWS * C;
}

/* The sum over a warp's 32 lanes, in every lane. */
__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

#endif
