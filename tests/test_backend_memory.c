/* The model's traffic with backends unlike the CPU's, checked without a GPU.
 * - "detached" is the CPU's kernels with host_memory off, so every path that uploads,
 *   downloads or stages a host copy runs, and its allocations are counted.
 * - "wide" stores its activations as doubles (act_bytes 8, not 4): each of its ops widens and
 *   narrows around the CPU's kernel, so that nothing outside a backend may assume 4-byte
 *   activations (a plan, an offset or a copy sized in floats would read the wrong values).
 * A model on either must compute exactly what the same model on the CPU backend does: init,
 * forward, backward, the optimizer step, a KV-cache forward, and saving and loading a Hugging
 * Face directory and a resume state. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/hf_model.h"
#include "model/gpt2_infer.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

static size_t live; /* buffers the detached backend has handed out and not taken back */

static void *detached_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64), live++;
    return p;
}
static void detached_free(void *p) {
    if (p) live--;
    free(p);
}
static void detached_copy(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }

static gpt2_backend cpu, detached, wide;
static gpt2_ops detached_ops, wide_ops;

static void make_detached(void) {
    detached_ops = *cpu.ops;
    detached_ops.alloc = detached_alloc;
    detached_ops.free = detached_free;
    detached_ops.copy = detached_ops.upload = detached_ops.download = detached_copy;
    detached = cpu;
    detached.name = "detached", detached.host_memory = 0, detached.ops = &detached_ops;
}

/* The wide backend's activations: n doubles, read into floats for the CPU's kernel (NULL stays
 * NULL) and written back after it. */
static float *narrow(const gpt2_act *a, size_t n) {
    if (!a) return NULL;
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)((const double *)a)[i];
    return f;
}
static void widen(gpt2_act *a, float *f, size_t n) {
    for (size_t i = 0; a && i < n; i++) ((double *)a)[i] = f[i];
    free(f);
}

