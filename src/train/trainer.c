/* `gpt2c train`: set up (model, plan, data, state), then the loop: validation, gradient
 * accumulation over micro-batches, one optimizer step, log, checkpoint. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"
#include "eval/hellaswag.h"
#include "eval/loss.h"
#include "generate/generate.h"
#include "io/hf_model.h"
#include "model/session.h"
#include "ops/profiled.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/optimizer.h"
#include "train/outliers.h"
#include "train/run_log.h"
#include "train/train_options.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/time.h"

static int config_equal(const gpt2_config *a, const gpt2_config *b) {
    return a->n_layer == b->n_layer && a->n_head == b->n_head && a->n_embd == b->n_embd &&
           a->max_seq_len == b->max_seq_len;
}

/* The model and optimizer state to start from: fresh, or the saved state of out_dir. */
static int start_state(session *ses, train_state *st, const gpt2c_train_opts *o,
                       gpt2c_error *err) {
    if (!o->resume) {
        if (!o->model) return err_set(err, "--model is required");
        if (ckpt_exists(o->out_dir))
            return err_set(err, "%s already holds a training state: continue it with --resume, "
                                "or choose another --out-dir", o->out_dir);
        if (fs_is_dir(o->model)) return session_load(ses, o->model, err);
        /* a preset: its random weights are drawn in start(), after the plan is known to fit
         * (d12's take seconds to draw; a batch too large is refused before that) */
        gpt2_config cfg;
        if (session_named_config(o->model, o->max_seq_len, &cfg, err) != 0) return -1;
        return session_create(ses, &cfg, err);
    }
    if (ckpt_read_meta(o->out_dir, st, err) != 0) return -1;
    gpt2_config named;
    if (o->model) { /* if named, it must be the model of the saved run */
        if (session_named_config(o->model, o->max_seq_len, &named, err) != 0) return -1;
        if (!config_equal(&named, &st->cfg))
            return err_set(err, "--model differs from the model of the saved run in %s", o->out_dir);
    }
    return session_create(ses, &st->cfg, err); /* the weights: the checkpoint's, later */
}

typedef struct run {
    const gpt2c_train_opts *o;
    const gpt2c_train_callbacks *cb;
    session session;       /* --device, --precision, the model (fresh, resumed, another rank's) */
    adamw_state s;
    adamw_config ac;
    loader train, val;
    int have_val, accum;
    long steps_run, start; /* steps this call ran; the step it starts at */
    long long total_batch; /* tokens per optimizer step, over all ranks */
    data_parallel dp;
    run_log log;
    char *model_dir;
    generator gen; /* planned at the start when sampling during training */
    gpt2c_tokenizer *tok; /* --tensorboard with samples: their text */
    outlier_window loss_window, norm_window; /* the recent updates' (--skip-loss-z/-norm-z) */
    long skips_in_a_row, skips;
    double free_before;  /* the backend's free memory before the plan (-1: unknown) */
    hellaswag_set hs;    /* --hellaswag: the examples, */
    gpt2_model hs_model; /* and a view of the model with their plan */
    uint32_t sample_ids[GPT2C_TRAIN_SAMPLES][GPT2C_TRAIN_SAMPLE_TOKENS];
    size_t sample_len[GPT2C_TRAIN_SAMPLES];
} run;

static void collect_sample(void *user, int sample, uint32_t id) {
    run *r = user;
    r->sample_ids[sample][r->sample_len[sample]++] = id;
}

/* Continuations of the sample prompt with the current weights, handed to the callback and
 * written to the log. */
