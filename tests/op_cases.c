/* Each op's test for the harness (test_ops.c): its buffers, its calls on a backend, the check of
 * the CPU's results against the float64 reference (op_reference.c), and the contract a backend's
 * results must meet on their own; then the table of cases, small and odd shapes on purpose.
 * Outputs start at 7 where the op must overwrite them, at 1 where it adds to them (the
 * reference subtracts the 1 again). */
#include "op_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "op_reference.h"
#include "ops/cpu/cpu_isa.h"

/* "tag: part", for one check's message. */
static const char *what(const char *tag, const char *part) {
    static char line[256];
    snprintf(line, sizeof line, "%s: %s", tag, part);
    return line;
}

static gpt2_bf16 bf16_bits(float f) {
    float r = ref_round_bf16(f);
    uint32_t u;
    memcpy(&u, &r, sizeof u);
    return (gpt2_bf16)(u >> 16);
}

static void fill_bf16_of(gpt2_bf16 *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_bits(src[i]);
}

/* dst = n floats of src rounded to bf16 (kept as doubles): a bf16 product's real inputs. */
static double *widen_rounded(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = ref_round_bf16(src[i]);
    return dst + n;
}

static const float *host_f(const op_data *d, int i) { return d->b[i].host; }
static const int32_t *host_i(const op_data *d, int i) { return d->b[i].host; }
static double *doubles(size_t n) { return malloc((n ? n : 1) * sizeof(double)); }

/* ---- memset0 and copy (upload and download carry every case's data) ---- */
enum { ME_SRC, ME_COPY, ME_ZEROED };

static void memory_make(const op_case *c, op_data *d, rng *r) {
    size_t n = (size_t)c->n[0];
    fill_normal(op_input(d, ME_SRC, "src", BUF_ACT, n), n, 1, r);
    fill_value(op_output(d, ME_COPY, "copy", BUF_ACT, n), n, 7);
    fill_normal(op_output(d, ME_ZEROED, "zeroed", BUF_ACT, n), n, 1, r);
}

static void memory_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *s) {
    (void)s;
    size_t bytes = (size_t)c->n[0] * be->act_bytes;
    be->ops->copy(dev[ME_COPY], dev[ME_SRC], bytes);
    be->ops->memset0(dev[ME_ZEROED], bytes);
}

static void memory_reference(const op_case *c, const op_data *d, double *const *got,
                             const char *tag) {
    size_t n = (size_t)c->n[0];
    double *want = doubles(n);
    widen(want, host_f(d, ME_SRC), n);
    check_near(what(tag, "copy"), got[ME_COPY], want, n, 0, 0);
    memset(want, 0, n * sizeof *want);
    check_near(what(tag, "memset0"), got[ME_ZEROED], want, n, 0, 0);
    free(want);
}

static const op_test memory_test = {
    .ops = "memset0 copy upload download",
    .dims = {"n"},
    .make = memory_make,
    .call = memory_call,
    .reference = memory_reference,
};

/* ---- embedding: out = wte[tokens] + wpe, then its backward ---- */
enum { EM_TOKENS, EM_WTE, EM_WPE, EM_DOUT, EM_OUT, EM_DWTE, EM_DWPE };

static void embed_make(const op_case *c, op_data *d, rng *r) {
    int B = c->n[0], T = c->n[1], C = c->n[2], V = c->n[3];
    int32_t *tokens = op_input(d, EM_TOKENS, "tokens", BUF_I32, (size_t)B * T);
    for (int i = 0; i < B * T; i++) tokens[i] = (int32_t)(rng_next(r) % 3); /* repeats on purpose */
    fill_normal(op_input(d, EM_WTE, "wte", BUF_F32, (size_t)V * C), (size_t)V * C, 1, r);
    fill_normal(op_input(d, EM_WPE, "wpe", BUF_F32, (size_t)T * C), (size_t)T * C, 1, r);
    fill_normal(op_input(d, EM_DOUT, "dout", BUF_ACT, (size_t)B * T * C), (size_t)B * T * C, 1, r);
    fill_value(op_output(d, EM_OUT, "out", BUF_ACT, (size_t)B * T * C), (size_t)B * T * C, 7);
    fill_value(op_output(d, EM_DWTE, "dwte", BUF_F32, (size_t)V * C), (size_t)V * C, 1);
    fill_value(op_output(d, EM_DWPE, "dwpe", BUF_F32, (size_t)T * C), (size_t)T * C, 1);
    d->b[EM_DWTE].tol = 10; /* sums of the repeated tokens' rows */
}

static size_t embed_scratch(const gpt2_backend *be, const op_case *c) {
    return be->ops->scratch_floats(c->n[0], c->n[1], c->n[2], 1, c->n[3], 0);
}

static void embed_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *s) {
    int B = c->n[0], T = c->n[1], C = c->n[2];
    be->ops->embed_forward(dev[EM_OUT], dev[EM_TOKENS], dev[EM_WTE], dev[EM_WPE], B, T, C);
    be->ops->embed_backward(dev[EM_DWTE], dev[EM_DWPE], dev[EM_DOUT], dev[EM_TOKENS], B, T, C, s);
}

static void embed_reference(const op_case *c, const op_data *d, double *const *got,
                            const char *tag) {
    int B = c->n[0], T = c->n[1], C = c->n[2], V = c->n[3];
    ref_emb ctx = {B, T, C, V, host_i(d, EM_TOKENS)};
    size_t nx = (size_t)(V + T) * C, ny = (size_t)B * T * C;
    double *x = doubles(nx), *y = doubles(ny), *R = doubles(ny), *grad = doubles(nx);
    widen(widen(x, host_f(d, EM_WTE), (size_t)V * C), host_f(d, EM_WPE), (size_t)T * C);
    widen(R, host_f(d, EM_DOUT), ny);
    ref_embed(x, y, &ctx);
    check_near(what(tag, "out"), got[EM_OUT], y, ny, 1e-6, 1e-6);
    minus(minus(grad, got[EM_DWTE], (size_t)V * C, 1), got[EM_DWPE], (size_t)T * C, 1);
    ref_check_grad(what(tag, "dwte, dwpe"), ref_embed, &ctx, x, nx, ny, R, grad, 1e-5, 1e-5);
    free(x), free(y), free(R), free(grad);
}

static const op_test embed_test = {
    .ops = "embed_forward embed_backward",
    .dims = {"B", "T", "C", "V"},
    .make = embed_make,
    .scratch = embed_scratch,
    .call = embed_call,
    .reference = embed_reference,
};

/* ---- layernorm, forward then backward ---- */
enum { LN_INP, LN_W, LN_B, LN_DOUT, LN_OUT, LN_MEAN, LN_RSTD, LN_DINP, LN_DW, LN_DB };

static void layernorm_make(const op_case *c, op_data *d, rng *r) {
    int N = c->n[0], C = c->n[1];
    size_t nc = (size_t)N * C;
    float *inp = op_input(d, LN_INP, "inp", BUF_ACT, nc);
    fill_normal(inp, nc, 1, r);
    for (size_t i = 0; i < nc; i++) inp[i] += 0.5f; /* a mean that is not zero */
    fill_normal(op_input(d, LN_W, "w", BUF_F32, C), C, 1, r);
    fill_normal(op_input(d, LN_B, "b", BUF_F32, C), C, 1, r);
    fill_normal(op_input(d, LN_DOUT, "dout", BUF_ACT, nc), nc, 1, r);
    fill_value(op_output(d, LN_OUT, "out", BUF_ACT, nc), nc, 7);
    fill_value(op_output(d, LN_MEAN, "mean", BUF_F32, N), N, 7);
    fill_value(op_output(d, LN_RSTD, "rstd", BUF_F32, N), N, 7);
    fill_value(op_output(d, LN_DINP, "dinp", BUF_ACT, nc), nc, 1); /* it accumulates */
    fill_value(op_output(d, LN_DW, "dw", BUF_F32, C), C, 1);
    fill_value(op_output(d, LN_DB, "db", BUF_F32, C), C, 1);
    d->b[LN_DW].tol = d->b[LN_DB].tol = 10; /* sums over the rows */
}

static size_t layernorm_scratch(const gpt2_backend *be, const op_case *c) {
    return be->ops->scratch_floats(1, c->n[0], c->n[1], 1, 1, 0);
}

static void layernorm_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                           float *scratch) {
    int N = c->n[0], C = c->n[1];
    be->ops->layernorm_forward(dev[LN_OUT], dev[LN_MEAN], dev[LN_RSTD], dev[LN_INP], dev[LN_W],
                               dev[LN_B], N, C);
    be->ops->layernorm_backward(dev[LN_DINP], dev[LN_DW], dev[LN_DB], dev[LN_DOUT], dev[LN_INP],
                                dev[LN_W], dev[LN_MEAN], dev[LN_RSTD], N, C, scratch);
}

static void layernorm_reference(const op_case *c, const op_data *d, double *const *got,
                                const char *tag) {
    int N = c->n[0], C = c->n[1];
    ref_nc ctx = {N, C};
    size_t nc = (size_t)N * C, nx = nc + 2 * (size_t)C;
    double *x = doubles(nx), *y = doubles(nc), *R = doubles(nc), *grad = doubles(nx);
    double *mean = doubles(N), *rstd = doubles(N);
    widen(widen(widen(x, host_f(d, LN_INP), nc), host_f(d, LN_W), C), host_f(d, LN_B), C);
    widen(R, host_f(d, LN_DOUT), nc);
    ref_layernorm(x, y, &ctx);
    ref_layernorm_stats(x, N, C, mean, rstd);
    check_near(what(tag, "out"), got[LN_OUT], y, nc, 1e-5, 1e-5);
    check_near(what(tag, "mean"), got[LN_MEAN], mean, N, 1e-6, 1e-5);
    check_near(what(tag, "rstd"), got[LN_RSTD], rstd, N, 1e-6, 1e-5);
    minus(minus(minus(grad, got[LN_DINP], nc, 1), got[LN_DW], C, 1), got[LN_DB], C, 1);
    ref_check_grad(what(tag, "dinp, dw, db"), ref_layernorm, &ctx, x, nx, nc, R, grad, 1e-4, 1e-4);
    free(x), free(y), free(R), free(grad), free(mean), free(rstd);
}

