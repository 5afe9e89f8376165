/* Causal self-attention: gpt2c's own tiled FlashAttention-2, deterministic.
 *
 * Forward: a block per (batch, head, tile of ATT_TILE query rows). The block's queries sit in
 * shared memory; the keys and values stream through it a tile at a time (only the tiles at or
 * before the block's last row: the causal skip), and each row keeps a running max and sum (the
 * online softmax, in fp32), so no T x T matrix is ever stored: only each row's log-sum-exp, from
 * which the backward recomputes the probabilities.
 *
 * Backward, with D = dO . O per query row first: dS = P (dO V^T - D); dQ = dS K * scale,
 * dK = dS^T Q * scale, dV = P^T dO. Two passes that each own their outputs: one block per key
 * tile loops over the query tiles at or after it and writes that tile's dK and dV; one block per
 * query tile loops over the key tiles at or before it and writes its dQ. Every output value is
 * summed by one thread in a fixed order (tiles ascending, then the tile's rows ascending): no
 * atomics, the same bits on any GPU and any launch order. (The probabilities are recomputed in
 * both passes: 2 extra products of the 7, the price of not adding float partials in some
 * order.)
 *
 * Two kinds of kernel. With bf16 activations the forward's QK^T and PV run on tensor cores
 * (wmma, further down: 64 query rows a block, 16 a warp). Everything else is fp32 FMA in shared
 * memory with one layout throughout: a warp carries ATT_ROWS rows (queries, or keys in the dK
 * dV pass) and its 32 lanes take the other side's 32 positions of the tile, one each, for the
 * scores (a lane's dot product reads its own row of a padded tile while the warp's rows are
 * broadcast); for the products with V, K, Q or dO the lanes switch to owning channels (lane +
 * 32 i) and read the warp's P or dS row from shared memory. fp32 activations are loaded as they
 * are, bf16 ones widened once when their tile is staged, so the backward gives the same fp32
 * numbers from bf16 inputs as from their float copies (tests/test_attention_bf16.cpp).
 *
 * Generation (attention_forward_kv) is a different shape (few rows, a long cache): its own
 * kernels at the end of the file. */
#include <mma.h>
#include <string.h>

#include <type_traits>
#include <vector>

#include <set>
#include <tuple>

#include "ops/cuda/cuda_common.cuh"
#ifdef GPT2C_HAVE_CUDNN
#include "ops/cuda/attention_cudnn.h"
#endif

#define R_MAX (CUDA_ATTN_MAX_HS / 32)

/* The backend refuses other models when they are made (cuda_check_shapes), so a head size
 * that reaches a kernel is one it handles (the HS dispatch below has exactly these cases). */
extern "C" int cuda_check_shapes(int n_embd, int n_head, gpt2c_error *err) {
    int hs = n_embd / n_head;
    if (hs % 32 == 0 && hs >= 32 && hs <= CUDA_ATTN_MAX_HS) return 0;
    if (err)
        snprintf(err->msg, sizeof err->msg, "the CUDA attention needs a head size (n_embd / n_head) "
                 "that is a multiple of 32 up to %d; this model's is %d: use --device cpu",
                 CUDA_ATTN_MAX_HS, hs);
    return -1;
}

/* ---- which attention runs: GPT2C_ATTN=auto|cudnn|own, read once at the backend's open ---- */

enum attn_choice { ATTN_AUTO, ATTN_OWN, ATTN_CUDNN };
static attn_choice attn_chosen = ATTN_AUTO;

extern "C" int cuda_attention_configure(gpt2c_error *err) {
    const char *s = getenv("GPT2C_ATTN");
    if (!s || !*s || !strcmp(s, "auto")) attn_chosen = ATTN_AUTO;
    else if (!strcmp(s, "own")) attn_chosen = ATTN_OWN;
    else if (!strcmp(s, "cudnn")) {
#ifdef GPT2C_HAVE_CUDNN
        attn_chosen = ATTN_CUDNN;
#else
        if (err)
            snprintf(err->msg, sizeof err->msg,
                     "GPT2C_ATTN=cudnn: this build has no cuDNN attention (use auto or own)");
        return -1;
#endif
    } else {
        if (err)
            snprintf(err->msg, sizeof err->msg, "GPT2C_ATTN must be auto, cudnn or own, not '%s'", s);
        return -1;
    }
    return 0;
}

/* cuDNN's fused attention (attention_cudnn.h; GPU builds with cuDNN 9 and the pinned frontend,
 * and the emulated GPU on its CPU stand-in), for bf16 activations unless GPT2C_ATTN=own: each
 * plan prepares its shape when it sizes the scratch (cuda_attention_scratch_bytes), which then
 * holds cuDNN's workspace; a shape cuDNN took runs there, forward and backward alike (one lse
 * for both), and any other on our own kernels (GPT2C_ATTN=cudnn says why on stderr). Generation
 * stays on our own kernels. */
struct attn_shape {
    int B, T, C, NH;
    bool operator<(const attn_shape &o) const {
        return std::tie(B, T, C, NH) < std::tie(o.B, o.T, o.C, o.NH);
    }
};
static std::set<attn_shape> cudnn_shapes;
#ifdef GPT2C_HAVE_CUDNN
static bool last_plan_cudnn; /* what the latest plan runs: for the plan line */
#endif

/* Whether cuDNN is to be tried: asked for, or by default where it is the library itself. On the
 * emulated GPU its stand-in checks the wiring around cuDNN, it is not a faster path: auto keeps
 * our own kernels under test there, and GPT2C_ATTN=cudnn runs the stand-in. */
static bool cudnn_wanted(void) {
#ifdef GPT2C_CUDA_EMULATED
    return attn_chosen == ATTN_CUDNN;
#else
    return attn_chosen != ATTN_OWN;
#endif
}

