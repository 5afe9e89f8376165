/* gpt2c info [--json]: what this machine and build run. */
#include <jansson.h>

#include "cli/cli.h"

static const char *usage =
    "usage: gpt2c info [--json]\n\n"
    "What this machine and build run: the CPU instruction sets the kernels can use (the best,\n"
    "or the cap in GPT2C_CPU_ISA: x86-64, avx2, avx512, avx512_bf16, amx), the routes fp32 and\n"
    "bf16 take, oneDNN's and OpenBLAS's kernels, and whether CUDA, MPI and NCCL are built in.\n\n";

static json_t *info_json(const gpt2c_system_info *in) {
    json_t *isas = json_array();
    for (int i = 0; i < in->n_cpu_isas; i++) json_array_append_new(isas, json_string(in->cpu_isas[i]));
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:i, s:b, s:b}", "version",
                     GPT2C_VERSION, "cpu_isa", in->cpu_isa, "cpu_isas", isas, "fp32", in->fp32_path,
                     "bf16", in->bf16_path, "kernels", in->kernel_width, "onednn", in->onednn_isa,
                     "openblas", in->blas_core, "cuda", in->cuda_built, "cuda_emulated", in->cuda_emulated, "cuda_devices",
                     in->cuda_devices, "mpi", in->mpi_built, "nccl", in->nccl_built);
}

int cmd_info(int argc, char **argv) {
    int json = 0;
    const cli_opt specs[] = {
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print it as one JSON object", NULL},
    };
    int done = cli_parse_opts("info", usage, specs, sizeof specs / sizeof *specs, argc, argv);
    if (done >= 0) return done;
    gpt2c_error err;
    gpt2c_system_info in;
    if (gpt2c_system_info_get(&in, &err) != 0) return cli_error("%s", err.msg);
    if (json) return cli_print_json(info_json(&in));
    printf("gpt2c %s\n", GPT2C_VERSION);
    printf("cpu instruction sets: ");
    for (int i = 0; i < in.n_cpu_isas; i++) printf("%s%s", i ? " " : "", in.cpu_isas[i]);
    printf(" (in use: %s; GPT2C_CPU_ISA caps it)\n", in.cpu_isa);
    printf("fp32: %s\nbf16: %s\n", in.fp32_path, in.bf16_path);
    printf("kernels: gpt2c %s, oneDNN %s, OpenBLAS %s\n", in.kernel_width, in.onednn_isa, in.blas_core);
    printf("cuda: %s", !in.cuda_built      ? "not built"
                       : in.cuda_emulated ? "built, emulated on the CPU (a test build: no GPU runs it)"
                                          : "built");
    if (in.cuda_built) printf(" (%d device%s)", in.cuda_devices, in.cuda_devices == 1 ? "" : "s");
    printf("\nmpi: %s\n", in.mpi_built ? "built" : "not built");
    printf("nccl: %s\n", !in.nccl_built     ? "not built"
                         : in.cuda_emulated ? "built: the emulated build's stand-in, over MPI"
                                            : "built");
    return 0;
}
