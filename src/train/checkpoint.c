#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "ops/host_view.h"
#include "train/checkpoint.h"
#include "util/error.h"
#include "util/fs.h"

char *ckpt_path(const char *out_dir) {
    char *dir = fs_join(out_dir, "state");
    char *p = dir ? fs_join(dir, "train_state.safetensors") : NULL;
    free(dir);
    return p;
}

int ckpt_exists(const char *out_dir) {
    char *p = ckpt_path(out_dir);
    int yes = p && access(p, F_OK) == 0;
    free(p);
    return yes;
}

/* The metadata: every field is a non-negative integer, stored as a decimal string. */
enum { F_VERSION, F_NEXT_STEP, F_ADAM_T, F_N_LAYER, F_N_HEAD, F_N_EMBD, F_MAX_SEQ_LEN, F_BATCH,
       F_SEQ, F_NPROC, F_TOTAL_BATCH, F_SHARD, F_POS, F_SHARDS, F_TOKENS, F_REQUIRED,
       /* optional (files before them lack them) */
       F_LOSS_N = F_REQUIRED, F_LOSS_NEXT, F_NORM_N, F_NORM_NEXT, F_SKIPS, F_COUNT };
static const char *const field_keys[F_COUNT] = {
    "version", "next_step", "adam_t", "n_layer", "n_head", "n_embd", "n_positions", "batch_size",
    "seq_len", "processes", "total_batch", "data_shard", "data_pos", "data_shards", "data_tokens",
    "loss_window_n", "loss_window_next", "norm_window_n", "norm_window_next", "skips_in_a_row"};

int ckpt_save(const char *out_dir, const gpt2_model *m, const adamw_state *s,
              const train_state *st, gpt2c_error *err) {
    long long v[F_COUNT] = {
        [F_VERSION] = CKPT_VERSION, [F_NEXT_STEP] = st->next_step, [F_ADAM_T] = s->t,
        [F_N_LAYER] = st->cfg.n_layer, [F_N_HEAD] = st->cfg.n_head, [F_N_EMBD] = st->cfg.n_embd,
        [F_MAX_SEQ_LEN] = st->cfg.max_seq_len, [F_BATCH] = st->batch_size, [F_SEQ] = st->seq_len,
        [F_NPROC] = st->nproc, [F_TOTAL_BATCH] = st->total_batch,
        [F_SHARD] = (long long)st->data_shard, [F_POS] = (long long)st->data_pos,
        [F_SHARDS] = (long long)st->data_shards, [F_TOKENS] = (long long)st->data_tokens,
        [F_LOSS_N] = st->loss_window.n, [F_LOSS_NEXT] = st->loss_window.next,
        [F_NORM_N] = st->norm_window.n, [F_NORM_NEXT] = st->norm_window.next,
        [F_SKIPS] = st->skips_in_a_row};
    char values[F_COUNT][24];
    const char *keys[F_COUNT + 1], *vals[F_COUNT + 1];
    keys[0] = "format", vals[0] = CKPT_FORMAT;
    for (int i = 0; i < F_COUNT; i++) {
        snprintf(values[i], sizeof values[i], "%lld", v[i]);
        keys[i + 1] = field_keys[i], vals[i + 1] = values[i];
    }
    int64_t n = (int64_t)m->table.total;
    /* m and v are in the model's backend's memory, like the parameters */
    float *src[3] = {m->params, s->m, s->v}, *host[3];
    for (int i = 0; i < 3; i++) host[i] = host_view(m->be, src[i], (size_t)n, 1);
    float windows[2 * OUTLIER_WINDOW];
    memcpy(windows, st->loss_window.v, sizeof st->loss_window.v);
    memcpy(windows + OUTLIER_WINDOW, st->norm_window.v, sizeof st->norm_window.v);
    st_write_tensor ts[4] = {{"params", host[0], 1, {n}, 0},
                             {"adam_m", host[1], 1, {n}, 0},
                             {"adam_v", host[2], 1, {n}, 0},
                             {"outlier_windows", windows, 2, {2, OUTLIER_WINDOW}, 0}};
    char *dir = fs_join(out_dir, "state"), *path = ckpt_path(out_dir);
    int rc = !dir || !path || !host[0] || !host[1] || !host[2] ? err_set(err, "out of memory")
                                                               : fs_make_dirs(dir, err);
    if (rc == 0) rc = st_write(path, ts, 4, keys, vals, F_COUNT + 1, err);
    for (int i = 0; i < 3; i++) host_view_done(m->be, src[i], host[i], (size_t)n, 0);
    free(dir);
    free(path);
    return rc;
}

