/* GEMM throughput of the libraries gpt2c could use on this CPU, on the shapes of a GPT-2 training
 * step. Used to pick the GEMM library (README "Dependencies") and as the peak that train_bench.py
 * computes MFU against.
 *
 *   gemm_bench [--threads N] [--seconds S] [--tokens N] [--width C] [--peak-only]
 *
 * Libraries, each loaded with dlopen (RTLD_LOCAL) so that their BLAS symbols do not collide:
 *   openblas  cblas_sgemm of Debian's OpenMP OpenBLAS (core type as it picks it, or as
 *             OPENBLAS_CORETYPE says)
 *   blis      cblas_sgemm of Debian's OpenMP BLIS
 *   dnnl-f32  oneDNN's dnnl_sgemm
 *   dnnl-bf16 oneDNN's matmul primitive with bf16 inputs and f32 output (what --precision bf16
 *             runs); its inputs are converted once, outside the timing
 * Shapes (rows x cols x inner, for N tokens and width C): the four linear layers forward, their
 * two backward products (dinp = dout W: N x C x OC; dW = dout^T inp: OC x C x N), and the LM head.
 * A library that is missing prints "n/a". Each measurement repeats the product for S seconds
 * (after one warm-up call) and prints GFLOP/s = 2*M*N*K / time. --peak-only prints one line,
 * "peak_f32 G peak_bf16 G", the best of the forward qkv/fc/proj shapes for the library gpt2c
 * links (dnnl) in each precision. */
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };
typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                               const float *, int, float, float *, int);

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct shape {
    const char *name;
    int m, n, k, ta, tb; /* C[m,n] = op(A) op(B); ta/tb: A is stored [k,m] / B is [n,k] */
} shape;

typedef struct lib {
    const char *name;
    void *handle;
    cblas_sgemm_fn sgemm;                                     /* openblas, blis */
    dnnl_status_t (*dnnl_sgemm)(char, char, dnnl_dim_t, dnnl_dim_t, dnnl_dim_t, float,
                                const float *, dnnl_dim_t, const float *, dnnl_dim_t, float,
                                float *, dnnl_dim_t);
    int bf16;
} lib;

static float *A, *B, *Cm;
static uint16_t *Ab, *Bb;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static double seconds = 1.0;

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* One call of the product with this library. Returns 0, or -1 if the library cannot. */
static int run_bf16(const shape *s, int repeat_for_seconds, double *gflops) {
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_dims_t ad = {s->m, s->k}, bd = {s->k, s->n}, cd = {s->m, s->n};
    dnnl_dims_t as = {s->ta ? 1 : s->k, s->ta ? s->m : 1};
    dnnl_dims_t bs = {s->tb ? 1 : s->n, s->tb ? s->k : 1}, cs = {s->n, 1};
    dnnl_memory_desc_init_by_strides(&a_md, 2, ad, dnnl_bf16, as);
    dnnl_memory_desc_init_by_strides(&b_md, 2, bd, dnnl_bf16, bs);
    dnnl_memory_desc_init_by_strides(&c_md, 2, cd, dnnl_f32, cs);
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    if (dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md) ||
        dnnl_primitive_desc_create(&pd, &md, NULL, engine, NULL))
        return -1;
    if (dnnl_primitive_create(&prim, pd)) return -1;
    dnnl_memory_t am, bm, cm;
    dnnl_memory_create(&am, &a_md, engine, Ab);
    dnnl_memory_create(&bm, &b_md, engine, Bb);
    dnnl_memory_create(&cm, &c_md, engine, Cm);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
    dnnl_primitive_execute(prim, stream, 3, args);
    dnnl_stream_wait(stream);
    double t0 = now_s(), t;
    long it = 0;
    do {
        dnnl_primitive_execute(prim, stream, 3, args);
        dnnl_stream_wait(stream);
        it++;
    } while ((t = now_s() - t0) < seconds && repeat_for_seconds);
    *gflops = 2.0 * s->m * s->n * s->k * it / t * 1e-9;
    dnnl_memory_destroy(am), dnnl_memory_destroy(bm), dnnl_memory_destroy(cm);
    dnnl_primitive_destroy(prim), dnnl_primitive_desc_destroy(pd);
    return 0;
}

static void call_f32(const lib *l, const shape *s) {
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    if (l->sgemm)
        l->sgemm(ROW_MAJOR, s->ta ? TRANS : NO_TRANS, s->tb ? TRANS : NO_TRANS, s->m, s->n, s->k,
                 1.0f, A, lda, B, ldb, 0.0f, Cm, s->n);
    else
        l->dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k, 1.0f, A, lda, B,
                      ldb, 0.0f, Cm, s->n);
}

static int measure(const lib *l, const shape *s, double *gflops) {
    if (!l->handle) return -1;
    if (l->bf16) return run_bf16(s, 1, gflops);
    call_f32(l, s);
    double t0 = now_s(), t;
    long it = 0;
    do {
        call_f32(l, s);
        it++;
    } while ((t = now_s() - t0) < seconds);
    *gflops = 2.0 * s->m * s->n * s->k * it / t * 1e-9;
    return 0;
}

