/* `gpt2c train`: set up (model, plan, data, state), then the loop: validation, gradient
 * accumulation over micro-batches, one optimizer step, log, checkpoint. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"
#include "generate/generate.h"
#include "io/hf_config.h"
#include "io/hf_model.h"
#include "ops/backend.h"
#include "ops/profiled.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/optimizer.h"
#include "train/run_log.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/time.h"

void gpt2c_train_opts_default(gpt2c_train_opts *o) {
    *o = (gpt2c_train_opts){.max_seq_len = 1024, .batch_size = 4, .seq_len = 1024,
                            .max_steps = 50, .warmup_steps = 10, .lr = 6e-4, .min_lr_ratio = 0.1,
                            .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                            .grad_clip = 1.0, .val_every = 250, .val_steps = 20, .seed = 1337,
                            .threads = 1, .device = "cpu"};
}

/* The shape of the model named by --model: a Hugging Face directory's, or a preset's. */
static int model_config(const gpt2c_train_opts *o, gpt2_config *cfg, gpt2c_error *err) {
    if (fs_is_dir(o->model)) return hf_config_read(o->model, cfg, err);
    if (gpt2_config_preset(o->model, cfg, err) != 0) return -1;
    cfg->max_seq_len = o->max_seq_len;
    return 0;
}

/* The model named by --model: a Hugging Face directory, or a preset initialised at random. */
static int model_open(gpt2_model *m, const gpt2c_train_opts *o, const gpt2_ops *ops,
                      gpt2c_error *err) {
    if (fs_is_dir(o->model)) return hf_model_load(m, o->model, ops, err);
    gpt2_config cfg;
    if (model_config(o, &cfg, err) != 0 || gpt2_create(m, &cfg, ops, err) != 0) return -1;
    return gpt2_init_random(m, o->seed, err);
}

/* Allocate the plan, after checking that it fits in the memory the machine has available. */
static int plan_checked(gpt2_model *m, int B, int T, int training, gpt2c_error *err) {
    double params = (double)m->table.total * sizeof(float); /* allocated already */
    double need = gpt2_plan_bytes(m, B, T, training), avail = m->ops->mem_available();
    if (avail >= 0 && need - params > avail)
        return err_set(err, "batch %d x %d needs %.1f GB (parameters%s, activations), the %s has "
                            "%.1f GB available: use a smaller --batch-size or --seq-len%s",
                       B, T, need / 1e9, training ? ", gradients, AdamW state" : "",
                       m->ops->host_memory ? "machine" : "GPU", (avail + params) / 1e9,
                       training && !m->recompute ? ", or --recompute" : "");
    return gpt2_plan(m, B, T, training, err);
}

static int config_equal(const gpt2_config *a, const gpt2_config *b) {
    return a->n_layer == b->n_layer && a->n_head == b->n_head && a->n_embd == b->n_embd &&
           a->max_seq_len == b->max_seq_len;
}

/* The model and optimizer state to start from: fresh, or the saved state of out_dir. */
static int start_state(gpt2_model *m, train_state *st, const gpt2c_train_opts *o,
                       const gpt2_ops *ops, gpt2c_error *err) {
    if (!o->resume) {
        if (!o->model) return err_set(err, "--model is required");
        if (ckpt_exists(o->out_dir))
            return err_set(err, "%s already holds a training state: continue it with --resume, "
                                "or choose another --out-dir", o->out_dir);
        return model_open(m, o, ops, err);
    }
    if (ckpt_read_meta(o->out_dir, st, err) != 0) return -1;
    gpt2_config named;
    if (o->model) { /* if named, it must be the model of the saved run */
        if (model_config(o, &named, err) != 0) return -1;
        if (!config_equal(&named, &st->cfg))
            return err_set(err, "--model differs from the model of the saved run in %s", o->out_dir);
    }
    return gpt2_create(m, &st->cfg, ops, err);
}

