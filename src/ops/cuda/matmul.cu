/* The linear layers, as the CPU's: products through cuda_gemm (cuBLASLt) in the weights' type
 * (bf16 with a bf16 weight copy, else fp32), outputs in the activations' type, weight and bias
 * gradients in fp32. */
#include "ops/cuda/cuda_common.cuh"

template <typename act_t>
static void matmul_forward(gpt2_act *out, const gpt2_act *inp, const float *w,
                           const gpt2_bf16 *w_bf16, const float *bias, int N, int C, int OC,
                           float *scratch) {
    cuda_type in = w_bf16 ? CUDA_BF16 : CUDA_F32, o = act_type<act_t>();
    const void *x = product_input<act_t>(inp, in, (size_t)N * C, &scratch);
    const void *b = product_bias(bias, o, OC, &scratch);
    cuda_gemm(in, o, 0, 1, N, OC, C, x, w_bf16 ? (const void *)w_bf16 : w, b, out, 0);
}

/* The product with cuBLASLt's GELU_AUX(_BIAS) epilogue; when the library cannot take the shape
 * (the aux matrix's leading dimension, OC, must be a multiple of 8), the product then GELU. */
template <typename act_t>
static void matmul_gelu_forward(gpt2_act *pre, gpt2_act *out, const gpt2_act *inp, const float *w,
                                const gpt2_bf16 *w_bf16, const float *bias, int N, int C, int OC,
                                float *scratch) {
    if (OC % 8 != 0) {
        matmul_forward<act_t>(pre, inp, w, w_bf16, bias, N, C, OC, scratch);
        cuda_gelu_forward(out, pre, (size_t)N * OC);
        return;
    }
    cuda_type in = w_bf16 ? CUDA_BF16 : CUDA_F32, o = act_type<act_t>();
    const void *x = product_input<act_t>(inp, in, (size_t)N * C, &scratch);
    const void *b = product_bias(bias, o, OC, &scratch);
    cuda_gemm_gelu(in, o, N, OC, C, x, w_bf16 ? (const void *)w_bf16 : w, b, out, pre);
}

/* dbias[o] += sum over rows of dout[:, o], as cuda_common.cuh's column sums: chunk k's sums
 * into partial[k][o] (blockIdx.y is the chunk), then the chunks' in order. */
template <typename act_t>
__global__ void column_partials_kernel(float *partial, const act_t *dout, int N, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x, k = blockIdx.y;
    if (o >= OC) return;
    int r1 = min(N, (k + 1) * COLUMN_CHUNK_ROWS);
    float s = 0.0f;
    for (int n = k * COLUMN_CHUNK_ROWS; n < r1; n++) s += act_load(dout[(size_t)n * OC + o]);
    partial[(size_t)k * OC + o] = s;
}

__global__ void column_reduce_kernel(float *dbias, const float *partial, int chunks, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float s = 0.0f;
    for (int k = 0; k < chunks; k++) s += partial[(size_t)k * OC + o];
    dbias[o] += s;
}

template <typename act_t>
static void bias_gradient(float *dbias, const act_t *dout, int N, int OC, float *partial) {
    int chunks = (N + COLUMN_CHUNK_ROWS - 1) / COLUMN_CHUNK_ROWS;
    if (chunks == 0) return;
    column_partials_kernel<act_t><<<dim3(blocks_for((size_t)OC, 256), chunks), 256, 0,
                                    cuda_stream>>>(partial, dout, N, OC);
    CUDA_LAUNCHED();
    column_reduce_kernel<<<blocks_for((size_t)OC, 256), 256, 0, cuda_stream>>>(dbias, partial,
                                                                              chunks, OC);
    CUDA_LAUNCHED();
}

/* matmul_backward, and with pre non-NULL dinp through the GELU before the layer: the dinp
 * product's DGELU epilogue (C a multiple of 8), else the product then gelu_backward. */
