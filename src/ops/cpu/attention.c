/* Causal multi-head self-attention in fp32 (and under bf16 where oneDNN has no bf16 kernels;
 * where it has, attention_bf16.c), one (batch, head) pair per task and a block of query rows
 * at a time, every product through the BLAS: S = scale * Q K^T for the block, a masked softmax
 * in place, O = P V. The forward keeps only each row's log-sum-exp; the backward recomputes P
 * from it, so no B x NH x T x T tensor is ever stored (a thread holds two blocks of
 * CPU_ATTN_ROWS x T). qkv rows are [q (C) | k (C) | v (C)], head h at offset h * hs.
 * BLAS calls inside the parallel loop run single-threaded (OpenBLAS's OpenMP build), so each
 * task's arithmetic, and the result, does not depend on the number of threads. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/fast_exp.h"

/* Pointers of one (batch, head) pair. */
typedef struct head {
    const float *q, *k, *v; /* rows of stride 3C */
    const float *o;         /* rows of stride C */
    float *lse;             /* T values */
} head;

static head head_at(const float *qkv, const float *out, const float *lse, int b, int h, int T,
                    int C, int NH) {
    int hs = C / NH;
    const float *base = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
    return (head){base, base + C, base + 2 * C, out + (size_t)b * T * C + (size_t)h * hs,
                  (float *)lse + ((size_t)b * NH + h) * T};
}

/* S[nq][nk] = scale * Q[q0 .. q0+nq) K[0 .. nk)^T */
static void scores(float *S, const head *hd, int q0, int nq, int nk, int hs, int C, float scale) {
    int ld = 3 * C;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hs, scale, hd->q + (size_t)q0 * ld,
                ld, hd->k, ld, 0.0f, S, nk);
}

/* The softmax of one row of n scores times scale in place, with zeros up to len: *lse gets its
 * log-sum-exp. The exponentials are fast_exp_nonpos, vectorised (libm's expf is one call per
 * element: at T=256 about half of attention's time). (The fp32 products are scaled already:
 * scale 1, which changes no bit.) */
CPU_KERNEL(softmax_row, (float *row, int n, int len, float scale, float *lse),
           (row, n, len, scale, lse)) {
    float maxv = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : maxv)
    for (int u = 0; u < n; u++) maxv = row[u] * scale > maxv ? row[u] * scale : maxv;
#pragma omp simd reduction(+ : sum)
    for (int u = 0; u < n; u++) {
        row[u] = fast_exp_nonpos(row[u] * scale - maxv);
        sum += row[u];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int u = 0; u < n; u++) row[u] *= inv;
    for (int u = n; u < len; u++) row[u] = 0.0f;
    *lse = maxv + logf(sum);
}

/* The backward of one row of n probabilities recomputed from the scores p (times sscale) and
 * lse, and of the gradient ds = dO V^T in place: ds = p * (ds - d) * scale, zeros up to len. */
CPU_KERNEL(softmax_backward_row, (float *p, float *ds, int n, int len, float sscale, float lse,
                                  float d, float scale), (p, ds, n, len, sscale, lse, d, scale)) {
#pragma omp simd
    for (int u = 0; u < n; u++) {
        p[u] = fast_exp_nonpos(p[u] * sscale - lse);
        ds[u] = p[u] * (ds[u] - d) * scale;
    }
    for (int u = n; u < len; u++) p[u] = ds[u] = 0.0f;
}

void cpu_attention_softmax_row(float *row, int n, int len, float scale, float *lse) {
    CPU_PICK(softmax_row)(row, n, len, scale, lse);
}
void cpu_attention_softmax_backward_row(float *p, float *ds, int n, int len, float scale,
                                        float lse, float d) {
    CPU_PICK(softmax_backward_row)(p, ds, n, len, scale, lse, d, scale);
}

/* nq query rows (stride ldq) at positions p0, p0+1, ... attend to keys and values 0..their own
 * position (stride ldk), a block of CPU_ATTN_ROWS rows at a time: o (stride ldo) and, when lse
 * is not NULL, each row's log-sum-exp. S holds CPU_ATTN_ROWS x (p0 + nq) floats. */
static void attend(float *o, int ldo, float *lse, const float *q, int ldq, const float *k,
                   const float *v, int ldk, int p0, int nq_all, int hs, float scale, float *S) {
    void (*softmax)(float *, int, int, float, float *) = CPU_PICK(softmax_row);
    float row_lse;
    if (nq_all == 1) { /* one new token (generation): matrix-vector products */
        int nk = p0 + 1;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, nk, hs, scale, k, ldk, q, 1, 0.0f, S, 1);
        softmax(S, nk, nk, 1.0f, &row_lse);
        cblas_sgemv(CblasRowMajor, CblasTrans, nk, hs, 1.0f, v, ldk, S, 1, 0.0f, o, 1);
        if (lse) lse[0] = row_lse;
        return;
    }
    for (int r0 = 0; r0 < nq_all; r0 += CPU_ATTN_ROWS) {
        int nq = nq_all - r0 < CPU_ATTN_ROWS ? nq_all - r0 : CPU_ATTN_ROWS, nk = p0 + r0 + nq;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hs, scale,
                    q + (size_t)r0 * ldq, ldq, k, ldk, 0.0f, S, nk);
        for (int r = 0; r < nq; r++) { /* the query at position t sees keys 0..t */
            int t = p0 + r0 + r;
            softmax(S + (size_t)r * nk, t + 1, nk, 1.0f, &row_lse);
            if (lse) lse[r0 + r] = row_lse;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hs, nk, 1.0f, S, nk, v, ldk,
                    0.0f, o + (size_t)r0 * ldo, ldo);
    }
}