static bool cudnn_runs(int B, int T, int C, int NH) {
    return cuda_bf16_acts && cudnn_wanted() && cudnn_shapes.count({B, T, C, NH});
}

extern "C" size_t cuda_attention_scratch_bytes(int B, int T, int C, int NH) {
    size_t own = (size_t)B * NH * T * sizeof(float); /* the backward's D */
#ifdef GPT2C_HAVE_CUDNN
    last_plan_cudnn = false;
    if (cuda_bf16_acts && cudnn_wanted() && B > 0 && T > 0) {
        size_t workspace = 0;
        gpt2c_error err;
        if (cudnn_attention_prepare(B, T, C, NH, &workspace, &err) == 0) {
            cudnn_shapes.insert({B, T, C, NH});
            last_plan_cudnn = true;
            return workspace > own ? workspace : own;
        }
        static bool said;
        if (attn_chosen == ATTN_CUDNN && !said) /* asked for: say why it is not */
            fprintf(stderr, "gpt2c: GPT2C_ATTN=cudnn: %s; our own attention runs\n", err.msg), said = true;
    }
#else
    (void)C;
#endif
    return own;
}

extern "C" const char *cuda_attention_path(void) {
#ifdef GPT2C_HAVE_CUDNN
    static char cudnn[112];
    if (last_plan_cudnn) {
#ifdef GPT2C_CUDA_EMULATED /* not the library: say so wherever it shows */
        snprintf(cudnn, sizeof cudnn, "cuDNN fused attention on its CPU stand-in, as %s",
                 cudnn_attention_version());
#else
        snprintf(cudnn, sizeof cudnn, "cuDNN fused attention, %s", cudnn_attention_version());
#endif
        return cudnn;
    }
#endif
    if (cuda_bf16_acts)
        return attn_chosen == ATTN_OWN
                   ? "own tiled attention (wmma forward, fp32 FMA backward; GPT2C_ATTN=own)"
                   : "own tiled attention (wmma forward, fp32 FMA backward)";
    return attn_chosen == ATTN_OWN ? "own tiled attention (fp32 FMA; GPT2C_ATTN=own)"
                                   : "own tiled attention (fp32 FMA)";
}

extern "C" void cuda_attention_free(void) {
#ifdef GPT2C_HAVE_CUDNN
    cudnn_attention_free();
    last_plan_cudnn = false;
#endif
    cudnn_shapes.clear();
}

/* ---- the tiled kernels ---- */

/* ATT_TILE query rows and ATT_TILE keys a tile: one key (or query) a lane. ATT_ROWS rows a warp
 * at once: each value a lane reads from its own row of the other side serves ATT_ROWS rows (4:
 * the accumulators then take 4 x hs/32 registers, 16 for heads of 128). 8 warps cover a tile. */
#define ATT_TILE 32
#define ATT_ROWS 4
#define ATT_WARPS (ATT_TILE / ATT_ROWS)
#define ATT_THREADS (ATT_WARPS * 32)
/* A tile that each lane reads along its own row is padded to HS + 1 floats a row, so the 32
 * lanes' reads of one channel fall in 32 different banks; tiles read by a warp's broadcast or
 * along the channels are not padded. */
#define PADDED(HS) ((HS) + 1)

/* Rows t0.. of a [T, stride] activation into a [ATT_TILE, ld] float tile, times `scale`; rows at
 * or past T are zeros (a part tile at the end: finite values that the masks drop). The block's
 * threads go along the channels: consecutive threads read consecutive values. */
template <typename act_t, int HS>
__device__ __forceinline__ void stage_tile(float *dst, int ld, const act_t *src, size_t stride,
                                           int t0, int T, float scale) {
    for (int i = threadIdx.x; i < ATT_TILE * HS; i += ATT_THREADS) {
        int r = i / HS, c = i % HS, t = t0 + r;
        dst[r * ld + c] = t < T ? act_load(src[(size_t)t * stride + c]) * scale : 0.0f;
    }
}

/* Shared memory of each FMA kernel, in floats (dynamic: the larger heads take more than the
 * 48 KB a block has without asking, cudaFuncSetAttribute below). */
template <int HS> constexpr int forward_smem_floats() {
    return ATT_TILE * HS + ATT_TILE * PADDED(HS) + ATT_TILE * HS + ATT_TILE * ATT_TILE;
}
template <int HS> constexpr int dq_smem_floats() {
    return 2 * ATT_TILE * HS + 2 * ATT_TILE * PADDED(HS) + ATT_TILE * ATT_TILE;
}
template <int HS> constexpr int dkv_smem_floats() {
    return 2 * ATT_TILE * HS + 2 * ATT_TILE * PADDED(HS) + 2 * ATT_TILE * ATT_TILE + 2 * ATT_TILE;
}

/* The query tiles in reverse block order: under the causal mask the last tile has the most keys,
 * and blocks start roughly in index order, so the longest ones start first and the short ones
 * fill in at the end. */
__device__ __forceinline__ int tile_heaviest_first() { return gridDim.x - 1 - blockIdx.x; }

/* Forward. Grid (query tiles, NH, B). Block rows r0..r0+3 of warp w are the block's rows 4w..;
 * q holds the scaled queries, k and v a tile of keys and values, p each warp's rows of the
 * current probabilities. */
