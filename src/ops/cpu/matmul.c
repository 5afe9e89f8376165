/* Linear layers: out = inp @ w^T + bias and its gradients, with weights [OC, C] (PyTorch's
 * nn.Linear layout). Products go through oneDNN (gemm.c). With a bf16 weight copy the products'
 * inputs are bf16 and accumulate in fp32, on one of three routes that compute the same thing:
 * oneDNN's bf16 kernels where the CPU has AVX512_BF16 or AMX; elsewhere the fp32 GEMM on inputs
 * rounded to bf16 (emulated: the products of two bf16 values are exact in fp32, so only the
 * order of the fp32 sums differs); and for a few rows (generation) a kernel that reads the bf16
 * weights, half the bytes of fp32: AVX512_BF16's pair products where the level has them
 * (matmul_dpbf16.c), else the one here, which widens them in registers. */
#include <string.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"
#include "util/mem.h"

/* Few rows (generation: one token per sequence). GEMM libraries repack the whole weight matrix
 * on every call, which for a few rows costs more than the product (OpenBLAS: 10 GB/s of weights
 * on the Xeon's 22 GB/s); here each pair of weight rows is read once, into L1, for up to 4 input
 * rows at a time (28 GB/s at one row). In fp32 up to 8 rows. With bf16 weights the emulated
 * route would also widen every weight to fp32 in memory first, so the kernel keeps more rows:
 * it is the faster of the two up to about 32 rows (bench/sample_bench.py). */
#define FEW_ROWS_F32 8
#define FEW_ROWS_BF16_NATIVE 8
#define FEW_ROWS_BF16_EMULATED 32

/* The weights stream from memory once: asking for them ahead keeps enough reads in flight to
 * reach the memory's bandwidth (bf16 at one sample, d12 on the Xeon: 22.5 instead of 16.8 GB/s,
 * 85 instead of 63 tokens/s; the hardware prefetcher alone falls behind on these short rows).
 * 8 KB ahead into L2 rather than 4 KB into L1, where the tile's inputs are: `gpt2c sample`, d12,
 * 8 samples on an AMD EPYC, 2 runs each: fp32 240-252 -> 309-334 tok/s, under
 * GPT2C_CPU_ISA=avx2 233-237 -> 288-306, bf16 widened (GPT2C_CPU_ISA=avx512) 266-346 ->
 * 373-391; one sample unchanged (not measured on the Xeon). */
#define PREFETCH_BYTES 8192
static inline void prefetch_ahead(const void *a, const void *b) {
    __builtin_prefetch((const char *)a + PREFETCH_BYTES, 0, 2); /* 2: into L2 (T1) */
    __builtin_prefetch((const char *)b + PREFETCH_BYTES, 0, 2);
}

/* The same with bf16 weights, widened in registers. A pair of bf16 values read as one 32-bit
 * word holds the even element in its low half and the odd one in its high half, so the two
 * floats are (word << 16) and (word & 0xffff0000): no shuffles. The input rows come
 * deinterleaved to match (deinterleave_rounded below): x[0 .. n/2) the even elements,
 * x[n/2 .. n) the odd ones; n is even. Written with the compiler's vector types, eight lanes,
 * so that the sums stay in registers (OpenMP's simd reductions went through the stack, which
 * cost as much as the loop on GPT-2's short rows); each build of CPU_KERNEL lowers them to its
 * own instructions. */
/* (The helpers below are inlined; the plain x86-64 build would pass 32-byte vectors between
 * functions differently from the AVX builds, which GCC warns about.) */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8sf __attribute__((vector_size(32)));
typedef uint32_t v8su __attribute__((vector_size(32)));

