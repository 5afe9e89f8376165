/* The optimizer step of the recipe: global gradient norm, clipping, the learning-rate schedule
 * and AdamW (decay only on 2-D tensors, as the parameter table marks them). The module's prefix
 * is adamw_. */
#ifndef GPT2C_OPTIMIZER_H
#define GPT2C_OPTIMIZER_H

#include "model/gpt2.h"

typedef struct adamw_config {
    double lr, min_lr_ratio, beta1, beta2, eps, weight_decay, grad_clip;
    int warmup_steps, max_steps;
} adamw_config;

typedef struct adamw_state {
    float *m, *v; /* first and second moments of the parameters this rank updates, laid out like
                     them: all of them, or with ZeRO-1 its shard [lo, hi) (m[0] is parameter lo) */
    long t;       /* optimizer steps taken */
    const gpt2_backend *be; /* whose memory m and v are in */
    gpt2_decay_run *runs;   /* (host) the update's weight-decay runs, one per tensor at most */
    size_t runs_cap;
} adamw_state;

/* Linear warmup for `warmup_steps`, cosine decay to lr * min_lr_ratio at max_steps, then flat. */
double adamw_lr_at(const adamw_config *c, long it);

int adamw_state_alloc(adamw_state *s, const gpt2_backend *be, size_t n, gpt2c_error *err);
void adamw_state_free(adamw_state *s);

/* This rank's part of the squared global gradient norm: gradients [lo, hi). */
double adamw_grad_sum_squares(const gpt2_model *m, size_t lo, size_t hi);
/* One AdamW step at iteration `it` (0-based) on parameters [lo, hi), given the global gradient
 * norm measured before clipping; it zeroes the gradients it reads. Returns the learning rate. */
double adamw_update(gpt2_model *m, adamw_state *s, const adamw_config *c, long it, size_t lo,
                    size_t hi, double norm);

#endif
