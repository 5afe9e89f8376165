/* A CPU stand-in for the part of the cuDNN frontend (the header-only C++ graph API over cuDNN 9,
 * pinned at 1.32.0: third_party/cudnn-frontend/requirements.txt) that the backend's
 * attention_cudnn.cu calls, so that file builds and runs unchanged on gpt2c's CUDA-on-CPU
 * runtime. Exactly that subset: tensors described by dims, strides, type and uid; a graph of one
 * fused attention node, forward (sdpa: O and the softmax's Stats) or backward (sdpa_backward:
 * dQ, dK, dV); the frontend's steps from validate to build_plans; the workspace size; execute
 * with a variant pack of uids. Written from the frontend's documented behaviour, not its code.
 *
 * Kept from the library (cudnn_graph.cpp checks them, with the frontend's error codes): the
 * steps in their order; what validate refuses (dims, strides or a type missing, shapes that do
 * not agree, a head size not a multiple of 8 or over 256, a last stride not 1, a stride that
 * breaks the operands' 16-byte alignment, a Stats not [b, h, s_q, 1] in fp32, a backward Stats
 * not packed as cuDNN 9.19 reads it, an output not marked as one, a uid used twice); GPUs older
 * than sm_80 refused at check_support; at execute, a uid missing from the variant pack and an
 * operand not 16-byte aligned; the work queued on the handle's stream, not run at the call.
 * Narrower than the library, and refused as unsupported: io in bf16 only (cuDNN also takes
 * fp16), fp32 intermediates and compute, the same number of heads for Q, K and V, no masks but
 * the causal band (alignment + right bound), no dropout, bias or paging. What it cannot be:
 * cuDNN's engines, their heuristics and their numerics (cudnn_sdpa.cpp says what it computes
 * instead). */
#ifndef GPT2C_CUEMU_CUDNN_FRONTEND_H
#define GPT2C_CUEMU_CUDNN_FRONTEND_H

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cudnn.h"

#define CUDNN_FRONTEND_MAJOR_VERSION 1
#define CUDNN_FRONTEND_MINOR_VERSION 32
#define CUDNN_FRONTEND_PATCH_VERSION 0
#define CUDNN_FRONTEND_VERSION                                                                    \
    ((CUDNN_FRONTEND_MAJOR_VERSION * 10000) + (CUDNN_FRONTEND_MINOR_VERSION * 100) +              \
     CUDNN_FRONTEND_PATCH_VERSION)

namespace cudnn_frontend {

enum class DataType_t { NOT_SET, FLOAT, HALF, BFLOAT16 };
enum class HeurMode_t { A, B, FALLBACK };
enum class DiagonalAlignment_t { TOP_LEFT, BOTTOM_RIGHT };

enum class [[nodiscard]] error_code_t {
    OK,
    ATTRIBUTE_NOT_SET,
    SHAPE_DEDUCTION_FAILED,
    INVALID_TENSOR_NAME,
    INVALID_VARIANT_PACK,
    GRAPH_NOT_SUPPORTED,
    GRAPH_EXECUTION_PLAN_CREATION_FAILED,
    GRAPH_EXECUTION_FAILED,
    HEURISTIC_QUERY_FAILED,
    UNSUPPORTED_GRAPH_FORMAT,
    CUDA_API_FAILED,
    CUDNN_BACKEND_API_FAILED,
    INVALID_CUDA_DEVICE,
    HANDLE_ERROR,
    INVALID_VALUE,
};

/* Every step's result: a code and, when it is not OK, the reason. */
typedef struct [[nodiscard]] error_object {
    error_code_t code;
    std::string err_msg;
    error_object() : code(error_code_t::OK) {}
    error_object(error_code_t c, std::string msg) : code(c), err_msg(std::move(msg)) {}
    error_code_t get_code() const { return code; }
    std::string get_message() const { return err_msg; }
    bool is_good() const { return code == error_code_t::OK; }
    bool is_bad() const { return !is_good(); }
} error_t;

namespace graph {

/* A tensor as the graph sees it: [b, h, s, d] dims and strides in elements, its type, a uid
 * that names it in the variant pack (0: none yet; validate gives one), whether it leaves the
 * graph (an output's default is virtual: it must be marked). */
class Tensor_attributes {
  public:
    Tensor_attributes &set_name(std::string const &n) { name = n; return *this; }
    Tensor_attributes &set_dim(std::vector<int64_t> const &d) { dim = d; return *this; }
    Tensor_attributes &set_stride(std::vector<int64_t> const &s) { stride = s; return *this; }
    Tensor_attributes &set_data_type(DataType_t t) { type = t; return *this; }
    Tensor_attributes &set_uid(int64_t u) { uid = u, uid_set = true; return *this; }
    Tensor_attributes &set_output(bool o) { is_virtual = !o; return *this; }
    Tensor_attributes &set_is_virtual(bool v) { is_virtual = v; return *this; }

