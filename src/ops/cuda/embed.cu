/* Token + position embedding, and its backward without float atomics (the same bits on any
 * GPU: ops.h, Determinism). */
#include "ops/cuda/cuda_common.cuh"

template <typename act_t>
__global__ void embed_forward_kernel(act_t *out, const int32_t *tokens, const float *wte,
                                     const float *wpe, int T, int C, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t bt = i / C;
    int c = (int)(i % C), t = (int)(bt % T);
    out[i] = act_store<act_t>(wte[(size_t)tokens[bt] * C + c] + wpe[(size_t)t * C + c]);
}

/* dwpe[t][c] += the sum over the batch of dout[b][t][c], b in order: a thread per (t, c). */
template <typename act_t>
__global__ void wpe_backward_kernel(float *dwpe, const act_t *dout, int B, int T, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C) return;
    float s = 0.0f;
    for (int b = 0; b < B; b++) s += act_load(dout[(size_t)b * T * C + i]);
    dwpe[i] += s;
}

/* dwte's rows are shared by the positions holding one token. The positions are sorted by token
 * (keys token << 32 | position, a bitonic sort: its compares do not depend on the data, so the
 * order is the same on any GPU), then the first sorted entry of each token sums the token's
 * rows in position order, a thread per (entry, channel). */
__global__ void token_keys_kernel(uint64_t *keys, const int32_t *tokens, int N, int P) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < P) keys[i] = i < N ? (uint64_t)(uint32_t)tokens[i] << 32 | (uint32_t)i : ~(uint64_t)0;
}

/* One merge step of the bitonic sort of P (a power of two) keys, ascending. */
__global__ void bitonic_step_kernel(uint64_t *keys, int j, int k, int P) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, l = i ^ j;
    if (i >= P || l <= i) return;
    uint64_t a = keys[i], b = keys[l];
    if ((a > b) == ((i & k) == 0)) keys[i] = b, keys[l] = a;
}

template <typename act_t>
__global__ void wte_backward_kernel(float *dwte, const act_t *dout, const uint64_t *keys, int N,
                                    int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    int e = (int)(i / C), c = (int)(i % C);
    uint32_t token = (uint32_t)(keys[e] >> 32);
    if (e > 0 && (uint32_t)(keys[e - 1] >> 32) == token) return; /* not the token's first */
    float s = 0.0f;
    for (int f = e; f < N && (uint32_t)(keys[f] >> 32) == token; f++)
        s += act_load(dout[(size_t)(uint32_t)keys[f] * C + c]);
    dwte[(size_t)token * C + c] += s;
}

template <typename act_t>
static void embed_forward(gpt2_act *out, const int32_t *tokens, const float *wte, const float *wpe,
                          int B, int T, int C) {
    size_t total = (size_t)B * T * C;
    if (!total) return;
    embed_forward_kernel<act_t><<<blocks_for(total, 256), 256, 0, cuda_stream>>>(
        acts<act_t>(out), tokens, wte, wpe, T, C, total);
    CUDA_LAUNCHED();
}

/* The keys take 2 P floats of scratch (P: B*T rounded up to a power of two). */
template <typename act_t>
static void embed_backward(float *dwte, float *dwpe, const gpt2_act *dout_, const int32_t *tokens,
                           int B, int T, int C, float *scratch) {
    const act_t *dout = acts<act_t>(dout_);
    int N = B * T, P = 1;
    if (!N || !C) return;
    while (P < N) P *= 2;
    wpe_backward_kernel<act_t><<<blocks_for((size_t)T * C, 256), 256, 0, cuda_stream>>>(
        dwpe, dout, B, T, C);
    CUDA_LAUNCHED();
    uint64_t *keys = (uint64_t *)scratch;
    token_keys_kernel<<<blocks_for((size_t)P, 256), 256, 0, cuda_stream>>>(keys, tokens, N, P);
    CUDA_LAUNCHED();
    for (int k = 2; k <= P; k *= 2)
        for (int j = k / 2; j > 0; j /= 2) {
            bitonic_step_kernel<<<blocks_for((size_t)P, 256), 256, 0, cuda_stream>>>(keys, j, k, P);
            CUDA_LAUNCHED();
        }
    wte_backward_kernel<act_t><<<blocks_for((size_t)N * C, 256), 256, 0, cuda_stream>>>(
        dwte, dout, keys, N, C);
    CUDA_LAUNCHED();
}

extern "C" void cuda_embed_forward(gpt2_act *out, const int32_t *tokens, const float *wte,
                                   const float *wpe, int B, int T, int C) {
    CUDA_ACT_DISPATCH(embed_forward, (out, tokens, wte, wpe, B, T, C));
}

extern "C" void cuda_embed_backward(float *dwte, float *dwpe, const gpt2_act *dout,
                                    const int32_t *tokens, int B, int T, int C, float *scratch) {
    CUDA_ACT_DISPATCH(embed_backward, (dwte, dwpe, dout, tokens, B, T, C, scratch));
}
