/* The CPU attention of a training step, forward and backward over the layers of d12, on the
 * two routes gpt2c has: fp32 products (OpenBLAS's sgemm per head, attention.c) and bf16
 * products (oneDNN's batched bf16 matmul over the heads, attention_bf16.c: --precision bf16
 * where the CPU has AVX512_BF16 or AMX), in the same process, alternating.
 *
 * Each layer has its own qkv, dO and outputs (B x T x 3C floats each, as in a step), so that a
 * layer's inputs are not still in cache from the layer before; 64 MB of other memory is written
 * between the rounds. It prints each route's forward and backward milliseconds for all layers
 * (the best of REPS rounds) and their ratio.
 *
 * Built by the `attention_bench` target (not part of `all`): cmake --build build --target
 * attention_bench; run: build/attention_bench [--threads 2] [--reps 5] [--batch 8] [--seq 256]. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/cpu/cpu_isa.h"
#include "model/config.h"
#include "ops/cpu/cpu_kernels.h"

enum { LAYERS = 12, C = 768, NH = 12 };

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static float *random_floats(size_t n, unsigned seed) {
    float *p = malloc(n * sizeof *p);
    if (!p) exit(1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = ((int)(seed >> 9 & 0xffff) - 32768) / 32768.0f;
    }
    return p;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 5, B = 8, T = 256;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seq")) T = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: attention_bench [--threads N] [--reps R] [--batch B] [--seq T]\n");
            return 2;
        }
    }
    if (threads < 1 || reps < 1 || B < 1 || T < 1) return 2;
    omp_set_num_threads(threads);
    if (!cpu_bf16_native()) {
        printf("# attention_bench: this CPU (level %s) has no bf16 kernels for oneDNN: attention "
               "stays fp32 under bf16\n", cpu_isa_name(cpu_isa()));
        return 0;
    }
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    float *qkv[LAYERS], *out[LAYERS], *lse[LAYERS], *dout[LAYERS], *dqkv[LAYERS];
    for (int l = 0; l < LAYERS; l++) {
        qkv[l] = random_floats(nqkv, 11 + l), dout[l] = random_floats(nout, 101 + l);
        out[l] = random_floats(nout, 1), lse[l] = random_floats(nlse, 2);
        dqkv[l] = random_floats(nqkv, 3);
    }
    float *scratch = malloc(cpu_scratch_floats(B, T, C, NH, GPT2_VOCAB_PADDED, 1) * sizeof(float));
    size_t njunk = (size_t)16 << 20;
    float *junk = random_floats(njunk, 5);
    if (!scratch) return 1;
    double best[2][2] = {{1e30, 1e30}, {1e30, 1e30}};
    for (int k = 0; k < reps; k++)
        for (int bf16 = 0; bf16 <= 1; bf16++) {
            for (size_t i = 0; i < njunk; i++) junk[i] += 1.0f;
            double t0 = now_ms();
            for (int l = 0; l < LAYERS; l++)
                cpu_attention_forward((gpt2_act *)out[l], lse[l], (const gpt2_act *)qkv[l], B, T,
                                      C, NH, bf16, scratch);
            double t1 = now_ms();
            for (int l = LAYERS - 1; l >= 0; l--)
                cpu_attention_backward((gpt2_act *)dqkv[l], (const gpt2_act *)dout[l],
                                       (const gpt2_act *)qkv[l], (const gpt2_act *)out[l], lse[l],
                                       B, T, C, NH, bf16, scratch);
            double t2 = now_ms();
            if (t1 - t0 < best[bf16][0]) best[bf16][0] = t1 - t0;
            if (t2 - t1 < best[bf16][1]) best[bf16][1] = t2 - t1;
        }
    printf("# attention_bench: d12's %d layers at B=%d T=%d, best of %d, %d threads, level %s\n",
           LAYERS, B, T, reps, threads, cpu_isa_name(cpu_isa()));
    printf("| products | forward ms | backward ms | total ms |\n|---|---:|---:|---:|\n");
    for (int bf16 = 0; bf16 <= 1; bf16++)
        printf("| %s | %.1f | %.1f | %.1f |\n", bf16 ? "bf16 (oneDNN, batched over heads)"
                                                    : "fp32 (OpenBLAS, per head)",
               best[bf16][0], best[bf16][1], best[bf16][0] + best[bf16][1]);
    printf("fp32 / bf16: %.2fx\n",
           (best[0][0] + best[0][1]) / (best[1][0] + best[1][1]));
    return 0;
}