int main(int argc, char **argv) {
    int threads = 2, N = 256, C = 768, peak_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--width") && i + 1 < argc) C = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--peak-only")) peak_only = 1;
        else {
            fprintf(stderr, "usage: gemm_bench [--threads N] [--seconds S] [--tokens N] "
                            "[--width C] [--peak-only]\n");
            return 2;
        }
    }
    if (threads < 1 || N < 1 || C < 1 || seconds <= 0) {
        fprintf(stderr, "gemm_bench: bad arguments\n");
        return 2;
    }
    omp_set_num_threads(threads);
    char nthreads[16];
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    setenv("OPENBLAS_NUM_THREADS", nthreads, 1);
    setenv("BLIS_NUM_THREADS", nthreads, 1);

    const int V = 50304;
    shape shapes[] = {
        {"qkv fwd", N, 3 * C, C, 0, 1},      {"qkv dinp", N, C, 3 * C, 0, 0},
        {"qkv dW", 3 * C, C, N, 1, 0},       {"proj fwd", N, C, C, 0, 1},
        {"proj dW", C, C, N, 1, 0},          {"fc fwd", N, 4 * C, C, 0, 1},
        {"fc dinp", N, C, 4 * C, 0, 0},      {"fc dW", 4 * C, C, N, 1, 0},
        {"mlpproj fwd", N, C, 4 * C, 0, 1},  {"mlpproj dW", C, 4 * C, N, 1, 0},
        {"lmhead fwd", N, V, C, 0, 1},       {"lmhead dW", V, C, N, 1, 0},
    };
    int nshapes = sizeof shapes / sizeof *shapes;
    size_t most = 0;
    for (int i = 0; i < nshapes; i++) {
        size_t a = (size_t)shapes[i].m * shapes[i].k, b = (size_t)shapes[i].n * shapes[i].k;
        size_t c = (size_t)shapes[i].m * shapes[i].n;
        most = a > most ? a : most, most = b > most ? b : most, most = c > most ? c : most;
    }
    A = malloc(most * 4), B = malloc(most * 4), Cm = malloc(most * 4);
    Ab = malloc(most * 2), Bb = malloc(most * 2);
    if (!A || !B || !Cm || !Ab || !Bb) return fprintf(stderr, "gemm_bench: out of memory\n"), 1;
    srand(1);
    for (size_t i = 0; i < most; i++) {
        A[i] = rand() / (float)RAND_MAX - 0.5f, B[i] = rand() / (float)RAND_MAX - 0.5f;
        Ab[i] = to_bf16(A[i]), Bb[i] = to_bf16(B[i]);
    }
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags))
        return fprintf(stderr, "gemm_bench: oneDNN has no CPU engine\n"), 1;

    lib libs[] = {
        {"openblas", dlopen("/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
                            RTLD_NOW | RTLD_LOCAL), NULL, NULL, 0},
        {"blis", dlopen("/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4",
                        RTLD_NOW | RTLD_LOCAL), NULL, NULL, 0},
        {"dnnl-f32", (void *)1, NULL, dnnl_sgemm, 0},
        {"dnnl-bf16", (void *)1, NULL, NULL, 1},
    };
    int nlibs = sizeof libs / sizeof *libs;
    for (int i = 0; i < 2; i++)
        if (libs[i].handle) libs[i].sgemm = (cblas_sgemm_fn)dlsym(libs[i].handle, "cblas_sgemm");
    for (int i = 0; i < 2; i++)
        if (libs[i].handle && !libs[i].sgemm) libs[i].handle = NULL;

    if (peak_only) {
        /* forward shapes of the linear layers: qkv, proj, fc, mlp proj */
        int fwd[] = {0, 3, 5, 8};
        double best[2] = {0, 0};
        for (int p = 0; p < 2; p++)
            for (int j = 0; j < 4; j++) {
                double g;
                if (measure(&libs[2 + p], &shapes[fwd[j]], &g) == 0 && g > best[p]) best[p] = g;
            }
        printf("peak_f32 %.1f peak_bf16 %.1f\n", best[0], best[1]);
        return 0;
    }

    char *(*corename)(void) = libs[0].handle ? (char *(*)(void))dlsym(libs[0].handle,
                                                                      "openblas_get_corename")
                                             : NULL;
    printf("# GEMM GFLOP/s, %d threads, N=%d tokens, C=%d, %.1f s per measurement\n", threads, N,
           C, seconds);
    printf("# openblas core type: %s\n", corename ? corename() : "n/a");
    printf("%-12s %6s %6s %6s", "shape", "M", "N", "K");
    for (int l = 0; l < nlibs; l++) printf(" %10s", libs[l].name);
    printf("\n");
    double sum[8] = {0};
    for (int i = 0; i < nshapes; i++) {
        const shape *s = &shapes[i];
        printf("%-12s %6d %6d %6d", s->name, s->m, s->n, s->k);
        for (int l = 0; l < nlibs; l++) {
            double g;
            if (measure(&libs[l], s, &g) == 0) {
                printf(" %10.1f", g);
                /* time for one of each shape, for the weighted mean below */
                sum[l] += 2.0 * s->m * s->n * s->k / (g * 1e9);
            } else {
                printf(" %10s", "n/a"), sum[l] = -1e30;
            }
        }
        printf("\n");
        fflush(stdout);
    }
    double flops = 0;
    for (int i = 0; i < nshapes; i++) flops += 2.0 * shapes[i].m * shapes[i].n * shapes[i].k;
    printf("%-33s", "all shapes (time-weighted)");
    for (int l = 0; l < nlibs; l++)
        if (sum[l] > 0) printf(" %10.1f", flops / sum[l] * 1e-9);
        else printf(" %10s", "n/a");
    printf("\n");
    return 0;
}
