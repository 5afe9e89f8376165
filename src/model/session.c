#include <stdio.h>
#include <string.h>

#include "io/hf_config.h"
#include "io/hf_model.h"
#include "model/memory_fit.h"
#include "model/session.h"
#include "util/error.h"
#include "util/fs.h"

int session_open(session *s, const char *device, int threads, const char *precision,
                 gpt2c_error *err) {
    memset(s, 0, sizeof *s);
    if (gpt2_backend_open(&s->be, device, threads, err) != 0) return -1;
    return gpt2_backend_precision(&s->be, precision, &s->precision, err);
}

/* After the model is made: its precision (a bf16 copy of the weights made now is remade by
 * whatever fills the weights later). */
static int made(session *s, int rc, gpt2c_error *err) {
    if (rc != 0) return -1;
    s->has_model = 1;
    return gpt2_set_precision(&s->m, s->precision, err);
}

int session_load(session *s, const char *dir, gpt2c_error *err) {
    return made(s, hf_model_load(&s->m, dir, &s->be, err), err);
}

int session_named_config(const char *name, int max_seq_len, gpt2_config *cfg, gpt2c_error *err) {
    if (fs_is_dir(name)) return hf_config_read(name, cfg, err);
    if (gpt2_config_preset(name, cfg, err) != 0) return -1;
    cfg->max_seq_len = max_seq_len;
    return 0;
}

int session_create(session *s, const gpt2_config *cfg, gpt2c_error *err) {
    return made(s, gpt2_create(&s->m, cfg, &s->be, err), err);
}

/* The largest batch size below B whose plan fits in `avail` bytes besides those held, or 0
 * (the plan grows with B: a binary search). */
static int largest_batch(const gpt2_model *m, int B, int T, int training, size_t moments,
                         double held, double avail) {
    int lo = 0, hi = B - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (gpt2_plan_bytes(m, mid, T, training, moments) - held <= avail) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

int session_plan(session *s, int B, int T, int training, size_t moments, gpt2c_error *err) {
    gpt2_model *m = &s->m;
    double held = memory_fit_held(m);
    char what[64], advice[160];
    snprintf(what, sizeof what, "batch %d x %d", B, T);
    const char *recompute = training && !m->recompute ? ", or --recompute" : "";
    double avail = m->be->ops->mem_available();
    int fits = avail < 0 || gpt2_plan_bytes(m, B, T, training, moments) - held <= avail
                   ? B
                   : largest_batch(m, B, T, training, moments, held, avail);
    if (fits > 0)
        snprintf(advice, sizeof advice, "the largest --batch-size that fits at --seq-len %d is %d%s",
                 T, fits, recompute);
    else
        snprintf(advice, sizeof advice, "no --batch-size fits at --seq-len %d: use a smaller "
                 "--seq-len%s", T, recompute);
    return memory_fit_plan(m, B, T, training, moments, what, advice, err);
}

void session_close(session *s) {
    if (s->has_model) gpt2_free(&s->m);
    s->has_model = 0;
    gpt2_backend_close(&s->be);
}
