/* The CPU backend's table of ops, and the scratch memory its kernels share. */
#include <omp.h>

#include "ops/cpu/cpu_kernels.h"

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static size_t cpu_scratch_floats(int B, int T, int C, int NH, int Vp) {
    (void)B, (void)NH;
    size_t attention = (size_t)omp_get_max_threads() * CPU_ATTN_SCRATCH(T);
    size_t layernorm = (size_t)CPU_LN_BLOCKS * 2 * (size_t)C;        /* partial dw, db */
    size_t classifier = (size_t)CPU_CLASSIFIER_ROWS * (size_t)Vp;     /* one chunk of logits */
    return max_size(attention, max_size(layernorm, classifier));
}

const gpt2_ops gpt2_ops_cpu = {
    .name = "cpu",
    .embed_forward = cpu_embed_forward,
    .embed_backward = cpu_embed_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .residual_forward = cpu_residual_forward,
    .classifier = cpu_classifier,
    .sum_squares = cpu_sum_squares,
    .adamw = cpu_adamw,
    .scratch_floats = cpu_scratch_floats,
};
