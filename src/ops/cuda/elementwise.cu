/* GELU (tanh form) and the residual addition: each thread takes 16 bytes of each operand in one
 * load or store (4 floats or 8 bf16: a 128-bit access, the widest a thread makes), the tail past
 * the last whole pack one value per thread. Arithmetic in fp32 whatever the activations' type. */
#include "ops/cuda/cuda_common.cuh"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

__device__ __forceinline__ float gelu(float x) {
    return 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float gelu_grad(float x) {
    float th = tanhf(GELU_SCALE * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + th) +
           0.5f * x * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

/* Each functor maps the values at one index of its operands (float) to the output's value. */
struct gelu_fwd {
    __device__ float operator()(float x, float) const { return gelu(x); }
};
struct gelu_bwd {
    __device__ float operator()(float x, float d) const { return gelu_grad(x) * d; }
};
struct add {
    __device__ float operator()(float a, float b) const { return a + b; }
};

/* out[i] = f(a[i], b[i]) (b may be NULL: f ignores it), P values a thread (one access of P
 * values each: a vec_of's alignment), the last n % P values after the whole vectors one a
 * thread. out may alias a or b: each value is read before it is written, by the same thread. */
template <typename act_t, int P, typename F>
__global__ void per_value_kernel(act_t *out, const act_t *a, const act_t *b, size_t n, F f) {
    typedef vec_of<act_t, P> vec;
    size_t whole = n / P, i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < whole) {
        vec x = ((const vec *)a)[i], y = b ? ((const vec *)b)[i] : x, o;
        for (int k = 0; k < P; k++) o.v[k] = act_store<act_t>(f(act_load(x.v[k]), act_load(y.v[k])));
        ((vec *)out)[i] = o;
    } else if (i - whole < n % P) {
        size_t j = whole * P + (i - whole);
        out[j] = act_store<act_t>(f(act_load(a[j]), b ? act_load(b[j]) : 0.0f));
    }
}

/* 128-bit accesses where all three pointers allow them (the plan's buffers and their rows do,
 * at GPT-2's widths), else one value at a time. */
template <typename act_t, typename F>
static void per_value(gpt2_act *out_, const gpt2_act *a_, const gpt2_act *b_, size_t n, F f) {
    if (!n) return;
    act_t *out = acts<act_t>(out_);
    const act_t *a = acts<act_t>(a_), *b = b_ ? acts<act_t>(b_) : nullptr;
    const int P = 16 / sizeof(act_t);
    if (aligned16(out) && aligned16(a) && aligned16(b)) {
        per_value_kernel<act_t, P, F><<<blocks_for(n / P + n % P, 256), 256, 0, cuda_stream>>>(
            out, a, b, n, f);
    } else {
        per_value_kernel<act_t, 1, F><<<blocks_for(n, 256), 256, 0, cuda_stream>>>(out, a, b, n, f);
    }
    CUDA_LAUNCHED();
}

template <typename act_t> static void gelu_forward(gpt2_act *out, const gpt2_act *inp, size_t n) {
    per_value<act_t>(out, inp, NULL, n, gelu_fwd());
}
template <typename act_t>
static void gelu_backward(gpt2_act *dinp, const gpt2_act *inp, const gpt2_act *dout, size_t n) {
    per_value<act_t>(dinp, inp, dout, n, gelu_bwd());
}
template <typename act_t>
static void residual(gpt2_act *out, const gpt2_act *a, const gpt2_act *b, size_t n) {
    per_value<act_t>(out, a, b, n, add());
}

extern "C" void cuda_gelu_forward(gpt2_act *out, const gpt2_act *inp, size_t n) {
    CUDA_ACT_DISPATCH(gelu_forward, (out, inp, n));
}

extern "C" void cuda_gelu_backward(gpt2_act *dinp, const gpt2_act *inp, const gpt2_act *dout,
                                   size_t n) {
    CUDA_ACT_DISPATCH(gelu_backward, (dinp, inp, dout, n));
}

extern "C" void cuda_residual_forward(gpt2_act *out, const gpt2_act *a, const gpt2_act *b,
                                      size_t n) {
    CUDA_ACT_DISPATCH(residual, (out, a, b, n));
}
