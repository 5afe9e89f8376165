/* Matrix products of the linear layers and the LM head, through oneDNN. Chosen by measurement
 * (bench/gemm_bench.c, README "Benchmarks"): on the shapes of a GPT-2 step oneDNN's fp32 GEMM
 * is 9-12% faster than OpenBLAS here, it picks its AVX-512 kernels by the CPU's features
 * rather than its model name (OpenBLAS 0.3.21 runs AVX2 kernels on CPUs it does not know, such as
 * AMD Zen 5, unless OPENBLAS_CORETYPE is set), and with bf16 inputs it uses AVX512_BF16 or AMX
 * where the CPU has them (about 4x fp32 on the Xeon). Elsewhere its bf16 kernels emulate the
 * instructions at a third of its fp32 speed, so bf16 products there take the fp32 route on
 * rounded inputs instead (matmul.c).
 *
 * fp32 goes through dnnl_sgemm, BLAS-like: in a training step it was 16% faster than oneDNN's
 * fp32 matmul primitive. bf16 has only the primitive, which is made once per shape and kept:
 * making one compiles its kernel (milliseconds), running it costs microseconds. A training run
 * uses a dozen shapes, and under bf16 attention's batch products over the heads (strided views
 * of qkv, cpu_gemm_batched) six more a block of query rows; generation, whose prompt lengths
 * vary, reuses the slots in turn. */
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/cpu_isa.h"
#include "ops/cpu/cpu_kernels.h"

/* A training run's products, attention's batched ones (6 shapes a block of CPU_ATTN_ROWS query
 * rows: 96 at T = 1024), and generation's. */
#define GEMM_SLOTS 256

/* A product's shape: 2-D (batch 0), or batch products over strided views; strides in elements:
 * A's (batch, row, column), B's (batch, k, n), C's (batch, row), C's columns contiguous. Keys
 * are zeroed before they are filled, so that they compare as bytes. */
typedef struct gemm_key {
    int type, batch, M, N, K, bias, accumulate;
    long sa[3], sb[3], sc[2];
} gemm_key;

typedef struct gemm_slot {
    gemm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, bias, c;
} gemm_slot;

static struct {
    pthread_mutex_t lock;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    gemm_slot slots[GEMM_SLOTS];
    int used, next_evict;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int same_key(const gemm_key *a, const gemm_key *b) { return !memcmp(a, b, sizeof *a); }

static void slot_release(gemm_slot *s) {
    dnnl_primitive_destroy(s->prim);
    dnnl_memory_destroy(s->a), dnnl_memory_destroy(s->b), dnnl_memory_destroy(s->c);
    if (s->bias) dnnl_memory_destroy(s->bias);
    s->prim = NULL;
}

/* An operand's memory descriptor: rows x cols (x batch in front when the key has one). */
static int operand(dnnl_memory_desc_t *md, const gemm_key *k, long rows, long cols,
                   const long *strides, dnnl_data_type_t type) {
    if (!k->batch) {
        dnnl_dims_t d = {rows, cols}, st = {strides[1], strides[2]};
        return dnnl_memory_desc_init_by_strides(md, 2, d, type, st) != dnnl_success;
    }
    dnnl_dims_t d = {k->batch, rows, cols}, st = {strides[0], strides[1], strides[2]};
    return dnnl_memory_desc_init_by_strides(md, 3, d, type, st) != dnnl_success;
}

/* Makes the primitive for this key in s; returns 0, or -1 when oneDNN has no implementation. */
static int slot_make(gemm_slot *s, const gemm_key *k) {
    dnnl_data_type_t in = dnnl_bf16;
    dnnl_memory_desc_t a_md, b_md, bias_md, c_md;
    long sc[3] = {k->sc[0], k->sc[1], 1}, sbias[3] = {0, k->N, 1};
    if (operand(&a_md, k, k->M, k->K, k->sa, in) || operand(&b_md, k, k->K, k->N, k->sb, in) ||
        operand(&c_md, k, k->M, k->N, sc, dnnl_f32) ||
        operand(&bias_md, k, 1, k->N, sbias, dnnl_f32))
        return -1;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &a_md, &b_md, k->bias ? &bias_md : NULL, &c_md)) return -1;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post = NULL;
    if (k->accumulate) {
        /* C += product: oneDNN's "sum" post-op */
        if (dnnl_primitive_attr_create(&attr) || dnnl_post_ops_create(&post) ||
            dnnl_post_ops_append_sum(post, 1.0f) || dnnl_primitive_attr_set_post_ops(attr, post))
            return -1;
    }
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, g.engine, NULL);
    if (post) dnnl_post_ops_destroy(post);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return -1;
    st = dnnl_primitive_create(&s->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) return -1;
    /* memory objects without data; each call sets its pointers */
    s->bias = NULL;
    if (dnnl_memory_create(&s->a, &a_md, g.engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&s->b, &b_md, g.engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&s->c, &c_md, g.engine, DNNL_MEMORY_NONE) ||
        (k->bias && dnnl_memory_create(&s->bias, &bias_md, g.engine, DNNL_MEMORY_NONE)))
        return -1;
    memcpy(&s->key, k, sizeof *k); /* (with its padding: keys compare as bytes) */
    return 0;
}