static int draw_samples(run *r, long step, gpt2c_error *err) {
    memset(r->sample_len, 0, sizeof r->sample_len);
    gpt2c_sample_callbacks cb = {.user = r, .on_token = collect_sample};
    gpt2c_sample_stats stats;
    if (generator_run(&r->gen, &r->session.m, r->o->sample_prompt, r->o->sample_prompt_len, &cb,
                      &stats, err) != 0)
        return -1;
    if (r->cb && r->cb->on_sample)
        for (int s = 0; s < GPT2C_TRAIN_SAMPLES; s++)
            r->cb->on_sample(r->cb->user, (int)step, s, r->sample_ids[s], r->sample_len[s]);
    for (int s = 0; r->tok && s < GPT2C_TRAIN_SAMPLES; s++) { /* the prompt and what followed */
        size_t np = r->o->sample_prompt_len, n = np + r->sample_len[s];
        uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        char *text = NULL;
        size_t len;
        if (!ids) return err_set(err, "out of memory");
        if (np) memcpy(ids, r->o->sample_prompt, np * sizeof *ids);
        memcpy(ids + np, r->sample_ids[s], r->sample_len[s] * sizeof *ids);
        int rc = gpt2c_decode(r->tok, ids, n, &text, &len, err);
        free(ids);
        if (rc == 0) rc = run_log_sample(&r->log, step, s, text, len, err);
        free(text);
        if (rc != 0) return -1;
    }
    return 0;
}

/* A collective: HellaSwag on the current weights, each rank its share of the examples, the
 * counts summed. */
static int hellaswag_step(run *r, long step, gpt2c_error *err) {
    const hellaswag_set *s = &r->hs;
    int rank = r->dp.rank, size = r->dp.size;
    int lo = (int)((long long)s->n * rank / size), hi = (int)((long long)s->n * (rank + 1) / size);
    int *pred = malloc((size_t)(hi - lo + 1) * sizeof *pred);
    int *pred_norm = malloc((size_t)(hi - lo + 1) * sizeof *pred_norm);
    double right = 0, right_norm = 0;
    gpt2c_error oom; /* (the message below is the same on every rank) */
    int ok = pred && pred_norm;
    if (ok) {
        r->hs_model.be = r->session.m.be; /* (the profiler's table, when profiling) */
        ok = hellaswag_score(&r->hs_model, s, lo, hi - lo, pred, pred_norm, &oom) == 0;
    }
    for (int i = lo; ok && i < hi; i++)
        right += pred[i - lo] == s->ex[i].label, right_norm += pred_norm[i - lo] == s->ex[i].label;
    free(pred), free(pred_norm);
    /* every rank reaches the sums, so that one out of memory does not leave the others waiting */
    double failed = dp_sum(&r->dp, ok ? 0.0 : 1.0);
    if (failed > 0) return err_set(err, "out of memory scoring HellaSwag");
    right = dp_sum(&r->dp, right), right_norm = dp_sum(&r->dp, right_norm);
    double acc = right / s->n, acc_norm = right_norm / s->n;
    if (rank == 0 && run_log_hellaswag(&r->log, step, s->n, acc, acc_norm, err) != 0) return -1;
    if (rank == 0 && r->cb && r->cb->on_hellaswag)
        r->cb->on_hellaswag(r->cb->user, (int)step, s->n, acc, acc_norm);
    return 0;
}

/* A collective: every rank calls it (with ZeRO-1 the moments are gathered); rank 0 writes. */
static int checkpoint(run *r, long next_step, gpt2c_error *err) {
    data_parallel *d = &r->dp;
    adamw_state whole = r->s;
    size_t n = r->session.m.table.total;
    if (d->zero && d->size > 1) { /* rank 0 gathers the shards into whole moments for the file */
        int ok = d->rank != 0 || adamw_state_alloc(&whole, &r->session.be, n, err) == 0;
        if (!ok) return -1; /* no collective has started: rank 0's abort ends the others */
        whole.t = r->s.t;   /* the file keeps the step count with the moments */
        dp_gather_moments(d, &r->s, whole.m, whole.v);
    }
    int rc = 0;
    if (d->rank == 0) {
        train_state st = {.cfg = r->session.m.cfg, .batch_size = r->o->batch_size,
                          .seq_len = r->o->seq_len, .nproc = d->size,
                          .total_batch = r->total_batch, .next_step = next_step,
                          .data_shard = r->train.shard, .data_pos = r->train.pos,
                          .data_shards = r->train.nshards, .data_tokens = loader_total_tokens(&r->train),
                          .loss_window = r->loss_window, .norm_window = r->norm_window,
                          .skips_in_a_row = r->skips_in_a_row};
        rc = hf_model_save(&r->session.m, r->model_dir, err);
        if (rc == 0) rc = ckpt_save(r->o->out_dir, &r->session.m, &whole, &st, err);
        if (rc == 0 && r->cb && r->cb->on_checkpoint)
            r->cb->on_checkpoint(r->cb->user, (int)next_step - 1, r->model_dir);
    }
    if (whole.m != r->s.m) adamw_state_free(&whole);
    return rc;
}

