/* Token + position embedding, and LayerNorm (one warp per row). */
#include "model/config.h"
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

extern "C" void cuda_embed_forward(float *out, const int32_t *tokens, const float *wte,
                                   const float *wpe, int B, int T, int C) {
    size_t total = (size_t)B * T * C;
    embed_forward_kernel<<<blocks_for(total, 256), 256, 0, cuda_stream>>>(out, tokens, wte, wpe, T,
                                                                         C, total);
    CUDA_LAUNCHED();
}

extern "C" void cuda_embed_backward(float *dwte, float *dwpe, const float *dout,
                                    const int32_t *tokens, int B, int T, int C) {
    size_t total = (size_t)B * T * C;
    embed_backward_kernel<<<blocks_for(total, 256), 256, 0, cuda_stream>>>(dwte, dwpe, dout,
                                                                          tokens, T, C, total);
    CUDA_LAUNCHED();
}

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

extern "C" void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                       const float *w, const float *b, int N, int C) {
    layernorm_forward_kernel<<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(out, mean, rstd,
                                                                                inp, w, b, N, C);
    CUDA_LAUNCHED();
}

extern "C" void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                        const float *inp, const float *w, const float *mean,
                                        const float *rstd, int N, int C, float *scratch) {
    (void)scratch;
    layernorm_backward_kernel<<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(
        dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    CUDA_LAUNCHED();
}
