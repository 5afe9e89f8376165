/* The NCCL stand-in (include/nccl.h) for the emulated CUDA build: NCCL's calls with NCCL's
 * semantics, the data moved by MPI, since emulated device memory is the host's and each rank is
 * an MPI process. Arguments are checked as NCCL checks them (and a little more: overlapping
 * buffers that are not NCCL's in-place layout are refused, where NCCL's result is undefined),
 * and a refusal returns NCCL's error code with the reason in ncclGetLastError.
 *
 * Stream order: a call runs after the work queued on its stream (the emulated runtime defers it
 * until someone waits: the stream is flushed first) and has finished when it returns, so the
 * work queued after it sees its result, as on a GPU. A group's calls are kept until its end and
 * run there in order, the point-to-point ones together (as NCCL does, so that a send and the
 * receive it pairs with cannot wait for each other).
 *
 * Limits of a stand-in: every process of the MPI job joins ncclCommInitRank (one communicator at
 * a time over the job, which is what one process per GPU makes); counts up to 2^31 - 1 (MPI's
 * ints); reductions of 16- and 8-bit floats are refused (MPI has no such types; they still move
 * in AllGather, Broadcast, Send and Recv). */
/* MPI's C API only: the C++ bindings mpi.h would pull in need a library gpt2c does not link */
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <climits>
#include <random>
#include <string>
#include <vector>

#include "nccl.h"
#include "stream.h"

struct ncclComm {
    MPI_Comm mpi; /* this communicator's own: its messages never meet MPI_COMM_WORLD's */
    int rank, size;
};

namespace {

/* "gpt2c NCCL stand-in" then a nonce: ranks joining with another run's id are told so */
const char ID_MAGIC[] = "gpt2c NCCL stand-in";
struct id_fields {
    char magic[sizeof ID_MAGIC];
    uint64_t nonce;
};
static_assert(sizeof(id_fields) <= NCCL_UNIQUE_ID_BYTES, "the id's fields fit in ncclUniqueId");

std::string last_error;

ncclResult_t refuse(ncclResult_t r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ncclResult_t refuse(ncclResult_t r, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    last_error = msg;
    return r;
}

enum kind { ALL_REDUCE, REDUCE_SCATTER, ALL_GATHER, BROADCAST, SEND, RECV };

struct call {
    kind k;
    const void *send;
    void *recv;
    size_t count; /* per rank: recvcount of ReduceScatter, sendcount of AllGather */
    ncclDataType_t type;
    ncclRedOp_t op;
    int peer; /* Broadcast's root, Send's and Recv's peer */
    ncclComm_t comm;
    cudaStream_t stream;
};

int group_depth;
std::vector<call> group_calls;
ncclResult_t group_error = ncclSuccess; /* a refused call inside the group fails its end too */

size_t type_bytes(ncclDataType_t t) {
    switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    default: return 8; /* ncclInt64, ncclUint64, ncclFloat64 */
    }
}

/* MPI's type for the elements; the 16- and 8-bit floats as raw bytes (moved, never reduced) */
MPI_Datatype mpi_type(ncclDataType_t t) {
    switch (t) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat16: case ncclBfloat16: return MPI_UINT16_T;
    case ncclFloat32: return MPI_FLOAT;
    default: return MPI_DOUBLE;
    }
}

MPI_Op mpi_op(ncclRedOp_t op) {
    switch (op) {
    case ncclProd: return MPI_PROD;
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    default: return MPI_SUM; /* ncclSum; ncclAvg divides the sum afterwards */
    }
}

template <typename T> void divide(void *buf, size_t n, int by) {
    T *p = static_cast<T *>(buf);
    for (size_t i = 0; i < n; i++) p[i] = static_cast<T>(p[i] / static_cast<T>(by));
}

