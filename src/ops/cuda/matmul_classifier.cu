/* The linear layers and the fused LM head + softmax + cross-entropy, as the CPU's: products
 * through cuda_gemm (cuBLASLt), bf16 inputs rounded here when a bf16 weight copy is given. */
#include <cuda_bf16.h>

#include "ops/cuda/cuda_common.cuh"

/* where a product's bf16 inputs go in the scratch, b values after a, 256-byte aligned */
static gpt2_bf16 *after(gpt2_bf16 *a, size_t n) { return a + ((n + 127) & ~(size_t)127); }

extern "C" void cuda_matmul_forward(float *out, const float *inp, const float *w,
                                    const gpt2_bf16 *w_bf16, const float *bias, int N, int C,
                                    int OC, float *scratch) {
    if (w_bf16) {
        gpt2_bf16 *inp_bf16 = (gpt2_bf16 *)scratch;
        cuda_to_bf16(inp_bf16, inp, (size_t)N * C);
        cuda_gemm(1, 0, 1, N, OC, C, inp_bf16, w_bf16, bias, out, 0);
    } else {
        cuda_gemm(0, 0, 1, N, OC, C, inp, w, bias, out, 0);
    }
}

/* dbias[o] += sum over rows of dout[:, o]: a thread per column walks the rows in order. */
__global__ void column_sums_kernel(float *dbias, const float *dout, int N, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float s = 0.0f;
    for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
    dbias[o] += s;
}

extern "C" void cuda_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                                     const float *inp, const float *w, const gpt2_bf16 *w_bf16,
                                     int N, int C, int OC, float *scratch) {
    if (w_bf16) {
        gpt2_bf16 *dout_bf16 = (gpt2_bf16 *)scratch, *inp_bf16 = after(dout_bf16, (size_t)N * OC);
        cuda_to_bf16(dout_bf16, dout, (size_t)N * OC);
        cuda_to_bf16(inp_bf16, inp, (size_t)N * C);
        cuda_gemm(1, 0, 0, N, C, OC, dout_bf16, w_bf16, NULL, dinp, 0);
        cuda_gemm(1, 1, 0, OC, C, N, dout_bf16, inp_bf16, NULL, dw, 1);
    } else {
        cuda_gemm(0, 0, 0, N, C, OC, dout, w, NULL, dinp, 0);
        cuda_gemm(0, 1, 0, OC, C, N, dout, inp, NULL, dw, 1);
    }
    if (dbias) {
        column_sums_kernel<<<blocks_for((size_t)OC, 256), 256, 0, cuda_stream>>>(dbias, dout, N, OC);
        CUDA_LAUNCHED();
    }
}

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

extern "C" void cuda_classifier(float *losses, float *dinp, float *dwte, const float *inp,
                                const float *wte, const gpt2_bf16 *wte_bf16,
                                const int32_t *targets, int N, int C, int V, int Vp, float dloss,
                                float *scratch) {
    const int rows_max = CUDA_CLASSIFIER_ROWS;
    float *logits = scratch;
    gpt2_bf16 *dlogits_bf16 = (gpt2_bf16 *)(scratch + (size_t)rows_max * Vp);
    gpt2_bf16 *inp_bf16 = after(dlogits_bf16, (size_t)rows_max * Vp);
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
