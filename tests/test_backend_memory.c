/* The model's traffic with backends unlike the CPU's, checked without a GPU: "detached" (no
 * host memory), "wide" (8-byte activations) and "narrow" (2-byte bf16 activations, a GPU's),
 * test_backends.h's. A model on either of the first two must compute exactly what the same
 * model on the CPU backend does: init, forward, backward, the optimizer step, a KV-cache
 * forward, and saving and loading a Hugging Face directory and a resume state. One on the
 * narrow backend computes it within bf16's roundings (a plan, an offset or a copy sized for
 * 4-byte activations would be far off, or overrun under the sanitizers). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_backends.h"
#include "io/hf_model.h"
#include "model/gpt2_infer.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

static int same_floats(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* A model on backend `be` computes what one on the CPU does, step for step. */
static void same_as_cpu(const gpt2_backend *be) {
    gpt2c_error err;
    gpt2_config cfg = {2, 2, 64, 64};
    gpt2_model a, b; /* a on the CPU backend, b on be */
    CHECK(gpt2_create(&a, &cfg, &test_cpu, &err) == 0);
    CHECK(gpt2_create(&b, &cfg, be, &err) == 0);
    CHECK(gpt2_init_random(&a, 5, &err) == 0 && gpt2_init_random(&b, 5, &err) == 0);
    CHECK(same_floats(a.params, b.params, a.table.total));

    /* two training steps: forward (uploads the batch, brings the losses back), backward (its
     * gradient starts from a backend memset), AdamW in bf16 (the bf16 copy through the backend) */
    int B = 2, T = 16;
    CHECK(gpt2_set_precision(&a, GPT2_BF16, &err) == 0 && gpt2_set_precision(&b, GPT2_BF16, &err) == 0);
    CHECK(gpt2_plan(&a, B, T, 1, &err) == 0 && gpt2_plan(&b, B, T, 1, &err) == 0);
    adamw_state sa, sb;
    CHECK(adamw_state_alloc(&sa, &test_cpu, a.table.total, &err) == 0);
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
    gpt2_prefill(&a, &ka, prompt, 0, 5, 0);
    gpt2_prefill(&b, &kb, prompt, 0, 5, 0);
    gpt2_kv_copy(&ka, &a, 0, 1, 5);
    gpt2_kv_copy(&kb, &b, 0, 1, 5);
    int32_t next[2] = {262, 1110};
    gpt2_span rows[2] = {{0, 5, 1}, {1, 5, 1}};
    gpt2_infer(&a, &ka, next, rows, 2);
    gpt2_infer(&b, &kb, next, rows, 2);
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

/* sqrt(sum (a - b)^2 / sum b^2) */
static double relative_l2(const float *a, const float *b, size_t n) {
    double d = 0, w = 0;
    for (size_t i = 0; i < n; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), w += (double)b[i] * b[i];
    return sqrt(d / (w > 0 ? w : 1));
}

static void near_cpu_in_bf16(void) {
    gpt2c_error err;
    gpt2_precision p;
    CHECK(gpt2_backend_precision(&test_narrow, "bf16", &p, &err) == 0 && test_narrow.act_bytes == 2);
    gpt2_config cfg = {2, 2, 64, 64};
    gpt2_model a, b; /* a on the CPU backend, b on the narrow one */
    CHECK(gpt2_create(&a, &cfg, &test_cpu, &err) == 0 && gpt2_create(&b, &cfg, &test_narrow, &err) == 0);
    CHECK(gpt2_init_random(&a, 5, &err) == 0 && gpt2_init_random(&b, 5, &err) == 0);
    CHECK(gpt2_set_precision(&a, GPT2_BF16, &err) == 0 && gpt2_set_precision(&b, GPT2_BF16, &err) == 0);
    CHECK(gpt2_set_precision(&b, GPT2_FP32, &err) != 0); /* not the handle's: refused */
    int B = 2, T = 16;
    CHECK(gpt2_plan(&a, B, T, 1, &err) == 0 && gpt2_plan(&b, B, T, 1, &err) == 0);
    for (int i = 0; i < B * T; i++) {
        a.inputs[i] = b.inputs[i] = (int32_t)((i * 7) % 50257);
        a.targets[i] = b.targets[i] = (int32_t)((i * 11) % 50257);
    }
    float la = gpt2_forward(&a, 1.0f / (B * T)), lb = gpt2_forward(&b, 1.0f / (B * T));
    CHECK(fabsf(la - lb) < 1e-3f * la);
    gpt2_backward(&a);
    gpt2_backward(&b);
    CHECK(relative_l2(b.grads, a.grads, a.table.total) < 0.02);

    gpt2_kv ka, kb;
    CHECK(gpt2_kv_plan(&ka, &a, 2, 12, 12, 0, &err) == 0 && gpt2_kv_plan(&kb, &b, 2, 12, 12, 0, &err) == 0);
    int32_t prompt[5] = {464, 3290, 373, 257, 11}, next[2] = {262, 1110};
    gpt2_span rows[2] = {{0, 5, 1}, {1, 5, 1}};
    gpt2_prefill(&a, &ka, prompt, 0, 5, 0);
    gpt2_prefill(&b, &kb, prompt, 0, 5, 0);
    gpt2_kv_copy(&ka, &a, 0, 1, 5);
    gpt2_kv_copy(&kb, &b, 0, 1, 5);
    gpt2_infer(&a, &ka, next, rows, 2);
    gpt2_infer(&b, &kb, next, rows, 2);
    CHECK(relative_l2(kb.logits, ka.logits, 2 * GPT2_VOCAB_PADDED) < 0.01);
    gpt2_kv_free(&ka), gpt2_kv_free(&kb);
    gpt2_free(&a), gpt2_free(&b);
}

int main(void) {
    gpt2c_error err;
    CHECK(test_backends_open(0, &err) == 0);
    same_as_cpu(&test_detached);
    CHECK(test_live_buffers == 0); /* everything the model took from the detached backend went back */
    same_as_cpu(&test_wide); /* 8-byte activations */
    near_cpu_in_bf16();
    return check_done();
}
