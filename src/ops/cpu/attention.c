/* Causal multi-head self-attention, computed row by row: the forward keeps only each row's
 * log-sum-exp, and the backward recomputes the probabilities from it, so no B x NH x T x T
 * tensor is ever stored. qkv rows are [q (C) | k (C) | v (C)], head h at offset h * hs. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void cpu_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH,
                           float *scratch) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel for collapse(3) schedule(dynamic, 8)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                float *score = scratch + (size_t)omp_get_thread_num() * T;
                const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
                const float *q = base + t * C3;
                float maxv = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    score[t2] = dot(q, base + t2 * C3 + C, hs) * scale;
                    if (score[t2] > maxv) maxv = score[t2];
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    score[t2] = expf(score[t2] - maxv);
                    sum += score[t2];
                }
                float *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                memset(o, 0, hs * sizeof *o);
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = base + t2 * C3 + 2 * C;
                    float p = score[t2] * inv;
                    for (int i = 0; i < hs; i++) o[i] += p * v[i];
                }
                lse[((size_t)b * NH + h) * T + t] = maxv + logf(sum);
            }
}

/* For query row t with probabilities p (recomputed as exp(score - lse)) and output o:
 *   dv[t2] += p[t2] * do,   ds[t2] = p[t2] * (do . v[t2] - do . o),
 *   dq[t]  += scale * ds[t2] * k[t2],   dk[t2] += scale * ds[t2] * q[t].
 * One (batch, head) pair per task: its dk and dv rows belong to no other task. */
void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *lse, int B, int T, int C, int NH, float *scratch) {
    (void)scratch;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            float *dbase = dqkv + (size_t)b * T * C3 + (size_t)h * hs;
            for (int t = 0; t < T; t++)
                for (int part = 0; part < 3; part++) memset(dbase + t * C3 + part * C, 0, hs * sizeof(float));
            const float *row_lse = lse + ((size_t)b * NH + h) * T;
            for (int t = 0; t < T; t++) {
                const float *q = base + t * C3;
                const float *dout_t = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
                const float *out_t = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                float *dq = dbase + t * C3;
                float d_o = dot(dout_t, out_t, hs);
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = base + t2 * C3 + C, *v = k + C;
                    float *dk = dbase + t2 * C3 + C, *dv = dk + C;
                    float p = expf(dot(q, k, hs) * scale - row_lse[t]);
                    float ds = p * (dot(dout_t, v, hs) - d_o) * scale;
                    for (int i = 0; i < hs; i++) {
                        dv[i] += p * dout_t[i];
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
        }
}
