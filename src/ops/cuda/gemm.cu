/* The products through cuBLASLt. Each shape the model runs is resolved once, the first time it
 * runs (descriptor, layouts, the heuristic's algorithm), and kept: one fixed algorithm per
 * shape, none of that work per call, and the same algorithm (so the same bits) every call. */
#include <string.h>

#include <map>
#include <tuple>

#include "ops/cuda/cuda_common.cuh"

#define LT_CHECK(call)                                                                            \
    do {                                                                                          \
        cublasStatus_t s_ = (call);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            fprintf(stderr, "gpt2c: cuBLASLt error %d at %s:%d\n", (int)s_, __FILE__, __LINE__);  \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* What decides a product's algorithm; the pointers' alignments among it, as the heuristic was
 * told them. */
struct gemm_key {
    int in, out, tf32, ta, tb, M, N, K, bias, gelu; /* gelu: 0, 1 GELU_AUX(_BIAS), 2 DGELU */
    uint32_t align_a, align_b, align_c;
    bool operator<(const gemm_key &o) const {
        return std::tie(in, out, tf32, ta, tb, M, N, K, bias, gelu, align_a, align_b, align_c) <
               std::tie(o.in, o.out, o.tf32, o.ta, o.tb, o.M, o.N, o.K, o.bias, o.gelu, o.align_a,
                        o.align_b, o.align_c);
    }
};

struct gemm_plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};

/* (Generation runs a few products at every row count up to its chunk: a few thousand plans.) */
static std::map<gemm_key, gemm_plan> plans;

static cudaDataType_t lt_type(cuda_type t) { return t == CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F; }
static const char *type_name(int t) { return t == CUDA_BF16 ? "bf16" : "fp32"; }

static const char *epilogue_name(const gemm_key &k) {
    return k.gelu == 2 ? "DGELU (aux in C's type)"
           : k.gelu    ? (k.bias ? "GELU_AUX_BIAS (bias and aux in C's type)" : "GELU_AUX")
           : k.bias    ? "bias (in C's type)"
                       : "none";
}

/* GPT2C_CUDA_GEMM_LOG=1: each product's resolution on stderr, when the plan was made ("when the
 * plan was made") or at a call the plan did not foresee ("at its first call"). */
static const int log_plans = getenv("GPT2C_CUDA_GEMM_LOG") && !strcmp(getenv("GPT2C_CUDA_GEMM_LOG"), "1");

/* The largest power of two (up to 256) that divides the address. */
static uint32_t alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t n = 256;
    while (n > 1 && a % n) n >>= 1;
    return n;
}

