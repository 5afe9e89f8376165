/* Causal self-attention through cuDNN's fused flash attention: the cuDNN 9 frontend's SDPA
 * forward and backward graphs over views of qkv[B,T,3C] (attention_cudnn.h says what each entry
 * does). All of the frontend is in this file, which nvcc compiles only when CMake found the
 * frontend's headers and cuDNN: the headers take a minute or more to compile, and nothing else
 * in the backend should pay that when it changes. The emulated GPU builds it unchanged against
 * the CPU stand-ins of both (ops/cuda/emulate/include/cudnn*.h).
 *
 * Layouts. cuDNN sees every tensor as [b, h, s, d] with explicit strides, so the views need no
 * copy or transpose: element (b, t, h, d) of q is at b*T*3C + t*3C + h*hs + d of qkv, so q is
 * dims {B, NH, T, hs}, strides {T*3C, hs, 3C, 1}, and k and v the same from qkv + C and qkv + 2C;
 * out and dout ([B,T,C]) are strides {T*C, hs, C, 1}; dq, dk, dv are written into dqkv with q's
 * strides. lse[B,NH,T] is cuDNN's Stats tensor as it is: dims {B, NH, T, 1}, strides {NH*T, T, 1,
 * 1} (the packed layout, the only one that cuDNN before 9.12 writes and before 9.26 reads
 * correctly), float, each row's max + ln(sum of exp(score - max)) over the scaled, masked scores:
 * the natural-log log-sum-exp that ops.h's lse is (the frontend's base-2 option stays off). */
#include <cstring> /* before the frontend: its shim calls std::strlen without including it */
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>

/* The frontend's own JSON (nlohmann's, for serializing graphs and reading errata files, none of
 * which is used here) more than doubles this file's compile time: left out. */
#define CUDNN_FRONTEND_SKIP_JSON_LIB
/* The frontend's headers trip two of nvcc's warnings, which the build's -Werror would make
 * errors: 128 (a `do { ... } while (0)` after a return in its error macros: "loop is not
 * reachable") and 2810 (a [[nodiscard]] status assigned and ignored). Silenced for its headers
 * only. */
#pragma nv_diagnostic push
#pragma nv_diag_suppress 128
#pragma nv_diag_suppress 2810
#include <cudnn_frontend.h>
#pragma nv_diagnostic pop

#include "ops/cuda/attention_cudnn.h"
#include "ops/cuda/cuda_common.cuh"

namespace fe = cudnn_frontend;

