#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/run_series.h"
#include "util/error.h"
#include "util/fs.h"

const char *const series_key[SERIES_KINDS] = {"loss", "val_loss", "hellaswag_acc_norm",
                                              "lr", "norm", "tok_s"};

static int push(series *s, double step, double value) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *a = realloc(s->step, cap * sizeof *a);
        if (!a) return -1;
        s->step = a;
        double *b = realloc(s->value, cap * sizeof *b);
        if (!b) return -1;
        s->value = b, s->cap = cap;
    }
    s->step[s->n] = step, s->value[s->n++] = value;
    return 0;
}

int run_series_read(run_series *r, const char *dir, gpt2c_error *err) {
    memset(r, 0, sizeof *r);
    char *path = fs_join(dir, "log.jsonl");
    if (!path) return err_set(err, "out of memory");
    FILE *f = fopen(path, "r");
    if (!f) {
        err_set(err, fs_is_dir(dir) ? "%s has no log.jsonl (not a training run's directory)"
                                    : "%s is not a directory", dir);
        free(path);
        return -1;
    }
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    const char *base = dir + len;
    while (base > dir && base[-1] != '/') base--;
    r->name = strndup(base, (size_t)(dir + len - base));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = r->name ? 0 : err_set(err, "out of memory");
    for (long lineno = 1; rc == 0 && (n = getline(&line, &cap, f)) > 0; lineno++) {
        if (line[n - 1] != '\n') break; /* cut short by a crash: the record being written */
        json_error_t je;
        json_t *rec = json_loadb(line, (size_t)n, 0, &je), *step = json_object_get(rec, "step");
        if (!json_is_integer(step)) {
            rc = err_set(err, "%s: line %ld: %s", path, lineno,
                         rec ? "a record without its step" : je.text);
        }
        for (int k = 0; rc == 0 && k < SERIES_KINDS; k++) {
            json_t *v = json_object_get(rec, series_key[k]);
            if (v && json_is_number(v) &&
                push(&r->s[k], (double)json_integer_value(step), json_number_value(v)) != 0)
                rc = err_set(err, "out of memory reading %s", path);
        }
        json_decref(rec);
    }
    if (rc == 0 && ferror(f)) rc = err_set(err, "cannot read %s: %s", path, strerror(errno));
    free(line);
    fclose(f);
    if (rc == 0 && r->s[SERIES_LOSS].n == 0) rc = err_set(err, "%s has no training steps yet", path);
    free(path);
    if (rc != 0) run_series_free(r);
    return rc;
}

void run_series_free(run_series *r) {
    free(r->name);
    for (int k = 0; k < SERIES_KINDS; k++) free(r->s[k].step), free(r->s[k].value);
    memset(r, 0, sizeof *r);
}
