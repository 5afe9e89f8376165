#include <bzlib.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/hellaswag.h"
#include "model/memory_fit.h"
#include "model/session.h"
#include "ops/profiled.h"
#include "util/error.h"
#include "util/fs.h"

/* A decompressed file over this is refused (a bzip2 bomb; the whole validation set is 7.8 MB). */
#define MAX_TEXT_BYTES (1u << 30)

/* The whole file in memory (NUL-terminated), decompressed when it is bzip2 ("BZh" at the start). */
static char *read_text(const char *path, size_t *len, gpt2c_error *err) {
    char *raw;
    size_t n;
    if (fs_read_all(path, MAX_TEXT_BYTES, &raw, &n, err) != 0) return NULL;
    if (n < 3 || memcmp(raw, "BZh", 3) != 0) {
        *len = n;
        return raw;
    }
    bz_stream z = {0};
    size_t ocap = 8 * n + 1, on = 0;
    char *out = malloc(ocap);
    int rc = out ? BZ2_bzDecompressInit(&z, 0, 0) : BZ_MEM_ERROR;
    z.next_in = raw, z.avail_in = (unsigned)n;
    while (rc == BZ_OK) {
        if (ocap - on < 2) {
            char *more = ocap >= MAX_TEXT_BYTES ? NULL : realloc(out, ocap *= 2);
            if (!more) {
                rc = BZ_MEM_ERROR;
                break;
            }
            out = more;
        }
        z.next_out = out + on, z.avail_out = (unsigned)(ocap - 1 - on);
        rc = BZ2_bzDecompress(&z);
        on = ocap - 1 - z.avail_out;
        if (rc == BZ_OK && z.avail_in == 0 && z.avail_out > 0) rc = BZ_UNEXPECTED_EOF;
    }
    BZ2_bzDecompressEnd(&z);
    free(raw);
    if (rc != BZ_STREAM_END) {
        free(out);
        err_set(err, "%s: not a whole bzip2 stream (%s)", path,
                rc == BZ_MEM_ERROR ? "too large or out of memory" : "corrupt or cut short");
        return NULL;
    }
    out[on] = 0, *len = on;
    return out;
}

typedef struct reader {
    const gpt2c_tokenizer *tok;
    gpt2c_encoder *enc;
    hellaswag_set *s;
    int cap, max_row;
    const char *path;
} reader;

static int encode_into(reader *r, const char *text, size_t n, gpt2c_ids *ids, gpt2c_error *err) {
    ids->len = 0;
    return gpt2c_encode(r->enc, text, n, ids, err);
}

/* One example from its context and endings; the context loses its start if a row is too long. */
static int add_example(reader *r, const char *ctx, size_t nctx, const char *const end[4],
                       const size_t nend[4], int label, gpt2c_error *err) {
    hellaswag_set *s = r->s;
    if (s->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 1024;
        hellaswag_example *more = realloc(s->ex, (size_t)cap * sizeof *more);
        if (!more) return err_set(err, "out of memory reading %s", r->path);
        s->ex = more, r->cap = cap;
    }
    gpt2c_ids c = {0}, e[4] = {{0}};
    int rc = encode_into(r, ctx, nctx, &c, err);
    char *spaced = NULL;
    for (int i = 0; i < 4 && rc == 0; i++) {
        char *t = realloc(spaced, nend[i] + 1); /* " " + ending, as build-nanogpt */
        if (!t) {
            rc = err_set(err, "out of memory reading %s", r->path);
            break;
        }
        spaced = t;
        spaced[0] = ' ';
        memcpy(spaced + 1, end[i], nend[i]);
        rc = gpt2c_encode(r->enc, spaced, nend[i] + 1, &e[i], err);
    }
    free(spaced);
    hellaswag_example *x = &s->ex[s->n];
    size_t longest_end = 0, total = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        if (e[i].len + 1 > (size_t)r->max_row)
            rc = err_set(err, "%s: example %d has an ending of %zu tokens, longer than the model's "
                              "%d positions", r->path, s->n + 1, e[i].len, r->max_row);
        if (e[i].len > longest_end) longest_end = e[i].len;
        total += e[i].len;
    }
    size_t keep = c.len, skip = 0;
    if (rc == 0 && keep + longest_end > (size_t)r->max_row) keep = r->max_row - longest_end;
    skip = c.len - keep;
    if (rc == 0 && !(x->tokens = malloc((keep + total) * sizeof *x->tokens)))
        rc = err_set(err, "out of memory reading %s", r->path);
    if (rc == 0) {
        size_t k = 0;
        for (size_t i = skip; i < c.len; i++) x->tokens[k++] = (int32_t)c.data[i];
        for (int j = 0; j < 4; j++) {
            for (size_t i = 0; i < e[j].len; i++) x->tokens[k++] = (int32_t)e[j].data[i];
            x->nend[j] = (int)e[j].len;
        }
        x->nctx = (int)keep, x->label = label;
        int row = (int)(keep + longest_end);
        if (row > s->longest) s->longest = row;
        s->n++;
    }
    gpt2c_ids_free(&c);
    for (int i = 0; i < 4; i++) gpt2c_ids_free(&e[i]);
    return rc;
}

