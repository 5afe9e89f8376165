#include "io/hf_config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/atomic_file.h"
#include "util/error.h"

static char *config_path(const char *dir) {
    size_t n = strlen(dir);
    int slash = n > 0 && dir[n - 1] == '/';
    char *p = malloc(n + sizeof "/config.json");
    if (p) {
        memcpy(p, dir, n);
        strcpy(p + n, slash ? "config.json" : "/config.json");
    }
    return p;
}

/* A positive int field: 0, or -1 with a message; 1 (and no message) when optional and absent. */
static int get_int(const json_t *root, const char *path, const char *key, int optional, int *v,
                   gpt2c_error *err) {
    const json_t *j = json_object_get(root, key);
    if (!j && optional) return 1;
    if (!j) return err_set(err, "%s: %s is missing", path, key);
    if (!json_is_integer(j) || json_integer_value(j) <= 0 || json_integer_value(j) > INT_MAX)
        return err_set(err, "%s: %s must be a positive integer", path, key);
    *v = (int)json_integer_value(j);
    return 0;
}

static int is_gpt2(const json_t *root) {
    const json_t *type = json_object_get(root, "model_type");
    if (type) return json_is_string(type) && strcmp(json_string_value(type), "gpt2") == 0;
    size_t i;
    const json_t *arch;
    json_array_foreach(json_object_get(root, "architectures"), i, arch)
        if (json_is_string(arch) && strncmp(json_string_value(arch), "GPT2", 4) == 0) return 1;
    return 0;
}

/* Fields that, when present, must hold what our model computes: anything else would load
 * without complaint and then give different numbers. */
static int check_fields(const json_t *root, const char *path, const gpt2_config *cfg, gpt2c_error *err) {
    const json_t *j;
    if (!is_gpt2(root)) {
        j = json_object_get(root, "model_type");
        if (json_is_string(j))
            return err_set(err, "%s: model_type is \"%s\", not \"gpt2\"", path, json_string_value(j));
        return err_set(err, "%s: model_type is %s, not \"gpt2\"", path,
                       j ? "not a string" : "missing and no architecture is GPT2*");
    }
    j = json_object_get(root, "vocab_size");
    if (!j) return err_set(err, "%s: vocab_size is missing", path);
    if (!json_is_integer(j) || json_integer_value(j) != GPT2_VOCAB)
        return err_set(err, "%s: vocab_size must be %d (GPT-2's tokenizer)", path, GPT2_VOCAB);
    if ((j = json_object_get(root, "activation_function")) &&
        !(json_is_string(j) && strcmp(json_string_value(j), "gelu_new") == 0))
        return err_set(err, "%s: activation_function is \"%s\"; only \"gelu_new\" (the tanh GELU) is supported",
                       path, json_is_string(j) ? json_string_value(j) : "(not a string)");
    if ((j = json_object_get(root, "layer_norm_epsilon")) &&
        !(json_is_number(j) && fabs(json_number_value(j) - 1e-5) <= 1e-12))
        return err_set(err, "%s: layer_norm_epsilon must be 1e-05", path);
    if ((j = json_object_get(root, "n_inner")) && !json_is_null(j) &&
        !(json_is_integer(j) && json_integer_value(j) == 4 * (json_int_t)cfg->n_embd))
        return err_set(err, "%s: n_inner must be null or 4 * n_embd = %lld", path, 4 * (long long)cfg->n_embd);
    if ((j = json_object_get(root, "scale_attn_weights")) && !json_is_true(j))
        return err_set(err, "%s: scale_attn_weights must be true", path);
    if ((j = json_object_get(root, "scale_attn_by_inverse_layer_idx")) && !json_is_false(j))
        return err_set(err, "%s: scale_attn_by_inverse_layer_idx must be false", path);
    if ((j = json_object_get(root, "add_cross_attention")) && !json_is_false(j))
        return err_set(err, "%s: add_cross_attention must be false", path);
    if ((j = json_object_get(root, "tie_word_embeddings")) && !json_is_true(j))
        return err_set(err, "%s: tie_word_embeddings must be true (lm_head is wte)", path);
    return 0;
}