template <typename act_t, int HS>
__global__ void __launch_bounds__(ATT_THREADS)
attention_forward_kernel(act_t *out, float *lse, const act_t *qkv, int T, int NH) {
    constexpr int R = HS / 32, KLD = PADDED(HS);
    extern __shared__ float smem[];
    float *q = smem, *k = q + ATT_TILE * HS, *v = k + ATT_TILE * KLD, *p = v + ATT_TILE * HS;
    const int C = NH * HS, warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * ATT_ROWS;
    const int h = blockIdx.y, b = blockIdx.z, q0 = tile_heaviest_first() * ATT_TILE;
    const size_t stride = 3 * (size_t)C;
    const act_t *base = qkv + (size_t)b * T * stride + h * HS;
    stage_tile<act_t, HS>(q, HS, base, stride, q0, T, rsqrtf((float)HS));

    float m[ATT_ROWS], l[ATT_ROWS], acc[ATT_ROWS][R];
    for (int rr = 0; rr < ATT_ROWS; rr++) {
        m[rr] = -INFINITY, l[rr] = 0.0f;
        for (int i = 0; i < R; i++) acc[rr][i] = 0.0f;
    }
    /* The causal skip: no key after the block's last row. Tile 0 comes first and holds key 0,
     * which every row sees, so after it every row's max is finite (no inf - inf below). */
    const int last_key = min(q0 + ATT_TILE, T) - 1;
    for (int k0 = 0; k0 <= last_key; k0 += ATT_TILE) {
        __syncthreads(); /* every warp is done with the previous tile (and q is staged) */
        stage_tile<act_t, HS>(k, KLD, base + C, stride, k0, T, 1.0f);
        stage_tile<act_t, HS>(v, HS, base + 2 * C, stride, k0, T, 1.0f);
        __syncthreads();
        /* scores: lane j takes key k0 + j against the warp's rows */
        float s[ATT_ROWS] = {};
        for (int c = 0; c < HS; c++) {
            float kc = k[lane * KLD + c];
            for (int rr = 0; rr < ATT_ROWS; rr++) s[rr] += q[(r0 + rr) * HS + c] * kc;
        }
        const int u = k0 + lane;
        for (int rr = 0; rr < ATT_ROWS; rr++) {
            int t = q0 + r0 + rr;
            bool seen = u <= t && u < T; /* the mask: only the diagonal tile has keys it drops */
            float sc = seen ? s[rr] : -INFINITY;
            float m_new = fmaxf(m[rr], warp_max(sc));
            float pr = seen ? expf(sc - m_new) : 0.0f, corr = expf(m[rr] - m_new);
            l[rr] = l[rr] * corr + warp_sum(pr);
            m[rr] = m_new;
            p[(r0 + rr) * ATT_TILE + lane] = pr;
            for (int i = 0; i < R; i++) acc[rr][i] *= corr;
        }
        __syncwarp(); /* the warp's rows of p, written lane by lane, before each lane reads all */
        /* O += P V: lane owns channels lane + 32 i */
        for (int j = 0; j < ATT_TILE; j++)
            for (int i = 0; i < R; i++) {
                float vc = v[j * HS + lane + 32 * i];
                for (int rr = 0; rr < ATT_ROWS; rr++) acc[rr][i] += p[(r0 + rr) * ATT_TILE + j] * vc;
            }
    }
    for (int rr = 0; rr < ATT_ROWS; rr++) {
        int t = q0 + r0 + rr;
        if (t >= T) continue;
        act_t *o = out + ((size_t)b * T + t) * C + h * HS;
        float inv = 1.0f / l[rr];
        for (int i = 0; i < R; i++) o[lane + 32 * i] = act_store<act_t>(acc[rr][i] * inv);
        if (lane == 0) lse[((size_t)b * NH + h) * T + t] = m[rr] + logf(l[rr]);
    }
}

/* ---- the bf16 forward on tensor cores (wmma) ----
 * With bf16 activations QK^T and PV are 16 x 16 x 16 bf16 products with fp32 accumulation
 * (the wmma API: sm_80 and sm_90 both have it); the softmax stays in fp32. A block of 4 warps
 * takes 64 query rows, 16 a warp (a wmma tile's height), against key tiles of 64. An
 * accumulator fragment's layout across the lanes is opaque, so the scores go through shared
 * memory for the softmax, and each tile's P V goes there too before it is added, after the
 * rows' rescale, to O in registers (lane on channels lane + 32 i of the warp's 16 rows): more
 * shared-memory traffic than a kernel on mma.sync's documented register layout, for a kernel on
 * the portable API. P is rounded to bf16 for its product (the sum l is of the fp32 values). */
#define WM 16                     /* a wmma tile's side */
#define WQ_WARPS 4
#define WQ_ROWS (WM * WQ_WARPS)   /* query rows a block */
#define WK_TILE 64                /* keys a tile */
#define W_THREADS (WQ_WARPS * 32)

/* The layout of the wmma kernel's shared memory: Q, K, V as bf16 [64][HS + 8]; then each warp's
 * fp32 buffer (its scores, then its P V), then each warp's P as bf16 [16][64 + 8]. The bf16 rows
 * are padded by 16 bytes and the fp32 ones by 4 floats: ldm stays a multiple of 16 bytes (the
 * API's rule), every 16-row tile starts 32-byte aligned, and consecutive rows start in different
 * banks. */
template <int HS> struct wmma_layout {
    static constexpr int QLD = HS + 8, SLD = WK_TILE + 4, PLD = WK_TILE + 8, OLD = HS + 4;
    static constexpr int BUF = WM * (SLD > OLD ? SLD : OLD); /* floats a warp */
    static constexpr size_t bytes = (size_t)(WQ_ROWS + 2 * WK_TILE) * QLD * 2 +
                                    (size_t)WQ_WARPS * (BUF * 4 + WM * PLD * 2);
};

/* Rows t0..t0+ROWS-1 of a bf16 [T, stride] activation into a bf16 tile (zeros past T), copied
 * as they are. */
template <int HS, int ROWS>
__device__ __forceinline__ void stage_bf16(__nv_bfloat16 *dst, int ld, const __nv_bfloat16 *src,
                                           size_t stride, int t0, int T) {
    for (int i = threadIdx.x; i < ROWS * HS; i += W_THREADS) {
        int r = i / HS, c = i % HS, t = t0 + r;
        dst[r * ld + c] = t < T ? src[(size_t)t * stride + c] : __float2bfloat16_rn(0.0f);
    }
}

