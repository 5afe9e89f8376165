/* GPT2C_CUDA_SYNC_CHECK=1: every op followed by a synchronize and an error check, so that a
 * kernel that faults is named where it ran, with its shapes ("gpt2c: CUDA error after
 * layernorm_backward(N=4096, C=768): an illegal memory access was encountered"), instead of at
 * the next synchronize, ops later. The table wraps the backend's, generated from the op list;
 * slow, for finding a bug on a device. */
#include <string.h>

#include <string>
#include <type_traits>

#include "ops/cuda/cuda_common.cuh"

/* "N=4096, C=768": the op's whole-number arguments with their names (the pointers left out). */
template <class T> static void name_value(std::string &out, const char *&names, T v) {
    while (*names == ' ' || *names == '(' || *names == ',') names++;
    const char *end = names;
    while (*end && *end != ',' && *end != ')') end++;
    if constexpr (std::is_integral<T>::value) {
        if (!out.empty()) out += ", ";
        out.append(names, (size_t)(end - names));
        out += "=" + std::to_string(v);
    }
    names = end;
}
template <class... A> static std::string shapes(const char *names, A... args) {
    std::string out;
    (name_value(out, names, args), ...);
    return out;
}

template <class... A> static void check_after(const char *op, const char *names, A... args) {
    cudaError_t e = cudaStreamSynchronize(cuda_stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e == cudaSuccess) return;
    fprintf(stderr, "gpt2c: CUDA error after %s(%s): %s\n", op, shapes(names, args...).c_str(),
            cudaGetErrorString(e));
    abort();
}

#define CHECKED_OP(name, params, args, ...)                                                       \
    static void checked_##name params {                                                           \
        cuda_##name args;                                                                         \
        check_after(#name, #args, GPT2_UNPAREN args);                                             \
    }
GPT2_OPS(CHECKED_OP)
#undef CHECKED_OP

#define CHECKED_SERVICE_ENTRY(ret, name, params) .name = cuda_##name,
#define CHECKED_OP_ENTRY(name, ...) .name = checked_##name,
extern "C" const gpt2_ops cuda_checked_ops = {GPT2_SERVICES(CHECKED_SERVICE_ENTRY)
                                                  GPT2_OPS(CHECKED_OP_ENTRY)};