namespace {

/* The frontend's tensors are named in the variant pack by these. */
enum Uid : int64_t { UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_DO, UID_DQ, UID_DK, UID_DV };

/* One shape's two graphs, or why cuDNN cannot run it (then both are null). */
struct Shape {
    std::shared_ptr<fe::graph::Graph> fwd, bwd;
    size_t workspace = 0;
    std::string refused;
};
using ShapeKey = std::tuple<int, int, int, int>; /* B, T, C, NH */

/* Made by the first prepare, ended by cudnn_attention_free: on the heap, so that nothing of
 * cuDNN's is destroyed by a static destructor after the CUDA context has gone. */
cudnnHandle_t handle;
std::map<ShapeKey, Shape> *shapes;

/* A failure inside a forward or backward is a bug (the shape was prepared): say where, stop. */
[[noreturn]] void die(const char *file, int line, const std::string &what) {
    fprintf(stderr, "gpt2c: cuDNN error at %s:%d: %s\n", file, line, what.c_str());
    abort();
}
#define CUDNN_CHECK(call)                                                                         \
    do {                                                                                          \
        cudnnStatus_t s_ = (call);                                                                \
        if (s_ != CUDNN_STATUS_SUCCESS) die(__FILE__, __LINE__, cudnnGetErrorString(s_));         \
    } while (0)
#define CUDNN_FE_CHECK(call)                                                                      \
    do {                                                                                          \
        fe::error_t e_ = (call);                                                                  \
        if (e_.is_bad()) die(__FILE__, __LINE__, e_.err_msg);                                    \
    } while (0)

/* While a graph is built: the first failing step's name and the frontend's message. */
struct Refusal {
    std::string why;
};
void step(const fe::error_t &e, const char *graph, const char *what) {
    if (e.is_bad()) throw Refusal{std::string(graph) + " " + what + ": " + e.err_msg};
}

/* q, k and v of qkv, or their gradients in dqkv: [b, h, s, d] views with the row stride 3C. */
fe::graph::Tensor_attributes qkv_view(int64_t B, int64_t T, int64_t C, int64_t NH) {
    fe::graph::Tensor_attributes t;
    t.set_dim({B, NH, T, C / NH})
        .set_stride({T * 3 * C, C / NH, 3 * C, 1})
        .set_data_type(fe::DataType_t::BFLOAT16);
    return t;
}
/* out or dout, [B,T,C] */
void out_layout(fe::graph::Tensor_attributes &t, int64_t B, int64_t T, int64_t C, int64_t NH) {
    t.set_dim({B, NH, T, C / NH}).set_stride({T * C, C / NH, C, 1}).set_data_type(
        fe::DataType_t::BFLOAT16);
}
/* lse[B,NH,T] */
void lse_layout(fe::graph::Tensor_attributes &t, int64_t B, int64_t T, int64_t NH) {
    t.set_dim({B, NH, T, 1}).set_stride({NH * T, T, 1, 1}).set_data_type(fe::DataType_t::FLOAT);
}

/* sm: the GPU's compute capability (90 for sm_90) to define the graph for, or 0 for the current
 * device's */
std::shared_ptr<fe::graph::Graph> new_graph(int sm) {
    auto g = std::make_shared<fe::graph::Graph>();
    if (sm) g->set_sm_version(sm); /* before any node: each copies the graph's context */
    /* bf16 in and out; the products accumulate and the softmax runs in fp32 */
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    return g;
}

/* Validate, lower to cuDNN's operation graph, ask the heuristics (mode A, the fast one that
 * serves SDPA) for engines, keep the first that supports the graph and compile its plan. */
void build(fe::graph::Graph &g, const char *name) {
    step(g.validate(), name, "validate");
    step(g.build_operation_graph(handle), name, "build_operation_graph");
    step(g.create_execution_plans({fe::HeurMode_t::A}), name, "create_execution_plans");
    step(g.check_support(), name, "check_support");
    step(g.build_plans(), name, "build_plans");
}

size_t workspace_of(const fe::graph::Graph &g, const char *name) {
    int64_t bytes = 0;
    step(g.get_workspace_size(bytes), name, "get_workspace_size");
    return (size_t)bytes;
}

/* The causal mask: key u is seen by query t when u <= t, i.e. the band's right bound is the
 * diagonal, aligned to the top left (T queries over T keys, so either alignment is the same;
 * top-left is the one every cuDNN 9 engine takes). */
template <typename Attr> void causal(Attr &a) {
    a.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT).set_diagonal_band_right_bound(0);
}

/* The graphs as defined, not yet built (build() above): apart, and with new_graph's sm, so that
 * they can be validated for a GPU that is not there, as a check on a machine without one. */
std::shared_ptr<fe::graph::Graph> forward_graph(int64_t B, int64_t T, int64_t C, int64_t NH,
                                                int sm) {
    auto g = new_graph(sm);
    auto Q = g->tensor(qkv_view(B, T, C, NH).set_name("Q").set_uid(UID_Q));
    auto K = g->tensor(qkv_view(B, T, C, NH).set_name("K").set_uid(UID_K));
    auto V = g->tensor(qkv_view(B, T, C, NH).set_name("V").set_uid(UID_V));
    auto opts = fe::graph::SDPA_attributes()
                    .set_name("attention_forward")
                    .set_generate_stats(true) /* training: the backward needs lse */
                    .set_attn_scale(1.0f / sqrtf((float)(C / NH)));
    causal(opts);
    auto [O, stats] = g->sdpa(Q, K, V, opts);
    out_layout(O->set_output(true).set_name("O").set_uid(UID_O), B, T, C, NH);
    lse_layout(stats->set_output(true).set_name("Stats").set_uid(UID_STATS), B, T, NH);
    return g;
}

