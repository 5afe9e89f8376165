/* Token + position embedding. */
#include "ops/cuda/cuda_common.cuh"

__global__ void embed_forward_kernel(float *out, const int32_t *tokens, const float *wte,
                                     const float *wpe, int T, int C, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t bt = i / C;
    int c = (int)(i % C), t = (int)(bt % T);
    out[i] = wte[(size_t)tokens[bt] * C + c] + wpe[(size_t)t * C + c];
}

/* Several positions may hold one token: adds into dwte are atomic (their order, and so the last
 * bits of dwte, may vary from run to run; dwpe's rows are shared by the batch, likewise). */
__global__ void embed_backward_kernel(float *dwte, float *dwpe, const float *dout,
                                      const int32_t *tokens, int T, int C, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t bt = i / C;
    int c = (int)(i % C), t = (int)(bt % T);
    atomicAdd(&dwte[(size_t)tokens[bt] * C + c], dout[i]);
    atomicAdd(&dwpe[(size_t)t * C + c], dout[i]);
}

extern "C" void cuda_embed_forward(gpt2_act *out_, const int32_t *tokens, const float *wte,
                                   const float *wpe, int B, int T, int C) {
    float *out = cuda_f(out_);
    size_t total = (size_t)B * T * C;
    embed_forward_kernel<<<blocks_for(total, 256), 256, 0, cuda_stream>>>(out, tokens, wte, wpe, T,
                                                                         C, total);
    CUDA_LAUNCHED();
}

extern "C" void cuda_embed_backward(float *dwte, float *dwpe, const gpt2_act *dout_,
                                    const int32_t *tokens, int B, int T, int C) {
    const float *dout = cuda_cf(dout_);
    size_t total = (size_t)B * T * C;
    embed_backward_kernel<<<blocks_for(total, 256), 256, 0, cuda_stream>>>(dwte, dwpe, dout,
                                                                          tokens, T, C, total);
    CUDA_LAUNCHED();
}
