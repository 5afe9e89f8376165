/* The arithmetic of the cuDNN stand-in's fused attention (cudnn_sdpa.cpp), apart from the
 * frontend's bookkeeping (cudnn_graph.cpp), which checks a graph and then calls these on its
 * stream with operands it has already checked. */
#ifndef GPT2C_CUEMU_CUDNN_SDPA_H
#define GPT2C_CUEMU_CUDNN_SDPA_H

#include <stddef.h>
#include <stdint.h>

namespace cuemu {

/* A tensor in device memory: element [b, h, s, d] at p + b s0 + h s1 + s s2 + d s3 (elements:
 * bf16 for all but Stats, which is float). */
struct sdpa_view {
    void *p;
    int64_t stride[4];
};

struct sdpa_shape {
    int64_t b, h, s_q, s_kv, d_qk, d_v;
    float scale; /* the scores are scale * q . k */
    /* the causal band, when `banded`: key j is seen by query i when j <= i + shift + right_bound,
     * shift 0 aligned top left, s_kv - s_q aligned bottom right */
    bool banded;
    int64_t shift, right_bound;
};

/* The backward's workspace: each row's D = dO . O, then dQ's fp32 sums. */
size_t sdpa_backward_workspace_bytes(const sdpa_shape &s);

/* O from Q, K, V; and Stats (natural-log log-sum-exp per query row) when stats.p is not null. */
void sdpa_forward(const sdpa_shape &s, sdpa_view q, sdpa_view k, sdpa_view v, sdpa_view o,
                  sdpa_view stats);

/* dQ, dK, dV from Q, K, V, O, dO and the forward's Stats; workspace: the bytes above. */
void sdpa_backward(const sdpa_shape &s, sdpa_view q, sdpa_view k, sdpa_view v, sdpa_view o,
                   sdpa_view dout, sdpa_view stats, sdpa_view dq, sdpa_view dk, sdpa_view dv,
                   void *workspace);

} // namespace cuemu

#endif
