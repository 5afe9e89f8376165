/* LayerNorm, one warp per row; and the residual addition fused before it. Statistics and sums in
 * fp32 whatever the activations' type. */
#include "model/config.h"
#include "ops/cuda/cuda_common.cuh"

/* The row's LayerNorm (its lane's channels), as the CPU's: mean, biased variance, then out. */
template <typename act_t>
__device__ __forceinline__ void layernorm_row(act_t *o, float *mean, float *rstd, const act_t *x,
                                              const float *w, const float *b, int row, int lane,
                                              int C) {
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += act_load(x[c]);
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) v += (act_load(x[c]) - m) * (act_load(x[c]) - m);
    float r = rsqrtf(warp_sum(v) / C + GPT2_LN_EPS);
    for (int c = lane; c < C; c += 32) o[c] = act_store<act_t>((act_load(x[c]) - m) * r * w[c] + b[c]);
    if (lane == 0) mean[row] = m, rstd[row] = r;
}

template <typename act_t>
__global__ void layernorm_forward_kernel(act_t *out, float *mean, float *rstd, const act_t *inp,
                                         const float *w, const float *b, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    layernorm_row(out + (size_t)row * C, mean, rstd, inp + (size_t)row * C, w, b, row, lane, C);
}

/* res = a + b for the row (each lane then reads back only what it wrote: the stored, rounded
 * value, so that the result is the two ops' in bf16 too, and the backward's input), then its
 * LayerNorm. */
template <typename act_t>
__global__ void residual_layernorm_kernel(act_t *res, act_t *out, float *mean, float *rstd,
                                          const act_t *a, const act_t *b, const float *w,
                                          const float *bias, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    size_t at = (size_t)row * C;
    for (int c = lane; c < C; c += 32) res[at + c] = act_store<act_t>(act_load(a[at + c]) + act_load(b[at + c]));
    layernorm_row(out + at, mean, rstd, res + at, w, bias, row, lane, C);
}

/* dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), a warp per row. */
template <typename act_t>
__global__ void layernorm_backward_kernel(act_t *dinp, const act_t *dout, const act_t *inp,
                                          const float *w, const float *mean, const float *rstd,
                                          int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const act_t *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row], a = 0.0f, bsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float norm = (act_load(x[c]) - m) * r, dnorm = w[c] * act_load(d[c]);
        a += dnorm;
        bsum += dnorm * norm;
    }
    float dnorm_mean = warp_sum(a) / C, dnorm_norm_mean = warp_sum(bsum) / C;
    act_t *di = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float norm = (act_load(x[c]) - m) * r, dnorm = w[c] * act_load(d[c]);
        di[c] = act_store<act_t>(act_load(di[c]) + r * (dnorm - dnorm_mean - norm * dnorm_norm_mean));
    }
}

/* dw += column sums of norm * dout, db += those of dout, as cuda_common.cuh's column sums
 * without atomics: chunk k's into partial[k][c] (dw's) and partial[chunks + k][c] (db's). */
template <typename act_t>
__global__ void layernorm_param_partials_kernel(float *partial, const act_t *dout,
                                                const act_t *inp, const float *mean,
                                                const float *rstd, int N, int C, int chunks) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, k = blockIdx.y;
    if (c >= C) return;
    int r1 = min(N, (k + 1) * COLUMN_CHUNK_ROWS);
    float sw = 0.0f, sb = 0.0f;
    for (int n = k * COLUMN_CHUNK_ROWS; n < r1; n++) {
        float d = act_load(dout[(size_t)n * C + c]);
        sw += (act_load(inp[(size_t)n * C + c]) - mean[n]) * rstd[n] * d;
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

template <typename act_t>
static void layernorm_forward(gpt2_act *out, float *mean, float *rstd, const gpt2_act *inp,
                              const float *w, const float *b, int N, int C) {
    if (N == 0) return;
    layernorm_forward_kernel<act_t><<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(
        acts<act_t>(out), mean, rstd, acts<act_t>(inp), w, b, N, C);
    CUDA_LAUNCHED();
}

template <typename act_t>
static void residual_layernorm_forward(gpt2_act *res, gpt2_act *out, float *mean, float *rstd,
                                       const gpt2_act *a, const gpt2_act *b, const float *w,
                                       const float *bias, int N, int C) {
    if (N == 0) return;
    residual_layernorm_kernel<act_t><<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(
        acts<act_t>(res), acts<act_t>(out), mean, rstd, acts<act_t>(a), acts<act_t>(b), w, bias,
        N, C);
    CUDA_LAUNCHED();
}

template <typename act_t>
static void layernorm_backward(gpt2_act *dinp_, float *dw, float *db, const gpt2_act *dout_,
                               const gpt2_act *inp_, const float *w, const float *mean,
                               const float *rstd, int N, int C, float *scratch) {
    act_t *dinp = acts<act_t>(dinp_);
    const act_t *dout = acts<act_t>(dout_), *inp = acts<act_t>(inp_);
    if (N == 0) return;
    layernorm_backward_kernel<act_t><<<blocks_for((size_t)N, 8), 256, 0, cuda_stream>>>(
        dinp, dout, inp, w, mean, rstd, N, C);
    CUDA_LAUNCHED();
    int chunks = (N + COLUMN_CHUNK_ROWS - 1) / COLUMN_CHUNK_ROWS; /* partials: 2 chunks x C */
    layernorm_param_partials_kernel<act_t><<<dim3(blocks_for((size_t)C, 256), chunks), 256, 0,
                                             cuda_stream>>>(scratch, dout, inp, mean, rstd, N, C,
                                                            chunks);
    CUDA_LAUNCHED();
    layernorm_param_reduce_kernel<<<blocks_for((size_t)C, 256), 256, 0, cuda_stream>>>(
        dw, db, scratch, C, chunks);
    CUDA_LAUNCHED();
}

extern "C" void cuda_layernorm_forward(gpt2_act *out, float *mean, float *rstd,
                                       const gpt2_act *inp, const float *w, const float *b, int N,
                                       int C) {
    CUDA_ACT_DISPATCH(layernorm_forward, (out, mean, rstd, inp, w, b, N, C));
}

extern "C" void cuda_residual_layernorm_forward(gpt2_act *res, gpt2_act *out, float *mean,
                                                float *rstd, const gpt2_act *a, const gpt2_act *b,
                                                const float *w, const float *bias, int N, int C) {
    CUDA_ACT_DISPATCH(residual_layernorm_forward, (res, out, mean, rstd, a, b, w, bias, N, C));
}

extern "C" void cuda_layernorm_backward(gpt2_act *dinp, float *dw, float *db,
                                        const gpt2_act *dout, const gpt2_act *inp, const float *w,
                                        const float *mean, const float *rstd, int N, int C,
                                        float *scratch) {
    CUDA_ACT_DISPATCH(layernorm_backward, (dinp, dw, db, dout, inp, w, mean, rstd, N, C, scratch));
}
