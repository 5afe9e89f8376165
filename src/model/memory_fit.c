#include "model/memory_fit.h"
#include "util/error.h"

int memory_fit(const gpt2_backend *be, double need, double held, const char *what,
               const char *parts, const char *advice, gpt2c_error *err) {
    double avail = be->ops->mem_available(); /* < 0: the backend cannot say */
    if (avail < 0 || need - held <= avail) return 0;
    return err_set(err, "%s needs %.1f GB%s, the %s has %.1f GB available: %s", what, need / 1e9,
                   parts, be->memory, (avail + held) / 1e9, advice);
}

double memory_fit_held(const gpt2_model *m) {
    /* (gpt2_plan_parts' params and copy, without sizing a plan) */
    return (double)m->flat * sizeof(float) +
           (m->params_bf16 ? (double)m->table.total * sizeof(gpt2_bf16) : 0);
}

int memory_fit_plan(gpt2_model *m, int B, int T, int training, size_t moments, const char *what,
                    const char *advice, gpt2c_error *err) {
    if (memory_fit(m->be, gpt2_plan_bytes(m, B, T, training, moments), memory_fit_held(m),
                   what, training ? " (parameters, gradients, AdamW state, activations)"
                                  : " (parameters, activations)",
                   advice, err) != 0)
        return -1;
    return gpt2_plan(m, B, T, training, err);
}
