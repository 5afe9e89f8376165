/* Every CPU op against a plain double-precision reference: the forward against the reference's
 * value, the backward against the reference's gradient by central finite differences (of
 * L = sum(out * R) for a fixed random R). Sizes are small and odd on purpose. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/backend.h"
#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "util/rng.h"

/* The CPU's activations are floats: the kernels take them as gpt2_act. */
#define ACT(p) ((gpt2_act *)(p))

static rng r;

static void fill(float *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rng_normal(&r));
}

/* max |a - b| / (atol + rtol * |b|) <= 1 */
static int close_to(const float *a, const double *b, size_t n, double atol, double rtol,
                    const char *what) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (!(e <= worst)) worst = e, at = i;
    }
    if (worst > 1.0 || isnan(worst))
        fprintf(stderr, "%s: element %zu is %.8g, reference %.8g\n", what, at, a[at], b[at]);
    return worst <= 1.0;
}

/* A reference forward: packed inputs x[nx] -> outputs y[ny]. */
typedef void (*ref_fn)(const double *x, double *y, const void *ctx);

/* dL/dx by central differences, L = sum(y * R). */
static void numeric_grad(ref_fn f, const void *ctx, const double *x0, size_t nx, size_t ny,
                         const double *R, double *g) {
    double *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
    memcpy(x, x0, nx * sizeof *x);
    for (size_t i = 0; i < nx; i++) {
        double h = 1e-6 * (1 + fabs(x0[i])), lp = 0, lm = 0;
        x[i] = x0[i] + h;
        f(x, y, ctx);
        for (size_t j = 0; j < ny; j++) lp += y[j] * R[j];
        x[i] = x0[i] - h;
        f(x, y, ctx);
        for (size_t j = 0; j < ny; j++) lm += y[j] * R[j];
        x[i] = x0[i];
        g[i] = (lp - lm) / (2 * h);
    }
    free(x);
    free(y);
}

static double *to_double(const float *a, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

/* ---- layernorm: x = [inp (N*C) | w (C) | b (C)] ---- */
typedef struct { int N, C; } nc_ctx;

static void ref_layernorm(const double *x, double *y, const void *vctx) {
    const nc_ctx *c = vctx;
    const double *w = x + c->N * c->C, *b = w + c->C;
    for (int n = 0; n < c->N; n++) {
        const double *row = x + n * c->C;
        double m = 0, v = 0;
        for (int i = 0; i < c->C; i++) m += row[i];
        m /= c->C;
        for (int i = 0; i < c->C; i++) v += (row[i] - m) * (row[i] - m);
        v /= c->C;
        for (int i = 0; i < c->C; i++) y[n * c->C + i] = (row[i] - m) / sqrt(v + 1e-5) * w[i] + b[i];
    }
}

static void test_layernorm(int N, int C) {
    nc_ctx ctx = {N, C};
    size_t nx = (size_t)N * C + 2 * C, ny = (size_t)N * C;
    float *x = malloc(nx * 4), *out = malloc(ny * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4);
    float *R = malloc(ny * 4), *dx = calloc(nx, 4), *scratch = malloc((size_t)CPU_LN_BLOCKS * 2 * C * 4);
    fill(x, nx, 1.0);
    fill(R, ny, 1.0);
    for (int i = 0; i < N * C; i++) x[i] += 0.5f; /* a non-zero mean */
    double *xd = to_double(x, nx), *Rd = to_double(R, ny), *yd = malloc(ny * 8), *g = malloc(nx * 8);
    ref_layernorm(xd, yd, &ctx);
    cpu_layernorm_forward(ACT(out), mean, rstd, ACT(x), x + N * C, x + N * C + C, N, C);
    CHECK(close_to(out, yd, ny, 1e-5, 1e-5, "layernorm forward"));
    /* the backward adds to dinp, dw and db: start them at 1 and subtract it afterwards */
    for (size_t i = 0; i < nx; i++) dx[i] = 1.0f;
    cpu_layernorm_backward(ACT(dx), dx + N * C, dx + N * C + C, ACT(R), ACT(x), x + N * C, mean, rstd, N, C, scratch);
    for (size_t i = 0; i < nx; i++) dx[i] -= 1.0f;
    numeric_grad(ref_layernorm, &ctx, xd, nx, ny, Rd, g);
    CHECK(close_to(dx, g, nx, 1e-4, 1e-4, "layernorm backward"));
    free(x), free(out), free(mean), free(rstd), free(R), free(dx), free(scratch);
    free(xd), free(Rd), free(yd), free(g);
}

/* ---- matmul: x = [inp (N*C) | w (OC*C) | bias (OC)] ---- */
typedef struct { int N, C, OC; } mm_ctx;

static void ref_matmul(const double *x, double *y, const void *vctx) {
    const mm_ctx *c = vctx;
    const double *w = x + c->N * c->C, *b = w + c->OC * c->C;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = b[o];
            for (int i = 0; i < c->C; i++) s += x[n * c->C + i] * w[o * c->C + i];
            y[n * c->OC + o] = s;
        }
}

