/* The CUDA backend: its handle, its table of ops, and the scratch its kernels share. */
#include <string.h>

#include "ops/backend.h"
#include "ops/cuda/cuda_common.cuh"
#include "util/mem.h"
#include "util/time.h"

/* The plan line's words for each precision: the products' library, and for the handle's
 * precision the attention its latest plan runs (rewritten as plans are made; the handle points
 * here). */
static char path_fp32[192], path_bf16[192];
static void describe_paths(void) {
#ifdef GPT2C_CUDA_EMULATED
    const char *lib = "emulated GPU: kernels as fibers, a cuBLASLt stand-in";
#else
    const char *lib = "cuBLASLt";
#endif
    const char *attention = cuda_attention_path();
    snprintf(path_fp32, sizeof path_fp32, "fp32 (%s, TF32 unless turned off%s%s)", lib,
             cuda_bf16_acts ? "" : "; ", cuda_bf16_acts ? "" : attention);
    snprintf(path_bf16, sizeof path_bf16, "bf16 (%s, fp32 accumulation%s%s)", lib,
             cuda_bf16_acts ? "; " : "", cuda_bf16_acts ? attention : "");
}

extern "C" size_t cuda_scratch_floats(int B, int T, int C, int NH, int Vp, int bf16) {
    (void)bf16; /* the same for both: fp32 products need less */
    size_t N = (size_t)B * T;
    /* bf16 copies of a product's two inputs (up to 4C outputs) and of its bias, the bias
     * gradient's partials;
     * LayerNorm's partials (2 per column) and the embedding's sort keys (at most 4N) are fewer */
    size_t matmul = 5 * N * C / 2 + 2 * (size_t)C + 768 + column_partials_floats(N, 4 * (size_t)C);
    /* a chunk's logits (fp32; or bf16, and the input rounded to bf16 when it is fp32) */
    size_t rows = N < CUDA_CLASSIFIER_ROWS ? N : CUDA_CLASSIFIER_ROWS;
    size_t classifier = rows * Vp + rows * C / 2 + 256;
    /* the backward's D (one float a query row), or cuDNN's workspace: prepared now, the plan
     * line then says which attention runs */
    size_t attention = (cuda_attention_scratch_bytes(B, T, C, NH) + 3) / 4;
    describe_paths();
    return max_size(max_size(matmul, classifier), attention);
}

extern "C" double cuda_mem_available(void) {
    size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return (double)free_bytes;
}

extern "C" void cuda_copy(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream));
}

extern "C" double cuda_clock_ms(void) {
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream));
    return now_ms();
}

#define CUDA_SERVICE_ENTRY(ret, name, params) .name = cuda_##name,
#define CUDA_OP_ENTRY(name, ...) .name = cuda_##name,
static const gpt2_ops cuda_ops = {GPT2_SERVICES(CUDA_SERVICE_ENTRY) GPT2_OPS(CUDA_OP_ENTRY)};

/* Activations in the precision's type: every kernel that touches them follows cuda_bf16_acts. */
static void set_precision(gpt2_backend *be, gpt2_precision p) {
    cuda_bf16_acts = p == GPT2_BF16;
    be->act_bytes = cuda_bf16_acts ? sizeof(gpt2_bf16) : sizeof(float);
    describe_paths();
}

static void close_backend(gpt2_backend *be) {
    (void)be;
    cuda_close();
}

/* bf16 tensor-core products exist on every GPU this backend builds for (sm_80, sm_90). Threads
 * are the host's: a GPU backend's CPU work is its own, in one thread. */
extern "C" int cuda_backend_open(gpt2_backend *be, int threads, gpt2c_error *err) {
    if (cuda_attention_configure(err) != 0) return -1; /* before the device: nothing to undo */
    if (cuda_init(err) != 0) return -1;
    *be = gpt2_backend{};
    be->name = "cuda", be->ops = &cuda_ops, be->host_memory = 0;
    be->default_precision = GPT2_BF16, be->threads = threads, be->set_precision = set_precision;
    set_precision(be, GPT2_FP32);
#ifdef GPT2C_CUDA_EMULATED /* the same kernels on the CPU, for tests: say so wherever it shows */
    be->memory = "GPU emulated on the CPU";
#else
    be->memory = "GPU";
#endif
    be->path[GPT2_FP32] = path_fp32, be->path[GPT2_BF16] = path_bf16;
    const char *sync_check = getenv("GPT2C_CUDA_SYNC_CHECK");
    if (sync_check && !strcmp(sync_check, "1")) be->ops = &cuda_checked_ops;
    /* its products do not yet compute each row as it is alone (ops.h, Rows): prompts never
     * share one here */
    be->rows_chunk[GPT2_FP32] = be->rows_chunk[GPT2_BF16] = 0;
    be->check_shapes = cuda_check_shapes;
    be->stream = cuda_stream; /* for a communicator that queues its collectives behind the ops */
    be->close = close_backend;
    return 0;
}