std::shared_ptr<fe::graph::Graph> backward_graph(int64_t B, int64_t T, int64_t C, int64_t NH,
                                                 int sm) {
    auto g = new_graph(sm);
    auto Q = g->tensor(qkv_view(B, T, C, NH).set_name("Q").set_uid(UID_Q));
    auto K = g->tensor(qkv_view(B, T, C, NH).set_name("K").set_uid(UID_K));
    auto V = g->tensor(qkv_view(B, T, C, NH).set_name("V").set_uid(UID_V));
    fe::graph::Tensor_attributes o, dout, lse;
    out_layout(o.set_name("O").set_uid(UID_O), B, T, C, NH);
    out_layout(dout.set_name("dO").set_uid(UID_DO), B, T, C, NH);
    lse_layout(lse.set_name("Stats").set_uid(UID_STATS), B, T, NH);
    auto opts = fe::graph::SDPA_backward_attributes()
                    .set_name("attention_backward")
                    .set_attn_scale(1.0f / sqrtf((float)(C / NH)))
                    /* no atomics in dq's accumulation: the same bits every run, as ops.h asks */
                    .set_deterministic_algorithm(true);
    causal(opts);
    auto [dQ, dK, dV] =
        g->sdpa_backward(Q, K, V, g->tensor(o), g->tensor(dout), g->tensor(lse), opts);
    /* written with q's strides straight into dqkv's three blocks */
    auto into = [&](std::shared_ptr<fe::graph::Tensor_attributes> &d, const char *name, Uid uid) {
        auto view = qkv_view(B, T, C, NH);
        d->set_output(true).set_name(name).set_uid(uid).set_dim(view.get_dim()).set_stride(
            view.get_stride());
    };
    into(dQ, "dQ", UID_DQ);
    into(dK, "dK", UID_DK);
    into(dV, "dV", UID_DV);
    return g;
}

/* Why this process cannot use cuDNN attention at all, or "" when it can (the handle made). */
std::string start(void) {
    size_t v = cudnnGetVersion();
    if (v < 90000)
        return "cuDNN " + std::to_string(v) + " is older than 9 (cudnnGetVersion)";
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
        cudaGetLastError(); /* clear it: the caller's CUDA state stays clean */
        return "no CUDA device";
    }
    if (major < 8) return "cuDNN's flash attention needs an sm_80 (Ampere) or newer GPU";
    if (!handle) {
        cudnnStatus_t s = cudnnCreate(&handle);
        if (s != CUDNN_STATUS_SUCCESS) {
            handle = nullptr;
            return std::string("cuDNN could not start: ") + cudnnGetErrorString(s);
        }
    }
    /* the plans are built against the handle's stream; every call sets it again anyway, since
     * the backend's stream is remade when it is closed and opened again */
    cudnnStatus_t s = cudnnSetStream(handle, cuda_stream);
    if (s != CUDNN_STATUS_SUCCESS) return std::string("cudnnSetStream: ") + cudnnGetErrorString(s);
    return "";
}

const Shape &prepared(int B, int T, int C, int NH, const char *who) {
    if (shapes) {
        auto it = shapes->find({B, T, C, NH});
        if (it != shapes->end() && it->second.refused.empty()) return it->second;
    }
    die(__FILE__, __LINE__,
        std::string(who) + " of a shape not prepared (B=" + std::to_string(B) + ", T=" +
            std::to_string(T) + ", C=" + std::to_string(C) + ", NH=" + std::to_string(NH) + ")");
}

/* cuDNN's engines are chosen for 16-byte aligned operands (the frontend's default, which it
 * checks itself only for q, k, v, o and their gradients): a pointer that is not would give wrong
 * numbers or a fault on the GPU, so it stops here instead, naming it. */
void aligned(const void *p, const char *name, const char *who) {
    if ((uintptr_t)p % 16)
        die(__FILE__, __LINE__, std::string(who) + ": " + name + " is not 16-byte aligned");
}

} // namespace