static const op_test layernorm_test = {
    .ops = "layernorm_forward layernorm_backward",
    .dims = {"N", "C"},
    .make = layernorm_make,
    .scratch = layernorm_scratch,
    .call = layernorm_call,
    .reference = layernorm_reference,
};

/* ---- matmul, forward then backward (fp32, or bf16 products with w_bf16) ---- */
enum { MM_INP, MM_W, MM_W16, MM_BIAS, MM_DOUT, MM_OUT, MM_DINP, MM_DW, MM_DBIAS };

/* The inputs of a product of N rows: inp, w, its bf16 copy, bias (the first four buffers of the
 * matmul tests). */
static void product_inputs(op_data *d, int N, int C, int OC, rng *r) {
    size_t nw = (size_t)OC * C;
    fill_normal(op_input(d, 0, "inp", BUF_ACT, (size_t)N * C), (size_t)N * C, 1, r);
    float *w = op_input(d, 1, "w", BUF_F32, nw);
    fill_normal(w, nw, 1, r);
    fill_bf16_of(op_input(d, 2, "w_bf16", BUF_BF16, nw), w, nw);
    fill_normal(op_input(d, 3, "bias", BUF_F32, OC), OC, 1, r);
}

/* x = [inp | w | bias] as the reference takes them: as given, or rounded to bf16 as a bf16
 * product's inputs are (the bias is added in fp32). */
static double *product_x(const op_data *d, int N, int C, int OC, int rounded) {
    size_t nin = (size_t)N * C, nw = (size_t)OC * C;
    double *x = doubles(nin + nw + OC), *p = x;
    p = (rounded ? widen_rounded : widen)(p, host_f(d, 0), nin);
    p = (rounded ? widen_rounded : widen)(p, host_f(d, 1), nw);
    widen(p, host_f(d, 3), OC);
    return x;
}

static void matmul_make(const op_case *c, op_data *d, rng *r) {
    int N = c->n[0], C = c->n[1], OC = c->n[2];
    product_inputs(d, N, C, OC, r);
    fill_normal(op_input(d, MM_DOUT, "dout", BUF_ACT, (size_t)N * OC), (size_t)N * OC, 1, r);
    fill_value(op_output(d, MM_OUT, "out", BUF_ACT, (size_t)N * OC), (size_t)N * OC, 7);
    fill_value(op_output(d, MM_DINP, "dinp", BUF_ACT, (size_t)N * C), (size_t)N * C, 7);
    fill_value(op_output(d, MM_DW, "dw", BUF_F32, (size_t)OC * C), (size_t)OC * C, 1);
    fill_value(op_output(d, MM_DBIAS, "dbias", BUF_F32, OC), OC, 1);
    /* the few-rows kernel is the CPU's own; more rows and the backward's products are oneDNN's */
    d->b[MM_OUT].gemm = N > GPT2_FEW_ROWS;
    d->b[MM_DINP].gemm = d->b[MM_DW].gemm = 1;
}

/* Scratch for products of N rows from C to OC channels and back. */
static size_t product_scratch(const gpt2_backend *be, const op_case *c) {
    return be->ops->scratch_floats(c->n[0], 1, c->n[1], 1, c->n[2], c->bf16);
}

static void matmul_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                        float *scratch) {
    int N = c->n[0], C = c->n[1], OC = c->n[2];
    const gpt2_bf16 *w16 = c->bf16 ? dev[MM_W16] : NULL;
    be->ops->matmul_forward(dev[MM_OUT], dev[MM_INP], dev[MM_W], w16, dev[MM_BIAS], N, C, OC,
                            scratch);
    be->ops->matmul_backward(dev[MM_DINP], dev[MM_DW], dev[MM_DBIAS], dev[MM_DOUT], dev[MM_INP],
                             dev[MM_W], w16, N, C, OC, scratch);
}

/* fp32: the forward against the reference, the backward by finite differences. bf16: both
 * against the reference on inputs rounded to bf16 (the products are exactly "round, then
 * accumulate in fp32", so fp32's tolerance holds; the bias gradient sums the unrounded dout),
 * and against the unrounded reference within bf16's error (8 bits of mantissa). */
static void matmul_reference(const op_case *c, const op_data *d, double *const *got,
                             const char *tag) {
    int N = c->n[0], C = c->n[1], OC = c->n[2];
    ref_mm ctx = {N, C, OC};
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nx = nin + nw + OC, ny = (size_t)N * OC;
    double *x = product_x(d, N, C, OC, 0), *y = doubles(ny), *R = doubles(ny);
    double *grad = doubles(nx), *want = doubles(nx);
    widen(R, host_f(d, MM_DOUT), ny);
    memcpy(grad, got[MM_DINP], nin * sizeof *grad); /* dinp is overwritten, dw and dbias added to */
    minus(minus(grad + nin, got[MM_DW], nw, 1), got[MM_DBIAS], OC, 1);
    ref_matmul(x, y, &ctx);
    if (!c->bf16) {
        check_near(what(tag, "out"), got[MM_OUT], y, ny, 1e-5, 1e-5);
        ref_check_grad(what(tag, "dinp, dw, dbias"), ref_matmul, &ctx, x, nx, ny, R, grad, 1e-4,
                       1e-4);
    } else {
        check_near(what(tag, "out vs unrounded"), got[MM_OUT], y, ny, 0.02 * sqrt(C), 0.01);
        ref_matmul_grads(x, R, &ctx, want);
        check_near(what(tag, "dinp, dw, dbias vs unrounded"), grad, want, nx,
                   0.02 * sqrt(N > OC ? N : OC), 0.01);
        double *xr = product_x(d, N, C, OC, 1), *Rr = doubles(ny);
        widen_rounded(Rr, host_f(d, MM_DOUT), ny);
        ref_matmul(xr, y, &ctx);
        check_near(what(tag, "out (rounded inputs)"), got[MM_OUT], y, ny, 1e-5, 1e-5);
        ref_matmul_grads(xr, Rr, &ctx, want);
        for (int o = 0; o < OC; o++) { /* the bias gradient: column sums of the unrounded dout */
            want[nin + nw + o] = 0;
            for (int n = 0; n < N; n++) want[nin + nw + o] += R[(size_t)n * OC + o];
        }
        check_near(what(tag, "dinp, dw, dbias (rounded inputs)"), grad, want, nx, 1e-4, 1e-4);
        free(xr), free(Rr);
    }
    free(x), free(y), free(R), free(grad), free(want);
}

static const op_test matmul_test = {
    .ops = "matmul_forward matmul_backward",
    .dims = {"N", "C", "OC"},
    .make = matmul_make,
    .scratch = product_scratch,
    .call = matmul_call,
    .reference = matmul_reference,
};

/* ---- the MLP's first layer fused: pre and gelu(pre) against matmul_forward and gelu_forward
 * apart (pre the same bits, the GELU within its tolerance; on the CPU both the same bits) ---- */
enum { MG_INP, MG_W, MG_W16, MG_BIAS, MG_PRE, MG_OUT, MG_PRE2, MG_OUT2 };

static void matmul_gelu_make(const op_case *c, op_data *d, rng *r) {
    int N = c->n[0], OC = c->n[2];
    size_t n = (size_t)N * OC;
    product_inputs(d, N, c->n[1], OC, r);
    fill_value(op_output(d, MG_PRE, "pre", BUF_ACT, n), n, 7);
    fill_value(op_output(d, MG_OUT, "out", BUF_ACT, n), n, 7);
    fill_value(op_output(d, MG_PRE2, "pre (two ops)", BUF_ACT, n), n, 7);
    fill_value(op_output(d, MG_OUT2, "out (two ops)", BUF_ACT, n), n, 7);
}

static void matmul_gelu_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                             float *scratch) {
    int N = c->n[0], C = c->n[1], OC = c->n[2];
    const gpt2_bf16 *w16 = c->bf16 ? dev[MG_W16] : NULL;
    be->ops->matmul_gelu_forward(dev[MG_PRE], dev[MG_OUT], dev[MG_INP], dev[MG_W], w16,
                                 dev[MG_BIAS], N, C, OC, scratch);
    be->ops->matmul_forward(dev[MG_PRE2], dev[MG_INP], dev[MG_W], w16, dev[MG_BIAS], N, C, OC,
                            scratch);
    be->ops->gelu_forward(dev[MG_OUT2], dev[MG_PRE2], (size_t)N * OC);
}

/* The two ops apart are checked against float64 by their own cases: the CPU's composite must
 * give their bits. */
static void matmul_gelu_reference(const op_case *c, const op_data *d, double *const *got,
                                  const char *tag) {
    size_t n = (size_t)c->n[0] * c->n[2];
    (void)d;
    check_same(what(tag, "pre = matmul_forward"), got[MG_PRE], got[MG_PRE2], n);
    check_same(what(tag, "out = gelu_forward"), got[MG_OUT], got[MG_OUT2], n);
}

/* On every backend: the same product (one GEMM either way), the GELU within its tolerance. */
static void matmul_gelu_contract(const op_case *c, const op_data *d, double *const *got,
                                 const char *tag) {
    size_t n = (size_t)c->n[0] * c->n[2];
    /* (in bf16, the epilogue's GELU reads the product before it is rounded; the op after it) */
    double atol = c->atol + d->act_slack, rtol = c->rtol + d->act_slack;
    check_near(what(tag, "pre = matmul_forward's"), got[MG_PRE], got[MG_PRE2], n, atol, rtol);
    check_near(what(tag, "out = gelu_forward(pre)"), got[MG_OUT], got[MG_OUT2], n, atol, rtol);
}

