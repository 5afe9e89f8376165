/* Which backend runs the ops: --device cpu, cuda or auto (CUDA when gpt2c was built with it and a
 * GPU is there, else the CPU). Each backend fills the handle itself (cpu_backend_open,
 * cuda_backend_open), so that what it can do is said where it is known. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/backend.h"
#include "util/error.h"
#ifdef GPT2C_HAVE_CUDA
#include "ops/cuda/cuda_kernels.h"
#endif

/* All CPUs, shared among the ranks an MPI launcher started on this machine. */
static int all_cpus(void) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long ranks = local ? strtol(local, NULL, 10) : 1;
    long n = (ncpu > 0 ? ncpu : 1) / (ranks > 0 ? ranks : 1);
    return n > 0 ? (int)n : 1;
}

int gpt2_backend_open(gpt2_backend *be, const char *device, int threads, gpt2c_error *err) {
    memset(be, 0, sizeof *be);
    if (threads < 0) return err_set(err, "--threads must be at least 1 (0: all CPUs)");
    if (threads == 0) threads = all_cpus();
    if (!device || !strcmp(device, "cpu")) return cpu_backend_open(be, threads, err);
    int cuda = !strcmp(device, "cuda"), autodetect = !strcmp(device, "auto");
    if (!cuda && !autodetect)
        return err_set(err, "--device must be cpu, cuda or auto, not '%s'", device);
#ifdef GPT2C_HAVE_CUDA
    if (autodetect) {
        if (cuda_emulated()) return cpu_backend_open(be, threads, err); /* only when asked */
        int n = cuda_device_count(err);
        if (n < 0) return -1; /* a driver that fails is an error, not "no GPU" */
        if (n == 0) return cpu_backend_open(be, threads, err);
    }
    return cuda_backend_open(be, threads, err);
#else
    if (autodetect) return cpu_backend_open(be, threads, err);
    return err_set(err, "--device cuda: this gpt2c was built without CUDA (no nvcc was found)");
#endif
}

void gpt2_backend_close(gpt2_backend *be) {
    if (be->close) be->close(be);
    memset(be, 0, sizeof *be);
}

int gpt2_backend_check_shapes(const gpt2_backend *be, int n_embd, int n_head, gpt2c_error *err) {
    return be->check_shapes ? be->check_shapes(n_embd, n_head, err) : 0;
}

int gpt2_backend_precision(gpt2_backend *be, const char *name, gpt2_precision *p,
                           gpt2c_error *err) {
    if (!name) *p = be->default_precision;
    else if (!strcmp(name, "fp32")) *p = GPT2_FP32;
    else if (!strcmp(name, "bf16")) *p = GPT2_BF16;
    else return err_set(err, "--precision must be fp32 or bf16, not '%s'", name);
    if (gpt2_backend_supports(be, *p, err) != 0) return -1;
    be->precision = *p;
    if (be->set_precision) be->set_precision(be, *p);
    return 0;
}

int gpt2_backend_supports(const gpt2_backend *be, gpt2_precision p, gpt2c_error *err) {
    if (be->path[p]) return 0;
    const char *name = p == GPT2_BF16 ? "bf16" : "fp32";
    return err_set(err, "--precision %s: the %s backend cannot run %s products on this %s; use "
                        "--precision %s", name, be->name, name, be->memory,
                   p == GPT2_BF16 ? "fp32" : "bf16");
}
