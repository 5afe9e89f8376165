/* The cuDNN stand-in's fused attention, forward and backward, on the CPU: what cuDNN's SDPA
 * computes, written as plainly as it is defined, in fp32 from bf16 operands read through their
 * strides.
 *
 * Forward, each query row i of each (b, h): scores s_j = scale q_i . k_j over the keys the band
 * lets it see, m = max s_j, l = sum exp(s_j - m), O_i = sum exp(s_j - m) v_j / l rounded once to
 * bf16 (nearest even), Stats_i = m + ln l. Backward, with P_ij = exp(scale q_i . k_j - Stats_i):
 * D_i = dO_i . O_i, dP_ij = dO_i . v_j, dS_ij = P_ij (dP_ij - D_i), dV_j = sum_i P_ij dO_i,
 * dK_j = scale sum_i dS_ij q_i, dQ_i = scale sum_j dS_ij k_j. The backward walks keys in the
 * outer loop, as flash attention does, so dQ sums across it in the workspace (fp32) and is
 * rounded when all keys are in; every sum runs in one fixed order: the same bits every run.
 *
 * Not cuDNN's numerics: its engines round P to bf16 before the products with V and dO, and sum
 * in the order of their tiles and warps; these results differ from theirs by that rounding.
 * Every operand is read into fp32 before any output is written, so an output that overlaps an
 * input (which cuDNN does not allow either) cannot change what is read. */
#include "cudnn_sdpa.h"

#include <math.h>
#include <string.h>

#include <vector>

#include "cuda_bf16.h"

namespace cuemu {

namespace {

/* The tensor's [b][h][s][d] elements, dense, in fp32. */
std::vector<float> widen(sdpa_view t, int64_t B, int64_t H, int64_t S, int64_t D, bool is_float) {
    std::vector<float> out((size_t)(B * H * S * D));
    size_t at = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t s = 0; s < S; s++)
                for (int64_t d = 0; d < D; d++) {
                    int64_t e =
                        b * t.stride[0] + h * t.stride[1] + s * t.stride[2] + d * t.stride[3];
                    out[at++] =
                        is_float ? ((const float *)t.p)[e] : (float)((const __nv_bfloat16 *)t.p)[e];
                }
    return out;
}

/* Dense [b][h][s][d] fp32 values written through the tensor's strides: bf16 (rounded to
 * nearest even) or float. */
void narrow(sdpa_view t, const float *x, int64_t B, int64_t H, int64_t S, int64_t D,
            bool is_float) {
    size_t at = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t s = 0; s < S; s++)
                for (int64_t d = 0; d < D; d++) {
                    int64_t e =
                        b * t.stride[0] + h * t.stride[1] + s * t.stride[2] + d * t.stride[3];
                    if (is_float) ((float *)t.p)[e] = x[at++];
                    else ((__nv_bfloat16 *)t.p)[e] = __float2bfloat16_rn(x[at++]);
                }
}

/* The keys query i sees: [0, end). */
int64_t keys_seen(const sdpa_shape &s, int64_t i) {
    if (!s.banded) return s.s_kv;
    int64_t end = i + s.shift + s.right_bound + 1;
    return end < 0 ? 0 : end > s.s_kv ? s.s_kv : end;
}

float dot(const float *a, const float *b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

} // namespace

size_t sdpa_backward_workspace_bytes(const sdpa_shape &s) {
    size_t rows = (size_t)(s.b * s.h * s.s_q);
    return (rows + rows * (size_t)s.d_qk) * sizeof(float);
}

void sdpa_forward(const sdpa_shape &s, sdpa_view q, sdpa_view k, sdpa_view v, sdpa_view o,
                  sdpa_view stats) {
    std::vector<float> Q = widen(q, s.b, s.h, s.s_q, s.d_qk, false);
    std::vector<float> K = widen(k, s.b, s.h, s.s_kv, s.d_qk, false);
    std::vector<float> V = widen(v, s.b, s.h, s.s_kv, s.d_v, false);
    std::vector<float> O((size_t)(s.b * s.h * s.s_q * s.d_v)), L((size_t)(s.b * s.h * s.s_q));
    std::vector<float> p((size_t)s.s_kv);
    for (int64_t bh = 0; bh < s.b * s.h; bh++)
        for (int64_t i = 0; i < s.s_q; i++) {
            const float *qi = &Q[(size_t)((bh * s.s_q + i) * s.d_qk)];
            const float *kb = &K[(size_t)(bh * s.s_kv * s.d_qk)];
            const float *vb = &V[(size_t)(bh * s.s_kv * s.d_v)];
            float *oi = &O[(size_t)((bh * s.s_q + i) * s.d_v)];
            int64_t n = keys_seen(s, i);
            float m = -INFINITY, l = 0.0f;
            for (int64_t j = 0; j < n; j++) {
                p[j] = s.scale * dot(qi, kb + j * s.d_qk, s.d_qk);
                m = fmaxf(m, p[j]);
            }
            for (int64_t j = 0; j < n; j++) l += p[j] = expf(p[j] - m);
            for (int64_t d = 0; d < s.d_v; d++) {
                float acc = 0.0f;
                for (int64_t j = 0; j < n; j++) acc += p[j] * vb[j * s.d_v + d];
                /* a row that sees no key: 0 out, and -inf as its log-sum-exp, as the math says */
                oi[d] = n ? acc / l : 0.0f;
            }
            L[(size_t)(bh * s.s_q + i)] = n ? m + logf(l) : -INFINITY;
        }
    narrow(o, O.data(), s.b, s.h, s.s_q, s.d_v, false);
    if (stats.p) narrow(stats, L.data(), s.b, s.h, s.s_q, 1, true);
}

