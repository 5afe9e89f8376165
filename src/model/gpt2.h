/* GPT-2: the forward and backward passes, written once against the ops table (ops/ops.h) of a
 * backend handle (ops/backend.h), and the memory plan that sizes every buffer before the first
 * step. */
#ifndef GPT2C_GPT2_H
#define GPT2C_GPT2_H

#include <stdint.h>

#include "model/params.h"
#include "ops/backend.h"

/* What the forward pass keeps of one block for the backward. Shapes with N = B*T rows;
 * activations in the backend's type, the LayerNorm and attention statistics fp32. */
typedef struct gpt2_layer_acts {
    gpt2_act *ln1;                    /* (N,C) */
    float *ln1_mean, *ln1_rstd;       /* (N), (N) */
    gpt2_act *qkv;                    /* (N,3C) */
    gpt2_act *atty;                   /* (N,C) */
    float *lse;                       /* (B,NH,T) */
    gpt2_act *res2;                   /* (N,C) residual after attention */
    gpt2_act *ln2;                    /* (N,C) */
    float *ln2_mean, *ln2_rstd;       /* (N), (N) */
    gpt2_act *fch, *fch_gelu;         /* (N,4C) each */
    gpt2_act *res3;                   /* (N,C) residual after the MLP: the block's output */
} gpt2_layer_acts;

typedef struct gpt2_model {
    gpt2_config cfg;
    const gpt2_backend *be; /* where it runs (the caller's; it outlives the model) */
    gpt2_param_table table;
    float *params, *grads; /* flat, laid out by the table, in the backend's memory;
                              grads only when planned for training */
    size_t flat;           /* the floats each holds: table.total, then zeros (gpt2_pad_flat) */
    gpt2_tensors w, g;
    /* --precision bf16: the parameters rounded to bf16 (same layout), which the matmuls read;
     * rewritten by every AdamW step. NULL in fp32. */
    gpt2_bf16 *params_bf16;

    /* The plan, for micro-batches of B x T. recompute (set before gpt2_plan): keep no GELU
     * outputs, the backward recomputes each layer's (4*B*T*C activations per layer less). */
    int B, T, training, recompute;
    void *acts;            /* one allocation for everything below */
    gpt2_layer_acts *layer_acts;
    gpt2_act *encoded, *lnf; /* (N,C) */
    float *lnf_mean, *lnf_rstd, *losses; /* (N) */
    double *loss_acc; /* the losses accumulated since the last gpt2_loss_take (one double) */
    gpt2_act *dres, *dC, *d4C; /* backward: residual-stream gradient and two work buffers */
    float *scratch;
    int32_t *inputs, *targets; /* (B,T), host: the caller fills them before gpt2_forward */
    int32_t *inputs_dev, *targets_dev; /* what the ops read: the same arrays on a host-memory backend, copies
                                          (in tokens_dev) on a device */
    int32_t *tokens_dev;
    float *losses_host;        /* on a device: the losses brought back (gpt2_row_losses) */
    void *recording;           /* a training micro-step as the backend recorded it, or NULL */
    float recorded_dloss, recorded_weight; /* its numbers */
    int no_recording;          /* the backend tried and could not: run the ops as called */
} gpt2_model;

/* Parameters allocated and zeroed (the padded vocabulary rows stay zero forever). */
int gpt2_create(gpt2_model *m, const gpt2_config *cfg, const gpt2_backend *be, gpt2c_error *err);
/* The flat buffers (params, and grads when planned) made `floats` long, the values past the
 * table's zero: for collectives that move equal shards of them (dist/comm.h: comm_padded).
 * Before gpt2_plan; the parameters are kept. */
int gpt2_pad_flat(gpt2_model *m, size_t floats, gpt2c_error *err);
void gpt2_free(gpt2_model *m);
/* GPT-2's init: normal(0, 0.02), residual projections 0.02/sqrt(2*n_layer), LayerNorm 1 and 0,
 * biases 0. Fails only when a device's parameters need a host copy that cannot be allocated. */
int gpt2_init_random(gpt2_model *m, uint64_t seed, gpt2c_error *err);
/* Switch to mixed precision (a bf16 copy of the parameters for the matmuls, fp32 everything
 * else) or back to fp32, before gpt2_plan (the ops' scratch depends on it). Fails when the
 * backend cannot run bf16 products on this machine. */
int gpt2_set_precision(gpt2_model *m, gpt2_precision p, gpt2c_error *err);
/* After the parameters were changed other than by AdamW (loaded, initialised): refresh the copy. */
void gpt2_params_changed(gpt2_model *m);
/* The bf16 copy of the parameter tensor w (a pointer into m->params), NULL in fp32. */
static inline const gpt2_bf16 *gpt2_bf16_copy(const gpt2_model *m, const float *w) {
    return m->params_bf16 ? m->params_bf16 + (w - m->params) : NULL;
}

