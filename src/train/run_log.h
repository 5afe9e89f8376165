/* OUT_DIR/log.jsonl: one JSON object per line, {"step":..,"loss":..,"lr":..,"norm":..,
 * "dt_ms":..,"tok_s":..} per step, {"step":..,"val_loss":..} per validation and
 * {"step":..,"hellaswag_acc_norm":..} per HellaSwag evaluation. */
#ifndef GPT2C_RUN_LOG_H
#define GPT2C_RUN_LOG_H

#include <stdio.h>

#include "gpt2c.h"
#include "train/tensorboard.h"

/* With a TensorBoard directory, every record also goes there as scalars: loss, lr, grad_norm,
 * tokens_per_s, step_ms, val_loss, hellaswag_acc_norm, hellaswag_acc; and samples as text. */
typedef struct run_log {
    FILE *f;
    char *path;
    tb_writer tb; /* tb.f NULL: none */
} run_log;

/* A fresh run (start_step 0) starts an empty log. A resumed run keeps the records of the steps
 * before start_step and drops later ones (written after the checkpoint by a run that then
 * stopped), rewriting the file atomically, so the log reads as one uninterrupted run. */
int run_log_open(run_log *l, const char *out_dir, long start_step, const char *tensorboard_dir,
                 gpt2c_error *err);
int run_log_step(run_log *l, const gpt2c_train_step *s, gpt2c_error *err);
int run_log_val(run_log *l, long step, double val_loss, gpt2c_error *err);
/* {"step":..,"hellaswag_acc_norm":..,"hellaswag_acc":..,"hellaswag_n":..} */
int run_log_hellaswag(run_log *l, long step, int n, double acc, double acc_norm, gpt2c_error *err);
/* TensorBoard only: sample i's text at this step (tag samples/i+1) */
int run_log_sample(run_log *l, long step, int i, const char *text, size_t len, gpt2c_error *err);
int run_log_close(run_log *l, gpt2c_error *err);

#endif
