/* gpt2c_sample: a Hugging Face directory in, continuations out through callbacks. */
#include <string.h>

#include "generate/generate.h"
#include "model/session.h"
#include "ops/profiled.h"
#include "util/error.h"
#include "util/time.h"

void gpt2c_sample_opts_default(gpt2c_sample_opts *o) {
    *o = (gpt2c_sample_opts){.num_samples = 5, .max_tokens = 30, .top_k = 50, .top_p = 1.0,
                             .temperature = 1.0, .seed = 42, .threads = 0};
}

int gpt2c_sample(const gpt2c_sample_opts *o, const uint32_t *prompt, size_t n,
                 const gpt2c_sample_callbacks *cb, gpt2c_sample_stats *stats, gpt2c_error *err) {
    memset(stats, 0, sizeof *stats);
    for (size_t i = 0; i < n; i++)
        if (prompt[i] >= GPT2C_VOCAB_SIZE) return err_set(err, "prompt token %zu is %u, outside the vocabulary", i, prompt[i]);
    double t0 = now_ms();
    session ses;
    gpt2_model *m = &ses.m;
    generator g = {0};
    int rc = session_open(&ses, o->device, o->threads, o->precision, err);
    if (rc == 0) rc = session_load(&ses, o->model_dir, err);
    if (rc == 0) {
        int max_prompt = n > (size_t)m->cfg.max_seq_len ? m->cfg.max_seq_len : (int)n;
        stats->precision_path = ses.be.path[ses.precision];
        rc = generator_init(&g, m, o, max_prompt, err);
    }
    double load_ms = now_ms() - t0;
    int profiling = rc == 0 && o->profile;
    if (profiling) m->be = prof_start(o->profile, &ses.be);
    if (rc == 0) rc = generator_run(&g, m, prompt, n, cb, stats, err);
    if (profiling) prof_stop(), o->profile->steps = g.steps_run, m->be = &ses.be;
    stats->load_ms = load_ms;
    generator_free(&g); /* safe after a failed init too */
    session_close(&ses);
    return rc;
}
