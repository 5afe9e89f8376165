/* The runtime API on the CPU: one device (an sm_90 model) whose memory is the host's, streams
 * whose work runs when something waits for it, events, and kernel launches run block by block
 * (fibers.cpp). Every call holds one lock, so host threads may share the device.
 *
 * Faithful where a real GPU would differ from a plain function call, and strict where it would
 * be undefined:
 *  - device memory comes filled with 0xff bytes (a float or bf16 NaN, an int -1), so a result a
 *    kernel never wrote shows; copies and memsets must stay inside one allocation;
 *  - queued work runs only at a synchronize, an event wait, a blocking call (cudaMemcpy,
 *    cudaFree...) or a copy to pageable host memory (which returns once done, as CUDA's does);
 *    a copy from pageable host memory takes its bytes at the call, as CUDA's does; pinned host
 *    memory is read and written when the copy runs;
 *  - a launch's configuration is checked as the device would (threads, grid, shared memory) and
 *    a bad one is an error for cudaGetLastError. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>

#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "fibers.h"
#include "stream.h"

struct CUstream_st {
    std::deque<std::function<void()>> work;
    unsigned flags;
    bool capturing;                            /* between BeginCapture and EndCapture */
    const char *spoiled;                       /* the call that spoiled the capture, or NULL */
    std::vector<std::function<void()>> captured; /* the capture's work, in order */
};

/* A graph and its instance alike: the captured work, queued again at each launch. */
struct CUgraph_st {
    std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> work;
};

struct CUevent_st {
    cudaStream_t stream;       /* where it was last recorded */
    uint64_t recorded, reached; /* records asked for, and run */
    double ms;                 /* the host's clock when it ran */
};

namespace {

std::recursive_mutex lock;
CUstream_st legacy_stream{{}, cudaStreamDefault, false, nullptr, {}};
std::set<cudaStream_t> streams{&legacy_stream};
std::map<uintptr_t, size_t> device_allocs, pinned_allocs; /* start -> bytes */
std::map<const void *, int> max_dynamic_shared;
cudaError_t last_error = cudaSuccess;

/* What a block may ask for: a Hopper's limits. */
const size_t SHARED_DEFAULT = 48 << 10, SHARED_OPTIN = 227 << 10;

using guard = std::lock_guard<std::recursive_mutex>;

cudaStream_t resolve(cudaStream_t s) { return s ? s : &legacy_stream; }

double now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs the stream's queued work, all of it or until `done` says stop. */
void flush(cudaStream_t s, const std::function<bool()> &done = nullptr) {
    while (!s->work.empty() && !(done && done())) {
        std::function<void()> w = std::move(s->work.front());
        s->work.pop_front();
        w();
    }
}
void flush_all() {
    for (cudaStream_t s : streams) flush(s);
}

bool inside(const std::map<uintptr_t, size_t> &allocs, const void *p, size_t bytes) {
    auto it = allocs.upper_bound((uintptr_t)p);
    if (it == allocs.begin()) return false;
    --it;
    return (uintptr_t)p + bytes <= it->first + it->second;
}
bool is_device(const void *p) { return inside(device_allocs, p, 1); }
} // namespace

/* A range the call writes or reads on the device: inside one allocation, or a bug. */
void cuemu::check_device_range(const char *call, const void *p, size_t bytes) {
    guard g(lock);
    if (bytes && !inside(device_allocs, p, bytes))
        cuemu::fail("%s: %zu bytes at %p are not inside one cudaMalloc allocation", call, bytes, p);
}

namespace {
using cuemu::check_device_range;

cudaMemcpyKind infer(const void *dst, const void *src) {
    bool d = is_device(dst), s = is_device(src);
    return d && s ? cudaMemcpyDeviceToDevice : d ? cudaMemcpyHostToDevice
           : s    ? cudaMemcpyDeviceToHost
                  : cudaMemcpyHostToHost;
}

void check_copy(const char *call, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice)
        check_device_range(call, dst, bytes);
    if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice)
        check_device_range(call, src, bytes);
    if (kind == cudaMemcpyHostToDevice && bytes && is_device(src))
        cuemu::fail("%s: cudaMemcpyHostToDevice from device memory %p", call, src);
    if (kind == cudaMemcpyDeviceToHost && bytes && is_device(dst))
        cuemu::fail("%s: cudaMemcpyDeviceToHost into device memory %p", call, dst);
}

/* Queues work behind what the legacy default stream's ordering requires: work on it waits for
 * the blocking streams, work on those for it. Running queued work early is always allowed (a GPU
 * may have run it already), so the waits are flushes. */
