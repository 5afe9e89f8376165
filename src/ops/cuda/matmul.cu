/* The linear layers, as the CPU's: products through cuda_gemm (cuBLASLt), bf16 inputs rounded
 * here when a bf16 weight copy is given. */
#include <cuda_bf16.h>

#include "ops/cuda/cuda_common.cuh"

/* A forward product's input as cuBLASLt takes it: the activations themselves in fp32, or
 * rounded to bf16 into the scratch when a bf16 weight copy is given. */
static const void *product_input(const gpt2_act *inp, const gpt2_bf16 *w_bf16, size_t n,
                                 float *scratch) {
    if (!w_bf16) return cuda_cf(inp);
    gpt2_bf16 *inp_bf16 = (gpt2_bf16 *)scratch;
    cuda_to_bf16(inp_bf16, cuda_cf(inp), n);
    return inp_bf16;
}

extern "C" void cuda_matmul_forward(gpt2_act *out, const gpt2_act *inp, const float *w,
                                    const gpt2_bf16 *w_bf16, const float *bias, int N, int C,
                                    int OC, float *scratch) {
    const void *x = product_input(inp, w_bf16, (size_t)N * C, scratch);
    cuda_gemm(w_bf16 != NULL, 0, 1, N, OC, C, x, w_bf16 ? (const void *)w_bf16 : w, bias,
              cuda_f(out), 0);
}

/* The product with cuBLASLt's GELU_AUX(_BIAS) epilogue; when the library cannot take the shape
 * (the aux matrix's leading dimension, OC, must be a multiple of 8), the product then GELU. */
extern "C" void cuda_matmul_gelu_forward(gpt2_act *pre, gpt2_act *out, const gpt2_act *inp,
                                         const float *w, const gpt2_bf16 *w_bf16,
                                         const float *bias, int N, int C, int OC, float *scratch) {
    if (OC % 8 != 0) {
        cuda_matmul_forward(pre, inp, w, w_bf16, bias, N, C, OC, scratch);
        cuda_gelu_forward(out, pre, (size_t)N * OC);
        return;
    }
    const void *x = product_input(inp, w_bf16, (size_t)N * C, scratch);
    cuda_gemm_gelu(w_bf16 != NULL, N, OC, C, x, w_bf16 ? (const void *)w_bf16 : w, bias,
                   cuda_f(out), cuda_f(pre));
}

/* cuBLASLt's products do not promise a row the same bits whatever the row count: until a
 * kernel of our own does, this is matmul_forward (a server on the GPU is not yet bitwise equal to
 * `sample`; ops.h says so). */
extern "C" void cuda_matmul_forward_rowwise(gpt2_act *out, const gpt2_act *inp, const float *w,
                                         const gpt2_bf16 *w_bf16, const float *bias, int N,
                                         int C, int OC, float *scratch) {
    cuda_matmul_forward(out, inp, w, w_bf16, bias, N, C, OC, scratch);
}

/* dbias[o] += sum over rows of dout[:, o], as cuda_common.cuh's column sums: chunk k's sums
 * into partial[k][o] (blockIdx.y is the chunk), then the chunks' in order. */
__global__ void column_partials_kernel(float *partial, const float *dout, int N, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x, k = blockIdx.y;
    if (o >= OC) return;
    int r1 = min(N, (k + 1) * COLUMN_CHUNK_ROWS);
    float s = 0.0f;
    for (int n = k * COLUMN_CHUNK_ROWS; n < r1; n++) s += dout[(size_t)n * OC + o];
    partial[(size_t)k * OC + o] = s;
}

__global__ void column_reduce_kernel(float *dbias, const float *partial, int chunks, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float s = 0.0f;
    for (int k = 0; k < chunks; k++) s += partial[(size_t)k * OC + o];
    dbias[o] += s;
}

static void bias_gradient(float *dbias, const float *dout, int N, int OC, float *partial) {
    int chunks = (N + COLUMN_CHUNK_ROWS - 1) / COLUMN_CHUNK_ROWS;
    if (chunks == 0) return;
    column_partials_kernel<<<dim3(blocks_for((size_t)OC, 256), chunks), 256, 0, cuda_stream>>>(
        partial, dout, N, OC);
    CUDA_LAUNCHED();
    column_reduce_kernel<<<blocks_for((size_t)OC, 256), 256, 0, cuda_stream>>>(dbias, partial,
                                                                              chunks, OC);
    CUDA_LAUNCHED();
}

/* matmul_backward, and with pre non-NULL dinp through the GELU before the layer: the dinp
 * product's DGELU epilogue (C a multiple of 8), else the product then gelu_backward. */
static void backward(gpt2_act *dinp_, float *dw, float *dbias, const gpt2_act *dout_,
                     const gpt2_act *inp_, const gpt2_act *pre_, const float *w,
                     const gpt2_bf16 *w_bf16, int N, int C, int OC, float *scratch) {
    float *dinp = cuda_f(dinp_);
    const float *dout = cuda_cf(dout_), *inp = cuda_cf(inp_), *pre = cuda_cf(pre_);
    int fused = pre && C % 8 == 0;
    float *partial = scratch; /* the bias gradient's, after the bf16 copies when there are some */
    if (w_bf16) {
        gpt2_bf16 *dout_bf16 = (gpt2_bf16 *)scratch, *inp_bf16 = bf16_after(dout_bf16, (size_t)N * OC);
        partial = (float *)bf16_after(inp_bf16, (size_t)N * C);
        cuda_to_bf16(dout_bf16, dout, (size_t)N * OC);
        cuda_to_bf16(inp_bf16, inp, (size_t)N * C);
        if (fused) cuda_gemm_dgelu(1, N, C, OC, dout_bf16, w_bf16, dinp, pre);
        else cuda_gemm(1, 0, 0, N, C, OC, dout_bf16, w_bf16, NULL, dinp, 0);
        cuda_gemm(1, 1, 0, OC, C, N, dout_bf16, inp_bf16, NULL, dw, 1);
    } else {
        if (fused) cuda_gemm_dgelu(0, N, C, OC, dout, w, dinp, pre);
        else cuda_gemm(0, 0, 0, N, C, OC, dout, w, NULL, dinp, 0);
        cuda_gemm(0, 1, 0, OC, C, N, dout, inp, NULL, dw, 1);
    }
    if (pre && !fused) cuda_gelu_backward(dinp_, pre_, dinp_, (size_t)N * C);
    if (dbias) bias_gradient(dbias, dout, N, OC, partial);
}

extern "C" void cuda_matmul_backward(gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout,
                                     const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16,
                                     int N, int C, int OC, float *scratch) {
    backward(dinp, dw, dbias, dout, inp, NULL, w, w_bf16, N, C, OC, scratch);
}

extern "C" void cuda_matmul_backward_dgelu(gpt2_act *dinp, float *dw, float *dbias,
                                           const gpt2_act *dout, const gpt2_act *inp,
                                           const gpt2_act *pre, const float *w,
                                           const gpt2_bf16 *w_bf16, int N, int C, int OC,
                                           float *scratch) {
    backward(dinp, dw, dbias, dout, inp, pre, w, w_bf16, N, C, OC, scratch);
}