static void test_matmul(int N, int C, int OC) {
    mm_ctx ctx = {N, C, OC};
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nx = nin + nw + OC, ny = (size_t)N * OC;
    float *x = malloc(nx * 4), *out = malloc(ny * 4), *R = malloc(ny * 4), *dx = malloc(nx * 4);
    fill(x, nx, 1.0);
    fill(R, ny, 1.0);
    double *xd = to_double(x, nx), *Rd = to_double(R, ny), *yd = malloc(ny * 8), *g = malloc(nx * 8);
    ref_matmul(xd, yd, &ctx);
    float *scratch = malloc(cpu_matmul_scratch_floats(N, C, OC) * 4);
    cpu_matmul_forward(ACT(out), ACT(x), x + nin, NULL, x + nin + nw, N, C, OC, scratch);
    CHECK(close_to(out, yd, ny, 1e-5, 1e-5, "matmul forward"));
    for (size_t i = 0; i < nx; i++) dx[i] = 1.0f;
    cpu_matmul_backward(ACT(dx), dx + nin, dx + nin + nw, ACT(R), ACT(x), x + nin, NULL, N, C, OC, scratch);
    for (size_t i = nin; i < nx; i++) dx[i] -= 1.0f; /* dw, db accumulate; dinp is overwritten */
    numeric_grad(ref_matmul, &ctx, xd, nx, ny, Rd, g);
    CHECK(close_to(dx, g, nx, 1e-4, 1e-4, "matmul backward"));
    free(x), free(out), free(R), free(dx), free(xd), free(Rd), free(yd), free(g), free(scratch);
}

static void round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = cpu_bf16_to_float(cpu_bf16_round(x[i]));
}

/* bf16 matmul: its products must be exactly "inputs rounded to bf16, then accumulated in fp32",
 * so against the double reference on rounded inputs the fp32 tolerance holds; against the fp32
 * op (unrounded inputs) the error is bf16's (8 bits of mantissa). */
/* A row's product is the same bits however many rows share the call (up to the few-rows
 * limit: generation, and a server's batch of requests), fp32 and bf16. */
static void test_matmul_rows_independent(int C, int OC) {
    enum { ROWS = 8 };
    size_t nw = (size_t)OC * C;
    float *x = malloc((size_t)ROWS * C * 4), *w = malloc(nw * 4), *b = malloc(OC * 4);
    float *all = malloc((size_t)ROWS * OC * 4), *one = malloc(OC * 4);
    float *scratch = malloc(cpu_matmul_scratch_floats(ROWS, C, OC) * 4);
    gpt2_bf16 *w16 = malloc(nw * 2);
    fill(x, (size_t)ROWS * C, 1.0), fill(w, nw, 1.0), fill(b, OC, 1.0);
    cpu_to_bf16(w16, w, nw);
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (int n = 1; n <= ROWS; n++) {
            cpu_matmul_forward(ACT(all), ACT(x), w, bf16 ? w16 : NULL, b, n, C, OC, scratch);
            for (int m = 0; m < n; m++) {
                cpu_matmul_forward(ACT(one), ACT(x + (size_t)m * C), w, bf16 ? w16 : NULL, b, 1, C,
                                   OC, scratch);
                CHECK(memcmp(one, all + (size_t)m * OC, OC * 4) == 0);
            }
        }
    free(x), free(w), free(b), free(all), free(one), free(scratch), free(w16);
}

