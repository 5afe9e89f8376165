/* Every CUDA op against the CPU reference op on the same inputs (ops/ops.h semantics: forward
 * outputs, backward's overwritten and accumulated gradients). fp32 products run without TF32 so
 * that fp32 tolerances hold; bf16 products against the CPU's bf16 ones (both round the inputs to
 * nearest even and accumulate in fp32, so only the order of the sums differs).
 * Without a CUDA device it exits 77, which ctest reports as skipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/config.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cuda/cuda_kernels.h"
#include "util/rng.h"

/* Both backends store activations as floats for now: the kernels take them as gpt2_act. */
#define ACT(p) ((gpt2_act *)(p))

static rng r;

static float *randn(size_t n, double scale) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rng_normal(&r));
    return x;
}

static void *up(const void *host, size_t bytes) {
    void *d = cuda_alloc(bytes);
    cuda_upload(d, host, bytes);
    return d;
}

static float *down(const float *dev, size_t n) {
    float *h = malloc(n * sizeof *h);
    cuda_download(h, dev, n * sizeof *h);
    return h;
}

/* max |got - want| / (atol + rtol |want|) <= 1 */
static int near(const float *got, const float *want, size_t n, double atol, double rtol,
                 const char *what) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (!(e <= worst)) worst = e, at = i;
    }
    if (worst > 1.0 || isnan(worst))
        fprintf(stderr, "%s: element %zu is %.8g, CPU %.8g\n", what, at, got[at], want[at]);
    return worst <= 1.0;
}

/* The device result of a buffer against the host one, then both freed. */
static int same(float *dev, float *host, size_t n, double tol, const char *what) {
    float *got = down(dev, n);
    int ok = near(got, host, n, tol, tol, what);
    free(got);
    cuda_free(dev);
    free(host);
    return ok;
}

static void test_elementwise(void) {
    size_t n = 10007;
    float *x = randn(n, 3.0), *y = randn(n, 1.0), *out = malloc(n * 4);
    float *dx = up(x, n * 4), *dy = up(y, n * 4), *dout = cuda_alloc(n * 4);
    cpu_gelu_forward(ACT(out), ACT(x), n);
    cuda_gelu_forward(ACT(dout), ACT(dx), n);
    CHECK(same(dout, out, n, 1e-6, "gelu forward"));
    out = malloc(n * 4), dout = cuda_alloc(n * 4);
    cpu_gelu_backward(ACT(out), ACT(x), ACT(y), n);
    cuda_gelu_backward(ACT(dout), ACT(dx), ACT(dy), n);
    CHECK(same(dout, out, n, 1e-6, "gelu backward"));
    out = malloc(n * 4), dout = cuda_alloc(n * 4);
    cpu_residual_forward(ACT(out), ACT(x), ACT(y), n);
    cuda_residual_forward(ACT(dout), ACT(dx), ACT(dy), n);
    CHECK(same(dout, out, n, 0, "residual"));
    double want = cpu_sum_squares(x, n), got = cuda_sum_squares(dx, n);
    CHECK(fabs(got - want) <= 1e-12 * want);
    cuda_free(dx), cuda_free(dy), free(x), free(y);
}

static void test_to_bf16(void) {
    size_t n = 4099;
    float *x = randn(n, 10.0);
    x[0] = NAN, x[1] = INFINITY, x[2] = -0.0f, x[3] = 1.00390625f; /* a tie: stays 1.0 */
    gpt2_bf16 *want = malloc(n * 2), *got = malloc(n * 2);
    cpu_to_bf16_scalar(want, x, n);
    float *dx = up(x, n * 4);
    gpt2_bf16 *dh = cuda_alloc(n * 2);
    cuda_to_bf16(dh, dx, n);
    cuda_download(got, dh, n * 2);
    /* normal values and the specials agree bit for bit (the CPU flushes subnormals, which these
     * inputs do not have); a NaN is a NaN on both */
    int ok = (got[0] & 0x7fff) > 0x7f80;
    for (size_t i = 1; i < n; i++) ok &= got[i] == want[i];
    CHECK(ok);
    cuda_free(dx), cuda_free(dh), free(x), free(want), free(got);
}