template <int HS>
__global__ void __launch_bounds__(W_THREADS)
attention_forward_wmma_kernel(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *qkv, int T,
                              int NH) {
    using namespace nvcuda;
    typedef wmma_layout<HS> L;
    typedef __nv_bfloat16 bf16;
    constexpr int R = HS / 32;
    extern __shared__ __align__(128) unsigned char wsmem[];
    bf16 *q = (bf16 *)wsmem, *k = q + WQ_ROWS * L::QLD, *v = k + WK_TILE * L::QLD;
    float *bufs = (float *)(v + WK_TILE * L::QLD);
    const int C = NH * HS, warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * WM;
    float *buf = bufs + warp * L::BUF;
    bf16 *p = (bf16 *)(bufs + WQ_WARPS * L::BUF) + warp * WM * L::PLD;
    const int h = blockIdx.y, b = blockIdx.z, q0 = tile_heaviest_first() * WQ_ROWS;
    const size_t stride = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * T * stride + h * HS;
    const float scale = rsqrtf((float)HS);
    stage_bf16<HS, WQ_ROWS>(q, L::QLD, base, stride, q0, T);

    /* each row's max and sum, the same in every lane; O, lane on channels lane + 32 i */
    float m[WM], l[WM], o[WM][R];
    for (int r = 0; r < WM; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
        for (int i = 0; i < R; i++) o[r][i] = 0.0f;
    }
    /* The causal skip: key tiles up to the block's last row; inside a tile, the 16-key parts
     * after the warp's last row (no product, their scores masked unread). Key tiles are as long
     * as query tiles, so every tile has a key each row sees: maxima finite from the first. */
    const int last_key = min(q0 + WQ_ROWS, T) - 1, warp_last = q0 + r0 + WM - 1;
    for (int k0 = 0; k0 <= last_key; k0 += WK_TILE) {
        __syncthreads(); /* every warp is done with the previous tile (and q is staged) */
        stage_bf16<HS, WK_TILE>(k, L::QLD, base + C, stride, k0, T);
        stage_bf16<HS, WK_TILE>(v, L::QLD, base + 2 * C, stride, k0, T);
        __syncthreads();
        /* S = Q K^T for the warp's 16 rows: K's rows, read column-major, are K^T */
        for (int n = 0; n < WK_TILE / WM; n++) {
            if (k0 + n * WM > warp_last) break;
            wmma::fragment<wmma::accumulator, WM, WM, WM, float> s;
            wmma::fill_fragment(s, 0.0f);
            for (int kk = 0; kk < HS / WM; kk++) {
                wmma::fragment<wmma::matrix_a, WM, WM, WM, bf16, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, WM, WM, WM, bf16, wmma::col_major> fb;
                wmma::load_matrix_sync(fa, q + r0 * L::QLD + kk * WM, L::QLD);
                wmma::load_matrix_sync(fb, k + n * WM * L::QLD + kk * WM, L::QLD);
                wmma::mma_sync(s, fa, fb, s);
            }
            wmma::store_matrix_sync(buf + n * WM, s, L::SLD, wmma::mem_row_major);
        }
        __syncwarp(); /* the scores, stored lane by lane, before the lanes read whole rows */
        /* the online softmax, row by row: lane takes keys lane and lane + 32 */
        for (int r = 0; r < WM; r++) {
            int t = q0 + r0 + r;
            float sc[WK_TILE / 32], mx = -INFINITY;
            for (int e = 0; e < WK_TILE / 32; e++) {
                int u = k0 + lane + 32 * e;
                sc[e] = u <= t && u < T ? buf[r * L::SLD + lane + 32 * e] * scale : -INFINITY;
                mx = fmaxf(mx, sc[e]);
            }
            float m_new = fmaxf(m[r], warp_max(mx)), corr = expf(m[r] - m_new), sum = 0.0f;
            for (int e = 0; e < WK_TILE / 32; e++) {
                float pr = expf(sc[e] - m_new); /* masked: exp(-inf) = 0 */
                sum += pr;
                p[r * L::PLD + lane + 32 * e] = __float2bfloat16_rn(pr);
            }
            l[r] = l[r] * corr + warp_sum(sum);
            m[r] = m_new;
            for (int i = 0; i < R; i++) o[r][i] *= corr;
        }
        __syncwarp(); /* P written and the scores read by every lane before P V reuses buf */
        for (int n = 0; n < HS / WM; n++) {
            wmma::fragment<wmma::accumulator, WM, WM, WM, float> pv;
            wmma::fill_fragment(pv, 0.0f);
            for (int kk = 0; kk < WK_TILE / WM; kk++) {
                if (k0 + kk * WM > warp_last) break; /* P is 0 there */
                wmma::fragment<wmma::matrix_a, WM, WM, WM, bf16, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, WM, WM, WM, bf16, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, p + kk * WM, L::PLD);
                wmma::load_matrix_sync(fb, v + kk * WM * L::QLD + n * WM, L::QLD);
                wmma::mma_sync(pv, fa, fb, pv);
            }
            wmma::store_matrix_sync(buf + n * WM, pv, L::OLD, wmma::mem_row_major);
        }
        __syncwarp(); /* this tile's P V, stored lane by lane, before each lane adds its channels */
        for (int r = 0; r < WM; r++)
            for (int i = 0; i < R; i++) o[r][i] += buf[r * L::OLD + lane + 32 * i];
    }
    for (int r = 0; r < WM; r++) {
        int t = q0 + r0 + r;
        if (t >= T) continue;
        bf16 *orow = out + ((size_t)b * T + t) * C + h * HS;
        float inv = 1.0f / l[r];
        for (int i = 0; i < R; i++) orow[lane + 32 * i] = __float2bfloat16_rn(o[r][i] * inv);
        if (lane == 0) lse[((size_t)b * NH + h) * T + t] = m[r] + logf(l[r]);
    }
}

