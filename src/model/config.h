/* GPT-2 model shapes: the presets and the checks every config passes, whatever its source
 * (a preset name, a Hugging Face config.json, a resume state). */
#ifndef GPT2C_MODEL_CONFIG_H
#define GPT2C_MODEL_CONFIG_H

#include "gpt2c.h"

/* The vocabulary is always GPT-2's 50257 tokens, stored padded to a multiple of 128 so that
 * matmul shapes are friendly to fast kernels. Padded rows are zero and never seen by softmax. */
#define GPT2_VOCAB GPT2C_VOCAB_SIZE
#define GPT2_VOCAB_PADDED 50304

typedef struct gpt2_config {
    int n_layer, n_head, n_embd;
    int max_seq_len; /* learned positions (Hugging Face: n_positions) */
} gpt2_config;

/* "d12", "d24", ... into cfg (max_seq_len 1024). -1 with a message listing the presets. */
int gpt2_config_preset(const char *name, gpt2_config *cfg, gpt2c_error *err);
/* Shapes that the model supports: all positive, n_embd divisible by n_head, sizes bounded. */
int gpt2_config_check(const gpt2_config *cfg, gpt2c_error *err);

#endif
