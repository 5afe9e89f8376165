/* gpt2c's CUDA-on-CPU runtime (README: "How GPU code is tested without a GPU"): this header
 * stands in for the toolkit's cuda_runtime.h when the backend's .cu files are built as C++ for the CPU
 * (-DGPT2C_CUDA_EMULATE=ON). It declares the part of the runtime API the backend calls (on host
 * memory, with streams that run when synchronized) and the kernel language its kernels use:
 * threadIdx and friends, __shared__, barriers, warp shuffles and votes, atomics, math. A launch
 * `k<<<grid, block, shmem, stream>>>(args)` reaches this file rewritten (cmake/CudaEmulate.cmake)
 * as `::cuemu::launch("k", k, grid, block, shmem, stream)(args)`.
 *
 * Each block runs its threads as fibers on one OS thread (fibers.cpp), switching only at a
 * barrier or a warp collective, in the order GPT2C_CUDA_EMULATE_ORDER picks: warp (thread by
 * thread, each warp up to the block's next barrier before the next warp), reversed (the last
 * thread and the last block first) or lockstep (every thread up to its next barrier or warp
 * collective in turn). A barrier or collective that cannot be met stops the run with a message
 * naming the kernel. */
#ifndef GPT2C_CUEMU_CUDA_RUNTIME_H
#define GPT2C_CUEMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

/* ---- the runtime API's types ---- */

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalState = 401,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureImplicit = 906,
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;

typedef enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
} cudaFuncAttribute;

/* the attributes cudaDeviceGetAttribute answers (the toolkit's values) */
typedef enum cudaDeviceAttr {
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
} cudaDeviceAttr;

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;
typedef enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
} cudaStreamCaptureMode;

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};
static inline float2 make_float2(float x, float y) { return {x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

/* What the backend reads of a device: the emulated one is an sm_90 with the CPU's memory. */
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin;
    int warpSize, maxThreadsPerBlock, maxThreadsDim[3], maxGridSize[3];
    int major, minor, multiProcessorCount;
};

/* ---- the runtime API (runtime.cpp) ---- */

extern "C" {
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);

cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags);

/* Capture: the work queued on the stream is recorded, not run, until the capture ends; a call
 * that would wait for the device (a synchronize, a blocking copy or memset, a copy to or from
 * pageable memory, cudaFree) fails with cudaErrorStreamCaptureUnsupported and spoils the
 * capture, whose end then fails with cudaErrorStreamCaptureInvalidated, as CUDA's. */
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
/* Its work's count (nodes NULL: only the count; the emulation has no node handles to give). */
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, void **nodes, size_t *count);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
}

/* ---- the kernel language ---- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n))) /* (anywhere in a declaration, as nvcc's) */
#define __constant__
/* One block runs at a time in the process, so a block's shared variables can be static (the
 * build's rewrite also refills them each block: cmake/CudaEmulate.cmake). */
#define __shared__ static

namespace cuemu {

/* The block that runs on this OS thread, and the fiber (CUDA thread) running now. */
struct block_context {
    uint3 block_idx;
    dim3 block_dim, grid_dim;
    void *dynamic_shared;
};
extern const block_context *current_block;
extern const uint3 *current_thread;

/* __syncthreads; a warp collective: the calling lane's 8 bytes in, the named lane's out (or a
 * vote's mask). file and line are the call's, for messages. */
enum collective_kind { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, SYNCWARP, VOTE };
void syncthreads(const char *file, int line);
uint64_t warp_collective(collective_kind kind, unsigned mask, uint64_t value, int arg, int width,
                         const char *file, int line);
/* The start of the block's dynamic shared memory (extern __shared__ T name[]). */
void *dynamic_shared();
/* A static __shared__ variable reached by a thread: the block's first fills it with 0xff. */
void fresh_shared(void *p, size_t bytes);

} // namespace cuemu

#define threadIdx (*::cuemu::current_thread)
#define blockIdx (::cuemu::current_block->block_idx)
#define blockDim (::cuemu::current_block->block_dim)
#define gridDim (::cuemu::current_block->grid_dim)
static constexpr int warpSize = 32;

static inline void __syncthreads(const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    ::cuemu::syncthreads(file, line);
}
static inline void __syncwarp(unsigned mask = 0xffffffffu, const char *file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
    ::cuemu::warp_collective(::cuemu::SYNCWARP, mask, 0, 0, 32, file, line);
}
/* Memory is the host's and one block runs at a time: fences order nothing more. */
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

