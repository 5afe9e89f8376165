/* Causal self-attention, one warp per query row, streaming over the keys with a running max and
 * sum (the online softmax of FlashAttention): no T x T matrix in memory, only each row's
 * log-sum-exp for the backward, which recomputes the probabilities (one warp per query row for
 * dq, one per key row for dk and dv: no atomics). Each lane holds hs/32 of the head's channels.
 * This is the correct-first kernel: one key at a time per warp, no tiling in shared memory and
 * no tensor cores (a tiled FlashAttention-2 kernel or cuDNN's fused attention is the next
 * step). */
#include <vector>

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
template <typename act_t>
__global__ void attention_forward_kernel(act_t *out, float *lse, const act_t *qkv, int B, int T,
                                         int C, int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH, R = hs / 32;
    float scale = rsqrtf((float)hs);
    const act_t *base = qkv + (size_t)b * T * 3 * C + h * hs;
    float q[R_MAX], acc[R_MAX], kv[R_MAX];
    for (int i = 0; i < R; i++) q[i] = act_load(base[(size_t)t * 3 * C + lane + 32 * i]) * scale, acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int u = 0; u <= t; u++) {
        const act_t *k = base + (size_t)u * 3 * C + C, *v = k + C;
        for (int i = 0; i < R; i++) kv[i] = act_load(k[lane + 32 * i]);
        float s = warp_dot(q, kv, R);
        float m_new = fmaxf(m, s), corr = expf(m - m_new), p = expf(s - m_new);
        l = l * corr + p;
        for (int i = 0; i < R; i++) acc[i] = acc[i] * corr + p * act_load(v[lane + 32 * i]);
        m = m_new;
    }
    act_t *o = out + ((size_t)b * T + t) * C + h * hs;
    for (int i = 0; i < R; i++) o[lane + 32 * i] = act_store<act_t>(acc[i] / l);
    if (lane == 0) lse[row] = m + logf(l);
}

/* The backward, with p = exp(s - lse) recomputed and D = dO . O per query row: dS = p (dO . v -
 * D); dq = sum over keys u <= t of dS k_u * scale; dk_u = sum over queries t >= u of dS q_t *
 * scale and dv_u = sum of p dO_t. Two passes, each output row written by one warp summing in a
 * fixed order: no atomics, the same bits on any GPU. */

/* D[row] = dO . O of each query row (b, h, t), a warp per row. */
template <typename act_t>
__global__ void attention_rowdot_kernel(float *D, const act_t *dout, const act_t *out, int B, int T,
                                        int C, int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH;
    size_t o = ((size_t)b * T + t) * C + h * hs;
    float s = 0.0f;
    for (int c = lane; c < hs; c += 32) s += act_load(dout[o + c]) * act_load(out[o + c]);
    s = warp_sum(s);
    if (lane == 0) D[row] = s;
}

/* dq of query row (b, h, t), a warp per row, over the keys u <= t. */
template <typename act_t>
__global__ void attention_dq_kernel(act_t *dqkv, const act_t *dout, const act_t *qkv,
                                    const float *lse, const float *D, int B, int T, int C, int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH, R = hs / 32;
    float scale = rsqrtf((float)hs);
    size_t qoff = ((size_t)b * T + t) * 3 * C + h * hs, ooff = ((size_t)b * T + t) * C + h * hs;
    float q[R_MAX], dO[R_MAX], dq[R_MAX], kk[R_MAX], vv[R_MAX];
    for (int i = 0; i < R; i++) {
        q[i] = act_load(qkv[qoff + lane + 32 * i]);
        dO[i] = act_load(dout[ooff + lane + 32 * i]);
        dq[i] = 0.0f;
    }
    float L = lse[row], Dt = D[row];
    const act_t *base = qkv + (size_t)b * T * 3 * C + h * hs;
    for (int u = 0; u <= t; u++) {
        const act_t *k = base + (size_t)u * 3 * C + C, *v = k + C;
        for (int i = 0; i < R; i++) kk[i] = act_load(k[lane + 32 * i]), vv[i] = act_load(v[lane + 32 * i]);
        float p = expf(warp_dot(q, kk, R) * scale - L);
        float ds = p * (warp_dot(dO, vv, R) - Dt);
        for (int i = 0; i < R; i++) dq[i] += ds * kk[i] * scale;
    }
    for (int i = 0; i < R; i++) dqkv[qoff + lane + 32 * i] = act_store<act_t>(dq[i]);
}

