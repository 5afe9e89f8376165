/* gpt2c's CUDA-on-CPU runtime (src/ops/cuda/emulate/) against what CUDA says, built as the
 * backend's .cu files are (rewritten, as C++). Without arguments: the kernel language (indices,
 * shared memory static and dynamic, barriers, every shuffle and vote, warps of one block that
 * shuffle different numbers of times, atomics, bf16 rounding), launches with bad
 * configurations, streams that run only when waited for, NaN-filled memory, a missing barrier
 * showing as a wrong value in every thread order, the warp matrix functions (wmma: bf16 tiles
 * in both layouts, an fp32 accumulator loaded and stored both ways) against a float64 product,
 * and the cuBLASLt stand-in against a float64 product (transposes, types, TF32, accumulation,
 * epilogues). With a case name: a kernel bug
 * the runtime must stop with a message about (tests/CMakeLists.txt says which message). */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <mma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

extern "C" {
#include "check.h"
}

#define OK(call) CHECK((call) == cudaSuccess)

/* ---- the kernel language ---- */

__global__ void indices_kernel(int *out) {
    int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int n = blockDim.x * blockDim.y * blockDim.z;
    out[b * n + t] = b * 1000 + t;
}

__global__ void reverse_static_kernel(float *out, const float *in) {
    __shared__ float s[128];
    int t = threadIdx.x;
    s[t] = in[blockIdx.x * 128 + t];
    __syncthreads();
    out[blockIdx.x * 128 + t] = s[127 - t];
}

__global__ void reverse_dynamic_kernel(float *out, const float *in, int n) {
    extern __shared__ float dyn[];
    int t = threadIdx.x;
    dyn[t] = in[t];
    __syncthreads();
    out[t] = dyn[n - 1 - t];
}

/* A neighbour's shared value read without the barrier in between. */
__global__ void missing_barrier_kernel(float *out) {
    __shared__ float s[64];
    int t = threadIdx.x;
    s[t] = (float)t;
    out[blockIdx.x * 64 + t] = s[(t + 1) % 64];
}

__global__ void shuffles_kernel(int *out) {
    int lane = threadIdx.x % 32, t = threadIdx.x, *o = out + t * 8;
    o[0] = __shfl_xor_sync(0xffffffffu, lane * 10, 5);
    o[1] = __shfl_down_sync(0xffffffffu, lane * 10, 3);
    o[2] = __shfl_up_sync(0xffffffffu, lane * 10, 3);
    o[3] = __shfl_sync(0xffffffffu, lane * 10, 7);
    o[4] = __shfl_down_sync(0xffffffffu, lane * 10, 3, 16); /* within 16-lane halves */
    o[5] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
    o[6] = __any_sync(0xffffffffu, lane == 31) + 2 * __all_sync(0xffffffffu, lane < 31);
    /* the two halves of the warp in two groups of their own */
    unsigned half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    __syncwarp(half);
    o[7] = __shfl_sync(half, lane, (lane & 16) + 1);
}

/* Warp w reduces w + 1 times: warps of one block meeting different numbers of shuffles. */
__global__ void uneven_warps_kernel(float *out) {
    int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    float x = (float)lane;
    for (int k = 0; k <= w; k++)
        for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    if (lane == 0) out[w] = x;
}

__global__ void atomics_kernel(float *fsum, int *isum, int *imax, unsigned *cas) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(fsum, 0.5f);
    atomicAdd(isum, t);
    atomicMax(imax, (t * 37) % 101);
    unsigned old = *cas, seen;
    while ((seen = atomicCAS(cas, old, old + 1)) != old) old = seen;
}