void enqueue_locked(cudaStream_t s, std::function<void()> work) {
    if (s->capturing) {
        s->captured.push_back(std::move(work));
        return;
    }
    if (s == &legacy_stream) {
        for (cudaStream_t o : streams)
            if (o != s && !(o->flags & cudaStreamNonBlocking)) flush(o);
    } else if (!(s->flags & cudaStreamNonBlocking)) {
        flush(&legacy_stream);
    }
    s->work.push_back(std::move(work));
}

bool valid_stream(cudaStream_t s) { return streams.count(resolve(s)) != 0; }

/* A call that would wait for the device while `s` (NULL: any stream) captures: the capture is
 * spoiled and the call fails, as CUDA's. */
bool refused_in_capture(cudaStream_t s, const char *call) {
    bool refused = false;
    for (cudaStream_t o : streams)
        if (o->capturing && (!s || o == s)) {
            if (!o->spoiled) o->spoiled = call;
            refused = true;
        }
    if (refused) last_error = cudaErrorStreamCaptureUnsupported;
    return refused;
}

cuemu::thread_order thread_order_once() {
    static cuemu::thread_order order = cuemu::order_from_env();
    return order;
}

} // namespace

namespace cuemu {

void enqueue(cudaStream_t stream, std::function<void()> work) {
    guard g(lock);
    if (!valid_stream(stream)) fail("work queued on a destroyed or unknown stream");
    enqueue_locked(resolve(stream), std::move(work));
}

cudaError_t set_func_attribute(const void *func, cudaFuncAttribute attr, int value) {
    guard g(lock);
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        (size_t)value > SHARED_OPTIN)
        return last_error = cudaErrorInvalidValue;
    max_dynamic_shared[func] = value;
    return cudaSuccess;
}

void launch_kernel(const char *name, const void *func, dim3 grid, dim3 block, size_t shmem,
                   cudaStream_t stream, std::function<void()> thread) {
    guard g(lock);
    size_t threads = (size_t)block.x * block.y * block.z;
    bool bad_block = threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 ||
                     block.z > 64;
    bool bad_grid = grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu ||
                    grid.y > 65535 || grid.z > 65535;
    auto allowed = max_dynamic_shared.find(func);
    size_t shmem_max = allowed != max_dynamic_shared.end() ? (size_t)allowed->second : SHARED_DEFAULT;
    if (bad_block || bad_grid) {
        fprintf(stderr, "gpt2c: CUDA emulation: %s launched with grid (%u,%u,%u), block (%u,%u,%u)\n",
                name, grid.x, grid.y, grid.z, block.x, block.y, block.z);
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (shmem > shmem_max) {
        fprintf(stderr, "gpt2c: CUDA emulation: %s asks for %zu bytes of dynamic shared memory, "
                        "over its %zu\n", name, shmem, shmem_max);
        last_error = cudaErrorInvalidValue;
        return;
    }
    if (!valid_stream(stream)) {
        last_error = cudaErrorInvalidResourceHandle;
        return;
    }
    enqueue_locked(resolve(stream), [name, grid, block, shmem, thread] {
        thread_order order = thread_order_once();
        /* 128-byte aligned, as a GPU's (wmma's pointers must be 32-byte aligned) */
        std::vector<unsigned char> shared_bytes((shmem ? shmem : 1) + 128);
        unsigned char *shared = shared_bytes.data() + (-(uintptr_t)shared_bytes.data() & 127);
        size_t shared_size = shmem ? shmem : 1;
        size_t nblocks = (size_t)grid.x * grid.y * grid.z;
        for (size_t k = 0; k < nblocks; k++) {
            size_t b = order == ORDER_REVERSED ? nblocks - 1 - k : k;
            block_context ctx;
            ctx.block_idx = {(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                            (unsigned)(b / ((size_t)grid.x * grid.y))};
            ctx.block_dim = block, ctx.grid_dim = grid;
            memset(shared, 0xff, shared_size); /* shared memory starts undefined */
            ctx.dynamic_shared = shared;
            run_block(name, ctx, order, thread);
        }
    });
}

} // namespace cuemu

extern "C" {

/* One device, or GPT2C_CUDA_EMULATE_DEVICES (1 to 64) of them: a machine of several GPUs, for the
 * ranks of a multi-process test that each take the GPU of their local rank. Every one is this
 * process's host memory: the number only decides which cudaSetDevice calls succeed. */
cudaError_t cudaGetDeviceCount(int *count) {
    const char *env = getenv("GPT2C_CUDA_EMULATE_DEVICES");
    int n = env ? atoi(env) : 1;
    *count = n >= 1 && n <= 64 ? n : 1;
    return cudaSuccess;
}
static int current_device;
cudaError_t cudaSetDevice(int device) {
    int n;
    cudaGetDeviceCount(&n);
    if (device < 0 || device >= n) return last_error = cudaErrorInvalidDevice;
    current_device = device;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *device) {
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    int n;
    cudaGetDeviceCount(&n);
    if (device < 0 || device >= n) return last_error = cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CUDA emulated on the CPU (gpt2c's runtime)");
    struct sysinfo si;
    p->totalGlobalMem = sysinfo(&si) == 0 ? (size_t)si.totalram * si.mem_unit : 0;
    p->sharedMemPerBlock = SHARED_DEFAULT, p->sharedMemPerBlockOptin = SHARED_OPTIN;
    p->warpSize = 32, p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff, p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    p->major = 9, p->minor = 0, p->multiProcessorCount = 1;
    return cudaSuccess;
}

/* What cudaGetDeviceProperties says, one attribute at a time. */
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return last_error;
    switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; return cudaSuccess;
    }
    return last_error = cudaErrorInvalidValue;
}

/* The host's: free is what the kernel says is available. */
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    struct sysinfo si;
    if (sysinfo(&si) != 0) return last_error = cudaErrorInvalidValue;
    *total_bytes = (size_t)si.totalram * si.mem_unit;
    *free_bytes = (size_t)(si.freeram + si.bufferram) * si.mem_unit;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[128];
        unsigned long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1) *free_bytes = (size_t)kb << 10;
        fclose(f);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    guard g(lock);
    if (refused_in_capture(nullptr, "cudaDeviceSynchronize")) return last_error;
    flush_all();
    return cudaSuccess;
}
cudaError_t cudaDeviceReset(void) { return cudaDeviceSynchronize(); }