extern "C" int cudnn_attention_prepare(int B, int T, int C, int NH, size_t *workspace_bytes,
                                       gpt2c_error *err) {
    auto refuse = [&](const std::string &why) {
        if (err) snprintf(err->msg, sizeof err->msg, "cuDNN attention: %s", why.c_str());
        return -1;
    };
    if (B <= 0 || T <= 0 || NH <= 0 || C <= 0 || C % NH)
        return refuse("not an attention shape (B=" + std::to_string(B) + ", T=" +
                      std::to_string(T) + ", C=" + std::to_string(C) +
                      ", NH=" + std::to_string(NH) + ")");
    /* cuDNN's head sizes are multiples of 8; and k and v start C and 2C values into each row,
     * which must be 16-byte aligned, as cuDNN's loads are */
    if ((C / NH) % 8)
        return refuse("the head size (" + std::to_string(C / NH) + ") is not a multiple of 8");
    try {
        if (!shapes) shapes = new std::map<ShapeKey, Shape>();
        ShapeKey key{B, T, C, NH};
        auto it = shapes->find(key);
        if (it == shapes->end()) {
            Shape s;
            s.refused = start();
            if (s.refused.empty()) {
                try {
                    s.fwd = forward_graph(B, T, C, NH, 0);
                    build(*s.fwd, "the forward graph");
                    s.bwd = backward_graph(B, T, C, NH, 0);
                    build(*s.bwd, "the backward graph");
                    s.workspace = std::max(workspace_of(*s.fwd, "the forward graph"),
                                           workspace_of(*s.bwd, "the backward graph"));
                } catch (const Refusal &r) {
                    s = Shape();
                    s.refused = r.why;
                }
            }
            it = shapes->emplace(key, std::move(s)).first;
        }
        if (!it->second.refused.empty()) return refuse(it->second.refused);
        if (workspace_bytes) *workspace_bytes = it->second.workspace;
        return 0;
    } catch (const std::exception &e) { /* the frontend throws, e.g., when out of host memory */
        return refuse(e.what());
    }
}

extern "C" void cudnn_attention_forward(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *qkv,
                                        int B, int T, int C, int NH, void *workspace) {
    const Shape &s = prepared(B, T, C, NH, "attention forward");
    aligned(out, "out", "attention forward");
    aligned(lse, "lse", "attention forward");
    aligned(qkv, "qkv", "attention forward");
    aligned(workspace, "the workspace", "attention forward");
    /* the variant pack takes void *; cuDNN only reads the inputs */
    __nv_bfloat16 *in = const_cast<__nv_bfloat16 *>(qkv);
    std::unordered_map<int64_t, void *> pack = {{UID_Q, in},     {UID_K, in + C},
                                                {UID_V, in + 2 * C}, {UID_O, out},
                                                {UID_STATS, lse}};
    try {
        CUDNN_CHECK(cudnnSetStream(handle, cuda_stream));
        CUDNN_FE_CHECK(s.fwd->execute(handle, pack, workspace));
    } catch (const std::exception &e) {
        die(__FILE__, __LINE__, e.what());
    }
}

extern "C" void cudnn_attention_backward(__nv_bfloat16 *dqkv, const __nv_bfloat16 *dout,
                                         const __nv_bfloat16 *qkv, const __nv_bfloat16 *out,
                                         const float *lse, int B, int T, int C, int NH,
                                         void *workspace) {
    const Shape &s = prepared(B, T, C, NH, "attention backward");
    const void *ptrs[] = {dqkv, dout, qkv, out, lse, workspace};
    const char *names[] = {"dqkv", "dout", "qkv", "out", "lse", "the workspace"};
    for (int i = 0; i < 6; i++) aligned(ptrs[i], names[i], "attention backward");
    __nv_bfloat16 *in = const_cast<__nv_bfloat16 *>(qkv);
    std::unordered_map<int64_t, void *> pack = {
        {UID_Q, in},
        {UID_K, in + C},
        {UID_V, in + 2 * C},
        {UID_O, const_cast<__nv_bfloat16 *>(out)},
        {UID_DO, const_cast<__nv_bfloat16 *>(dout)},
        {UID_STATS, const_cast<float *>(lse)},
        {UID_DQ, dqkv},
        {UID_DK, dqkv + C},
        {UID_DV, dqkv + 2 * C}};
    try {
        CUDNN_CHECK(cudnnSetStream(handle, cuda_stream));
        CUDNN_FE_CHECK(s.bwd->execute(handle, pack, workspace));
    } catch (const std::exception &e) {
        die(__FILE__, __LINE__, e.what());
    }
}

extern "C" const char *cudnn_attention_version(void) {
    static char text[64];
    size_t v = cudnnGetVersion(); /* 9.x.y is 90000 + 100 x + y */
    snprintf(text, sizeof text, "cuDNN %zu.%zu.%zu (frontend %d.%d.%d)", v / 10000,
             v % 10000 / 100, v % 100, CUDNN_FRONTEND_MAJOR_VERSION, CUDNN_FRONTEND_MINOR_VERSION,
             CUDNN_FRONTEND_PATCH_VERSION);
    return text;
}

extern "C" void cudnn_attention_free(void) {
    /* the plans before the handle they were built with */
    delete shapes;
    shapes = nullptr;
    if (handle) cudnnDestroy(handle);
    handle = nullptr;
}
