/* Running one block of a kernel: its threads as fibers on the calling OS thread (fibers.cpp). */
#ifndef GPT2C_CUEMU_FIBERS_H
#define GPT2C_CUEMU_FIBERS_H

#include <functional>

#include "cuda_runtime.h"

namespace cuemu {

/* The order threads run in between barriers and warp collectives (GPT2C_CUDA_EMULATE_ORDER). */
enum thread_order { ORDER_WARP, ORDER_REVERSED, ORDER_LOCKSTEP };
thread_order order_from_env();

/* Runs every thread of block `ctx` of kernel `name` (each calls `thread`) to its end; stops the
 * process with a message naming the kernel when a barrier or a warp collective cannot be met. */
void run_block(const char *name, const block_context &ctx, thread_order order,
               const std::function<void()> &thread);

/* Stops the process (status 3) with "gpt2c: CUDA emulation: <message>": a bug in a kernel or
 * in its launch. */
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace cuemu

#endif
