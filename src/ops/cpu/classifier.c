/* The LM head fused with softmax and cross-entropy, CPU_CLASSIFIER_ROWS rows at a time: the
 * chunk's logits are computed, turned into losses and (when training) into their gradient in
 * place, and pushed back through the head before the next chunk, so the full N x Vp logits and
 * their gradient never exist. */
#include <math.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "util/mem.h"
#include "ops/cpu/fast_exp.h"

/* One row of logits z[Vp] (the first V real): *loss gets the cross-entropy loss of target; with
 * dloss non-zero, z becomes dloss * d(loss)/dz = dloss * (softmax - onehot(target)), with zeros in
 * the padded columns. */
CPU_KERNEL(softmax_xent_row, (float *z, int V, int Vp, int target, float dloss, float *loss),
           (z, V, Vp, target, dloss, loss)) {
    float maxv = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : maxv)
    for (int j = 0; j < V; j++) maxv = z[j] > maxv ? z[j] : maxv;
    float target_logit = z[target];
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) {
        z[j] = fast_exp_nonpos(z[j] - maxv);
        sum += z[j];
    }
    *loss = logf(sum) - (target_logit - maxv);
    if (dloss == 0.0f) return;
    float scale = dloss / sum;
#pragma omp simd
    for (int j = 0; j < V; j++) z[j] *= scale;
    z[target] -= dloss;
    for (int j = V; j < Vp; j++) z[j] = 0.0f;
}

/* The scratch: one chunk of logits (fp32); with bf16, the chunk's input and logit gradient in
 * bf16 (native), or the input rounded in fp32 and the whole wte widened to fp32, once per call
 * rather than once per chunk (emulated: the logit gradient is rounded in place). Each piece
 * starts on a cache line; `layout_of` gives their offsets in bytes (and the end: the size),
 * which both the pieces and the size the plan reserves come from. */
typedef enum { ROUTE_F32, ROUTE_NATIVE, ROUTE_EMULATED } route;

typedef struct layout {
    size_t logits, dlogits_bf16, x_bf16, x_round, wte_f32, end;
} layout;

static route route_of(int bf16) {
    return !bf16 ? ROUTE_F32 : cpu_bf16_native() ? ROUTE_NATIVE : ROUTE_EMULATED;
}

static layout layout_of(int C, int Vp, route r) {
    size_t rows = CPU_CLASSIFIER_ROWS;
    layout l = {0};
    l.end = mem_after(l.logits, rows * Vp, sizeof(float));
    if (r == ROUTE_NATIVE) {
        l.dlogits_bf16 = l.end;
        l.x_bf16 = mem_after(l.dlogits_bf16, rows * Vp, sizeof(gpt2_bf16));
        l.end = mem_after(l.x_bf16, rows * C, sizeof(gpt2_bf16));
    } else if (r == ROUTE_EMULATED) {
        l.x_round = l.end;
        l.wte_f32 = mem_after(l.x_round, rows * C, sizeof(float));
        l.end = mem_after(l.wte_f32, (size_t)Vp * C, sizeof(float));
    }
    return l;
}

size_t cpu_classifier_scratch_floats(int C, int Vp, int bf16) {
    return layout_of(C, Vp, route_of(bf16)).end / sizeof(float);
}

void cpu_classifier(float *losses, gpt2_act *dinp_, float *dwte, const gpt2_act *inp_,
                    const float *wte, const gpt2_bf16 *wte_bf16, const int32_t *targets, int N,
                    int C, int V, int Vp, float dloss, float *scratch) {
    float *dinp = cpu_f(dinp_);
    const float *inp = cpu_cf(inp_);
    route way = route_of(wte_bf16 != NULL);
    int native = way == ROUTE_NATIVE, emulated = way == ROUTE_EMULATED;
    layout l = layout_of(C, Vp, way);
    char *base = (char *)scratch;
    float *logits = (float *)(base + l.logits), *x_round = NULL, *wte_f32 = NULL;
    gpt2_bf16 *dlogits_bf16 = NULL, *x_bf16 = NULL;
    if (native) {
        dlogits_bf16 = (gpt2_bf16 *)(base + l.dlogits_bf16);
        x_bf16 = (gpt2_bf16 *)(base + l.x_bf16);
    } else if (emulated) {
        x_round = (float *)(base + l.x_round);
        wte_f32 = (float *)(base + l.wte_f32);
        cpu_from_bf16(wte_f32, wte_bf16, (size_t)Vp * C);
    }
    void (*softmax_xent)(float *, int, int, int, float, float *) = CPU_PICK(softmax_xent_row);
    for (int r0 = 0; r0 < N; r0 += CPU_CLASSIFIER_ROWS) {
        int rows = N - r0 < CPU_CLASSIFIER_ROWS ? N - r0 : CPU_CLASSIFIER_ROWS;
        const float *x = inp + (size_t)r0 * C, *w = wte;
        size_t nx = (size_t)rows * C, nz = (size_t)rows * Vp;
        if (native) {
            cpu_to_bf16(x_bf16, x, nx);
            cpu_gemm(GEMM_BF16, 0, 1, rows, Vp, C, x_bf16, wte_bf16, NULL, logits, 0);
        } else {
            if (emulated) cpu_round_bf16(x_round, x, nx), x = x_round, w = wte_f32;
            cpu_gemm(GEMM_F32, 0, 1, rows, Vp, C, x, w, NULL, logits, 0);
        }
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++)
            softmax_xent(logits + (size_t)r * Vp, V, Vp, targets[r0 + r], dinp ? dloss : 0.0f,
                         &losses[r0 + r]);
        if (!dinp) continue;
        float *dx = dinp + (size_t)r0 * C;
        if (native) {
            cpu_to_bf16(dlogits_bf16, logits, nz);
            cpu_gemm(GEMM_BF16, 0, 0, rows, C, Vp, dlogits_bf16, wte_bf16, NULL, dx, 0);
            cpu_gemm(GEMM_BF16, 1, 0, Vp, C, rows, dlogits_bf16, x_bf16, NULL, dwte, 1);
        } else {
            if (emulated) cpu_round_bf16(logits, logits, nz);
            cpu_gemm(GEMM_F32, 0, 0, rows, C, Vp, logits, w, NULL, dx, 0);
            cpu_gemm(GEMM_F32, 1, 0, Vp, C, rows, logits, x, NULL, dwte, 1);
        }
    }
}

/* Generation's LM head: matmul_forward's product without a bias, straight into the fp32 logits
 * (the CPU's activations are fp32 already). */
void cpu_logits_forward(float *logits, const gpt2_act *inp, const float *wte,
                        const gpt2_bf16 *wte_bf16, int N, int C, int Vp, float *scratch) {
    cpu_matmul_forward((gpt2_act *)logits, inp, wte, wte_bf16, NULL, N, C, Vp, scratch);
}

/* The rows in order, as the host summed them before this was an op (the same bits). */
void cpu_loss_sum(double *acc, const float *losses, int N, float weight) {
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += losses[i];
    acc[0] += (double)(weight * (float)(sum / N));
}
