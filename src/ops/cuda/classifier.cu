/* The fused LM head + softmax + cross-entropy, as the CPU's, and generation's logits. */
#include <cuda_bf16.h>

#include "ops/cuda/cuda_common.cuh"

#define CLS_THREADS 512

/* One block per row of logits: max, sum of exp, the loss, and (dloss != 0) the gradient in
 * place: dloss * (softmax - onehot), zero in the padded columns. */
__global__ void softmax_xent_kernel(float *losses, float *logits, const int32_t *targets, int V,
                                    int Vp, float dloss) {
    __shared__ float red[CLS_THREADS / 32];
    float *z = logits + (size_t)blockIdx.x * Vp;
    int target = targets[blockIdx.x], lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < V; j += CLS_THREADS) m = fmaxf(m, z[j]);
    m = warp_max(m);
    if (lane == 0) red[warp] = m;
    __syncthreads();
    m = red[0];
    for (int k = 1; k < CLS_THREADS / 32; k++) m = fmaxf(m, red[k]);
    __syncthreads();
    float s = 0.0f;
    for (int j = threadIdx.x; j < V; j += CLS_THREADS) s += expf(z[j] - m);
    s = warp_sum(s);
    if (lane == 0) red[warp] = s;
    __syncthreads();
    s = 0.0f;
    for (int k = 0; k < CLS_THREADS / 32; k++) s += red[k];
    if (threadIdx.x == 0) losses[blockIdx.x] = logf(s) - (z[target] - m);
    if (dloss == 0.0f) return;
    __syncthreads(); /* z[target] was read above before anyone overwrites it */
    float scale = dloss / s;
    for (int j = threadIdx.x; j < Vp; j += CLS_THREADS)
        z[j] = j < V ? expf(z[j] - m) * scale - (j == target ? dloss : 0.0f) : 0.0f;
}

extern "C" void cuda_classifier(float *losses, gpt2_act *dinp_, float *dwte, const gpt2_act *inp_,
                                const float *wte, const gpt2_bf16 *wte_bf16,
                                const int32_t *targets, int N, int C, int V, int Vp, float dloss,
                                float *scratch) {
    float *dinp = cuda_f(dinp_);
    const float *inp = cuda_cf(inp_);
    const int rows_max = CUDA_CLASSIFIER_ROWS;
    float *logits = scratch;
    gpt2_bf16 *dlogits_bf16 = (gpt2_bf16 *)(scratch + (size_t)rows_max * Vp);
    gpt2_bf16 *inp_bf16 = bf16_after(dlogits_bf16, (size_t)rows_max * Vp);
    for (int r0 = 0; r0 < N; r0 += rows_max) {
        int rows = N - r0 < rows_max ? N - r0 : rows_max;
        const float *x = inp + (size_t)r0 * C;
        if (wte_bf16) {
            cuda_to_bf16(inp_bf16, x, (size_t)rows * C);
            cuda_gemm(1, 0, 1, rows, Vp, C, inp_bf16, wte_bf16, NULL, logits, 0);
        } else {
            cuda_gemm(0, 0, 1, rows, Vp, C, x, wte, NULL, logits, 0);
        }
        softmax_xent_kernel<<<rows, CLS_THREADS, 0, cuda_stream>>>(losses + r0, logits, targets + r0,
                                                                  V, Vp, dinp ? dloss : 0.0f);
        CUDA_LAUNCHED();
        if (!dinp) continue;
        if (wte_bf16) {
            cuda_to_bf16(dlogits_bf16, logits, (size_t)rows * Vp);
            cuda_gemm(1, 0, 0, rows, C, Vp, dlogits_bf16, wte_bf16, NULL, dinp + (size_t)r0 * C, 0);
            cuda_gemm(1, 1, 0, Vp, C, rows, dlogits_bf16, inp_bf16, NULL, dwte, 1);
        } else {
            cuda_gemm(0, 0, 0, rows, C, Vp, logits, wte, NULL, dinp + (size_t)r0 * C, 0);
            cuda_gemm(0, 1, 0, Vp, C, rows, logits, x, NULL, dwte, 1);
        }
    }
}

/* Generation's LM head: the logits in fp32, as matmul_forward's product without a bias. */
extern "C" void cuda_logits_forward(float *logits, const gpt2_act *inp, const float *wte,
                                    const gpt2_bf16 *wte_bf16, int N, int C, int Vp,
                                    float *scratch) {
    cuda_matmul_forward((gpt2_act *)logits, inp, wte, wte_bf16, NULL, N, C, Vp, scratch);
}