/* D[row] = dO . O of each query row (b, h, t), a warp per row (rows in lse's order). */
template <typename act_t>
__global__ void attention_rowdot_kernel(float *D, const act_t *dout, const act_t *out, int B,
                                        int T, int C, int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH), hs = C / NH;
    size_t o = ((size_t)b * T + t) * C + h * hs;
    float s = 0.0f;
    for (int c = lane; c < hs; c += 32) s += act_load(dout[o + c]) * act_load(out[o + c]);
    s = warp_sum(s);
    if (lane == 0) D[row] = s;
}

/* dQ. Grid (query tiles, NH, B). As the forward: the warp's query rows against lane j's key of
 * each key tile at or before the block's last row; then dQ += dS K with lanes on channels. */
template <typename act_t, int HS>
__global__ void __launch_bounds__(ATT_THREADS)
attention_dq_kernel(act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse,
                    const float *D, int T, int NH) {
    constexpr int R = HS / 32, KLD = PADDED(HS);
    extern __shared__ float smem[];
    float *q = smem, *dO = q + ATT_TILE * HS, *k = dO + ATT_TILE * HS, *v = k + ATT_TILE * KLD;
    float *ds = v + ATT_TILE * KLD;
    const int C = NH * HS, warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * ATT_ROWS;
    const int h = blockIdx.y, b = blockIdx.z, q0 = tile_heaviest_first() * ATT_TILE;
    const size_t stride = 3 * (size_t)C;
    const act_t *base = qkv + (size_t)b * T * stride + h * HS;
    const float scale = rsqrtf((float)HS);
    stage_tile<act_t, HS>(q, HS, base, stride, q0, T, 1.0f);
    stage_tile<act_t, HS>(dO, HS, dout + (size_t)b * T * C + h * HS, C, q0, T, 1.0f);

    /* each row's lse and D (rows past T: 0, their results are not written) */
    float L[ATT_ROWS], Dr[ATT_ROWS], dq[ATT_ROWS][R];
    for (int rr = 0; rr < ATT_ROWS; rr++) {
        int t = q0 + r0 + rr;
        size_t row = ((size_t)b * NH + h) * T + t;
        L[rr] = t < T ? lse[row] : 0.0f, Dr[rr] = t < T ? D[row] : 0.0f;
        for (int i = 0; i < R; i++) dq[rr][i] = 0.0f;
    }
    const int last_key = min(q0 + ATT_TILE, T) - 1; /* the causal skip, as the forward's */
    for (int k0 = 0; k0 <= last_key; k0 += ATT_TILE) {
        __syncthreads();
        stage_tile<act_t, HS>(k, KLD, base + C, stride, k0, T, 1.0f);
        stage_tile<act_t, HS>(v, KLD, base + 2 * C, stride, k0, T, 1.0f);
        __syncthreads();
        float s[ATT_ROWS] = {}, dp[ATT_ROWS] = {};
        for (int c = 0; c < HS; c++) {
            float kc = k[lane * KLD + c], vc = v[lane * KLD + c];
            for (int rr = 0; rr < ATT_ROWS; rr++) {
                s[rr] += q[(r0 + rr) * HS + c] * kc;
                dp[rr] += dO[(r0 + rr) * HS + c] * vc;
            }
        }
        const int u = k0 + lane;
        for (int rr = 0; rr < ATT_ROWS; rr++) {
            int t = q0 + r0 + rr;
            float pr = u <= t && u < T ? expf(s[rr] * scale - L[rr]) : 0.0f;
            ds[(r0 + rr) * ATT_TILE + lane] = pr * (dp[rr] - Dr[rr]);
        }
        __syncwarp();
        for (int j = 0; j < ATT_TILE; j++)
            for (int i = 0; i < R; i++) {
                float kc = k[j * KLD + lane + 32 * i];
                for (int rr = 0; rr < ATT_ROWS; rr++) dq[rr][i] += ds[(r0 + rr) * ATT_TILE + j] * kc;
            }
    }
    for (int rr = 0; rr < ATT_ROWS; rr++) {
        int t = q0 + r0 + rr;
        if (t >= T) continue;
        act_t *o = dqkv + ((size_t)b * T + t) * stride + h * HS;
        for (int i = 0; i < R; i++) o[lane + 32 * i] = act_store<act_t>(dq[rr][i] * scale);
    }
}

/* dK and dV. Grid (key tiles, NH, B). The roles turn: a warp carries keys (the block's rows
 * 4w..4w+3 of its key tile, staged once), lane j takes query q0 + j of each query tile at or
 * after the key tile (the causal skip: earlier queries see none of these keys), and the lanes
 * then own channels for dV += P^T dO and dK += dS^T Q. */