/* The next line of text (without its newline; "\r\n" too); NULL at the end. */
static const char *next_line(const char **at, const char *end, size_t *len) {
    if (*at >= end) return NULL;
    const char *s = *at, *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    *at = nl ? nl + 1 : end;
    *len = (size_t)(e - s) - (e > s && e[-1] == '\r');
    return s;
}

static int read_jsonl(reader *r, const char *text, size_t n, int limit, gpt2c_error *err) {
    const char *at = text, *end = text + n, *line;
    size_t len;
    for (int lineno = 1; (line = next_line(&at, end, &len)) && (!limit || r->s->n < limit); lineno++) {
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
        if (i == len) continue;
        json_error_t je;
        json_t *o = json_loadb(line, len, 0, &je);
        json_t *ctx = json_object_get(o, "ctx"), *ends = json_object_get(o, "endings");
        json_t *label = json_object_get(o, "label");
        int ok = json_is_string(ctx) && json_is_array(ends) && json_array_size(ends) == 4 &&
                 json_is_integer(label) && json_integer_value(label) >= 0 &&
                 json_integer_value(label) <= 3;
        const char *e[4];
        size_t ne[4];
        for (int k = 0; ok && k < 4; k++) {
            json_t *s = json_array_get(ends, (size_t)k);
            ok = json_is_string(s);
            if (ok) e[k] = json_string_value(s), ne[k] = json_string_length(s);
        }
        int rc = ok ? add_example(r, json_string_value(ctx), json_string_length(ctx), e, ne,
                                  (int)json_integer_value(label), err)
                    : err_set(err, "%s: line %d: %s", r->path, lineno,
                              o ? "not a HellaSwag example (ctx, endings[4] and label 0-3)"
                                : je.text);
        json_decref(o);
        if (rc != 0) return -1;
    }
    return 0;
}

static int read_lines6(reader *r, const char *text, size_t n, int limit, gpt2c_error *err) {
    const char *at = text, *end = text + n;
    for (int task = 1; at < end && (!limit || r->s->n < limit); task++) {
        const char *l[6];
        size_t len[6];
        for (int k = 0; k < 6; k++)
            if (!(l[k] = next_line(&at, end, &len[k])))
                return err_set(err, "%s: task %d is cut short (6 lines a task: context, label, "
                                    "four endings)", r->path, task);
        if (len[1] != 1 || l[1][0] < '0' || l[1][0] > '3')
            return err_set(err, "%s: line %d: the label must be 0-3 (llama.cpp's HellaSwag text: "
                                "context, label, four endings)", r->path, 6 * (task - 1) + 2);
        if (add_example(r, l[0], len[0], l + 2, len + 2, l[1][0] - '0', err) != 0) return -1;
        while (at < end && (*at == '\n' || *at == '\r')) at++; /* blank lines at the end */
    }
    return 0;
}