static void wide_embed_forward(gpt2_act *out, const int32_t *tokens, const float *wte,
                               const float *wpe, int B, int T, int C) {
    size_t n = (size_t)B * T * C;
    float *o = narrow(out, n);
    cpu.ops->embed_forward((gpt2_act *)o, tokens, wte, wpe, B, T, C);
    widen(out, o, n);
}
static void wide_embed_backward(float *dwte, float *dwpe, const gpt2_act *dout,
                                const int32_t *tokens, int B, int T, int C) {
    float *d = narrow(dout, (size_t)B * T * C);
    cpu.ops->embed_backward(dwte, dwpe, (gpt2_act *)d, tokens, B, T, C);
    free(d);
}
static void wide_layernorm_forward(gpt2_act *out, float *mean, float *rstd, const gpt2_act *inp,
                                   const float *w, const float *b, int N, int C) {
    size_t n = (size_t)N * C;
    float *o = narrow(out, n), *x = narrow(inp, n);
    cpu.ops->layernorm_forward((gpt2_act *)o, mean, rstd, (gpt2_act *)x, w, b, N, C);
    widen(out, o, n), free(x);
}
static void wide_layernorm_backward(gpt2_act *dinp, float *dw, float *db, const gpt2_act *dout,
                                    const gpt2_act *inp, const float *w, const float *mean,
                                    const float *rstd, int N, int C, float *scratch) {
    size_t n = (size_t)N * C;
    float *di = narrow(dinp, n), *d = narrow(dout, n), *x = narrow(inp, n);
    cpu.ops->layernorm_backward((gpt2_act *)di, dw, db, (gpt2_act *)d, (gpt2_act *)x, w, mean,
                                rstd, N, C, scratch);
    widen(dinp, di, n), free(d), free(x);
}
static void wide_matmul_forward(gpt2_act *out, const gpt2_act *inp, const float *w,
                                const gpt2_bf16 *w_bf16, const float *bias, int N, int C, int OC,
                                float *scratch) {
    float *o = narrow(out, (size_t)N * OC), *x = narrow(inp, (size_t)N * C);
    cpu.ops->matmul_forward((gpt2_act *)o, (gpt2_act *)x, w, w_bf16, bias, N, C, OC, scratch);
    widen(out, o, (size_t)N * OC), free(x);
}
static void wide_matmul_backward(gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout,
                                 const gpt2_act *inp, const float *w, const gpt2_bf16 *w_bf16,
                                 int N, int C, int OC, float *scratch) {
    size_t nin = (size_t)N * C;
    float *di = narrow(dinp, nin), *d = narrow(dout, (size_t)N * OC), *x = narrow(inp, nin);
    cpu.ops->matmul_backward((gpt2_act *)di, dw, dbias, (gpt2_act *)d, (gpt2_act *)x, w, w_bf16, N,
                             C, OC, scratch);
    widen(dinp, di, nin), free(d), free(x);
}
static void wide_attention_forward(gpt2_act *out, float *lse, const gpt2_act *qkv, int B, int T,
                                   int C, int NH, float *scratch) {
    size_t n = (size_t)B * T * C;
    float *o = narrow(out, n), *q = narrow(qkv, 3 * n);
    cpu.ops->attention_forward((gpt2_act *)o, lse, (gpt2_act *)q, B, T, C, NH, scratch);
    widen(out, o, n), free(q);
}
static void wide_attention_backward(gpt2_act *dqkv, const gpt2_act *dout, const gpt2_act *qkv,
                                    const gpt2_act *out, const float *lse, int B, int T, int C,
                                    int NH, float *scratch) {
    size_t n = (size_t)B * T * C;
    float *dq = narrow(dqkv, 3 * n), *d = narrow(dout, n), *q = narrow(qkv, 3 * n);
    float *o = narrow(out, n);
    cpu.ops->attention_backward((gpt2_act *)dq, (gpt2_act *)d, (gpt2_act *)q, (gpt2_act *)o, lse,
                                B, T, C, NH, scratch);
    widen(dqkv, dq, 3 * n), free(d), free(q), free(o);
}
static void wide_attention_forward_kv(gpt2_act *out, const gpt2_act *qkv, gpt2_act *kcache,
                                      gpt2_act *vcache, int nseq, int n, int pos, int len, int C,
                                      int NH, float *scratch) {
    size_t rows = (size_t)nseq * n * C, cache = (size_t)nseq * len * C;
    float *o = narrow(out, rows), *q = narrow(qkv, 3 * rows);
    float *k = narrow(kcache, cache), *v = narrow(vcache, cache);
    cpu.ops->attention_forward_kv((gpt2_act *)o, (gpt2_act *)q, (gpt2_act *)k, (gpt2_act *)v, nseq,
                                  n, pos, len, C, NH, scratch);
    widen(out, o, rows), free(q), widen(kcache, k, cache), widen(vcache, v, cache);
}
static void wide_gelu_forward(gpt2_act *out, const gpt2_act *inp, size_t n) {
    float *o = narrow(out, n), *x = narrow(inp, n);
    cpu.ops->gelu_forward((gpt2_act *)o, (gpt2_act *)x, n);
    widen(out, o, n), free(x);
}
static void wide_gelu_backward(gpt2_act *dinp, const gpt2_act *inp, const gpt2_act *dout,
                               size_t n) {
    float *di = narrow(dinp, n), *x = narrow(inp, n), *d = narrow(dout, n);
    cpu.ops->gelu_backward((gpt2_act *)di, (gpt2_act *)x, (gpt2_act *)d, n);
    widen(dinp, di, n), free(x), free(d);
}
static void wide_residual_forward(gpt2_act *out, const gpt2_act *a, const gpt2_act *b, size_t n) {
    float *o = narrow(out, n), *x = narrow(a, n), *y = narrow(b, n);
    cpu.ops->residual_forward((gpt2_act *)o, (gpt2_act *)x, (gpt2_act *)y, n);
    widen(out, o, n), free(x), free(y);
}
static void wide_classifier(float *losses, gpt2_act *dinp, float *dwte, const gpt2_act *inp,
                            const float *wte, const gpt2_bf16 *wte_bf16, const int32_t *targets,
                            int N, int C, int V, int Vp, float dloss, float *scratch) {
    size_t n = (size_t)N * C;
    float *di = narrow(dinp, n), *x = narrow(inp, n);
    cpu.ops->classifier(losses, (gpt2_act *)di, dwte, (gpt2_act *)x, wte, wte_bf16, targets, N, C,
                        V, Vp, dloss, scratch);
    widen(dinp, di, n), free(x);
}
static void wide_logits_forward(float *logits, const gpt2_act *inp, const float *wte,
                                const gpt2_bf16 *wte_bf16, int N, int C, int Vp, float *scratch) {
    float *x = narrow(inp, (size_t)N * C);
    cpu.ops->logits_forward(logits, (gpt2_act *)x, wte, wte_bf16, N, C, Vp, scratch);
    free(x);
}