/* Whether this step's update is skipped, and why (NULL: it is made): a loss or norm that is not
 * finite, always; an outlier of the recent updates' with --skip-loss-z/--skip-norm-z. Every
 * rank decides the same: the loss and the norm are the global ones. */
static const char *skip_reason(const run *r, double loss, double norm, double *z) {
    const gpt2c_train_opts *o = r->o;
    *z = 0;
    if (!isfinite(loss) || !isfinite(norm)) return "non-finite";
    if (o->skip_loss_z > 0 && (*z = outlier_z(&r->loss_window, loss)) > o->skip_loss_z)
        return "loss outlier";
    if (o->skip_norm_z > 0 && (*z = outlier_z(&r->norm_window, norm)) > o->skip_norm_z)
        return "norm outlier";
    *z = 0;
    return NULL;
}

static int loop(run *r, long start, gpt2c_error *err) {
    const gpt2c_train_opts *o = r->o;
    gpt2_model *m = &r->session.m;
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
            if (eval_loss_sum(m, &r->val, o->val_steps, &vl, err) != 0) return -1;
            vl = dp_sum(d, vl) / o->val_steps;
            prof_end(val, GPT2C_PROF_VALIDATION);
            if (!isfinite(vl)) return err_set(err, "step %ld: the validation loss is %f; stopping", step, vl);
            if (lead && run_log_val(&r->log, step, vl, err) != 0) return -1;
            if (lead && r->cb && r->cb->on_val) r->cb->on_val(r->cb->user, (int)step, vl);
        }
        if (o->hellaswag_every > 0 && (step % o->hellaswag_every == 0 || last)) {
            prof_mark hs = prof_begin_whole();
            if (hellaswag_step(r, step, err) != 0) return -1;
            prof_end(hs, GPT2C_PROF_VALIDATION);
        }
        if (lead && o->sample_every > 0 && ((step > 0 && step % o->sample_every == 0) || last)) {
            prof_mark samples = prof_begin_whole();
            if (draw_samples(r, step, err) != 0) return -1;
            prof_end(samples, GPT2C_PROF_SAMPLES);
        }
        double t0 = now_ms();
        /* the gradients are zero: the plan made them so, and every AdamW pass zeroes them */
        for (int micro = 0; micro < r->accum; micro++) {
            prof_mark data = prof_begin();
            if (loader_next(&r->train, m->inputs, m->targets, err) != 0) return -1;
            prof_end(data, GPT2C_PROF_DATA);
            float scale = r->cb && r->cb->scale_micro_batch /* (tests only) */
                              ? (float)r->cb->scale_micro_batch(r->cb->user, (int)step, micro, d->rank)
                              : 1.0f;
            gpt2_train_micro_step(m, scale * dloss, scale);
        }
        double loss = gpt2_loss_take(m); /* the step's one wait for the device, for its loss */
        prof_mark comm = prof_begin();
        loss = dp_mean(d, loss / r->accum);
        dp_reduce_grads(d, m);
        double norm = dp_grad_norm(d, m); /* its sum of squares is an op: the optimizer's */
        prof_end(comm, GPT2C_PROF_COMM);
        double z, lr = adamw_lr_at(&r->ac, step);
        const char *skipped = skip_reason(r, loss, norm, &z);
        if (!skipped) {
            lr = adamw_update(m, &r->s, &r->ac, step, d->lo, d->hi, norm);
            comm = prof_begin();
            dp_after_update(d, m);
            prof_end(comm, GPT2C_PROF_COMM);
            outlier_push(&r->loss_window, loss), outlier_push(&r->norm_window, norm);
            r->skips_in_a_row = 0;
        } else { /* the batch's gradients go; the weights and AdamW's state stay as they were */
            m->be->ops->memset0(m->grads, m->table.total * sizeof *m->grads);
            r->skips_in_a_row++, r->skips++;
        }
        double dt = now_ms() - t0;
        gpt2c_train_step rec = {.step = (int)step, .max_steps = o->max_steps, .loss = loss, .lr = lr,
                                .norm = norm, .dt_ms = dt, .tok_s = r->total_batch / (dt / 1e3),
                                .skipped = skipped, .z = z, .skips = r->skips};
        if (lead && run_log_step(&r->log, &rec, err) != 0) return -1;
        if (lead && r->cb && r->cb->on_step) r->cb->on_step(r->cb->user, &rec);
        r->steps_run++;
        if (r->skips_in_a_row >= o->max_skips) /* (the last checkpoint stays as it was) */
            return err_set(err, "step %ld: %ld updates skipped in a row (the last: %s loss %g, "
                                "norm %g); stopping", step, r->skips_in_a_row, skipped, loss, norm);
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
    if (rc == 0 && d->rank == 0) rc = start_state(&r->session, st, r->o, err);
    if (rc != 0) return -1; /* rank 0 only: its abort ends the ranks waiting below */
    if (d->rank == 0) st->cfg = r->session.m.cfg;
    dp_broadcast(d, st, sizeof *st);
    return d->rank == 0 ? 0 : session_create(&r->session, &st->cfg, err);
}

