/* The communicator over NCCL: one process per GPU (cuda_init gives each rank the GPU of its rank
 * on the machine), the f32 collectives on the GPU's own buffers, queued on the backend's stream:
 * they run after the kernels that made the gradients and before those that read the result,
 * with no wait on the host. NCCL has no collectives of host memory: the trainer's few (bytes,
 * u64, f64 of a value or two) go to the communicator this one was opened over (MPI), which also
 * carries rank 0's ncclUniqueId to the others. As with MPI, a failed call ends the job.
 *
 * Built against NCCL's nccl.h on a GPU build, and against the stand-in (src/ops/cuda/emulate/
 * include/nccl.h, over MPI) in the emulated one. */
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"
#include "util/error.h"

typedef struct nccl_comm {
    gpt2c_comm base; /* first: the table's calls get &base */
    gpt2c_comm *host;
    ncclComm_t nccl;
    cudaStream_t stream;
} nccl_comm;

static nccl_comm *of(gpt2c_comm *c) { return (nccl_comm *)c; }

/* A failed call: the reason, then the end of the job (the other ranks may be in the call). */
static void check(nccl_comm *c, ncclResult_t r, const char *call) {
    if (r == ncclSuccess) return;
    fprintf(stderr, "gpt2c: rank %d: %s: %s (%s)\n", c->base.rank, call, ncclGetErrorString(r),
            ncclGetLastError(c->nccl));
    c->host->ops->abort(c->host, 1);
}

/* NCCL's reduce-scatter and all-gather move equal counts: rank r's shard must start at r times
 * the first shard's length (comm_shards makes them so; a buffer holds comm_padded values). */
static size_t equal_shard(nccl_comm *c, const size_t *offs) {
    size_t per = offs[1] - offs[0], n = offs[c->base.size];
    for (int r = 0; r < c->base.size; r++) {
        size_t want = per * (size_t)r < n ? per * (size_t)r : n;
        if (offs[0] != 0 || offs[r] != want) {
            fprintf(stderr, "gpt2c: NCCL: shard %d starts at %zu, not %zu: NCCL's shards are "
                            "equal (comm_shards)\n", r, offs[r], want);
            c->host->ops->abort(c->host, 1);
        }
    }
    return per;
}

static void allreduce_sum_f32(gpt2c_comm *g, float *buf, size_t n) {
    nccl_comm *c = of(g);
    check(c, ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, c->nccl, c->stream), "ncclAllReduce");
}

static void reduce_scatter_sum_f32(gpt2c_comm *g, float *buf, const size_t *offs) {
    nccl_comm *c = of(g);
    size_t per = equal_shard(c, offs);
    float *mine = buf + per * (size_t)g->rank; /* in place: NCCL's layout for it */
    check(c, ncclReduceScatter(buf, mine, per, ncclFloat32, ncclSum, c->nccl, c->stream),
          "ncclReduceScatter");
}

static void allgather_f32(gpt2c_comm *g, float *buf, const size_t *offs) {
    nccl_comm *c = of(g);
    size_t per = equal_shard(c, offs);
    const float *mine = buf + per * (size_t)g->rank;
    check(c, ncclAllGather(mine, buf, per, ncclFloat32, c->nccl, c->stream), "ncclAllGather");
}

/* Gather and scatter are sends and receives between rank 0 and each rank (rank 0's own part
 * too: NCCL moves a rank's data to itself), in one group so that none waits for another. */
static void gather_f32(gpt2c_comm *g, float *whole, const float *shard, const size_t *offs) {
    nccl_comm *c = of(g);
    check(c, ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; g->rank == 0 && r < g->size; r++)
        if (offs[r + 1] > offs[r])
            check(c, ncclRecv(whole + offs[r], offs[r + 1] - offs[r], ncclFloat32, r, c->nccl,
                              c->stream), "ncclRecv");
    size_t mine = offs[g->rank + 1] - offs[g->rank];
    if (mine) check(c, ncclSend(shard, mine, ncclFloat32, 0, c->nccl, c->stream), "ncclSend");
    check(c, ncclGroupEnd(), "ncclGroupEnd");
}