/* dk and dv of key row (b, h, u), a warp per row, over the queries t >= u. */
template <typename act_t>
__global__ void attention_dkv_kernel(act_t *dqkv, const act_t *dout, const act_t *qkv,
                                     const float *lse, const float *D, int B, int T, int C,
                                     int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int u = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH, R = hs / 32;
    float scale = rsqrtf((float)hs);
    size_t koff = ((size_t)b * T + u) * 3 * C + C + h * hs;
    float kk[R_MAX], vv[R_MAX], dk[R_MAX], dv[R_MAX], q[R_MAX], dO[R_MAX];
    for (int i = 0; i < R; i++) {
        kk[i] = act_load(qkv[koff + lane + 32 * i]);
        vv[i] = act_load(qkv[koff + C + lane + 32 * i]);
        dk[i] = dv[i] = 0.0f;
    }
    const act_t *qbase = qkv + (size_t)b * T * 3 * C + h * hs;
    const act_t *obase = dout + (size_t)b * T * C + h * hs;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *drow = D + ((size_t)b * NH + h) * T;
    for (int t = u; t < T; t++) {
        for (int i = 0; i < R; i++) {
            q[i] = act_load(qbase[(size_t)t * 3 * C + lane + 32 * i]);
            dO[i] = act_load(obase[(size_t)t * C + lane + 32 * i]);
        }
        float p = expf(warp_dot(q, kk, R) * scale - lrow[t]);
        float ds = p * (warp_dot(dO, vv, R) - drow[t]);
        for (int i = 0; i < R; i++) {
            dk[i] += ds * q[i] * scale;
            dv[i] += p * dO[i];
        }
    }
    for (int i = 0; i < R; i++) {
        dqkv[koff + lane + 32 * i] = act_store<act_t>(dk[i]);
        dqkv[koff + C + lane + 32 * i] = act_store<act_t>(dv[i]);
    }
}

template <typename act_t>
static void attention_forward(gpt2_act *out_, float *lse, const gpt2_act *qkv_, int B, int T,
                              int C, int NH) {
    act_t *out = acts<act_t>(out_);
    const act_t *qkv = acts<act_t>(qkv_);
    size_t rows = (size_t)B * NH * T;
    if (!rows) return;
    attention_forward_kernel<act_t><<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(out, lse, qkv, B, T, C, NH);
    CUDA_LAUNCHED();
}

extern "C" void cuda_attention_forward(gpt2_act *out, float *lse, const gpt2_act *qkv, int B,
                                       int T, int C, int NH, float *scratch) {
    (void)scratch;
    CUDA_ACT_DISPATCH(attention_forward, (out, lse, qkv, B, T, C, NH));
}

/* Scratch: D, B * NH * T floats. Every value of dqkv is written, by one of the two passes. */
template <typename act_t>
static void attention_backward(gpt2_act *dqkv_, const gpt2_act *dout_, const gpt2_act *qkv_,
                               const gpt2_act *out_, const float *lse, int B, int T, int C, int NH,
                               float *D) {
    act_t *dqkv = acts<act_t>(dqkv_);
    const act_t *dout = acts<act_t>(dout_), *qkv = acts<act_t>(qkv_), *out = acts<act_t>(out_);
    size_t rows = (size_t)B * NH * T;
    if (!rows) return;
    attention_rowdot_kernel<act_t><<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(D, dout, out, B, T, C, NH);
    CUDA_LAUNCHED();
    attention_dq_kernel<act_t><<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(dqkv, dout, qkv, lse, D, B, T,
                                                                     C, NH);
    CUDA_LAUNCHED();
    attention_dkv_kernel<act_t><<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(dqkv, dout, qkv, lse, D, B,
                                                                      T, C, NH);
    CUDA_LAUNCHED();
}

