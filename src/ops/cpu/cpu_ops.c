/* The CPU backend: its handle, its table of ops, its memory, and the scratch its kernels share. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/backend.h"
#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "util/mem.h"
#include "util/sysmem.h"
#include "util/time.h"

/* The CPU's ops run as they are called: nothing to record. */
int cpu_capture_begin(void) { return -1; }
void *cpu_capture_end(void) { return NULL; }
void cpu_replay(void *recording) { (void)recording; }
void cpu_recording_free(void *recording) { (void)recording; }

/* Nothing to choose ahead: the products' paths are picked per call from the shapes. */
void cpu_prepare_products(const gpt2_product *products, int n, int N, int training, int bf16) {
    (void)products, (void)n, (void)N, (void)training, (void)bf16;
}

size_t cpu_scratch_floats(int B, int T, int C, int NH, int Vp, int bf16) {
    size_t attention = (size_t)omp_get_max_threads() * CPU_ATTN_SCRATCH(T);
    if (bf16 && cpu_bf16_native())
        attention = max_size(attention, cpu_attention_bf16_scratch_floats(T, C, NH));
    size_t layernorm = (size_t)CPU_LN_BLOCKS * 2 * (size_t)C; /* partial dw, db */
    size_t classifier = cpu_classifier_scratch_floats(C, Vp, bf16);
    /* the widest linear layer (C to 4C or back), and generation's LM head over B rows */
    size_t matmul = bf16 ? max_size(cpu_matmul_scratch_floats(B * T, C, 4 * C),
                                     cpu_matmul_scratch_floats(B, C, Vp))
                         : 0;
    return max_size(max_size(attention, matmul), max_size(layernorm, classifier));
}

/* util/mem.h's buffers: aligned for vector loads, zeroed by writing (mapped now, not by page
 * faults in the first step). */
void *cpu_alloc(size_t bytes) { return mem_floats((bytes + sizeof(float) - 1) / sizeof(float)); }
void cpu_free(void *p) { free(p); }
void cpu_memset0(void *p, size_t bytes) { memset(p, 0, bytes); }
void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (dst != src) memmove(dst, src, bytes);
}
void cpu_upload(void *dst, const void *host, size_t bytes) { cpu_copy(dst, host, bytes); }
void cpu_download(void *host, const void *src, size_t bytes) { cpu_copy(host, src, bytes); }
double cpu_mem_available(void) { return sysmem_available_bytes(); }
double cpu_clock_ms(void) { return now_ms(); }

#define CPU_SERVICE_ENTRY(ret, name, params) .name = cpu_##name,
#define CPU_OP_ENTRY(name, ...) .name = cpu_##name,
static const gpt2_ops cpu_ops = {GPT2_SERVICES(CPU_SERVICE_ENTRY) GPT2_OPS(CPU_OP_ENTRY)};

void openblas_set_num_threads(int n); /* OpenBLAS's own; other BLASes' cblas.h lack it */

static void cpu_enter_thread(const gpt2_backend *be) { omp_set_num_threads(be->threads); }

/* The plan line's words for the route each precision takes at the level in use: bf16 runs on
 * every CPU, natively from AVX512_BF16 on, else emulated (cpu_bf16_native). */
int cpu_backend_open(gpt2_backend *be, int threads, gpt2c_error *err) {
    static const char *const fp32[CPU_ISA_LEVELS] = {"fp32 (x86-64)", "fp32 (AVX2)",
                                                     "fp32 (AVX-512)", "fp32 (AVX-512)",
                                                     "fp32 (AVX-512)"};
    static const char *const bf16[CPU_ISA_LEVELS] = {
        "bf16 (emulated: x86-64, fp32 GEMM on rounded inputs)",
        "bf16 (emulated: AVX2, fp32 GEMM on rounded inputs)",
        "bf16 (emulated: AVX-512, fp32 GEMM on rounded inputs)", "bf16 (AVX512_BF16)",
        "bf16 (AMX)"};
    if (cpu_isa_check(err) != 0) return -1; /* GPT2C_CPU_ISA names a level this CPU lacks */
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    *be = (gpt2_backend){.name = "cpu", .ops = &cpu_ops, .host_memory = 1,
                         .memory = "machine", .act_bytes = sizeof(float),
                         .default_precision = GPT2_FP32, .threads = threads,
                         .enter_thread = cpu_enter_thread};
    be->path[GPT2_FP32] = fp32[cpu_isa()];
    be->path[GPT2_BF16] = bf16[cpu_isa()];
    /* matmul_forward_rowwise is as fast as oneDNN's fp32 GEMM up to about 16-32 rows of d12 (and
     * 8 prompts' chunks share its one read of the weights); oneDNN's AVX512_BF16 and AMX
     * kernels are 3-8x faster than it, so native bf16 keeps one forward per prompt (serve_bench:
     * 8 clients' TTFT p95 194 ms that way, 206 ms through the shared forward). */
    be->rows_chunk[GPT2_FP32] = 32;
    be->rows_chunk[GPT2_BF16] = cpu_bf16_native() ? 0 : 32;
    return 0;
}