/* Resume: rank 0 reads the saved weights and moments, every rank gets its part. */
static int resume_state(run *r, const train_state *st, gpt2c_error *err) {
    data_parallel *d = &r->dp;
    adamw_state whole = r->s;
    int rc = 0;
    if (d->rank == 0 && d->zero && d->size > 1) /* the whole moments, scattered below */
        rc = adamw_state_alloc(&whole, &r->session.be, r->session.m.table.total, err);
    if (rc == 0 && d->rank == 0) rc = ckpt_load(r->o->out_dir, &r->session.m, &whole, err);
    if (rc == 0) {
        dp_share_params(d, &r->session.m);
        dp_scatter_moments(d, whole.m, whole.v, &r->s);
        r->s.t = st->adam_t;
        rc = loader_seek(&r->train, st->data_shard, st->data_pos, err);
    }
    if (whole.m != r->s.m) adamw_state_free(&whole);
    return rc;
}

/* --hellaswag: the examples, and a view of the model planned for them. */
static int hellaswag_open(run *r, gpt2c_error *err) {
    gpt2c_tokenizer *tok = gpt2c_tokenizer_new(err);
    int rc = tok ? hellaswag_read(&r->hs, r->o->hellaswag, tok, r->o->hellaswag_limit,
                                  r->session.m.cfg.max_seq_len, err) : -1;
    gpt2c_tokenizer_free(tok);
    gpt2_view(&r->hs_model, &r->session.m);
    return rc == 0 ? hellaswag_plan(&r->hs_model, &r->hs, err) : -1;
}

