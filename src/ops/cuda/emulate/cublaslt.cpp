/* cuBLASLt's matmul on the CPU (include/cublasLt.h says what it keeps of the library): the
 * operands widened to fp32 (rounded to TF32 under the fast-TF32 compute type), op(A) op(B) by
 * OpenBLAS in fp32 with the stream's other work, then alpha, beta C, the bias and the epilogue
 * in fp32, and one rounding to D's type. Descriptors are checked as the library checks them: an
 * unsupported combination is CUBLAS_STATUS_NOT_SUPPORTED from the heuristic, not a wrong
 * product. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "cublasLt.h"
#include "cuda_bf16.h"
#include "stream.h"

struct cuemu_lt_context {
    int alive;
};
struct cuemu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t transa, transb;
    cublasLtEpilogue_t epilogue;
    const void *bias;
    int bias_type; /* -1: D's */
    void *aux;
    int64_t aux_ld;
    int aux_type; /* -1: D's */
};
struct cuemu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct cuemu_lt_pref {
    size_t workspace;
};

namespace {

size_t type_bytes(int t) { return t == CUDA_R_16BF ? 2 : 4; }

float load(int type, const void *p, size_t i) {
    if (type == CUDA_R_16BF) return (float)((const __nv_bfloat16 *)p)[i];
    return ((const float *)p)[i];
}
void store(int type, void *p, size_t i, float v) {
    if (type == CUDA_R_16BF) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((float *)p)[i] = v;
}

/* fp32 to TF32 (10 explicit mantissa bits), round to nearest even, as the tensor cores take it. */
float tf32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1)) & ~0x1fffu;
    memcpy(&x, &u, sizeof x);
    return x;
}