static void test_embed_layernorm(int B, int T, int C, int V) {
    size_t N = (size_t)B * T, NC = N * C;
    int32_t *tok = malloc(N * 4);
    for (size_t i = 0; i < N; i++) tok[i] = (int32_t)(rng_next(&r) % 5); /* repeats on purpose */
    float *wte = randn((size_t)V * C, 1), *wpe = randn((size_t)T * C, 1), *out = malloc(NC * 4);
    int32_t *dtok = up(tok, N * 4);
    float *dwte = up(wte, (size_t)V * C * 4), *dwpe = up(wpe, (size_t)T * C * 4);
    float *dout = cuda_alloc(NC * 4);
    cpu_embed_forward(ACT(out), tok, wte, wpe, B, T, C);
    cuda_embed_forward(ACT(dout), dtok, dwte, dwpe, B, T, C);
    CHECK(same(dout, out, NC, 1e-6, "embedding forward"));
    float *grad = randn(NC, 1), *dgrad = up(grad, NC * 4);
    cuda_memset0(dwte, (size_t)V * C * 4), cuda_memset0(dwpe, (size_t)T * C * 4);
    memset(wte, 0, (size_t)V * C * 4), memset(wpe, 0, (size_t)T * C * 4);
    cpu_embed_backward(wte, wpe, ACT(grad), tok, B, T, C);
    cuda_embed_backward(dwte, dwpe, ACT(dgrad), dtok, B, T, C);
    CHECK(same(dwte, wte, (size_t)V * C, 1e-5, "embedding backward dwte"));
    CHECK(same(dwpe, wpe, (size_t)T * C, 1e-5, "embedding backward dwpe"));

    /* layernorm: forward, then a backward that adds to dinp, dw and db (started at 1) */
    float *x = randn(NC, 1), *w = randn(C, 1), *b = randn(C, 1);
    float *mean = malloc(N * 4), *rstd = malloc(N * 4), *y = malloc(NC * 4);
    float *dxx = up(x, NC * 4), *dw_ = up(w, C * 4), *db_ = up(b, C * 4);
    float *dmean = cuda_alloc(N * 4), *drstd = cuda_alloc(N * 4), *dy = cuda_alloc(NC * 4);
    cpu_layernorm_forward(ACT(y), mean, rstd, ACT(x), w, b, (int)N, C);
    cuda_layernorm_forward(ACT(dy), dmean, drstd, ACT(dxx), dw_, db_, (int)N, C);
    float *ys = down(dy, NC), *ms = down(dmean, N), *rs = down(drstd, N);
    CHECK(near(ys, y, NC, 1e-5, 1e-5, "layernorm forward"));
    CHECK(near(ms, mean, N, 1e-6, 1e-5, "layernorm mean"));
    CHECK(near(rs, rstd, N, 1e-6, 1e-5, "layernorm rstd"));
    float *ones = malloc(NC * 4);
    for (size_t i = 0; i < NC; i++) ones[i] = 1.0f;
    float *dinp = malloc(NC * 4), *gw = malloc(C * 4), *gb = malloc(C * 4);
    memcpy(dinp, ones, NC * 4), memcpy(gw, ones, C * 4), memcpy(gb, ones, C * 4);
    float *ddinp = up(ones, NC * 4), *dgw = up(ones, C * 4), *dgb = up(ones, C * 4);
    float *scratch = malloc((size_t)CPU_LN_BLOCKS * 2 * C * 4);
    cpu_layernorm_backward(ACT(dinp), gw, gb, ACT(grad), ACT(x), w, mean, rstd, (int)N, C, scratch);
    cuda_layernorm_backward(ACT(ddinp), dgw, dgb, ACT(dgrad), ACT(dxx), dw_, dmean, drstd, (int)N, C, NULL);
    CHECK(same(ddinp, dinp, NC, 1e-5, "layernorm backward dinp"));
    CHECK(same(dgw, gw, C, 1e-4, "layernorm backward dw"));
    CHECK(same(dgb, gb, C, 1e-4, "layernorm backward db"));
    cuda_free(dtok), cuda_free(dgrad), cuda_free(dxx);
    cuda_free(dw_), cuda_free(db_), cuda_free(dmean), cuda_free(drstd), cuda_free(dy);
    free(tok), free(grad), free(x), free(w), free(b), free(mean), free(rstd);
    free(y), free(ys), free(ms), free(rs), free(ones), free(scratch);
}