int hellaswag_read(hellaswag_set *s, const char *path, const gpt2c_tokenizer *tok, int limit,
                   int max_row, gpt2c_error *err) {
    memset(s, 0, sizeof *s);
    size_t n;
    char *text = read_text(path, &n, err);
    if (!text) return -1;
    reader r = {tok, gpt2c_encoder_new(tok, err), s, 0, max_row, path};
    int rc = r.enc ? 0 : -1;
    size_t i = 0;
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) i++;
    if (rc == 0 && i == n) rc = err_set(err, "%s has no examples", path);
    else if (rc == 0 && text[i] == '{') rc = read_jsonl(&r, text, n, limit, err);
    else if (rc == 0 && memchr(text, '\n', n)) rc = read_lines6(&r, text, n, limit, err);
    else if (rc == 0)
        rc = err_set(err, "%s is neither HellaSwag jsonl nor llama.cpp's 6-line text", path);
    if (rc == 0 && s->n == 0) rc = err_set(err, "%s has no examples", path);
    gpt2c_encoder_free(r.enc);
    free(text);
    if (rc != 0) hellaswag_free(s);
    return rc;
}

void hellaswag_free(hellaswag_set *s) {
    for (int i = 0; i < s->n; i++) free(s->ex[i].tokens);
    free(s->ex);
    memset(s, 0, sizeof *s);
}

int hellaswag_plan(gpt2_model *m, const hellaswag_set *s, gpt2c_error *err) {
    int B = 4 * HELLASWAG_BATCH, T = s->longest;
    char what[64], advice[160];
    snprintf(what, sizeof what, "HellaSwag's batch %d x %d", B, T);
    snprintf(advice, sizeof advice, "it scores %d examples of up to %d tokens a row in each "
             "forward; use a device with more free memory", HELLASWAG_BATCH, T);
    return memory_fit_plan(m, B, T, 0, 0, what, advice, err);
}

/* An example's longest row: its context and its longest ending. */
static int example_len(const hellaswag_example *x) {
    int longest = 0;
    for (int k = 0; k < 4; k++) longest = x->nend[k] > longest ? x->nend[k] : longest;
    return x->nctx + longest;
}

