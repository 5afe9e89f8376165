/* A CPU stand-in for the part of cuDNN's own API that the backend calls (gpt2c's CUDA-on-CPU
 * runtime): the handle, its stream, the version and the status strings. The work itself goes
 * through the frontend (cudnn_frontend.h, its stand-in beside this file). Names and values are
 * cuDNN 9's, so that code written against the library compiles here unchanged. */
#ifndef GPT2C_CUEMU_CUDNN_H
#define GPT2C_CUEMU_CUDNN_H

#include <stddef.h>

#include "cuda_runtime.h"

/* The cuDNN this stand-in answers as (cudnnGetVersion): the release whose rules it keeps where
 * they depend on the version (cudnn_frontend.h says which). */
#define CUDNN_MAJOR 9
#define CUDNN_MINOR 19
#define CUDNN_PATCHLEVEL 0
#define CUDNN_VERSION (CUDNN_MAJOR * 10000 + CUDNN_MINOR * 100 + CUDNN_PATCHLEVEL)

typedef struct cudnnContext *cudnnHandle_t;

typedef enum {
    CUDNN_STATUS_SUCCESS = 0,
    CUDNN_STATUS_NOT_INITIALIZED = 1001,
    CUDNN_STATUS_BAD_PARAM = 2000,
    CUDNN_STATUS_BAD_PARAM_NULL_POINTER = 2002,
    CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH = 2007,
    CUDNN_STATUS_NOT_SUPPORTED = 3000,
    CUDNN_STATUS_INTERNAL_ERROR = 4000,
    CUDNN_STATUS_EXECUTION_FAILED = 5000,
} cudnnStatus_t;

extern "C" {
size_t cudnnGetVersion(void);
const char *cudnnGetErrorString(cudnnStatus_t status);
cudnnStatus_t cudnnCreate(cudnnHandle_t *handle);
/* waits for the device first, as the library's: queued work may still use the handle */
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle);
/* the stream later executions queue on (NULL: the legacy default stream) */
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream);
cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *stream);
}

#endif