/* A model that shares m's parameters (and their bf16 copy) and has no plan yet: an evaluation's
 * own plan beside the training one (HellaSwag during training). It owns only its plan: free it
 * with gpt2_unplan, never gpt2_free, and before m. */
void gpt2_view(gpt2_model *view, const gpt2_model *m);
/* Free the plan (activations, the batch arrays), keeping the parameters. */
void gpt2_unplan(gpt2_model *m);

/* Size and allocate activations (and gradients when training) for B x T micro-batches. */
int gpt2_plan(gpt2_model *m, int B, int T, int training, gpt2c_error *err);
/* Bytes a run needs in all: the parameters (and their bf16 copy), the plan, and when training
 * the gradients and the AdamW moments of `moments` parameters (this rank's share: all of them,
 * or its shard with ZeRO-1; 0 when not training). */
double gpt2_plan_bytes(const gpt2_model *m, int B, int T, int training, size_t moments);
/* The same bytes by part, for the plan's report. */
typedef struct gpt2_plan_memory {
    double params, copy, grads, adamw, acts, scratch; /* copy: the bf16 weights */
} gpt2_plan_memory;
gpt2_plan_memory gpt2_plan_parts(const gpt2_model *m, int B, int T, int training, size_t moments);

/* One transformer block's forward, the one that training, evaluation and generation all run:
 * rows res (the residual stream entering block l) through attention and the MLP, into a->res3.
 * How it runs: */
typedef struct gpt2_block_pass {
    int N;       /* rows */
    int rowwise; /* the products through matmul_forward_rowwise: every row as alone */
    /* Attention. spans NULL: causal over B sequences of T rows from position 0, its lse kept for
     * the backward (training, evaluation). Else the spans' rows (ops/ops.h) join the layer's
     * caches of len positions per sequence, and attend to them (generation). */
    int B, T;
    const gpt2_span *spans;
    int nspans, len;
    gpt2_act *kcache, *vcache;
    /* NULL: the projections are written into res2 and res3, then the residual added there (a
     * layer's own buffers); else here first (generation, whose res, res2 and res3 are one
     * buffer). */
    gpt2_act *proj;
    float *scratch; /* the ops' */
} gpt2_block_pass;
void gpt2_block_forward(const gpt2_model *m, int l, const gpt2_act *res, gpt2_layer_acts *a,
                        const gpt2_block_pass *p);

/* Forward on m->inputs/targets: the mean loss over the B*T positions, times weight, added to
 * the model's loss accumulator where the backend keeps it, nothing read back (a micro-step
 * costs the host no wait for the device). With dloss > 0 (training) it also starts the backward
 * pass: the classifier's gradient of dloss * sum(losses). Then call gpt2_backward, which adds
 * this micro-batch's gradients to m->grads (zero after the plan and after every AdamW step,
 * which zeroes them as it reads them). */
void gpt2_forward_accumulate(gpt2_model *m, float dloss, float weight);
/* A training micro-step: gpt2_forward_accumulate, then gpt2_backward. Where the backend records
 * (a GPU's CUDA graph, GPT2C_CUDA_GRAPH=1), the first is recorded and the next replay it (a new
 * recording when dloss or weight change). */
void gpt2_train_micro_step(gpt2_model *m, float dloss, float weight);
/* The losses accumulated since the plan or the last take, read (one download) and reset. */
double gpt2_loss_take(gpt2_model *m);
/* gpt2_forward_accumulate with weight 1, then gpt2_loss_take: the batch's mean loss. */
float gpt2_forward(gpt2_model *m, float dloss);
/* The forward on m->inputs as B rows of T tokens (T at most the plan's: the activations' first
 * B*T positions), then the LM head and its loss only at the positions `rows` (n of them,
 * ascending, indices into the B*T positions; their targets from m->targets, which it
 * overwrites): gpt2_row_losses(m)[i] is then the loss at rows[i]. Nothing is accumulated. For
 * an evaluation that scores a few positions of each row (HellaSwag's endings): the LM head over
 * every position would cost as much as the blocks in GPT-2 124M, and most of the time in
 * smaller models. */
void gpt2_forward_rows(gpt2_model *m, int T, const int32_t *rows, int n);
/* Each position's loss from the last forward, in host memory (brought back on a device). */
const float *gpt2_row_losses(gpt2_model *m);
void gpt2_backward(gpt2_model *m);

#endif