static const op_test matmul_gelu_test = {
    .ops = "matmul_gelu_forward",
    .dims = {"N", "C", "OC"},
    .make = matmul_gelu_make,
    .scratch = product_scratch,
    .call = matmul_gelu_call,
    .reference = matmul_gelu_reference,
    .contract = matmul_gelu_contract,
};

/* ---- the MLP's second layer's backward through the GELU: against matmul_backward and
 * gelu_backward apart (on the CPU the same bits) ---- */
enum { MD_INP, MD_W, MD_W16, MD_DOUT, MD_PRE, MD_DINP, MD_DW, MD_DBIAS, MD_DINP2, MD_DW2, MD_DBIAS2 };

static void matmul_dgelu_make(const op_case *c, op_data *d, rng *r) {
    int N = c->n[0], C = c->n[1], OC = c->n[2];
    size_t nw = (size_t)OC * C, nin = (size_t)N * C;
    fill_normal(op_input(d, MD_INP, "inp", BUF_ACT, nin), nin, 1, r);
    float *w = op_input(d, MD_W, "w", BUF_F32, nw);
    fill_normal(w, nw, 1, r);
    fill_bf16_of(op_input(d, MD_W16, "w_bf16", BUF_BF16, nw), w, nw);
    fill_normal(op_input(d, MD_DOUT, "dout", BUF_ACT, (size_t)N * OC), (size_t)N * OC, 1, r);
    fill_normal(op_input(d, MD_PRE, "pre", BUF_ACT, nin), nin, 1, r);
    for (int k = 0; k < 2; k++) {
        fill_value(op_output(d, MD_DINP + 3 * k, k ? "dinp (two ops)" : "dinp", BUF_ACT, nin), nin, 7);
        fill_value(op_output(d, MD_DW + 3 * k, k ? "dw (two ops)" : "dw", BUF_F32, nw), nw, 1);
        fill_value(op_output(d, MD_DBIAS + 3 * k, k ? "dbias (two ops)" : "dbias", BUF_F32, OC), OC, 1);
    }
}

static void matmul_dgelu_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                              float *scratch) {
    int N = c->n[0], C = c->n[1], OC = c->n[2];
    const gpt2_bf16 *w16 = c->bf16 ? dev[MD_W16] : NULL;
    be->ops->matmul_backward_dgelu(dev[MD_DINP], dev[MD_DW], dev[MD_DBIAS], dev[MD_DOUT],
                                   dev[MD_INP], dev[MD_PRE], dev[MD_W], w16, N, C, OC, scratch);
    be->ops->matmul_backward(dev[MD_DINP2], dev[MD_DW2], dev[MD_DBIAS2], dev[MD_DOUT], dev[MD_INP],
                             dev[MD_W], w16, N, C, OC, scratch);
    be->ops->gelu_backward(dev[MD_DINP2], dev[MD_PRE], dev[MD_DINP2], (size_t)N * C);
}

static void matmul_dgelu_reference(const op_case *c, const op_data *d, double *const *got,
                                   const char *tag) {
    (void)c;
    for (int k = MD_DINP; k <= MD_DBIAS; k++)
        check_same(what(tag, "= the two ops"), got[k], got[k + 3], d->b[k].n);
}

static void matmul_dgelu_contract(const op_case *c, const op_data *d, double *const *got,
                                  const char *tag) {
    for (int k = MD_DINP; k <= MD_DBIAS; k++)
        check_near(what(tag, "~ the two ops"), got[k], got[k + 3], d->b[k].n,
                   c->atol + d->act_slack, c->rtol + d->act_slack);
}

static const op_test matmul_dgelu_test = {
    .ops = "matmul_backward_dgelu",
    .dims = {"N", "C", "OC"},
    .make = matmul_dgelu_make,
    .scratch = product_scratch,
    .call = matmul_dgelu_call,
    .reference = matmul_dgelu_reference,
    .contract = matmul_dgelu_contract,
};

/* ---- matmul_forward's rows: up to GPT2_FEW_ROWS, each row as it is alone (generation, and a
 * server's batch of requests) ---- */
enum { MR_INP, MR_W, MR_W16, MR_BIAS, MR_ALONE, MR_TOGETHER };
enum { FEW = GPT2_FEW_ROWS };

static void rows_make(const op_case *c, op_data *d, rng *r) {
    int C = c->n[0], OC = c->n[1];
    product_inputs(d, FEW, C, OC, r);
    op_output(d, MR_ALONE, "rows alone", BUF_ACT, (size_t)FEW * OC);
    /* FEW calls of 1..FEW rows, each into its own FEW rows */
    op_output(d, MR_TOGETHER, "rows together", BUF_ACT, (size_t)FEW * FEW * OC);
}

static size_t rows_scratch(const gpt2_backend *be, const op_case *c) {
    return be->ops->scratch_floats(FEW, 1, c->n[0], 1, c->n[1], c->bf16);
}

static void rows_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *scratch) {
    int C = c->n[0], OC = c->n[1];
    const gpt2_bf16 *w16 = c->bf16 ? dev[MR_W16] : NULL;
    for (int m = 0; m < FEW; m++)
        be->ops->matmul_forward(act_at(be, dev[MR_ALONE], (size_t)m * OC),
                                act_at(be, dev[MR_INP], (size_t)m * C), dev[MR_W], w16,
                                dev[MR_BIAS], 1, C, OC, scratch);
    for (int n = 1; n <= FEW; n++)
        be->ops->matmul_forward(act_at(be, dev[MR_TOGETHER], (size_t)(n - 1) * FEW * OC),
                                dev[MR_INP], dev[MR_W], w16, dev[MR_BIAS], n, C, OC, scratch);
}

/* The first `rows` rows of a product's output (C inputs, OC outputs, from product_inputs)
 * against the float64 reference (bf16: on inputs rounded to bf16, within fp32's tolerance). */
static void check_product_rows(const op_case *c, const op_data *d, int rows, int C, int OC,
                               const double *got, const char *label, const char *tag) {
    ref_mm ctx = {rows, C, OC};
    double *x = product_x(d, rows, C, OC, c->bf16), *y = doubles((size_t)rows * OC);
    char part[64];
    ref_matmul(x, y, &ctx);
    snprintf(part, sizeof part, c->bf16 ? "%s (rounded inputs)" : "%s", label);
    check_near(what(tag, part), got, y, (size_t)rows * OC, 1e-5, 1e-5);
    free(x), free(y);
}

static void rows_reference(const op_case *c, const op_data *d, double *const *got,
                           const char *tag) {
    check_product_rows(c, d, FEW, c->n[0], c->n[1], got[MR_ALONE], "rows alone", tag);
}

static void rows_contract(const op_case *c, const op_data *d, double *const *got,
                          const char *tag) {
    (void)d;
    int OC = c->n[1];
    char part[64];
    for (int n = 1; n <= FEW; n++) {
        snprintf(part, sizeof part, "%d rows together vs each alone", n);
        check_same(what(tag, part), got[MR_TOGETHER] + (size_t)(n - 1) * FEW * OC, got[MR_ALONE],
                   (size_t)n * OC);
    }
}

static const op_test rows_test = {
    .ops = "matmul_forward",
    .dims = {"C", "OC"},
    .make = rows_make,
    .scratch = rows_scratch,
    .call = rows_call,
    .reference = rows_reference,
    .contract = rows_contract,
    .rows_contract = 1,
};

/* ---- matmul_forward_rowwise: every row as it is alone, for any number of rows, at the start
 * or in the middle of calls of many sizes (a server's prompts share a call; the kernel's tiles
 * of 4 rows and a tail, its groups of weight rows and a short last group) ---- */
enum { RW_INP, RW_W, RW_W16, RW_BIAS, RW_ALL, RW_ALONE, RW_TOGETHER };
enum { RW_ROWS = 70 };
static const int rw_sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64};
enum { RW_NSIZES = sizeof rw_sizes / sizeof *rw_sizes };

static void rowwise_make(const op_case *c, op_data *d, rng *r) {
    int C = c->n[0], OC = c->n[1];
    product_inputs(d, RW_ROWS, C, OC, r);
    op_output(d, RW_ALL, "all rows", BUF_ACT, (size_t)RW_ROWS * OC);
    op_output(d, RW_ALONE, "rows alone", BUF_ACT, (size_t)RW_ROWS * OC);
    /* for each size, calls of that many rows from row 0, 3 rows apart: each at its rows */
    op_output(d, RW_TOGETHER, "calls of each size", BUF_ACT, (size_t)RW_NSIZES * RW_ROWS * OC);
}

static size_t rowwise_scratch(const gpt2_backend *be, const op_case *c) {
    return be->ops->scratch_floats(RW_ROWS, 1, c->n[0], 1, c->n[1], c->bf16);
}

static void rowwise_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                         float *scratch) {
    int C = c->n[0], OC = c->n[1];
    const gpt2_bf16 *w16 = c->bf16 ? dev[RW_W16] : NULL;
    be->ops->matmul_forward_rowwise(dev[RW_ALL], dev[RW_INP], dev[RW_W], w16, dev[RW_BIAS], RW_ROWS,
                                    C, OC, scratch);
    for (int m = 0; m < RW_ROWS; m++)
        be->ops->matmul_forward_rowwise(act_at(be, dev[RW_ALONE], (size_t)m * OC),
                                        act_at(be, dev[RW_INP], (size_t)m * C), dev[RW_W], w16,
                                        dev[RW_BIAS], 1, C, OC, scratch);
    for (int k = 0; k < RW_NSIZES; k++)
        for (int first = 0; first + rw_sizes[k] <= RW_ROWS; first += rw_sizes[k] + 3)
            be->ops->matmul_forward_rowwise(
                act_at(be, dev[RW_TOGETHER], ((size_t)k * RW_ROWS + first) * OC),
                act_at(be, dev[RW_INP], (size_t)first * C), dev[RW_W], w16, dev[RW_BIAS],
                rw_sizes[k], C, OC, scratch);
}