static void test_matmul(int N, int C, int OC, int bf16) {
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nout = (size_t)N * OC;
    float *x = randn(nin, 1), *w = randn(nw, 1), *bias = randn(OC, 1), *g = randn(nout, 1);
    gpt2_bf16 *w16 = malloc(nw * 2);
    cpu_to_bf16(w16, w, nw);
    float *scratch = malloc(cpu_matmul_scratch_floats(N, C, OC) * 4);
    float *dscratch = cuda_alloc(cuda_scratch_floats(1, N, OC > C ? OC : C, 1, 1, 1) * 4);
    float *dx = up(x, nin * 4), *dwt = up(w, nw * 4), *dbias = up(bias, OC * 4), *dg = up(g, nout * 4);
    gpt2_bf16 *dw16 = up(w16, nw * 2);
    const char *tag = bf16 ? "bf16 matmul" : "matmul";
    float *out = malloc(nout * 4), *dout = cuda_alloc(nout * 4);
    cpu_matmul_forward(ACT(out), ACT(x), w, bf16 ? w16 : NULL, bias, N, C, OC, scratch);
    cuda_matmul_forward(ACT(dout), ACT(dx), dwt, bf16 ? dw16 : NULL, dbias, N, C, OC, dscratch);
    CHECK(same(dout, out, nout, 1e-5, tag));
    /* backward: dinp overwritten, dw and dbias added to (from 1) */
    float *dinp = malloc(nin * 4), *gw = malloc(nw * 4), *gb = malloc(OC * 4);
    for (size_t i = 0; i < nw; i++) gw[i] = 1.0f;
    for (int i = 0; i < OC; i++) gb[i] = 1.0f;
    float *ddinp = cuda_alloc(nin * 4), *dgw = up(gw, nw * 4), *dgb = up(gb, OC * 4);
    cpu_matmul_backward(ACT(dinp), gw, gb, ACT(g), ACT(x), w, bf16 ? w16 : NULL, N, C, OC, scratch);
    cuda_matmul_backward(ACT(ddinp), dgw, dgb, ACT(dg), ACT(dx), dwt, bf16 ? dw16 : NULL, N, C, OC, dscratch);
    CHECK(same(ddinp, dinp, nin, 1e-5, "matmul backward dinp"));
    CHECK(same(dgw, gw, nw, 1e-5, "matmul backward dw"));
    CHECK(same(dgb, gb, OC, 1e-5, "matmul backward dbias"));
    cuda_free(dx), cuda_free(dwt), cuda_free(dbias), cuda_free(dg), cuda_free(dw16), cuda_free(dscratch);
    free(x), free(w), free(bias), free(g), free(w16), free(scratch);
}

