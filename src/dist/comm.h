/* The communicator of data-parallel training: what the trainer needs from the ranks, behind one
 * table so that MPI (comm_mpi.c) and NCCL (comm_nccl.c) can supply it; comm.c has the one-process
 * version and picks the implementation. Every call is collective: all ranks make it, in the
 * same order. Buffers are in place. A failed call ends the job (MPI's errors are fatal), so the
 * calls return nothing. */
#ifndef GPT2C_COMM_H
#define GPT2C_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2c.h"

typedef struct comm_ops {
    const char *name; /* for the plan line: "MPI", "NCCL" */
    /* Whether the buffers of the f32 collectives may be in a GPU's memory (NCCL would say 1;
     * one process moves no data, so 1). With 0 (MPI) they must be the host's. The u64 and f64
     * calls and broadcast take host memory on every communicator. */
    int device_buffers;
    void (*allreduce_sum_f32)(gpt2c_comm *c, float *buf, size_t n);
    void (*allreduce_sum_f64)(gpt2c_comm *c, double *buf, size_t n);
    /* Shards: rank r owns buf[offs[r] .. offs[r+1]) (offs has size+1 entries, from
     * comm_shards). reduce_scatter: afterwards rank r's shard holds the sum of every rank's
     * shard r; the rest of buf is undefined. allgather: afterwards every rank holds every rank's
     * shard. buf holds comm_padded values, the ones past the last shard zero: NCCL moves equal
     * shards, the last one's padding included. */
    void (*reduce_scatter_sum_f32)(gpt2c_comm *c, float *buf, const size_t *offs);
    void (*allgather_f32)(gpt2c_comm *c, float *buf, const size_t *offs);
    /* Between shard-sized buffers (each rank's `shard`, offs[r+1] - offs[r] values) and a whole
     * one on rank 0 (`whole`, ignored elsewhere): gather collects the shards into rank 0's whole,
     * scatter hands its parts out. */
    void (*gather_f32)(gpt2c_comm *c, float *whole, const float *shard, const size_t *offs);
    void (*scatter_f32)(gpt2c_comm *c, const float *whole, float *shard, const size_t *offs);
    /* rank 0's values to every rank: host bytes; n floats of the f32 collectives' kind */
    void (*broadcast)(gpt2c_comm *c, void *buf, size_t bytes);
    void (*broadcast_f32)(gpt2c_comm *c, float *buf, size_t n);
    /* every rank's value, in rank order, to every rank */
    void (*allgather_u64)(gpt2c_comm *c, uint64_t value, uint64_t *all);
    void (*abort)(gpt2c_comm *c, int status);
    void (*close)(gpt2c_comm *c);
} comm_ops;

struct gpt2c_comm {
    int rank, size;
    const comm_ops *ops;
};

/* This process alone (static: nothing to open or close). */
gpt2c_comm *comm_single(void);

/* The MPI communicator, when built with MPI (GPT2C_HAVE_MPI): MPI_Init and MPI_COMM_WORLD. */
int comm_mpi_open(gpt2c_comm **comm, gpt2c_error *err);

/* Rank r's shard of n values split over size ranks: equal parts of comm_shard_len values (a
 * multiple of 16: 64 bytes), the last ranks' shorter or empty. offs gets size+1 entries. */
void comm_shards(size_t n, int size, size_t *offs);
size_t comm_shard_len(size_t n, int size);
/* What a buffer of n values split into shards must hold for a communicator that moves equal
 * shards (NCCL): size shards of comm_shard_len, the values past n zero. */
size_t comm_padded(size_t n, int size);

/* A communicator of the backend's device memory, over `host` (opened: its ranks, and its host
 * collectives, which bootstrap the new one and serve its host-memory calls): NCCL, its
 * collectives queued on `stream` (the backend's, gpt2_backend.stream), when gpt2c was built with
 * NCCL; else an error saying so. Close it (gpt2c_comm_close) before host. */
int comm_device_open(gpt2c_comm *host, void *stream, gpt2c_comm **comm, gpt2c_error *err);
int comm_nccl_open(gpt2c_comm *host, void *stream, gpt2c_comm **comm, gpt2c_error *err);

#endif
