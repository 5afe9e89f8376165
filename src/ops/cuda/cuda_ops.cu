/* The CUDA backend's table of ops, and the scratch its kernels share. */
#include "ops/cuda/cuda_common.cuh"

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

extern "C" size_t cuda_scratch_floats(int B, int T, int C, int NH, int Vp, int bf16) {
    (void)NH, (void)bf16; /* the same for both: fp32 products need less */
    size_t N = (size_t)B * T;
    size_t matmul = 5 * N * C / 2 + 256;   /* bf16 copies of a product's two inputs */
    size_t rows = CUDA_CLASSIFIER_ROWS;    /* logits, their bf16 gradient, the input in bf16 */
    size_t classifier = rows * Vp + (rows * Vp + rows * C) / 2 + 256;
    return max_size(matmul, classifier);
}

static void cuda_set_threads(int n) { (void)n; }

static void *cuda_alloc_zeroed(size_t bytes) {
    void *p = cuda_alloc(bytes);
    if (p) cuda_memset0(p, bytes);
    return p;
}

static double cuda_mem_available(void) {
    size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return (double)free_bytes;
}

static void cuda_copy(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream));
}

extern "C" const gpt2_ops gpt2_ops_cuda = {
    /* .name = */ "cuda",
    /* .host_memory = */ 0,
    /* .alloc = */ cuda_alloc_zeroed,
    /* .free = */ cuda_free,
    /* .memset0 = */ cuda_memset0,
    /* .copy = */ cuda_copy,
    /* .upload = */ cuda_to_device,
    /* .download = */ cuda_to_host,
    /* .mem_available = */ cuda_mem_available,
    /* .embed_forward = */ cuda_embed_forward,
    /* .embed_backward = */ cuda_embed_backward,
    /* .layernorm_forward = */ cuda_layernorm_forward,
    /* .layernorm_backward = */ cuda_layernorm_backward,
    /* .matmul_forward = */ cuda_matmul_forward,
    /* .matmul_backward = */ cuda_matmul_backward,
    /* .attention_forward = */ cuda_attention_forward,
    /* .attention_backward = */ cuda_attention_backward,
    /* .attention_forward_kv = */ cuda_attention_forward_kv,
    /* .gelu_forward = */ cuda_gelu_forward,
    /* .gelu_backward = */ cuda_gelu_backward,
    /* .residual_forward = */ cuda_residual_forward,
    /* .classifier = */ cuda_classifier,
    /* .sum_squares = */ cuda_sum_squares,
    /* .adamw = */ cuda_adamw,
    /* .to_bf16 = */ cuda_to_bf16,
    /* .precision_path = */ cuda_precision_path,
    /* .set_threads = */ cuda_set_threads,
    /* .scratch_floats = */ cuda_scratch_floats,
    /* .clock_ms = */ cuda_clock_ms,
};