static void test_attention(int B, int T, int C, int NH) {
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
    float *qkv = randn(nq, 1), *g = randn(no, 1);
    float *out = malloc(no * 4), *lse = malloc(nl * 4);
    float *scratch = malloc(CPU_ATTN_SCRATCH(T) * 64 * 4);
    float *dqkv_ = up(qkv, nq * 4), *dg = up(g, no * 4), *dout = cuda_alloc(no * 4), *dlse = cuda_alloc(nl * 4);
    cpu_attention_forward(ACT(out), lse, ACT(qkv), B, T, C, NH, scratch);
    cuda_attention_forward(ACT(dout), dlse, ACT(dqkv_), B, T, C, NH, NULL);
    float *o = down(dout, no), *l = down(dlse, nl);
    CHECK(near(o, out, no, 1e-5, 1e-5, "attention forward"));
    CHECK(near(l, lse, nl, 1e-5, 1e-5, "attention log-sum-exp"));
    float *dq = malloc(nq * 4), *ddq = cuda_alloc(nq * 4);
    for (size_t i = 0; i < nq; i++) dq[i] = 7.0f; /* must be overwritten */
    cuda_upload(ddq, dq, nq * 4);
    cpu_attention_backward(ACT(dq), ACT(g), ACT(qkv), ACT(out), lse, B, T, C, NH, scratch);
    cuda_attention_backward(ACT(ddq), ACT(dg), ACT(dqkv_), ACT(dout), dlse, B, T, C, NH, NULL);
    CHECK(same(ddq, dq, nq, 1e-4, "attention backward"));
    cuda_free(dqkv_), cuda_free(dg), cuda_free(dout), cuda_free(dlse);
    free(qkv), free(g), free(out), free(lse), free(scratch), free(o), free(l);
}

/* Generation: a prefill of n0 tokens then one more, for 2 sequences, against the CPU's. Only the
 * outputs are compared (each backend lays out its cache as it likes). */
static void test_attention_kv(int C, int NH) {
    int nseq = 2, n0 = 5, len = 8;
    size_t cache = (size_t)nseq * len * C;
    float *kc = calloc(cache, 4), *vc = calloc(cache, 4), *dkc = cuda_alloc(cache * 4), *dvc = cuda_alloc(cache * 4);
    float *scratch = malloc(CPU_ATTN_SCRATCH(len) * 64 * 4);
    for (int step = 0; step < 2; step++) {
        int n = step == 0 ? n0 : 1, pos = step == 0 ? 0 : n0;
        size_t nq = (size_t)nseq * n * 3 * C, no = (size_t)nseq * n * C;
        float *qkv = randn(nq, 1), *out = malloc(no * 4), *dq = up(qkv, nq * 4), *dout = cuda_alloc(no * 4);
        cpu_attention_forward_kv(ACT(out), ACT(qkv), ACT(kc), ACT(vc), nseq, n, pos, len, C, NH, scratch);
        cuda_attention_forward_kv(ACT(dout), ACT(dq), ACT(dkc), ACT(dvc), nseq, n, pos, len, C, NH, NULL);
        CHECK(same(dout, out, no, 1e-5, step == 0 ? "attention kv prefill" : "attention kv step"));
        cuda_free(dq), free(qkv);
    }
    cuda_free(dkc), cuda_free(dvc), free(kc), free(vc), free(scratch);
}

