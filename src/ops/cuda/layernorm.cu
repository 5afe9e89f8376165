/* LayerNorm, one warp per row. */
#include "model/config.h"
#include "ops/cuda/cuda_common.cuh"

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *w, const float *b, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) v += (x[c] - m) * (x[c] - m);
    float r = rsqrtf(warp_sum(v) / C + GPT2_LN_EPS);
    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) mean[row] = m, rstd[row] = r;
}

/* dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)); dw and db: atomics. */
__global__ void layernorm_backward_kernel(float *dinp, float *dw, float *db, const float *dout,
                                          const float *inp, const float *w, const float *mean,
                                          const float *rstd, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row], a = 0.0f, bsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float norm = (x[c] - m) * r, dnorm = w[c] * d[c];
        a += dnorm;
        bsum += dnorm * norm;
    }
    float dnorm_mean = warp_sum(a) / C, dnorm_norm_mean = warp_sum(bsum) / C;
    float *di = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float norm = (x[c] - m) * r, dnorm = w[c] * d[c];
        atomicAdd(&db[c], d[c]);
        atomicAdd(&dw[c], norm * d[c]);
        di[c] += r * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
    }
}

extern "C" void cuda_layernorm_forward(gpt2_act *out_, float *mean, float *rstd,
                                       const gpt2_act *inp_, const float *w, const float *b, int N,
                                       int C) {
    float *out = cuda_f(out_);
    const float *inp = cuda_cf(inp_);
    layernorm_forward_kernel<<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(out, mean, rstd,
                                                                                inp, w, b, N, C);
    CUDA_LAUNCHED();
}

extern "C" void cuda_layernorm_backward(gpt2_act *dinp_, float *dw, float *db,
                                        const gpt2_act *dout_, const gpt2_act *inp_, const float *w,
                                        const float *mean, const float *rstd, int N, int C,
                                        float *scratch) {
    float *dinp = cuda_f(dinp_);
    const float *dout = cuda_cf(dout_);
    const float *inp = cuda_cf(inp_);
    (void)scratch;
    layernorm_backward_kernel<<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(
        dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    CUDA_LAUNCHED();
}
