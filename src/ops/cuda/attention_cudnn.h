/* Causal self-attention through cuDNN's fused flash attention (the cuDNN 9 frontend's SDPA
 * graphs), forward and backward, with the semantics of ops/ops.h's attention_forward and
 * attention_backward in bf16: qkv[B,T,3C] (q, k, v blocks of C, heads of hs = C/NH), scale
 * 1/sqrt(hs), causal. Built (GPT2C_HAVE_CUDNN) by nvcc against cuDNN, or on the emulated GPU
 * against the CPU stand-ins of cuDNN and its frontend (ops/cuda/emulate/include/cudnn*.h); the
 * functions have C linkage, so the frontend's C++ stays inside attention_cudnn.cu, the one file
 * that includes it. Device pointers throughout; the work goes on cuda_stream (cuda_common.cuh).
 * For the backend's .cu files: the element type is cuda_bf16.h's. */
#ifndef GPT2C_ATTENTION_CUDNN_H
#define GPT2C_ATTENTION_CUDNN_H

#include <cuda_bf16.h>
#include <stddef.h>

#include "gpt2c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Builds (once per shape, then cached: building is the slow part, not measured yet) the
 * forward and backward graphs for B sequences of T tokens, C channels, NH heads, on the current
 * device: 0 with *workspace_bytes the device scratch that either call needs (the larger of the
 * two; may be 0), or -1 with a one-line reason in err (may be NULL) when cuDNN cannot run it (no
 * device or one older than sm_80, a cuDNN older than 9, a head size cuDNN does not take, C not a
 * multiple of 8 so that K and V would start unaligned, no engine for the graph). A refused shape
 * is remembered too, so asking again costs nothing. Call it when the plan is made, after
 * cuda_init, and before the forward or backward of that shape. */
int cudnn_attention_prepare(int B, int T, int C, int NH, size_t *workspace_bytes,
                            gpt2c_error *err);

/* out[B,T,C] (head h in channels h*hs..) and lse[B,NH,T] (float: each query row's natural-log
 * log-sum-exp of its scaled, masked scores, the value ops.h's lse holds) from qkv[B,T,3C].
 * workspace: at least the prepared bytes (NULL when that is 0). Every pointer, here and in the
 * backward, must be 16-byte aligned, as cuDNN's engines assume (lse too: a layer's lse at an
 * offset of B*NH*T floats is, when B*NH*T is a multiple of 4); one that is not stops the
 * program with its name. A shape not prepared stops it too. */
void cudnn_attention_forward(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *qkv, int B,
                             int T, int C, int NH, void *workspace);

/* dqkv[B,T,3C] overwritten with dq, dk, dv in the q, k, v blocks, from dout[B,T,C], the
 * forward's qkv, out and lse. cuDNN's deterministic algorithm: the same bits every run. */
void cudnn_attention_backward(__nv_bfloat16 *dqkv, const __nv_bfloat16 *dout,
                              const __nv_bfloat16 *qkv, const __nv_bfloat16 *out,
                              const float *lse, int B, int T, int C, int NH, void *workspace);

/* "cuDNN 9.19.0 (frontend 1.32.0)": the library loaded at run time, then the headers built
 * against; for the plan line and the device check. */
const char *cudnn_attention_version(void);

/* The cached graphs and the handle, at the backend's close (cuda_close); prepare starts afresh
 * after it. */
void cudnn_attention_free(void);

#ifdef __cplusplus
}
#endif

#endif