static void rowwise_reference(const op_case *c, const op_data *d, double *const *got,
                              const char *tag) {
    check_product_rows(c, d, RW_ROWS, c->n[0], c->n[1], got[RW_ALL], "all rows", tag);
}

static void rowwise_contract(const op_case *c, const op_data *d, double *const *got,
                             const char *tag) {
    (void)d;
    int OC = c->n[1];
    size_t row = (size_t)OC;
    check_same(what(tag, "all rows vs each alone"), got[RW_ALL], got[RW_ALONE], RW_ROWS * row);
    /* the rows each size's calls covered, gathered, against the same rows alone */
    double *together = doubles(RW_ROWS * row), *alone = doubles(RW_ROWS * row);
    char part[64];
    for (int k = 0; k < RW_NSIZES; k++) {
        size_t covered = 0;
        for (int first = 0; first + rw_sizes[k] <= RW_ROWS; first += rw_sizes[k] + 3) {
            size_t at = (size_t)first * row, len = (size_t)rw_sizes[k] * row;
            memcpy(together + covered, got[RW_TOGETHER] + (size_t)k * RW_ROWS * row + at,
                   len * sizeof(double));
            memcpy(alone + covered, got[RW_ALONE] + at, len * sizeof(double));
            covered += len;
        }
        snprintf(part, sizeof part, "calls of %d rows vs each alone", rw_sizes[k]);
        check_same(what(tag, part), together, alone, covered);
    }
    free(together), free(alone);
}

static const op_test rowwise_test = {
    .ops = "matmul_forward_rowwise",
    .dims = {"C", "OC"},
    .make = rowwise_make,
    .scratch = rowwise_scratch,
    .call = rowwise_call,
    .reference = rowwise_reference,
    .contract = rowwise_contract,
    .rows_contract = 1,
};

/* ---- causal attention, forward then backward ---- */
enum { AT_QKV, AT_DOUT, AT_OUT, AT_LSE, AT_DQKV };

static void attention_make(const op_case *c, op_data *d, rng *r) {
    int B = c->n[0], T = c->n[1], C = c->n[2], NH = c->n[3];
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C;
    fill_normal(op_input(d, AT_QKV, "qkv", BUF_ACT, nqkv), nqkv, 1, r);
    fill_normal(op_input(d, AT_DOUT, "dout", BUF_ACT, nout), nout, 1, r);
    fill_value(op_output(d, AT_OUT, "out", BUF_ACT, nout), nout, 7);
    fill_value(op_output(d, AT_LSE, "lse", BUF_F32, (size_t)B * NH * T), (size_t)B * NH * T, 7);
    fill_value(op_output(d, AT_DQKV, "dqkv", BUF_ACT, nqkv), nqkv, 7); /* overwritten */
    d->b[AT_DQKV].tol = 10;
}

static size_t attention_scratch(const gpt2_backend *be, const op_case *c) {
    return be->ops->scratch_floats(c->n[0], c->n[1], c->n[2], c->n[3], 1, c->bf16);
}

static void attention_shape(const op_case *c, int *C, int *NH) { *C = c->n[2], *NH = c->n[3]; }

static void attention_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                           float *scratch) {
    int B = c->n[0], T = c->n[1], C = c->n[2], NH = c->n[3];
    be->ops->attention_forward(dev[AT_OUT], dev[AT_LSE], dev[AT_QKV], B, T, C, NH, c->bf16,
                               scratch);
    be->ops->attention_backward(dev[AT_DQKV], dev[AT_DOUT], dev[AT_QKV], dev[AT_OUT], dev[AT_LSE],
                                B, T, C, NH, c->bf16, scratch);
}

static void attention_reference(const op_case *c, const op_data *d, double *const *got,
                                const char *tag) {
    int B = c->n[0], T = c->n[1], C = c->n[2], NH = c->n[3];
    /* bf16 (the CPU's products with bf16 inputs where it has the kernels): out against the
     * reference whose probabilities are rounded too (an element whose rounding goes the other
     * way in fp32 moves it by up to 2^-8 of that probability's share: 1e-3), the gradient
     * within bf16's error (dS and P rounded: 8 bits) */
    int bf16 = c->bf16 && cpu_bf16_native();
    ref_att ctx = {B, T, C, NH, bf16};
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    double *x = doubles(nqkv), *y = doubles(nout), *lse = doubles(nlse), *R = doubles(nout);
    widen(x, host_f(d, AT_QKV), nqkv);
    widen(R, host_f(d, AT_DOUT), nout);
    ref_attention_lse(x, &ctx, y, lse);
    check_near(what(tag, "out"), got[AT_OUT], y, nout, bf16 ? 1e-3 : 1e-5, bf16 ? 1e-3 : 1e-5);
    check_near(what(tag, "lse"), got[AT_LSE], lse, nlse, 1e-5, 1e-5);
    ctx.round_p = 0;
    ref_check_grad(what(tag, "dqkv"), ref_attention, &ctx, x, nqkv, nout, R, got[AT_DQKV],
                   bf16 ? 1e-2 : 1e-4, bf16 ? 1e-2 : 1e-4);
    free(x), free(y), free(lse), free(R);
}

static const op_test attention_test = {
    .ops = "attention_forward attention_backward",
    .dims = {"B", "T", "C", "NH"},
    .make = attention_make,
    .scratch = attention_scratch,
    .call = attention_call,
    .reference = attention_reference,
    .model_shape = attention_shape,
};

/* ---- attention with a cache: each sequence's earlier positions in one call (the spans' pasts),
 * then the case's spans in one call, then each span alone ---- */
enum { KV_QKV_PAST, KV_QKV, KV_KCACHE, KV_VCACHE, KV_OUT_PAST, KV_OUT, KV_ALONE };
enum { KV_MAX_SPANS = 8 };

/* Span s's past: positions 0..pos-1 of its sequence, for the spans that have one. */
static int kv_pasts(const op_case *c, gpt2_span *past) {
    int n = 0;
    for (int s = 0; s < c->nspans; s++)
        if (c->spans[s].pos > 0) past[n++] = (gpt2_span){c->spans[s].seq, 0, c->spans[s].pos};
    return n;
}

static void kv_make(const op_case *c, op_data *d, rng *r) {
    int C = c->n[0], len = c->n[2];
    gpt2_span past[KV_MAX_SPANS];
    int npast = kv_pasts(c, past);
    size_t past_rows = gpt2_spans_rows(past, npast), rows = gpt2_spans_rows(c->spans, c->nspans);
    size_t cache = gpt2_spans_seqs(c->spans, c->nspans) * len * C;
    fill_normal(op_input(d, KV_QKV_PAST, "qkv past", BUF_ACT, past_rows * 3 * C),
                past_rows * 3 * C, 1, r);
    fill_normal(op_input(d, KV_QKV, "qkv", BUF_ACT, rows * 3 * C), rows * 3 * C, 1, r);
    /* the caches' layout is the backend's: written and read by the op, never compared */
    op_input(d, KV_KCACHE, "kcache", BUF_ACT, cache);
    op_input(d, KV_VCACHE, "vcache", BUF_ACT, cache);
    fill_value(op_output(d, KV_OUT_PAST, "out past", BUF_ACT, past_rows * C), past_rows * C, 7);
    fill_value(op_output(d, KV_OUT, "out", BUF_ACT, rows * C), rows * C, 7);
    fill_value(op_output(d, KV_ALONE, "out span alone", BUF_ACT, rows * C), rows * C, 7);
}

static size_t kv_scratch(const gpt2_backend *be, const op_case *c) {
    return be->ops->scratch_floats(1, c->n[2], c->n[0], c->n[1], 1, 0);
}

static void kv_shape(const op_case *c, int *C, int *NH) { *C = c->n[0], *NH = c->n[1]; }

static void kv_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *scratch) {
    int C = c->n[0], NH = c->n[1], len = c->n[2];
    gpt2_span past[KV_MAX_SPANS];
    int npast = kv_pasts(c, past);
    if (npast > 0)
        be->ops->attention_forward_kv(dev[KV_OUT_PAST], dev[KV_QKV_PAST], dev[KV_KCACHE],
                                      dev[KV_VCACHE], past, npast, len, C, NH, scratch);
    be->ops->attention_forward_kv(dev[KV_OUT], dev[KV_QKV], dev[KV_KCACHE], dev[KV_VCACHE],
                                  c->spans, c->nspans, len, C, NH, scratch);
    /* alone: the span's keys and values go to the same positions again, with the same values */
    size_t first = 0;
    for (int s = 0; s < c->nspans; s++) {
        be->ops->attention_forward_kv(act_at(be, dev[KV_ALONE], first * C),
                                      act_at(be, dev[KV_QKV], first * 3 * C), dev[KV_KCACHE],
                                      dev[KV_VCACHE], &c->spans[s], 1, len, C, NH, scratch);
        first += (size_t)c->spans[s].n;
    }
}

/* Each span against the reference causal attention over its sequence: the past rows, then the
 * span's rows. */
