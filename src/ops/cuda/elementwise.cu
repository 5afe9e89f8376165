/* GELU (tanh form) and the residual addition: one thread per value. */
#include "ops/cuda/cuda_common.cuh"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
}

__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = inp[i];
    float th = tanhf(GELU_SCALE * (x + 0.044715f * x * x * x));
    float local = 0.5f * (1.0f + th) +
                  0.5f * x * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] = local * dout[i];
}

__global__ void residual_kernel(float *out, const float *a, const float *b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

extern "C" void cuda_gelu_forward(gpt2_act *out_, const gpt2_act *inp_, size_t n) {
    float *out = cuda_f(out_);
    const float *inp = cuda_cf(inp_);
    if (!n) return;
    gelu_forward_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream>>>(out, inp, n);
    CUDA_LAUNCHED();
}

extern "C" void cuda_gelu_backward(gpt2_act *dinp_, const gpt2_act *inp_, const gpt2_act *dout_, size_t n) {
    float *dinp = cuda_f(dinp_);
    const float *inp = cuda_cf(inp_);
    const float *dout = cuda_cf(dout_);
    if (!n) return;
    gelu_backward_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream>>>(dinp, inp, dout, n);
    CUDA_LAUNCHED();
}

extern "C" void cuda_residual_forward(gpt2_act *out_, const gpt2_act *a_, const gpt2_act *b_, size_t n) {
    float *out = cuda_f(out_);
    const float *a = cuda_cf(a_);
    const float *b = cuda_cf(b_);
    if (!n) return;
    residual_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream>>>(out, a, b, n);
    CUDA_LAUNCHED();
}