static void test_language(void) {
    int *d_idx;
    OK(cudaMalloc((void **)&d_idx, 2 * 3 * 4 * 2 * 2 * sizeof(int)));
    indices_kernel<<<dim3(2, 3), dim3(4, 2, 2)>>>(d_idx);
    OK(cudaGetLastError());
    std::vector<int> idx(96);
    OK(cudaMemcpy(idx.data(), d_idx, 96 * sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < 96; i++) CHECK(idx[i] == i / 16 * 1000 + i % 16);
    OK(cudaFree(d_idx));

    std::vector<float> in(256), out(256);
    for (int i = 0; i < 256; i++) in[i] = (float)i;
    float *d_in, *d_out;
    OK(cudaMalloc((void **)&d_in, 256 * sizeof(float)));
    OK(cudaMalloc((void **)&d_out, 256 * sizeof(float)));
    OK(cudaMemcpy(d_in, in.data(), 256 * sizeof(float), cudaMemcpyHostToDevice));
    reverse_static_kernel<<<2, 128>>>(d_out, d_in);
    OK(cudaMemcpy(out.data(), d_out, 256 * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < 256; i++) CHECK(out[i] == (float)(i / 128 * 128 + 127 - i % 128));
    /* 64 KB of dynamic shared memory: refused until the kernel is allowed more than 48 KB */
    int n = 16384;
    std::vector<float> big(n), got(n);
    for (int i = 0; i < n; i++) big[i] = (float)i;
    float *d_big, *d_got;
    OK(cudaMalloc((void **)&d_big, n * sizeof(float)));
    OK(cudaMalloc((void **)&d_got, n * sizeof(float)));
    OK(cudaMemcpy(d_big, big.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    reverse_dynamic_kernel<<<1, 1024, n * sizeof(float)>>>(d_got, d_big, 1024);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    OK(cudaFuncSetAttribute(reverse_dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int)(n * sizeof(float))));
    reverse_dynamic_kernel<<<1, 1024, n * sizeof(float)>>>(d_got, d_big, 1024);
    OK(cudaGetLastError());
    OK(cudaMemcpy(got.data(), d_got, 1024 * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < 1024; i++) CHECK(got[i] == (float)(1023 - i));
    OK(cudaFree(d_big));
    OK(cudaFree(d_got));

    /* a missing barrier reads a neighbour's slot before it is written: NaN, in every order */
    missing_barrier_kernel<<<4, 64>>>(d_out);
    OK(cudaMemcpy(out.data(), d_out, 256 * sizeof(float), cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int i = 0; i < 256; i++) wrong += !(out[i] == (float)((i % 64 + 1) % 64));
    CHECK(wrong > 0);
    OK(cudaFree(d_in));
    OK(cudaFree(d_out));

    int *d_sh;
    OK(cudaMalloc((void **)&d_sh, 64 * 8 * sizeof(int)));
    shuffles_kernel<<<1, 64>>>(d_sh);
    std::vector<int> sh(64 * 8);
    OK(cudaMemcpy(sh.data(), d_sh, sh.size() * sizeof(int), cudaMemcpyDeviceToHost));
    unsigned every_third = 0;
    for (int l = 0; l < 32; l += 3) every_third |= 1u << l;
    for (int t = 0; t < 64; t++) {
        int l = t % 32, *o = &sh[t * 8];
        CHECK(o[0] == (l ^ 5) * 10);
        CHECK(o[1] == (l + 3 < 32 ? l + 3 : l) * 10);
        CHECK(o[2] == (l >= 3 ? l - 3 : l) * 10);
        CHECK(o[3] == 70);
        CHECK(o[4] == ((l % 16) + 3 < 16 ? l + 3 : l) * 10);
        CHECK((unsigned)o[5] == every_third);
        CHECK(o[6] == 1);
        CHECK(o[7] == (l & 16) + 1);
    }
    OK(cudaFree(d_sh));

    float *d_w;
    OK(cudaMalloc((void **)&d_w, 4 * sizeof(float)));
    uneven_warps_kernel<<<1, 128>>>(d_w);
    float w[4];
    OK(cudaMemcpy(w, d_w, sizeof w, cudaMemcpyDeviceToHost));
    for (int k = 0; k < 4; k++) CHECK(w[k] == 496.0f * powf(32.0f, (float)k)); /* sum 0..31 */
    OK(cudaFree(d_w));

    void *d_at;
    OK(cudaMalloc(&d_at, 16));
    OK(cudaMemset(d_at, 0, 16));
    atomics_kernel<<<3, 96>>>((float *)d_at, (int *)d_at + 1, (int *)d_at + 2, (unsigned *)d_at + 3);
    int at[4];
    OK(cudaMemcpy(at, d_at, 16, cudaMemcpyDeviceToHost));
    float fsum;
    memcpy(&fsum, &at[0], 4);
    CHECK(fsum == 144.0f && at[1] == 287 * 288 / 2 && at[2] == 100 && at[3] == 288);
    OK(cudaFree(d_at));
}

static void test_bf16(void) {
    const uint32_t cases[][2] = {
        {0x3f800000u, 0x3f80}, {0x3f808000u, 0x3f80}, /* a tie rounds to even */
        {0x3f818000u, 0x3f82}, {0x3f808001u, 0x3f81}, {0x7f7fffffu, 0x7f80}, /* to infinity */
        {0xff800000u, 0xff80}, {0x7fc00001u, 0x7fc0}, /* NaN stays NaN */
    };
    for (const auto &c : cases) {
        float f;
        memcpy(&f, &c[0], 4);
        __nv_bfloat16 h = __float2bfloat16_rn(f);
        CHECK(__bfloat16_as_ushort(h) == c[1]);
    }
    CHECK(isnan(__bfloat162float(__float2bfloat16_rn(NAN))));
    CHECK(__bfloat162float(__hadd(__float2bfloat16_rn(1.0f), __float2bfloat16_rn(0.00390625f))) == 1.0f);
}

__global__ void bad_config_kernel(int *p) { p[0] = 1; }

static void test_launch_errors(void) {
    int *p;
    OK(cudaMalloc((void **)&p, sizeof(int)));
    bad_config_kernel<<<1, 1025>>>(p);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    bad_config_kernel<<<0, 32>>>(p);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    CHECK(cudaGetLastError() == cudaSuccess); /* read once, then cleared */
    OK(cudaFree(p));
}

/* ---- streams, events, memory ---- */

__global__ void fill_kernel(float *p, float v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = v;
}

static void test_streams(void) {
    const int n = 1000;
    float *d;
    OK(cudaMalloc((void **)&d, n * sizeof(float)));
    /* fresh device memory is NaN */
    std::vector<float> host(n);
    OK(cudaMemcpy(host.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) CHECK(isnan(host[i]));

    cudaStream_t a, b;
    OK(cudaStreamCreate(&a));
    OK(cudaStreamCreate(&b));
    float *pinned;
    OK(cudaMallocHost((void **)&pinned, n * sizeof(float)));
    for (int i = 0; i < n; i++) pinned[i] = -1.0f;
    /* queued work has not run until someone waits: a copy into pinned memory leaves it as it was */
    fill_kernel<<<4, 256, 0, a>>>(d, 3.0f, n);
    OK(cudaMemcpyAsync(pinned, d, n * sizeof(float), cudaMemcpyDeviceToHost, a));
    CHECK(pinned[0] == -1.0f && pinned[n - 1] == -1.0f);
    OK(cudaStreamSynchronize(a));
    CHECK(pinned[0] == 3.0f && pinned[n - 1] == 3.0f);
    /* a copy into pageable memory returns once done, as CUDA's */
    fill_kernel<<<4, 256, 0, a>>>(d, 4.0f, n);
    OK(cudaMemcpyAsync(host.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost, a));
    CHECK(host[0] == 4.0f);
    /* a copy from pageable memory takes the bytes at the call */
    for (int i = 0; i < n; i++) host[i] = 5.0f;
    OK(cudaMemcpyAsync(d, host.data(), n * sizeof(float), cudaMemcpyHostToDevice, a));
    host[0] = 6.0f;
    OK(cudaMemcpyAsync(pinned, d, sizeof(float), cudaMemcpyDeviceToHost, a));
    OK(cudaStreamSynchronize(a));
    CHECK(pinned[0] == 5.0f);
    /* another stream sees a's work only through an event */
    cudaEvent_t e;
    OK(cudaEventCreate(&e));
    fill_kernel<<<4, 256, 0, a>>>(d, 7.0f, n);
    OK(cudaMemcpyAsync(pinned, d, sizeof(float), cudaMemcpyDeviceToHost, b));
    OK(cudaStreamSynchronize(b));
    CHECK(pinned[0] == 5.0f); /* b did not wait: a's fill has not run */
    OK(cudaEventRecord(e, a));
    OK(cudaStreamWaitEvent(b, e, 0));
    OK(cudaMemcpyAsync(pinned, d, sizeof(float), cudaMemcpyDeviceToHost, b));
    OK(cudaStreamSynchronize(b));
    CHECK(pinned[0] == 7.0f);
    /* a memset queued, the memory read without waiting: the old values */
    OK(cudaMemsetAsync(d, 0, n * sizeof(float), a));
    CHECK(d[0] == 7.0f);
    OK(cudaDeviceSynchronize());
    CHECK(d[0] == 0.0f);
    OK(cudaEventDestroy(e));
    OK(cudaStreamDestroy(a));
    OK(cudaStreamDestroy(b));
    OK(cudaFreeHost(pinned));
    OK(cudaFree(d));
    size_t free_bytes, total;
    OK(cudaMemGetInfo(&free_bytes, &total));
    CHECK(free_bytes > 0 && free_bytes <= total);
}

/* ---- the cuBLASLt stand-in ---- */

struct matrix {
    std::vector<float> v; /* column-major values, as stored (bf16-rounded where bf16) */
    void *dev;
    cudaDataType_t type;
    int rows, cols;
};

static float bf16_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

static matrix make_matrix(int rows, int cols, cudaDataType_t type, unsigned *seed) {
    matrix m{std::vector<float>((size_t)rows * cols), nullptr, type, rows, cols};
    size_t bytes = m.v.size() * (type == CUDA_R_16BF ? 2 : 4);
    std::vector<unsigned char> raw(bytes);
    for (size_t i = 0; i < m.v.size(); i++) {
        *seed = *seed * 1664525u + 1013904223u;
        float x = ((float)(*seed >> 8) / 16777216.0f - 0.5f) * 2.0f;
        if (type == CUDA_R_16BF) {
            __nv_bfloat16 h = __float2bfloat16_rn(x);
            memcpy(&raw[i * 2], &h, 2);
            x = __bfloat162float(h);
        } else memcpy(&raw[i * 4], &x, 4);
        m.v[i] = x;
    }
    OK(cudaMalloc(&m.dev, bytes));
    OK(cudaMemcpy(m.dev, raw.data(), bytes, cudaMemcpyHostToDevice));
    return m;
}

static std::vector<float> read_matrix(const matrix &m) {
    size_t n = m.v.size(), bytes = n * (m.type == CUDA_R_16BF ? 2 : 4);
    std::vector<unsigned char> raw(bytes);
    OK(cudaMemcpy(raw.data(), m.dev, bytes, cudaMemcpyDeviceToHost));
    std::vector<float> out(n);
    for (size_t i = 0; i < n; i++) {
        if (m.type == CUDA_R_16BF) {
            __nv_bfloat16 h;
            memcpy(&h, &raw[i * 2], 2);
            out[i] = __bfloat162float(h);
        } else memcpy(&out[i], &raw[i * 4], 4);
    }
    return out;
}

static double gelu_ref(double x) {
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
static double gelu_grad_ref(double x) {
    double th = tanh(0.7978845608028654 * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + th) +
           0.5 * x * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}
static float tf32_ref(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0xfffu + ((u >> 13) & 1)) & ~0x1fffu;
    memcpy(&x, &u, 4);
    return x;
}

/* The heuristic's answer for a product, as a caller asks it (found: how many algorithms). */
static cublasStatus_t heuristic(cublasLtHandle_t lt, cublasLtMatmulDesc_t desc,
                                cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                                cublasLtMatrixLayout_t ld, cublasLtMatmulHeuristicResult_t *h,
                                int *found) {
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, h, found);
    cublasLtMatmulPreferenceDestroy(pref);
    return st;
}

/* One product through the stand-in, against float64 of the same stored inputs. */
static void check_lt(cublasLtHandle_t lt, int ta, int tb, cudaDataType_t in, cudaDataType_t out,
                     cublasComputeType_t compute, cublasLtEpilogue_t epi, float beta,
                     unsigned seed) {
    const int m = 8, n = 5, k = 9; /* (m: the aux matrix's leading dimension, a multiple of 8) */
    matrix A = make_matrix(ta ? k : m, ta ? m : k, in, &seed);
    matrix B = make_matrix(tb ? n : k, tb ? k : n, in, &seed);
    matrix D = make_matrix(m, n, out, &seed);
    matrix bias = make_matrix(m, 1, out, &seed);
    matrix aux = make_matrix(m, n, out, &seed);
    std::vector<float> d0 = D.v, aux0 = aux.v;
    cublasLtMatmulDesc_t desc;
    CHECK(cublasLtMatmulDescCreate(&desc, compute, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias.dev, sizeof bias.dev);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux.dev, sizeof aux.dev);
    int64_t ld = m;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld);
    cublasLtMatrixLayout_t la, lb, ldd;
    cublasLtMatrixLayoutCreate(&la, in, A.rows, A.cols, A.rows);
    cublasLtMatrixLayoutCreate(&lb, in, B.rows, B.cols, B.rows);
    cublasLtMatrixLayoutCreate(&ldd, out, m, n, m);
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    CHECK(heuristic(lt, desc, la, lb, ldd, &h, &found) == CUBLAS_STATUS_SUCCESS);
    CHECK(found == 1);
    float alpha = 1.5f;
    CHECK(cublasLtMatmul(lt, desc, &alpha, A.dev, la, B.dev, lb, &beta, D.dev, ldd, D.dev, ldd,
                         &h.algo, nullptr, 0, nullptr) == CUBLAS_STATUS_SUCCESS);
    std::vector<float> got = read_matrix(D), got_aux = read_matrix(aux);
    bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                float a = ta ? A.v[p + (size_t)i * k] : A.v[i + (size_t)p * m];
                float b = tb ? B.v[j + (size_t)p * n] : B.v[p + (size_t)j * k];
                acc += (double)(tf32 ? tf32_ref(a) : a) * (tf32 ? tf32_ref(b) : b);
            }
            double v = alpha * acc + beta * d0[i + (size_t)j * m], want_aux = aux0[i + (size_t)j * m];
            if (epi == CUBLASLT_EPILOGUE_BIAS || epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) v += bias.v[i];
            if (epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) want_aux = v, v = gelu_ref(v);
            if (epi == CUBLASLT_EPILOGUE_DGELU) v *= gelu_grad_ref(aux0[i + (size_t)j * m]);
            double tol = out == CUDA_R_16BF ? 1e-2 : 1e-5;
            double g = got[i + (size_t)j * m], ga = got_aux[i + (size_t)j * m];
            if (fabs(g - v) > tol * (1 + fabs(v)) ||
                fabs(ga - (out == CUDA_R_16BF ? bf16_round((float)want_aux) : want_aux)) >
                    tol * (1 + fabs(want_aux))) {
                fprintf(stderr, "cuBLASLt stand-in ta=%d tb=%d in=%d out=%d compute=%d epi=%d "
                                "beta=%g: D[%d,%d] %g want %g, aux %g want %g\n",
                        ta, tb, in, out, compute, epi, beta, i, j, g, v, ga, want_aux);
                CHECK(0);
                i = m, j = n;
            }
        }
    /* the bias in another type than D's is not what the library takes */
    if (out == CUDA_R_16BF && epi == CUBLASLT_EPILOGUE_BIAS) {
        cudaDataType_t f32 = CUDA_R_32F;
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &f32, sizeof f32);
        CHECK(heuristic(lt, desc, la, lb, ldd, &h, &found) == CUBLAS_STATUS_NOT_SUPPORTED);
    }
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(ldd);
    cublasLtMatmulDescDestroy(desc);
    for (matrix *x : {&A, &B, &D, &bias, &aux}) OK(cudaFree(x->dev));
}

/* Stream capture and graphs: captured work runs only when the graph is launched, every launch
 * runs it again in order, and a call that would wait for the device spoils the capture. */
__global__ void add_one_kernel(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}

static void test_graphs(void) {
    const int n = 300;
    float *d, *pinned;
    std::vector<float> host(n);
    OK(cudaMalloc((void **)&d, n * sizeof(float)));
    OK(cudaMallocHost((void **)&pinned, n * sizeof(float)));
    cudaStream_t s;
    OK(cudaStreamCreate(&s));
    OK(cudaMemsetAsync(d, 0, n * sizeof(float), s));
    OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    add_one_kernel<<<2, 256, 0, s>>>(d, n);
    add_one_kernel<<<2, 256, 0, s>>>(d, n);
    OK(cudaMemcpyAsync(pinned, d, n * sizeof(float), cudaMemcpyDeviceToHost, s));
    cudaGraph_t graph;
    OK(cudaStreamEndCapture(s, &graph));
    OK(cudaMemcpy(host.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK(host[0] == 0.0f && host[n - 1] == 0.0f); /* captured, not run */
    cudaGraphExec_t exec;
    OK(cudaGraphInstantiate(&exec, graph, 0));
    OK(cudaGraphDestroy(graph));
    OK(cudaGraphLaunch(exec, s));
    OK(cudaGraphLaunch(exec, s));
    OK(cudaStreamSynchronize(s));
    CHECK(pinned[0] == 4.0f && pinned[n - 1] == 4.0f); /* two launches of two additions */
    OK(cudaGraphExecDestroy(exec));

    /* what waits for the device is refused inside a capture, and spoils it */
    OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    add_one_kernel<<<2, 256, 0, s>>>(d, n);
    CHECK(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported);
    CHECK(cudaGetLastError() == cudaErrorStreamCaptureUnsupported);
    CHECK(cudaMemcpyAsync(host.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost, s) ==
          cudaErrorStreamCaptureUnsupported);
    cudaGetLastError();
    CHECK(cudaStreamEndCapture(s, &graph) == cudaErrorStreamCaptureInvalidated && !graph);
    cudaGetLastError();
    OK(cudaMemcpy(host.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK(host[0] == 4.0f); /* the spoiled capture's work never ran */
    /* the legacy default stream cannot be captured */
    CHECK(cudaStreamBeginCapture(0, cudaStreamCaptureModeThreadLocal) == cudaErrorStreamCaptureUnsupported);
    cudaGetLastError();
    OK(cudaStreamDestroy(s));
    OK(cudaFreeHost(pinned));
    OK(cudaFree(d));
}

static void test_cublaslt(void) {
    cublasLtHandle_t lt;
    CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS);
    unsigned seed = 1;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_lt(lt, ta, tb, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DEFAULT, 0.0f, seed++);
            check_lt(lt, ta, tb, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLASLT_EPILOGUE_BIAS, 1.0f, seed++);
            check_lt(lt, ta, tb, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DEFAULT, 1.0f, seed++);
            check_lt(lt, ta, tb, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_BIAS, 0.0f, seed++);
            check_lt(lt, ta, tb, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_GELU_AUX_BIAS, 0.0f, seed++);
            check_lt(lt, ta, tb, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DGELU, 0.0f, seed++);
        }
    /* an aux leading dimension that is not a multiple of 8 is not what the library takes */
    cublasLtMatmulDesc_t desc;
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_GELU_AUX;
    void *aux;
    OK(cudaMalloc(&aux, 7 * 5 * sizeof(float)));
    int64_t ld = 7;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld);
    cublasLtMatrixLayout_t la, lb, ld7;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, 7, 9, 7);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, 9, 5, 9);
    cublasLtMatrixLayoutCreate(&ld7, CUDA_R_32F, 7, 5, 7);
    cublasLtMatmulHeuristicResult_t h;
    int found = 1;
    CHECK(heuristic(lt, desc, la, lb, ld7, &h, &found) == CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(found == 0);
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(ld7);
    cublasLtMatmulDescDestroy(desc);
    OK(cudaFree(aux));
    CHECK(cublasLtDestroy(lt) == CUBLAS_STATUS_SUCCESS);
}

/* ---- the warp matrix functions ---- */

/* D = A B + C for one 16 x 16 x 16 tile: A bf16 row-major (ldm 16), B bf16 column-major (ldm
 * 24), C fp32 column-major (ldm 20), D stored row-major (ldm 16), all through shared memory. */
__global__ void wmma_kernel(float *d, const float *a, const float *b, const float *c) {
    using namespace nvcuda;
    __shared__ __align__(32) __nv_bfloat16 sa[16 * 16];
    __shared__ __align__(32) __nv_bfloat16 sb[16 * 24];
    __shared__ __align__(32) float sc[16 * 20];
    __shared__ __align__(32) float sd[16 * 16];
    for (int i = threadIdx.x; i < 16 * 16; i += 32) {
        int r = i / 16, k = i % 16;
        sa[r * 16 + k] = __float2bfloat16_rn(a[i]);         /* a[r][k] */
        sb[r * 24 + k] = __float2bfloat16_rn(b[k * 16 + r]); /* b[k][r]: column r of B */
        sc[k * 20 + r] = c[i];                                /* c[r][k], column-major */
    }
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(fa, sa, 16);
    wmma::load_matrix_sync(fb, sb, 24);
    wmma::load_matrix_sync(acc, sc, 20, wmma::mem_col_major);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(sd, acc, 16, wmma::mem_row_major);
    __syncwarp(); /* each lane stored its part */
    for (int i = threadIdx.x; i < 16 * 16; i += 32) d[i] = sd[i];
}

static void test_wmma(void) {
    float a[256], b[256], c[256], d[256];
    unsigned seed = 7;
    for (int i = 0; i < 256; i++) {
        seed = seed * 1103515245u + 12345u;
        a[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
        seed = seed * 1103515245u + 12345u;
        b[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
        c[i] = (float)(i % 7) - 3.0f;
    }
    float *da, *db, *dc, *dd;
    OK(cudaMalloc((void **)&da, sizeof a));
    OK(cudaMalloc((void **)&db, sizeof b));
    OK(cudaMalloc((void **)&dc, sizeof c));
    OK(cudaMalloc((void **)&dd, sizeof d));
    OK(cudaMemcpy(da, a, sizeof a, cudaMemcpyHostToDevice));
    OK(cudaMemcpy(db, b, sizeof b, cudaMemcpyHostToDevice));
    OK(cudaMemcpy(dc, c, sizeof c, cudaMemcpyHostToDevice));
    wmma_kernel<<<1, 32>>>(dd, da, db, dc);
    OK(cudaMemcpy(d, dd, sizeof d, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 16; n++) {
            double want = c[r * 16 + n];
            for (int k = 0; k < 16; k++)
                want += (double)bf16_round(a[r * 16 + k]) * bf16_round(b[k * 16 + n]);
            worst = fmax(worst, fabs(d[r * 16 + n] - want));
        }
    CHECK(worst < 1e-5);
    OK(cudaFree(da));
    OK(cudaFree(db));
    OK(cudaFree(dc));
    OK(cudaFree(dd));
}

/* ---- the bugs the runtime must stop on (one a run: each ends the process) ---- */

__global__ void early_exit_shuffle_kernel(float *out) {
    int lane = threadIdx.x % 32;
    if (lane >= 16) return; /* half the warp leaves, the other half reduces over all 32 */
    float x = 1.0f;
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    out[threadIdx.x] = x;
}
__global__ void different_barriers_kernel(float *out) {
    if (threadIdx.x < 32) {
        out[threadIdx.x] = 1.0f;
        __syncthreads();
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}
__global__ void exited_before_barrier_kernel(float *out) {
    if (threadIdx.x >= 64) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}
__global__ void shuffle_outside_mask_kernel(float *out) {
    int lane = threadIdx.x % 32;
    if (lane < 16) out[lane] = __shfl_sync(0x0000ffffu, 1.0f, 20);
}
__global__ void write_past_kernel(float *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f; /* one past the end */
}

__global__ void wmma_missing_lanes_kernel(float *out) {
    using namespace nvcuda;
    __shared__ __align__(32) float tile[16 * 16];
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 1.0f);
    if (threadIdx.x % 32 >= 16) return; /* half the warp leaves before a warp-wide store */
    wmma::store_matrix_sync(tile, acc, 16, wmma::mem_row_major);
    out[threadIdx.x] = tile[threadIdx.x];
}
__global__ void wmma_misaligned_kernel(float *out) {
    using namespace nvcuda;
    __shared__ __align__(32) float tile[16 * 17];
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 1.0f);
    wmma::store_matrix_sync(tile + 1, acc, 16, wmma::mem_row_major); /* 4 bytes past 32 */
    __syncwarp();
    out[threadIdx.x] = tile[threadIdx.x];
}

static int run_bug(const char *name) {
    float *d;
    OK(cudaMalloc((void **)&d, 100 * sizeof(float)));
    if (!strcmp(name, "early_exit_shuffle")) early_exit_shuffle_kernel<<<1, 64>>>(d);
    else if (!strcmp(name, "different_barriers")) different_barriers_kernel<<<1, 64>>>(d);
    else if (!strcmp(name, "exited_before_barrier")) exited_before_barrier_kernel<<<1, 96>>>(d);
    else if (!strcmp(name, "shuffle_outside_mask")) shuffle_outside_mask_kernel<<<1, 32>>>(d);
    else if (!strcmp(name, "write_past")) write_past_kernel<<<1, 128>>>(d, 100);
    else if (!strcmp(name, "wmma_missing_lanes")) wmma_missing_lanes_kernel<<<1, 32>>>(d);
    else if (!strcmp(name, "wmma_misaligned")) wmma_misaligned_kernel<<<1, 32>>>(d);
    else if (!strcmp(name, "copy_past")) {
        float host[101];
        OK(cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost));
    } else {
        fprintf(stderr, "no bug case '%s'\n", name);
        return 2;
    }
    cudaDeviceSynchronize();
    fprintf(stderr, "bug case %s ran to its end: the runtime did not stop it\n", name);
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 2) return run_bug(argv[1]);
    test_language();
    test_bf16();
    test_wmma();
    test_launch_errors();
    test_streams();
    test_graphs();
    test_cublaslt();
    return check_done();
}
