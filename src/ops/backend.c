/* Which backend runs the ops: --device cpu, cuda or auto (CUDA when gpt2c was built with it and a
 * GPU is there, else the CPU). */
#include <string.h>

#include "ops/backend.h"
#include "ops/cpu/cpu_isa.h"
#include "util/error.h"
#ifdef GPT2C_HAVE_CUDA
#include "ops/cuda/cuda_kernels.h"
#endif

/* The CPU backend, once GPT2C_CPU_ISA is known to name a level this CPU can run. */
static const gpt2_ops *cpu_backend(gpt2c_error *err) {
    return cpu_isa_check(err) == 0 ? &gpt2_ops_cpu : NULL;
}

const gpt2_ops *gpt2_backend(const char *device, gpt2c_error *err) {
    if (!device || !strcmp(device, "cpu")) return cpu_backend(err);
    int cuda = !strcmp(device, "cuda"), autodetect = !strcmp(device, "auto");
    if (!cuda && !autodetect) {
        err_set(err, "--device must be cpu, cuda or auto, not '%s'", device);
        return NULL;
    }
#ifdef GPT2C_HAVE_CUDA
    if (autodetect && cuda_device_count() < 1) return cpu_backend(err);
    if (cuda_init(err) != 0) return NULL;
    return &gpt2_ops_cuda;
#else
    if (autodetect) return cpu_backend(err);
    err_set(err, "--device cuda: this gpt2c was built without CUDA (no nvcc was found)");
    return NULL;
#endif
}
