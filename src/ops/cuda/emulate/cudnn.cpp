/* cuDNN's handle on the CPU (include/cudnn.h): a stream to queue on, and the set of live
 * handles, so that a destroyed or made-up one is refused rather than read. */
#include <mutex>
#include <set>

#include "cudnn.h"

struct cudnnContext {
    cudaStream_t stream;
};

namespace {
std::mutex lock;
std::set<cudnnHandle_t> live;

bool alive(cudnnHandle_t h) {
    std::lock_guard<std::mutex> g(lock);
    return h && live.count(h);
}
} // namespace

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t status) {
    switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    }
    return "CUDNN_UNKNOWN_STATUS_FOUND"; /* the library's words for a code it does not know */
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    if (!handle) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) return CUDNN_STATUS_NOT_INITIALIZED;
    *handle = new cudnnContext{nullptr};
    std::lock_guard<std::mutex> g(lock);
    live.insert(*handle);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
    if (!alive(handle)) return CUDNN_STATUS_BAD_PARAM;
    cudaDeviceSynchronize(); /* queued work may still be the handle's */
    std::lock_guard<std::mutex> g(lock);
    live.erase(handle);
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
    if (!alive(handle)) return CUDNN_STATUS_BAD_PARAM;
    handle->stream = stream;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *stream) {
    if (!alive(handle)) return CUDNN_STATUS_BAD_PARAM;
    if (!stream) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    *stream = handle->stream;
    return CUDNN_STATUS_SUCCESS;
}

} /* extern "C" */