static void scatter_f32(gpt2c_comm *g, const float *whole, float *shard, const size_t *offs) {
    nccl_comm *c = of(g);
    check(c, ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; g->rank == 0 && r < g->size; r++)
        if (offs[r + 1] > offs[r])
            check(c, ncclSend(whole + offs[r], offs[r + 1] - offs[r], ncclFloat32, r, c->nccl,
                              c->stream), "ncclSend");
    size_t mine = offs[g->rank + 1] - offs[g->rank];
    if (mine) check(c, ncclRecv(shard, mine, ncclFloat32, 0, c->nccl, c->stream), "ncclRecv");
    check(c, ncclGroupEnd(), "ncclGroupEnd");
}

static void broadcast_f32(gpt2c_comm *g, float *buf, size_t n) {
    nccl_comm *c = of(g);
    check(c, ncclBroadcast(buf, buf, n, ncclFloat32, 0, c->nccl, c->stream), "ncclBroadcast");
}

/* host memory: the host communicator's */
static void allreduce_sum_f64(gpt2c_comm *g, double *buf, size_t n) {
    of(g)->host->ops->allreduce_sum_f64(of(g)->host, buf, n);
}
static void broadcast(gpt2c_comm *g, void *buf, size_t bytes) {
    of(g)->host->ops->broadcast(of(g)->host, buf, bytes);
}
static void allgather_u64(gpt2c_comm *g, uint64_t value, uint64_t *all) {
    of(g)->host->ops->allgather_u64(of(g)->host, value, all);
}
static void nccl_abort(gpt2c_comm *g, int status) { of(g)->host->ops->abort(of(g)->host, status); }

static void nccl_close(gpt2c_comm *g) {
    nccl_comm *c = of(g);
    ncclCommDestroy(c->nccl); /* (it lets the queued calls finish) */
    free(c);
}

static const comm_ops nccl_ops = {
#ifdef GPT2C_CUDA_EMULATED
    .name = "NCCL (the emulated build's stand-in, over MPI)",
#else
    .name = "NCCL",
#endif
    .device_buffers = 1,
    .allreduce_sum_f32 = allreduce_sum_f32,
    .allreduce_sum_f64 = allreduce_sum_f64,
    .reduce_scatter_sum_f32 = reduce_scatter_sum_f32,
    .allgather_f32 = allgather_f32,
    .gather_f32 = gather_f32,
    .scatter_f32 = scatter_f32,
    .broadcast = broadcast,
    .broadcast_f32 = broadcast_f32,
    .allgather_u64 = allgather_u64,
    .abort = nccl_abort,
    .close = nccl_close,
};

/* Rank 0's id, or why it has none, as one message of the host communicator. */
typedef struct {
    int made;
    ncclUniqueId id;
    char why[200];
} bootstrap;

int comm_nccl_open(gpt2c_comm *host, void *stream, gpt2c_comm **comm, gpt2c_error *err) {
    *comm = NULL;
    bootstrap b;
    memset(&b, 0, sizeof b);
    if (host->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&b.id);
        b.made = r == ncclSuccess;
        if (!b.made)
            snprintf(b.why, sizeof b.why, "%s (%s)", ncclGetErrorString(r), ncclGetLastError(NULL));
    }
    host->ops->broadcast(host, &b, sizeof b);
    if (!b.made) return err_set(err, "NCCL: rank 0 could not make the communicator's id: %s", b.why);
    nccl_comm *c = calloc(1, sizeof *c);
    if (!c) return err_set(err, "out of memory");
    ncclResult_t r = ncclCommInitRank(&c->nccl, host->size, b.id, host->rank);
    if (r != ncclSuccess) {
        int rc = err_set(err, "NCCL: rank %d of %d could not join the communicator: %s (%s)",
                         host->rank, host->size, ncclGetErrorString(r), ncclGetLastError(NULL));
        free(c);
        return rc;
    }
    c->base = (gpt2c_comm){host->rank, host->size, &nccl_ops};
    c->host = host, c->stream = (cudaStream_t)stream;
    *comm = &c->base;
    return 0;
}
