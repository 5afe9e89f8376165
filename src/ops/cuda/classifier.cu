/* The fused LM head + softmax + cross-entropy, as the CPU's, and generation's logits. */
#include "ops/cuda/cuda_common.cuh"

#define CLS_THREADS 512

/* (m, s) = a running max and the sum of exp(x - m) over some values: the online softmax's. */
struct max_sum {
    float m, s;
};
__device__ __forceinline__ max_sum merge(max_sum a, max_sum b) {
    float m = fmaxf(a.m, b.m);
    if (m == -INFINITY) return a; /* both empty */
    return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

/* One block per row of logits (of the products' type): the max and the sum of exp in one pass
 * (online), the loss in fp32, and (dloss != 0) the gradient in place, in the logits' type, ready
 * for the backward's products: dloss * (softmax - onehot), zero in the padded columns. */
template <typename logit_t>
__global__ void softmax_xent_kernel(float *losses, logit_t *logits, const int32_t *targets, int V,
                                    int Vp, float dloss) {
    __shared__ float red_m[CLS_THREADS / 32], red_s[CLS_THREADS / 32];
    logit_t *z = logits + (size_t)blockIdx.x * Vp;
    int target = targets[blockIdx.x], lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    max_sum t = {-INFINITY, 0.0f};
    for (int j = threadIdx.x; j < V; j += CLS_THREADS) t = merge(t, {act_load(z[j]), 1.0f});
    for (int o = 16; o > 0; o >>= 1)
        t = merge(t, {__shfl_xor_sync(0xffffffffu, t.m, o), __shfl_xor_sync(0xffffffffu, t.s, o)});
    if (lane == 0) red_m[warp] = t.m, red_s[warp] = t.s;
    __syncthreads();
    max_sum row = {red_m[0], red_s[0]};
    for (int k = 1; k < CLS_THREADS / 32; k++) row = merge(row, {red_m[k], red_s[k]});
    float zt = act_load(z[target]);
    if (threadIdx.x == 0) losses[blockIdx.x] = logf(row.s) - (zt - row.m);
    if (dloss == 0.0f) return;
    __syncthreads(); /* z[target] was read above before anyone overwrites it */
    float scale = dloss / row.s;
    for (int j = threadIdx.x; j < Vp; j += CLS_THREADS)
        z[j] = act_store<logit_t>(j < V ? expf(act_load(z[j]) - row.m) * scale - (j == target ? dloss : 0.0f)
                                        : 0.0f);
}

/* The logits CUDA_CLASSIFIER_ROWS rows at a time, in the products' type (bf16 with bf16 weights:
 * half the traffic, and their gradient feeds the backward's products as it is), never all N x
 * Vp; dinp in the activations' type, dwte in fp32. */
template <typename act_t>
static void classifier(float *losses, gpt2_act *dinp, float *dwte, const gpt2_act *inp,
                       const float *wte, const gpt2_bf16 *wte_bf16, const int32_t *targets, int N,
                       int C, int V, int Vp, float dloss, float *scratch) {
    const int rows_max = N < CUDA_CLASSIFIER_ROWS ? N : CUDA_CLASSIFIER_ROWS; /* as the scratch */
    cuda_type in = wte_bf16 ? CUDA_BF16 : CUDA_F32, o = act_type<act_t>();
    const void *w = wte_bf16 ? (const void *)wte_bf16 : wte;
    void *logits = scratch;
    size_t logit_bytes = wte_bf16 ? sizeof(gpt2_bf16) : sizeof(float);
    float *rest = (float *)bf16_after((gpt2_bf16 *)scratch, (size_t)rows_max * Vp * logit_bytes / 2);
    for (int r0 = 0; r0 < N; r0 += rows_max) {
        int rows = N - r0 < rows_max ? N - r0 : rows_max;
        float *at = rest;
        const act_t *x_rows = acts<act_t>(inp) + (size_t)r0 * C;
        const void *x = product_input<act_t>((const gpt2_act *)x_rows, in, (size_t)rows * C, &at);
        cuda_gemm(in, in, 0, 1, rows, Vp, C, x, w, NULL, logits, 0);
        float dl = dinp ? dloss : 0.0f;
        if (wte_bf16)
            softmax_xent_kernel<__nv_bfloat16><<<rows, CLS_THREADS, 0, cuda_stream>>>(
                losses + r0, (__nv_bfloat16 *)logits, targets + r0, V, Vp, dl);
        else
            softmax_xent_kernel<float><<<rows, CLS_THREADS, 0, cuda_stream>>>(
                losses + r0, (float *)logits, targets + r0, V, Vp, dl);
        CUDA_LAUNCHED();
        if (!dinp) continue;
        cuda_gemm(in, o, 0, 0, rows, C, Vp, logits, w, NULL, acts<act_t>(dinp) + (size_t)r0 * C, 0);
        cuda_gemm(in, CUDA_F32, 1, 0, Vp, C, rows, logits, x, NULL, dwte, 1);
    }
}

extern "C" void cuda_classifier(float *losses, gpt2_act *dinp, float *dwte, const gpt2_act *inp,
                                const float *wte, const gpt2_bf16 *wte_bf16,
                                const int32_t *targets, int N, int C, int V, int Vp, float dloss,
                                float *scratch) {
    CUDA_ACT_DISPATCH(classifier,
                      (losses, dinp, dwte, inp, wte, wte_bf16, targets, N, C, V, Vp, dloss, scratch));
}

/* The products classifier() runs: full chunks of rows, and the last, shorter one. */
extern "C" void cuda_prepare_classifier(int N, int C, int Vp, int bf16, int training) {
    cuda_type in = bf16 ? CUDA_BF16 : CUDA_F32, o = cuda_bf16_acts ? CUDA_BF16 : CUDA_F32;
    if (N < 1) return;
    int full = N < CUDA_CLASSIFIER_ROWS ? N : CUDA_CLASSIFIER_ROWS, tail = N % full;
    for (int rows : {full, tail}) {
        cuda_gemm_prepare(in, in, 0, 1, rows, Vp, C, 0, 0); /* logits in the products' type */
        if (!training) continue;
        cuda_gemm_prepare(in, o, 0, 0, rows, C, Vp, 0, 0);
        cuda_gemm_prepare(in, CUDA_F32, 1, 0, Vp, C, rows, 0, 0);
    }
}


/* Generation's LM head: the logits in fp32 whatever the activations' type, from the product in
 * the weights' type, as matmul_forward's without a bias. */
template <typename act_t>
static void logits_forward(float *logits, const gpt2_act *inp, const float *wte,
                           const gpt2_bf16 *wte_bf16, int N, int C, int Vp, float *scratch) {
    cuda_type in = wte_bf16 ? CUDA_BF16 : CUDA_F32;
    const void *x = product_input<act_t>(inp, in, (size_t)N * C, &scratch);
    cuda_gemm(in, CUDA_F32, 0, 1, N, Vp, C, x, wte_bf16 ? (const void *)wte_bf16 : wte, NULL,
              logits, 0);
}

extern "C" void cuda_logits_forward(float *logits, const gpt2_act *inp, const float *wte,
                                    const gpt2_bf16 *wte_bf16, int N, int C, int Vp,
                                    float *scratch) {
    CUDA_ACT_DISPATCH(logits_forward, (logits, inp, wte, wte_bf16, N, C, Vp, scratch));
}

/* One block: each thread sums every LOSS_THREADS-th loss in double, then the block's sums pair
 * up in a fixed tree: the same bits on every GPU (within double rounding of the CPU's order). */
#define LOSS_THREADS 256
__global__ void loss_sum_kernel(double *acc, const float *losses, int N, float weight) {
    __shared__ double part[LOSS_THREADS];
    double s = 0.0;
    for (int i = (int)threadIdx.x; i < N; i += LOSS_THREADS) s += losses[i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned k = LOSS_THREADS / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) part[threadIdx.x] += part[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) acc[0] += (double)(weight * (float)(part[0] / N));
}

extern "C" void cuda_loss_sum(double *acc, const float *losses, int N, float weight) {
    if (N < 1) return;
    loss_sum_kernel<<<1, LOSS_THREADS, 0, cuda_stream>>>(acc, losses, N, weight);
    CUDA_LAUNCHED();
}