/* ncclAvg: the sum over the ranks, divided by their number in the element type */
void average(void *buf, size_t n, ncclDataType_t t, int size) {
    switch (t) {
    case ncclInt8: divide<int8_t>(buf, n, size); break;
    case ncclUint8: divide<uint8_t>(buf, n, size); break;
    case ncclInt32: divide<int32_t>(buf, n, size); break;
    case ncclUint32: divide<uint32_t>(buf, n, size); break;
    case ncclInt64: divide<int64_t>(buf, n, size); break;
    case ncclUint64: divide<uint64_t>(buf, n, size); break;
    case ncclFloat32: divide<float>(buf, n, size); break;
    default: divide<double>(buf, n, size); break;
    }
}

bool overlap(const void *a, size_t abytes, const void *b, size_t bbytes) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return abytes && bbytes && x < y + bbytes && y < x + abytes;
}

const char *name_of(kind k) {
    static const char *const names[] = {"ncclAllReduce", "ncclReduceScatter", "ncclAllGather",
                                        "ncclBroadcast", "ncclSend", "ncclRecv"};
    return names[k];
}

/* What NCCL checks before it queues a call, and the buffers' placement. */
ncclResult_t check(const call &c) {
    const char *name = name_of(c.k);
    if (!c.comm) return refuse(ncclInvalidArgument, "%s: comm is NULL", name);
    if ((unsigned)c.type >= ncclNumTypes)
        return refuse(ncclInvalidArgument, "%s: datatype %d is not an ncclDataType_t", name, (int)c.type);
    bool reduces = c.k == ALL_REDUCE || c.k == REDUCE_SCATTER;
    if (reduces && (unsigned)c.op >= ncclNumOps)
        return refuse(ncclInvalidArgument, "%s: op %d is not a built-in ncclRedOp_t", name, (int)c.op);
    if (reduces && (c.type == ncclFloat16 || c.type == ncclBfloat16 || c.type >= ncclFloat8e4m3))
        return refuse(ncclInvalidArgument, "%s: the stand-in reduces no 16- or 8-bit floats", name);
    if (c.count > (size_t)INT_MAX)
        return refuse(ncclInvalidArgument, "%s: %zu elements: the stand-in's MPI counts end at 2^31 - 1",
                      name, c.count);
    int n = c.comm->size;
    if ((c.k == BROADCAST || c.k == SEND || c.k == RECV) && (c.peer < 0 || c.peer >= n))
        return refuse(ncclInvalidArgument, "%s: %s %d is not a rank of this %d-rank communicator",
                      name, c.k == BROADCAST ? "root" : "peer", c.peer, n);
    if (c.count == 0) return ncclSuccess; /* nothing is read or written: any pointers do */
    size_t e = type_bytes(c.type), bytes = c.count * e, rank = (size_t)c.comm->rank;
    size_t send_bytes = c.k == REDUCE_SCATTER ? bytes * n : c.k == RECV ? 0 : bytes;
    size_t recv_bytes = c.k == ALL_GATHER ? bytes * n : c.k == SEND ? 0 : bytes;
    bool root_only = c.k == BROADCAST && c.comm->rank != c.peer; /* (sendbuff: the root's only) */
    if ((send_bytes && !root_only && !c.send) || (recv_bytes && !c.recv))
        return refuse(ncclInvalidArgument, "%s: a NULL buffer for %zu elements", name, c.count);
    if (send_bytes && !root_only) cuemu::check_device_range(name, c.send, send_bytes);
    if (recv_bytes) cuemu::check_device_range(name, c.recv, recv_bytes);
    if (c.k == SEND || c.k == RECV || root_only || !overlap(c.send, send_bytes, c.recv, recv_bytes))
        return ncclSuccess;
    const char *s = static_cast<const char *>(c.send), *r = static_cast<const char *>(c.recv);
    bool in_place = c.k == REDUCE_SCATTER ? r == s + rank * bytes
                    : c.k == ALL_GATHER   ? s == r + rank * bytes
                                          : s == r;
    if (!in_place)
        return refuse(ncclInvalidArgument, "%s: sendbuff and recvbuff overlap, but not as in place "
                      "(%s)", name,
                      c.k == REDUCE_SCATTER ? "recvbuff = sendbuff + rank * recvcount"
                      : c.k == ALL_GATHER   ? "sendbuff = recvbuff + rank * sendcount"
                                            : "sendbuff = recvbuff");
    return ncclSuccess;
}

