/* Hugging Face GPT-2 config.json: read the shape of a model, write one that
 * transformers.GPT2LMHeadModel.from_pretrained accepts. */
#ifndef GPT2C_HF_CONFIG_H
#define GPT2C_HF_CONFIG_H

#include "model/config.h"

/* Reads DIR/config.json. Requires model_type "gpt2" (or an "architectures" entry starting with
 * "GPT2"), integers n_layer, n_head, n_embd, n_positions (n_ctx as a fallback), vocab_size 50257;
 * optional activation_function must be "gelu_new" (the tanh GELU) and layer_norm_epsilon 1e-5.
 * Optional fields that would change the model's math must hold GPT-2's values: n_inner null or
 * 4 * n_embd, scale_attn_weights true, scale_attn_by_inverse_layer_idx and add_cross_attention
 * false, tie_word_embeddings true. Then gpt2_config_check. Each missing or wrong field gives an
 * error naming the file and the field; cfg is written only on success. */
int hf_config_read(const char *dir, gpt2_config *cfg, gpt2c_error *err);
/* Writes DIR/config.json atomically (a complete GPT-2 config, vocab_size 50257, no dropout). */
int hf_config_write(const char *dir, const gpt2_config *cfg, gpt2c_error *err);

#endif