static inline v8sf load_f32x8(const float *p) {
    v8sf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline v8su load_pairs8(const gpt2_bf16 *p) { /* 8 pairs: 16 bf16 values */
    v8su v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline v8sf even8(v8su u) { return (v8sf)(u << 16); }
static inline v8sf odd8(v8su u) { return (v8sf)(u & 0xffff0000u); }
static inline float hsum8(v8sf v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}
/* One pair's dot-product terms, for the tails. */
static inline float pair_dot(const float *x, int h, const gpt2_bf16 *w, int i) {
    return x[i] * cpu_bf16_to_float(w[2 * i]) + x[h + i] * cpu_bf16_to_float(w[2 * i + 1]);
}

/* r[0..3] = x rows 0..3 . w0, r[4..7] = the same rows . w1 (rows of n fp32 weights); and for
 * one row, r[0..1]. The one-row kernel does for its row exactly what the four-row kernel does for
 * each of its rows (the same sums in the same order), and so do the bf16 ones below: a row's
 * product does not depend on how many rows share the call (a server's batch gives each request
 * what it would get alone). */
CPU_KERNEL(dot4x2_f32, (const float *x, int ldx, const void *w0v, const void *w1v, int n, float *r),
           (x, ldx, w0v, w1v, n, r)) {
    const float *w0 = w0v, *w1 = w1v;
    const float *xs[4] = {x, x + ldx, x + 2 * ldx, x + 3 * ldx};
    v8sf a[4] = {{0}}, b[4] = {{0}};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        prefetch_ahead(w0 + i, w1 + i);
        v8sf u = load_f32x8(w0 + i), v = load_f32x8(w1 + i);
        for (int m = 0; m < 4; m++) {
            v8sf xv = load_f32x8(xs[m] + i);
            a[m] += xv * u;
            b[m] += xv * v;
        }
    }
    for (int m = 0; m < 4; m++) {
        float ta = 0, tb = 0;
        for (int j = i; j < n; j++) ta += xs[m][j] * w0[j], tb += xs[m][j] * w1[j];
        r[m] = hsum8(a[m]) + ta, r[4 + m] = hsum8(b[m]) + tb;
    }
}

CPU_KERNEL(dot1x2_f32, (const float *x, const void *w0v, const void *w1v, int n, float *r),
           (x, w0v, w1v, n, r)) {
    const float *w0 = w0v, *w1 = w1v;
    v8sf a = {0}, b = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        prefetch_ahead(w0 + i, w1 + i);
        v8sf u = load_f32x8(w0 + i), v = load_f32x8(w1 + i), xv = load_f32x8(x + i);
        a += xv * u;
        b += xv * v;
    }
    float ta = 0, tb = 0;
    for (int j = i; j < n; j++) ta += x[j] * w0[j], tb += x[j] * w1[j];
    r[0] = hsum8(a) + ta, r[1] = hsum8(b) + tb;
}

CPU_KERNEL(dot4x2_bf16, (const float *x, int ldx, const void *w0v, const void *w1v, int n, float *r),
           (x, ldx, w0v, w1v, n, r)) {
    const gpt2_bf16 *w0 = w0v, *w1 = w1v;
    const float *xs[4] = {x, x + ldx, x + 2 * ldx, x + 3 * ldx};
    int h = n / 2, i = 0;
    v8sf a[4] = {{0}}, b[4] = {{0}};
    for (; i + 8 <= h; i += 8) {
        prefetch_ahead(w0 + 2 * i, w1 + 2 * i);
        v8su u = load_pairs8(w0 + 2 * i), v = load_pairs8(w1 + 2 * i);
        v8sf ue = even8(u), uo = odd8(u), ve = even8(v), vo = odd8(v);
        for (int m = 0; m < 4; m++) {
            v8sf xe = load_f32x8(xs[m] + i), xo = load_f32x8(xs[m] + h + i);
            a[m] += xe * ue + xo * uo;
            b[m] += xe * ve + xo * vo;
        }
    }
    for (int m = 0; m < 4; m++) {
        float ta = 0, tb = 0;
        for (int j = i; j < h; j++) ta += pair_dot(xs[m], h, w0, j), tb += pair_dot(xs[m], h, w1, j);
        r[m] = hsum8(a[m]) + ta, r[4 + m] = hsum8(b[m]) + tb;
    }
}

CPU_KERNEL(dot1x2_bf16, (const float *x, const void *w0v, const void *w1v, int n, float *r),
           (x, w0v, w1v, n, r)) {
    const gpt2_bf16 *w0 = w0v, *w1 = w1v;
    int h = n / 2, i = 0;
    v8sf a = {0}, b = {0};
    for (; i + 8 <= h; i += 8) {
        prefetch_ahead(w0 + 2 * i, w1 + 2 * i);
        v8su u = load_pairs8(w0 + 2 * i), v = load_pairs8(w1 + 2 * i);
        v8sf ue = even8(u), uo = odd8(u), ve = even8(v), vo = odd8(v);
        v8sf xe = load_f32x8(x + i), xo = load_f32x8(x + h + i);
        a += xe * ue + xo * uo;
        b += xe * ve + xo * vo;
    }
    float ta = 0, tb = 0;
    for (int j = i; j < h; j++) ta += pair_dot(x, h, w0, j), tb += pair_dot(x, h, w1, j);
    r[0] = hsum8(a) + ta, r[1] = hsum8(b) + tb;
}

void cpu_deinterleave_rounded(float *dst, const float *src, int rows, int n) {
    int h = n / 2;
    for (int m = 0; m < rows; m++) {
        const float *s = src + (size_t)m * n;
        float *d = dst + (size_t)m * n;
        for (int i = 0; i < h; i++) d[i] = s[2 * i], d[h + i] = s[2 * i + 1];
    }
    cpu_round_bf16(dst, dst, (size_t)rows * n);
}

