/* gpt2c_eval: a Hugging Face directory and token shards in, the mean loss out. */
#include "eval/loss.h"
#include "model/session.h"
#include "ops/profiled.h"
#include "util/error.h"
#include "util/fs.h"

int eval_loss_sum(gpt2_model *m, loader *l, int steps, double *sum, gpt2c_error *err) {
    if (loader_reset(l, err) != 0) return -1;
    *sum = 0.0;
    for (int b = l->rank; b < steps; b += l->nproc) {
        prof_mark data = prof_begin();
        if (loader_next(l, m->inputs, m->targets, err) != 0) return -1;
        prof_end(data, GPT2C_PROF_DATA);
        gpt2_forward_accumulate(m, 0.0f, 1.0f); /* read once, below */
    }
    *sum = gpt2_loss_take(m);
    return 0;
}

void gpt2c_eval_opts_default(gpt2c_eval_opts *o) {
    *o = (gpt2c_eval_opts){.batch_size = 4, .seq_len = 1024, .steps = 20, .threads = 0};
}

int gpt2c_eval(const gpt2c_eval_opts *o, double *loss, gpt2c_error *err) {
    int B = o->batch_size, T = o->seq_len, steps = o->steps;
    if (B < 1 || T < 1 || steps < 1 || o->threads < 0)
        return err_set(err, "batch size, sequence length and steps must be positive");
    if ((long long)B * T > 1LL << 28) return err_set(err, "batch size x sequence length is too large");
    if (!o->model_dir || !fs_is_dir(o->model_dir))
        return err_set(err, "%s is not a model directory", o->model_dir ? o->model_dir : "(none)");
    if (!o->data) return err_set(err, "--data is required");
    session s;
    loader l = {0};
    int rc = session_open(&s, o->device, o->threads, o->precision, err);
    if (rc == 0) rc = session_load(&s, o->model_dir, err);
    if (rc == 0) rc = session_plan(&s, B, T, 0, 0, err);
    if (rc == 0) rc = loader_open(&l, o->data, B, T, 0, 1, err);
    if (rc == 0 && o->profile) s.m.be = prof_start(o->profile, &s.be);
    if (rc == 0 && eval_loss_sum(&s.m, &l, steps, loss, err) == 0) *loss /= steps;
    else rc = -1;
    if (s.has_model && s.m.be != &s.be) prof_stop(), o->profile->steps = steps, s.m.be = &s.be;
    loader_close(&l);
    session_close(&s);
    return rc;
}
