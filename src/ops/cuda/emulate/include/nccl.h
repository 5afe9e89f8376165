/* gpt2c's NCCL stand-in (nccl.cpp): this header stands in for NCCL's nccl.h in the emulated CUDA
 * build (-DGPT2C_CUDA_EMULATE=ON), so that the NCCL communicator (src/dist/comm_nccl.c) runs and
 * is tested without a GPU. It declares the part of NCCL's API that communicator calls, with
 * NCCL's names, values and semantics; C as well as C++, as NCCL's own header is. Each process is
 * one rank (NCCL's one GPU per process) and the data moves over MPI underneath: every rank must
 * be a process of the same MPI job. */
#ifndef GPT2C_CUEMU_NCCL_H
#define GPT2C_CUEMU_NCCL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* the emulated runtime's stream (cuda_runtime.h declares the same type) */
typedef struct CUstream_st *cudaStream_t;

typedef struct ncclComm *ncclComm_t;

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
    ncclNumResults = 8
} ncclResult_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4, ncclNumOps = 5 } ncclRedOp_t;

typedef enum {
    ncclInt8 = 0, ncclChar = 0,
    ncclUint8 = 1,
    ncclInt32 = 2, ncclInt = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6, ncclHalf = 6,
    ncclFloat32 = 7, ncclFloat = 7,
    ncclFloat64 = 8, ncclDouble = 8,
    ncclBfloat16 = 9,
    ncclFloat8e4m3 = 10,
    ncclFloat8e5m2 = 11,
    ncclNumTypes = 12
} ncclDataType_t;

/* An id that ncclCommInitRank's ranks share (rank 0 makes it, the others receive it). */
ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId);
/* Collective over the nranks ranks (here: every process of the MPI job), each naming its rank. */
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t comm);

const char *ncclGetErrorString(ncclResult_t result);
/* The last failure's reason, in words (NULL comm: any communicator's). */
const char *ncclGetLastError(ncclComm_t comm);

/* Collectives, ordered on `stream` after the work queued there. Buffers are device memory.
 * In place: AllReduce and Broadcast with sendbuff == recvbuff; ReduceScatter with
 * recvbuff == sendbuff + rank * recvcount; AllGather with sendbuff == recvbuff + rank * sendcount. */
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream);
ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream);
ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream);
/* Point to point: a send and its peer's receive must be in the same group (or both alone). */
ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream);
/* The calls between a start and its end are issued together at the end (nesting counts). */
ncclResult_t ncclGroupStart(void);
ncclResult_t ncclGroupEnd(void);

#ifdef __cplusplus
}
#endif

#endif