/* matmul_forward_rowwise: the values of the product (fp32; bf16 on rounded inputs), and every row
 * the same bits alone, at the start or in the middle of calls of many sizes (a server's prompts
 * share a call; tiles of 4 rows and a tail, weight groups and a short last group). */
static void test_matmul_forward_rowwise(int C, int OC) {
    enum { MAXN = 70 };
    mm_ctx ctx = {MAXN, C, OC};
    size_t nin = (size_t)MAXN * C, nw = (size_t)OC * C, nx = nin + nw + OC, ny = (size_t)MAXN * OC;
    float *x = malloc(nx * 4), *xr = malloc(nx * 4), *all = malloc(ny * 4), *one = malloc(OC * 4);
    float *scratch = malloc(cpu_matmul_scratch_floats(MAXN, C, OC) * 4);
    gpt2_bf16 *w16 = malloc(nw * 2);
    fill(x, nx, 1.0);
    cpu_to_bf16(w16, x + nin, nw);
    memcpy(xr, x, nx * 4);
    round_bf16(xr, nin + nw);
    const float *w = x + nin, *b = x + nin + nw;
    for (int bf16 = 0; bf16 < 2; bf16++) {
        double *xd = to_double(bf16 ? xr : x, nx), *yd = malloc(ny * 8);
        ref_matmul(xd, yd, &ctx);
        cpu_matmul_forward_rowwise(ACT(all), ACT(x), w, bf16 ? w16 : NULL, b, MAXN, C, OC, scratch);
        CHECK(close_to(all, yd, ny, 1e-5, 1e-5, bf16 ? "matmul_forward_rowwise bf16 (rounded inputs)"
                                                    : "matmul_forward_rowwise"));
        static const int sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64};
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
            for (int first = 0; first + sizes[k] <= MAXN; first += sizes[k] + 3) {
                int n = sizes[k];
                cpu_matmul_forward_rowwise(ACT(all), ACT(x + (size_t)first * C), w, bf16 ? w16 : NULL, b,
                                        n, C, OC, scratch);
                for (int m = 0; m < n; m++) {
                    cpu_matmul_forward_rowwise(ACT(one), ACT(x + (size_t)(first + m) * C), w,
                                            bf16 ? w16 : NULL, b, 1, C, OC, scratch);
                    CHECK(memcmp(one, all + (size_t)m * OC, OC * 4) == 0);
                }
            }
        free(xd), free(yd);
    }
    free(x), free(xr), free(all), free(one), free(scratch), free(w16);
}

