/* The communicator over MPI's MPI_COMM_WORLD. Errors are fatal (MPI_ERRORS_ARE_FATAL): a failed
 * collective, or a rank that dies, ends the whole job instead of leaving the others waiting.
 * MPI counts are ints, so large buffers go in pieces of at most 2^30 values; shards must each
 * fit in an int (2^31 - 1 values: more than GPT-2 1.5B has in all). */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"
#include "util/error.h"

#define PIECE ((size_t)1 << 30)

static void allreduce_sum_f32(gpt2c_comm *c, float *buf, size_t n) {
    (void)c;
    for (size_t i = 0; i < n; i += PIECE) {
        size_t len = n - i < PIECE ? n - i : PIECE;
        MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

static void allreduce_sum_f64(gpt2c_comm *c, double *buf, size_t n) {
    (void)c;
    for (size_t i = 0; i < n; i += PIECE) {
        size_t len = n - i < PIECE ? n - i : PIECE;
        MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)len, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
}

/* counts and displacements of the shards, as MPI's ints (checked when the shards are made) */
static void int_shards(const gpt2c_comm *c, const size_t *offs, int *counts, int *displs) {
    for (int r = 0; r < c->size; r++) {
        counts[r] = (int)(offs[r + 1] - offs[r]);
        displs[r] = (int)offs[r];
    }
}

/* One reduction per shard, to its owner, in place there. (MPI_Reduce_scatter in place makes a
 * temporary copy of the whole buffer in Open MPI: as much memory as ZeRO-1 saves at 2 ranks.) */
static void reduce_scatter_sum_f32(gpt2c_comm *c, float *buf, const size_t *offs) {
    for (int r = 0; r < c->size; r++) {
        float *shard = buf + offs[r];
        int count = (int)(offs[r + 1] - offs[r]);
        if (r == c->rank)
            MPI_Reduce(MPI_IN_PLACE, shard, count, MPI_FLOAT, MPI_SUM, r, MPI_COMM_WORLD);
        else
            MPI_Reduce(shard, NULL, count, MPI_FLOAT, MPI_SUM, r, MPI_COMM_WORLD);
    }
}

static void allgather_f32(gpt2c_comm *c, float *buf, const size_t *offs) {
    int counts[c->size], displs[c->size];
    int_shards(c, offs, counts, displs);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT,
                   MPI_COMM_WORLD);
}

static void gather_f32(gpt2c_comm *c, float *whole, const float *shard, const size_t *offs) {
    int counts[c->size], displs[c->size];
    int_shards(c, offs, counts, displs);
    MPI_Gatherv(shard, counts[c->rank], MPI_FLOAT, whole, counts, displs, MPI_FLOAT, 0,
                MPI_COMM_WORLD);
}

static void scatter_f32(gpt2c_comm *c, const float *whole, float *shard, const size_t *offs) {
    int counts[c->size], displs[c->size];
    int_shards(c, offs, counts, displs);
    MPI_Scatterv(whole, counts, displs, MPI_FLOAT, shard, counts[c->rank], MPI_FLOAT, 0,
                 MPI_COMM_WORLD);
}

static void broadcast(gpt2c_comm *c, void *buf, size_t bytes) {
    (void)c;
    for (size_t i = 0; i < bytes; i += PIECE) {
        size_t len = bytes - i < PIECE ? bytes - i : PIECE;
        MPI_Bcast((char *)buf + i, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

static void broadcast_f32(gpt2c_comm *c, float *buf, size_t n) {
    broadcast(c, buf, n * sizeof *buf); /* host memory: MPI's buffers are the host's */
}

static void allgather_u64(gpt2c_comm *c, uint64_t value, uint64_t *all) {
    (void)c;
    MPI_Allgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
}

static void mpi_abort(gpt2c_comm *c, int status) {
    (void)c;
    MPI_Abort(MPI_COMM_WORLD, status);
}

static void mpi_close(gpt2c_comm *c) {
    free(c);
    MPI_Finalize();
}

static const comm_ops mpi_ops = {
    .name = "MPI",
    .device_buffers = 0, /* MPI reaches the host's memory only (no CUDA-aware MPI assumed) */
    .allreduce_sum_f32 = allreduce_sum_f32,
    .allreduce_sum_f64 = allreduce_sum_f64,
    .reduce_scatter_sum_f32 = reduce_scatter_sum_f32,
    .allgather_f32 = allgather_f32,
    .gather_f32 = gather_f32,
    .scatter_f32 = scatter_f32,
    .broadcast = broadcast,
    .broadcast_f32 = broadcast_f32,
    .allgather_u64 = allgather_u64,
    .abort = mpi_abort,
    .close = mpi_close,
};

int comm_mpi_open(gpt2c_comm **comm, gpt2c_error *err) {
    int provided;
    /* FUNNELED: only the main thread calls MPI; OpenMP threads compute between the calls */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return err_set(err, "MPI_Init failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    gpt2c_comm *c = calloc(1, sizeof *c);
    if (!c) {
        MPI_Finalize();
        return err_set(err, "out of memory");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    c->ops = &mpi_ops;
    *comm = c;
    return 0;
}
