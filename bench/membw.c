/* Memory bandwidth, the ceiling of a batch-1 decoding step (which reads every weight once).
 *   membw SIZE_MB REPS
 * For a buffer of SIZE_MB megabytes (10^6 bytes) of floats, with OMP_NUM_THREADS threads, each
 * thread taking a contiguous slice: "read" sums the buffer (what a matrix-vector product does to
 * its matrix), "copy" copies it to a second buffer (memcpy; counted as read + write bytes, the
 * STREAM convention, without the write-allocate traffic). Prints the best and the median GB/s
 * (10^9 bytes/s) of REPS passes as one JSON line. Both buffers are written before timing.
 * Built by bench/sample_bench.py: cc -O3 -march=native -ffast-math -fopenmp (fast-math lets the
 * compiler vectorize the float sum). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: membw SIZE_MB REPS\n");
        return 2;
    }
    size_t n = (size_t)(atof(argv[1]) * 1e6 / sizeof(float));
    int reps = atoi(argv[2]);
    float *a = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    float *b = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!a || !b || reps < 1) return 1;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023) * 1e-3f, b[i] = 0.0f;
    double *rd = malloc(reps * sizeof *rd), *cp = malloc(reps * sizeof *cp);
    volatile float sink = 0.0f;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        float total = 0.0f;
#pragma omp parallel reduction(+ : total)
        {
            /* 64 independent sums (several vector registers), so that the adds' latency does
             * not bound the pass: only the loads do */
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
            size_t lo = n * t / nt / 64 * 64, hi = t == nt - 1 ? n : n * (t + 1) / nt / 64 * 64;
            float acc[64] = {0};
            size_t i = lo;
            for (; i + 64 <= hi; i += 64)
                for (int j = 0; j < 64; j++) acc[j] += a[i + j];
            for (; i < hi; i++) acc[0] += a[i];
            for (int j = 0; j < 64; j++) total += acc[j];
        }
        double t1 = now();
        sink += total;
        rd[r] = n * sizeof(float) / (t1 - t0) / 1e9;
    }
    for (int r = 0; r < reps; r++) {
        double t1 = now();
#pragma omp parallel
        {
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
            size_t lo = n * t / nt, hi = n * (t + 1) / nt;
            memcpy(b + lo, a + lo, (hi - lo) * sizeof(float));
        }
        double t2 = now();
        sink += b[n / 2];
        cp[r] = 2.0 * n * sizeof(float) / (t2 - t1) / 1e9;
    }
    qsort(rd, reps, sizeof *rd, cmp);
    qsort(cp, reps, sizeof *cp, cmp);
    printf("{\"size_mb\": %.0f, \"threads\": %d, \"read_best\": %.2f, \"read_median\": %.2f, "
           "\"copy_best\": %.2f, \"copy_median\": %.2f}\n",
           n * sizeof(float) / 1e6, omp_get_max_threads(), rd[reps - 1], rd[reps / 2],
           cp[reps - 1], cp[reps / 2]);
    free(a), free(b), free(rd), free(cp);
    return sink == 12345.0f; /* keep the sums */
}
