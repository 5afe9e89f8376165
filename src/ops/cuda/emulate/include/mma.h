/* The warp matrix functions (nvcuda::wmma) of the toolkit's mma.h, for the CPU (gpt2c's
 * CUDA-on-CPU runtime): the shapes and types the kernels use, 16 x 16 x 16 tiles of bf16 (or
 * half-width float) inputs with fp32 accumulators, with the real API's names and signatures.
 *
 * A fragment's layout across the lanes is opaque in CUDA, so here every lane holds the whole
 * tile (x[] is the tile in row-major order, num_elements its size): code that treats x[] only
 * element-wise, as the API allows, runs the same. What the emulation checks, as it does for the
 * shuffles: every one of load_matrix_sync, store_matrix_sync and mma_sync is a warp collective
 * that all 32 lanes must reach (a lane missing, or lanes at different calls, stops the run with
 * the call's file and line); the pointer is 256-bit aligned and ldm a multiple of 16 bytes, as
 * the API requires. Memory is read before the lanes meet and written after, each lane its own
 * share (elements lane, lane + 32, ...), so a missing __syncwarp between a lane's writes and
 * another lane's wmma load, or between a store and reads of its values by other lanes, shows in
 * the warp thread order as on a GPU. mma_sync adds each product in k order in fp32 (bf16
 * products are exact in fp32); a tensor core's internal order and rounding differ in the last
 * bits. */
#ifndef GPT2C_CUEMU_MMA_H
#define GPT2C_CUEMU_MMA_H

#include <stdint.h>
#include <stdio.h>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace cuemu {
[[noreturn]] void fail(const char *fmt, ...);
} // namespace cuemu

namespace nvcuda {
namespace wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
/* rows and columns of a fragment of use U in an m x n x k product */
template <typename U, int m, int n, int k> struct dims;
template <int m, int n, int k> struct dims<matrix_a, m, n, k> {
    static constexpr int rows = m, cols = k;
};
template <int m, int n, int k> struct dims<matrix_b, m, n, k> {
    static constexpr int rows = k, cols = n;
};
template <int m, int n, int k> struct dims<accumulator, m, n, k> {
    static constexpr int rows = m, cols = n;
};

/* The lanes meet: a __syncwarp of all 32 (a message names it so, with the wmma call's file and
 * line). */
inline void meet(const char *file, int line) {
    ::cuemu::warp_collective(::cuemu::SYNCWARP, 0xffffffffu, 0, 0, 32, file, line);
}

template <typename T>
inline void check_pointer(const char *what, const T *p, unsigned ldm, const char *file, int line) {
    if ((uintptr_t)p % 32)
        ::cuemu::fail("%s (%s:%d): the pointer %p is not 256-bit aligned", what, file, line,
                      (const void *)p);
    if ((ldm * sizeof(T)) % 16)
        ::cuemu::fail("%s (%s:%d): ldm %u is not a multiple of 16 bytes (%zu-byte elements)", what,
                      file, line, ldm, sizeof(T));
}

inline float widen(float x) { return x; }
inline float widen(__nv_bfloat16 x) { return (float)x; }
} // namespace detail

template <typename Use, int m, int n, int k, typename T, typename Layout = void> class fragment {
  public:
    static constexpr int rows = detail::dims<Use, m, n, k>::rows;
    static constexpr int cols = detail::dims<Use, m, n, k>::cols;
    enum { num_elements = rows * cols };
    T x[num_elements]; /* the whole tile, row-major (the layout is the emulation's own) */
};

template <typename Use, int m, int n, int k, typename T, typename Layout>
inline void fill_fragment(fragment<Use, m, n, k, T, Layout> &a,
                          const typename std::common_type<T>::type &v) {
    for (int i = 0; i < a.num_elements; i++) a.x[i] = v;
}

/* matrix_a and matrix_b: the layout is the fragment's type */
template <typename Use, int m, int n, int k, typename T, typename Layout>
inline void load_matrix_sync(fragment<Use, m, n, k, T, Layout> &a, const T *p, unsigned ldm,
                             const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    static_assert(!std::is_same<Layout, void>::value, "matrix_a and matrix_b fragments name a layout");
    detail::check_pointer("wmma::load_matrix_sync", p, ldm, file, line);
    constexpr bool row = std::is_same<Layout, row_major>::value;
    for (int r = 0; r < a.rows; r++)
        for (int c = 0; c < a.cols; c++)
            a.x[r * a.cols + c] = row ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
    detail::meet(file, line);
}

/* accumulators: the layout is the call's */
template <int m, int n, int k, typename T>
inline void load_matrix_sync(fragment<accumulator, m, n, k, T> &a, const T *p, unsigned ldm,
                             layout_t layout, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
    detail::check_pointer("wmma::load_matrix_sync", p, ldm, file, line);
    for (int r = 0; r < a.rows; r++)
        for (int c = 0; c < a.cols; c++)
            a.x[r * a.cols + c] = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
    detail::meet(file, line);
}

template <int m, int n, int k, typename T>
inline void store_matrix_sync(T *p, const fragment<accumulator, m, n, k, T> &a, unsigned ldm,
                              layout_t layout, const char *file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
    detail::check_pointer("wmma::store_matrix_sync", p, ldm, file, line);
    detail::meet(file, line);
    int lane = (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
    for (int e = lane; e < a.num_elements; e += 32) {
        int r = e / a.cols, c = e % a.cols;
        p[layout == mem_row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r] = a.x[e];
    }
}

/* d = a b + c, in fp32 (d may be c) */
template <int m, int n, int k, typename TI, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, m, n, k, float> &d,
                     const fragment<matrix_a, m, n, k, TI, LA> &a,
                     const fragment<matrix_b, m, n, k, TI, LB> &b,
                     const fragment<accumulator, m, n, k, float> &c,
                     const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    detail::meet(file, line);
    float out[m * n];
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = c.x[i * n + j];
            for (int kk = 0; kk < k; kk++) s += detail::widen(a.x[i * k + kk]) * detail::widen(b.x[kk * n + j]);
            out[i * n + j] = s;
        }
    for (int e = 0; e < m * n; e++) d.x[e] = out[e];
}

} // namespace wmma
} // namespace nvcuda

#endif