    std::string const &get_name() const { return name; }
    std::vector<int64_t> const &get_dim() const { return dim; }
    std::vector<int64_t> const &get_stride() const { return stride; }
    DataType_t get_data_type() const { return type; }
    int64_t get_uid() const { return uid; }
    bool has_uid() const { return uid_set; }
    bool get_is_virtual() const { return is_virtual; }

  private:
    std::string name;
    std::vector<int64_t> dim, stride;
    DataType_t type = DataType_t::NOT_SET;
    int64_t uid = 0;
    bool uid_set = false, is_virtual = false;
    friend class Graph;
};

/* What the forward and the backward node share: a name, the scale of the scores, the causal
 * band (key j is seen by query i when j <= i + right bound, i counted from the alignment's
 * corner). Setters return the derived type, so that chains keep it. */
template <typename Self> class Attention_attributes {
  public:
    Self &set_name(std::string const &n) { name = n; return self(); }
    Self &set_attn_scale(float s) { attn_scale = s, scale_set = true; return self(); }
    Self &set_diagonal_alignment(DiagonalAlignment_t a) { alignment = a; return self(); }
    Self &set_diagonal_band_right_bound(int b) { right_bound = b, bound_set = true; return self(); }

  protected:
    std::string name;
    float attn_scale = 1.0f;
    bool scale_set = false;
    DiagonalAlignment_t alignment = DiagonalAlignment_t::TOP_LEFT;
    int right_bound = 0;
    bool bound_set = false;
    Self &self() { return static_cast<Self &>(*this); }
    friend class Graph;
};

class SDPA_attributes : public Attention_attributes<SDPA_attributes> {
  public:
    /* training: the Stats output (each row's log-sum-exp) that the backward reads */
    SDPA_attributes &set_generate_stats(bool g) {
        generate_stats = g, stats_set = true;
        return *this;
    }

  private:
    bool generate_stats = false, stats_set = false;
    friend class Graph;
};

class SDPA_backward_attributes : public Attention_attributes<SDPA_backward_attributes> {
  public:
    /* the stand-in is deterministic either way; kept so that the request is recorded */
    SDPA_backward_attributes &set_deterministic_algorithm(bool d) {
        deterministic = d;
        return *this;
    }

  private:
    bool deterministic = false;
    friend class Graph;
};

class Graph {
  public:
    Graph();
    ~Graph();
    Graph(Graph const &) = delete;
    Graph &operator=(Graph const &) = delete;

    /* the GPU to validate and support-check for (80 for sm_80); unset: the current device's */
    Graph &set_sm_version(int32_t sm);
    Graph &set_io_data_type(DataType_t t);
    Graph &set_intermediate_data_type(DataType_t t);
    Graph &set_compute_data_type(DataType_t t);

    /* an input of the graph: a copy of t, owned by the graph */
    std::shared_ptr<Tensor_attributes> tensor(Tensor_attributes const &t);
    /* {O, Stats}; Stats is null unless set_generate_stats(true) */
    std::array<std::shared_ptr<Tensor_attributes>, 2> sdpa(std::shared_ptr<Tensor_attributes> q,
                                                           std::shared_ptr<Tensor_attributes> k,
                                                           std::shared_ptr<Tensor_attributes> v,
                                                           SDPA_attributes attributes);
    /* {dQ, dK, dV} */
    std::array<std::shared_ptr<Tensor_attributes>, 3>
    sdpa_backward(std::shared_ptr<Tensor_attributes> q, std::shared_ptr<Tensor_attributes> k,
                  std::shared_ptr<Tensor_attributes> v, std::shared_ptr<Tensor_attributes> o,
                  std::shared_ptr<Tensor_attributes> dO, std::shared_ptr<Tensor_attributes> stats,
                  SDPA_backward_attributes attributes);

    /* The steps, each after the one before (out of order: an error, as the library's). */
    error_t validate();
    error_t build_operation_graph(cudnnHandle_t handle);
    error_t create_execution_plans(std::vector<HeurMode_t> const &modes);
    error_t check_support();
    error_t build_plans();
    error_t get_workspace_size(int64_t &bytes) const;
    /* Queues the graph's work on the handle's stream: pointers by uid (every non-virtual tensor
     * of the graph), and at least get_workspace_size bytes of device memory at workspace. */
    error_t execute(cudnnHandle_t handle, std::unordered_map<int64_t, void *> &pack,
                    void *workspace) const;

    struct state; /* cudnn_graph.cpp's */

  private:
    std::unique_ptr<state> s;
};

} // namespace graph
} // namespace cudnn_frontend

#endif
