/* A decoding step's linear layers on the CPU, for a few rows: gpt2c's row-independent product
 * (matmul_forward_rowwise: the kernel generation and serving use, whose every row gets the same
 * bits whatever the rows beside it) against the GEMM library's product of the same shape
 * (oneDNN, as the linear layers of training use it), in the same process, alternating.
 *
 * Per precision and row count N it runs one d12 step's products in order (12 layers, each with
 * its own weights, x qkv, attn proj, fc, fc proj; the LM head over the padded vocabulary), so
 * that the weights stream from memory as in decoding and no layer's are still in cache, and
 * prints the step's milliseconds on each side, their ratio, and GFLOP/s. Each side's step is
 * timed REPS times, alternating, and its minimum kept: what the kernels do when nothing else
 * takes the cores, which a shared machine rarely gives for a whole run.
 *
 * Built by the `rows_bench` target (not part of `all`): cmake --build build --target rows_bench;
 * run: build/rows_bench [--threads 2] [--reps 15]. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const char *name;
    int C, OC; /* inputs, outputs */
} product;

/* d12: 12 layers of width 768; the vocabulary padded to 50304 */
enum { LAYERS = 12 };
static const product LAYER[] = {{"qkv", 768, 2304}, {"attn proj", 768, 768},
                                {"fc", 768, 3072}, {"fc proj", 3072, 768}};
static const product HEAD = {"lm head", 768, 50304};
enum { PER_LAYER = sizeof LAYER / sizeof LAYER[0], NPRODUCTS = LAYERS * PER_LAYER + 1,
       MAX_ROWS = 32 };
static product STEP[NPRODUCTS];

static float *random_floats(size_t n, unsigned seed) {
    float *p = malloc(n * sizeof *p);
    if (!p) exit(1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = ((int)(seed >> 9 & 0xffff) - 32768) / 32768.0f * 0.05f;
    }
    return p;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 15;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: rows_bench [--threads N] [--reps R]\n");
            return 2;
        }
    }
    omp_set_num_threads(threads);
    printf("# rows_bench: a d12 decoding step's products, min of %d, %d threads, isa %s\n", reps,
           threads, cpu_isa_name(cpu_isa()));
    printf("| precision | rows | gpt2c rowwise ms/step | oneDNN ms/step | oneDNN / gpt2c | gpt2c "
           "GFLOP/s |\n|---|---:|---:|---:|---:|---:|\n");
    for (int p = 0; p < NPRODUCTS; p++) STEP[p] = p < LAYERS * PER_LAYER ? LAYER[p % PER_LAYER] : HEAD;
    float *w[NPRODUCTS], *bias = random_floats(50304, 7);
    gpt2_bf16 *wb[NPRODUCTS];
    for (int p = 0; p < NPRODUCTS; p++) {
        size_t n = (size_t)STEP[p].C * STEP[p].OC;
        w[p] = random_floats(n, 11 + p);
        wb[p] = malloc(n * sizeof *wb[p]);
        if (!wb[p]) return 1;
        cpu_to_bf16(wb[p], w[p], n);
    }
    float *x = random_floats((size_t)MAX_ROWS * 3072, 3);
    float *out = malloc((size_t)MAX_ROWS * 50304 * sizeof *out);
    size_t scratch_n = 0;
    for (int p = 0; p < NPRODUCTS; p++) {
        size_t s = cpu_matmul_scratch_floats(MAX_ROWS, STEP[p].C, STEP[p].OC);
        if (s > scratch_n) scratch_n = s;
    }
    float *scratch = malloc(scratch_n * sizeof *scratch);
    gpt2_bf16 *xb = malloc((size_t)MAX_ROWS * 3072 * sizeof *xb);
    if (!out || !scratch || !xb) return 1;
    static const int rows[] = {1, 2, 4, 8, 16, 32};
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        if (bf16 && !cpu_bf16_native()) {
            printf("| bf16 | | (oneDNN's bf16 needs AVX512_BF16 or AMX) | | | |\n");
            continue;
        }
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            int N = rows[r];
            double ours = 1e30, lib = 1e30, flops = 0;
            for (int p = 0; p < NPRODUCTS; p++) flops += 2.0 * N * STEP[p].C * STEP[p].OC;
            for (int k = 0; k < reps; k++) {
                double t0 = now();
                for (int p = 0; p < NPRODUCTS; p++)
                    cpu_matmul_forward_rowwise((gpt2_act *)out, (const gpt2_act *)x, w[p],
                                               bf16 ? wb[p] : NULL, bias, N, STEP[p].C,
                                               STEP[p].OC, scratch);
                double t1 = now();
                for (int p = 0; p < NPRODUCTS; p++) {
                    int C = STEP[p].C, OC = STEP[p].OC;
                    if (bf16) {
                        cpu_to_bf16(xb, x, (size_t)N * C); /* the library's input, as matmul.c */
                        cpu_gemm(GEMM_BF16, 0, 1, N, OC, C, xb, wb[p], bias, out, 0);
                    } else {
                        cpu_gemm(GEMM_F32, 0, 1, N, OC, C, x, w[p], bias, out, 0);
                    }
                }
                double t2 = now();
                if (t1 - t0 < ours) ours = t1 - t0;
                if (t2 - t1 < lib) lib = t2 - t1;
            }
            printf("| %s | %d | %.2f | %.2f | %.2f | %.0f |\n", bf16 ? "bf16" : "fp32", N,
                   ours * 1e3, lib * 1e3, lib / ours, flops / ours * 1e-9);
            fflush(stdout);
        }
    }
    return 0;
}