void cuda_gemm_plans_free(void) {
    for (auto &kp : plans) {
        gemm_plan &p = kp.second;
        cublasLtMatrixLayoutDestroy(p.la), cublasLtMatrixLayoutDestroy(p.lb);
        cublasLtMatrixLayoutDestroy(p.lc), cublasLtMatmulDescDestroy(p.desc);
    }
    plans.clear();
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt (column-major) gets
 * B as its first operand and A as its second, each transposed where the row-major one is not.
 * The bias epilogue adds a vector along cuBLASLt's rows, which are C's columns: bias[N]. */
static const gemm_plan &resolve(const gemm_key &k, const char *when) {
    auto found_plan = plans.find(k);
    if (found_plan != plans.end()) return found_plan->second;
    if (log_plans)
        fprintf(stderr, "gpt2c: cuBLASLt: C[%d,%d] %s = A%s x B%s (%s, K %d, epilogue %s, "
                "alignments %u %u %u) resolved %s\n", k.M, k.N, type_name(k.out), k.ta ? "^T" : "",
                k.tb ? "^T" : "", type_name(k.in), k.K, epilogue_name(k), k.align_b, k.align_a,
                k.align_c, when);
    gemm_plan p;
    cudaDataType_t in = lt_type((cuda_type)k.in), out = lt_type((cuda_type)k.out);
    cublasComputeType_t compute = k.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    LT_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
    cublasOperation_t opa = k.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = k.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    /* GELU_AUX(_BIAS): D = gelu(product + bias), the pre-activation into the aux matrix (C's
     * shape, leading dimension N) for the backward; DGELU: D = product * gelu'(aux) */
    cublasLtEpilogue_t epi = k.gelu == 2 ? CUBLASLT_EPILOGUE_DGELU
                             : k.gelu  ? (k.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                             : k.bias  ? CUBLASLT_EPILOGUE_BIAS
                                       : CUBLASLT_EPILOGUE_DEFAULT;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    const void *any = cuda_lt_workspace; /* placeholders the heuristic can see; calls set theirs */
    if (k.bias)
        LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &any,
                                                sizeof any));
    if (k.gelu) {
        int64_t ld = k.N;
        LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                &any, sizeof any));
        LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld,
                                                sizeof ld));
    }
    /* stored shapes, column-major: B row-major [K,N] (or [N,K]) is [N,K] (or [K,N]) */
    int rows_a = k.tb ? k.K : k.N, cols_a = k.tb ? k.N : k.K;
    int rows_b = k.ta ? k.M : k.K, cols_b = k.ta ? k.K : k.M;
    LT_CHECK(cublasLtMatrixLayoutCreate(&p.la, in, rows_a, cols_a, rows_a));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p.lb, in, rows_b, cols_b, rows_b));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p.lc, out, k.N, k.M, k.N));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = CUDA_LT_WORKSPACE_BYTES;
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &ws, sizeof ws));
    /* the heuristic assumes 256-byte aligned operands unless told: tell it what these are */
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                  &k.align_a, sizeof k.align_a));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                  &k.align_b, sizeof k.align_b));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                  &k.align_c, sizeof k.align_c));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                  &k.align_c, sizeof k.align_c));
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(cuda_lt, p.desc, p.la, p.lb, p.lc, p.lc,
                                                       pref, 1, &h, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found < 1) {
        fprintf(stderr,
                "gpt2c: cuBLASLt has no algorithm (status %d) for C[%d,%d] %s = A%s[%d,%d] x "
                "B%s[%d,%d], %s inputs, compute %s, row-major leading dimensions %d, %d, %d, "
                "epilogue %s, alignments A %u, B %u, C %u bytes\n",
                (int)st, k.M, k.N, type_name(k.out), k.ta ? "^T" : "", k.ta ? k.K : k.M, k.ta ? k.M : k.K,
                k.tb ? "^T" : "", k.tb ? k.N : k.K, k.tb ? k.K : k.N, type_name(k.in),
                k.tf32 ? "32F_FAST_TF32" : "32F", k.ta ? k.M : k.K, k.tb ? k.K : k.N, k.N,
                epilogue_name(k),
                k.align_b, k.align_a, k.align_c);
        abort();
    }
    p.algo = h.algo;
    return plans[k] = p;
}

/* One product: its plan (the key from the call), then the call's own pointers. gelu: 0, 1
 * GELU_AUX(_BIAS) (pre written), 2 DGELU (pre read). */
static void run(cuda_type in, cuda_type out, int ta, int tb, int M, int N, int K, const void *A,
                const void *B, const void *bias, void *C, const void *pre, int gelu,
                int accumulate) {
    gemm_key k = {in, out, in == CUDA_F32 && cuda_tf32, ta, tb, M, N, K, bias != NULL, gelu,
                  alignment(B), alignment(A), alignment(C)};
    const gemm_plan &p = resolve(k, "at its first call");
    if (bias)
        LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof bias));
    if (pre)
        LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                &pre, sizeof pre));
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    LT_CHECK(cublasLtMatmul(cuda_lt, p.desc, &alpha, B, p.la, A, p.lb, &beta, C, p.lc, C, p.lc,
                            &p.algo, cuda_lt_workspace, CUDA_LT_WORKSPACE_BYTES, cuda_stream));
}

extern "C" void cuda_gemm(cuda_type in, cuda_type out, int ta, int tb, int M, int N, int K,
                          const void *A, const void *B, const void *bias, void *C,
                          int accumulate) {
    run(in, out, ta, tb, M, N, K, A, B, bias, C, NULL, 0, accumulate);
}

extern "C" void cuda_gemm_gelu(cuda_type in, cuda_type out, int M, int N, int K, const void *A,
                               const void *B, const void *bias, void *C, void *pre) {
    run(in, out, 0, 1, M, N, K, A, B, bias, C, pre, 1, 0);
}

extern "C" void cuda_gemm_dgelu(cuda_type in, cuda_type out, int M, int N, int K, const void *A,
                                const void *B, void *C, const void *pre) {
    run(in, out, 0, 0, M, N, K, A, B, NULL, C, pre, 2, 0);
}

/* A product resolved ahead, as run() will key it for operands on the plan's 256-byte
 * boundaries (model/layout.h; a call whose pointers are less aligned resolves its own). */
extern "C" void cuda_gemm_prepare(cuda_type in, cuda_type out, int ta, int tb, int M, int N,
                                  int K, int bias, int gelu) {
    if (M < 1 || N < 1 || K < 1) return;
    gemm_key k = {in, out, in == CUDA_F32 && cuda_tf32, ta, tb, M, N, K, bias, gelu, 256, 256, 256};
    resolve(k, "when the plan was made");
}