static int check_opts(const gpt2c_train_opts *o, gpt2c_error *err) {
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
    if (o->val_every < 0 || o->val_steps < 0 || o->ckpt_every < 0 || o->stop_after < 0)
        return err_set(err, "step counts must be non-negative");
    if (o->threads < 1) return err_set(err, "--threads must be at least 1");
    if (o->zero != 0 && o->zero != 1) return err_set(err, "--zero must be 0 or 1");
    if (o->precision && strcmp(o->precision, "fp32") && strcmp(o->precision, "bf16"))
        return err_set(err, "--precision must be fp32 or bf16, not '%s'", o->precision);
    return 0;
}

/* This rank's sum of the mean losses of batches 0..steps-1 from the start of the data: those
 * of them its loader reads (every nproc-th from its rank on), so that the sum over the ranks is
 * one process's (validation, eval). */
static int loss_sum(gpt2_model *m, loader *l, int steps, double *sum, gpt2c_error *err) {
    if (loader_reset(l, err) != 0) return -1;
    *sum = 0.0;
    for (int b = l->rank; b < steps; b += l->nproc) {
        prof_mark data = prof_begin();
        if (loader_next(l, m->inputs, m->targets, err) != 0) return -1;
        prof_end(data, GPT2C_PROF_DATA);
        *sum += gpt2_forward(m, 0.0f);
    }
    return 0;
}

typedef struct run {
    const gpt2c_train_opts *o;
    const gpt2c_train_callbacks *cb;
    gpt2_model m;
    adamw_state s;
    adamw_config ac;
    loader train, val;
    int have_val, accum, bf16;
    long steps_run;
    const gpt2_ops *ops;   /* the backend: --device */
    long long total_batch; /* tokens per optimizer step, over all ranks */
    data_parallel dp;
    run_log log;
    char *model_dir;
    generator gen; /* planned at the start when sampling during training */
    uint32_t sample_ids[GPT2C_TRAIN_SAMPLES][GPT2C_TRAIN_SAMPLE_TOKENS];
    size_t sample_len[GPT2C_TRAIN_SAMPLES];
} run;

static void collect_sample(void *user, int sample, uint32_t id) {
    run *r = user;
    r->sample_ids[sample][r->sample_len[sample]++] = id;
}

/* Continuations of the sample prompt with the current weights, handed to the callback. */
static int print_samples(run *r, long step, gpt2c_error *err) {
    memset(r->sample_len, 0, sizeof r->sample_len);
    gpt2c_sample_callbacks cb = {.user = r, .on_token = collect_sample};
    gpt2c_sample_stats stats;
    if (generator_run(&r->gen, &r->m, r->o->sample_prompt, r->o->sample_prompt_len, &cb, &stats, err) != 0)
        return -1;
    if (r->cb && r->cb->on_sample)
        for (int s = 0; s < GPT2C_TRAIN_SAMPLES; s++)
            r->cb->on_sample(r->cb->user, (int)step, s, r->sample_ids[s], r->sample_len[s]);
    return 0;
}

/* A collective: every rank calls it (with ZeRO-1 the moments are gathered); rank 0 writes. */
static int checkpoint(run *r, long next_step, gpt2c_error *err) {
    data_parallel *d = &r->dp;
    adamw_state whole = r->s;
    size_t n = r->m.table.total;
    if (d->zero && d->size > 1) { /* rank 0 gathers the shards into whole moments for the file */
        whole.m = d->rank == 0 ? mem_floats(n) : NULL;
        whole.v = d->rank == 0 ? mem_floats(n) : NULL;
        int ok = d->rank != 0 || (whole.m && whole.v);
        if (!ok) { /* no collective has started: rank 0 errs, and its abort ends the others */
            adamw_state_free(&whole);
            return err_set(err, "out of memory gathering the optimizer state (%.1f GB)", 8e-9 * n);
        }
        dp_gather_moments(d, &r->s, whole.m, whole.v);
    }
    int rc = 0;
    if (d->rank == 0) {
        train_state st = {.cfg = r->m.cfg, .batch_size = r->o->batch_size, .seq_len = r->o->seq_len,
                          .nproc = d->size, .total_batch = r->total_batch, .next_step = next_step,
                          .data_shard = r->train.shard, .data_pos = r->train.pos,
                          .data_shards = r->train.nshards, .data_tokens = loader_total_tokens(&r->train)};
        rc = hf_model_save(&r->m, r->model_dir, err);
        if (rc == 0) rc = ckpt_save(r->o->out_dir, &r->m, &whole, &st, err);
        if (rc == 0 && r->cb && r->cb->on_checkpoint)
            r->cb->on_checkpoint(r->cb->user, (int)next_step - 1, r->model_dir);
    }
    if (whole.m != r->s.m) adamw_state_free(&whole);
    return rc;
}

