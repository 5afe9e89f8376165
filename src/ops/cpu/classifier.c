/* The LM head fused with softmax and cross-entropy, CPU_CLASSIFIER_ROWS rows at a time: the
 * chunk's logits are computed, turned into losses and (when training) into their gradient in
 * place, and pushed back through the head before the next chunk, so the full N x Vp logits and
 * their gradient never exist. */
#include <math.h>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/fast_exp.h"

/* One row of logits z[Vp] (the first V real): returns the cross-entropy loss of target; with
 * dloss non-zero, z becomes dloss * d(loss)/dz = dloss * (softmax - onehot(target)), with zeros in
 * the padded columns. */
CPU_CLONES static float softmax_xent_row(float *z, int V, int Vp, int target, float dloss) {
    float maxv = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : maxv)
    for (int j = 0; j < V; j++) maxv = z[j] > maxv ? z[j] : maxv;
    float target_logit = z[target];
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) {
        z[j] = fast_exp_nonpos(z[j] - maxv);
        sum += z[j];
    }
    float loss = logf(sum) - (target_logit - maxv);
    if (dloss == 0.0f) return loss;
    float scale = dloss / sum;
#pragma omp simd
    for (int j = 0; j < V; j++) z[j] *= scale;
    z[target] -= dloss;
    for (int j = V; j < Vp; j++) z[j] = 0.0f;
    return loss;
}

/* The scratch: one chunk of logits (fp32), and with bf16 the chunk's logit gradient and input
 * rounded to bf16. */
size_t cpu_classifier_scratch_floats(int C, int Vp) {
    size_t rows = CPU_CLASSIFIER_ROWS;
    return rows * Vp + (rows * Vp + rows * C) / 2 + 64;
}

void cpu_classifier(float *losses, float *dinp, float *dwte, const float *inp, const float *wte,
                    const gpt2_bf16 *wte_bf16, const int32_t *targets, int N, int C, int V, int Vp,
                    float dloss, float *scratch) {
    float *logits = scratch;
    gpt2_bf16 *dlogits_bf16 = (gpt2_bf16 *)(scratch + (size_t)CPU_CLASSIFIER_ROWS * Vp);
    gpt2_bf16 *inp_bf16 = dlogits_bf16 + (size_t)CPU_CLASSIFIER_ROWS * Vp;
    for (int r0 = 0; r0 < N; r0 += CPU_CLASSIFIER_ROWS) {
        int rows = N - r0 < CPU_CLASSIFIER_ROWS ? N - r0 : CPU_CLASSIFIER_ROWS;
        const float *x = inp + (size_t)r0 * C;
        if (wte_bf16) {
            cpu_to_bf16(inp_bf16, x, (size_t)rows * C);
            cpu_gemm(GEMM_BF16, 0, 1, rows, Vp, C, inp_bf16, wte_bf16, NULL, logits, 0);
        } else {
            cpu_gemm(GEMM_F32, 0, 1, rows, Vp, C, x, wte, NULL, logits, 0);
        }
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++)
            losses[r0 + r] = softmax_xent_row(logits + (size_t)r * Vp, V, Vp, targets[r0 + r],
                                              dinp ? dloss : 0.0f);
        if (!dinp) continue;
        if (wte_bf16) {
            cpu_to_bf16(dlogits_bf16, logits, (size_t)rows * Vp);
            cpu_gemm(GEMM_BF16, 0, 0, rows, C, Vp, dlogits_bf16, wte_bf16, NULL,
                     dinp + (size_t)r0 * C, 0);
            cpu_gemm(GEMM_BF16, 1, 0, Vp, C, rows, dlogits_bf16, inp_bf16, NULL, dwte, 1);
        } else {
            cpu_gemm(GEMM_F32, 0, 0, rows, C, Vp, logits, wte, NULL, dinp + (size_t)r0 * C, 0);
            cpu_gemm(GEMM_F32, 1, 0, Vp, C, rows, logits, x, NULL, dwte, 1);
        }
    }
}
