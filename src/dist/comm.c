/* Opening a communicator: MPI when this process was started by an MPI launcher (and gpt2c was
 * built with MPI), else the one-process communicator below, whose collectives have nothing to
 * exchange. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"
#include "util/error.h"

static void single_nothing_f32(gpt2c_comm *c, float *buf, size_t n) { (void)c, (void)buf, (void)n; }
static void single_nothing_f64(gpt2c_comm *c, double *buf, size_t n) { (void)c, (void)buf, (void)n; }
static void single_shards(gpt2c_comm *c, float *buf, const size_t *offs) {
    (void)c, (void)buf, (void)offs;
}
static void single_gather(gpt2c_comm *c, float *whole, const float *shard, const size_t *offs) {
    (void)c;
    if (whole != shard) memcpy(whole, shard, offs[1] * sizeof *whole);
}
static void single_scatter(gpt2c_comm *c, const float *whole, float *shard, const size_t *offs) {
    (void)c;
    if (whole != shard) memcpy(shard, whole, offs[1] * sizeof *shard);
}
static void single_broadcast(gpt2c_comm *c, void *buf, size_t bytes) { (void)c, (void)buf, (void)bytes; }
static void single_broadcast_f32(gpt2c_comm *c, float *buf, size_t n) { (void)c, (void)buf, (void)n; }
static void single_allgather_u64(gpt2c_comm *c, uint64_t value, uint64_t *all) {
    (void)c;
    all[0] = value;
}
static void single_abort(gpt2c_comm *c, int status) {
    (void)c;
    exit(status);
}

gpt2c_comm *comm_single(void) {
    static const comm_ops ops = {
        .name = "one process",
        .device_buffers = 1, /* nothing moves */
        .allreduce_sum_f32 = single_nothing_f32,
        .allreduce_sum_f64 = single_nothing_f64,
        .reduce_scatter_sum_f32 = single_shards,
        .allgather_f32 = single_shards,
        .gather_f32 = single_gather,
        .scatter_f32 = single_scatter,
        .broadcast = single_broadcast,
        .broadcast_f32 = single_broadcast_f32,
        .allgather_u64 = single_allgather_u64,
        .abort = single_abort,
        .close = NULL, /* never closed */
    };
    static gpt2c_comm one = {0, 1, &ops};
    return &one;
}

/* The variables MPI launchers set in the processes they start: Open MPI, then MPICH's Hydra and
 * PMIx-based launchers (Slurm's srun among them). */
static const char *launcher_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return getenv(vars[i]);
    return NULL;
}

GPT2C_API int gpt2c_comm_open(gpt2c_comm **comm, gpt2c_error *err) {
    *comm = NULL;
    const char *size = launcher_size();
#ifdef GPT2C_HAVE_MPI
    if (size) return comm_mpi_open(comm, err);
#else
    if (size && strcmp(size, "1") != 0)
        return err_set(err, "started by an MPI launcher with %s processes, but this gpt2c was built "
                            "without MPI (install libopenmpi-dev and rebuild)", size);
#endif
    *comm = comm_single();
    return 0;
}

GPT2C_API int gpt2c_comm_rank(const gpt2c_comm *comm) { return comm ? comm->rank : 0; }
GPT2C_API int gpt2c_comm_size(const gpt2c_comm *comm) { return comm ? comm->size : 1; }

GPT2C_API void gpt2c_comm_abort(gpt2c_comm *comm, int status) {
    fflush(stdout);
    fflush(stderr);
    if (comm) comm->ops->abort(comm, status);
    exit(status);
}

GPT2C_API void gpt2c_comm_close(gpt2c_comm *comm) {
    if (comm && comm->ops->close) comm->ops->close(comm);
}

/* Rounded up twice (to a whole share, then to 16) so that size shards cover n: the last shard
 * is never longer than the others, as NCCL's equal shards need. */
size_t comm_shard_len(size_t n, int size) {
    size_t share = (n + (size_t)size - 1) / (size_t)size;
    return (share + 15) / 16 * 16;
}

size_t comm_padded(size_t n, int size) { return comm_shard_len(n, size) * (size_t)size; }

void comm_shards(size_t n, int size, size_t *offs) {
    size_t per = comm_shard_len(n, size);
    for (int r = 0; r <= size; r++) {
        size_t o = per * (size_t)r;
        offs[r] = o < n ? o : n;
    }
}

int comm_device_open(gpt2c_comm *host, void *stream, gpt2c_comm **comm, gpt2c_error *err) {
    *comm = NULL;
#ifdef GPT2C_HAVE_NCCL
    if (!stream) return err_set(err, "the backend has no stream for NCCL's collectives");
    return comm_nccl_open(host, stream, comm, err);
#else
    (void)stream;
    return err_set(err, "training on %d ranks of a GPU backend: this gpt2c was built without "
                        "NCCL (or without MPI), and MPI reaches host memory only: rebuild with "
                        "both, or run one process without mpirun", host->size);
#endif
}