/* One collective, now (its stream already flushed). */
void run_collective(const call &c) {
    if (c.count == 0) return;
    MPI_Comm comm = c.comm->mpi;
    int n = (int)c.count, me = c.comm->rank;
    MPI_Datatype t = mpi_type(c.type);
    size_t bytes = c.count * type_bytes(c.type);
    char *recv = static_cast<char *>(c.recv);
    const char *send = static_cast<const char *>(c.send);
    switch (c.k) {
    case ALL_REDUCE:
        MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, n, t, mpi_op(c.op), comm);
        if (c.op == ncclAvg) average(recv, c.count, c.type, c.comm->size);
        break;
    case REDUCE_SCATTER: /* shard r summed into rank r (in place there when it is) */
        for (int r = 0; r < c.comm->size; r++) {
            const char *part = send + (size_t)r * bytes;
            if (r != me) MPI_Reduce(part, nullptr, n, t, mpi_op(c.op), r, comm);
            else MPI_Reduce(part == recv ? MPI_IN_PLACE : part, recv, n, t, mpi_op(c.op), r, comm);
        }
        if (c.op == ncclAvg) average(recv, c.count, c.type, c.comm->size);
        break;
    case ALL_GATHER:
        if (send == recv + (size_t)me * bytes)
            MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv, n, t, comm);
        else MPI_Allgather(send, n, t, recv, n, t, comm);
        break;
    case BROADCAST:
        if (me == c.peer && send != recv) memmove(recv, send, bytes);
        MPI_Bcast(recv, n, t, c.peer, comm);
        break;
    default: break; /* point to point: run_p2p */
    }
}

/* Sends and receives, all posted before any is waited for. */
void run_p2p(const call *calls, size_t n) {
    std::vector<MPI_Request> reqs;
    for (size_t i = 0; i < n; i++) {
        const call &c = calls[i];
        if (c.count == 0) continue;
        MPI_Request q;
        if (c.k == SEND)
            MPI_Isend(c.send, (int)c.count, mpi_type(c.type), c.peer, 0, c.comm->mpi, &q);
        else MPI_Irecv(c.recv, (int)c.count, mpi_type(c.type), c.peer, 0, c.comm->mpi, &q);
        reqs.push_back(q);
    }
    MPI_Waitall((int)reqs.size(), reqs.data(), MPI_STATUSES_IGNORE);
}

ncclResult_t run(const std::vector<call> &calls) {
    for (const call &c : calls) /* each after the work queued before it on its stream */
        if (cudaStreamSynchronize(c.stream) != cudaSuccess)
            return refuse(ncclUnhandledCudaError, "%s: the stream is not a valid cudaStream_t", name_of(c.k));
    for (size_t i = 0; i < calls.size();) {
        if (calls[i].k != SEND && calls[i].k != RECV) {
            run_collective(calls[i++]);
            continue;
        }
        size_t j = i;
        while (j < calls.size() && (calls[j].k == SEND || calls[j].k == RECV)) j++;
        run_p2p(&calls[i], j - i);
        i = j;
    }
    return ncclSuccess;
}

/* A call: checked, then run now or, inside a group, at its end. */
ncclResult_t issue(const call &c) {
    ncclResult_t r = check(c);
    if (r != ncclSuccess) {
        if (group_depth > 0) group_error = r;
        return r;
    }
    if (group_depth > 0) {
        group_calls.push_back(c);
        return ncclSuccess;
    }
    return run({c});
}

} // namespace

