/* The optimizer step of the recipe: global gradient norm, clipping, the learning-rate schedule
 * and AdamW (decay only on 2-D tensors, as the parameter table marks them). */
#ifndef GPT2C_OPTIMIZER_H
#define GPT2C_OPTIMIZER_H

#include "model/gpt2.h"

typedef struct adamw_config {
    double lr, min_lr_ratio, beta1, beta2, eps, weight_decay, grad_clip;
    int warmup_steps, max_steps;
} adamw_config;

typedef struct adamw_state {
    float *m, *v; /* first and second moments, laid out like the parameters */
    long t;       /* optimizer steps taken */
} adamw_state;

/* Linear warmup for `warmup_steps`, cosine decay to lr * min_lr_ratio at max_steps, then flat. */
double lr_at(const adamw_config *c, long it);

int adamw_state_alloc(adamw_state *s, size_t n, gpt2c_error *err);
void adamw_state_free(adamw_state *s);

/* One step at iteration `it` (0-based) on m->grads: returns the global gradient norm measured
 * before clipping, and the learning rate used in *lr. */
double adamw_step(gpt2_model *m, adamw_state *s, const adamw_config *c, long it, double *lr);

#endif