/* Setup: the options, the backend, the ranks, the model, its plan and the data. */
static int setup(run *r, train_state *st, gpt2c_error *err) {
    const gpt2c_train_opts *o = r->o;
    gpt2c_comm *comm = o->comm ? o->comm : comm_single();
    if (train_opts_check(o, err) != 0) return -1;
    if (session_open(&r->session, o->device, o->threads, o->precision, err) != 0) return -1;
    r->ac = (adamw_config){.lr = o->lr, .min_lr_ratio = o->min_lr_ratio, .beta1 = o->beta1,
                           .beta2 = o->beta2, .eps = o->eps, .weight_decay = o->weight_decay,
                           .grad_clip = o->grad_clip, .warmup_steps = o->warmup_steps,
                           .max_steps = o->max_steps};
    long long bt = (long long)o->batch_size * o->seq_len, ranks = comm->size;
    r->total_batch = o->total_batch ? o->total_batch : bt * ranks;
    r->accum = (int)(r->total_batch / (bt * ranks));
    if (r->total_batch % (bt * ranks) != 0)
        return err_set(err, "--total-batch-size %lld is not a multiple of batch size x sequence "
                            "length x processes (%d x %d x %lld = %lld)", r->total_batch,
                       o->batch_size, o->seq_len, ranks, bt * ranks);
    if (dp_init(&r->dp, comm, o->zero, &r->session.be, err) != 0) return -1;
    if (dp_check_same(&r->dp, train_opts_hash(o), "training options", err) != 0) return -1;
    if (start_model(r, st, err) != 0) return -1;
    if (o->resume && (st->batch_size != o->batch_size || st->seq_len != o->seq_len ||
                      st->total_batch != r->total_batch))
        return err_set(err, "the saved run used batch %d x %d and a total batch of %lld; resume "
                            "with the same", st->batch_size, st->seq_len, st->total_batch);
    if (dp_shard(&r->dp, &r->session.m, err) != 0) return -1;
    r->session.m.recompute = o->recompute;
    r->free_before = r->session.be.ops->mem_available();
    if (session_plan(&r->session, o->batch_size, o->seq_len, 1, r->dp.hi - r->dp.lo, err) != 0)
        return -1;
    if (adamw_state_alloc(&r->s, &r->session.be, r->dp.hi - r->dp.lo, err) != 0) return -1;
    if (loader_open(&r->train, o->data, o->batch_size, o->seq_len, r->dp.rank, r->dp.size, err))
        return -1;
    r->have_val = o->val_data != NULL;
    if (r->have_val && loader_open(&r->val, o->val_data, o->batch_size, o->seq_len, r->dp.rank,
                                   r->dp.size, err) != 0)
        return -1;
    uint64_t h = data_hash(&r->train);
    if (r->have_val) h = dp_hash(h, &(uint64_t){data_hash(&r->val)}, 8);
    if (o->hellaswag && hellaswag_open(r, err) != 0) return -1;
    if (o->hellaswag) h = dp_hash(h, &r->hs.n, sizeof r->hs.n);
    return dp_check_same(&r->dp, h, "data (shard counts and sizes, HellaSwag examples)", err);
}

/* Where the run starts: the saved state (resume) or rank 0's fresh weights; then what the loop
 * needs besides: the sampler, the model directory's path, the log. */
static int start(run *r, const train_state *st, gpt2c_error *err) {
    const gpt2c_train_opts *o = r->o;
    int lead = r->dp.rank == 0;
    if (o->resume) {
        uint64_t tokens = loader_total_tokens(&r->train);
        if (st->data_shards != r->train.nshards || st->data_tokens != tokens)
            return err_set(err, "the train data differ from the saved run's (%llu shards, %llu "
                                "tokens then; %zu shards, %llu tokens now)",
                           (unsigned long long)st->data_shards,
                           (unsigned long long)st->data_tokens, r->train.nshards,
                           (unsigned long long)tokens);
        if (resume_state(r, st, err) != 0) return -1;
        r->start = st->next_step;
        r->loss_window = st->loss_window, r->norm_window = st->norm_window;
        r->skips_in_a_row = st->skips_in_a_row;
    } else {
        /* (a failure on rank 0 aborts the ranks waiting in the share) */
        if (lead && !fs_is_dir(o->model) && gpt2_init_random(&r->session.m, o->seed, err) != 0)
            return -1;
        dp_share_params(&r->dp, &r->session.m);
    }
    if (lead && o->sample_every > 0) {
        gpt2c_sample_opts so = {.num_samples = GPT2C_TRAIN_SAMPLES,
                                .max_tokens = GPT2C_TRAIN_SAMPLE_TOKENS, .top_k = 50,
                                .top_p = 1.0, .temperature = 1.0, .seed = 42};
        size_t np = o->sample_prompt_len;
        if (generator_init(&r->gen, &r->session.m, &so, np > INT32_MAX ? INT32_MAX : (int)np, err) != 0)
            return -1;
    }
    r->model_dir = fs_join(o->out_dir, "model");
    if (!r->model_dir) return err_set(err, "out of memory");
    if (lead && o->tensorboard && o->sample_every > 0 && !(r->tok = gpt2c_tokenizer_new(err)))
        return -1; /* (the samples' text) */
    return lead ? run_log_open(&r->log, o->out_dir, r->start, o->tensorboard, err) : 0;
}