static void kv_reference(const op_case *c, const op_data *d, double *const *got, const char *tag) {
    int C = c->n[0], NH = c->n[1];
    gpt2_span past[KV_MAX_SPANS];
    int npast = kv_pasts(c, past);
    size_t past_rows = gpt2_spans_rows(past, npast), rows = gpt2_spans_rows(c->spans, c->nspans);
    double *want_past = doubles(past_rows * C), *want = doubles(rows * C);
    const float *qkv_past = host_f(d, KV_QKV_PAST), *qkv = host_f(d, KV_QKV);
    size_t past_first = 0, first = 0, row3 = 3 * (size_t)C;
    for (int s = 0; s < c->nspans; s++) {
        int pos = c->spans[s].pos, n = c->spans[s].n, T = pos + n;
        ref_att ctx = {1, T, C, NH, 0};
        double *x = doubles((size_t)T * row3), *y = doubles((size_t)T * C);
        widen(widen(x, qkv_past + past_first * row3, pos * row3), qkv + first * row3, n * row3);
        ref_attention(x, y, &ctx);
        memcpy(want_past + past_first * C, y, (size_t)pos * C * sizeof *y);
        memcpy(want + first * C, y + (size_t)pos * C, (size_t)n * C * sizeof *y);
        past_first += (size_t)pos, first += (size_t)n;
        free(x), free(y);
    }
    check_near(what(tag, "out past"), got[KV_OUT_PAST], want_past, past_rows * C, 1e-5, 1e-5);
    check_near(what(tag, "out"), got[KV_OUT], want, rows * C, 1e-5, 1e-5);
    free(want_past), free(want);
}

/* ops.h: a row's result does not depend on the other spans (every backend). */
static void kv_contract(const op_case *c, const op_data *d, double *const *got, const char *tag) {
    (void)d;
    size_t rows = gpt2_spans_rows(c->spans, c->nspans);
    check_same(what(tag, "each span alone vs together"), got[KV_ALONE], got[KV_OUT],
               rows * (size_t)c->n[0]);
}

static const op_test kv_test = {
    .ops = "attention_forward_kv",
    .dims = {"C", "NH", "len"},
    .make = kv_make,
    .scratch = kv_scratch,
    .call = kv_call,
    .reference = kv_reference,
    .contract = kv_contract,
    .model_shape = kv_shape,
};

/* ---- GELU, forward and backward, out of place and in place ---- */
enum { GE_INP, GE_DOUT, GE_OUT, GE_DINP, GE_OUT_INPLACE, GE_DINP_INPLACE };

static void gelu_make(const op_case *c, op_data *d, rng *r) {
    size_t n = (size_t)c->n[0];
    float *inp = op_input(d, GE_INP, "inp", BUF_ACT, n), *dout;
    fill_normal(inp, n, 3, r);
    fill_normal(dout = op_input(d, GE_DOUT, "dout", BUF_ACT, n), n, 1, r);
    fill_value(op_output(d, GE_OUT, "out", BUF_ACT, n), n, 7);
    fill_value(op_output(d, GE_DINP, "dinp", BUF_ACT, n), n, 7);
    memcpy(op_output(d, GE_OUT_INPLACE, "out in place", BUF_ACT, n), inp, n * sizeof *inp);
    memcpy(op_output(d, GE_DINP_INPLACE, "dinp in place", BUF_ACT, n), dout, n * sizeof *dout);
    d->b[GE_DINP].tol = d->b[GE_DINP_INPLACE].tol = 10;
}

static void gelu_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *s) {
    (void)s;
    size_t n = (size_t)c->n[0];
    be->ops->gelu_forward(dev[GE_OUT], dev[GE_INP], n);
    be->ops->gelu_backward(dev[GE_DINP], dev[GE_INP], dev[GE_DOUT], n);
    be->ops->gelu_forward(dev[GE_OUT_INPLACE], dev[GE_OUT_INPLACE], n);
    be->ops->gelu_backward(dev[GE_DINP_INPLACE], dev[GE_INP], dev[GE_DINP_INPLACE], n);
}

static void gelu_reference(const op_case *c, const op_data *d, double *const *got,
                           const char *tag) {
    size_t n = (size_t)c->n[0];
    double *x = doubles(n), *y = doubles(n), *R = doubles(n);
    widen(x, host_f(d, GE_INP), n);
    widen(R, host_f(d, GE_DOUT), n);
    ref_gelu(x, y, &n);
    check_near(what(tag, "out"), got[GE_OUT], y, n, 1e-6, 1e-5);
    ref_check_grad(what(tag, "dinp"), ref_gelu, &n, x, n, n, R, got[GE_DINP], 1e-5, 1e-4);
    free(x), free(y), free(R);
}

/* ops.h: out may equal inp, dinp may equal dout, with the same results. */
static void gelu_contract(const op_case *c, const op_data *d, double *const *got,
                          const char *tag) {
    (void)d;
    size_t n = (size_t)c->n[0];
    check_same(what(tag, "out in place"), got[GE_OUT_INPLACE], got[GE_OUT], n);
    check_same(what(tag, "dinp in place"), got[GE_DINP_INPLACE], got[GE_DINP], n);
}

static const op_test gelu_test = {
    .ops = "gelu_forward gelu_backward",
    .dims = {"n"},
    .make = gelu_make,
    .call = gelu_call,
    .reference = gelu_reference,
    .contract = gelu_contract,
};

/* ---- residual: out = a + b, also into a and into b ---- */
enum { RE_A, RE_B, RE_OUT, RE_INTO_A, RE_INTO_B };

static void residual_make(const op_case *c, op_data *d, rng *r) {
    size_t n = (size_t)c->n[0];
    float *a = op_input(d, RE_A, "a", BUF_ACT, n), *b = op_input(d, RE_B, "b", BUF_ACT, n);
    fill_normal(a, n, 1, r), fill_normal(b, n, 1, r);
    fill_value(op_output(d, RE_OUT, "out", BUF_ACT, n), n, 7);
    memcpy(op_output(d, RE_INTO_A, "out = a", BUF_ACT, n), a, n * sizeof *a);
    memcpy(op_output(d, RE_INTO_B, "out = b", BUF_ACT, n), b, n * sizeof *b);
}

static void residual_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *s) {
    (void)s;
    size_t n = (size_t)c->n[0];
    be->ops->residual_forward(dev[RE_OUT], dev[RE_A], dev[RE_B], n);
    be->ops->residual_forward(dev[RE_INTO_A], dev[RE_INTO_A], dev[RE_B], n);
    be->ops->residual_forward(dev[RE_INTO_B], dev[RE_A], dev[RE_INTO_B], n);
}

/* The sum of two floats rounded once: exact. */
static void residual_reference(const op_case *c, const op_data *d, double *const *got,
                               const char *tag) {
    size_t n = (size_t)c->n[0];
    const float *a = host_f(d, RE_A), *b = host_f(d, RE_B);
    double *want = doubles(n);
    for (size_t i = 0; i < n; i++) want[i] = (float)((double)a[i] + b[i]);
    for (int k = RE_OUT; k <= RE_INTO_B; k++)
        check_near(what(tag, d->b[k].name), got[k], want, n, 0, 0);
    free(want);
}

static const op_test residual_test = {
    .ops = "residual_forward",
    .dims = {"n"},
    .make = residual_make,
    .call = residual_call,
    .reference = residual_reference,
};

/* ---- residual + layernorm fused: in place into a (as the model calls it), against the two
 * ops apart (the same bits, on every backend) and the float64 reference ---- */
enum { RL_A, RL_B, RL_W, RL_BIAS, RL_RES, RL_OUT, RL_MEAN, RL_RSTD, RL_RES2, RL_OUT2, RL_MEAN2,
       RL_RSTD2 };

static void residual_layernorm_make(const op_case *c, op_data *d, rng *r) {
    int N = c->n[0], C = c->n[1];
    size_t nc = (size_t)N * C;
    float *a = op_input(d, RL_A, "a", BUF_ACT, nc);
    fill_normal(a, nc, 1, r);
    fill_normal(op_input(d, RL_B, "b", BUF_ACT, nc), nc, 1, r);
    fill_normal(op_input(d, RL_W, "w", BUF_F32, C), C, 1, r);
    fill_normal(op_input(d, RL_BIAS, "bias", BUF_F32, C), C, 1, r);
    memcpy(op_output(d, RL_RES, "res (= a, in place)", BUF_ACT, nc), a, nc * sizeof *a);
    fill_value(op_output(d, RL_OUT, "out", BUF_ACT, nc), nc, 7);
    fill_value(op_output(d, RL_MEAN, "mean", BUF_F32, N), N, 7);
    fill_value(op_output(d, RL_RSTD, "rstd", BUF_F32, N), N, 7);
    fill_value(op_output(d, RL_RES2, "res (two ops)", BUF_ACT, nc), nc, 7);
    fill_value(op_output(d, RL_OUT2, "out (two ops)", BUF_ACT, nc), nc, 7);
    fill_value(op_output(d, RL_MEAN2, "mean (two ops)", BUF_F32, N), N, 7);
    fill_value(op_output(d, RL_RSTD2, "rstd (two ops)", BUF_F32, N), N, 7);
}

static void residual_layernorm_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                                    float *s) {
    (void)s;
    int N = c->n[0], C = c->n[1];
    be->ops->residual_layernorm_forward(dev[RL_RES], dev[RL_OUT], dev[RL_MEAN], dev[RL_RSTD],
                                        dev[RL_RES], dev[RL_B], dev[RL_W], dev[RL_BIAS], N, C);
    be->ops->residual_forward(dev[RL_RES2], dev[RL_A], dev[RL_B], (size_t)N * C);
    be->ops->layernorm_forward(dev[RL_OUT2], dev[RL_MEAN2], dev[RL_RSTD2], dev[RL_RES2], dev[RL_W],
                               dev[RL_BIAS], N, C);
}

