/* The CPU backend's table of ops, and the scratch memory its kernels share. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "util/time.h"
#include "util/mem.h"
#include "util/sysmem.h"

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static size_t cpu_scratch_floats(int B, int T, int C, int NH, int Vp, int bf16) {
    (void)NH;
    size_t attention = (size_t)omp_get_max_threads() * CPU_ATTN_SCRATCH(T);
    size_t layernorm = (size_t)CPU_LN_BLOCKS * 2 * (size_t)C;        /* partial dw, db */
    size_t classifier = cpu_classifier_scratch_floats(C, Vp, bf16);
    /* the widest linear layer (C to 4C or back), and generation's LM head over B rows */
    size_t matmul = bf16 ? max_size(cpu_matmul_scratch_floats(B * T, C, 4 * C),
                                    cpu_matmul_scratch_floats(B, C, Vp))
                         : 0;
    return max_size(max_size(attention, matmul), max_size(layernorm, classifier));
}

/* The plan line's words for the route each precision takes at the level in use. */
static const char *cpu_precision_path(int bf16) {
    static const char *const fp32[] = {"fp32 (x86-64)", "fp32 (AVX2)", "fp32 (AVX-512)",
                                       "fp32 (AVX-512)", "fp32 (AVX-512)"};
    static const char *const bf16_paths[] = {
        "bf16 (emulated: x86-64, fp32 GEMM on rounded inputs)",
        "bf16 (emulated: AVX2, fp32 GEMM on rounded inputs)",
        "bf16 (emulated: AVX-512, fp32 GEMM on rounded inputs)", "bf16 (AVX512_BF16)",
        "bf16 (AMX)"};
    return (bf16 ? bf16_paths : fp32)[cpu_isa()];
}

void openblas_set_num_threads(int n); /* OpenBLAS's own; other BLASes' cblas.h lack it */

static void cpu_set_threads(int n) {
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

/* util/mem.h's buffers: aligned for vector loads, zeroed by writing (mapped now, not by page
 * faults in the first step). */
static void *cpu_alloc(size_t bytes) { return mem_floats((bytes + sizeof(float) - 1) / sizeof(float)); }
static void cpu_memset0(void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (dst != src) memmove(dst, src, bytes);
}

const gpt2_ops gpt2_ops_cpu = {
    .name = "cpu",
    .host_memory = 1,
    .alloc = cpu_alloc,
    .free = free,
    .memset0 = cpu_memset0,
    .copy = cpu_copy,
    .upload = cpu_copy,
    .download = cpu_copy,
    .mem_available = sysmem_available_bytes,
    .embed_forward = cpu_embed_forward,
    .embed_backward = cpu_embed_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .attention_forward_kv = cpu_attention_forward_kv,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .residual_forward = cpu_residual_forward,
    .classifier = cpu_classifier,
    .sum_squares = cpu_sum_squares,
    .adamw = cpu_adamw,
    .to_bf16 = cpu_to_bf16,
    .precision_path = cpu_precision_path,
    .set_threads = cpu_set_threads,
    .scratch_floats = cpu_scratch_floats,
    .clock_ms = now_ms,
};
