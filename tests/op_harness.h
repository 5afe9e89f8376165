/* The op test harness's pieces: a case's buffers (its inputs and its outputs' first values,
 * kept on the host), and running a case on a backend: every buffer allocated and uploaded in
 * the backend's storage, the op called, the outputs downloaded as doubles. What each op's case
 * does is in op_cases.c; which backends run them, and how results are compared, in test_ops.c. */
#ifndef GPT2C_OP_HARNESS_H
#define GPT2C_OP_HARNESS_H

#include <stddef.h>

#include "ops/backend.h"
#include "util/rng.h"

enum { OP_MAX_BUFS = 12 };

/* How a buffer is stored on the backend. */
typedef enum {
    BUF_ACT,      /* activations: floats on the host, the backend's act_bytes each there */
    BUF_F32,      /* parameters, gradients, statistics: float everywhere */
    BUF_I32,      /* tokens, targets */
    BUF_BF16,     /* bf16 weight copies */
    BUF_F64,      /* doubles in the backend's memory (loss_sum's accumulator) */
    BUF_HOST_F64, /* host memory the op writes a double to (sum_squares) */
} op_buf_kind;

typedef struct op_buf {
    const char *name;
    op_buf_kind kind;
    size_t n;
    void *host; /* the values every backend starts from (floats for BUF_ACT) */
    int out;    /* read back after the op: an output, or a gradient it adds to */
    /* The CPU computes it with a vendor GEMM, whose bits may change with the thread count
     * (ops.h's Determinism): at 1 and N threads it is compared within tolerance, not bitwise. */
    int gemm;
    /* Its tolerance against the CPU on another backend, times the case's; 0: exact. */
    double tol;
} op_buf;

typedef struct op_data {
    op_buf b[OP_MAX_BUFS];
    int n;
    /* What storing activations in bf16 adds to a comparison's tolerances, relative and
     * absolute (the cases' values are near 1), on the backend running now: a result rounded
     * (2^-9 relative at most), and the activations it was computed from (a LayerNorm's
     * statistics from the rounded residual, a product from its rounded bias, an attention
     * gradient from the rounded output), 2^-7 in all; 0 on backends that store them in fp32
     * or wider. Set by test_ops for each backend, read by the cases' contract checks. */
    double act_slack;
} op_data;

typedef struct op_case op_case;

/* One op's (or a forward's and its backward's) test. */
typedef struct op_test {
    const char *ops;     /* the ops of ops.h it calls, separated by spaces */
    const char *dims[4]; /* what the case's shape numbers are, for messages */
    /* the buffers, in the order of the test's enum, and their first values */
    void (*make)(const op_case *c, op_data *d, rng *r);
    /* the floats of scratch the calls need on this backend (its scratch_floats) */
    size_t (*scratch)(const gpt2_backend *be, const op_case *c);
    /* the op(s) on a backend; dev[i] is buffer i there (host memory for BUF_HOST_F64) */
    void (*call)(const gpt2_backend *be, const op_case *c, void *const *dev, float *scratch);
    /* checks the CPU's results (got[i]: output i as doubles) against the float64 reference */
    void (*reference)(const op_case *c, const op_data *d, double *const *got, const char *tag);
    /* checks a property that each backend's results must have on their own (a row gets what it
     * gets alone; in place equals out of place), or NULL */
    void (*contract)(const op_case *c, const op_data *d, double *const *got, const char *tag);
    /* the contract is ops.h's row independence of the products (matmul_forward(_rowwise),
     * logits_forward): left out, the values still compared, on a backend that does not claim
     * it (test_ops.c) */
    int rows_contract;
    /* a model's width and heads, for the backend's check_shapes (attention), or NULL */
    void (*model_shape)(const op_case *c, int *C, int *NH);
} op_test;

/* A row of the case table: an op's test at some shapes and precision. */
struct op_case {
    const op_test *test;
    int n[4];             /* shapes, named by test->dims */
    int bf16;             /* bf16 products (weight copies given) */
    double atol, rtol;    /* another backend's outputs against the CPU's (times each buffer's tol) */
    const gpt2_span *spans; /* attention_forward_kv's calls */
    int nspans;
};

/* Buffer i (the next one: cases list theirs in the order of their enum): an input, or an
 * output (out 1, tol 1). Returns its host values, zeroed, to fill. */
void *op_input(op_data *d, int i, const char *name, op_buf_kind kind, size_t n);
void *op_output(op_data *d, int i, const char *name, op_buf_kind kind, size_t n);
void op_data_free(op_data *d);
/* The activations a bf16 case starts from rounded to bf16 values, on the host: every backend
 * then starts from the same values, whether it stores them in fp32 or in bf16. */
void op_round_acts_bf16(op_data *d);
/* act_slack for a backend storing activations act_bytes each. */
double op_act_slack(size_t act_bytes);

/* Runs the case on the backend (from the calling thread; buffers allocated, uploaded, the op
 * called, outputs downloaded and freed): got[i] is output i as doubles, NULL for inputs. */
void op_run(const gpt2_backend *be, const op_case *c, const op_data *d, double **got);
void op_results_free(double **got);

/* Helpers for the cases. */
void fill_normal(float *x, size_t n, double scale, rng *r);
void fill_value(float *x, size_t n, float v);
/* n floats as doubles into dst; returns dst + n (to pack a reference's inputs one after another) */
double *widen(double *dst, const float *src, size_t n);
/* n doubles minus `start` into dst (a gradient the op added to a buffer that started there);
 * returns dst + n */
double *minus(double *dst, const double *src, size_t n, double start);

#endif
