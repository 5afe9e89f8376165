/* A model as a Hugging Face GPT-2 directory: config.json + model.safetensors, tensor names of
 * GPT2Model ("wte.weight", "h.0.attn.c_attn.weight", ...), Conv1D weights stored [in, out]. */
#ifndef GPT2C_HF_MODEL_H
#define GPT2C_HF_MODEL_H

#include "model/gpt2.h"

/* Create m from DIR: the config, then every tensor (F32, F16 or BF16), with or without the
 * "transformer." prefix of GPT2LMHeadModel; the attn.bias / attn.masked_bias buffers of old
 * checkpoints and a tied lm_head.weight are ignored; any other tensor is an error. */
int hf_model_load(gpt2_model *m, const char *dir, const gpt2_backend *be, gpt2c_error *err);
/* Write DIR/model.safetensors (fp32, vocab 50257) and DIR/config.json, each atomically;
 * DIR is created if needed. */
int hf_model_save(const gpt2_model *m, const char *dir, gpt2c_error *err);

#endif
