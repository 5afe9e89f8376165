/* Causal self-attention, one warp per query row, streaming over the keys with a running max and
 * sum (the online softmax of FlashAttention): no T x T matrix in memory, only each row's
 * log-sum-exp for the backward, which recomputes the probabilities (one warp per query row for
 * dq, one per key row for dk and dv: no atomics). Each lane holds hs/32 of the head's channels.
 * This is the correct-first kernel: one key at a time per warp, no tiling in shared memory and
 * no tensor cores (a tiled FlashAttention-2 kernel or cuDNN's fused attention is the next
 * step). */
#include "ops/cuda/cuda_common.cuh"

#define R_MAX (CUDA_ATTN_MAX_HS / 32)

/* The backend refuses other models when they are made (cuda_check_shapes), so a head size
 * that reaches a kernel is one it handles. */
extern "C" int cuda_check_shapes(int n_embd, int n_head, gpt2c_error *err) {
    int hs = n_embd / n_head;
    if (hs % 32 == 0 && hs <= CUDA_ATTN_MAX_HS) return 0;
    snprintf(err->msg, sizeof err->msg, "the CUDA attention needs a head size (n_embd / n_head) "
             "that is a multiple of 32 up to %d; this model's is %d: use --device cpu",
             CUDA_ATTN_MAX_HS, hs);
    return -1;
}

/* dot product of this lane's parts, summed over the warp */
__device__ __forceinline__ float warp_dot(const float *a, const float *b, int R) {
    float s = 0.0f;
    for (int i = 0; i < R; i++) s += a[i] * b[i];
    return warp_sum(s);
}

/* Rows: (b, h, t) -> one warp. q, k, v of position u of batch b: qkv + (b*T + u)*3C + {0,C,2C}
 * + h*hs. */
__global__ void attention_forward_kernel(float *out, float *lse, const float *qkv, int B, int T,
                                         int C, int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH, R = hs / 32;
    float scale = rsqrtf((float)hs);
    const float *base = qkv + (size_t)b * T * 3 * C + h * hs;
    float q[R_MAX], acc[R_MAX], kv[R_MAX];
    for (int i = 0; i < R; i++) q[i] = base[(size_t)t * 3 * C + lane + 32 * i] * scale, acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int u = 0; u <= t; u++) {
        const float *k = base + (size_t)u * 3 * C + C, *v = k + C;
        for (int i = 0; i < R; i++) kv[i] = k[lane + 32 * i];
        float s = warp_dot(q, kv, R);
        float m_new = fmaxf(m, s), corr = expf(m - m_new), p = expf(s - m_new);
        l = l * corr + p;
        for (int i = 0; i < R; i++) acc[i] = acc[i] * corr + p * v[lane + 32 * i];
        m = m_new;
    }
    float *o = out + ((size_t)b * T + t) * C + h * hs;
    for (int i = 0; i < R; i++) o[lane + 32 * i] = acc[i] / l;
    if (lane == 0) lse[row] = m + logf(l);
}

/* The backward, with p = exp(s - lse) recomputed and D = dO . O per query row: dS = p (dO . v -
 * D); dq = sum over keys u <= t of dS k_u * scale; dk_u = sum over queries t >= u of dS q_t *
 * scale and dv_u = sum of p dO_t. Two passes, each output row written by one warp summing in a
 * fixed order: no atomics, the same bits on any GPU. */

/* D[row] = dO . O of each query row (b, h, t), a warp per row. */
__global__ void attention_rowdot_kernel(float *D, const float *dout, const float *out, int B, int T,
                                        int C, int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH;
    size_t o = ((size_t)b * T + t) * C + h * hs;
    float s = 0.0f;
    for (int c = lane; c < hs; c += 32) s += dout[o + c] * out[o + c];
    s = warp_sum(s);
    if (lane == 0) D[row] = s;
}