void cpu_attention_forward(gpt2_act *out_, float *lse, const gpt2_act *qkv_, int B, int T, int C,
                           int NH, int bf16, float *scratch) {
    float *out = cpu_f(out_);
    const float *qkv = cpu_cf(qkv_);
    if (bf16 && cpu_bf16_native()) {
        cpu_attention_bf16_forward(out, lse, qkv, B, T, C, NH, scratch);
        return;
    }
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            head hd = head_at(qkv, out, lse, b, h, T, C, NH);
            attend((float *)hd.o, C, hd.lse, hd.q, 3 * C, hd.k, hd.v, 3 * C, 0, T, hs, scale,
                   scratch + (size_t)omp_get_thread_num() * CPU_ATTN_SCRATCH(T));
        }
}

/* The cache is head-major, [seq][head][len][hs], so that one head's keys and values are
 * contiguous for the matrix-vector products of generation. */
void cpu_attention_forward_kv(gpt2_act *out_, const gpt2_act *qkv_, gpt2_act *kcache_,
                              gpt2_act *vcache_, const gpt2_span *spans, int nspans, int len,
                              int C, int NH, float *scratch) {
    float *out = cpu_f(out_);
    const float *qkv = cpu_cf(qkv_);
    float *kcache = cpu_f(kcache_);
    float *vcache = cpu_f(vcache_);
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    if (nspans <= 0) return;
    size_t first[nspans], row = 0; /* each span's first row */
    for (int s = 0; s < nspans; s++) {
        first[s] = row;
        for (int i = 0; i < spans[s].n; i++, row++) {
            const float *qkv_row = qkv + row * 3 * C;
            for (int h = 0; h < NH; h++) {
                size_t at = (((size_t)spans[s].seq * NH + h) * len + spans[s].pos + i) * hs;
                memcpy(kcache + at, qkv_row + C + (size_t)h * hs, hs * sizeof(float));
                memcpy(vcache + at, qkv_row + 2 * C + (size_t)h * hs, hs * sizeof(float));
            }
        }
    }
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int s = 0; s < nspans; s++)
        for (int h = 0; h < NH; h++) {
            size_t off = ((size_t)spans[s].seq * NH + h) * len * hs;
            attend(out + first[s] * C + (size_t)h * hs, C, NULL,
                   qkv + first[s] * 3 * C + (size_t)h * hs, 3 * C, kcache + off, vcache + off, hs,
                   spans[s].pos, spans[s].n, hs, scale,
                   scratch + (size_t)omp_get_thread_num() * CPU_ATTN_SCRATCH(len));
        }
}

/* With P recomputed from lse and dO the output's gradient:
 *   dP = dO V^T,  dS = P * (dP - rowsum(dO * O)) * scale,
 *   dQ = dS K,  dK += dS^T Q,  dV += P^T dO. */
void cpu_attention_backward(gpt2_act *dqkv_, const gpt2_act *dout_, const gpt2_act *qkv_,
                            const gpt2_act *out_, const float *lse, int B, int T, int C, int NH,
                            int bf16, float *scratch) {
    float *dqkv = cpu_f(dqkv_);
    const float *dout = cpu_cf(dout_);
    const float *qkv = cpu_cf(qkv_);
    const float *out = cpu_cf(out_);
    if (bf16 && cpu_bf16_native()) {
        cpu_attention_bf16_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, scratch);
        return;
    }
    int hs = C / NH, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    void (*softmax_backward)(float *, float *, int, int, float, float, float, float) =
        CPU_PICK(softmax_backward_row);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *P = scratch + (size_t)omp_get_thread_num() * CPU_ATTN_SCRATCH(T);
            float *dS = P + (size_t)CPU_ATTN_ROWS * T;
            head hd = head_at(qkv, out, lse, b, h, T, C, NH);
            head dh = head_at(dqkv, dout, lse, b, h, T, C, NH); /* dq, dk, dv; do */
            float *dq = (float *)dh.q, *dk = (float *)dh.k, *dv = (float *)dh.v;
            for (int t = 0; t < T; t++) {
                memset(dk + (size_t)t * ld, 0, hs * sizeof(float));
                memset(dv + (size_t)t * ld, 0, hs * sizeof(float));
            }
            for (int q0 = 0; q0 < T; q0 += CPU_ATTN_ROWS) {
                int nq = T - q0 < CPU_ATTN_ROWS ? T - q0 : CPU_ATTN_ROWS, nk = q0 + nq;
                const float *dout_blk = dh.o + (size_t)q0 * C;
                scores(P, &hd, q0, nq, nk, hs, C, scale);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hs, 1.0f, dout_blk, C,
                            hd.v, ld, 0.0f, dS, nk);
                for (int r = 0; r < nq; r++) {
                    int t = q0 + r;
                    float *p = P + (size_t)r * nk, *ds = dS + (size_t)r * nk;
                    const float *o_t = hd.o + (size_t)t * C, *do_t = dh.o + (size_t)t * C;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) d += do_t[i] * o_t[i];
                    softmax_backward(p, ds, t + 1, nk, 1.0f, hd.lse[t], d, scale);
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hs, nk, 1.0f, dS, nk,
                            hd.k, ld, 0.0f, dq + (size_t)q0 * ld, ld);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nq, 1.0f, dS, nk,
                            hd.q + (size_t)q0 * ld, ld, 1.0f, dk, ld);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nq, 1.0f, P, nk,
                            dout_blk, C, 1.0f, dv, ld);
            }
        }
}