static void residual_layernorm_reference(const op_case *c, const op_data *d, double *const *got,
                                         const char *tag) {
    int N = c->n[0], C = c->n[1];
    size_t nc = (size_t)N * C;
    ref_nc ctx = {N, C};
    const float *a = host_f(d, RL_A), *b = host_f(d, RL_B);
    double *x = doubles(nc + 2 * (size_t)C), *y = doubles(nc), *mean = doubles(N), *rstd = doubles(N);
    for (size_t i = 0; i < nc; i++) x[i] = (float)((double)a[i] + b[i]); /* one rounding: exact */
    widen(widen(x + nc, host_f(d, RL_W), C), host_f(d, RL_BIAS), C);
    ref_layernorm(x, y, &ctx);
    ref_layernorm_stats(x, N, C, mean, rstd);
    check_near(what(tag, "res"), got[RL_RES], x, nc, 0, 0);
    check_near(what(tag, "out"), got[RL_OUT], y, nc, 1e-5, 1e-5);
    check_near(what(tag, "mean"), got[RL_MEAN], mean, N, 1e-6, 1e-5);
    check_near(what(tag, "rstd"), got[RL_RSTD], rstd, N, 1e-6, 1e-5);
    free(x), free(y), free(mean), free(rstd);
}

static void residual_layernorm_contract(const op_case *c, const op_data *d, double *const *got,
                                        const char *tag) {
    for (int k = RL_RES; k <= RL_RSTD; k++)
        check_same(what(tag, "fused = two ops"), got[k], got[k + RL_RES2 - RL_RES], d->b[k].n);
    (void)c;
}

static const op_test residual_layernorm_test = {
    .ops = "residual_layernorm_forward",
    .dims = {"N", "C"},
    .make = residual_layernorm_make,
    .call = residual_layernorm_call,
    .reference = residual_layernorm_reference,
    .contract = residual_layernorm_contract,
};

/* ---- the fused classifier: losses alone (evaluation), then losses and gradients ---- */
enum { CL_INP, CL_WTE, CL_WTE16, CL_TARGETS, CL_LOSSES_EVAL, CL_LOSSES, CL_DINP, CL_DWTE };
#define CL_DLOSS 0.37f

static void classifier_make(const op_case *c, op_data *d, rng *r) {
    int N = c->n[0], C = c->n[1], V = c->n[2], Vp = c->n[3];
    size_t nin = (size_t)N * C, nw = (size_t)Vp * C;
    fill_normal(op_input(d, CL_INP, "inp", BUF_ACT, nin), nin, 1, r);
    /* the padding rows V..Vp-1 hold values too: the op must ignore their logits entirely */
    float *wte = op_input(d, CL_WTE, "wte", BUF_F32, nw);
    fill_normal(wte, nw, 1, r);
    fill_bf16_of(op_input(d, CL_WTE16, "wte_bf16", BUF_BF16, nw), wte, nw);
    int32_t *targets = op_input(d, CL_TARGETS, "targets", BUF_I32, N);
    for (int i = 0; i < N; i++) targets[i] = (int32_t)(rng_next(r) % (uint64_t)V);
    fill_value(op_output(d, CL_LOSSES_EVAL, "losses (eval)", BUF_F32, N), N, 7);
    fill_value(op_output(d, CL_LOSSES, "losses", BUF_F32, N), N, 7);
    fill_value(op_output(d, CL_DINP, "dinp", BUF_ACT, nin), nin, 7);
    fill_value(op_output(d, CL_DWTE, "dwte", BUF_F32, nw), nw, 1);
    for (int i = CL_LOSSES_EVAL; i <= CL_DWTE; i++) d->b[i].gemm = 1;
    /* in bf16 the logits' gradients differ in their last bits (each backend's exp), which the
     * rounding to bf16 can turn into a bf16 step of a few of them */
    d->b[CL_DINP].tol = d->b[CL_DWTE].tol = c->bf16 ? 2000 : 1;
    /* and a GPU keeps bf16 logits (rounded: 2^-9 of each, in the log-sum-exp and the target's) */
    d->b[CL_LOSSES].tol = d->b[CL_LOSSES_EVAL].tol = c->bf16 ? 2000 : 1;
}

static size_t classifier_scratch(const gpt2_backend *be, const op_case *c) {
    return be->ops->scratch_floats(1, c->n[0], c->n[1], 1, c->n[3], c->bf16);
}

static void classifier_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                            float *scratch) {
    int N = c->n[0], C = c->n[1], V = c->n[2], Vp = c->n[3];
    const gpt2_bf16 *w16 = c->bf16 ? dev[CL_WTE16] : NULL;
    be->ops->classifier(dev[CL_LOSSES_EVAL], NULL, NULL, dev[CL_INP], dev[CL_WTE], w16,
                        dev[CL_TARGETS], N, C, V, Vp, 0, scratch);
    be->ops->classifier(dev[CL_LOSSES], dev[CL_DINP], dev[CL_DWTE], dev[CL_INP], dev[CL_WTE], w16,
                        dev[CL_TARGETS], N, C, V, Vp, CL_DLOSS, scratch);
}

/* fp32 against the reference and its finite differences; bf16 against the same within bf16's
 * error (dwte sums N products, each off by about 2^-9 relative: the error grows as sqrt(N)). */
static void classifier_reference(const op_case *c, const op_data *d, double *const *got,
                                 const char *tag) {
    int N = c->n[0], C = c->n[1], V = c->n[2], Vp = c->n[3];
    ref_cls ctx = {N, C, V, Vp, host_i(d, CL_TARGETS)};
    size_t nin = (size_t)N * C, nw = (size_t)Vp * C;
    double *x = doubles(nin + nw), *y = doubles(N), *R = doubles(N), *grad = doubles(nin + nw);
    widen(widen(x, host_f(d, CL_INP), nin), host_f(d, CL_WTE), nw);
    for (int i = 0; i < N; i++) R[i] = CL_DLOSS;
    ref_classifier(x, y, &ctx);
    double latol = c->bf16 ? 0.05 : 1e-5, lrtol = c->bf16 ? 0.01 : 1e-5;
    double gatol = c->bf16 ? 0.01 + 0.005 * sqrt(N) : 1e-4, grtol = c->bf16 ? 0.02 : 1e-4;
    check_near(what(tag, "losses (eval)"), got[CL_LOSSES_EVAL], y, N, latol, lrtol);
    check_near(what(tag, "losses"), got[CL_LOSSES], y, N, latol, lrtol);
    memcpy(grad, got[CL_DINP], nin * sizeof *grad);
    minus(grad + nin, got[CL_DWTE], nw, 1);
    ref_check_grad(what(tag, "dinp, dwte"), ref_classifier, &ctx, x, nin + nw, N, R, grad, gatol,
                   grtol);
    free(x), free(y), free(R), free(grad);
}

static const op_test classifier_test = {
    .ops = "classifier",
    .dims = {"N", "C", "V", "Vp"},
    .make = classifier_make,
    .scratch = classifier_scratch,
    .call = classifier_call,
    .reference = classifier_reference,
};

/* ---- generation's LM head: logits in fp32 ---- */
enum { LO_INP, LO_WTE, LO_WTE16, LO_ZERO_BIAS, LO_LOGITS };

static void logits_make(const op_case *c, op_data *d, rng *r) {
    int N = c->n[0], C = c->n[1], Vp = c->n[2];
    product_inputs(d, N, C, Vp, r);
    memset(d->b[LO_ZERO_BIAS].host, 0, (size_t)Vp * sizeof(float)); /* the reference's bias */
    fill_value(op_output(d, LO_LOGITS, "logits", BUF_F32, (size_t)N * Vp), (size_t)N * Vp, 7);
    d->b[LO_LOGITS].gemm = N > GPT2_FEW_ROWS;
}

static void logits_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                        float *scratch) {
    be->ops->logits_forward(dev[LO_LOGITS], dev[LO_INP], dev[LO_WTE],
                            c->bf16 ? dev[LO_WTE16] : NULL, c->n[0], c->n[1], c->n[2], scratch);
}

static void logits_reference(const op_case *c, const op_data *d, double *const *got,
                             const char *tag) {
    check_product_rows(c, d, c->n[0], c->n[1], c->n[2], got[LO_LOGITS], "logits", tag);
}

static const op_test logits_test = {
    .ops = "logits_forward",
    .dims = {"N", "C", "Vp"},
    .make = logits_make,
    .scratch = product_scratch,
    .call = logits_call,
    .reference = logits_reference,
};

/* ---- logits_forward's rows: up to GPT2_FEW_ROWS, each row as it is alone (a server's
 * requests share generation's LM head), as rows_test checks for matmul_forward; the logits
 * fp32, no bias ---- */
static void logits_rows_make(const op_case *c, op_data *d, rng *r) {
    int C = c->n[0], Vp = c->n[1];
    product_inputs(d, FEW, C, Vp, r);
    memset(d->b[MR_BIAS].host, 0, (size_t)Vp * sizeof(float)); /* the reference's bias */
    fill_value(op_output(d, MR_ALONE, "rows alone", BUF_F32, (size_t)FEW * Vp),
               (size_t)FEW * Vp, 7);
    fill_value(op_output(d, MR_TOGETHER, "rows together", BUF_F32, (size_t)FEW * FEW * Vp),
               (size_t)FEW * FEW * Vp, 7);
}

static void logits_rows_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                             float *scratch) {
    int C = c->n[0], Vp = c->n[1];
    const gpt2_bf16 *w16 = c->bf16 ? dev[MR_W16] : NULL;
    float *alone = dev[MR_ALONE], *together = dev[MR_TOGETHER];
    for (int m = 0; m < FEW; m++)
        be->ops->logits_forward(alone + (size_t)m * Vp, act_at(be, dev[MR_INP], (size_t)m * C),
                                dev[MR_W], w16, 1, C, Vp, scratch);
    for (int n = 1; n <= FEW; n++)
        be->ops->logits_forward(together + (size_t)(n - 1) * FEW * Vp, dev[MR_INP], dev[MR_W],
                                w16, n, C, Vp, scratch);
}

