#include <stddef.h>
#include <string.h>

#include "train/data_parallel.h"
#include "train/train_options.h"
#include "util/error.h"
#include "util/fs.h"

void gpt2c_train_opts_default(gpt2c_train_opts *o) {
    *o = (gpt2c_train_opts){.max_seq_len = 1024, .batch_size = 4, .seq_len = 1024,
                            .max_steps = 50, .warmup_steps = 10, .lr = 6e-4, .min_lr_ratio = 0.1,
                            .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                            .grad_clip = 1.0, .val_every = 250, .val_steps = 20, .ckpt_every = 1000,
                            .max_skips = 8,
                            .seed = 1337,
                            .threads = 0};
}

/* Every field of gpt2c_train_opts, and whether the ranks must agree on it. Paths and pointers
 * are not shared: paths may differ between machines (the data they name are compared apart,
 * by their shard sizes), the communicator and the profile are each rank's own, and the threads
 * and the device are each machine's. A field added to gpt2c_train_opts goes here too. */
typedef enum { F_INT, F_LLONG, F_ULLONG, F_DOUBLE, F_STRING, F_MODEL, F_PRESENT, F_OWN } field_kind;
#define FIELD(name, kind) {#name, offsetof(gpt2c_train_opts, name), kind}
static const struct field {
    const char *name;
    size_t offset;
    field_kind kind; /* F_MODEL: a preset's name, or "dir"; F_PRESENT: whether it is set;
                        F_OWN: not shared */
} fields[] = {
    FIELD(model, F_MODEL),          FIELD(max_seq_len, F_INT),    FIELD(data, F_OWN),
    FIELD(val_data, F_PRESENT),     FIELD(out_dir, F_OWN),        FIELD(batch_size, F_INT),
    FIELD(seq_len, F_INT),          FIELD(total_batch, F_LLONG),  FIELD(max_steps, F_INT),
    FIELD(warmup_steps, F_INT),     FIELD(lr, F_DOUBLE),          FIELD(min_lr_ratio, F_DOUBLE),
    FIELD(beta1, F_DOUBLE),         FIELD(beta2, F_DOUBLE),       FIELD(eps, F_DOUBLE),
    FIELD(weight_decay, F_DOUBLE),  FIELD(grad_clip, F_DOUBLE),   FIELD(val_every, F_INT),
    FIELD(val_steps, F_INT),        FIELD(ckpt_every, F_INT),     FIELD(seed, F_ULLONG),
    FIELD(threads, F_OWN),          FIELD(device, F_OWN),         FIELD(precision, F_STRING),
    FIELD(recompute, F_INT),        FIELD(comm, F_OWN),           FIELD(zero, F_INT),
    FIELD(resume, F_INT),           FIELD(stop_after, F_INT),     FIELD(sample_every, F_INT),
    FIELD(sample_prompt, F_OWN),    FIELD(sample_prompt_len, F_OWN), FIELD(profile, F_OWN),
    FIELD(hellaswag, F_PRESENT),    FIELD(hellaswag_every, F_INT),  FIELD(tensorboard, F_OWN),
    FIELD(hellaswag_limit, F_INT),  FIELD(skip_loss_z, F_DOUBLE), FIELD(skip_norm_z, F_DOUBLE),
    FIELD(max_skips, F_INT),
};
#undef FIELD

uint64_t train_opts_hash(const gpt2c_train_opts *o) {
    static const size_t sizes[] = {[F_INT] = sizeof(int), [F_LLONG] = sizeof(long long),
                                   [F_ULLONG] = sizeof(unsigned long long),
                                   [F_DOUBLE] = sizeof(double)};
    const char *base = (const char *)o;
    uint64_t h = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const struct field *f = &fields[i];
        const void *p = base + f->offset;
        if (f->kind <= F_DOUBLE) {
            h = dp_hash(h, p, sizes[f->kind]);
        } else if (f->kind == F_STRING || f->kind == F_MODEL) {
            const char *s = *(const char *const *)p;
            if (s && f->kind == F_MODEL && fs_is_dir(s)) s = "dir";
            h = s ? dp_hash(h, s, strlen(s) + 1) : dp_hash(h, "\1", 1); /* NULL is not "" */
        } else if (f->kind == F_PRESENT) {
            unsigned char set = *(const void *const *)p != NULL;
            h = dp_hash(h, &set, 1);
        }
    }
    return h;
}

int train_opts_check(const gpt2c_train_opts *o, gpt2c_error *err) {
    if (!o->data) return err_set(err, "--data is required");
    if (!o->out_dir) return err_set(err, "--out-dir is required");
    if (o->batch_size < 1 || o->seq_len < 1) return err_set(err, "batch size and sequence length must be positive");
    if ((long long)o->batch_size * o->seq_len > 1LL << 28) return err_set(err, "batch size x sequence length is too large");
    long long bt = (long long)o->batch_size * o->seq_len;
    long long total = o->total_batch ? o->total_batch : bt;
    if (total % bt != 0)
        return err_set(err, "--total-batch-size %lld is not a multiple of batch size x sequence length (%d x %d = %lld)",
                       total, o->batch_size, o->seq_len, bt);
    if (total / bt > 1000000) return err_set(err, "more than a million accumulation steps per optimizer step");
    if (o->max_steps < 1) return err_set(err, "--max-steps must be at least 1");
    if (o->warmup_steps < 0 || !(o->lr >= 0) || !(o->min_lr_ratio >= 0 && o->min_lr_ratio <= 1))
        return err_set(err, "invalid learning-rate schedule (warmup >= 0, lr >= 0, min-lr-ratio in [0, 1])");
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0))
        return err_set(err, "invalid AdamW parameters (betas in [0, 1), eps > 0)");
    if (!(o->weight_decay >= 0) || !(o->grad_clip >= 0))
        return err_set(err, "weight decay and grad clip must be non-negative");
    if (!(o->skip_loss_z >= 0) || !(o->skip_norm_z >= 0) || o->max_skips < 1)
        return err_set(err, "--skip-loss-z and --skip-norm-z must be 0 (off) or positive, "
                            "--max-skips at least 1");
    if (o->hellaswag_every < 0 || o->hellaswag_limit < 0)
        return err_set(err, "--hellaswag-every and --hellaswag-limit must not be negative");
    if (o->hellaswag_every > 0 && !o->hellaswag)
        return err_set(err, "--hellaswag-every needs --hellaswag FILE");
    if (o->val_every < 0 || o->val_steps < 0 || o->ckpt_every < 0 || o->stop_after < 0)
        return err_set(err, "step counts must be non-negative");
    if (o->threads < 0) return err_set(err, "--threads must be at least 1 (0: all CPUs)");
    if (o->zero != 0 && o->zero != 1) return err_set(err, "--zero must be 0 or 1");
    return 0;
}