template <typename act_t, int HS>
__global__ void __launch_bounds__(ATT_THREADS)
attention_dkv_kernel(act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse,
                     const float *D, int T, int NH) {
    constexpr int R = HS / 32, QLD = PADDED(HS);
    extern __shared__ float smem[];
    float *k = smem, *v = k + ATT_TILE * HS, *q = v + ATT_TILE * HS, *dO = q + ATT_TILE * QLD;
    float *p = dO + ATT_TILE * QLD, *ds = p + ATT_TILE * ATT_TILE, *Ls = ds + ATT_TILE * ATT_TILE;
    float *Ds = Ls + ATT_TILE;
    const int C = NH * HS, warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * ATT_ROWS;
    /* (key tiles in block order: the first has the most query tiles after it, so the longest
     * blocks already start first) */
    const int h = blockIdx.y, b = blockIdx.z, k0 = blockIdx.x * ATT_TILE;
    const size_t stride = 3 * (size_t)C;
    const act_t *base = qkv + (size_t)b * T * stride + h * HS;
    const act_t *obase = dout + (size_t)b * T * C + h * HS;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *drow = D + ((size_t)b * NH + h) * T;
    const float scale = rsqrtf((float)HS);
    stage_tile<act_t, HS>(k, HS, base + C, stride, k0, T, 1.0f);
    stage_tile<act_t, HS>(v, HS, base + 2 * C, stride, k0, T, 1.0f);

    float dk[ATT_ROWS][R], dv[ATT_ROWS][R];
    for (int rr = 0; rr < ATT_ROWS; rr++)
        for (int i = 0; i < R; i++) dk[rr][i] = dv[rr][i] = 0.0f;
    /* query tiles are ATT_TILE long as the key tiles: the first with a query >= k0 is k0's */
    for (int q0 = k0; q0 < T; q0 += ATT_TILE) {
        __syncthreads(); /* the previous query tile is read by every warp (and k, v are staged) */
        stage_tile<act_t, HS>(q, QLD, base, stride, q0, T, 1.0f);
        stage_tile<act_t, HS>(dO, QLD, obase, C, q0, T, 1.0f);
        if (threadIdx.x < ATT_TILE) {
            int t = q0 + threadIdx.x;
            Ls[threadIdx.x] = t < T ? lrow[t] : 0.0f;
            Ds[threadIdx.x] = t < T ? drow[t] : 0.0f;
        }
        __syncthreads();
        float s[ATT_ROWS] = {}, dp[ATT_ROWS] = {};
        for (int c = 0; c < HS; c++) {
            float qc = q[lane * QLD + c], oc = dO[lane * QLD + c];
            for (int rr = 0; rr < ATT_ROWS; rr++) {
                s[rr] += qc * k[(r0 + rr) * HS + c];
                dp[rr] += oc * v[(r0 + rr) * HS + c];
            }
        }
        const int t = q0 + lane;
        for (int rr = 0; rr < ATT_ROWS; rr++) {
            int u = k0 + r0 + rr;
            float pr = u <= t && t < T ? expf(s[rr] * scale - Ls[lane]) : 0.0f;
            p[(r0 + rr) * ATT_TILE + lane] = pr;
            ds[(r0 + rr) * ATT_TILE + lane] = pr * (dp[rr] - Ds[lane]);
        }
        __syncwarp();
        for (int j = 0; j < ATT_TILE; j++)
            for (int i = 0; i < R; i++) {
                float qc = q[j * QLD + lane + 32 * i], oc = dO[j * QLD + lane + 32 * i];
                for (int rr = 0; rr < ATT_ROWS; rr++) {
                    dv[rr][i] += p[(r0 + rr) * ATT_TILE + j] * oc;
                    dk[rr][i] += ds[(r0 + rr) * ATT_TILE + j] * qc;
                }
            }
    }
    for (int rr = 0; rr < ATT_ROWS; rr++) {
        int u = k0 + r0 + rr;
        if (u >= T) continue;
        act_t *o = dqkv + ((size_t)b * T + u) * stride + C + h * HS;
        for (int i = 0; i < R; i++) {
            o[lane + 32 * i] = act_store<act_t>(dk[rr][i] * scale);
            o[C + lane + 32 * i] = act_store<act_t>(dv[rr][i]);
        }
    }
}

/* ---- the launches ---- */

/* A kernel's dynamic shared memory above the default 48 KB must be asked for, once per
 * instantiation (the FMA kernels: up to 41 KB for heads of 64, 73 KB for 128; the wmma
 * forward: 54 KB for 64, 95 KB for 128; all within sm_80's 163 KB and sm_90's 227 KB). */
template <typename K> static void allow_smem(K *kernel, size_t bytes, bool *done) {
    if (*done) return;
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)bytes));
    *done = true;
}

/* The head sizes of cuda_check_shapes, each its own instantiation (registers and loops sized
 * at compile time). */
#define ATT_HS_DISPATCH(hs, fn, args)                                                             \
    do {                                                                                          \
        switch (hs) {                                                                             \
        case 32: fn<act_t, 32> args; break;                                                       \
        case 64: fn<act_t, 64> args; break;                                                       \
        case 96: fn<act_t, 96> args; break;                                                       \
        case 128: fn<act_t, 128> args; break;                                                     \
        default: fprintf(stderr, "gpt2c: CUDA attention: head size %d\n", hs); abort();          \
        }                                                                                         \
    } while (0)

template <typename act_t, int HS>
static void forward_launch(act_t *out, float *lse, const act_t *qkv, int B, int T, int NH) {
    static bool smem_set;
    if constexpr (std::is_same<act_t, __nv_bfloat16>::value) { /* tensor cores */
        size_t smem = wmma_layout<HS>::bytes;
        allow_smem(attention_forward_wmma_kernel<HS>, smem, &smem_set);
        dim3 grid((unsigned)((T + WQ_ROWS - 1) / WQ_ROWS), (unsigned)NH, (unsigned)B);
        attention_forward_wmma_kernel<HS><<<grid, W_THREADS, smem, cuda_stream>>>(out, lse, qkv, T, NH);
    } else {
        size_t smem = forward_smem_floats<HS>() * sizeof(float);
        allow_smem(attention_forward_kernel<act_t, HS>, smem, &smem_set);
        dim3 grid((unsigned)((T + ATT_TILE - 1) / ATT_TILE), (unsigned)NH, (unsigned)B);
        attention_forward_kernel<act_t, HS><<<grid, ATT_THREADS, smem, cuda_stream>>>(out, lse, qkv, T, NH);
    }
    CUDA_LAUNCHED();
}

template <typename act_t>
static void attention_forward(gpt2_act *out, float *lse, const gpt2_act *qkv, int B, int T, int C,
                              int NH) {
    if ((size_t)B * T * NH == 0) return;
    ATT_HS_DISPATCH(C / NH, forward_launch, ((act_t *)out, lse, (const act_t *)qkv, B, T, NH));
}

