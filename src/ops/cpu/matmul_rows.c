/* Linear layers for inference whose every output row is computed the same whatever the rows
 * beside it: out = inp @ w^T + bias, as matmul_forward, for prompts. A server runs the prompts
 * of several requests through one product (one read of the weights for all of them) and must
 * give each the bits that `sample` gives it alone; a GEMM library does not promise that (oneDNN's
 * AVX2 sgemm, and its AMX bf16 matmul past 64 rows, change their sums with the row count:
 * measured). Here every output element is one fixed computation: lanes of partial sums over the
 * channels in order, a scalar tail, then a fixed tree of the lanes. Tiles of several rows and
 * weight rows only share loads; a tile of one row does for it what a tile of four does.
 *
 * Speed (d12's shapes, 2 threads of the Xeon, 128 rows): 160-190 GFLOP/s in AVX-512 against
 * oneDNN's 250-360, as fast as oneDNN up to about 16 rows; AVX2 155-170 against oneDNN's 200.
 * The model uses it for short prompt chunks (GPT2_SHORT_CHUNK) and oneDNN for long ones. */
#include <string.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"

#pragma GCC diagnostic ignored "-Wpsabi" /* vectors passed between the inlined helpers */
typedef float v16f __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));

static inline float hsum_v8(v8f v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}
static inline float hsum_v16(v16f v) {
    v8f lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    return hsum_v8(lo + hi);
}

/* Each weight row's lines are asked for 16 KB ahead, into L2 (a d12 step's products,
 * bench/rows_bench.c, AMD EPYC, fp32 at 16 rows: 39.0-39.4 -> 28.2-28.6 ms in AVX-512, 61-63 ->
 * 46 ms under GPT2C_CPU_ISA=avx2; the hardware prefetcher alone fell behind). */
#define PREFETCH_L2(p) __builtin_prefetch((p) + 16384, 0, 2)

/* The loops over a tile's rows and weight rows are unrolled before GCC decides where the
 * sums live: left to itself it kept the 12 sums of the AVX2 4 x 3 tile on the stack, loading
 * and storing each one every 8 inputs (hot in L1, one core of an AMD EPYC: 0.6 against 5.8 G
 * 8-lane multiply-adds a second). */
#define UNROLLED _Pragma("GCC unroll 4")

/* TILE(R, J, VF, VU, LANES, BF16): r[m*J + j] = row m of x (stride ldx) . weight row j (stride
 * ldw), n inputs, m < R, j < J. fp32 weights: lanes over the inputs. bf16 weights: their pairs
 * widened in registers (a 32-bit word holds the even element low, the odd one high), against x
 * deinterleaved and rounded (x[0 .. n/2) even inputs, x[n/2 .. n) odd ones). */
