/* LayerNorm, one warp per row; and the residual addition fused before it. */
#include "model/config.h"
#include "ops/cuda/cuda_common.cuh"

/* The row's LayerNorm (its lane's channels), as the CPU's: mean, biased variance, then out. */
__device__ __forceinline__ void layernorm_row(float *o, float *mean, float *rstd, const float *x,
                                              const float *w, const float *b, int row, int lane,
                                              int C) {
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) v += (x[c] - m) * (x[c] - m);
    float r = rsqrtf(warp_sum(v) / C + GPT2_LN_EPS);
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) mean[row] = m, rstd[row] = r;
}

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *w, const float *b, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    layernorm_row(out + (size_t)row * C, mean, rstd, inp + (size_t)row * C, w, b, row, lane, C);
}

/* res = a + b for the row (each lane then reads back only what it wrote), then its LayerNorm. */
__global__ void residual_layernorm_kernel(float *res, float *out, float *mean, float *rstd,
                                          const float *a, const float *b, const float *w,
                                          const float *bias, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    size_t at = (size_t)row * C;
    for (int c = lane; c < C; c += 32) res[at + c] = a[at + c] + b[at + c];
    layernorm_row(out + at, mean, rstd, res + at, w, bias, row, lane, C);
}

/* dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), a warp per row. */
__global__ void layernorm_backward_kernel(float *dinp, const float *dout, const float *inp,
                                          const float *w, const float *mean, const float *rstd,
                                          int N, int C) {
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
        di[c] += r * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
    }
}

/* dw += column sums of norm * dout, db += those of dout, as cuda_common.cuh's column sums
 * without atomics: chunk k's into partial[k][c] (dw's) and partial[chunks + k][c] (db's). */
__global__ void layernorm_param_partials_kernel(float *partial, const float *dout,
                                                const float *inp, const float *mean,
                                                const float *rstd, int N, int C, int chunks) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, k = blockIdx.y;
    if (c >= C) return;
    int r1 = min(N, (k + 1) * COLUMN_CHUNK_ROWS);
    float sw = 0.0f, sb = 0.0f;
    for (int n = k * COLUMN_CHUNK_ROWS; n < r1; n++) {
        float d = dout[(size_t)n * C + c];
        sw += (inp[(size_t)n * C + c] - mean[n]) * rstd[n] * d;
        sb += d;
    }
    partial[(size_t)k * C + c] = sw;
    partial[(size_t)(chunks + k) * C + c] = sb;
}

__global__ void layernorm_param_reduce_kernel(float *dw, float *db, const float *partial, int C,
                                              int chunks) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sw = 0.0f, sb = 0.0f;
    for (int k = 0; k < chunks; k++) {
        sw += partial[(size_t)k * C + c];
        sb += partial[(size_t)(chunks + k) * C + c];
    }
    dw[c] += sw;
    db[c] += sb;
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

extern "C" void cuda_residual_layernorm_forward(gpt2_act *res, gpt2_act *out, float *mean,
                                                float *rstd, const gpt2_act *a, const gpt2_act *b,
                                                const float *w, const float *bias, int N, int C) {
    if (N == 0) return;
    residual_layernorm_kernel<<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(
        cuda_f(res), cuda_f(out), mean, rstd, cuda_cf(a), cuda_cf(b), w, bias, N, C);
    CUDA_LAUNCHED();
}

extern "C" void cuda_layernorm_backward(gpt2_act *dinp_, float *dw, float *db,
                                        const gpt2_act *dout_, const gpt2_act *inp_, const float *w,
                                        const float *mean, const float *rstd, int N, int C,
                                        float *scratch) {
    float *dinp = cuda_f(dinp_);
    const float *dout = cuda_cf(dout_);
    const float *inp = cuda_cf(inp_);
    if (N == 0) return;
    layernorm_backward_kernel<<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(
        dinp, dout, inp, w, mean, rstd, N, C);
    CUDA_LAUNCHED();
    int chunks = (N + COLUMN_CHUNK_ROWS - 1) / COLUMN_CHUNK_ROWS; /* partials: 2 chunks x C */
    layernorm_param_partials_kernel<<<dim3(blocks_for((size_t)C, 256), chunks), 256, 0,
                                      cuda_stream>>>(scratch, dout, inp, mean, rstd, N, C, chunks);
    CUDA_LAUNCHED();
    layernorm_param_reduce_kernel<<<blocks_for((size_t)C, 256), 256, 0, cuda_stream>>>(
        dw, db, scratch, C, chunks);
    CUDA_LAUNCHED();
}
