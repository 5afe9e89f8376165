/* The parameter table: every tensor of the model with its Hugging Face name, shape, place in the
 * one flat parameter buffer, and optimizer group. Init, loading, saving, the optimizer and export
 * all walk this table; nothing else knows the order of the tensors. */
#ifndef GPT2C_PARAMS_H
#define GPT2C_PARAMS_H

#include <stddef.h>

#include "model/config.h"

/* The tensors of one block, in table order. */
enum {
    P_LN1_W, P_LN1_B, P_QKV_W, P_QKV_B, P_ATTN_PROJ_W, P_ATTN_PROJ_B,
    P_LN2_W, P_LN2_B, P_FC_W, P_FC_B, P_MLP_PROJ_W, P_MLP_PROJ_B, P_PER_LAYER
};

typedef enum { INIT_ZERO, INIT_ONE, INIT_NORMAL, INIT_NORMAL_RESIDUAL } param_init;

typedef struct gpt2_param {
    char name[48];    /* Hugging Face name, e.g. "h.3.attn.c_attn.weight" */
    int ndim;
    int shape[2];     /* in memory: matmul weights are [out, in], as nn.Linear */
    int hf_shape[2];  /* in the file: Conv1D weights are [in, out]; wte has 50257 rows */
    int hf_transposed;
    int decay;        /* weight decay applies (2-D tensors only) */
    param_init init;
    size_t offset, numel;
} gpt2_param;

typedef struct gpt2_layer_tensors {
    float *t[P_PER_LAYER];
} gpt2_layer_tensors;

/* Pointers into a flat buffer laid out by the table (parameters and gradients alike). */
typedef struct gpt2_tensors {
    float *wte, *wpe, *lnf_w, *lnf_b;
    gpt2_layer_tensors *layers; /* n_layer entries */
} gpt2_tensors;

typedef struct gpt2_param_table {
    gpt2_param *params;
    size_t count;
    size_t total; /* floats */
} gpt2_param_table;

int gpt2_param_table_build(gpt2_param_table *tab, const gpt2_config *cfg, gpt2c_error *err);
void gpt2_param_table_free(gpt2_param_table *tab);
const gpt2_param *gpt2_param_find(const gpt2_param_table *tab, const char *hf_name);
/* Bind tensor pointers (layers: caller-provided array of n_layer) to a buffer of tab->total. */
void gpt2_tensors_bind(gpt2_tensors *ts, gpt2_layer_tensors *layers, const gpt2_param_table *tab,
                       const gpt2_config *cfg, float *base);

#endif