#define TILE(R, J, VF, VU, LANES, BF16, HSUM)                                                      \
    VF acc[R][J];                                                                                  \
    UNROLLED for (int m = 0; m < R; m++)                                                           \
        UNROLLED for (int j = 0; j < J; j++) acc[m][j] = (VF){0};                                  \
    int i = 0, h = BF16 ? n / 2 : n;                                                               \
    for (; i + LANES <= h; i += LANES) {                                                           \
        VF we[J], wo[J];                                                                           \
        UNROLLED for (int j = 0; j < J; j++) {                                                     \
            PREFETCH_L2((const char *)w +                                                          \
                        ((size_t)j * ldw + (BF16 ? 2 * i : i)) * (BF16 ? 2 : 4));                  \
            if (BF16) {                                                                            \
                VU u;                                                                              \
                memcpy(&u, (const gpt2_bf16 *)w + (size_t)j * ldw + 2 * i, sizeof u);              \
                we[j] = (VF)(u << 16), wo[j] = (VF)(u & 0xffff0000u);                              \
            } else {                                                                               \
                memcpy(&we[j], (const float *)w + (size_t)j * ldw + i, sizeof we[j]);              \
            }                                                                                      \
        }                                                                                          \
        UNROLLED for (int m = 0; m < R; m++) {                                                     \
            VF xe, xo;                                                                             \
            memcpy(&xe, x + (size_t)m * ldx + i, sizeof xe);                                       \
            if (BF16) memcpy(&xo, x + (size_t)m * ldx + h + i, sizeof xo);                         \
            UNROLLED for (int j = 0; j < J; j++) {                                                 \
                if (BF16) acc[m][j] += xe * we[j] + xo * wo[j];                                    \
                else acc[m][j] += xe * we[j];                                                      \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    for (int m = 0; m < R; m++)                                                                    \
        for (int j = 0; j < J; j++) {                                                              \
            const float *xm = x + (size_t)m * ldx;                                                 \
            float t = 0;                                                                           \
            for (int k = i; k < h; k++) {                                                          \
                if (BF16) {                                                                        \
                    const gpt2_bf16 *wj = (const gpt2_bf16 *)w + (size_t)j * ldw;                  \
                    t += xm[k] * cpu_bf16_to_float(wj[2 * k]) +                                    \
                         xm[h + k] * cpu_bf16_to_float(wj[2 * k + 1]);                             \
                } else {                                                                           \
                    t += xm[k] * ((const float *)w)[(size_t)j * ldw + k];                          \
                }                                                                                  \
            }                                                                                      \
            r[m * J + j] = HSUM(acc[m][j]) + t;                                                    \
        }

#define TILE_PARAMS (const float *x, int ldx, const void *w, int ldw, int n, float *r)
#define TILE_ARGS (x, ldx, w, ldw, n, r)
/* AVX-512: 16 lanes, 4 rows x 4 weight rows (16 accumulators of the 32 registers). */
CPU_KERNEL(tile4x4_f32, TILE_PARAMS, TILE_ARGS) { TILE(4, 4, v16f, v16u, 16, 0, hsum_v16) }
CPU_KERNEL(tile1x4_f32, TILE_PARAMS, TILE_ARGS) { TILE(1, 4, v16f, v16u, 16, 0, hsum_v16) }
CPU_KERNEL(tile4x4_bf16, TILE_PARAMS, TILE_ARGS) { TILE(4, 4, v16f, v16u, 16, 1, hsum_v16) }
CPU_KERNEL(tile1x4_bf16, TILE_PARAMS, TILE_ARGS) { TILE(1, 4, v16f, v16u, 16, 1, hsum_v16) }
/* AVX2 and below: 8 lanes (16 go through memory there, at a sixth of the speed); fp32 4 rows x
 * 3 weight rows (12 sums, 3 weights and an input: the 16 registers), bf16 4 x 2 (each weight is
 * two registers, even and odd; at 4 x 3 six of the sums went to the stack). d12 at 16 rows
 * under GPT2C_CPU_ISA=avx2 (rows_bench, fp32): 130 ms with the 4 x 3 tile's sums on the stack,
 * 63 with 4 x 2 tiles, 45 with those prefetching, 32 with 4 x 3 unrolled. */
CPU_KERNEL(tile4x3_f32, TILE_PARAMS, TILE_ARGS) { TILE(4, 3, v8f, v8u, 8, 0, hsum_v8) }
CPU_KERNEL(tile1x3_f32, TILE_PARAMS, TILE_ARGS) { TILE(1, 3, v8f, v8u, 8, 0, hsum_v8) }
CPU_KERNEL(tile4x2_bf16, TILE_PARAMS, TILE_ARGS) { TILE(4, 2, v8f, v8u, 8, 1, hsum_v8) }
CPU_KERNEL(tile1x2_bf16, TILE_PARAMS, TILE_ARGS) { TILE(1, 2, v8f, v8u, 8, 1, hsum_v8) }

typedef void tile_fn TILE_PARAMS;
enum { TILE_ROWS = 4, TILE_MAX_J = 4 };

/* out[N,OC] = x[N,C] . w^T + bias with J weight rows per task; the threads split the weight rows
 * and each walks the rows a block at a time (a block of inputs stays in L2 while the weights
 * pass). */
static void rows_product(float *out, const float *x, const void *w, size_t wsize,
                         const float *bias, int N, int C, int OC, int J, tile_fn *tile,
                         tile_fn *tile1) {
    int groups = (OC + J - 1) / J;
    int block = (int)(65536 / (size_t)C) / TILE_ROWS * TILE_ROWS;
    if (block < TILE_ROWS) block = TILE_ROWS;
    for (int r0 = 0; r0 < N; r0 += block) {
        int r1 = r0 + block < N ? r0 + block : N;
#pragma omp parallel for schedule(static)
        for (int g = 0; g < groups; g++) {
            int o0 = g * J, nj = OC - o0 < J ? OC - o0 : J;
            const char *wg = (const char *)w + (size_t)o0 * C * wsize;
            float r[TILE_ROWS * TILE_MAX_J], rj[TILE_ROWS * TILE_MAX_J];
            for (int m = r0; m < r1;) {
                int rows = m + TILE_ROWS <= r1 ? TILE_ROWS : 1;
                tile_fn *t = rows == TILE_ROWS ? tile : tile1;
                const float *xm = x + (size_t)m * C;
                if (nj == J) {
                    t(xm, C, wg, C, C, r);
                } else { /* the short last group, a weight row at a time through the same tile
                          * (ldw 0: all its weight rows are that one) */
                    for (int j = 0; j < nj; j++) {
                        t(xm, C, wg + (size_t)j * C * wsize, 0, C, rj);
                        for (int a = 0; a < rows; a++) r[a * J + j] = rj[a * J];
                    }
                }
                for (int a = 0; a < rows; a++)
                    for (int j = 0; j < nj; j++)
                        out[(size_t)(m + a) * OC + o0 + j] = (bias ? bias[o0 + j] : 0.0f) + r[a * J + j];
                m += rows;
            }
        }
    }
}

void cpu_matmul_forward_rowwise(gpt2_act *out_, const gpt2_act *inp_, const float *w,
                             const gpt2_bf16 *w_bf16, const float *bias, int N, int C, int OC,
                             float *scratch) {
    float *out = cpu_f(out_);
    const float *inp = cpu_cf(inp_);
    int wide = cpu_vec_width() == CPU_VEC_AVX512;
    if (w_bf16 && cpu_rows_dpbf16_available()) { /* AVX512_BF16's pair products, no widening */
        gpt2_bf16 *x = (gpt2_bf16 *)scratch;
        cpu_to_bf16(x, inp, (size_t)N * C);
        cpu_rows_dpbf16(out, x, w_bf16, bias, N, C, OC);
        return;
    }
    if (!w_bf16 || C % 2 != 0) {
        /* (an odd width has no bf16 pairs: its bf16 product is the fp32 one on rounded inputs
         * and weights, which computes the same values) */
        const float *x = inp, *wf = w;
        if (w_bf16) {
            float *xr = scratch, *wr = scratch + (size_t)N * C;
            cpu_round_bf16(xr, inp, (size_t)N * C);
            cpu_from_bf16(wr, w_bf16, (size_t)OC * C);
            x = xr, wf = wr;
        }
        rows_product(out, x, wf, sizeof(float), bias, N, C, OC, wide ? 4 : 3,
                     wide ? CPU_PICK(tile4x4_f32) : CPU_PICK(tile4x3_f32),
                     wide ? CPU_PICK(tile1x4_f32) : CPU_PICK(tile1x3_f32));
        return;
    }
    cpu_deinterleave_rounded(scratch, inp, N, C);
    rows_product(out, scratch, w_bf16, sizeof(gpt2_bf16), bias, N, C, OC, wide ? 4 : 2,
                 wide ? CPU_PICK(tile4x4_bf16) : CPU_PICK(tile4x2_bf16),
                 wide ? CPU_PICK(tile1x4_bf16) : CPU_PICK(tile1x2_bf16));
}
