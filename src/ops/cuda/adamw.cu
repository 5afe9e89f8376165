/* AdamW and the sum of squares of the gradient norm: one thread per value. */
#include <cuda_bf16.h>

#include "ops/cuda/cuda_common.cuh"

/* A device buffer of at least `bytes` kept between calls in *buffer (*have bytes), grown when a
 * call needs more (the optimizer's calls each step need the same: it grows once). */
static void *kept_buffer(void **buffer, size_t *have, size_t bytes) {
    if (*have < bytes) {
        CUDA_CHECK(cudaFree(*buffer));
        CUDA_CHECK(cudaMalloc(buffer, bytes));
        *have = bytes;
    }
    return *buffer;
}

/* PyTorch's AdamW formula, as the CPU's; then the gradient is zeroed and the bf16 copy written.
 * One launch over the whole buffer: each value finds its run (binary search over the runs'
 * starts) for its decay factor, decay_on or 1. */
__global__ void adamw_kernel(float *p, __nv_bfloat16 *p_bf16, float *g, float *m, float *v,
                             size_t n, const gpt2_decay_run *runs, int nruns, float beta1,
                             float beta2, float eps, float decay_on, float step_size,
                             float bc2_sqrt, float grad_scale) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int lo = 0, hi = nruns - 1; /* the last run starting at or before i */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (runs[mid].start <= i) lo = mid;
        else hi = mid - 1;
    }
    float decay = runs[lo].decay ? decay_on : 1.0f;
    float grad = g[i] * grad_scale;
    g[i] = 0.0f;
    float mi = beta1 * m[i] + (1.0f - beta1) * grad;
    float vi = beta2 * v[i] + (1.0f - beta2) * grad * grad;
    m[i] = mi, v[i] = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    float pi = p[i] * decay;
    pi -= step_size * (mi / denom);
    p[i] = pi;
    if (p_bf16) p_bf16[i] = __float2bfloat16_rn(pi);
}

/* The runs go to the device with the launch, into a buffer kept between steps (grown when a
 * call has more runs: the first step, once). */
extern "C" void cuda_adamw(float *p, gpt2_bf16 *p_bf16, float *g, float *m, float *v, size_t n,
                           const gpt2_decay_run *runs, int nruns, double lr, float beta1,
                           float beta2, float eps, float weight_decay, float grad_scale,
                           double bias_c1, double bias_c2) {
    if (!n || nruns < 1) return;
    static void *buffer;
    static size_t have;
    gpt2_decay_run *dev_runs =
        (gpt2_decay_run *)kept_buffer(&buffer, &have, (size_t)nruns * sizeof *dev_runs);
    /* pageable memory: staged before the call returns, no sync (cuda_upload) */
    CUDA_CHECK(cudaMemcpyAsync(dev_runs, runs, (size_t)nruns * sizeof *runs,
                               cudaMemcpyHostToDevice, cuda_stream));
    adamw_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream>>>(
        p, (__nv_bfloat16 *)p_bf16, g, m, v, n, dev_runs, nruns, beta1, beta2, eps,
        (float)(1.0 - lr * weight_decay), (float)(lr / bias_c1), (float)sqrt(bias_c2), grad_scale);
    CUDA_LAUNCHED();
}

/* Sum of squares in double: fixed blocks of SUMSQ_PER_BLOCK values, each block's partial by a
 * fixed tree, then the partials added in order by one thread: the same result every run. */
#define SUMSQ_THREADS 256
#define SUMSQ_PER_BLOCK ((size_t)1 << 16)

__global__ void sumsq_partial_kernel(double *partial, const float *x, size_t n) {
    __shared__ double s[SUMSQ_THREADS];
    size_t i0 = (size_t)blockIdx.x * SUMSQ_PER_BLOCK;
    size_t i1 = i0 + SUMSQ_PER_BLOCK < n ? i0 + SUMSQ_PER_BLOCK : n;
    double acc = 0.0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += SUMSQ_THREADS) acc += (double)x[i] * x[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int w = SUMSQ_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

__global__ void sum_in_order_kernel(double *out, const double *partial, size_t nblocks) {
    double t = 0.0;
    for (size_t k = 0; k < nblocks; k++) t += partial[k];
    *out = t;
}

extern "C" void cuda_sum_squares(double *sum, const float *x, size_t n) {
    *sum = 0.0;
    if (!n) return;
    size_t nblocks = (n + SUMSQ_PER_BLOCK - 1) / SUMSQ_PER_BLOCK;
    /* (nblocks + 1) doubles, kept between calls (the optimizer calls this every step with the
     * same n): for GPT-2 1.5B, 24K blocks, 190 KB */
    static void *buffer;
    static size_t have;
    double *partial = (double *)kept_buffer(&buffer, &have, (nblocks + 1) * sizeof *partial);
    sumsq_partial_kernel<<<(unsigned)nblocks, SUMSQ_THREADS, 0, cuda_stream>>>(partial, x, n);
    CUDA_LAUNCHED();
    sum_in_order_kernel<<<1, 1, 0, cuda_stream>>>(partial + nblocks, partial, nblocks);
    CUDA_LAUNCHED();
    CUDA_CHECK(cudaMemcpyAsync(sum, partial + nblocks, sizeof *sum, cudaMemcpyDeviceToHost,
                               cuda_stream));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream));
}
