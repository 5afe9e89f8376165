/* The LM head fused with softmax and cross-entropy, CPU_CLASSIFIER_ROWS rows at a time: the
 * chunk's logits are computed, turned into losses and (when training) into their gradient in
 * place, and pushed back through the head before the next chunk, so the full N x Vp logits and
 * their gradient never exist. */
#include <cblas.h>
#include <math.h>

#include "ops/cpu/cpu_kernels.h"

void cpu_classifier(float *losses, float *dinp, float *dwte, const float *inp, const float *wte,
                    const int32_t *targets, int N, int C, int V, int Vp, float dloss,
                    float *scratch) {
    for (int r0 = 0; r0 < N; r0 += CPU_CLASSIFIER_ROWS) {
        int rows = N - r0 < CPU_CLASSIFIER_ROWS ? N - r0 : CPU_CLASSIFIER_ROWS;
        float *logits = scratch;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, Vp, C, 1.0f,
                    inp + (size_t)r0 * C, C, wte, C, 0.0f, logits, Vp);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            float *x = logits + (size_t)r * Vp;
            int target = targets[r0 + r];
            float maxv = -INFINITY;
            for (int j = 0; j < V; j++) maxv = x[j] > maxv ? x[j] : maxv;
            float target_logit = x[target], sum = 0.0f;
            for (int j = 0; j < V; j++) {
                x[j] = expf(x[j] - maxv);
                sum += x[j];
            }
            losses[r0 + r] = logf(sum) - (target_logit - maxv);
            if (!dinp) continue;
            /* d(loss)/d(logit_j) = softmax_j - [j == target]; padded columns get none. */
            float inv = 1.0f / sum;
            for (int j = 0; j < V; j++) x[j] = x[j] * inv * dloss;
            x[target] -= dloss;
            for (int j = V; j < Vp; j++) x[j] = 0.0f;
        }
        if (!dinp) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, Vp, 1.0f, logits, Vp, wte,
                    C, 0.0f, dinp + (size_t)r0 * C, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Vp, C, rows, 1.0f, logits, Vp,
                    inp + (size_t)r0 * C, C, 1.0f, dwte, C);
    }
}