typedef void dot4x2_fn(const float *x, int ldx, const void *w0, const void *w1, int n, float *r);
typedef void dot1x2_fn(const float *x, const void *w0, const void *w1, int n, float *r);

/* out[N,OC] = inp[N,C] @ w^T + bias for weights of wsize bytes each, a pair of weight rows per
 * task. */
static void few_rows(float *out, const float *inp, const void *w, size_t wsize, const float *bias,
                     int N, int C, int OC, dot4x2_fn *dot4x2, dot1x2_fn *dot1x2) {
    int pairs = (OC + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < pairs; k++) {
        int o = 2 * k, two = o + 1 < OC;
        const char *w0 = (const char *)w + (size_t)o * C * wsize;
        const char *w1 = two ? w0 + (size_t)C * wsize : w0; /* an odd OC reads the last row twice */
        float b0 = bias ? bias[o] : 0.0f, b1 = bias && two ? bias[o + 1] : 0.0f, r[8];
        int m = 0;
        for (; m + 4 <= N; m += 4) {
            dot4x2(inp + (size_t)m * C, C, w0, w1, C, r);
            for (int j = 0; j < 4; j++) {
                out[(size_t)(m + j) * OC + o] = b0 + r[j];
                if (two) out[(size_t)(m + j) * OC + o + 1] = b1 + r[4 + j];
            }
        }
        /* The rows left (a decoding step's single row): one weight row after the other, the
         * pair's kernel given the same row twice (the same sums for each). Two rows read side by
         * side stream from memory slower than one (a d12 step's products at one row on an AMD
         * EPYC, 2 threads: fp32 18.7 against 15.1 ms); the second read of a row comes from L1. */
        for (; m < N; m++) {
            dot1x2(inp + (size_t)m * C, w0, w0, C, r);
            out[(size_t)m * OC + o] = b0 + r[0];
            if (!two) continue;
            dot1x2(inp + (size_t)m * C, w1, w1, C, r);
            out[(size_t)m * OC + o + 1] = b1 + r[0];
        }
    }
}

/* Where the next of the scratch's pieces starts: n elements on, rounded up to a cache line. */
static void *after(void *p, size_t n, size_t size) { return (char *)p + mem_lines(n * size); }

size_t cpu_matmul_scratch_floats(int N, int C, int OC) {
    size_t in = (size_t)N * C, out = (size_t)N * OC, w = (size_t)OC * C;
    /* native: inp and dout in bf16; emulated: both rounded in fp32, and the weight widened;
     * either way at least the few-rows route's rounded, deinterleaved input in fp32 */
    /* (an odd C, which has no bf16 pairs, takes the emulated route in matmul_forward_rowwise) */
    return cpu_bf16_native() && C % 2 == 0 ? max_size((in + out) / 2 + 32, in) : in + out + w + 48;
}

int cpu_matmul_few_rows_bf16(void) {
    return cpu_bf16_native() ? FEW_ROWS_BF16_NATIVE : FEW_ROWS_BF16_EMULATED;
}

void cpu_matmul_forward(gpt2_act *out_, const gpt2_act *inp_, const float *w,
                        const gpt2_bf16 *w_bf16, const float *bias, int N, int C, int OC,
                        float *scratch) {
    float *out = cpu_f(out_);
    const float *inp = cpu_cf(inp_);
    size_t nin = (size_t)N * C;
    if (!w_bf16) {
        if (N <= FEW_ROWS_F32)
            few_rows(out, inp, w, sizeof *w, bias, N, C, OC, CPU_PICK(dot4x2_f32), CPU_PICK(dot1x2_f32));
        else cpu_gemm(GEMM_F32, 0, 1, N, OC, C, inp, w, bias, out, 0);
    } else if (N <= cpu_matmul_few_rows_bf16() && cpu_rows_dpbf16_available()) {
        gpt2_bf16 *inp_bf16 = (gpt2_bf16 *)scratch;
        cpu_to_bf16(inp_bf16, inp, nin);
        cpu_rows_dpbf16(out, inp_bf16, w_bf16, bias, N, C, OC);
    } else if (N <= cpu_matmul_few_rows_bf16() && C % 2 == 0) {
        cpu_deinterleave_rounded(scratch, inp, N, C);
        few_rows(out, scratch, w_bf16, sizeof *w_bf16, bias, N, C, OC, CPU_PICK(dot4x2_bf16),
                 CPU_PICK(dot1x2_bf16));
    } else if (N <= GPT2_FEW_ROWS && C % 2 != 0) {
        /* an odd width has no bf16 pairs for the kernel above; the GEMM routes would not keep
         * each row's bits (ops.h's Rows), the rowwise product does */
        cpu_matmul_forward_rowwise(out_, inp_, w, w_bf16, bias, N, C, OC, scratch);
    } else if (cpu_bf16_native()) {
        gpt2_bf16 *inp_bf16 = (gpt2_bf16 *)scratch;
        cpu_to_bf16(inp_bf16, inp, nin);
        cpu_gemm(GEMM_BF16, 0, 1, N, OC, C, inp_bf16, w_bf16, bias, out, 0);
    } else {
        float *inp_r = scratch, *w_f = after(inp_r, nin, sizeof(float));
        cpu_round_bf16(inp_r, inp, nin);
        cpu_from_bf16(w_f, w_bf16, (size_t)OC * C);
        cpu_gemm(GEMM_F32, 0, 1, N, OC, C, inp_r, w_f, bias, out, 0);
    }
}

