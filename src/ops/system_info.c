/* gpt2c_system_info_get and gpt2c_apply_cpu_isa: what the machine and this build run. */
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/backend.h"
#include "util/error.h"
#ifdef GPT2C_HAVE_CUDA
#include "ops/cuda/cuda_kernels.h"
#endif

char *openblas_get_corename(void); /* OpenBLAS's own; not in every BLAS's cblas.h */

static const char *onednn_isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

int gpt2c_system_info_get(gpt2c_system_info *info, gpt2c_error *err) {
    *info = (gpt2c_system_info){0};
    gpt2_backend cpu;
    if (gpt2_backend_open(&cpu, "cpu", 0, err) != 0) return -1;
    info->cpu_isa = cpu_isa_name(cpu_isa());
    for (int l = cpu_isa_machine(); l >= 0 && info->n_cpu_isas < GPT2C_MAX_CPU_ISAS; l--)
        info->cpu_isas[info->n_cpu_isas++] = cpu_isa_name((cpu_isa_level)l);
    info->fp32_path = cpu.path[GPT2_FP32];
    info->bf16_path = cpu.path[GPT2_BF16];
    static const char *const widths[CPU_VEC_WIDTHS] = {"x86-64", "avx2", "avx512"};
    info->kernel_width = widths[cpu_vec_width()];
    info->onednn_isa = onednn_isa_name(dnnl_get_effective_cpu_isa());
    info->blas_core = openblas_get_corename();
#ifdef GPT2C_HAVE_CUDA
    info->cuda_built = 1;
    info->cuda_emulated = cuda_emulated();
    info->cuda_devices = cuda_device_count(err);
    if (info->cuda_devices < 0) return -1; /* a driver that fails, not one that is absent */
#endif
#ifdef GPT2C_HAVE_MPI
    info->mpi_built = 1;
#endif
#ifdef GPT2C_HAVE_NCCL
    info->nccl_built = 1;
#endif
    return 0;
}

int gpt2c_apply_cpu_isa(char **argv, gpt2c_error *err) {
    const char *want = getenv("GPT2C_CPU_ISA");
    if (!want || !*want || getenv("OPENBLAS_CORETYPE")) return 0;
    for (int l = 0; cpu_isa_name((cpu_isa_level)l); l++)
        if (!strcmp(want, cpu_isa_name((cpu_isa_level)l))) {
            if (setenv("OPENBLAS_CORETYPE", cpu_isa_blas_core((cpu_isa_level)l), 1) != 0) break;
            execv("/proc/self/exe", argv);
            return err_set(err, "GPT2C_CPU_ISA=%s: could not restart the program with "
                                "OPENBLAS_CORETYPE set", want);
        }
    return 0; /* an unknown level: the run that uses the CPU reports it */
}
