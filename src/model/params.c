#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/params.h"
#include "util/error.h"

/* Table order: wte, wpe, then each block's tensors in P_* order, then ln_f. */
#define P_WTE 0
#define P_WPE 1
#define P_FIRST_LAYER 2

static void add(gpt2_param_table *tab, const char *name, int rows, int cols, int hf_transposed,
                param_init init) {
    gpt2_param *p = &tab->params[tab->count++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = cols ? 2 : 1;
    p->shape[0] = rows, p->shape[1] = cols;
    p->hf_shape[0] = hf_transposed ? cols : rows, p->hf_shape[1] = hf_transposed ? rows : cols;
    p->hf_transposed = hf_transposed;
    p->decay = p->ndim == 2;
    p->init = init;
    p->numel = (size_t)rows * (cols ? (size_t)cols : 1);
    p->offset = tab->total;
    tab->total += p->numel;
}

int gpt2_param_table_build(gpt2_param_table *tab, const gpt2_config *cfg, gpt2c_error *err) {
    memset(tab, 0, sizeof *tab);
    int L = cfg->n_layer, C = cfg->n_embd;
    tab->params = calloc((size_t)P_FIRST_LAYER + (size_t)L * P_PER_LAYER + 2, sizeof *tab->params);
    if (!tab->params) return err_set(err, "out of memory for the parameter table");
    add(tab, "wte.weight", GPT2_VOCAB_PADDED, C, 0, INIT_NORMAL);
    tab->params[P_WTE].hf_shape[0] = GPT2_VOCAB; /* the padding rows are not exported */
    add(tab, "wpe.weight", cfg->max_seq_len, C, 0, INIT_NORMAL);
    for (int l = 0; l < L; l++) {
        char n[48];
#define LAYER(suffix, rows, cols, tr, init) \
    (snprintf(n, sizeof n, "h.%d.%s", l, suffix), add(tab, n, rows, cols, tr, init))
        LAYER("ln_1.weight", C, 0, 0, INIT_ONE);
        LAYER("ln_1.bias", C, 0, 0, INIT_ZERO);
        LAYER("attn.c_attn.weight", 3 * C, C, 1, INIT_NORMAL);
        LAYER("attn.c_attn.bias", 3 * C, 0, 0, INIT_ZERO);
        LAYER("attn.c_proj.weight", C, C, 1, INIT_NORMAL_RESIDUAL);
        LAYER("attn.c_proj.bias", C, 0, 0, INIT_ZERO);
        LAYER("ln_2.weight", C, 0, 0, INIT_ONE);
        LAYER("ln_2.bias", C, 0, 0, INIT_ZERO);
        LAYER("mlp.c_fc.weight", 4 * C, C, 1, INIT_NORMAL);
        LAYER("mlp.c_fc.bias", 4 * C, 0, 0, INIT_ZERO);
        LAYER("mlp.c_proj.weight", C, 4 * C, 1, INIT_NORMAL_RESIDUAL);
        LAYER("mlp.c_proj.bias", C, 0, 0, INIT_ZERO);
#undef LAYER
    }
    add(tab, "ln_f.weight", C, 0, 0, INIT_ONE);
    add(tab, "ln_f.bias", C, 0, 0, INIT_ZERO);
    return 0;
}

void gpt2_param_table_free(gpt2_param_table *tab) {
    free(tab->params);
    memset(tab, 0, sizeof *tab);
}

const gpt2_param *gpt2_param_find(const gpt2_param_table *tab, const char *hf_name) {
    for (size_t i = 0; i < tab->count; i++)
        if (strcmp(tab->params[i].name, hf_name) == 0) return &tab->params[i];
    return NULL;
}

void gpt2_tensors_bind(gpt2_tensors *ts, gpt2_layer_tensors *layers, const gpt2_param_table *tab,
                       const gpt2_config *cfg, float *base) {
    const gpt2_param *p = tab->params;
    ts->wte = base + p[P_WTE].offset;
    ts->wpe = base + p[P_WPE].offset;
    for (int l = 0; l < cfg->n_layer; l++)
        for (int k = 0; k < P_PER_LAYER; k++)
            layers[l].t[k] = base + p[P_FIRST_LAYER + (size_t)l * P_PER_LAYER + k].offset;
    ts->layers = layers;
    size_t last = P_FIRST_LAYER + (size_t)cfg->n_layer * P_PER_LAYER;
    ts->lnf_w = base + p[last].offset;
    ts->lnf_b = base + p[last + 1].offset;
}