const float GELU_SCALE = 0.7978845608028654f; /* sqrt(2 / pi) */
float gelu(float x) {
    return 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
}
float gelu_grad(float x) {
    float th = tanhf(GELU_SCALE * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + th) +
           0.5f * x * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

bool has_bias(cublasLtEpilogue_t e) {
    return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS ||
           e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}
bool has_aux(cublasLtEpilogue_t e) {
    return e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS ||
           e == CUBLASLT_EPILOGUE_DGELU;
}

/* The product's shapes: D is m x n, op(A) m x k, op(B) k x n. */
struct shape {
    uint64_t m, n, k;
};

/* Whether the library runs this: its types, shapes and epilogue. */
cublasStatus_t check(const cuemu_lt_desc *d, const cuemu_lt_layout *a, const cuemu_lt_layout *b,
                     const cuemu_lt_layout *c, const cuemu_lt_layout *dl, shape *s) {
    if (!d || !a || !b || !c || !dl) return CUBLAS_STATUS_INVALID_VALUE;
    if (a->type != b->type || c->type != dl->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (a->type == CUDA_R_32F && dl->type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (a->type == CUDA_R_16BF && d->compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (d->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    uint64_t am = d->transa == CUBLAS_OP_N ? a->rows : a->cols;
    uint64_t ak = d->transa == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t bk = d->transb == CUBLAS_OP_N ? b->rows : b->cols;
    uint64_t bn = d->transb == CUBLAS_OP_N ? b->cols : b->rows;
    if (am != dl->rows || bn != dl->cols || ak != bk || c->rows != dl->rows || c->cols != dl->cols)
        return CUBLAS_STATUS_INVALID_VALUE;
    for (const cuemu_lt_layout *l : {a, b, c, dl})
        if (l->ld < (int64_t)l->rows || l->ld < 1) return CUBLAS_STATUS_INVALID_VALUE;
    int out = dl->type;
    if (has_bias(d->epilogue) &&
        (!d->bias || (d->bias_type >= 0 ? d->bias_type : out) != out))
        return CUBLAS_STATUS_NOT_SUPPORTED; /* the bias in D's type, as the library wants it */
    if (has_aux(d->epilogue) && (!d->aux || d->aux_ld < (int64_t)dl->rows || d->aux_ld % 8 != 0 ||
                                 (d->aux_type >= 0 ? d->aux_type : out) != out))
        return CUBLAS_STATUS_NOT_SUPPORTED; /* the library's rule: an aux ld a multiple of 8 */
    *s = {dl->rows, dl->cols, ak};
    return CUBLAS_STATUS_SUCCESS;
}

/* X as stored, dense (leading dimension its rows) in fp32: the product's input. */
std::vector<float> widen(const void *x, const cuemu_lt_layout *l, bool round_tf32) {
    std::vector<float> out(l->rows * l->cols);
    for (uint64_t j = 0; j < l->cols; j++)
        for (uint64_t i = 0; i < l->rows; i++) {
            float v = load(l->type, x, i + j * (size_t)l->ld);
            out[i + j * l->rows] = round_tf32 ? tf32(v) : v;
        }
    return out;
}

size_t span_bytes(const cuemu_lt_layout *l) {
    return l->cols ? ((l->cols - 1) * (size_t)l->ld + l->rows) * type_bytes(l->type) : 0;
}

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    *handle = new cuemu_lt_context{1};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    cudaDeviceSynchronize(); /* queued products may still use it */
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    *desc = new cuemu_lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT,
                              nullptr, -1, nullptr, 0, -1};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size) {
    if (!d || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
#define SET(field, type)                                                                          \
    if (size != sizeof(type)) return CUBLAS_STATUS_INVALID_VALUE;                                 \
    memcpy(&d->field, buf, size);                                                                 \
    return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: SET(compute, cublasComputeType_t)
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: SET(scale, cudaDataType_t)
    case CUBLASLT_MATMUL_DESC_TRANSA: SET(transa, cublasOperation_t)
    case CUBLASLT_MATMUL_DESC_TRANSB: SET(transb, cublasOperation_t)
    case CUBLASLT_MATMUL_DESC_EPILOGUE: SET(epilogue, cublasLtEpilogue_t)
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: SET(bias, const void *)
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: SET(aux, void *)
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: SET(aux_ld, int64_t)
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: SET(bias_type, int32_t)
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE: SET(aux_type, int32_t)
#undef SET
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
    if (type != CUDA_R_32F && type != CUDA_R_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;
    *layout = new cuemu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    *pref = new cuemu_lt_pref{0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}
/* The alignments inform the library's choice of algorithm; one algorithm serves all here. */
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
    if (!pref || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (size != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&pref->workspace, buf, size);
        return CUBLAS_STATUS_SUCCESS;
    }
    return size == sizeof(uint32_t) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t *results, int *found) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!pref || requested < 1 || !results || !found) return CUBLAS_STATUS_INVALID_VALUE;
    *found = 0;
    shape s;
    cublasStatus_t st = check(desc, a, b, c, d, &s);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    memset(&results[0], 0, sizeof results[0]);
    results[0].state = CUBLAS_STATUS_SUCCESS, results[0].wavesCount = 1.0f;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                              const void *alpha, const void *A, cublasLtMatrixLayout_t a,
                              const void *B, cublasLtMatrixLayout_t b, const void *beta,
                              const void *C, cublasLtMatrixLayout_t c, void *D,
                              cublasLtMatrixLayout_t dl, const cublasLtMatmulAlgo_t *algo,
                              void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    (void)workspace, (void)workspace_bytes;
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!algo || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    shape s;
    cublasStatus_t st = check(desc, a, b, c, dl, &s);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    cuemu::check_device_range("cublasLtMatmul A", A, span_bytes(a));
    cuemu::check_device_range("cublasLtMatmul B", B, span_bytes(b));
    cuemu::check_device_range("cublasLtMatmul D", D, span_bytes(dl));
    float al, be;
    memcpy(&al, alpha, sizeof al); /* host scalars, read at the call as the library's */
    memcpy(&be, beta, sizeof be);
    if (be != 0.0f) cuemu::check_device_range("cublasLtMatmul C", C, span_bytes(c));
    /* what the product needs once queued: the descriptors may be destroyed right after */
    cuemu_lt_desc d = *desc;
    cuemu_lt_layout la = *a, lb = *b, lc = *c, ld = *dl;
    if (has_bias(d.epilogue))
        cuemu::check_device_range("cublasLtMatmul bias", d.bias, s.m * type_bytes(ld.type));
    if (has_aux(d.epilogue))
        cuemu::check_device_range("cublasLtMatmul aux", d.aux,
                                  ((s.n - 1) * (size_t)d.aux_ld + s.m) * type_bytes(ld.type));
    cuemu::enqueue(stream, [=] {
        bool round = d.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
        std::vector<float> x = widen(A, &la, round), y = widen(B, &lb, round);
        std::vector<float> acc(s.m * s.n, 0.0f);
        if (s.k)
            cblas_sgemm(CblasColMajor, d.transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                        d.transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, (int)s.m, (int)s.n,
                        (int)s.k, 1.0f, x.data(), (int)la.rows, y.data(), (int)lb.rows, 0.0f,
                        acc.data(), (int)s.m);
        int out = ld.type;
        for (uint64_t j = 0; j < s.n; j++)
            for (uint64_t i = 0; i < s.m; i++) {
                float v = al * acc[i + j * s.m];
                if (be != 0.0f) v += be * load(lc.type, C, i + j * (size_t)lc.ld);
                if (has_bias(d.epilogue)) v += load(out, d.bias, i);
                size_t aux_at = i + j * (size_t)d.aux_ld;
                switch (d.epilogue) {
                case CUBLASLT_EPILOGUE_GELU:
                case CUBLASLT_EPILOGUE_GELU_BIAS: v = gelu(v); break;
                case CUBLASLT_EPILOGUE_GELU_AUX:
                case CUBLASLT_EPILOGUE_GELU_AUX_BIAS:
                    store(out, d.aux, aux_at, v); /* the pre-activation, for the backward */
                    v = gelu(v);
                    break;
                case CUBLASLT_EPILOGUE_DGELU: v *= gelu_grad(load(out, d.aux, aux_at)); break;
                default: break;
                }
                store(out, D, i + j * (size_t)ld.ld, v);
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