extern "C" void cuda_attention_backward(gpt2_act *dqkv, const gpt2_act *dout, const gpt2_act *qkv,
                                        const gpt2_act *out, const float *lse, int B, int T, int C,
                                        int NH, float *scratch) {
    CUDA_ACT_DISPATCH(attention_backward, (dqkv, dout, qkv, out, lse, B, T, C, NH, scratch));
}

/* Generation: every span in one pass. The spans go to the device (in the scratch) with each
 * one's first row; a row finds its span by binary search. The new keys and values go into the
 * cache, laid out [NH][len][hs] per sequence (as the CPU's); then each new query attends to
 * positions 0..its own. With few rows over a long cache (decoding), each (row, head) is split
 * over the keys, SPLIT_KEYS a part, into partial (max, sum, weighted values) merged in order
 * after: more warps at work, the same result for a row whatever the other spans. */
#define SPLIT_KEYS 256
#define SPLIT_ROWS 64 /* rows x splits at most this: the partials stay small */

struct kv_span {
    int seq, pos, n, row0;
};

__device__ __forceinline__ int span_of(const kv_span *spans, int nspans, int row) {
    int lo = 0, hi = nspans - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (spans[mid].row0 <= row) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

template <typename act_t>
__global__ void kv_store_kernel(act_t *kcache, act_t *vcache, const act_t *qkv,
                                const kv_span *spans, int nspans, int rows, int len, int C,
                                int NH) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * C) return;
    int c = (int)(i % C), row = (int)(i / C), hs = C / NH, h = c / hs, e = c % hs;
    const kv_span &sp = spans[span_of(spans, nspans, row)];
    const act_t *r = qkv + (size_t)row * 3 * C;
    size_t at = (size_t)sp.seq * len * C + ((size_t)h * len + sp.pos + (row - sp.row0)) * hs + e;
    kcache[at] = r[C + c];
    vcache[at] = r[2 * C + c];
}

/* One warp per (row, head, split): the online softmax over keys [split * keys, ...) of the
 * row's 0..pos+j. With splits == 1 it writes the output; else its partial to `part`: max,
 * sum, then hs weighted values. */
template <typename act_t>
__global__ void attention_kv_kernel(act_t *out, float *part, const act_t *qkv, const act_t *kcache,
                                    const act_t *vcache, const kv_span *spans, int nspans,
                                    int rows, int splits, int len, int C, int NH) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= rows * NH * splits) return;
    int split = w % splits, h = (w / splits) % NH, row = w / (splits * NH), hs = C / NH, R = hs / 32;
    const kv_span &sp = spans[span_of(spans, nspans, row)];
    int last = sp.pos + (row - sp.row0), keys = (len + splits - 1) / splits;
    int u0 = split * keys, u1 = min(last + 1, u0 + keys);
    float scale = rsqrtf((float)hs);
    const act_t *qrow = qkv + (size_t)row * 3 * C + h * hs;
    const act_t *K = kcache + (size_t)sp.seq * len * C + (size_t)h * len * hs;
    const act_t *V = vcache + (K - kcache);
    float q[R_MAX], acc[R_MAX], kv[R_MAX];
    for (int i = 0; i < R; i++) q[i] = act_load(qrow[lane + 32 * i]) * scale, acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int u = u0; u < u1; u++) {
        for (int i = 0; i < R; i++) kv[i] = act_load(K[(size_t)u * hs + lane + 32 * i]);
        float sc = warp_dot(q, kv, R);
        float m_new = fmaxf(m, sc), corr = expf(m - m_new), p = expf(sc - m_new);
        l = l * corr + p;
        for (int i = 0; i < R; i++) acc[i] = acc[i] * corr + p * act_load(V[(size_t)u * hs + lane + 32 * i]);
        m = m_new;
    }
    if (splits == 1) {
        act_t *o = out + (size_t)row * C + h * hs;
        for (int i = 0; i < R; i++) o[lane + 32 * i] = act_store<act_t>(acc[i] / l);
        return;
    }
    float *pp = part + (size_t)w * (hs + 2);
    if (lane == 0) pp[0] = m, pp[1] = l;
    for (int i = 0; i < R; i++) pp[2 + lane + 32 * i] = acc[i];
}