/* dq of query row (b, h, t), a warp per row, over the keys u <= t. */
__global__ void attention_dq_kernel(float *dqkv, const float *dout, const float *qkv,
                                    const float *lse, const float *D, int B, int T, int C, int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH, R = hs / 32;
    float scale = rsqrtf((float)hs);
    size_t qoff = ((size_t)b * T + t) * 3 * C + h * hs, ooff = ((size_t)b * T + t) * C + h * hs;
    float q[R_MAX], dO[R_MAX], dq[R_MAX], kk[R_MAX], vv[R_MAX];
    for (int i = 0; i < R; i++) {
        q[i] = qkv[qoff + lane + 32 * i];
        dO[i] = dout[ooff + lane + 32 * i];
        dq[i] = 0.0f;
    }
    float L = lse[row], Dt = D[row];
    const float *base = qkv + (size_t)b * T * 3 * C + h * hs;
    for (int u = 0; u <= t; u++) {
        const float *k = base + (size_t)u * 3 * C + C, *v = k + C;
        for (int i = 0; i < R; i++) kk[i] = k[lane + 32 * i], vv[i] = v[lane + 32 * i];
        float p = expf(warp_dot(q, kk, R) * scale - L);
        float ds = p * (warp_dot(dO, vv, R) - Dt);
        for (int i = 0; i < R; i++) dq[i] += ds * kk[i] * scale;
    }
    for (int i = 0; i < R; i++) dqkv[qoff + lane + 32 * i] = dq[i];
}

/* dk and dv of key row (b, h, u), a warp per row, over the queries t >= u. */
__global__ void attention_dkv_kernel(float *dqkv, const float *dout, const float *qkv,
                                     const float *lse, const float *D, int B, int T, int C,
                                     int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int u = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH, R = hs / 32;
    float scale = rsqrtf((float)hs);
    size_t koff = ((size_t)b * T + u) * 3 * C + C + h * hs;
    float kk[R_MAX], vv[R_MAX], dk[R_MAX], dv[R_MAX], q[R_MAX], dO[R_MAX];
    for (int i = 0; i < R; i++) {
        kk[i] = qkv[koff + lane + 32 * i];
        vv[i] = qkv[koff + C + lane + 32 * i];
        dk[i] = dv[i] = 0.0f;
    }
    const float *qbase = qkv + (size_t)b * T * 3 * C + h * hs;
    const float *obase = dout + (size_t)b * T * C + h * hs;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *drow = D + ((size_t)b * NH + h) * T;
    for (int t = u; t < T; t++) {
        for (int i = 0; i < R; i++) {
            q[i] = qbase[(size_t)t * 3 * C + lane + 32 * i];
            dO[i] = obase[(size_t)t * C + lane + 32 * i];
        }
        float p = expf(warp_dot(q, kk, R) * scale - lrow[t]);
        float ds = p * (warp_dot(dO, vv, R) - drow[t]);
        for (int i = 0; i < R; i++) {
            dk[i] += ds * q[i] * scale;
            dv[i] += p * dO[i];
        }
    }
    for (int i = 0; i < R; i++) {
        dqkv[koff + lane + 32 * i] = dk[i];
        dqkv[koff + C + lane + 32 * i] = dv[i];
    }
}

extern "C" void cuda_attention_forward(gpt2_act *out_, float *lse, const gpt2_act *qkv_, int B,
                                       int T, int C, int NH, float *scratch) {
    float *out = cuda_f(out_);
    const float *qkv = cuda_cf(qkv_);
    (void)scratch;
    size_t rows = (size_t)B * NH * T;
    attention_forward_kernel<<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(out, lse, qkv, B, T, C, NH);
    CUDA_LAUNCHED();
}

/* Scratch: D, B * NH * T floats. Every value of dqkv is written, by one of the two passes. */
extern "C" void cuda_attention_backward(gpt2_act *dqkv_, const gpt2_act *dout_,
                                        const gpt2_act *qkv_, const gpt2_act *out_,
                                        const float *lse, int B, int T, int C, int NH,
                                        float *scratch) {
    float *dqkv = cuda_f(dqkv_), *D = scratch;
    const float *dout = cuda_cf(dout_);
    const float *qkv = cuda_cf(qkv_);
    const float *out = cuda_cf(out_);
    size_t rows = (size_t)B * NH * T;
    if (!rows) return;
    attention_rowdot_kernel<<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(D, dout, out, B, T, C, NH);
    CUDA_LAUNCHED();
    attention_dq_kernel<<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(dqkv, dout, qkv, lse, D, B, T,
                                                                     C, NH);
    CUDA_LAUNCHED();
    attention_dkv_kernel<<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(dqkv, dout, qkv, lse, D, B,
                                                                      T, C, NH);
    CUDA_LAUNCHED();
}