static int loop(run *r, long start, gpt2c_error *err) {
    const gpt2c_train_opts *o = r->o;
    gpt2_model *m = &r->m;
    data_parallel *d = &r->dp;
    int lead = d->rank == 0; /* only rank 0 logs and reports */
    /* each micro-batch's loss is scaled so that the gradients summed over micro-steps and ranks
     * are the gradient of the mean loss of the whole batch */
    float dloss = (float)(1.0 / (double)r->total_batch);
    for (long step = start; step < o->max_steps; step++) {
        int last = step == o->max_steps - 1;
        if (r->have_val && o->val_every > 0 && o->val_steps > 0 && (step % o->val_every == 0 || last)) {
            double vl;
            prof_mark val = prof_begin_whole();
            if (loss_sum(m, &r->val, o->val_steps, &vl, err) != 0) return -1;
            vl = dp_sum(d, vl) / o->val_steps;
            prof_end(val, GPT2C_PROF_VALIDATION);
            if (!isfinite(vl)) return err_set(err, "step %ld: the validation loss is %f; stopping", step, vl);
            if (lead && run_log_val(&r->log, step, vl, err) != 0) return -1;
            if (lead && r->cb && r->cb->on_val) r->cb->on_val(r->cb->user, (int)step, vl);
        }
        if (lead && o->sample_every > 0 && ((step > 0 && step % o->sample_every == 0) || last)) {
            prof_mark samples = prof_begin_whole();
            if (print_samples(r, step, err) != 0) return -1;
            prof_end(samples, GPT2C_PROF_SAMPLES);
        }
        double t0 = now_ms(), loss = 0.0;
        /* the gradients are zero: the plan made them so, and every AdamW pass zeroes them */
        for (int micro = 0; micro < r->accum; micro++) {
            prof_mark data = prof_begin();
            if (loader_next(&r->train, m->inputs, m->targets, err) != 0) return -1;
            prof_end(data, GPT2C_PROF_DATA);
            loss += gpt2_forward(m, dloss);
            gpt2_backward(m);
        }
        prof_mark comm = prof_begin();
        loss = dp_mean(d, loss / r->accum);
        dp_reduce_grads(d, m);
        double norm = dp_grad_norm(d, m); /* its sum of squares is an op: the optimizer's */
        prof_end(comm, GPT2C_PROF_COMM);
        double lr = adamw_update(m, &r->s, &r->ac, step, d->lo, d->hi, norm);
        comm = prof_begin();
        dp_after_update(d, m);
        prof_end(comm, GPT2C_PROF_COMM);
        double dt = now_ms() - t0;
        gpt2c_train_step rec = {.step = (int)step, .max_steps = o->max_steps, .loss = loss, .lr = lr,
                                .norm = norm, .dt_ms = dt, .tok_s = r->total_batch / (dt / 1e3)};
        if (!isfinite(loss)) return err_set(err, "step %ld: the loss is %f; stopping", step, loss);
        if (lead && run_log_step(&r->log, &rec, err) != 0) return -1;
        if (lead && r->cb && r->cb->on_step) r->cb->on_step(r->cb->user, &rec);
        r->steps_run++;
        int stop = o->stop_after > 0 && step + 1 >= o->stop_after;
        if (last || stop || (o->ckpt_every > 0 && (step + 1) % o->ckpt_every == 0)) {
            prof_mark ckpt = prof_begin();
            if (checkpoint(r, step + 1, err) != 0) return -1;
            prof_end(ckpt, GPT2C_PROF_CHECKPOINT);
        }
        if (stop) break;
    }
    return 0;
}

