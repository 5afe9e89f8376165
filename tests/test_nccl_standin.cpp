/* The NCCL stand-in (src/ops/cuda/emulate/nccl.cpp) against NCCL's documented semantics, on 2 or
 * more MPI ranks (tests/test_dist_cuda.py runs it under mpirun -np 2): each collective's result,
 * in place and not, a collective ordered after the stream's queued work, a group's sends and
 * receives, and the refusals of bad arguments with NCCL's codes. Exit status: failed checks. */
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <vector>

#include "check.h"

static int rank, size;
static ncclComm_t comm;
static cudaStream_t stream;

static float *device_floats(size_t n) {
    void *p = nullptr;
    cudaMalloc(&p, n * sizeof(float));
    return static_cast<float *>(p);
}
static void upload(float *d, const std::vector<float> &h) {
    cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice);
}
static std::vector<float> download(const float *d, size_t n) {
    std::vector<float> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
}

/* value i of rank r's input: distinct over ranks and elements, exact in float sums */
static float in(int r, size_t i) { return (float)(100 * (r + 1) + i); }

static void allreduce(void) {
    const size_t n = 5;
    float *buf = device_floats(n), *out = device_floats(n);
    std::vector<float> h(n), sum(n, 0.f);
    for (size_t i = 0; i < n; i++) h[i] = in(rank, i);
    for (int r = 0; r < size; r++)
        for (size_t i = 0; i < n; i++) sum[i] += in(r, i);
    upload(buf, h);
    CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, comm, stream) == ncclSuccess);
    CHECK(download(buf, n) == sum);
    upload(buf, h);
    CHECK(ncclAllReduce(buf, out, n, ncclFloat32, ncclAvg, comm, stream) == ncclSuccess);
    std::vector<float> avg = download(out, n);
    for (size_t i = 0; i < n; i++) CHECK(avg[i] == sum[i] / size);
    CHECK(download(buf, n) == h); /* out of place: the input stays */
    /* after the stream's queued work: a memset queued before the call is what it reduces */
    upload(buf, h);
    cudaMemsetAsync(buf, 0, n * sizeof(float), stream);
    CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclMax, comm, stream) == ncclSuccess);
    CHECK(download(buf, n) == std::vector<float>(n, 0.f));
    cudaFree(buf), cudaFree(out);
}

static void reduce_scatter_allgather(void) {
    const size_t per = 3, n = per * (size_t)size;
    float *buf = device_floats(n);
    std::vector<float> h(n);
    for (size_t i = 0; i < n; i++) h[i] = in(rank, i);
    upload(buf, h);
    float *mine = buf + per * (size_t)rank;
    CHECK(ncclReduceScatter(buf, mine, per, ncclFloat32, ncclSum, comm, stream) == ncclSuccess);
    std::vector<float> got = download(mine, per);
    for (size_t i = 0; i < per; i++) {
        float want = 0;
        for (int r = 0; r < size; r++) want += in(r, per * (size_t)rank + i);
        CHECK(got[i] == want);
    }
    /* every rank's shard (its rank number) to every rank, in place */
    upload(mine, std::vector<float>(per, (float)rank));
    CHECK(ncclAllGather(mine, buf, per, ncclFloat32, comm, stream) == ncclSuccess);
    got = download(buf, n);
    for (size_t i = 0; i < n; i++) CHECK(got[i] == (float)(i / per));
    cudaFree(buf);
}

static void broadcast_and_p2p(void) {
    const size_t n = 4;
    float *send = device_floats(n), *recv = device_floats(n);
    std::vector<float> h(n);
    for (size_t i = 0; i < n; i++) h[i] = in(rank, i);
    upload(send, h);
    int root = size - 1;
    CHECK(ncclBroadcast(send, recv, n, ncclFloat32, root, comm, stream) == ncclSuccess);
    std::vector<float> got = download(recv, n);
    for (size_t i = 0; i < n; i++) CHECK(got[i] == in(root, i));
    /* a ring, rank 0 also to itself: in one group none waits for another */
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    float *self = device_floats(n);
    CHECK(ncclGroupStart() == ncclSuccess);
    CHECK(ncclSend(send, n, ncclFloat32, next, comm, stream) == ncclSuccess);
    CHECK(ncclRecv(recv, n, ncclFloat32, prev, comm, stream) == ncclSuccess);
    if (rank == 0) {
        CHECK(ncclSend(send, n, ncclFloat32, 0, comm, stream) == ncclSuccess);
        CHECK(ncclRecv(self, n, ncclFloat32, 0, comm, stream) == ncclSuccess);
    }
    CHECK(ncclGroupEnd() == ncclSuccess);
    got = download(recv, n);
    for (size_t i = 0; i < n; i++) CHECK(got[i] == in(prev, i));
    if (rank == 0) CHECK(download(self, n) == h);
    cudaFree(send), cudaFree(recv), cudaFree(self);
}

