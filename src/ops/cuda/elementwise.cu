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

/* One thread per value; nothing to launch for n == 0. */
#define LAUNCH_PER_VALUE(kernel, n, ...)                                                          \
    do {                                                                                          \
        if (!(n)) return;                                                                         \
        kernel<<<blocks_for(n, 256), 256, 0, cuda_stream>>>(__VA_ARGS__, n);                      \
        CUDA_LAUNCHED();                                                                          \
    } while (0)

extern "C" void cuda_gelu_forward(gpt2_act *out, const gpt2_act *inp, size_t n) {
    LAUNCH_PER_VALUE(gelu_forward_kernel, n, cuda_f(out), cuda_cf(inp));
}

extern "C" void cuda_gelu_backward(gpt2_act *dinp, const gpt2_act *inp, const gpt2_act *dout,
                                   size_t n) {
    LAUNCH_PER_VALUE(gelu_backward_kernel, n, cuda_f(dinp), cuda_cf(inp), cuda_cf(dout));
}

extern "C" void cuda_residual_forward(gpt2_act *out, const gpt2_act *a, const gpt2_act *b,
                                      size_t n) {
    LAUNCH_PER_VALUE(residual_kernel, n, cuda_f(out), cuda_cf(a), cuda_cf(b));
}
