/* The emulated device's streams (runtime.cpp): work queued in order, run when someone waits. */
#ifndef GPT2C_CUEMU_STREAM_H
#define GPT2C_CUEMU_STREAM_H

#include <functional>

#include "cuda_runtime.h"

namespace cuemu {

/* Queues `work` on the stream (nullptr: the legacy default stream). Nothing runs it until the
 * stream, an event after it or the device is synchronized, or a blocking call needs it: so a
 * result read without a synchronize is the memory's old value, not the right one by luck. */
void enqueue(cudaStream_t stream, std::function<void()> work);

/* Stops the run when [p, p + bytes) is not inside one cudaMalloc allocation (what a GPU would
 * fault on, or silently read past). */
void check_device_range(const char *call, const void *p, size_t bytes);

} // namespace cuemu

#endif