/* Refused before anything moves (so every rank may be refused alone): NCCL's codes. (The bad
 * datatype and op are the enums' ends: a value outside an enum's range is undefined in C++.) */
static void refusals(void) {
    float *buf = device_floats(8);
    CHECK(ncclAllReduce(buf, buf, 8, ncclNumTypes, ncclSum, comm, stream) == ncclInvalidArgument);
    CHECK(ncclAllReduce(buf, buf, 8, ncclFloat32, ncclNumOps, comm, stream) == ncclInvalidArgument);
    CHECK(ncclAllReduce(buf, buf, 8, ncclBfloat16, ncclSum, comm, stream) == ncclInvalidArgument);
    CHECK(ncclAllReduce(buf, buf, 8, ncclFloat32, ncclSum, nullptr, stream) == ncclInvalidArgument);
    CHECK(ncclBroadcast(buf, buf, 8, ncclFloat32, size, comm, stream) == ncclInvalidArgument);
    CHECK(ncclSend(buf, 8, ncclFloat32, -1, comm, stream) == ncclInvalidArgument);
    /* overlapping, but not NCCL's in-place layouts */
    CHECK(ncclAllReduce(buf, buf + 1, 4, ncclFloat32, ncclSum, comm, stream) == ncclInvalidArgument);
    CHECK(ncclAllGather(buf + 1, buf, 8 / size, ncclFloat32, comm, stream) == ncclInvalidArgument);
    CHECK(strstr(ncclGetLastError(comm), "in place") != nullptr);
    CHECK(ncclGroupEnd() == ncclInvalidUsage);
    /* a refused call fails its group's end too */
    CHECK(ncclGroupStart() == ncclSuccess);
    CHECK(ncclSend(buf, 8, ncclInt8, size + 3, comm, stream) == ncclInvalidArgument);
    CHECK(ncclGroupEnd() == ncclInvalidArgument);
    ncclUniqueId junk;
    memset(&junk, 7, sizeof junk);
    ncclComm_t other;
    CHECK(ncclCommInitRank(&other, size, junk, rank) == ncclInvalidArgument);
    CHECK(ncclCommInitRank(&other, size, junk, size) == ncclInvalidArgument);
    CHECK(strcmp(ncclGetErrorString(ncclInvalidUsage), ncclGetErrorString(ncclSuccess)) != 0);
    /* count 0 moves nothing: any pointers do */
    CHECK(ncclAllReduce(nullptr, nullptr, 0, ncclFloat32, ncclSum, comm, stream) == ncclSuccess);
    cudaFree(buf);
}

/* Ranks joining one id under a wrong count are all told (collectively: none is left waiting). */
static void wrong_count(void) {
    ncclUniqueId id;
    if (rank == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclComm_t other = nullptr;
    CHECK(ncclCommInitRank(&other, size + 1, id, rank) == ncclInvalidUsage);
    CHECK(other == nullptr);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    cudaStreamCreate(&stream);
    ncclUniqueId id;
    if (rank == 0) CHECK(ncclGetUniqueId(&id) == ncclSuccess);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    CHECK(ncclCommInitRank(&comm, size, id, rank) == ncclSuccess);
    allreduce();
    reduce_scatter_allgather();
    broadcast_and_p2p();
    refusals();
    wrong_count();
    CHECK(ncclCommDestroy(comm) == ncclSuccess);
    cudaStreamDestroy(stream);
    fprintf(stderr, "rank %d: %d passed, %d failed\n", rank, check_passed, check_failed);
    MPI_Finalize();
    return check_failed ? 1 : 0;
}