static const op_test logits_rows_test = {
    .ops = "logits_forward",
    .dims = {"C", "Vp"},
    .make = logits_rows_make,
    .scratch = rows_scratch,
    .call = logits_rows_call,
    .reference = rows_reference,
    .contract = rows_contract,
    .rows_contract = 1,
};

/* ---- the sum of squares (gradient clipping), in double ---- */
enum { SS_X, SS_SUM };

/* n[1] 1: small integers, whose squares sum exactly in any order, so any backend's sum is
 * the reference's bit for bit; 0: normal values, within double rounding. */
static void sum_squares_make(const op_case *c, op_data *d, rng *r) {
    size_t n = (size_t)c->n[0];
    float *x = op_input(d, SS_X, "x", BUF_F32, n);
    if (c->n[1])
        for (size_t i = 0; i < n; i++) x[i] = (float)(i % 7) - 3.0f;
    else fill_normal(x, n, 1, r);
    *(double *)op_output(d, SS_SUM, "sum", BUF_HOST_F64, 1) = 7;
}

static void sum_squares_call(const gpt2_backend *be, const op_case *c, void *const *dev,
                             float *s) {
    (void)s;
    be->ops->sum_squares(dev[SS_SUM], dev[SS_X], (size_t)c->n[0]);
}

static void sum_squares_reference(const op_case *c, const op_data *d, double *const *got,
                                  const char *tag) {
    const float *x = host_f(d, SS_X);
    double want = 0;
    for (size_t i = 0; i < (size_t)c->n[0]; i++) want += (double)x[i] * x[i];
    check_near(what(tag, "sum"), got[SS_SUM], &want, 1, 0, c->n[1] ? 0 : 1e-12);
}

static const op_test sum_squares_test = {
    .ops = "sum_squares",
    .dims = {"n", "integers"},
    .make = sum_squares_make,
    .call = sum_squares_call,
    .reference = sum_squares_reference,
};

/* ---- a batch's mean loss added to an accumulator ---- */
enum { LS_LOSSES, LS_ACC };
static const float ls_weight = 0.75f;

static void loss_sum_make(const op_case *c, op_data *d, rng *r) {
    float *x = op_input(d, LS_LOSSES, "losses", BUF_F32, (size_t)c->n[0]);
    for (int i = 0; i < c->n[0]; i++) x[i] = (float)(10.0 * rng_uniform(r));
    *(double *)op_output(d, LS_ACC, "acc", BUF_F64, 1) = 1.25; /* what earlier batches left */
}

static void loss_sum_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *s) {
    (void)s;
    be->ops->loss_sum(dev[LS_ACC], dev[LS_LOSSES], c->n[0], ls_weight);
}

static void loss_sum_reference(const op_case *c, const op_data *d, double *const *got,
                               const char *tag) {
    const float *x = host_f(d, LS_LOSSES);
    double sum = 0;
    for (int i = 0; i < c->n[0]; i++) sum += x[i];
    double want = 1.25 + (double)(ls_weight * (float)(sum / c->n[0])); /* the CPU's own order */
    check_same(what(tag, "acc"), got[LS_ACC], &want, 1);
}

static const op_test loss_sum_test = {
    .ops = "loss_sum",
    .dims = {"N"},
    .make = loss_sum_make,
    .call = loss_sum_call,
    .reference = loss_sum_reference,
};

/* ---- AdamW: PyTorch's formula, then the gradient zeroed and the bf16 copy written ---- */
enum { AD_P, AD_P16, AD_G, AD_M, AD_V };
static const double ad_lr = 3e-4, ad_b1 = 0.9, ad_b2 = 0.95, ad_eps = 1e-8, ad_wd = 0.1,
                    ad_scale = 0.5;
enum { AD_STEP = 3 };

static void adamw_make(const op_case *c, op_data *d, rng *r) {
    size_t n = (size_t)c->n[0];
    fill_normal(op_output(d, AD_P, "p", BUF_F32, n), n, 1, r);
    op_output(d, AD_P16, "p_bf16", BUF_BF16, n);
    fill_normal(op_output(d, AD_G, "g", BUF_F32, n), n, 1, r);
    fill_normal(op_output(d, AD_M, "m", BUF_F32, n), n, 0.1, r);
    float *v = op_output(d, AD_V, "v", BUF_F32, n);
    for (size_t i = 0; i < n; i++) v[i] = 0.01f * (float)rng_uniform(r);
    d->b[AD_G].tol = 0; /* zeroed: exactly */
    /* parameters a few ulps apart on two backends can round to neighbouring bf16 values */
    d->b[AD_P16].tol = 1e4;
}

/* Runs with and without weight decay: one value, a long run, the last reaching the end. */
static const gpt2_decay_run ad_runs[] = {{0, 1}, {300, 0}, {301, 1}, {700, 0}};
enum { AD_NRUNS = sizeof ad_runs / sizeof *ad_runs };

static int ad_decays(size_t i) {
    int decay = 0;
    for (int r = 0; r < AD_NRUNS && ad_runs[r].start <= i; r++) decay = ad_runs[r].decay;
    return decay;
}

static void adamw_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *s) {
    (void)s;
    be->ops->adamw(dev[AD_P], dev[AD_P16], dev[AD_G], dev[AD_M], dev[AD_V], (size_t)c->n[0],
                   ad_runs, AD_NRUNS, ad_lr, (float)ad_b1, (float)ad_b2, (float)ad_eps,
                   (float)ad_wd, (float)ad_scale, 1 - pow(ad_b1, AD_STEP), 1 - pow(ad_b2, AD_STEP));
}

static void adamw_reference(const op_case *c, const op_data *d, double *const *got,
                            const char *tag) {
    size_t n = (size_t)c->n[0];
    const float *p = host_f(d, AD_P), *g = host_f(d, AD_G), *m = host_f(d, AD_M);
    const float *v = host_f(d, AD_V);
    double bc1 = 1 - pow(ad_b1, AD_STEP), bc2 = 1 - pow(ad_b2, AD_STEP);
    double *pw = doubles(n), *mw = doubles(n), *vw = doubles(n), *zero = doubles(n);
    double *p16 = doubles(n);
    for (size_t i = 0; i < n; i++) {
        double gr = g[i] * ad_scale;
        mw[i] = ad_b1 * m[i] + (1 - ad_b1) * gr;
        vw[i] = ad_b2 * v[i] + (1 - ad_b2) * gr * gr;
        double wd = ad_decays(i) ? ad_wd : 0.0;
        pw[i] = p[i] * (1 - ad_lr * wd) - ad_lr / bc1 * mw[i] / (sqrt(vw[i]) / sqrt(bc2) + ad_eps);
        zero[i] = 0;
        p16[i] = ref_round_bf16((float)got[AD_P][i]); /* the updated parameters, rounded */
    }
    check_near(what(tag, "p"), got[AD_P], pw, n, 1e-6, 1e-6);
    check_near(what(tag, "m"), got[AD_M], mw, n, 1e-7, 1e-6);
    check_near(what(tag, "v"), got[AD_V], vw, n, 1e-9, 1e-6);
    check_near(what(tag, "g zeroed"), got[AD_G], zero, n, 0, 0);
    check_near(what(tag, "p_bf16"), got[AD_P16], p16, n, 0, 0);
    free(pw), free(mw), free(vw), free(zero), free(p16);
}

static const op_test adamw_test = {
    .ops = "adamw",
    .dims = {"n"},
    .make = adamw_make,
    .call = adamw_call,
    .reference = adamw_reference,
};

/* ---- to_bf16: nearest even, NaN stays NaN ---- */
enum { TB_SRC, TB_DST };

static void to_bf16_make(const op_case *c, op_data *d, rng *r) {
    size_t n = (size_t)c->n[0];
    float *x = op_input(d, TB_SRC, "src", BUF_F32, n);
    fill_normal(x, n, 10, r);
    /* NaN, infinities, -0, a tie that stays (1 + 2^-8 -> 1), a tie that rounds up, the largest
     * float (to infinity); no subnormals, which the CPU flushes and a GPU may not */
    static const uint32_t special[] = {0x7fc00001u, 0x7f800000u, 0xff800000u, 0x80000000u,
                                       0x3f808000u, 0x3f818000u, 0x7f7fffffu};
    for (size_t i = 0; i < sizeof special / sizeof *special && i < n; i++)
        memcpy(&x[i], &special[i], sizeof *x);
    op_output(d, TB_DST, "dst", BUF_BF16, n);
}

static void to_bf16_call(const gpt2_backend *be, const op_case *c, void *const *dev, float *s) {
    (void)s;
    be->ops->to_bf16(dev[TB_DST], dev[TB_SRC], (size_t)c->n[0]);
}

static void to_bf16_reference(const op_case *c, const op_data *d, double *const *got,
                              const char *tag) {
    size_t n = (size_t)c->n[0];
    double *want = doubles(n);
    for (size_t i = 0; i < n; i++) want[i] = ref_round_bf16(host_f(d, TB_SRC)[i]);
    check_near(what(tag, "dst"), got[TB_DST], want, n, 0, 0);
    free(want);
}

static const op_test to_bf16_test = {
    .ops = "to_bf16",
    .dims = {"n"},
    .make = to_bf16_make,
    .call = to_bf16_call,
    .reference = to_bf16_reference,
};

/* ---- the cases ---- */

/* attention_forward_kv's calls: new sequences (pos 0), decoding steps (n 1), chunks after a
 * past; a sequence left out (its cache is untouched); spans ending at the cache's length. */