static int engine_ready(void) {
    if (g.engine) return 0;
    if (dnnl_engine_create(&g.engine, dnnl_cpu, 0) != dnnl_success) return -1;
    if (dnnl_stream_create(&g.stream, g.engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(g.engine);
        g.engine = NULL;
        return -1;
    }
    return 0;
}

/* The slot for this key, made if needed; NULL when oneDNN cannot. Called with the lock held. */
static gemm_slot *slot_for(const gemm_key *k) {
    for (int i = 0; i < g.used; i++)
        if (same_key(&g.slots[i].key, k)) return &g.slots[i];
    if (engine_ready() != 0) return NULL;
    gemm_slot *s;
    if (g.used < GEMM_SLOTS) {
        s = &g.slots[g.used++];
    } else {
        s = &g.slots[g.next_evict];
        g.next_evict = (g.next_evict + 1) % GEMM_SLOTS;
        slot_release(s);
    }
    if (slot_make(s, k) != 0) {
        /* keep the slots dense: the failed one is the last made, or an evicted one */
        memcpy(s, &g.slots[--g.used], sizeof *s);
        return NULL;
    }
    return s;
}

static void sgemm(int ta, int tb, int M, int N, int K, const float *A, const float *B,
                  const float *bias, float *C, int accumulate) {
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * N + j] = bias[j];
        accumulate = 1;
    }
    dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, ta ? M : K, B,
                                  tb ? K : N, accumulate ? 1.0f : 0.0f, C, N);
    if (st != dnnl_success) {
        fprintf(stderr, "gpt2c: internal error: dnnl_sgemm failed (status %d)\n", (int)st);
        abort();
    }
}

/* The bf16 product of key k (the slot made once), C from A and B. */
static void bf16_product(const gemm_key *k, const void *A, const void *B, const float *bias,
                         float *C) {
    pthread_mutex_lock(&g.lock);
    gemm_slot *s = slot_for(k);
    if (!s) {
        /* Callers choose bf16 only where cpu_bf16_native() says oneDNN has the kernels, so
         * this is a shape oneDNN refuses: a bug, not bad input. */
        fprintf(stderr, "gpt2c: internal error: oneDNN has no bf16 matmul for %d x %d x %d (batch "
                "%d)\n", k->M, k->N, k->K, k->batch);
        abort();
    }
    dnnl_memory_set_data_handle(s->a, (void *)A);
    dnnl_memory_set_data_handle(s->b, (void *)B);
    dnnl_memory_set_data_handle(s->c, C);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, s->a}, {DNNL_ARG_WEIGHTS, s->b},
                               {DNNL_ARG_DST, s->c}, {DNNL_ARG_BIAS, s->bias}};
    if (bias) dnnl_memory_set_data_handle(s->bias, (void *)bias);
    dnnl_status_t st = dnnl_primitive_execute(s->prim, g.stream, bias ? 4 : 3, args);
    if (st == dnnl_success) st = dnnl_stream_wait(g.stream);
    pthread_mutex_unlock(&g.lock);
    if (st != dnnl_success) {
        fprintf(stderr, "gpt2c: internal error: oneDNN matmul failed (status %d)\n", (int)st);
        abort();
    }
}

void cpu_gemm(gemm_type type, int ta, int tb, int M, int N, int K, const void *A, const void *B,
              const float *bias, float *C, int accumulate) {
    (void)cpu_isa(); /* oneDNN's cap is set before its first call */
    if (type == GEMM_F32) {
        sgemm(ta, tb, M, N, K, A, B, bias, C, accumulate);
        return;
    }
    /* row-major and contiguous: a transposed operand is the other one's strides */
    gemm_key k;
    memset(&k, 0, sizeof k);
    k.type = type, k.M = M, k.N = N, k.K = K, k.bias = bias != NULL, k.accumulate = accumulate;
    k.sa[1] = ta ? 1 : K, k.sa[2] = ta ? M : 1;
    k.sb[1] = tb ? 1 : N, k.sb[2] = tb ? K : 1;
    k.sc[1] = N;
    bf16_product(&k, A, B, bias, C);
}

void cpu_gemm_batched(int batch, int M, int N, int K, const gpt2_bf16 *A, const long sa[3],
                      const gpt2_bf16 *B, const long sb[3], float *C, const long sc[2],
                      int accumulate) {
    (void)cpu_isa();
    gemm_key k;
    memset(&k, 0, sizeof k);
    k.type = GEMM_BF16, k.batch = batch, k.M = M, k.N = N, k.K = K, k.accumulate = accumulate;
    memcpy(k.sa, sa, sizeof k.sa), memcpy(k.sb, sb, sizeof k.sb), memcpy(k.sc, sc, sizeof k.sc);
    bf16_product(&k, A, B, NULL, C);
}