/* A hash of the options every rank must share (paths may differ between machines; the data
 * they name are compared separately). */
static uint64_t options_hash(const gpt2c_train_opts *o) {
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s %d %d %d %lld %d %d %.17g %.17g %.17g %.17g %.17g %.17g "
                     "%.17g %d %d %d %llu %d %d %d %s %d %d %d",
                     o->model && !fs_is_dir(o->model) ? o->model : "dir", o->max_seq_len,
                     o->batch_size, o->seq_len, o->total_batch, o->max_steps, o->warmup_steps, o->lr,
                     o->min_lr_ratio, o->beta1, o->beta2, o->eps, o->weight_decay, o->grad_clip,
                     o->val_every, o->val_steps, o->ckpt_every, o->seed, o->resume, o->stop_after,
                     o->sample_every, o->precision ? o->precision : "-", o->zero,
                     o->val_data != NULL, o->recompute);
    return dp_hash(0, buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
}

static uint64_t data_hash(const loader *l) {
    uint64_t h = dp_hash(0, &l->nshards, sizeof l->nshards);
    return dp_hash(h, l->counts, l->nshards * sizeof *l->counts);
}

/* Rank 0 makes the model (fresh, from a Hugging Face directory or from the saved state) and
 * every other rank a model of the same shape; the weights are shared later. */
static int start_model(run *r, train_state *st, gpt2c_error *err) {
    data_parallel *d = &r->dp;
    int rc = 0;
    if (d->rank == 0) rc = fs_make_dirs(r->o->out_dir, err);
    if (rc == 0 && d->rank == 0) rc = start_state(&r->m, st, r->o, r->ops, err);
    if (rc != 0) return -1; /* rank 0 only: its abort ends the ranks waiting below */
    if (d->rank == 0) st->cfg = r->m.cfg;
    dp_broadcast(d, st, sizeof *st);
    return d->rank == 0 ? 0 : gpt2_create(&r->m, &st->cfg, r->ops, err);
}

/* Resume: rank 0 reads the saved weights and moments, every rank gets its part. */
static int resume_state(run *r, const train_state *st, gpt2c_error *err) {
    data_parallel *d = &r->dp;
    adamw_state whole = r->s;
    int rc = 0;
    if (d->rank == 0 && d->zero && d->size > 1) {
        whole.m = mem_floats(r->m.table.total), whole.v = mem_floats(r->m.table.total);
        if (!whole.m || !whole.v) rc = err_set(err, "out of memory reading the optimizer state");
    }
    if (rc == 0 && d->rank == 0) rc = ckpt_load(r->o->out_dir, &r->m, &whole, err);
    if (rc == 0) {
        dp_share_params(d, &r->m);
        dp_scatter_moments(d, whole.m, whole.v, &r->s);
        r->s.t = st->adam_t;
        rc = loader_seek(&r->train, st->data_shard, st->data_pos, err);
    }
    if (whole.m != r->s.m) adamw_state_free(&whole);
    return rc;
}