static const gpt2_span kv_mixed[] = {{0, 0, 5}, {1, 3, 1}, {2, 7, 4}, {4, 11, 1}};
/* a prompt over two blocks of CPU_ATTN_ROWS queries, and a step after a past that long */
static const gpt2_span kv_long[] = {{0, 0, 70}, {1, 69, 1}, {2, 64, 8}};
/* decoding over a long cache: few rows, keys enough for the CUDA kernel to split them (one row
 * seeing none of the second half) */
static const gpt2_span kv_decode[] = {{0, 300, 1}, {1, 20, 1}, {2, 299, 1}, {3, 260, 2}};
#define SPANS(s) .spans = s, .nspans = (int)(sizeof s / sizeof *s)

/* Tolerances are another backend's against the CPU's (the CPU's against the reference are the
 * op test's); 0 and 0: exactly. Shapes with heads of 32 or 64 run on the CUDA backend too. */
const op_case op_cases[] = {
    {.test = &memory_test, .n = {1001}},
    {.test = &embed_test, .n = {2, 4, 5, 3}, .atol = 1e-6, .rtol = 1e-6},
    {.test = &embed_test, .n = {3, 7, 96, 9}, .atol = 1e-6, .rtol = 1e-6},
    {.test = &layernorm_test, .n = {7, 5}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &layernorm_test, .n = {130, 6}, .atol = 1e-5, .rtol = 1e-5}, /* more rows than CPU_LN_BLOCKS */
    {.test = &layernorm_test, .n = {14, 96}, .atol = 1e-5, .rtol = 1e-5},
    /* the parameters' gradients over several chunks of rows, the last part full (the CUDA
     * backend's COLUMN_CHUNK_ROWS, 256) */
    {.test = &layernorm_test, .n = {600, 3}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &residual_layernorm_test, .n = {7, 5}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &residual_layernorm_test, .n = {19, 96}, .atol = 1e-5, .rtol = 1e-5},
    /* few rows: the generation kernel (odd OC); more: the GEMM library */
    {.test = &matmul_test, .n = {5, 7, 9}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_test, .n = {13, 7, 10}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_test, .n = {37, 16, 24}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_test, .n = {600, 3, 5}, .atol = 1e-5, .rtol = 1e-5}, /* the bias over chunks */
    /* fused with GELU: OC a multiple of 8 (cuBLASLt's epilogue), and not (the fallback) */
    {.test = &matmul_gelu_test, .n = {13, 7, 32}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_gelu_test, .n = {13, 16, 24}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_gelu_test, .n = {5, 7, 9}, .atol = 1e-5, .rtol = 1e-5},
    /* the backward through the GELU: C (the GELU's width) a multiple of 8, and not */
    {.test = &matmul_dgelu_test, .n = {13, 32, 7}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_dgelu_test, .n = {13, 24, 16}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_dgelu_test, .n = {5, 9, 7}, .atol = 1e-5, .rtol = 1e-5},
    /* bf16: few rows, the kernel reading bf16 weights (even C); an odd C, the GEMM route; that
     * kernel where bf16 is emulated, oneDNN's where native; the GEMM route */
    {.test = &matmul_test, .n = {5, 8, 9}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_test, .n = {5, 7, 9}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_test, .n = {13, 10, 7}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_test, .n = {37, 64, 48}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    /* the rows contracts; the tails of the kernels (70 = 64 + 6 inputs; 37 = 9 x 4 + 1 outputs) */
    {.test = &rows_test, .n = {64, 37}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &rows_test, .n = {64, 37}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &rows_test, .n = {70, 16}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &rows_test, .n = {70, 16}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    /* an odd width in bf16: no pairs for the few-rows kernel, the rowwise product instead */
    {.test = &rows_test, .n = {35, 16}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    /* the lanes only with groups of 4 and 3 weight rows; a tail of inputs and a short last
     * group; an odd C (bf16 through rounded fp32) */
    {.test = &rowwise_test, .n = {48, 24}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &rowwise_test, .n = {48, 24}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &rowwise_test, .n = {70, 37}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &rowwise_test, .n = {70, 37}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &rowwise_test, .n = {35, 10}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &rowwise_test, .n = {35, 10}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {2, 5, 8, 2}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 7, 6, 3}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 70, 4, 2}, .atol = 1e-5, .rtol = 1e-5}, /* two blocks of CPU_ATTN_ROWS */
    {.test = &attention_test, .n = {1, 9, 64, 2}, .atol = 1e-5, .rtol = 1e-5}, /* heads of 32 */
    {.test = &attention_test, .n = {2, 5, 64, 1}, .atol = 1e-5, .rtol = 1e-5}, /* heads of 64 */
    /* shapes the CUDA kernels run (heads of 32 to 128): 140 query rows over 18 blocks of 8
     * warps, the last one part full; the largest head */
    {.test = &attention_test, .n = {1, 70, 64, 2}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 12, 128, 1}, .atol = 1e-5, .rtol = 1e-5},
    /* the CUDA kernels' tiles of 32 queries and 32 keys: several tiles, the last part full (68
     * = 2 x 32 + 4), over batches and heads; heads of 32 (45 = 32 + 13), 96 (exactly two tiles)
     * and 128 (77); a longer one (200: 7 tiles, the causal skip of up to 6 key tiles a block).
     * Small heads and few of them: the reference's finite differences run the whole attention
     * twice a point. */
    {.test = &attention_test, .n = {2, 68, 128, 2}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 45, 64, 2}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 64, 96, 1}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 77, 128, 1}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 200, 32, 1}, .atol = 1e-5, .rtol = 1e-5},
    /* a last tile of one row: its block has a key tile of one key */
    {.test = &attention_test, .n = {2, 33, 64, 2}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &kv_test, .n = {8, 2, 12}, SPANS(kv_mixed), .atol = 1e-5, .rtol = 1e-5},
    {.test = &kv_test, .n = {4, 2, 72}, SPANS(kv_long), .atol = 1e-5, .rtol = 1e-5},
    {.test = &kv_test, .n = {64, 2, 12}, SPANS(kv_mixed), .atol = 1e-5, .rtol = 1e-5}, /* heads of 32 */
    {.test = &kv_test, .n = {64, 2, 72}, SPANS(kv_long), .atol = 1e-5, .rtol = 1e-5},
    {.test = &kv_test, .n = {64, 2, 320}, SPANS(kv_decode), .atol = 1e-5, .rtol = 1e-5},
    /* the CPU's tanh is a fast one: another backend's accurate one differs by the CPU's error */
    {.test = &gelu_test, .n = {257}, .atol = 2e-6, .rtol = 2e-5},
    {.test = &gelu_test, .n = {1001}, .atol = 2e-6, .rtol = 2e-5},
    {.test = &residual_test, .n = {1001}},
    {.test = &classifier_test, .n = {6, 5, 11, 16}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &classifier_test, .n = {6, 5, 11, 16}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    /* several chunks of CPU_CLASSIFIER_ROWS */
    {.test = &classifier_test, .n = {600, 3, 7, 8}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &classifier_test, .n = {600, 3, 7, 8}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &classifier_test, .n = {5, 32, 50, 64}, .atol = 1e-5, .rtol = 1e-5},
    /* few rows (the generation kernel) and more (the GEMM library), fp32 and bf16 */
    {.test = &logits_test, .n = {3, 7, 16}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &logits_test, .n = {3, 8, 16}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &logits_test, .n = {13, 7, 24}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &logits_test, .n = {13, 8, 24}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    /* bf16 activations (a GPU's storage in bf16: the inputs rounded to bf16 for every backend,
     * test_ops.c): every op that reads or writes them, in its type */
    {.test = &embed_test, .n = {3, 7, 96, 9}, .bf16 = 1, .atol = 1e-6, .rtol = 1e-6},
    {.test = &layernorm_test, .n = {14, 96}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &layernorm_test, .n = {600, 3}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    /* (the sum rounded to bf16 before it is normalized: its rounding times rstd times w) */
    {.test = &residual_layernorm_test, .n = {19, 96}, .bf16 = 1, .atol = 1e-2, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 70, 64, 2}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &attention_test, .n = {1, 12, 128, 1}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &kv_test, .n = {64, 2, 12}, SPANS(kv_mixed), .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &kv_test, .n = {64, 2, 320}, SPANS(kv_decode), .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &gelu_test, .n = {1001}, .bf16 = 1, .atol = 2e-6, .rtol = 2e-5},
    {.test = &residual_test, .n = {1001}, .bf16 = 1},
    {.test = &matmul_test, .n = {37, 16, 24}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &matmul_test, .n = {600, 3, 5}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    /* more rows than the GPU kernel's threads; fewer */
    {.test = &loss_sum_test, .n = {1001}, .atol = 1e-6, .rtol = 1e-6},
    {.test = &loss_sum_test, .n = {7}, .atol = 1e-6, .rtol = 1e-6},
    {.test = &sum_squares_test, .n = {3000001, 1}},
    {.test = &sum_squares_test, .n = {1001, 0}, .rtol = 1e-12},
    {.test = &adamw_test, .n = {1000}, .atol = 1e-6, .rtol = 1e-6},
    {.test = &adamw_test, .n = {5003}, .atol = 1e-6, .rtol = 1e-6},
    {.test = &to_bf16_test, .n = {4099}},
    /* logits_forward's rows contract: the few-rows kernel (even C), an odd C in bf16 (the
     * rowwise product). (At the end: a case's inputs come from its index, so the cases before
     * keep theirs.) */
    {.test = &logits_rows_test, .n = {64, 40}, .atol = 1e-5, .rtol = 1e-5},
    {.test = &logits_rows_test, .n = {64, 40}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
    {.test = &logits_rows_test, .n = {35, 16}, .bf16 = 1, .atol = 1e-5, .rtol = 1e-5},
};
const int op_ncases = (int)(sizeof op_cases / sizeof *op_cases);