cudaError_t cudaMalloc(void **p, size_t bytes) {
    guard g(lock);
    *p = nullptr;
    if (posix_memalign(p, 256, bytes ? bytes : 1) != 0) return last_error = cudaErrorMemoryAllocation;
    memset(*p, 0xff, bytes ? bytes : 1);
    device_allocs[(uintptr_t)*p] = bytes ? bytes : 1;
    return cudaSuccess;
}

/* cudaFree and cudaFreeHost: as CUDA's, they wait for the device first (queued work may still
 * use the memory); a pointer the allocator did not give is `wrong`. */
static cudaError_t release(std::map<uintptr_t, size_t> &allocs, void *p, cudaError_t wrong) {
    guard g(lock);
    if (!p) return cudaSuccess;
    if (refused_in_capture(nullptr, "cudaFree")) return last_error;
    flush_all();
    if (!allocs.erase((uintptr_t)p)) return last_error = wrong;
    free(p);
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) { return release(device_allocs, p, cudaErrorInvalidDevicePointer); }

cudaError_t cudaMallocHost(void **p, size_t bytes) {
    guard g(lock);
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return last_error = cudaErrorMemoryAllocation;
    pinned_allocs[(uintptr_t)*p] = bytes ? bytes : 1;
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags) {
    (void)flags;
    return cudaMallocHost(p, bytes);
}
cudaError_t cudaFreeHost(void *p) { return release(pinned_allocs, p, cudaErrorInvalidValue); }

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    guard g(lock);
    if (kind == cudaMemcpyDefault) kind = infer(dst, src);
    check_copy("cudaMemcpy", dst, src, bytes, kind);
    if (refused_in_capture(nullptr, "cudaMemcpy")) return last_error;
    flush_all();
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
    guard g(lock);
    if (!valid_stream(stream)) return last_error = cudaErrorInvalidResourceHandle;
    if (kind == cudaMemcpyDefault) kind = infer(dst, src);
    check_copy("cudaMemcpyAsync", dst, src, bytes, kind);
    if (!bytes) return cudaSuccess;
    cudaStream_t s = resolve(stream);
    bool pageable = (kind == cudaMemcpyHostToDevice && !inside(pinned_allocs, src, bytes)) ||
                    (kind == cudaMemcpyDeviceToHost && !inside(pinned_allocs, dst, bytes)) ||
                    kind == cudaMemcpyHostToHost;
    if (pageable && refused_in_capture(s, "cudaMemcpyAsync with pageable host memory"))
        return last_error;
    if (kind == cudaMemcpyHostToHost) { /* nothing of the device's: in order, now */
        flush(s);
        memmove(dst, src, bytes);
    } else if (kind == cudaMemcpyHostToDevice && !inside(pinned_allocs, src, bytes)) {
        /* pageable memory: staged at the call, the caller may reuse it at once */
        auto staged = std::make_shared<std::vector<unsigned char>>((const unsigned char *)src,
                                                                   (const unsigned char *)src + bytes);
        enqueue_locked(s, [dst, staged] { memcpy(dst, staged->data(), staged->size()); });
    } else {
        enqueue_locked(s, [dst, src, bytes] { memmove(dst, src, bytes); });
        /* into pageable memory CUDA returns once the copy is done */
        if (kind == cudaMemcpyDeviceToHost && !inside(pinned_allocs, dst, bytes)) flush(s);
    }
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    guard g(lock);
    check_device_range("cudaMemset", p, bytes);
    if (refused_in_capture(nullptr, "cudaMemset")) return last_error;
    flush_all();
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream) {
    guard g(lock);
    if (!valid_stream(stream)) return last_error = cudaErrorInvalidResourceHandle;
    check_device_range("cudaMemsetAsync", p, bytes);
    if (bytes) enqueue_locked(resolve(stream), [p, value, bytes] { memset(p, value, bytes); });
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    guard g(lock);
    *stream = new CUstream_st{{}, flags, false, nullptr, {}};
    streams.insert(*stream);
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    guard g(lock);
    if (!stream || !streams.count(stream)) return last_error = cudaErrorInvalidResourceHandle;
    flush(stream); /* CUDA lets queued work finish */
    streams.erase(stream);
    delete stream;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    guard g(lock);
    if (!valid_stream(stream)) return last_error = cudaErrorInvalidResourceHandle;
    if (refused_in_capture(resolve(stream), "cudaStreamSynchronize")) return last_error;
    flush(resolve(stream));
    return cudaSuccess;
}
/* A query that said "not ready" forever would hang a polling loop: the work runs, then it is. */
cudaError_t cudaStreamQuery(cudaStream_t stream) { return cudaStreamSynchronize(stream); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    (void)flags;
    *event = new CUevent_st{nullptr, 0, 0, 0.0};
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    guard g(lock);
    if (!event) return last_error = cudaErrorInvalidResourceHandle;
    if (event->stream && streams.count(event->stream))
        flush(event->stream, [event] { return event->reached >= event->recorded; });
    delete event;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    guard g(lock);
    if (!event || !valid_stream(stream)) return last_error = cudaErrorInvalidResourceHandle;
    uint64_t n = ++event->recorded;
    event->stream = resolve(stream);
    enqueue_locked(event->stream, [event, n] {
        event->reached = n;
        event->ms = now_ms();
    });
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    guard g(lock);
    if (!event) return last_error = cudaErrorInvalidResourceHandle;
    if (event->stream && event->stream->capturing &&
        refused_in_capture(event->stream, "cudaEventSynchronize"))
        return last_error;
    uint64_t want = event->recorded;
    if (event->stream) flush(event->stream, [event, want] { return event->reached >= want; });
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }

