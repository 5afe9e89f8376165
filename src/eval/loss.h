/* The loss evaluation: the mean loss of a model over batches from the start of token shards,
 * as `gpt2c eval --data` (gpt2c_eval) and training's validation compute it. */
#ifndef GPT2C_EVAL_LOSS_H
#define GPT2C_EVAL_LOSS_H

#include "data/loader.h"
#include "model/gpt2.h"

/* This rank's sum of the mean losses of batches 0..steps-1 from the start of the data: those of
 * them its loader reads (every nproc-th from its rank on), so that the sum over the ranks is one
 * process's. m is planned for the loader's B x T. */
int eval_loss_sum(gpt2_model *m, loader *l, int steps, double *sum, gpt2c_error *err);

#endif