/* Generation: the new keys and values into the cache, laid out [NH][len][hs] per sequence (as
 * the CPU's), then each new query attends to positions 0..its own. */
__global__ void kv_store_kernel(float *kcache, float *vcache, const float *qkv, int nseq, int n,
                                int pos, int len, int C, int NH) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)nseq * n * C) return;
    int c = (int)(i % C), j = (int)((i / C) % n), s = (int)(i / ((size_t)C * n)), hs = C / NH;
    int h = c / hs, e = c % hs;
    const float *row = qkv + ((size_t)s * n + j) * 3 * C;
    size_t at = (size_t)s * len * C + ((size_t)h * len + pos + j) * hs + e;
    kcache[at] = row[C + c];
    vcache[at] = row[2 * C + c];
}

__global__ void attention_kv_kernel(float *out, const float *qkv, const float *kcache,
                                    const float *vcache, int nseq, int n, int pos, int len, int C,
                                    int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= nseq * NH * n) return;
    int j = row % n, h = (row / n) % NH, s = row / (n * NH), hs = C / NH, R = hs / 32;
    float scale = rsqrtf((float)hs);
    const float *qrow = qkv + ((size_t)s * n + j) * 3 * C + h * hs;
    const float *K = kcache + (size_t)s * len * C + (size_t)h * len * hs, *V = vcache + (K - kcache);
    float q[R_MAX], acc[R_MAX], kv[R_MAX];
    for (int i = 0; i < R; i++) q[i] = qrow[lane + 32 * i] * scale, acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int u = 0; u <= pos + j; u++) {
        for (int i = 0; i < R; i++) kv[i] = K[(size_t)u * hs + lane + 32 * i];
        float sc = warp_dot(q, kv, R);
        float m_new = fmaxf(m, sc), corr = expf(m - m_new), p = expf(sc - m_new);
        l = l * corr + p;
        for (int i = 0; i < R; i++) acc[i] = acc[i] * corr + p * V[(size_t)u * hs + lane + 32 * i];
        m = m_new;
    }
    float *o = out + ((size_t)s * n + j) * C + h * hs;
    for (int i = 0; i < R; i++) o[lane + 32 * i] = acc[i] / l;
}

extern "C" void cuda_attention_forward_kv(gpt2_act *out_, const gpt2_act *qkv_, gpt2_act *kcache_,
                                          gpt2_act *vcache_, const gpt2_span *spans, int nspans,
                                          int len, int C, int NH, float *scratch) {
    float *out = cuda_f(out_);
    const float *qkv = cuda_cf(qkv_);
    float *kcache = cuda_f(kcache_);
    float *vcache = cuda_f(vcache_);
    (void)scratch;
    /* a span at a time, each its sequence's cache (the split-K decoding kernel of the GPU work
     * will take the spans in one launch) */
    size_t row = 0;
    for (int s = 0; s < nspans; s++) {
        const gpt2_span *sp = &spans[s];
        size_t cache = (size_t)sp->seq * len * C, total = (size_t)sp->n * C;
        const float *q = qkv + row * 3 * C;
        kv_store_kernel<<<blocks_for(total, 256), 256, 0, cuda_stream>>>(
            kcache + cache, vcache + cache, q, 1, sp->n, sp->pos, len, C, NH);
        CUDA_LAUNCHED();
        size_t rows = (size_t)NH * sp->n;
        attention_kv_kernel<<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(
            out + row * C, q, kcache + cache, vcache + cache, 1, sp->n, sp->pos, len, C, NH);
        CUDA_LAUNCHED();
        row += (size_t)sp->n;
    }
}