/* (bf16: the handle's activations' type says it already; ops.h) */
extern "C" void cuda_attention_forward(gpt2_act *out, float *lse, const gpt2_act *qkv, int B,
                                       int T, int C, int NH, int bf16, float *scratch) {
    (void)bf16;
#ifdef GPT2C_HAVE_CUDNN
    if (cudnn_runs(B, T, C, NH)) { /* the scratch is its workspace */
        cudnn_attention_forward((__nv_bfloat16 *)out, lse, (const __nv_bfloat16 *)qkv, B, T, C,
                                NH, scratch);
        return;
    }
#else
    (void)cudnn_runs;
#endif
    (void)scratch;
    CUDA_ACT_DISPATCH(attention_forward, (out, lse, qkv, B, T, C, NH));
}

template <typename act_t, int HS>
static void backward_launch(act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse,
                            const float *D, int B, int T, int NH) {
    static bool dq_set, dkv_set;
    size_t dq_smem = dq_smem_floats<HS>() * sizeof(float);
    size_t dkv_smem = dkv_smem_floats<HS>() * sizeof(float);
    allow_smem(attention_dq_kernel<act_t, HS>, dq_smem, &dq_set);
    allow_smem(attention_dkv_kernel<act_t, HS>, dkv_smem, &dkv_set);
    dim3 grid((unsigned)((T + ATT_TILE - 1) / ATT_TILE), (unsigned)NH, (unsigned)B);
    attention_dkv_kernel<act_t, HS><<<grid, ATT_THREADS, dkv_smem, cuda_stream>>>(dqkv, dout, qkv, lse, D, T, NH);
    CUDA_LAUNCHED();
    attention_dq_kernel<act_t, HS><<<grid, ATT_THREADS, dq_smem, cuda_stream>>>(dqkv, dout, qkv, lse, D, T, NH);
    CUDA_LAUNCHED();
}

/* Scratch: D, B * NH * T floats (cuda_scratch_floats covers it). */
template <typename act_t>
static void attention_backward(gpt2_act *dqkv_, const gpt2_act *dout_, const gpt2_act *qkv_,
                               const gpt2_act *out_, const float *lse, int B, int T, int C, int NH,
                               float *D) {
    act_t *dqkv = (act_t *)dqkv_;
    const act_t *dout = (const act_t *)dout_, *qkv = (const act_t *)qkv_, *out = (const act_t *)out_;
    size_t rows = (size_t)B * NH * T;
    if (!rows) return;
    attention_rowdot_kernel<act_t><<<blocks_for(rows, 8), 256, 0, cuda_stream>>>(D, dout, out, B, T, C, NH);
    CUDA_LAUNCHED();
    ATT_HS_DISPATCH(C / NH, backward_launch, (dqkv, dout, qkv, lse, D, B, T, NH));
}

extern "C" void cuda_attention_backward(gpt2_act *dqkv, const gpt2_act *dout, const gpt2_act *qkv,
                                        const gpt2_act *out, const float *lse, int B, int T, int C,
                                        int NH, int bf16, float *scratch) {
    (void)bf16;
#ifdef GPT2C_HAVE_CUDNN
    if (cudnn_runs(B, T, C, NH)) {
        cudnn_attention_backward((__nv_bfloat16 *)dqkv, (const __nv_bfloat16 *)dout,
                                 (const __nv_bfloat16 *)qkv, (const __nv_bfloat16 *)out, lse, B, T,
                                 C, NH, scratch);
        return;
    }
#endif
    CUDA_ACT_DISPATCH(attention_backward, (dqkv, dout, qkv, out, lse, B, T, C, NH, scratch));
}

/* ---- generation ----
 * Every span in one pass. The spans go to the device (in the scratch) with each one's first
 * row; a row finds its span by binary search. The new keys and values go into the cache (of the
 * activations' type: bf16 under bf16), laid out [NH][len][hs] per sequence (as the CPU's); then
 * each new query attends to positions 0..its own, a warp per (row, head), each lane hs/32 of the
 * channels. With few rows over a long cache (decoding), each (row, head) is split over the keys,
 * SPLIT_KEYS a part, into partial (max, sum, weighted values) merged in order after: more warps
 * at work, the same result for a row whatever the other spans. */
#define SPLIT_KEYS 256
#define SPLIT_ROWS 64 /* rows x splits at most this: the partials stay small */

struct kv_span {
    int seq, pos, n, row0;
};

__device__ __forceinline__ int span_of(const kv_span *spans, int nspans, int row) {
    int lo = 0, hi = nspans - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (spans[mid].row0 <= row) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* dot product of this lane's parts, summed over the warp */
__device__ __forceinline__ float warp_dot(const float *a, const float *b, int R) {
    float s = 0.0f;
    for (int i = 0; i < R; i++) s += a[i] * b[i];
    return warp_sum(s);
}

template <typename act_t>
__global__ void kv_store_kernel(act_t *kcache, act_t *vcache, const act_t *qkv,
                                const kv_span *spans, int nspans, int rows, int len, int C,
                                int NH) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * C) return;
    int c = (int)(i % C), row = (int)(i / C), hs = C / NH, h = c / hs, e = c % hs;
    const kv_span &sp = spans[span_of(spans, nspans, row)];
    const act_t *r = qkv + (size_t)row * 3 * C;
    size_t at = (size_t)sp.seq * len * C + ((size_t)h * len + sp.pos + (row - sp.row0)) * hs + e;
    kcache[at] = r[C + c]; /* the same type: copied as it is */
    vcache[at] = r[2 * C + c];
}

/* One warp per (row, head, split): the online softmax over keys [split * keys, ...) of the
 * row's 0..pos+j. With splits == 1 it writes the output; else its partial to `part`: max,
 * sum, then hs weighted values (fp32). */