static void test_classifier(int N, int C, int V, int Vp, int bf16) {
    int32_t *t = malloc(N * 4);
    for (int i = 0; i < N; i++) t[i] = (int32_t)(rng_next(&r) % (uint64_t)V);
    size_t nin = (size_t)N * C, nw = (size_t)Vp * C;
    float *x = randn(nin, 1), *w = randn(nw, 1);
    gpt2_bf16 *w16 = malloc(nw * 2);
    cpu_to_bf16(w16, w, nw);
    float *scratch = malloc(cpu_classifier_scratch_floats(C, Vp, 1) * 4);
    float *dscratch = cuda_alloc(cuda_scratch_floats(1, N, C, 1, Vp, 1) * 4);
    float *losses = malloc(N * 4), *dinp = malloc(nin * 4), *dwte = calloc(nw, 4);
    int32_t *dt = up(t, N * 4);
    float *dx = up(x, nin * 4), *dw = up(w, nw * 4), *dl = cuda_alloc(N * 4), *ddinp = cuda_alloc(nin * 4);
    float *ddwte = cuda_alloc(nw * 4);
    gpt2_bf16 *dw16 = up(w16, nw * 2);
    cuda_memset0(ddwte, nw * 4);
    cpu_classifier(losses, ACT(dinp), dwte, ACT(x), w, bf16 ? w16 : NULL, t, N, C, V, Vp, 0.25f, scratch);
    cuda_classifier(dl, ACT(ddinp), ddwte, ACT(dx), dw, bf16 ? dw16 : NULL, dt, N, C, V, Vp, 0.25f, dscratch);
    /* the logit gradients differ in their last bits (each side's exp), which bf16 rounding can
     * turn into one bf16 step of a few of them */
    double gtol = bf16 ? 2e-2 : 1e-5;
    CHECK(same(dl, losses, N, 1e-5, bf16 ? "bf16 classifier loss" : "classifier loss"));
    CHECK(same(ddinp, dinp, nin, gtol, "classifier dinp"));
    CHECK(same(ddwte, dwte, nw, gtol, "classifier dwte"));
    cuda_free(dt), cuda_free(dx), cuda_free(dw), cuda_free(dw16), cuda_free(dscratch);
    free(t), free(x), free(w), free(w16), free(scratch);
}

static void test_adamw(void) {
    size_t n = 5003;
    float *p = randn(n, 1), *g = randn(n, 1), *m = randn(n, 0.1), *v = malloc(n * 4);
    for (size_t i = 0; i < n; i++) v[i] = 0.01f * (float)rng_uniform(&r);
    float *dp = up(p, n * 4), *dg = up(g, n * 4), *dm = up(m, n * 4), *dv = up(v, n * 4);
    gpt2_bf16 *p16 = malloc(n * 2), *dp16 = cuda_alloc(n * 2), *got16 = malloc(n * 2);
    cpu_adamw(p, p16, g, m, v, n, 3e-4, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 0.271, 0.142625);
    cuda_adamw(dp, dp16, dg, dm, dv, n, 3e-4, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 0.271, 0.142625);
    cuda_download(got16, dp16, n * 2);
    int copy = 1;
    for (size_t i = 0; i < n; i++) copy &= abs((int)got16[i] - (int)p16[i]) <= 1;
    CHECK(copy);
    CHECK(same(dp, p, n, 1e-6, "adamw parameters"));
    CHECK(same(dm, m, n, 1e-6, "adamw m"));
    CHECK(same(dv, v, n, 1e-6, "adamw v"));
    CHECK(same(dg, g, n, 0, "adamw zeroes the gradient"));
    cuda_free(dp16), free(p16), free(got16);
}

int main(void) {
    gpt2c_error err;
    int devices = cuda_device_count(&err);
    if (devices < 0) { /* a driver that is there and fails: that is a failure, not a skip */
        fprintf(stderr, "test_cuda_ops: %s\n", err.msg);
        return 1;
    }
    if (devices == 0) {
        fprintf(stderr, "test_cuda_ops: no CUDA device or driver here: skipped\n");
        return 77;
    }
    if (cuda_init(&err) != 0) {
        fprintf(stderr, "test_cuda_ops: %s\n", err.msg);
        return 1;
    }
    cuda_set_tf32(0);
    rng_seed(&r, 7);
    test_elementwise();
    test_to_bf16();
    test_embed_layernorm(2, 7, 96, 9);
    test_matmul(13, 70, 50, 0);
    test_matmul(130, 64, 192, 0);
    test_matmul(130, 64, 192, 1);
    test_attention(2, 70, 128, 2); /* hs 64 */
    test_attention(1, 33, 96, 3);  /* hs 32 */
    test_attention_kv(128, 2);
    test_classifier(6, 64, 1000, 1024, 0);
    test_classifier(1100, 32, 1000, 1024, 0); /* two chunks of CUDA_CLASSIFIER_ROWS */
    test_classifier(300, 64, 1000, 1024, 1);
    test_adamw();
    return check_done();
}