int gpt2c_train(const gpt2c_train_opts *o, const gpt2c_train_callbacks *cb, gpt2c_error *err) {
    if (check_opts(o, err) != 0) return -1;
    gpt2c_comm *comm = o->comm ? o->comm : comm_single();
    gpt2_ops_cpu.set_threads(o->threads);
    const gpt2_ops *ops = gpt2_backend(o->device, err);
    if (!ops) return -1;
    if (!ops->host_memory && comm->size > 1)
        return err_set(err, "training on %d GPUs needs the NCCL communicator, which gpt2c does not "
                            "have yet: run one process per GPU without mpirun", comm->size);
    /* bf16 by default on a GPU, as the seed; fp32 on the CPU */
    const char *precision = o->precision ? o->precision : ops->host_memory ? "fp32" : "bf16";
    run r = {.o = o, .cb = cb, .bf16 = !strcmp(precision, "bf16"), .ops = ops};
    r.ac = (adamw_config){.lr = o->lr, .min_lr_ratio = o->min_lr_ratio, .beta1 = o->beta1,
                          .beta2 = o->beta2, .eps = o->eps, .weight_decay = o->weight_decay,
                          .grad_clip = o->grad_clip, .warmup_steps = o->warmup_steps,
                          .max_steps = o->max_steps};
    long long bt = (long long)o->batch_size * o->seq_len, ranks = comm->size;
    r.total_batch = o->total_batch ? o->total_batch : bt * ranks;
    r.accum = (int)(r.total_batch / (bt * ranks));
    train_state st = {0};
    int rc = 0, created = 0;
    if (r.total_batch % (bt * ranks) != 0)
        rc = err_set(err, "--total-batch-size %lld is not a multiple of batch size x sequence length "
                          "x processes (%d x %d x %lld = %lld)", r.total_batch, o->batch_size,
                     o->seq_len, ranks, bt * ranks);
    dp_init(&r.dp, comm, o->zero);
    if (rc == 0) rc = dp_check_same(&r.dp, options_hash(o), "training options", err);
    if (rc == 0) rc = start_model(&r, &st, err);
    created = rc == 0;
    if (rc == 0 && o->resume && (st.batch_size != o->batch_size || st.seq_len != o->seq_len ||
                                 st.total_batch != r.total_batch))
        rc = err_set(err, "the saved run used batch %d x %d and a total batch of %lld; resume "
                          "with the same", st.batch_size, st.seq_len, st.total_batch);
    if (rc == 0) rc = dp_shard(&r.dp, r.m.table.total, err);
    if (rc == 0) rc = gpt2_set_precision(&r.m, r.bf16 ? GPT2_BF16 : GPT2_FP32, err);
    r.m.recompute = o->recompute;
    if (rc == 0) rc = plan_checked(&r.m, o->batch_size, o->seq_len, 1, err);
    if (rc == 0) rc = adamw_state_alloc(&r.s, ops, r.dp.hi - r.dp.lo, err);
    if (rc == 0)
        rc = loader_open(&r.train, o->data, o->batch_size, o->seq_len, r.dp.rank, r.dp.size, err);
    r.have_val = o->val_data != NULL;
    if (rc == 0 && r.have_val)
        rc = loader_open(&r.val, o->val_data, o->batch_size, o->seq_len, r.dp.rank, r.dp.size, err);
    if (rc == 0) {
        uint64_t h = data_hash(&r.train);
        rc = dp_check_same(&r.dp, r.have_val ? dp_hash(h, &(uint64_t){data_hash(&r.val)}, 8) : h,
                           "data (shard counts and sizes)", err);
    }
    long start = 0;
    if (rc == 0 && o->resume) {
        uint64_t tokens = loader_total_tokens(&r.train);
        if (st.data_shards != r.train.nshards || st.data_tokens != tokens)
            rc = err_set(err, "the train data differ from the saved run's (%llu shards, %llu tokens "
                              "then; %zu shards, %llu tokens now)", (unsigned long long)st.data_shards,
                         (unsigned long long)st.data_tokens, r.train.nshards, (unsigned long long)tokens);
        if (rc == 0) rc = resume_state(&r, &st, err);
        start = st.next_step;
    } else if (rc == 0) {
        dp_share_params(&r.dp, &r.m);
    }
    int lead = r.dp.rank == 0;
    if (rc == 0 && lead && o->sample_every > 0) {
        gpt2c_sample_opts so = {.num_samples = GPT2C_TRAIN_SAMPLES, .max_tokens = GPT2C_TRAIN_SAMPLE_TOKENS,
                                .top_k = 50, .top_p = 1.0, .temperature = 1.0, .seed = 42};
        size_t np = o->sample_prompt_len;
        rc = generator_init(&r.gen, &r.m, &so, np > INT32_MAX ? INT32_MAX : (int)np, err);
    }
    r.model_dir = fs_join(o->out_dir, "model");
    if (rc == 0 && !r.model_dir) rc = err_set(err, "out of memory");
    if (rc == 0 && lead) rc = run_log_open(&r.log, o->out_dir, start, err);
    if (rc == 0 && lead && cb && cb->on_plan) {
        size_t params = r.m.table.total - (size_t)(GPT2_VOCAB_PADDED - GPT2_VOCAB) * r.m.cfg.n_embd;
        /* params and grads; m and v (this rank's part); the bf16 copy; activations */
        double total = (double)r.m.table.total, own_part = (double)(r.dp.hi - r.dp.lo);
        double bytes = 8.0 * total + 8.0 * own_part + (r.bf16 ? 2.0 * total : 0) +
                       (double)r.m.act_bytes;
        gpt2c_train_plan p = {.params = params, .memory_mb = bytes / 1e6, .accum_steps = r.accum,
                              .start_step = (int)start, .max_steps = o->max_steps,
                              .n_layer = r.m.cfg.n_layer, .n_head = r.m.cfg.n_head,
                              .n_embd = r.m.cfg.n_embd, .max_seq_len = r.m.cfg.max_seq_len,
                              .init = o->resume ? "resume" : fs_is_dir(o->model) ? "hf" : "random",
                              .precision = r.bf16 ? "bf16" : "fp32",
                              .precision_path = ops->precision_path(r.bf16), .device = ops->name,
                              .ranks = r.dp.size,
                              .zero = o->zero};
        cb->on_plan(cb->user, &p);
    }
    int profiling = rc == 0 && o->profile;
    if (profiling) r.m.ops = prof_start(o->profile, ops);
    if (rc == 0) rc = loop(&r, start, err);
    if (profiling) {
        prof_stop();
        o->profile->steps = r.steps_run;
        r.m.ops = ops;
    }
    if (r.log.f) rc |= run_log_close(&r.log, rc == 0 ? err : NULL);
    free(r.model_dir);
    generator_free(&r.gen);
    loader_close(&r.train);
    if (r.have_val) loader_close(&r.val);
    adamw_state_free(&r.s);
    dp_free(&r.dp);
    if (created) gpt2_free(&r.m);
    return rc ? -1 : 0;
}

