/* The device, the stream, memory, and cuBLASLt's handle and workspace (gemm.cu: the products). */
#include <cuda_bf16.h>
#include <string.h>

#include "ops/cuda/cuda_common.cuh"

cudaStream_t cuda_stream;
cublasLtHandle_t cuda_lt;
void *cuda_lt_workspace;
int cuda_tf32 = 1;
int cuda_bf16_acts;

extern "C" int cuda_emulated(void) {
#ifdef GPT2C_CUDA_EMULATED
    return 1;
#else
    return 0;
#endif
}

extern "C" int cuda_device_count(gpt2c_error *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess) return n;
    cudaGetLastError(); /* clear it */
    /* no driver, or no GPU, is an answer; anything else is a failure to report */
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) return 0;
    if (err) snprintf(err->msg, sizeof err->msg, "CUDA: %s", cudaGetErrorString(e));
    return -1;
}

/* This process's rank among those an MPI launcher started on this machine (Open MPI, MPICH's
 * Hydra, Slurm), 0 when none did. */
static int local_rank(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return atoi(getenv(vars[i]));
    return 0;
}

/* Small uploads (a micro-step's tokens and targets) go through two pinned staging buffers in
 * turn: the host copies the bytes there and the copy from them is truly asynchronous. Before a
 * buffer takes new bytes, the event recorded after its last copy is waited on: that copy was
 * queued an upload ago, behind the previous micro-step's work at most, so the host runs ahead
 * of the GPU by a micro-step and never waits for the step it has just queued. Larger uploads
 * (weights, at load) go from pageable memory, which CUDA stages itself. */
#define STAGE_BYTES ((size_t)4 << 20)
static void *stage[2];
static cudaEvent_t staged[2];
static int next_stage;

extern "C" int cuda_init(gpt2c_error *err) {
    if (cuda_lt) return 0;
    /* GPT2C_CUDA_TF32=0: fp32 products in fp32 (parity runs against the CPU) */
    const char *tf32 = getenv("GPT2C_CUDA_TF32");
    if (tf32 && !strcmp(tf32, "0")) cuda_tf32 = 0;
    int n = cuda_device_count(err);
    if (n < 0) return -1;
    if (n == 0) {
        snprintf(err->msg, sizeof err->msg, "no CUDA device (or no driver) on this machine");
        return -1;
    }
    /* one process per GPU: the ranks on a machine take its GPUs in order */
    int device = local_rank();
    if (device < 0 || device >= n) {
        snprintf(err->msg, sizeof err->msg, "this process is rank %d on its machine, which has %d "
                 "CUDA device(s): start at most one process per GPU", device, n);
        return -1;
    }
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreate(&cuda_stream);
    if (e == cudaSuccess) e = cudaMalloc(&cuda_lt_workspace, CUDA_LT_WORKSPACE_BYTES);
    for (int k = 0; k < 2 && e == cudaSuccess; k++) {
        e = cudaMallocHost(&stage[k], STAGE_BYTES);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&staged[k], cudaEventDisableTiming);
    }
    if (e != cudaSuccess) {
        snprintf(err->msg, sizeof err->msg, "CUDA: %s", cudaGetErrorString(e));
        return -1;
    }
    if (cublasLtCreate(&cuda_lt) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err->msg, sizeof err->msg, "cuBLASLt could not start");
        return -1;
    }
    return 0;
}

extern "C" void cuda_close(void) {
    if (!cuda_lt) return;
    cudaStreamSynchronize(cuda_stream);
    cuda_gemm_plans_free();
    cuda_attention_free();
    for (int k = 0; k < 2; k++) cudaFreeHost(stage[k]), cudaEventDestroy(staged[k]);
    stage[0] = stage[1] = NULL;
    cublasLtDestroy(cuda_lt);
    cudaFree(cuda_lt_workspace);
    cudaStreamDestroy(cuda_stream);
    cuda_lt = NULL, cuda_lt_workspace = NULL, cuda_stream = NULL;
}

extern "C" void cuda_set_tf32(int on) { cuda_tf32 = on; }

/* Zeroed, as the ops' contract says. */
extern "C" void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    cuda_memset0(p, bytes);
    return p;
}
extern "C" void cuda_free(void *p) { cudaFree(p); }
/* No synchronize: the caller may reuse its buffer at once (its bytes are in a staging buffer,
 * ours or, from pageable memory, CUDA's: the emulated runtime stages them the same way), and the
 * stream orders the copy before the kernels that read it: a micro-step's token uploads cost no
 * host sync. */
extern "C" void cuda_upload(void *dst, const void *src, size_t bytes) {
    if (bytes > STAGE_BYTES) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream));
        return;
    }
    int k = next_stage;
    next_stage ^= 1;
    CUDA_CHECK(cudaEventSynchronize(staged[k])); /* its previous copy has left it */
    memcpy(stage[k], src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, stage[k], bytes, cudaMemcpyHostToDevice, cuda_stream));
    CUDA_CHECK(cudaEventRecord(staged[k], cuda_stream));
}
extern "C" void cuda_download(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream));
}
extern "C" void cuda_memset0(void *p, size_t bytes) {
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream));
}
extern "C" void cuda_sync(void) { CUDA_CHECK(cudaStreamSynchronize(cuda_stream)); }

/* GPT2C_CUDA_GRAPH=1: a micro-step captured once as a CUDA graph and launched as one (the model
 * asks, model/gpt2.c's gpt2_train_micro_step). A capture that fails says why and the ops run one
 * by one. */
static int env_on(const char *name) { return getenv(name) && !strcmp(getenv(name), "1"); }

static int graphs_wanted(void) {
    static int wanted = -1;
    if (wanted >= 0) return wanted;
    wanted = env_on("GPT2C_CUDA_GRAPH");
    if (wanted && env_on("GPT2C_CUDA_SYNC_CHECK")) { /* it waits after every op: no capture */
        fprintf(stderr, "gpt2c: GPT2C_CUDA_GRAPH: off under GPT2C_CUDA_SYNC_CHECK=1, which "
                        "synchronizes after every op: the ops run one by one\n");
        wanted = 0;
    }
    return wanted;
}

extern "C" int cuda_capture_begin(void) {
    if (!graphs_wanted()) return -1;
    cudaError_t e = cudaStreamBeginCapture(cuda_stream, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) return 0;
    cudaGetLastError();
    fprintf(stderr, "gpt2c: GPT2C_CUDA_GRAPH: no capture (%s): the ops run one by one\n",
            cudaGetErrorString(e));
    return -1;
}

extern "C" void *cuda_capture_end(void) {
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaError_t e = cudaStreamEndCapture(cuda_stream, &graph);
    size_t nodes = 0;
    if (e == cudaSuccess) e = cudaGraphGetNodes(graph, NULL, &nodes);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e == cudaSuccess) {
        fprintf(stderr, "gpt2c: GPT2C_CUDA_GRAPH: a micro-step captured as one graph of %zu "
                        "operations\n", nodes);
        return exec;
    }
    cudaGetLastError();
    fprintf(stderr, "gpt2c: GPT2C_CUDA_GRAPH: the micro-step could not be captured as a graph "
                    "(%s): its ops run one by one\n", cudaGetErrorString(e));
    return NULL;
}

extern "C" void cuda_replay(void *recording) {
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)recording, cuda_stream));
}

extern "C" void cuda_recording_free(void *recording) {
    if (recording) cudaGraphExecDestroy((cudaGraphExec_t)recording);
}
