#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/run_log.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/fs.h"

/* Copy the complete records of steps before start_step from the old log into af. */
static int keep_earlier(FILE *old, FILE *af, long start_step) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, old)) > 0) {
        if (line[n - 1] != '\n') break; /* a record cut short by a crash */
        json_t *rec = json_loadb(line, (size_t)n, 0, NULL);
        json_t *step = rec ? json_object_get(rec, "step") : NULL;
        int keep = json_is_integer(step) && json_integer_value(step) < start_step;
        json_decref(rec);
        if (keep && fwrite(line, 1, (size_t)n, af) != (size_t)n) {
            free(line);
            return -1;
        }
    }
    free(line);
    return ferror(old) ? -1 : 0;
}

int run_log_open(run_log *l, const char *out_dir, long start_step, const char *tensorboard_dir,
                 gpt2c_error *err) {
    memset(l, 0, sizeof *l);
    l->path = fs_join(out_dir, "log.jsonl");
    if (!l->path) return err_set(err, "out of memory");
    FILE *old = start_step > 0 ? fopen(l->path, "r") : NULL;
    atomic_file af;
    int rc = atomic_file_open(&af, l->path, err);
    if (rc == 0 && old && keep_earlier(old, af.f, start_step) != 0) {
        atomic_file_abort(&af);
        rc = err_set(err, "cannot rewrite %s: %s", l->path, strerror(errno));
    }
    if (old) fclose(old);
    if (rc == 0) rc = atomic_file_commit(&af, err);
    if (rc == 0 && !(l->f = fopen(l->path, "a")))
        rc = err_set(err, "cannot write %s: %s", l->path, strerror(errno));
    if (rc == 0 && tensorboard_dir) rc = tb_open(&l->tb, tensorboard_dir, start_step, err);
    if (rc != 0) {
        if (l->f) fclose(l->f);
        free(l->path);
        l->f = NULL, l->path = NULL;
    }
    return rc;
}

static int put_line(run_log *l, const char *line, gpt2c_error *err) {
    /* flushed per record, so a crash loses at most the record being written */
    if (fputs(line, l->f) == EOF || fflush(l->f) != 0)
        return err_set(err, "cannot write %s: %s", l->path, strerror(errno));
    return 0;
}

/* A number for JSON: NaN and the infinities are not, so they are written as null. */
static const char *num(char *buf, size_t n, double x) {
    if (isfinite(x)) snprintf(buf, n, "%.9g", x);
    else snprintf(buf, n, "null");
    return buf;
}

int run_log_step(run_log *l, const gpt2c_train_step *s, gpt2c_error *err) {
    char line[384], loss[32], norm[32], skip[96] = "";
    if (s->skipped)
        snprintf(skip, sizeof skip, ",\"skipped\":\"%s\",\"z\":%.4g,\"skips\":%ld", s->skipped,
                 isfinite(s->z) ? s->z : 0.0, s->skips);
    snprintf(line, sizeof line,
             "{\"step\":%d,\"loss\":%s,\"lr\":%.9g,\"norm\":%s,\"dt_ms\":%.3f,\"tok_s\":%.1f%s}\n",
             s->step, num(loss, sizeof loss, s->loss), s->lr, num(norm, sizeof norm, s->norm),
             s->dt_ms, s->tok_s, skip);
    int rc = put_line(l, line, err);
    if (rc == 0 && l->tb.f) {
        rc = tb_scalar(&l->tb, s->step, "loss", s->loss, err);
        if (rc == 0) rc = tb_scalar(&l->tb, s->step, "lr", s->lr, err);
        if (rc == 0) rc = tb_scalar(&l->tb, s->step, "grad_norm", s->norm, err);
        if (rc == 0) rc = tb_scalar(&l->tb, s->step, "tokens_per_s", s->tok_s, err);
        if (rc == 0) rc = tb_scalar(&l->tb, s->step, "step_ms", s->dt_ms, err);
        if (rc == 0 && s->skipped) rc = tb_scalar(&l->tb, s->step, "skipped_updates", (double)s->skips, err);
    }
    return rc;
}

int run_log_val(run_log *l, long step, double val_loss, gpt2c_error *err) {
    char line[96];
    snprintf(line, sizeof line, "{\"step\":%ld,\"val_loss\":%.9g}\n", step, val_loss);
    int rc = put_line(l, line, err);
    if (rc == 0 && l->tb.f) rc = tb_scalar(&l->tb, step, "val_loss", val_loss, err);
    return rc;
}

int run_log_hellaswag(run_log *l, long step, int n, double acc, double acc_norm, gpt2c_error *err) {
    char line[160];
    snprintf(line, sizeof line,
             "{\"step\":%ld,\"hellaswag_acc_norm\":%.9g,\"hellaswag_acc\":%.9g,\"hellaswag_n\":%d}\n",
             step, acc_norm, acc, n);
    int rc = put_line(l, line, err);
    if (rc == 0 && l->tb.f) rc = tb_scalar(&l->tb, step, "hellaswag_acc_norm", acc_norm, err);
    if (rc == 0 && l->tb.f) rc = tb_scalar(&l->tb, step, "hellaswag_acc", acc, err);
    return rc;
}

int run_log_sample(run_log *l, long step, int i, const char *text, size_t len, gpt2c_error *err) {
    char tag[32];
    snprintf(tag, sizeof tag, "samples/%d", i + 1);
    return l->tb.f ? tb_text(&l->tb, step, tag, text, len, err) : 0;
}

int run_log_close(run_log *l, gpt2c_error *err) {
    int bad = l->f && fclose(l->f) != 0;
    int rc = bad ? err_set(err, "cannot write %s: %s", l->path, strerror(errno)) : 0;
    if (l->tb.f && tb_close(&l->tb, rc == 0 ? err : NULL) != 0) rc = -1;
    free(l->path);
    memset(l, 0, sizeof *l);
    return rc;
}