static void test_matmul_bf16(int N, int C, int OC) {
    mm_ctx ctx = {N, C, OC};
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nx = nin + nw + OC, ny = (size_t)N * OC;
    float *x = malloc(nx * 4), *out = malloc(ny * 4), *out32 = malloc(ny * 4), *R = malloc(ny * 4);
    float *dx = malloc(nx * 4), *dx32 = malloc(nx * 4), *xr = malloc(nx * 4), *Rr = malloc(ny * 4);
    float *scratch = malloc(cpu_matmul_scratch_floats(N, C, OC) * 4);
    gpt2_bf16 *w16 = malloc(nw * 2);
    fill(x, nx, 1.0);
    fill(R, ny, 1.0);
    cpu_to_bf16(w16, x + nin, nw);
    memcpy(xr, x, nx * 4), memcpy(Rr, R, ny * 4);
    round_bf16(xr, nin + nw), round_bf16(Rr, ny); /* the bias stays fp32 */
    double *xd = to_double(xr, nx), *yd = malloc(ny * 8), *g = calloc(nx, 8);
    ref_matmul(xd, yd, &ctx);
    cpu_matmul_forward(ACT(out), ACT(x), x + nin, w16, x + nin + nw, N, C, OC, scratch);
    CHECK(close_to(out, yd, ny, 1e-5, 1e-5, "bf16 matmul forward (rounded inputs)"));
    cpu_matmul_forward(ACT(out32), ACT(x), x + nin, NULL, x + nin + nw, N, C, OC, scratch);
    double *o32 = to_double(out32, ny);
    CHECK(close_to(out, o32, ny, 0.02 * sqrt(C), 0.01, "bf16 matmul forward vs fp32"));
    /* backward: dinp = Rr @ wr, dw = Rr^T @ inpr, db = column sums of R (fp32) */
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++)
            for (int o = 0; o < OC; o++) g[n * C + i] += xd[nin + o * C + i] * Rr[n * OC + o];
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < C; i++)
            for (int n = 0; n < N; n++) g[nin + o * C + i] += (double)Rr[n * OC + o] * xd[n * C + i];
    for (int o = 0; o < OC; o++)
        for (int n = 0; n < N; n++) g[nin + nw + o] += R[n * OC + o];
    for (size_t i = 0; i < nx; i++) dx[i] = 1.0f, dx32[i] = 1.0f;
    cpu_matmul_backward(ACT(dx), dx + nin, dx + nin + nw, ACT(R), ACT(x), x + nin, w16, N, C, OC, scratch);
    cpu_matmul_backward(ACT(dx32), dx32 + nin, dx32 + nin + nw, ACT(R), ACT(x), x + nin, NULL, N, C, OC, scratch);
    for (size_t i = nin; i < nx; i++) dx[i] -= 1.0f, dx32[i] -= 1.0f;
    CHECK(close_to(dx, g, nx, 1e-4, 1e-4, "bf16 matmul backward (rounded inputs)"));
    double *d32 = to_double(dx32, nx);
    CHECK(close_to(dx, d32, nx, 0.02 * sqrt(N > OC ? N : OC), 0.01, "bf16 matmul backward vs fp32"));
    free(x), free(out), free(out32), free(R), free(dx), free(dx32), free(xr), free(Rr);
    free(scratch), free(w16), free(xd), free(yd), free(g), free(o32), free(d32);
}

/* The AVX512_BF16 conversion (where the CPU has it) and the C one give the same bits; both round
 * to nearest even, keep NaN, flush subnormals. */
