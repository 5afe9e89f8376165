/* fp32 to bf16, rounded to nearest even. */
#include <cuda_bf16.h>

#include "ops/cuda/cuda_common.cuh"

__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

extern "C" void cuda_to_bf16(gpt2_bf16 *dst, const float *src, size_t n) {
    if (n == 0) return;
    to_bf16_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream>>>((__nv_bfloat16 *)dst, src, n);
    CUDA_LAUNCHED();
}