extern "C" {

const char *ncclGetErrorString(ncclResult_t result) {
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

const char *ncclGetLastError(ncclComm_t comm) {
    (void)comm; /* one process, one communicator: the last reason is its */
    return last_error.c_str();
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId) {
    if (!uniqueId) return refuse(ncclInvalidArgument, "ncclGetUniqueId: uniqueId is NULL");
    id_fields f;
    memcpy(f.magic, ID_MAGIC, sizeof ID_MAGIC);
    std::random_device rd; /* two runs on one machine get different ids */
    f.nonce = ((uint64_t)rd() << 32 ^ rd()) ^ (uint64_t)getpid();
    memset(uniqueId, 0, sizeof *uniqueId);
    memcpy(uniqueId->internal, &f, sizeof f);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank) {
    if (!comm) return refuse(ncclInvalidArgument, "ncclCommInitRank: comm is NULL");
    *comm = nullptr;
    int mpi_up = 0;
    MPI_Initialized(&mpi_up);
    if (!mpi_up)
        return refuse(ncclSystemError, "ncclCommInitRank: the NCCL stand-in moves data over MPI: "
                                       "start the ranks with mpirun");
    if (group_depth > 0)
        return refuse(ncclInvalidUsage, "ncclCommInitRank: the stand-in opens no communicator inside a group");
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return refuse(ncclInvalidArgument, "ncclCommInitRank: rank %d of %d ranks", rank, nranks);
    id_fields f;
    memcpy(&f, commId.internal, sizeof f);
    if (memcmp(f.magic, ID_MAGIC, sizeof ID_MAGIC) != 0)
        return refuse(ncclInvalidArgument, "ncclCommInitRank: commId was not made by ncclGetUniqueId");
    /* the ranks of one id find each other: every process of the job splits by the id, in the
     * order of the ranks they named */
    MPI_Comm mpi;
    MPI_Comm_split(MPI_COMM_WORLD, (int)(f.nonce & 0x7fffffff), rank, &mpi);
    int got_rank, got_size;
    MPI_Comm_rank(mpi, &got_rank);
    MPI_Comm_size(mpi, &got_size);
    int same_rank = got_rank == rank, all_same = 0;
    MPI_Allreduce(&same_rank, &all_same, 1, MPI_INT, MPI_LAND, mpi); /* one verdict for all */
    if (got_size != nranks || !all_same) {
        MPI_Comm_free(&mpi);
        return refuse(ncclInvalidUsage, "ncclCommInitRank: %d processes joined this id naming "
                      "%d ranks%s", got_size, nranks, all_same ? "" : ", not each rank once");
    }
    *comm = new ncclComm{mpi, rank, nranks};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm) return refuse(ncclInvalidArgument, "ncclCommDestroy: comm is NULL");
    MPI_Comm_free(&comm->mpi); /* (every call on it has finished: the stand-in's calls block) */
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
    return issue({ALL_REDUCE, sendbuff, recvbuff, count, datatype, op, 0, comm, stream});
}

ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream) {
    return issue({REDUCE_SCATTER, sendbuff, recvbuff, recvcount, datatype, op, 0, comm, stream});
}

ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
    return issue({ALL_GATHER, sendbuff, recvbuff, sendcount, datatype, ncclSum, 0, comm, stream});
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream) {
    return issue({BROADCAST, sendbuff, recvbuff, count, datatype, ncclSum, root, comm, stream});
}

ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream) {
    return issue({SEND, sendbuff, nullptr, count, datatype, ncclSum, peer, comm, stream});
}

ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream) {
    return issue({RECV, nullptr, recvbuff, count, datatype, ncclSum, peer, comm, stream});
}

ncclResult_t ncclGroupStart(void) {
    group_depth++;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
    if (group_depth == 0) return refuse(ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
    if (--group_depth > 0) return ncclSuccess;
    std::vector<call> calls;
    calls.swap(group_calls);
    ncclResult_t r = group_error;
    group_error = ncclSuccess;
    return r != ncclSuccess ? r : run(calls);
}

} // extern "C"