static void test_bf16_rounding(void) {
    CHECK(cpu_bf16_round(1.0f) == 0x3f80);
    uint32_t cases[][2] = {
        {0x3f808000u, 0x3f80}, /* a tie, rounds to the even 0x3f80 */
        {0x3f818000u, 0x3f82}, /* a tie, rounds up to the even 0x3f82 */
        {0x3f808001u, 0x3f81}, /* above the tie */
        {0x7f7fffffu, 0x7f80}, /* the largest float rounds to infinity */
        {0xff800000u, 0xff80}, /* -inf */
        {0x7fc00001u, 0x7fc0}, /* a NaN stays a NaN */
        {0x7f800001u, 0x7fc0}, /* a signalling NaN comes out quiet, never infinity */
        {0x00000001u, 0x0000}, /* subnormal: flushed */
        {0x807fffffu, 0x8000}, /* negative subnormal: -0 */
    };
    enum { NC = sizeof cases / sizeof *cases, NR = 4099 };
    float in[NC + NR];
    for (int i = 0; i < NC; i++) {
        memcpy(&in[i], &cases[i][0], 4);
        if (cpu_bf16_round(in[i]) != cases[i][1])
            fprintf(stderr, "bf16 of 0x%08x: 0x%04x, want 0x%04x\n", cases[i][0],
                    cpu_bf16_round(in[i]), cases[i][1]);
        CHECK(cpu_bf16_round(in[i]) == cases[i][1]);
    }
    for (int i = 0; i < NR; i++) {
        uint32_t u = (uint32_t)rng_next(&r);
        memcpy(&in[NC + i], &u, 4);
    }
    gpt2_bf16 fast[NC + NR], slow[NC + NR];
    cpu_to_bf16(fast, in, NC + NR);
    cpu_to_bf16_scalar(slow, in, NC + NR);
    int same = 1;
    for (int i = 0; i < NC + NR; i++) same &= fast[i] == slow[i];
    fprintf(stderr, "bf16 rounding: AVX512_BF16 path %s\n",
            cpu_bf16_instruction() ? "compared with the C one" : "not in use at this level");
    CHECK(same);
    /* the same rounding kept in fp32 (the emulated route), in place too, and widened back */
    float rounded[NC + NR], widened[NC + NR];
    cpu_round_bf16(rounded, in, NC + NR);
    cpu_from_bf16(widened, slow, NC + NR);
    CHECK(memcmp(rounded, widened, sizeof rounded) == 0);
    cpu_round_bf16(in, in, NC + NR);
    CHECK(memcmp(in, widened, sizeof in) == 0);
}

/* ---- attention: x = qkv (B*T*3C) -> out (B*T*C) ---- */
typedef struct { int B, T, C, NH; } att_ctx;

static void ref_attention(const double *x, double *y, const void *vctx) {
    const att_ctx *c = vctx;
    int hs = c->C / c->NH, C3 = 3 * c->C;
    double *p = malloc(c->T * sizeof *p);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < c->T; t++) {
                const double *q = x + (b * c->T + t) * C3 + h * hs;
                double maxv = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    const double *k = x + (b * c->T + u) * C3 + c->C + h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    p[u] = s / sqrt(hs);
                    if (p[u] > maxv) maxv = p[u];
                }
                for (int u = 0; u <= t; u++) sum += p[u] = exp(p[u] - maxv);
                double *o = y + (b * c->T + t) * c->C + h * hs;
                for (int i = 0; i < hs; i++) {
                    double s = 0;
                    for (int u = 0; u <= t; u++) s += p[u] / sum * x[(b * c->T + u) * C3 + 2 * c->C + h * hs + i];
                    o[i] = s;
                }
            }
    free(p);
}

static void test_attention(int B, int T, int C, int NH) {
    att_ctx ctx = {B, T, C, NH};
    size_t nx = (size_t)B * T * 3 * C, ny = (size_t)B * T * C;
    float *x = malloc(nx * 4), *out = malloc(ny * 4), *lse = malloc((size_t)B * NH * T * 4);
    float *R = malloc(ny * 4), *dx = malloc(nx * 4), *scratch = malloc(CPU_ATTN_SCRATCH(T) * 64 * 4);
    fill(x, nx, 1.0);
    fill(R, ny, 1.0);
    double *xd = to_double(x, nx), *Rd = to_double(R, ny), *yd = malloc(ny * 8), *g = malloc(nx * 8);
    ref_attention(xd, yd, &ctx);
    cpu_attention_forward(ACT(out), lse, ACT(x), B, T, C, NH, scratch);
    CHECK(close_to(out, yd, ny, 1e-5, 1e-5, "attention forward"));
    for (size_t i = 0; i < nx; i++) dx[i] = 7.0f; /* must be overwritten */
    cpu_attention_backward(ACT(dx), ACT(R), ACT(x), ACT(out), lse, B, T, C, NH, scratch);
    numeric_grad(ref_attention, &ctx, xd, nx, ny, Rd, g);
    CHECK(close_to(dx, g, nx, 1e-4, 1e-4, "attention backward"));
    free(x), free(out), free(lse), free(R), free(dx), free(scratch);
    free(xd), free(Rd), free(yd), free(g);
}