template <typename act_t>
static void backward(gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout,
                     const gpt2_act *inp, const gpt2_act *pre, const float *w,
                     const gpt2_bf16 *w_bf16, int N, int C, int OC, float *scratch) {
    cuda_type in = w_bf16 ? CUDA_BF16 : CUDA_F32, o = act_type<act_t>();
    const void *wt = w_bf16 ? (const void *)w_bf16 : w;
    /* the inputs in the product's type (the scratch moves past any rounded copy), then the bias
     * gradient's partials */
    const void *dy = product_input<act_t>(dout, in, (size_t)N * OC, &scratch);
    const void *x = product_input<act_t>(inp, in, (size_t)N * C, &scratch);
    int fused = pre && C % 8 == 0;
    if (fused) cuda_gemm_dgelu(in, o, N, C, OC, dy, wt, dinp, pre);
    else cuda_gemm(in, o, 0, 0, N, C, OC, dy, wt, NULL, dinp, 0);
    cuda_gemm(in, CUDA_F32, 1, 0, OC, C, N, dy, x, NULL, dw, 1);
    if (pre && !fused) cuda_gelu_backward(dinp, pre, dinp, (size_t)N * C);
    if (dbias) bias_gradient(dbias, acts<act_t>(dout), N, OC, scratch);
}

extern "C" void cuda_matmul_forward(gpt2_act *out, const gpt2_act *inp, const float *w,
                                    const gpt2_bf16 *w_bf16, const float *bias, int N, int C,
                                    int OC, float *scratch) {
    CUDA_ACT_DISPATCH(matmul_forward, (out, inp, w, w_bf16, bias, N, C, OC, scratch));
}

extern "C" void cuda_matmul_gelu_forward(gpt2_act *pre, gpt2_act *out, const gpt2_act *inp,
                                         const float *w, const gpt2_bf16 *w_bf16,
                                         const float *bias, int N, int C, int OC, float *scratch) {
    CUDA_ACT_DISPATCH(matmul_gelu_forward, (pre, out, inp, w, w_bf16, bias, N, C, OC, scratch));
}

/* cuBLASLt's products do not promise a row the same bits whatever the row count: until a
 * kernel of our own does, this is matmul_forward (a server on the GPU is not yet bitwise equal to
 * `sample`; ops.h says so). */
extern "C" void cuda_matmul_forward_rowwise(gpt2_act *out, const gpt2_act *inp, const float *w,
                                            const gpt2_bf16 *w_bf16, const float *bias, int N,
                                            int C, int OC, float *scratch) {
    cuda_matmul_forward(out, inp, w, w_bf16, bias, N, C, OC, scratch);
}

extern "C" void cuda_matmul_backward(gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout,
                                     const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16,
                                     int N, int C, int OC, float *scratch) {
    CUDA_ACT_DISPATCH(backward, (dinp, dw, dbias, dout, inp, NULL, w, w_bf16, N, C, OC, scratch));
}

extern "C" void cuda_matmul_backward_dgelu(gpt2_act *dinp, float *dw, float *dbias,
                                           const gpt2_act *dout, const gpt2_act *inp,
                                           const gpt2_act *pre, const float *w,
                                           const gpt2_bf16 *w_bf16, int N, int C, int OC,
                                           float *scratch) {
    CUDA_ACT_DISPATCH(backward, (dinp, dw, dbias, dout, inp, pre, w, w_bf16, N, C, OC, scratch));
}

/* The products the ops above run for this layer, as they call them. */
extern "C" void cuda_prepare_linear(gpt2_product_kind kind, int N, int C, int OC, int bias,
                                    int bf16, int training) {
    cuda_type in = bf16 ? CUDA_BF16 : CUDA_F32, o = cuda_bf16_acts ? CUDA_BF16 : CUDA_F32;
    if (kind == GPT2_LINEAR_GELU && OC % 8 == 0) cuda_gemm_prepare(in, o, 0, 1, N, OC, C, bias, 1);
    else cuda_gemm_prepare(in, o, 0, 1, N, OC, C, bias, 0);
    if (!training) return;
    if (kind == GPT2_LINEAR_DGELU && C % 8 == 0) cuda_gemm_prepare(in, o, 0, 0, N, C, OC, 0, 2);
    else cuda_gemm_prepare(in, o, 0, 0, N, C, OC, 0, 0);
    cuda_gemm_prepare(in, CUDA_F32, 1, 0, OC, C, N, 0, 0);
}

extern "C" void cuda_prepare_products(const gpt2_product *products, int n, int N, int training,
                                      int bf16) {
    for (int i = 0; i < n; i++) {
        const gpt2_product *p = &products[i];
        if (p->kind == GPT2_LM_HEAD) cuda_prepare_classifier(N, p->C, p->OC, bf16, training);
        else cuda_prepare_linear(p->kind, N, p->C, p->OC, p->bias, bf16, training);
    }
}