static int open_state(const char *out_dir, st_file *f, train_state *st, gpt2c_error *err) {
    char *path = ckpt_path(out_dir);
    if (!path) return err_set(err, "out of memory");
    if (access(path, F_OK) != 0) {
        err_set(err, "no training state to resume in %s (%s: %s)", out_dir, path, strerror(errno));
        free(path);
        return -1;
    }
    int rc = st_open(f, path, err);
    if (rc != 0) {
        free(path);
        return -1;
    }
    const char *format = st_meta(f, "format");
    if (!format || strcmp(format, CKPT_FORMAT) != 0)
        rc = err_set(err, "%s: not a gpt2c training state", path);
    long long v[F_COUNT];
    for (int i = 0; rc == 0 && i < F_COUNT; i++) {
        const char *s = st_meta(f, field_keys[i]);
        char *end;
        errno = 0;
        v[i] = s ? strtoll(s, &end, 10) : 0;
        if (!s && i >= F_REQUIRED) continue; /* an older file: 0 */
        if (!s || !*s || *end || errno || v[i] < 0)
            rc = err_set(err, "%s: metadata %s is missing or not a count", path, field_keys[i]);
    }
    for (int i = F_LOSS_N; rc == 0 && i <= F_NORM_NEXT; i++)
        if (v[i] > OUTLIER_WINDOW || ((i == F_LOSS_NEXT || i == F_NORM_NEXT) && v[i] >= OUTLIER_WINDOW))
            rc = err_set(err, "%s: metadata %s is out of range", path, field_keys[i]);
    if (rc == 0 && v[F_VERSION] != CKPT_VERSION)
        rc = err_set(err, "%s: state version %lld, this gpt2c reads version %d", path,
                     v[F_VERSION], CKPT_VERSION);
    if (rc == 0) {
        *st = (train_state){
            .cfg = {(int)v[F_N_LAYER], (int)v[F_N_HEAD], (int)v[F_N_EMBD], (int)v[F_MAX_SEQ_LEN]},
            .batch_size = (int)v[F_BATCH], .seq_len = (int)v[F_SEQ], .nproc = (int)v[F_NPROC],
            .total_batch = v[F_TOTAL_BATCH], .next_step = v[F_NEXT_STEP], .adam_t = v[F_ADAM_T],
            .data_shard = (uint64_t)v[F_SHARD], .data_pos = (uint64_t)v[F_POS],
            .data_shards = (uint64_t)v[F_SHARDS], .data_tokens = (uint64_t)v[F_TOKENS],
            .loss_window = {.n = (int)v[F_LOSS_N], .next = (int)v[F_LOSS_NEXT]},
            .norm_window = {.n = (int)v[F_NORM_N], .next = (int)v[F_NORM_NEXT]},
            .skips_in_a_row = v[F_SKIPS]};
        const st_tensor *w = st_find(f, "outlier_windows");
        float windows[2 * OUTLIER_WINDOW] = {0};
        if (w && (w->dtype != ST_F32 || w->numel != 2 * OUTLIER_WINDOW))
            rc = err_set(err, "%s: tensor outlier_windows is not 2 x %d F32 values", path, OUTLIER_WINDOW);
        else if (w) rc = st_to_f32(w, windows, err);
        else if (v[F_LOSS_N] || v[F_NORM_N])
            rc = err_set(err, "%s: tensor outlier_windows is missing", path);
        memcpy(st->loss_window.v, windows, sizeof st->loss_window.v);
        memcpy(st->norm_window.v, windows + OUTLIER_WINDOW, sizeof st->norm_window.v);
        for (int i = F_N_LAYER; i <= F_TOTAL_BATCH; i++)
            if (v[i] > 1LL << 40) rc = err_set(err, "%s: metadata %s is out of range", path, field_keys[i]);
    }
    if (rc == 0) rc = gpt2_config_check(&st->cfg, err);
    if (rc != 0) st_close(f);
    free(path);
    return rc;
}

int ckpt_read_meta(const char *out_dir, train_state *st, gpt2c_error *err) {
    st_file f;
    if (open_state(out_dir, &f, st, err) != 0) return -1;
    st_close(&f);
    return 0;
}

int ckpt_load(const char *out_dir, gpt2_model *m, adamw_state *s, gpt2c_error *err) {
    st_file f;
    train_state st;
    if (open_state(out_dir, &f, &st, err) != 0) return -1;
    static const char *const names[3] = {"params", "adam_m", "adam_v"};
    float *dst[3] = {m->params, s->m, s->v};
    int rc = 0;
    for (int i = 0; rc == 0 && i < 3; i++) {
        const st_tensor *t = st_find(&f, names[i]);
        float *host = host_view(m->be, dst[i], m->table.total, 0);
        if (!host)
            rc = err_set(err, "out of memory");
        else if (!t || t->dtype != ST_F32 || t->ndim != 1 || t->numel != m->table.total)
            rc = err_set(err, "%s: tensor %s is missing or not %zu F32 values", f.path, names[i],
                         m->table.total);
        else rc = st_to_f32(t, host, err);
        host_view_done(m->be, dst[i], host, m->table.total, rc == 0);
    }
    if (rc == 0) s->t = st.adam_t;
    st_close(&f);
    return rc;
}