int gpt2c_eval(const char *model_dir, const char *data_glob, int B, int T, int steps, int threads,
               const char *device, double *loss, gpt2c_profile *profile, gpt2c_error *err) {
    if (B < 1 || T < 1 || steps < 1 || threads < 1)
        return err_set(err, "batch size, sequence length, steps and threads must be positive");
    if ((long long)B * T > 1LL << 28) return err_set(err, "batch size x sequence length is too large");
    gpt2_ops_cpu.set_threads(threads);
    if (!fs_is_dir(model_dir)) return err_set(err, "%s is not a model directory", model_dir);
    gpt2_model m;
    const gpt2_ops *ops = gpt2_backend(device, err);
    if (!ops || hf_model_load(&m, model_dir, ops, err) != 0) return -1;
    loader l = {0};
    int rc = plan_checked(&m, B, T, 0, err);
    if (rc == 0) rc = loader_open(&l, data_glob, B, T, 0, 1, err);
    int profiling = rc == 0 && profile;
    if (profiling) m.ops = prof_start(profile, ops);
    if (rc == 0 && loss_sum(&m, &l, steps, loss, err) == 0) *loss /= steps;
    else rc = -1;
    if (profiling) prof_stop(), profile->steps = steps, m.ops = ops;
    if (l.paths) loader_close(&l);
    gpt2_free(&m);
    return rc;
}