/* The plan line: what runs where, and the memory it took (gpt2_plan_bytes, as checked). */
static void report_plan(const run *r) {
    const gpt2c_train_opts *o = r->o;
    const gpt2_model *m = &r->session.m;
    if (r->dp.rank != 0 || !r->cb || !r->cb->on_plan) return;
    size_t padding = (size_t)(GPT2_VOCAB_PADDED - GPT2_VOCAB) * m->cfg.n_embd;
    gpt2_plan_memory mem = gpt2_plan_parts(m, o->batch_size, o->seq_len, 1, r->dp.hi - r->dp.lo);
    double bytes = mem.params + mem.copy + mem.grads + mem.adamw + mem.acts + mem.scratch;
    gpt2c_train_plan p = {.params = m->table.total - padding, .memory_mb = bytes / 1e6,
                          .params_mb = mem.params / 1e6, .copy_mb = mem.copy / 1e6,
                          .grads_mb = mem.grads / 1e6, .adamw_mb = mem.adamw / 1e6,
                          .acts_mb = mem.acts / 1e6, .scratch_mb = mem.scratch / 1e6,
                          .free_mb = r->free_before < 0 ? -1 : r->free_before / 1e6,
                          .accum_steps = r->accum, .start_step = (int)r->start,
                          .max_steps = o->max_steps, .n_layer = m->cfg.n_layer,
                          .n_head = m->cfg.n_head, .n_embd = m->cfg.n_embd,
                          .max_seq_len = m->cfg.max_seq_len,
                          .init = o->resume ? "resume" : fs_is_dir(o->model) ? "hf" : "random",
                          .precision = r->session.precision == GPT2_BF16 ? "bf16" : "fp32",
                          .precision_path = r->session.be.path[r->session.precision],
                          .device = r->session.be.name,
                          .ranks = r->dp.size, .zero = o->zero,
                          .comm = r->dp.comm->ops->name};
    r->cb->on_plan(r->cb->user, &p);
}

/* The loop, timed by kind of work under --profile. */
static int profiled_loop(run *r, gpt2c_error *err) {
    gpt2c_profile *profile = r->o->profile;
    if (profile) r->session.m.be = prof_start(profile, &r->session.be);
    int rc = loop(r, r->start, err);
    if (profile) prof_stop(), profile->steps = r->steps_run, r->session.m.be = &r->session.be;
    return rc;
}

/* Teardown: everything setup and start made, whatever stage failed (each free is safe on what
 * was never made). Returns rc, or -1 when the log cannot be closed. */
static int teardown(run *r, int rc, gpt2c_error *err) {
    if (r->log.f && run_log_close(&r->log, rc == 0 ? err : NULL) != 0) rc = -1;
    free(r->model_dir);
    gpt2c_tokenizer_free(r->tok);
    generator_free(&r->gen);
    gpt2_unplan(&r->hs_model);
    hellaswag_free(&r->hs);
    loader_close(&r->train);
    loader_close(&r->val);
    adamw_state_free(&r->s);
    dp_free(&r->dp);
    session_close(&r->session); /* last: everything above held the backend's memory */
    return rc ? -1 : 0;
}

int gpt2c_train(const gpt2c_train_opts *o, const gpt2c_train_callbacks *cb, gpt2c_error *err) {
    run r = {.o = o, .cb = cb};
    train_state st = {0};
    int rc = setup(&r, &st, err);
    if (rc == 0) rc = start(&r, &st, err);
    if (rc == 0) report_plan(&r);
    if (rc == 0) rc = profiled_loop(&r, err);
    return teardown(&r, rc, err);
}