/* dbias += column sums of dout: threads split the columns and each walks the rows in order. */
static void bias_backward(float *dbias, const float *dout, int N, int OC) {
    enum { CHUNK = 64 };
    int nchunks = (OC + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        int o0 = k * CHUNK, o1 = o0 + CHUNK < OC ? o0 + CHUNK : OC;
        float acc[CHUNK] = {0};
        for (int n = 0; n < N; n++)
            for (int o = o0; o < o1; o++) acc[o - o0] += dout[(size_t)n * OC + o];
        for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
    }
}

void cpu_matmul_backward(gpt2_act *dinp_, float *dw, float *dbias, const gpt2_act *dout_,
                         const gpt2_act *inp_, const float *w, const gpt2_bf16 *w_bf16, int N,
                         int C, int OC, float *scratch) {
    float *dinp = cpu_f(dinp_);
    const float *dout = cpu_cf(dout_);
    const float *inp = cpu_cf(inp_);
    size_t nin = (size_t)N * C, nout = (size_t)N * OC;
    if (!w_bf16) {
        cpu_gemm(GEMM_F32, 0, 0, N, C, OC, dout, w, NULL, dinp, 0);
        cpu_gemm(GEMM_F32, 1, 0, OC, C, N, dout, inp, NULL, dw, 1);
    } else if (cpu_bf16_native()) {
        gpt2_bf16 *dout_bf16 = (gpt2_bf16 *)scratch, *inp_bf16 = after(dout_bf16, nout, 2);
        cpu_to_bf16(dout_bf16, dout, nout);
        cpu_to_bf16(inp_bf16, inp, nin);
        cpu_gemm(GEMM_BF16, 0, 0, N, C, OC, dout_bf16, w_bf16, NULL, dinp, 0);
        cpu_gemm(GEMM_BF16, 1, 0, OC, C, N, dout_bf16, inp_bf16, NULL, dw, 1);
    } else {
        float *dout_r = scratch, *inp_r = after(dout_r, nout, 4), *w_f = after(inp_r, nin, 4);
        cpu_round_bf16(dout_r, dout, nout);
        cpu_round_bf16(inp_r, inp, nin);
        cpu_from_bf16(w_f, w_bf16, (size_t)OC * C);
        cpu_gemm(GEMM_F32, 0, 0, N, C, OC, dout_r, w_f, NULL, dinp, 0);
        cpu_gemm(GEMM_F32, 1, 0, OC, C, N, dout_r, inp_r, NULL, dw, 1);
    }
    if (dbias) bias_backward(dbias, dout, N, OC);
}

/* The composite: the product, then GELU over its rows (the same bits as the two ops). */
void cpu_matmul_gelu_forward(gpt2_act *pre, gpt2_act *out, const gpt2_act *inp, const float *w,
                             const gpt2_bf16 *w_bf16, const float *bias, int N, int C, int OC,
                             float *scratch) {
    cpu_matmul_forward(pre, inp, w, w_bf16, bias, N, C, OC, scratch);
    cpu_gelu_forward(out, pre, (size_t)N * OC);
}

/* The composite: the backward, then GELU's (the same bits as the two ops). */
void cpu_matmul_backward_dgelu(gpt2_act *dinp, float *dw, float *dbias, const gpt2_act *dout,
                               const gpt2_act *inp, const gpt2_act *pre, const float *w,
                               const gpt2_bf16 *w_bf16, int N, int C, int OC, float *scratch) {
    cpu_matmul_backward(dinp, dw, dbias, dout, inp, w, w_bf16, N, C, OC, scratch);
    cpu_gelu_backward(dinp, pre, dinp, (size_t)N * C);
}