/* qsort's order of (length << 32 | index) keys: by length, then by index (a fixed order). */
static int ascending(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int hellaswag_score(gpt2_model *m, const hellaswag_set *s, int first, int count, int *pred,
                    int *pred_norm, gpt2c_error *err) {
    int B = m->B, per = B / 4;
    /* the positions scored (those predicting an ending's tokens, the LM head's only rows), and
     * the examples by length: each forward takes examples of about the same length, its rows
     * as long as its longest (not the set's), so little of it is padding */
    int32_t *rows = malloc((size_t)B * m->T * sizeof *rows);
    uint64_t *keys = malloc((size_t)(count > 0 ? count : 1) * sizeof *keys);
    int *order = malloc((size_t)(count > 0 ? count : 1) * sizeof *order);
    if (!rows || !keys || !order) {
        free(rows), free(keys), free(order);
        return err_set(err, "out of memory scoring HellaSwag");
    }
    for (int i = 0; i < count; i++)
        keys[i] = (uint64_t)example_len(&s->ex[first + i]) << 32 | (uint32_t)(first + i);
    qsort(keys, (size_t)count, sizeof *keys, ascending);
    for (int i = 0; i < count; i++) order[i] = (int)(keys[i] & 0xffffffffu);
    free(keys);
    for (int e0 = 0; e0 < count; e0 += per) {
        int ne = count - e0 < per ? count - e0 : per, T = 1;
        for (int j = 0; j < ne; j++) {
            int len = example_len(&s->ex[order[e0 + j]]);
            T = len > T ? len : T;
        }
        /* rows of T: example order[e0 + j]'s ending k in row 4j + k; the rest of a row, and rows
         * past the last example, are end-of-text (causal attention: nothing after a position
         * changes it) */
        for (int i = 0; i < B * T; i++) m->inputs[i] = GPT2C_EOT, m->targets[i] = GPT2C_EOT;
        for (int j = 0; j < ne; j++) {
            const hellaswag_example *x = &s->ex[order[e0 + j]];
            const int32_t *end = x->tokens + x->nctx;
            for (int k = 0; k < 4; k++) {
                int32_t *in = m->inputs + (size_t)(4 * j + k) * T;
                memcpy(in, x->tokens, (size_t)x->nctx * sizeof *in);
                memcpy(in + x->nctx, end, (size_t)x->nend[k] * sizeof *in);
                int len = x->nctx + x->nend[k];
                int32_t *tg = m->targets + (size_t)(4 * j + k) * T;
                memcpy(tg, in + 1, (size_t)(len - 1) * sizeof *tg);
                end += x->nend[k];
            }
        }
        /* ending token at position t is predicted at t - 1 (t >= 1) */
        int n = 0;
        for (int j = 0; j < ne; j++) {
            const hellaswag_example *x = &s->ex[order[e0 + j]];
            for (int k = 0; k < 4; k++)
                for (int t = x->nctx > 0 ? x->nctx : 1; t < x->nctx + x->nend[k]; t++)
                    rows[n++] = (4 * j + k) * T + t - 1;
        }
        gpt2_forward_rows(m, T, rows, n);
        const float *l = gpt2_row_losses(m); /* in the order of rows */
        for (int j = 0; j < ne; j++) {
            const hellaswag_example *x = &s->ex[order[e0 + j]];
            double best_sum = 0, best_mean = 0;
            int p = 0, pn = 0;
            for (int k = 0; k < 4; k++) {
                double sum = 0;
                int count_k = 0;
                for (int t = x->nctx > 0 ? x->nctx : 1; t < x->nctx + x->nend[k]; t++)
                    sum += *l++, count_k++;
                double mean = count_k ? sum / count_k : 0;
                if (k == 0 || sum < best_sum) best_sum = sum, p = k;
                if (k == 0 || mean < best_mean) best_mean = mean, pn = k;
            }
            pred[order[e0 + j] - first] = p, pred_norm[order[e0 + j] - first] = pn;
        }
    }
    free(rows), free(order);
    return 0;
}

int gpt2c_hellaswag(const gpt2c_eval_opts *o, const char *path, int limit,
                    gpt2c_hellaswag_result *res, gpt2c_error *err) {
    memset(res, 0, sizeof *res);
    if (limit < 0 || o->threads < 0) return err_set(err, "--limit and --threads must not be negative");
    if (!o->model_dir || !fs_is_dir(o->model_dir))
        return err_set(err, "%s is not a model directory", o->model_dir ? o->model_dir : "(none)");
    session ses;
    gpt2_model *m = &ses.m;
    gpt2c_tokenizer *tok = NULL;
    hellaswag_set s = {0};
    int rc = session_open(&ses, o->device, o->threads, o->precision, err);
    if (rc == 0) rc = session_load(&ses, o->model_dir, err);
    if (rc == 0 && !(tok = gpt2c_tokenizer_new(err))) rc = -1;
    if (rc == 0) rc = hellaswag_read(&s, path, tok, limit, m->cfg.max_seq_len, err);
    if (rc == 0) rc = hellaswag_plan(m, &s, err);
    if (rc == 0) {
        res->label = malloc((size_t)s.n * sizeof *res->label);
        res->pred = malloc((size_t)s.n * sizeof *res->pred);
        res->pred_norm = malloc((size_t)s.n * sizeof *res->pred_norm);
        if (!res->label || !res->pred || !res->pred_norm) rc = err_set(err, "out of memory");
    }
    if (rc == 0) {
        if (o->profile) m->be = prof_start(o->profile, &ses.be);
        rc = hellaswag_score(m, &s, 0, s.n, res->pred, res->pred_norm, err);
        if (o->profile) prof_stop(), o->profile->steps = (s.n + HELLASWAG_BATCH - 1) / HELLASWAG_BATCH, m->be = &ses.be;
    }
    if (rc == 0) {
        res->n = s.n;
        for (int i = 0; i < s.n; i++) {
            res->label[i] = s.ex[i].label;
            res->correct += res->pred[i] == s.ex[i].label;
            res->correct_norm += res->pred_norm[i] == s.ex[i].label;
        }
    }
    if (rc != 0) gpt2c_hellaswag_result_free(res);
    hellaswag_free(&s);
    gpt2c_tokenizer_free(tok);
    session_close(&ses);
    return rc;
}

void gpt2c_hellaswag_result_free(gpt2c_hellaswag_result *res) {
    free(res->label), free(res->pred), free(res->pred_norm);
    memset(res, 0, sizeof *res);
}