/* ---- gelu ---- */
static void ref_gelu(const double *x, double *y, const void *vctx) {
    size_t n = *(const size_t *)vctx;
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5 * x[i] * (1 + tanh(sqrt(2 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
}

static void test_gelu(size_t n) {
    float *x = malloc(n * 4), *out = malloc(n * 4), *R = malloc(n * 4), *dx = malloc(n * 4);
    fill(x, n, 3.0);
    fill(R, n, 1.0);
    double *xd = to_double(x, n), *Rd = to_double(R, n), *yd = malloc(n * 8), *g = malloc(n * 8);
    ref_gelu(xd, yd, &n);
    cpu_gelu_forward(ACT(out), ACT(x), n);
    CHECK(close_to(out, yd, n, 1e-6, 1e-5, "gelu forward"));
    cpu_gelu_backward(ACT(dx), ACT(x), ACT(R), n);
    numeric_grad(ref_gelu, &n, xd, n, n, Rd, g);
    CHECK(close_to(dx, g, n, 1e-5, 1e-4, "gelu backward"));
    free(x), free(out), free(R), free(dx), free(xd), free(Rd), free(yd), free(g);
}

/* ---- embedding: x = [wte (V*C) | wpe (T*C)] ---- */
typedef struct { int B, T, C, V; const int32_t *tokens; } emb_ctx;

static void ref_embed(const double *x, double *y, const void *vctx) {
    const emb_ctx *c = vctx;
    const double *wpe = x + c->V * c->C;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int i = 0; i < c->C; i++)
                y[(b * c->T + t) * c->C + i] = x[c->tokens[b * c->T + t] * c->C + i] + wpe[t * c->C + i];
}

static void test_embed(int B, int T, int C, int V) {
    int32_t tokens[64];
    for (int i = 0; i < B * T; i++) tokens[i] = (int32_t)(rng_next(&r) % 3); /* repeats on purpose */
    emb_ctx ctx = {B, T, C, V, tokens};
    size_t nx = (size_t)(V + T) * C, ny = (size_t)B * T * C;
    float *x = malloc(nx * 4), *out = malloc(ny * 4), *R = malloc(ny * 4), *dx = malloc(nx * 4);
    fill(x, nx, 1.0);
    fill(R, ny, 1.0);
    double *xd = to_double(x, nx), *Rd = to_double(R, ny), *yd = malloc(ny * 8), *g = malloc(nx * 8);
    ref_embed(xd, yd, &ctx);
    cpu_embed_forward(ACT(out), tokens, x, x + V * C, B, T, C);
    CHECK(close_to(out, yd, ny, 1e-6, 1e-6, "embedding forward"));
    for (size_t i = 0; i < nx; i++) dx[i] = 1.0f;
    cpu_embed_backward(dx, dx + V * C, ACT(R), tokens, B, T, C);
    for (size_t i = 0; i < nx; i++) dx[i] -= 1.0f;
    numeric_grad(ref_embed, &ctx, xd, nx, ny, Rd, g);
    CHECK(close_to(dx, g, nx, 1e-5, 1e-5, "embedding backward"));
    free(x), free(out), free(R), free(dx), free(xd), free(Rd), free(yd), free(g);
}

/* ---- classifier: x = [inp (N*C) | wte (Vp*C)] -> losses (N); only the first V columns count ---- */
typedef struct { int N, C, V, Vp; const int32_t *targets; } cls_ctx;

static void ref_classifier(const double *x, double *y, const void *vctx) {
    const cls_ctx *c = vctx;
    const double *wte = x + c->N * c->C;
    double *logits = malloc(c->V * sizeof *logits);
    for (int n = 0; n < c->N; n++) {
        double maxv = -INFINITY, sum = 0;
        for (int j = 0; j < c->V; j++) {
            double s = 0;
            for (int i = 0; i < c->C; i++) s += x[n * c->C + i] * wte[j * c->C + i];
            logits[j] = s;
            if (s > maxv) maxv = s;
        }
        for (int j = 0; j < c->V; j++) sum += exp(logits[j] - maxv);
        y[n] = log(sum) + maxv - logits[c->targets[n]];
    }
    free(logits);
}

static void test_classifier(int N, int C, int V, int Vp) {
    int32_t *targets = malloc(N * sizeof *targets);
    for (int i = 0; i < N; i++) targets[i] = (int32_t)(rng_next(&r) % (uint64_t)V);
    cls_ctx ctx = {N, C, V, Vp, targets};
    size_t nx = (size_t)(N + Vp) * C;
    float *x = malloc(nx * 4), *losses = malloc(N * 4), *dx = malloc(nx * 4);
    float *scratch = malloc(cpu_classifier_scratch_floats(C, Vp, 1) * 4);
    fill(x, nx, 1.0);
    /* padding rows of wte hold garbage here: the op must ignore their logits entirely */
    double *xd = to_double(x, nx), *yd = malloc(N * 8), *g = malloc(nx * 8), *R = malloc(N * 8);
    float dloss = 0.37f;
    for (int i = 0; i < N; i++) R[i] = dloss;
    ref_classifier(xd, yd, &ctx);
    cpu_classifier(losses, NULL, NULL, ACT(x), x + N * C, NULL, targets, N, C, V, Vp, 0, scratch);
    CHECK(close_to(losses, yd, N, 1e-5, 1e-5, "classifier loss (eval)"));
    for (size_t i = 0; i < nx; i++) dx[i] = 1.0f;
    cpu_classifier(losses, ACT(dx), dx + N * C, ACT(x), x + N * C, NULL, targets, N, C, V, Vp, dloss, scratch);
    CHECK(close_to(losses, yd, N, 1e-5, 1e-5, "classifier loss (train)"));
    for (size_t i = N * C; i < nx; i++) dx[i] -= 1.0f;
    numeric_grad(ref_classifier, &ctx, xd, nx, N, R, g);
    CHECK(close_to(dx, g, nx, 1e-4, 1e-4, "classifier backward"));
    /* bf16 against the fp32 op just checked */
    gpt2_bf16 *w16 = malloc((size_t)Vp * C * 2);
    float *losses16 = malloc(N * 4), *dx16 = malloc(nx * 4);
    cpu_to_bf16(w16, x + N * C, (size_t)Vp * C);
    for (size_t i = 0; i < nx; i++) dx16[i] = 1.0f;
    cpu_classifier(losses16, ACT(dx16), dx16 + N * C, ACT(x), x + N * C, w16, targets, N, C, V, Vp, dloss,
                   scratch);
    for (size_t i = N * C; i < nx; i++) dx16[i] -= 1.0f;
    double *l32 = to_double(losses, N), *d32 = to_double(dx, nx);
    CHECK(close_to(losses16, l32, N, 0.05, 0.01, "bf16 classifier loss vs fp32"));
    /* dwte sums N products, each off by ~2^-9 relative: the error grows as sqrt(N) */
    CHECK(close_to(dx16, d32, nx, 0.01 + 0.005 * sqrt(N), 0.02, "bf16 classifier backward vs fp32"));
    free(w16), free(losses16), free(dx16), free(l32), free(d32);
    free(targets), free(x), free(losses), free(dx), free(scratch), free(xd), free(yd), free(g), free(R);
}

/* ---- AdamW and the sum of squares against the formulas ---- */
static void test_adamw(void) {
    enum { n = 1000 };
    float p[n], g[n], m[n], v[n];
    double pd[n], md[n], vd[n], gd[n];
    fill(p, n, 1.0), fill(g, n, 1.0), fill(m, n, 0.1);
    for (int i = 0; i < n; i++) v[i] = 0.01f * (float)rng_uniform(&r), pd[i] = p[i], md[i] = m[i], vd[i] = v[i], gd[i] = g[i];
    double lr = 3e-4, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, scale = 0.5;
    double bc1 = 1 - pow(b1, 3), bc2 = 1 - pow(b2, 3);
    gpt2_bf16 p16[n];
    cpu_adamw(p, p16, g, m, v, n, lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)scale,
              bc1, bc2);
    for (int i = 0; i < n; i++) {
        double gr = gd[i] * scale;
        md[i] = b1 * md[i] + (1 - b1) * gr;
        vd[i] = b2 * vd[i] + (1 - b2) * gr * gr;
        pd[i] = pd[i] * (1 - lr * wd) - lr / bc1 * md[i] / (sqrt(vd[i]) / sqrt(bc2) + eps);
    }
    CHECK(close_to(p, pd, n, 1e-6, 1e-6, "adamw parameters"));
    CHECK(close_to(m, md, n, 1e-7, 1e-6, "adamw m"));
    CHECK(close_to(v, vd, n, 1e-9, 1e-6, "adamw v"));
    int zeroed = 1, copied = 1;
    for (int i = 0; i < n; i++) zeroed &= g[i] == 0.0f, copied &= p16[i] == cpu_bf16_round(p[i]);
    CHECK(zeroed); /* ready for the next step's accumulation */
    CHECK(copied); /* the bf16 copy of the updated parameters */
    static float big[3000001];
    double want = 0;
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) big[i] = (float)(i % 7) - 3.0f, want += big[i] * (double)big[i];
    double got;
    cpu_sum_squares(&got, big, sizeof big / sizeof *big);
    CHECK(got == want);
}