/* The splits of each (row, head) merged in order: a warp each. (A split past the row's last
 * key has max -inf and sum 0: it adds nothing.) */
template <typename act_t>
__global__ void attention_kv_merge_kernel(act_t *out, const float *part, int rows, int splits,
                                          int C, int NH) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= rows * NH) return;
    int h = w % NH, row = w / NH, hs = C / NH, R = hs / 32;
    const float *p = part + (size_t)w * splits * (hs + 2);
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, p[(size_t)s * (hs + 2)]);
    float L = 0.0f, acc[R_MAX];
    for (int i = 0; i < R; i++) acc[i] = 0.0f;
    for (int s = 0; s < splits; s++) {
        const float *ps = p + (size_t)s * (hs + 2);
        if (ps[1] == 0.0f) continue;
        float f = expf(ps[0] - M);
        L += ps[1] * f;
        for (int i = 0; i < R; i++) acc[i] += ps[2 + lane + 32 * i] * f;
    }
    act_t *o = out + (size_t)row * C + h * hs;
    for (int i = 0; i < R; i++) o[lane + 32 * i] = act_store<act_t>(acc[i] / L);
}

/* Scratch: the spans (4 ints each), then the partials of the split rows (at most SPLIT_ROWS
 * rows x splits of (hs + 2) floats a head). */
template <typename act_t>
static void attention_forward_kv(gpt2_act *out_, const gpt2_act *qkv_, gpt2_act *kcache_,
                                 gpt2_act *vcache_, const gpt2_span *spans, int nspans, int len,
                                 int C, int NH, float *scratch) {
    act_t *out = acts<act_t>(out_), *kcache = acts<act_t>(kcache_), *vcache = acts<act_t>(vcache_);
    const act_t *qkv = acts<act_t>(qkv_);
    if (nspans < 1) return;
    /* the spans with their first rows, to the device (pageable memory: staged at the call, so
     * one host vector serves every call) */
    static std::vector<kv_span> host;
    host.resize((size_t)nspans);
    int rows = 0;
    for (int s = 0; s < nspans; s++) {
        host[(size_t)s] = kv_span{spans[s].seq, spans[s].pos, spans[s].n, rows};
        rows += spans[s].n;
    }
    kv_span *dev = (kv_span *)scratch;
    CUDA_CHECK(cudaMemcpyAsync(dev, host.data(), (size_t)nspans * sizeof(kv_span),
                               cudaMemcpyHostToDevice, cuda_stream));
    if (rows == 0) return;
    kv_store_kernel<act_t><<<blocks_for((size_t)rows * C, 256), 256, 0, cuda_stream>>>(
        kcache, vcache, qkv, dev, nspans, rows, len, C, NH);
    CUDA_LAUNCHED();
    int splits = 1;
    while (splits * 2 * rows <= SPLIT_ROWS && (len + splits * 2 - 1) / (splits * 2) >= SPLIT_KEYS / 2)
        splits *= 2;
    float *part = scratch + (((size_t)nspans * sizeof(kv_span) + 255) / 256) * 64;
    size_t warps = (size_t)rows * NH * splits;
    attention_kv_kernel<act_t><<<blocks_for(warps, 8), 256, 0, cuda_stream>>>(
        out, part, qkv, kcache, vcache, dev, nspans, rows, splits, len, C, NH);
    CUDA_LAUNCHED();
    if (splits > 1) {
        attention_kv_merge_kernel<act_t><<<blocks_for((size_t)rows * NH, 8), 256, 0, cuda_stream>>>(
            out, part, rows, splits, C, NH);
        CUDA_LAUNCHED();
    }
}

extern "C" void cuda_attention_forward_kv(gpt2_act *out, const gpt2_act *qkv, gpt2_act *kcache,
                                          gpt2_act *vcache, const gpt2_span *spans, int nspans,
                                          int len, int C, int NH, float *scratch) {
    CUDA_ACT_DISPATCH(attention_forward_kv, (out, qkv, kcache, vcache, spans, nspans, len, C, NH, scratch));
}