static void make_wide(void) {
    wide_ops = *cpu.ops;
#define WIDE(name) wide_ops.name = wide_##name
    WIDE(embed_forward), WIDE(embed_backward), WIDE(layernorm_forward), WIDE(layernorm_backward);
    WIDE(matmul_forward), WIDE(matmul_backward), WIDE(attention_forward);
    WIDE(attention_backward), WIDE(attention_forward_kv), WIDE(gelu_forward), WIDE(gelu_backward);
    WIDE(residual_forward), WIDE(classifier), WIDE(logits_forward);
#undef WIDE
    wide = cpu;
    wide.name = "wide", wide.act_bytes = sizeof(double), wide.ops = &wide_ops;
}

static int same_floats(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* A model on backend `be` computes what one on the CPU does, step for step. */
static void same_as_cpu(const gpt2_backend *be) {
    gpt2c_error err;
    gpt2_config cfg = {2, 2, 64, 64};
    gpt2_model a, b; /* a on the CPU backend, b on be */
    CHECK(gpt2_create(&a, &cfg, &cpu, &err) == 0);
    CHECK(gpt2_create(&b, &cfg, be, &err) == 0);
    CHECK(gpt2_init_random(&a, 5, &err) == 0 && gpt2_init_random(&b, 5, &err) == 0);
    CHECK(same_floats(a.params, b.params, a.table.total));

    /* two training steps: forward (uploads the batch, brings the losses back), backward (its
     * gradient starts from a backend memset), AdamW in bf16 (the bf16 copy through the backend) */
    int B = 2, T = 16;
    CHECK(gpt2_set_precision(&a, GPT2_BF16, &err) == 0 && gpt2_set_precision(&b, GPT2_BF16, &err) == 0);
    CHECK(gpt2_plan(&a, B, T, 1, &err) == 0 && gpt2_plan(&b, B, T, 1, &err) == 0);
    adamw_state sa, sb;
    CHECK(adamw_state_alloc(&sa, &cpu, a.table.total, &err) == 0);
    CHECK(adamw_state_alloc(&sb, be, b.table.total, &err) == 0);
    adamw_config ac = {.lr = 1e-3, .min_lr_ratio = 0.1, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                       .weight_decay = 0.1, .grad_clip = 1.0, .warmup_steps = 1, .max_steps = 4};
    for (int step = 0; step < 2; step++) {
        for (int i = 0; i < B * T; i++) {
            a.inputs[i] = b.inputs[i] = (int32_t)((i * 7 + step * 13) % 50257);
            a.targets[i] = b.targets[i] = (int32_t)((i * 11 + step) % 50257);
        }
        float la = gpt2_forward(&a, 1.0f / (B * T)), lb = gpt2_forward(&b, 1.0f / (B * T));
        CHECK(la == lb);
        gpt2_backward(&a);
        gpt2_backward(&b);
        CHECK(same_floats(a.grads, b.grads, a.table.total));
        double na = sqrt(adamw_grad_sum_squares(&a, 0, a.table.total));
        double nb = sqrt(adamw_grad_sum_squares(&b, 0, b.table.total));
        CHECK(na == nb);
        adamw_update(&a, &sa, &ac, step, 0, a.table.total, na);
        adamw_update(&b, &sb, &ac, step, 0, b.table.total, nb);
        CHECK(same_floats(a.params, b.params, a.table.total));
    }

    /* generation: tokens uploaded, the last rows copied on the backend, logits brought back */
    gpt2_kv ka, kb;
    CHECK(gpt2_kv_plan(&ka, &a, 2, 12, 12, 0, &err) == 0 && gpt2_kv_plan(&kb, &b, 2, 12, 12, 0, &err) == 0);
    int32_t prompt[5] = {464, 3290, 373, 257, 11};
    gpt2_infer(&a, &ka, prompt, 0, 1, 5, 0);
    gpt2_infer(&b, &kb, prompt, 0, 1, 5, 0);
    gpt2_kv_copy(&ka, &a, 0, 1, 5);
    gpt2_kv_copy(&kb, &b, 0, 1, 5);
    int32_t next[2] = {262, 1110};
    gpt2_infer(&a, &ka, next, 0, 2, 1, 5);
    gpt2_infer(&b, &kb, next, 0, 2, 1, 5);
    CHECK(be->host_memory || kb.logits != kb.logits_dev); /* detached: the logits are a host copy */
    CHECK(same_floats(ka.logits, kb.logits, 2 * GPT2_VOCAB_PADDED));
    gpt2_kv_free(&ka);
    gpt2_kv_free(&kb);

    /* a Hugging Face directory and a resume state written from b (downloads) equal a's files,
     * and load back into a detached model (uploads) */
    char dir_a[] = "/tmp/gpt2c-backend-a-XXXXXX", dir_b[] = "/tmp/gpt2c-backend-b-XXXXXX";
    CHECK(mkdtemp(dir_a) && mkdtemp(dir_b));
    CHECK(hf_model_save(&a, dir_a, &err) == 0 && hf_model_save(&b, dir_b, &err) == 0);
    train_state st = {.cfg = cfg, .batch_size = B, .seq_len = T, .nproc = 1, .total_batch = B * T,
                      .next_step = 2, .data_shards = 1, .data_tokens = 1000};
    CHECK(ckpt_save(dir_a, &a, &sa, &st, &err) == 0 && ckpt_save(dir_b, &b, &sb, &st, &err) == 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cmp -s %s/model.safetensors %s/model.safetensors", dir_a, dir_b);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "cmp -s %s/state/train_state.safetensors %s/state/train_state.safetensors",
             dir_a, dir_b);
    CHECK(system(cmd) == 0);
    gpt2_model c;
    adamw_state sc;
    CHECK(hf_model_load(&c, dir_b, be, &err) == 0);
    CHECK(same_floats(a.params, c.params, a.table.total));
    CHECK(adamw_state_alloc(&sc, be, c.table.total, &err) == 0);
    CHECK(ckpt_load(dir_b, &c, &sc, &err) == 0);
    CHECK(same_floats(sa.m, sc.m, a.table.total) && same_floats(sa.v, sc.v, a.table.total));
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir_a, dir_b);
    CHECK(system(cmd) == 0);

    adamw_state_free(&sa), adamw_state_free(&sb), adamw_state_free(&sc);
    gpt2_free(&a), gpt2_free(&b), gpt2_free(&c);
}

int main(void) {
    gpt2c_error err;
    CHECK(gpt2_backend_open(&cpu, "cpu", 0, &err) == 0);
    make_detached();
    make_wide();
    same_as_cpu(&detached);
    CHECK(live == 0); /* everything the model took from the detached backend went back */
    same_as_cpu(&wide); /* 8-byte activations */
    return check_done();
}
