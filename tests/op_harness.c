/* Running an op's case on a backend: its buffers in the backend's memory and storage types. */
#include "op_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t elem_bytes(const gpt2_backend *be, op_buf_kind kind) {
    switch (kind) {
    case BUF_ACT: return be->act_bytes;
    case BUF_F32: return sizeof(float);
    case BUF_F64: return sizeof(double);
    case BUF_I32: return sizeof(int32_t);
    case BUF_BF16: return sizeof(gpt2_bf16);
    case BUF_HOST_F64: return sizeof(double);
    }
    return 0;
}

static size_t host_elem_bytes(op_buf_kind kind) {
    return kind == BUF_ACT ? sizeof(float) : elem_bytes(&(gpt2_backend){0}, kind);
}

static void *add(op_data *d, int i, const char *name, op_buf_kind kind, size_t n, int out) {
    if (i != d->n || i >= OP_MAX_BUFS) { /* a case's make() out of step with its enum */
        fprintf(stderr, "op_harness: buffer %s is number %d, expected %d\n", name, d->n, i);
        abort();
    }
    op_buf *b = &d->b[d->n++];
    *b = (op_buf){.name = name, .kind = kind, .n = n, .out = out, .tol = 1};
    b->host = calloc(n ? n : 1, host_elem_bytes(kind));
    return b->host;
}

void *op_input(op_data *d, int i, const char *name, op_buf_kind kind, size_t n) {
    return add(d, i, name, kind, n, 0);
}

void *op_output(op_data *d, int i, const char *name, op_buf_kind kind, size_t n) {
    return add(d, i, name, kind, n, 1);
}

void op_data_free(op_data *d) {
    for (int i = 0; i < d->n; i++) free(d->b[i].host);
    d->n = 0;
}

/* Activations in the storage of act_bytes: 4 float, 8 double, 2 bfloat16 (a GPU's). */
static void acts_pack(size_t act_bytes, void *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (act_bytes == 8) ((double *)dst)[i] = src[i];
        else if (act_bytes == 4) ((float *)dst)[i] = src[i];
        else {
            uint32_t u;
            float f = src[i];
            memcpy(&u, &f, sizeof u);
            if ((u & 0x7fffffffu) <= 0x7f800000u) u += 0x7fffu + ((u >> 16) & 1);
            ((gpt2_bf16 *)dst)[i] = (gpt2_bf16)(u >> 16);
        }
    }
}

static double bf16_value(gpt2_bf16 h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void acts_unpack(size_t act_bytes, double *dst, const void *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = act_bytes == 8   ? ((const double *)src)[i]
                 : act_bytes == 4 ? ((const float *)src)[i]
                                  : bf16_value(((const gpt2_bf16 *)src)[i]);
}

void op_round_acts_bf16(op_data *d) {
    for (int i = 0; i < d->n; i++) {
        op_buf *b = &d->b[i];
        if (b->kind != BUF_ACT) continue;
        float *f = b->host;
        gpt2_bf16 h;
        for (size_t k = 0; k < b->n; k++) acts_pack(2, &h, &f[k], 1), f[k] = (float)bf16_value(h);
    }
}

double op_act_slack(size_t act_bytes) { return act_bytes == 2 ? 1.0 / 128 : 0; }

/* The buffer's first values in the backend's storage, as bytes to upload. */
static void *stored(const gpt2_backend *be, const op_buf *b) {
    size_t bytes = b->n * elem_bytes(be, b->kind);
    void *s = malloc(bytes ? bytes : 1);
    if (b->kind == BUF_ACT) acts_pack(be->act_bytes, s, b->host, b->n);
    else memcpy(s, b->host, bytes);
    return s;
}

static void to_doubles(const gpt2_backend *be, const op_buf *b, const void *s, double *out) {
    switch (b->kind) {
    case BUF_ACT: acts_unpack(be->act_bytes, out, s, b->n); break;
    case BUF_F32:
        for (size_t i = 0; i < b->n; i++) out[i] = ((const float *)s)[i];
        break;
    case BUF_I32:
        for (size_t i = 0; i < b->n; i++) out[i] = ((const int32_t *)s)[i];
        break;
    case BUF_BF16:
        for (size_t i = 0; i < b->n; i++) out[i] = bf16_value(((const gpt2_bf16 *)s)[i]);
        break;
    case BUF_F64:
    case BUF_HOST_F64: memcpy(out, s, b->n * sizeof *out); break;
    }
}

void op_run(const gpt2_backend *be, const op_case *c, const op_data *d, double **got) {
    const gpt2_ops *ops = be->ops;
    void *dev[OP_MAX_BUFS];
    for (int i = 0; i < d->n; i++) {
        const op_buf *b = &d->b[i];
        size_t bytes = b->n * elem_bytes(be, b->kind);
        void *s = stored(be, b);
        if (b->kind == BUF_HOST_F64) dev[i] = s; /* the op writes it on the host */
        else {
            dev[i] = ops->alloc(bytes ? bytes : 1);
            ops->upload(dev[i], s, bytes);
            free(s);
        }
    }
    size_t scratch_floats = c->test->scratch ? c->test->scratch(be, c) : 0;
    /* scratch starts as NaN bytes (0xff), not the zeros of alloc: what an op reads there it
     * must have written in the same call (ops.h: shared by all ops, one at a time) */
    size_t scratch_bytes = (scratch_floats ? scratch_floats : 1) * sizeof(float);
    float *scratch = ops->alloc(scratch_bytes);
    void *nan_bytes = malloc(scratch_bytes);
    memset(nan_bytes, 0xff, scratch_bytes);
    ops->upload(scratch, nan_bytes, scratch_bytes);
    free(nan_bytes);
    c->test->call(be, c, dev, scratch);
    for (int i = 0; i < d->n; i++) {
        const op_buf *b = &d->b[i];
        got[i] = NULL;
        if (b->out) {
            size_t bytes = b->n * elem_bytes(be, b->kind);
            void *s = malloc(bytes ? bytes : 1);
            if (b->kind == BUF_HOST_F64) memcpy(s, dev[i], bytes);
            else ops->download(s, dev[i], bytes);
            got[i] = malloc((b->n ? b->n : 1) * sizeof(double));
            to_doubles(be, b, s, got[i]);
            free(s);
        }
        if (b->kind == BUF_HOST_F64) free(dev[i]);
        else ops->free(dev[i]);
    }
    ops->free(scratch);
    for (int i = d->n; i < OP_MAX_BUFS; i++) got[i] = NULL;
}

void op_results_free(double **got) {
    for (int i = 0; i < OP_MAX_BUFS; i++) free(got[i]), got[i] = NULL;
}

void fill_normal(float *x, size_t n, double scale, rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rng_normal(r));
}

void fill_value(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

double *widen(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
    return dst + n;
}

double *minus(double *dst, const double *src, size_t n, double start) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i] - start;
    return dst + n;
}
