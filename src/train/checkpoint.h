/* The resume state, OUT_DIR/state/train_state.safetensors: one file (so one atomic rename makes
 * it current) with the fp32 parameters and AdamW's moments as tensors, and in its metadata the
 * format version, the step to run next, the data position and what must not change on resume. */
#ifndef GPT2C_CHECKPOINT_H
#define GPT2C_CHECKPOINT_H

#include <stdint.h>

#include "model/gpt2.h"
#include "train/optimizer.h"
#include "train/outliers.h"

#define CKPT_FORMAT "gpt2c-train-state"
#define CKPT_VERSION 1

typedef struct train_state {
    gpt2_config cfg;
    int batch_size, seq_len, nproc;
    long long total_batch;
    long next_step;        /* steps done */
    long adam_t;
    uint64_t data_shard, data_pos;  /* where the train loader continues */
    uint64_t data_shards, data_tokens; /* the train data it was reading, to detect a change */
    /* the skipping of outlier updates: recent updates' losses and norms, and the updates
     * skipped in a row (absent from older files: empty, 0) */
    outlier_window loss_window, norm_window;
    long skips_in_a_row;
} train_state;

/* Path of the state file in a run directory (malloc'ed). */
char *ckpt_path(const char *out_dir);
int ckpt_exists(const char *out_dir);
int ckpt_save(const char *out_dir, const gpt2_model *m, const adamw_state *s,
              const train_state *st, gpt2c_error *err);
/* Read only the metadata (to learn the model's shape before creating it). */
int ckpt_read_meta(const char *out_dir, train_state *st, gpt2c_error *err);
/* Load parameters and moments into a model created with st->cfg. */
int ckpt_load(const char *out_dir, gpt2_model *m, adamw_state *s, gpt2c_error *err);

#endif