namespace cuemu {
template <typename T> uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of <= 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    return u;
}
template <typename T> T from_bits(uint64_t u) {
    T v;
    memcpy(&v, &u, sizeof v);
    return v;
}
template <typename T>
T shuffle(collective_kind kind, unsigned mask, T v, int arg, int width, const char *file, int line) {
    return from_bits<T>(warp_collective(kind, mask, to_bits(v), arg, width, file, line));
}
} // namespace cuemu

template <typename T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32, const char *file = __builtin_FILE(),
              int line = __builtin_LINE()) {
    return ::cuemu::shuffle(::cuemu::SHFL_IDX, mask, v, src_lane, width, file, line);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32,
                 const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::shuffle(::cuemu::SHFL_UP, mask, v, (int)delta, width, file, line);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                   const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::shuffle(::cuemu::SHFL_DOWN, mask, v, (int)delta, width, file, line);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                  const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::shuffle(::cuemu::SHFL_XOR, mask, v, lane_mask, width, file, line);
}
static inline unsigned __ballot_sync(unsigned mask, int pred, const char *file = __builtin_FILE(),
                                     int line = __builtin_LINE()) {
    return (unsigned)::cuemu::warp_collective(::cuemu::VOTE, mask, pred != 0, 0, 32, file, line);
}
static inline int __any_sync(unsigned mask, int pred, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
    return __ballot_sync(mask, pred, file, line) != 0;
}
static inline int __all_sync(unsigned mask, int pred, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
    return __ballot_sync(mask, pred, file, line) == mask;
}

/* Atomics: fibers switch only at barriers and collectives, and one block runs at a time, so a
 * read-modify-write cannot be interrupted (which is also why the emulation cannot show a lost
 * update or an order that changes a float sum: the README says so). */
template <typename T> T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> T atomicSub(T *p, T v) {
    T old = *p;
    *p = old - v;
    return old;
}
template <typename T> T atomicMax(T *p, T v) {
    T old = *p;
    *p = old < v ? v : old;
    return old;
}
template <typename T> T atomicMin(T *p, T v) {
    T old = *p;
    *p = v < old ? v : old;
    return old;
}
template <typename T> T atomicExch(T *p, T v) {
    T old = *p;
    *p = v;
    return old;
}
template <typename T> T atomicCAS(T *p, T compare, T v) {
    T old = *p;
    if (old == compare) *p = v;
    return old;
}

/* The device math the kernels use that the host's libm lacks (the rest is libm's: its last
 * bits are not the GPU's). */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
/* (__expf and __logf: glibc's math.h declares its own, the same functions as expf and logf) */
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline unsigned __float_as_uint(float x) { return ::cuemu::from_bits<unsigned>(::cuemu::to_bits(x)); }
static inline int __float_as_int(float x) { return ::cuemu::from_bits<int>(::cuemu::to_bits(x)); }
static inline float __uint_as_float(unsigned x) { return ::cuemu::from_bits<float>(::cuemu::to_bits(x)); }
static inline float __int_as_float(int x) { return ::cuemu::from_bits<float>(::cuemu::to_bits(x)); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
static inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

/* ---- launches ---- */

template <class T> cudaError_t cudaFuncSetAttribute(T *func, cudaFuncAttribute attr, int value);

namespace cuemu {

/* Queues a kernel on the stream (runtime.cpp): its grid of blocks, each running `thread` once
 * per CUDA thread; or records the launch's error (a bad configuration) for cudaGetLastError. */
void launch_kernel(const char *name, const void *func, dim3 grid, dim3 block, size_t shmem,
                   cudaStream_t stream, std::function<void()> thread);
cudaError_t set_func_attribute(const void *func, cudaFuncAttribute attr, int value);

template <typename... P> struct launcher {
    const char *name;
    void (*kernel)(P...);
    dim3 grid, block;
    size_t shmem;
    cudaStream_t stream;
    /* The arguments converted to the kernel's parameter types and copied now, as a launch does. */
    template <typename... A> void operator()(A &&...args) const {
        static_assert(sizeof...(A) == sizeof...(P), "a launch with the kernel's argument count");
        auto copied = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(args)...);
        void (*k)(P...) = kernel;
        launch_kernel(name, (const void *)k, grid, block, shmem, stream,
                      [k, copied] { std::apply(k, *copied); });
    }
};
template <typename... P>
launcher<P...> launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block,
                      size_t shmem = 0, cudaStream_t stream = nullptr) {
    return {name, kernel, grid, block, shmem, stream};
}

} // namespace cuemu

template <class T> cudaError_t cudaFuncSetAttribute(T *func, cudaFuncAttribute attr, int value) {
    return ::cuemu::set_func_attribute((const void *)func, attr, value);
}

#endif