int main(void) {
    gpt2c_error err;
    gpt2_backend cpu;
    if (gpt2_backend_open(&cpu, "cpu", 0, &err) != 0) { /* GPT2C_CPU_ISA asks for more than this CPU has */
        fprintf(stderr, "skipped: %s\n", err.msg);
        return 77;
    }
    fprintf(stderr, "instruction set %s: %s, %s\n", cpu_isa_name(cpu_isa()),
            cpu.path[GPT2_FP32], cpu.path[GPT2_BF16]);
    rng_seed(&r, 42);
    test_layernorm(7, 5);
    test_layernorm(130, 6); /* more rows than CPU_LN_BLOCKS */
    test_matmul(5, 7, 9);  /* few rows: the generation kernel (odd OC) */
    test_matmul(13, 7, 10); /* the GEMM library */
    test_bf16_rounding();
    test_matmul_rows_independent(64, 37);
    test_matmul_rows_independent(70, 16); /* tails of both kernels */
    test_matmul_forward_rowwise(48, 24);  /* the lanes only, groups of 4 and 3 weight rows */
    test_matmul_forward_rowwise(70, 37);  /* a tail of inputs, a short last group */
    test_matmul_forward_rowwise(35, 10);  /* an odd C: bf16 through rounded fp32 */
    test_matmul_bf16(5, 8, 9);    /* few rows: the kernel that reads bf16 weights (even C) */
    test_matmul_bf16(5, 7, 9);    /* an odd C: the GEMM route */
    test_matmul_bf16(13, 10, 7);  /* that kernel where bf16 is emulated, oneDNN's where native */
    test_matmul_bf16(37, 64, 48); /* the GEMM route (rounded inputs, or oneDNN's bf16) */
    test_attention(2, 5, 8, 2);
    test_attention(1, 7, 6, 3);
    test_attention(1, 70, 4, 2); /* two blocks of CPU_ATTN_ROWS queries */
    test_gelu(257);
    test_embed(2, 4, 5, 3);
    test_classifier(6, 5, 11, 16);
    test_classifier(600, 3, 7, 8); /* several chunks of CPU_CLASSIFIER_ROWS */
    test_adamw();
    return check_done();
}
