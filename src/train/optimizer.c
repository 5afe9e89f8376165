#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "train/optimizer.h"
#include "util/error.h"

double adamw_lr_at(const adamw_config *c, long it) {
    double min_lr = c->lr * c->min_lr_ratio;
    if (it < c->warmup_steps) return c->lr * (double)(it + 1) / c->warmup_steps;
    if (it > c->max_steps) return min_lr;
    /* it == warmup == max_steps would divide by zero: the cosine has no length, use its end */
    if (c->max_steps <= c->warmup_steps) return min_lr;
    double ratio = (double)(it - c->warmup_steps) / (double)(c->max_steps - c->warmup_steps);
    return min_lr + 0.5 * (1.0 + cos(M_PI * ratio)) * (c->lr - min_lr);
}

int adamw_state_alloc(adamw_state *s, const gpt2_backend *be, size_t n, gpt2c_error *err) {
    s->be = be;
    s->runs = NULL, s->runs_cap = 0;
    s->m = be->ops->alloc(n * sizeof(float));
    s->v = be->ops->alloc(n * sizeof(float));
    s->t = 0;
    if (!s->m || !s->v) {
        adamw_state_free(s);
        return err_set(err, "out of memory for the optimizer state (%zu parameters)", n);
    }
    return 0;
}

void adamw_state_free(adamw_state *s) {
    if (s->be) {
        s->be->ops->free(s->m);
        s->be->ops->free(s->v);
    }
    s->m = s->v = NULL;
    free(s->runs);
    s->runs = NULL, s->runs_cap = 0;
}

double adamw_grad_sum_squares(const gpt2_model *m, size_t lo, size_t hi) {
    double sum;
    m->be->ops->sum_squares(&sum, m->grads + lo, hi - lo);
    return sum;
}

double adamw_update(gpt2_model *m, adamw_state *s, const adamw_config *c, long it, size_t lo,
                    size_t hi, double norm) {
    const gpt2_ops *op = m->be->ops;
    /* Clipping folds into the AdamW pass as a scale of the gradient. (PyTorch's clip_grad_norm_
     * divides by norm + 1e-6; the recipe's clip / norm differs from it by 1e-6 relative.) */
    float scale = 1.0f;
    if (c->grad_clip > 0.0 && norm > c->grad_clip) scale = (float)(c->grad_clip / norm);
    double lr = adamw_lr_at(c, it);
    s->t++;
    double bc1 = 1.0 - pow(c->beta1, (double)s->t), bc2 = 1.0 - pow(c->beta2, (double)s->t);
    /* [lo, hi) in one call: the runs of tensors with and without weight decay in it, from lo */
    if (s->runs_cap < m->table.count) {
        gpt2_decay_run *grown = realloc(s->runs, m->table.count * sizeof *grown);
        if (!grown) { /* a few KB: nothing sensible is left to do */
            fprintf(stderr, "gpt2c: out of memory for the optimizer's %zu runs\n", m->table.count);
            abort();
        }
        s->runs = grown, s->runs_cap = m->table.count;
    }
    gpt2_decay_run *runs = s->runs;
    int nruns = 0;
    for (size_t i = 0; i < m->table.count; i++) {
        const gpt2_param *p = &m->table.params[i];
        size_t a = p->offset > lo ? p->offset : lo, b = p->offset + p->numel;
        b = b < hi ? b : hi;
        if (a >= b || (nruns > 0 && runs[nruns - 1].decay == p->decay)) continue;
        runs[nruns++] = (gpt2_decay_run){a - lo, p->decay};
    }
    if (nruns > 0)
        op->adamw(m->params + lo, m->params_bf16 ? m->params_bf16 + lo : NULL, m->grads + lo, s->m,
                  s->v, hi - lo, runs, nruns, lr, (float)c->beta1, (float)c->beta2, (float)c->eps,
                  (float)c->weight_decay, scale, bc1, bc2);
    return lr;
}
