#include <stdlib.h>
#include <string.h>

#include "io/hf_config.h"
#include "io/hf_model.h"
#include "io/safetensors.h"
#include "ops/host_view.h"
#include "util/error.h"
#include "util/fs.h"

/* Tensors that GPT-2 checkpoints may carry and that are not parameters of ours: the causal-mask
 * buffers of old transformers versions, and the LM head, which is tied to wte. */
static int ignorable(const char *name) {
    size_t n = strlen(name);
    static const char *const suffixes[] = {".attn.bias", ".attn.masked_bias"};
    for (size_t i = 0; i < 2; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && strcmp(name + n - k, suffixes[i]) == 0 && strncmp(name, "h.", 2) == 0) return 1;
    }
    return strcmp(name, "lm_head.weight") == 0;
}

static const char *strip_prefix(const char *name) {
    static const char prefix[] = "transformer.";
    return strncmp(name, prefix, sizeof prefix - 1) == 0 ? name + sizeof prefix - 1 : name;
}

/* Copy one file tensor into its place in the parameters: convert to float, transpose Conv1D
 * weights from [in, out] to our [out, in]. */
static int load_tensor(float *params, const gpt2_param *p, const st_tensor *t, const char *path,
                       gpt2c_error *err) {
    int dims_ok = t->ndim == p->ndim && t->shape[0] == p->hf_shape[0] &&
                  (p->ndim == 1 || t->shape[1] == p->hf_shape[1]);
    if (!dims_ok) {
        char got[96] = "", want[48];
        for (int d = 0; d < t->ndim && strlen(got) < 64; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                     (long long)t->shape[d]);
        if (p->ndim == 2) snprintf(want, sizeof want, "%d, %d", p->hf_shape[0], p->hf_shape[1]);
        else snprintf(want, sizeof want, "%d", p->hf_shape[0]);
        return err_set(err, "%s: tensor %s has shape [%s], expected [%s] for this config", path,
                       t->name, got, want);
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return err_set(err, "%s: tensor %s has dtype %s; only F32, F16 and BF16 are supported", path,
                       t->name, st_dtype_name(t->dtype));
    float *dst = params + p->offset;
    if (!p->hf_transposed) return st_to_f32(t, dst, err);
    float *tmp = malloc(t->numel * sizeof *tmp);
    if (!tmp) return err_set(err, "out of memory loading %s", t->name);
    if (st_to_f32(t, tmp, err) != 0) {
        free(tmp);
        return -1;
    }
    /* [in][out] -> [out][in], in 32 x 32 tiles so that both sides stay in cache */
    int in = p->hf_shape[0], out = p->hf_shape[1];
    for (int i0 = 0; i0 < in; i0 += 32)
        for (int o0 = 0; o0 < out; o0 += 32)
            for (int i = i0; i < i0 + 32 && i < in; i++)
                for (int o = o0; o < o0 + 32 && o < out; o++) dst[(size_t)o * in + i] = tmp[(size_t)i * out + o];
    free(tmp);
    return 0;
}

int hf_model_load(gpt2_model *m, const char *dir, const gpt2_backend *be, gpt2c_error *err) {
    gpt2_config cfg;
    if (hf_config_read(dir, &cfg, err) != 0) return -1;
    char *path = fs_join(dir, "model.safetensors");
    if (!path) return err_set(err, "out of memory");
    st_file f;
    if (st_open(&f, path, err) != 0) {
        free(path);
        return -1;
    }
    int rc = gpt2_create(m, &cfg, be, err);
    char *seen = rc == 0 ? calloc(m->table.count, 1) : NULL;
    float *host = rc == 0 ? host_view(be, m->params, m->table.total, 0) : NULL;
    if (rc == 0 && (!seen || !host)) rc = err_set(err, "out of memory");
    for (size_t i = 0; rc == 0 && i < f.ntensors; i++) {
        const st_tensor *t = &f.tensors[i];
        const char *name = strip_prefix(t->name);
        const gpt2_param *p = gpt2_param_find(&m->table, name);
        if (!p) {
            if (!ignorable(name))
                rc = err_set(err, "%s: unexpected tensor %s (not part of a GPT-2 with this config)",
                             path, t->name);
            continue;
        }
        size_t idx = (size_t)(p - m->table.params);
        if (seen[idx]) rc = err_set(err, "%s: tensor %s appears twice", path, name);
        else rc = load_tensor(host, p, t, path, err);
        seen[idx] = 1;
    }
    for (size_t i = 0; rc == 0 && i < m->table.count; i++)
        if (!seen[i]) rc = err_set(err, "%s: tensor %s is missing", path, m->table.params[i].name);
    if (host) host_view_done(be, m->params, host, m->table.total, rc == 0);
    if (rc == 0) gpt2_params_changed(m);
    free(seen);
    st_close(&f);
    free(path);
    if (rc != 0) gpt2_free(m);
    return rc;
}

int hf_model_save(const gpt2_model *m, const char *dir, gpt2c_error *err) {
    if (fs_make_dirs(dir, err) != 0) return -1;
    st_write_tensor *ts = calloc(m->table.count, sizeof *ts);
    char *path = fs_join(dir, "model.safetensors");
    float *host = host_view(m->be, m->params, m->table.total, 1);
    if (!ts || !path || !host) {
        free(ts);
        free(path);
        host_view_done(m->be, m->params, host, m->table.total, 0);
        return err_set(err, "out of memory");
    }
    for (size_t i = 0; i < m->table.count; i++) {
        const gpt2_param *p = &m->table.params[i];
        ts[i] = (st_write_tensor){.name = p->name, .data = host + p->offset, .ndim = p->ndim,
                                  .shape = {p->hf_shape[0], p->hf_shape[1]},
                                  .transpose = p->hf_transposed};
    }
    static const char *const keys[] = {"format"}, *const values[] = {"pt"};
    /* The weights first: config.json does not change during training, so a crash between the
     * two renames still leaves a consistent directory. */
    int rc = st_write(path, ts, m->table.count, keys, values, 1, err);
    if (rc == 0) rc = hf_config_write(dir, &m->cfg, err);
    host_view_done(m->be, m->params, host, m->table.total, 0);
    free(ts);
    free(path);
    return rc;
}
