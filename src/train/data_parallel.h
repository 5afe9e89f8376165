/* What data-parallel training adds to the training loop, over the communicator (dist/comm.h):
 * every rank starts from rank 0's weights and optimizer state, the gradients are summed over the
 * ranks once per optimizer step, losses are averaged, and with ZeRO-1 each rank keeps and updates
 * only its shard of the AdamW state and the updated weights are gathered. With one process every
 * collective is a no-op. The model's buffers are the backend's: they go to the communicator as
 * they are, and are touched here only through the backend's ops, so that a communicator of
 * device memory (NCCL) needs no change here. */
#ifndef GPT2C_DATA_PARALLEL_H
#define GPT2C_DATA_PARALLEL_H

#include <stdint.h>

#include "dist/comm.h"
#include "model/gpt2.h"
#include "train/optimizer.h"

typedef struct data_parallel {
    gpt2c_comm *comm;        /* the one the collectives go to: the caller's, or device_comm */
    gpt2c_comm *device_comm; /* NCCL over the caller's, for a GPU's buffers; NULL: none opened */
    const gpt2_backend *be; /* whose memory the model, the gradients and the moments are in */
    int rank, size, zero;
    size_t *offs;   /* the parameters' shards, size + 1 entries */
    size_t lo, hi;  /* the parameters this rank's optimizer updates: its shard (ZeRO-1) or all */
} data_parallel;

/* When comm cannot reach the backend's memory (MPI and a GPU), a communicator that can (NCCL)
 * is opened over it, or the reason there is none is the error. */
int dp_init(data_parallel *d, gpt2c_comm *comm, int zero, const gpt2_backend *be,
            gpt2c_error *err);
/* The parameters' shards (and this rank's range), once the model is known; its flat buffers
 * padded to the shards' collectives (comm_padded). Before the model is planned. */
int dp_shard(data_parallel *d, gpt2_model *m, gpt2c_error *err);
void dp_free(data_parallel *d);

/* Whether every rank has the same value (a hash of what must agree); the error names `what`. */
int dp_check_same(const data_parallel *d, uint64_t value, const char *what, gpt2c_error *err);
/* FNV-1a, to hash what must agree */
uint64_t dp_hash(uint64_t h, const void *data, size_t n);

/* rank 0's bytes (host memory) to every rank */
void dp_broadcast(const data_parallel *d, void *buf, size_t bytes);
/* rank 0's parameters to every rank (and their bf16 copy remade) */
void dp_share_params(const data_parallel *d, gpt2_model *m);
/* Rank 0's whole AdamW moments (whole_m, whole_v: all parameters, backend buffers; ignored on
 * other ranks) into
 * every rank's s (whole, or its shard with ZeRO-1); and back for a checkpoint (gathered into
 * rank 0's whole buffers). */
void dp_scatter_moments(const data_parallel *d, const float *whole_m, const float *whole_v,
                        adamw_state *s);
void dp_gather_moments(const data_parallel *d, const adamw_state *s, float *whole_m,
                       float *whole_v);

/* After the micro-steps: the gradients summed over the ranks, in all of m->grads or (ZeRO-1)
 * in this rank's shard. */
void dp_reduce_grads(const data_parallel *d, gpt2_model *m);
/* The global gradient norm, over every rank's part. */
double dp_grad_norm(const data_parallel *d, const gpt2_model *m);
/* The sum and the mean over the ranks of a value each has. */
double dp_sum(const data_parallel *d, double local);
double dp_mean(const data_parallel *d, double local);
/* After this rank's AdamW update (which zeroed the gradients of its range): with ZeRO-1, zero
 * the rest of the gradients and gather the updated parameters from their ranks. */
void dp_after_update(const data_parallel *d, gpt2_model *m);

#endif