void sdpa_backward(const sdpa_shape &s, sdpa_view q, sdpa_view k, sdpa_view v, sdpa_view o,
                   sdpa_view dout, sdpa_view stats, sdpa_view dq, sdpa_view dk, sdpa_view dv,
                   void *workspace) {
    std::vector<float> Q = widen(q, s.b, s.h, s.s_q, s.d_qk, false);
    std::vector<float> K = widen(k, s.b, s.h, s.s_kv, s.d_qk, false);
    std::vector<float> V = widen(v, s.b, s.h, s.s_kv, s.d_v, false);
    std::vector<float> O = widen(o, s.b, s.h, s.s_q, s.d_v, false);
    std::vector<float> dO = widen(dout, s.b, s.h, s.s_q, s.d_v, false);
    std::vector<float> L = widen(stats, s.b, s.h, s.s_q, 1, true);
    size_t rows = (size_t)(s.b * s.h * s.s_q);
    /* NaN bytes first, all of it: the caller lends its scratch, and nothing it kept there
     * outlives the call (with cuDNN too, whose use of it is its own); D and dQ's sums follow */
    memset(workspace, 0xff, sdpa_backward_workspace_bytes(s));
    float *D = (float *)workspace, *dQ = D + rows; /* D, then dQ's sums: the workspace's */
    for (size_t r = 0; r < rows; r++) D[r] = dot(&dO[r * s.d_v], &O[r * s.d_v], s.d_v);
    memset(dQ, 0, rows * (size_t)s.d_qk * sizeof(float));
    std::vector<float> dK((size_t)(s.b * s.h * s.s_kv * s.d_qk));
    std::vector<float> dV((size_t)(s.b * s.h * s.s_kv * s.d_v));
    for (int64_t bh = 0; bh < s.b * s.h; bh++)
        for (int64_t j = 0; j < s.s_kv; j++) {
            const float *kj = &K[(size_t)((bh * s.s_kv + j) * s.d_qk)];
            const float *vj = &V[(size_t)((bh * s.s_kv + j) * s.d_v)];
            float *dkj = &dK[(size_t)((bh * s.s_kv + j) * s.d_qk)];
            float *dvj = &dV[(size_t)((bh * s.s_kv + j) * s.d_v)];
            for (int64_t i = 0; i < s.s_q; i++) {
                if (j >= keys_seen(s, i)) continue;
                size_t r = (size_t)(bh * s.s_q + i);
                const float *qi = &Q[r * s.d_qk], *doi = &dO[r * s.d_v];
                float p = expf(s.scale * dot(qi, kj, s.d_qk) - L[r]);
                float ds = p * (dot(doi, vj, s.d_v) - D[r]);
                for (int64_t d = 0; d < s.d_v; d++) dvj[d] += p * doi[d];
                for (int64_t d = 0; d < s.d_qk; d++) dkj[d] += ds * qi[d];
                for (int64_t d = 0; d < s.d_qk; d++) dQ[r * s.d_qk + d] += ds * kj[d];
            }
            for (int64_t d = 0; d < s.d_qk; d++) dkj[d] *= s.scale;
        }
    for (size_t e = 0; e < rows * (size_t)s.d_qk; e++) dQ[e] *= s.scale;
    narrow(dq, dQ, s.b, s.h, s.s_q, s.d_qk, false);
    narrow(dk, dK.data(), s.b, s.h, s.s_kv, s.d_qk, false);
    narrow(dv, dV.data(), s.b, s.h, s.s_kv, s.d_v, false);
}

} // namespace cuemu