int hf_config_read(const char *dir, gpt2_config *cfg, gpt2c_error *err) {
    char *path = config_path(dir);
    if (!path) return err_set(err, "out of memory");
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        err_set(err, "cannot open %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    int rc = 0;
    gpt2_config c = {0};
    if (!root) rc = err_set(err, "%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    else if (!json_is_object(root)) rc = err_set(err, "%s: not a JSON object", path);
    if (rc == 0) rc = get_int(root, path, "n_layer", 0, &c.n_layer, err);
    if (rc == 0) rc = get_int(root, path, "n_head", 0, &c.n_head, err);
    if (rc == 0) rc = get_int(root, path, "n_embd", 0, &c.n_embd, err);
    if (rc == 0) { /* older configs carry the context length only as n_ctx */
        rc = get_int(root, path, "n_positions", 1, &c.max_seq_len, err);
        if (rc == 1 && (rc = get_int(root, path, "n_ctx", 1, &c.max_seq_len, err)) == 1)
            rc = err_set(err, "%s: n_positions is missing (and there is no n_ctx)", path);
    }
    if (rc == 0) rc = check_fields(root, path, &c, err);
    gpt2c_error why;
    if (rc == 0 && gpt2_config_check(&c, &why)) rc = err_set(err, "%s: %s", path, why.msg);
    if (rc == 0) *cfg = c;
    json_decref(root);
    free(path);
    return rc;
}

static void put(json_t *o, const char *key, json_t *value, int *oom) {
    if (json_object_set_new(o, key, value)) *oom = 1; /* a NULL value (no memory) fails too */
}

int hf_config_write(const char *dir, const gpt2_config *cfg, gpt2c_error *err) {
    char *path = config_path(dir);
    json_t *root = json_object(), *gen = json_object(), *tasks = json_object();
    int oom = !path || !root || !gen || !tasks;
    if (!oom) {
        /* transformers' released gpt2 config with our shapes and no dropout. The summary_* fields
         * describe GPT2DoubleHeadsModel's extra head (not in our weights) and keep their released
         * values; task_specific_params is the released generation default. */
        put(root, "architectures", json_pack("[s]", "GPT2LMHeadModel"), &oom);
        put(root, "model_type", json_string("gpt2"), &oom);
        put(root, "activation_function", json_string("gelu_new"), &oom);
        put(root, "n_layer", json_integer(cfg->n_layer), &oom);
        put(root, "n_head", json_integer(cfg->n_head), &oom);
        put(root, "n_embd", json_integer(cfg->n_embd), &oom);
        put(root, "n_positions", json_integer(cfg->max_seq_len), &oom);
        put(root, "n_ctx", json_integer(cfg->max_seq_len), &oom);
        put(root, "n_inner", json_null(), &oom); /* 4 * n_embd */
        put(root, "vocab_size", json_integer(GPT2_VOCAB), &oom);
        put(root, "bos_token_id", json_integer(GPT2C_EOT), &oom);
        put(root, "eos_token_id", json_integer(GPT2C_EOT), &oom);
        put(root, "layer_norm_epsilon", json_real(1e-5), &oom);
        put(root, "initializer_range", json_real(0.02), &oom);
        put(root, "attn_pdrop", json_real(0.0), &oom);
        put(root, "embd_pdrop", json_real(0.0), &oom);
        put(root, "resid_pdrop", json_real(0.0), &oom);
        put(root, "scale_attn_weights", json_true(), &oom);
        put(root, "scale_attn_by_inverse_layer_idx", json_false(), &oom);
        put(root, "reorder_and_upcast_attn", json_false(), &oom);
        put(root, "use_cache", json_true(), &oom);
        put(root, "summary_activation", json_null(), &oom);
        put(root, "summary_first_dropout", json_real(0.1), &oom);
        put(root, "summary_proj_to_labels", json_true(), &oom);
        put(root, "summary_type", json_string("cls_index"), &oom);
        put(root, "summary_use_proj", json_true(), &oom);
        put(gen, "do_sample", json_true(), &oom);
        put(gen, "max_length", json_integer(50), &oom);
        put(tasks, "text-generation", json_incref(gen), &oom);
        put(root, "task_specific_params", json_incref(tasks), &oom);
        put(root, "torch_dtype", json_string("float32"), &oom);
    }
    /* sorted keys as transformers writes them; 15 digits print 1e-05 and 0.02, not 17-digit noise */
    char *text = oom ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    json_decref(gen);
    json_decref(tasks);
    json_decref(root);
    int rc = 0;
    atomic_file af;
    if (!text) rc = err_set(err, "out of memory");
    else if ((rc = atomic_file_open(&af, path, err)) == 0) {
        if (fputs(text, af.f) == EOF || fputc('\n', af.f) == EOF) {
            rc = err_set(err, "cannot write %s.tmp: %s", path, strerror(errno));
            atomic_file_abort(&af);
        } else {
            rc = atomic_file_commit(&af, err);
        }
    }
    free(text);
    free(path);
    return rc;
}