/* Work queued on `stream` after this waits for the event's latest record. */
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    guard g(lock);
    (void)flags;
    if (!event || !valid_stream(stream)) return last_error = cudaErrorInvalidResourceHandle;
    uint64_t want = event->recorded;
    cudaStream_t from = event->stream;
    if (!from || want == 0) return cudaSuccess; /* never recorded: nothing to wait for */
    enqueue_locked(resolve(stream), [event, want, from] {
        if (streams.count(from)) flush(from, [event, want] { return event->reached >= want; });
    });
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    guard g(lock);
    if (!start || !end || start->reached == 0 || end->reached == 0)
        return last_error = cudaErrorInvalidResourceHandle;
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
    guard g(lock);
    (void)mode;
    if (!valid_stream(stream)) return last_error = cudaErrorInvalidResourceHandle;
    cudaStream_t s = resolve(stream);
    if (s == &legacy_stream) return last_error = cudaErrorStreamCaptureUnsupported;
    if (s->capturing) return last_error = cudaErrorIllegalState;
    flush(s); /* what was queued before is not part of the graph */
    s->capturing = true, s->spoiled = nullptr, s->captured.clear();
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    guard g(lock);
    *graph = nullptr;
    if (!valid_stream(stream)) return last_error = cudaErrorInvalidResourceHandle;
    cudaStream_t s = resolve(stream);
    if (!s->capturing) return last_error = cudaErrorIllegalState;
    s->capturing = false;
    std::vector<std::function<void()>> work = std::move(s->captured);
    s->captured.clear();
    if (s->spoiled) return last_error = cudaErrorStreamCaptureInvalidated;
    *graph = new CUgraph_st{std::move(work)};
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags) {
    guard g(lock);
    (void)flags;
    if (!graph) return last_error = cudaErrorInvalidValue;
    *exec = new CUgraphExec_st{graph->work};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    guard g(lock);
    if (!exec) return last_error = cudaErrorInvalidValue;
    if (!valid_stream(stream)) return last_error = cudaErrorInvalidResourceHandle;
    for (const std::function<void()> &w : exec->work) enqueue_locked(resolve(stream), w);
    return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, void **nodes, size_t *count) {
    if (!graph || nodes) return last_error = cudaErrorInvalidValue;
    *count = graph->work.size();
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    guard g(lock);
    flush_all(); /* a launch of it may still be queued: its work is copied, but be CUDA-like */
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    guard g(lock);
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) {
    guard g(lock);
    return last_error;
}

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return cudaGetErrorName(e);
    }
}

} /* extern "C" */
