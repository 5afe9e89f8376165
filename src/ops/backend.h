/* The backend handle: made once for a device (and its threads), it owns the ops table and says
 * what the backend can do on this machine. Everything above src/ops/ (the model, training,
 * generation) receives a handle and asks it; only src/ops/ names a backend. */
#ifndef GPT2C_BACKEND_H
#define GPT2C_BACKEND_H

#include "gpt2c.h"
#include "ops/ops.h"

typedef enum { GPT2_FP32, GPT2_BF16 } gpt2_precision;

typedef struct gpt2_backend {
    const char *name;     /* "cpu", "cuda" */
    const gpt2_ops *ops;  /* its kernels (--profile puts a timing table of them here) */
    int host_memory;      /* its buffers are the host's: the host reads and writes them itself;
                             else it reaches them only through upload and download */
    const char *memory;   /* where its memory is, for messages: "machine", "GPU" */
    /* Bytes of one activation element (gpt2_act) at the handle's precision: 4 (fp32) on the CPU
     * in both, 4 or 2 (bf16) on a GPU, which stores activations in the precision's type. */
    size_t act_bytes;
    gpt2_precision precision; /* what the handle runs (gpt2_backend_precision): fp32 at open */
    gpt2_precision default_precision; /* when none is asked for: fp32 on the CPU, bf16 on a GPU */
    /* The kernels each precision's products run here, in words for the plan line: "fp32
     * (AVX2)", "bf16 (AMX)", "bf16 (emulated: AVX2, fp32 GEMM on rounded inputs)"; NULL where
     * the backend cannot run that precision on this machine. */
    const char *path[2]; /* [GPT2_FP32], [GPT2_BF16] */
    /* Per precision: the longest prompt chunk whose products go through matmul_forward_rowwise,
     * so that a server's prompts share a forward (at most GPT2_SHORT_CHUNK; 0: none, each
     * prompt runs its own forward through matmul_forward). Where the GEMM library is faster
     * than that op even at a few rows times the prompts (AMX), or the op is not yet row-
     * independent (CUDA), 0. */
    int rows_chunk[2];
    int threads;
    /* Make the calling thread run the ops as the handle says (the CPU's OpenMP thread count is
     * each thread's own setting): a thread other than the one that opened the handle calls
     * gpt2_backend_enter_thread before its first op. NULL: nothing to do. */
    void (*enter_thread)(const struct gpt2_backend *be);
    /* 0 when the kernels run a model of this width and head count here, else -1 with a
     * one-line reason (the CUDA attention's head sizes). NULL: every shape. */
    int (*check_shapes)(int n_embd, int n_head, gpt2c_error *err);
    /* Make the handle run precision p: its act_bytes and its ops for that activation type.
     * NULL: activations are stored alike in both. */
    void (*set_precision)(struct gpt2_backend *be, gpt2_precision p);
    /* The queue the ops run in (CUDA: its cudaStream_t), for a communicator whose collectives
     * must run in order with them (NCCL). NULL: the ops run as they are called. */
    void *stream;
    /* Give back what the open took (a GPU's stream, library handles). NULL: nothing. */
    void (*close)(struct gpt2_backend *be);
} gpt2_backend;

static inline void gpt2_backend_enter_thread(const gpt2_backend *be) {
    if (be->enter_thread) be->enter_thread(be);
}

/* The backend --device names: cpu, cuda, or auto (CUDA when gpt2c was built with it and a GPU
 * is there, else the CPU), with `threads` CPU threads. */
int gpt2_backend_open(gpt2_backend *be, const char *device, int threads, gpt2c_error *err);
/* The end of the handle (after the last op and the last free). Closing a zeroed handle does
 * nothing. */
void gpt2_backend_close(gpt2_backend *be);
/* 0 when the backend runs a model of these shapes, else -1 with the reason (gpt2_create asks). */
int gpt2_backend_check_shapes(const gpt2_backend *be, int n_embd, int n_head, gpt2c_error *err);

/* 0 when the backend runs products in precision p on this machine, else -1 with the reason. */
int gpt2_backend_supports(const gpt2_backend *be, gpt2_precision p, gpt2c_error *err);

/* Element i of an activation buffer (activations are act_bytes each, not floats). */
static inline gpt2_act *act_at(const gpt2_backend *be, gpt2_act *a, size_t i) {
    return (gpt2_act *)((char *)a + i * be->act_bytes);
}

/* The precision named by --precision ("fp32", "bf16"; NULL: the backend's default), once the
 * backend has said it runs here, made the handle's: before any model on it makes a plan (the
 * activations' type follows it). */
int gpt2_backend_precision(gpt2_backend *be, const char *name, gpt2_precision *p,
                           gpt2c_error *err);

/* The backends' own openers (ops/cpu/cpu_ops.c, ops/cuda/cuda_ops.cu). */
int cpu_backend_open(gpt2_backend *be, int threads, gpt2c_error *err);
#ifdef GPT2C_HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif
int cuda_backend_open(gpt2_backend *be, int threads, gpt2c_error *err);
#ifdef __cplusplus
}
#endif
#endif

#endif