template <typename act_t>
__global__ void attention_kv_kernel(act_t *out, float *part, const act_t *qkv, const act_t *kcache,
                                    const act_t *vcache, const kv_span *spans, int nspans,
                                    int rows, int splits, int len, int C, int NH) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= rows * NH * splits) return;
    int split = w % splits, h = (w / splits) % NH, row = w / (splits * NH), hs = C / NH, R = hs / 32;
    const kv_span &sp = spans[span_of(spans, nspans, row)];
    int last = sp.pos + (row - sp.row0), keys = (len + splits - 1) / splits;
    int u0 = split * keys, u1 = min(last + 1, u0 + keys);
    float scale = rsqrtf((float)hs);
    const act_t *qrow = qkv + (size_t)row * 3 * C + h * hs;
    const act_t *K = kcache + (size_t)sp.seq * len * C + (size_t)h * len * hs;
    const act_t *V = vcache + (K - kcache);
    float q[R_MAX], acc[R_MAX], kv[R_MAX];
    for (int i = 0; i < R; i++) q[i] = act_load(qrow[lane + 32 * i]) * scale, acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int u = u0; u < u1; u++) {
        for (int i = 0; i < R; i++) kv[i] = act_load(K[(size_t)u * hs + lane + 32 * i]);
        float sc = warp_dot(q, kv, R);
        float m_new = fmaxf(m, sc), corr = expf(m - m_new), p = expf(sc - m_new);
        l = l * corr + p;
        for (int i = 0; i < R; i++)
            acc[i] = acc[i] * corr + p * act_load(V[(size_t)u * hs + lane + 32 * i]);
        m = m_new;
    }
    if (splits == 1) {
        act_t *o = out + (size_t)row * C + h * hs;
        for (int i = 0; i < R; i++) o[lane + 32 * i] = act_store<act_t>(acc[i] / l);
        return;
    }
    float *pp = part + (size_t)w * (hs + 2);
    if (lane == 0) pp[0] = m, pp[1] = l;
    for (int i = 0; i < R; i++) pp[2 + lane + 32 * i] = acc[i];
}

/* The splits of each (row, head) merged in order: a warp each. (A split past the row's last
 * key has max -inf and sum 0: it adds nothing.) */
template <typename act_t>
__global__ void attention_kv_merge_kernel(act_t *out, const float *part, int rows, int splits,
                                          int C, int NH) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= rows * NH) return;
    int h = w % NH, row = w / NH, hs = C / NH, R = hs / 32;
    const float *p = part + (size_t)w * splits * (hs + 2);
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, p[(size_t)s * (hs + 2)]);
    float L = 0.0f, acc[R_MAX];
    for (int i = 0; i < R; i++) acc[i] = 0.0f;
    for (int s = 0; s < splits; s++) {
        const float *ps = p + (size_t)s * (hs + 2);
        if (ps[1] == 0.0f) continue;
        float f = expf(ps[0] - M);
        L += ps[1] * f;
        for (int i = 0; i < R; i++) acc[i] += ps[2 + lane + 32 * i] * f;
    }
    act_t *o = out + (size_t)row * C + h * hs;
    for (int i = 0; i < R; i++) o[lane + 32 * i] = act_store<act_t>(acc[i] / L);
}

/* Scratch: the spans (4 ints each), then the partials of the split rows (at most SPLIT_ROWS
 * rows x splits of (hs + 2) floats a head). */
template <typename act_t>
static void attention_forward_kv(gpt2_act *out_, const gpt2_act *qkv_, gpt2_act *kcache_,
                                 gpt2_act *vcache_, const gpt2_span *spans, int nspans, int len,
                                 int C, int NH, float *scratch) {
    act_t *out = (act_t *)out_, *kcache = (act_t *)kcache_, *vcache = (act_t *)vcache_;
    const act_t *qkv = (const act_t *)qkv_;
    if (nspans < 1) return;
    /* the spans with their first rows, to the device (pageable memory: staged at the call, so
     * one host vector serves every call) */
    static std::vector<kv_span> host;
    host.resize((size_t)nspans);
    int rows = 0;
    for (int s = 0; s < nspans; s++) {
        host[(size_t)s] = kv_span{spans[s].seq, spans[s].pos, spans[s].n, rows};
        rows += spans[s].n;
    }
    kv_span *dev = (kv_span *)scratch;
    CUDA_CHECK(cudaMemcpyAsync(dev, host.data(), (size_t)nspans * sizeof(kv_span),
                               cudaMemcpyHostToDevice, cuda_stream));
    if (rows == 0) return;
    kv_store_kernel<act_t><<<blocks_for((size_t)rows * C, 256), 256, 0, cuda_stream>>>(
        kcache, vcache, qkv, dev, nspans, rows, len, C, NH);
    CUDA_LAUNCHED();
    int splits = 1;
    while (splits * 2 * rows <= SPLIT_ROWS && (len + splits * 2 - 1) / (splits * 2) >= SPLIT_KEYS / 2)
        splits *= 2;
    float *part = scratch + (((size_t)nspans * sizeof(kv_span) + 255) / 256) * 64;
    size_t warps = (size_t)rows * NH * splits;
    attention_kv_kernel<act_t><<<blocks_for(warps, 8), 256, 0, cuda_stream>>>(
        out, part, qkv, kcache, vcache, dev, nspans, rows, splits, len, C, NH);
    CUDA_LAUNCHED();
    if (splits > 1) {
        attention_kv_merge_kernel<act_t><<<blocks_for((size_t)rows * NH, 8), 256, 0, cuda_stream>>>(
            out, part, rows, splits, C, NH);
        CUDA_LAUNCHED();
    }
}

extern "C" void cuda_attention_forward_kv(gpt2_act *out, const gpt2_act *qkv, gpt2_act *kcache,
                                          gpt2_act *vcache, const gpt2_span *spans, int nspans,
                                          int len, int C, int NH, float *scratch) {
    CUDA_ACT_DISPATCH(attention_forward_kv,
                      (out, qkv, kcache, vcache, spans, nspans, len, C, NH, scratch));
}
