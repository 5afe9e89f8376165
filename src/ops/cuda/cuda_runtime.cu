/* The device, the stream, memory, and the products through cuBLASLt. */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <string.h>

#include "ops/cuda/cuda_common.cuh"

cudaStream_t cuda_stream;
static cublasLtHandle_t lt;
static void *workspace;
static const size_t WORKSPACE_BYTES = (size_t)32 << 20; /* what cuBLASLt asks for on Hopper */
static int use_tf32 = 1;

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

extern "C" int cuda_init(gpt2c_error *err) {
    if (lt) return 0;
    /* GPT2C_CUDA_TF32=0: fp32 products in fp32 (parity runs against the CPU) */
    const char *tf32 = getenv("GPT2C_CUDA_TF32");
    if (tf32 && !strcmp(tf32, "0")) use_tf32 = 0;
    int n = cuda_device_count(err);
    if (n < 0) return -1;
    if (n == 0) {
        snprintf(err->msg, sizeof err->msg, "no CUDA device (or no driver) on this machine");
        return -1;
    }
    cudaError_t e = cudaSetDevice(0);
    if (e == cudaSuccess) e = cudaStreamCreate(&cuda_stream);
    if (e == cudaSuccess) e = cudaMalloc(&workspace, WORKSPACE_BYTES);
    if (e != cudaSuccess) {
        snprintf(err->msg, sizeof err->msg, "CUDA: %s", cudaGetErrorString(e));
        return -1;
    }
    if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err->msg, sizeof err->msg, "cuBLASLt could not start");
        return -1;
    }
    return 0;
}

extern "C" void cuda_close(void) {
    if (!lt) return;
    cudaStreamSynchronize(cuda_stream);
    cublasLtDestroy(lt);
    cudaFree(workspace);
    cudaStreamDestroy(cuda_stream);
    lt = NULL, workspace = NULL, cuda_stream = NULL;
}

extern "C" void cuda_set_tf32(int on) { use_tf32 = on; }

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
extern "C" void cuda_upload(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream));
}
extern "C" void cuda_download(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream));
}
extern "C" void cuda_memset0(void *p, size_t bytes) {
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream));
}
extern "C" void cuda_sync(void) { CUDA_CHECK(cudaStreamSynchronize(cuda_stream)); }

#define LT_CHECK(call)                                                                            \
    do {                                                                                          \
        cublasStatus_t s_ = (call);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            fprintf(stderr, "gpt2c: cuBLASLt error %d at %s:%d\n", (int)s_, __FILE__, __LINE__);  \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* The largest power of two (up to 256) that divides the address. */
static uint32_t alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t n = 256;
    while (n > 1 && a % n) n >>= 1;
    return n;
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt (column-major) gets
 * B as its first operand and A as its second, each transposed where the row-major one is not.
 * The bias epilogue adds a vector along cuBLASLt's rows, which are C's columns: bias[N]. */
extern "C" void cuda_gemm(int bf16, int ta, int tb, int M, int N, int K, const void *A,
                          const void *B, const float *bias, float *C, int accumulate) {
    cudaDataType_t in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t compute =
        !bf16 && use_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    cublasLtMatmulDesc_t desc;
    LT_CHECK(cublasLtMatmulDescCreate(&desc, compute, CUDA_R_32F));
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof bias));
    }
    /* stored shapes, column-major: B row-major [K,N] (or [N,K]) is [N,K] (or [K,N]) */
    cublasLtMatrixLayout_t la, lb, lc;
    LT_CHECK(cublasLtMatrixLayoutCreate(&la, in, tb ? K : N, tb ? N : K, tb ? K : N));
    LT_CHECK(cublasLtMatrixLayoutCreate(&lb, in, ta ? M : K, ta ? K : M, ta ? M : K));
    LT_CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, N));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &WORKSPACE_BYTES, sizeof WORKSPACE_BYTES));
    /* the heuristic assumes 256-byte aligned operands unless told: tell it what these are */
    uint32_t align_a = alignment(B), align_b = alignment(A), align_c = alignment(C);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                  &align_a, sizeof align_a));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                  &align_b, sizeof align_b));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                  &align_c, sizeof align_c));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                  &align_c, sizeof align_c));
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 1, &h, &found));
    if (found < 1) {
        fprintf(stderr, "gpt2c: cuBLASLt has no algorithm for %d x %d x %d\n", M, N, K);
        abort();
    }
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    LT_CHECK(cublasLtMatmul(lt, desc, &alpha, B, la, A, lb, &beta, C, lc, C, lc, &h.algo, workspace,
                            WORKSPACE_BYTES, cuda_stream));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(desc);
}
