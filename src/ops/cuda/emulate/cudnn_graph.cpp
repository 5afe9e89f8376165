/* The cuDNN frontend's graph on the CPU (include/cudnn_frontend.h says what it keeps of the
 * library and what it refuses): one fused attention node, its operands checked at validate as
 * the frontend checks them, fixed at build_operation_graph, and run by cudnn_sdpa.cpp on the
 * handle's stream when the stream runs. Every refusal is an error_t with the frontend's code and
 * a message naming the tensor, so that a caller's fallback sees what it would see on a GPU. */
#include <set>
#include <string>

#include "cudnn_frontend.h"
#include "cudnn_sdpa.h"
#include "stream.h"

namespace fe = cudnn_frontend;
using fe::DataType_t;
using fe::error_code_t;
using fe::graph::Tensor_attributes;
using tensor_ptr = std::shared_ptr<Tensor_attributes>;

namespace {

/* The steps, in the order the frontend takes them. */
enum class stage { defined, validated, lowered, planned, supported, built };
const char *const step_name[] = {"the graph's definition", "validate",      "build_operation_graph",
                                 "create_execution_plans", "check_support", "build_plans"};

/* The node's operands, forward (Q, K, V in; O, Stats out) and backward (Q, K, V, O, Stats, dO
 * in; dQ, dK, dV out). */
enum port { Q, K, V, O, STATS, DO, DQ, DK, DV, NPORTS };
const char *const port_name[NPORTS] = {"Q", "K", "V", "O", "Stats", "dO", "dQ", "dK", "dV"};

/* cuDNN's engines move Q, K, V, O and their gradients in 16-byte vectors (the frontend's
 * declared alignment for them, which it checks); Stats is fp32, read a row at a time. */
const int64_t ALIGNMENT = 16;

size_t type_bytes(DataType_t t) { return t == DataType_t::FLOAT ? 4 : 2; }

fe::error_t fail(error_code_t code, const std::string &why) { return {code, why}; }

#define TRY(call)                                                                                  \
    do {                                                                                           \
        fe::error_t e_ = (call);                                                                   \
        if (e_.is_bad()) return e_;                                                                \
    } while (0)

std::string dims_text(const std::vector<int64_t> &d) {
    std::string s = "{";
    for (size_t i = 0; i < d.size(); i++) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "}";
}

/* The compute capability the graph is for: the one set, else the current device's. */
int sm_of(int32_t set) {
    if (set) return set;
    int dev = 0;
    cudaDeviceProp p;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess)
        return 0;
    return p.major * 10 + p.minor;
}

fe::error_t check_sm(int32_t set) {
    int sm = sm_of(set);
    if (sm < 80)
        return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                    "SDPA FP16/BF16 requires SM80 (Ampere) or newer architecture (sm_" +
                        std::to_string(sm) + ")");
    return {};
}

} // namespace

struct fe::graph::Graph::state {
    int32_t sm = 0;
    DataType_t io = DataType_t::NOT_SET, intermediate = DataType_t::NOT_SET,
               compute = DataType_t::NOT_SET;
    int nodes = 0;
    /* the node's attributes */
    bool backward = false;
    float scale = 1.0f;
    bool banded = false, bottom_right = false;
    int right_bound = 0;
    bool stats_set = false, generate_stats = false;
    tensor_ptr ports[NPORTS];
    stage at = stage::defined;
    /* fixed by build_operation_graph: what the plans run */
    cuemu::sdpa_shape shape{};
    struct operand {
        bool used;
        int64_t uid;
        std::vector<int64_t> dim, stride;
        DataType_t type;
    } fixed[NPORTS] = {};
    size_t workspace = 0;

    bool used(int p) const {
        if (p == STATS) return backward || generate_stats;
        return backward || p <= O;
    }
    bool is_output(int p) const { return backward ? p >= DQ : (p == O || p == STATS); }
    /* one step after the other: `step` needs the graph at `need` */
    fe::error_t in_order(stage need, const char *step) const {
        if (at == need) return {};
        std::string why = at < need ? std::string(step) + " before " + step_name[(int)need]
                                    : std::string(step) + " again, after " + step_name[(int)at];
        return fail(error_code_t::INVALID_VALUE, why);
    }
    fe::error_t validate_ports();
    fe::error_t assign_uids();
};

/* Every operand's type, dims and strides, as the frontend checks them once the outputs' are
 * inferred; the node's own limits after. */
fe::error_t fe::graph::Graph::state::validate_ports() {
    for (int p = 0; p < NPORTS; p++) {
        if (!used(p)) continue;
        const tensor_ptr &t = ports[p];
        std::string name = port_name[p];
        if (!t) return fail(error_code_t::ATTRIBUTE_NOT_SET, name + " is not set");
        if (t->get_is_virtual())
            return fail(error_code_t::INVALID_VALUE,
                        name + " is virtual: " +
                            (is_output(p) ? "mark the node's outputs with set_output(true)"
                                          : "no node of the graph makes it"));
        if (!is_output(p) && t->get_data_type() == DataType_t::NOT_SET) t->set_data_type(io);
    }
    /* the shapes: b, h, s_q and d from Q, s_kv and d_v from V */
    for (int p : {Q, V})
        if (ports[p]->get_dim().size() != 4)
            return fail(error_code_t::ATTRIBUTE_NOT_SET,
                        std::string("The dim for ") + port_name[p] + " is invalid");
    const std::vector<int64_t> &qd = ports[Q]->get_dim(), &vd = ports[V]->get_dim();
    int64_t b = qd[0], h = qd[1], s_q = qd[2], d = qd[3], s_kv = vd[2], d_v = vd[3];
    const std::vector<int64_t> want[NPORTS] = {
        {b, h, s_q, d},   {b, h, s_kv, d}, {b, h, s_kv, d_v}, {b, h, s_q, d_v}, {b, h, s_q, 1},
        {b, h, s_q, d_v}, {b, h, s_q, d},  {b, h, s_kv, d},   {b, h, s_kv, d_v}};
    for (int p = 0; p < NPORTS; p++) {
        if (!used(p) || !is_output(p)) continue;
        Tensor_attributes &t = *ports[p];
        if (t.get_data_type() == DataType_t::NOT_SET)
            t.set_data_type(p == STATS ? DataType_t::FLOAT : io);
        if (t.get_dim().empty()) t.set_dim(want[p]);
        if (t.get_stride().empty()) { /* an input's, where one has this shape; else packed */
            int like = p == DQ ? Q : p == DK ? K : p == DV ? V : -1;
            if (like >= 0 && ports[like]->get_dim() == t.get_dim())
                t.set_stride(ports[like]->get_stride());
            else if (t.get_dim().size() == 4) {
                const std::vector<int64_t> &e = t.get_dim();
                t.set_stride({e[1] * e[2] * e[3], e[2] * e[3], e[3], 1});
            }
        }
    }
    for (int p = 0; p < NPORTS; p++) {
        if (!used(p)) continue;
        const Tensor_attributes &t = *ports[p];
        std::string name = port_name[p];
        const std::vector<int64_t> &dim = t.get_dim(), &stride = t.get_stride();
        if (t.get_data_type() == DataType_t::NOT_SET)
            return fail(error_code_t::ATTRIBUTE_NOT_SET,
                        name + " has no data type (nor does the graph: set_io_data_type)");
        if (dim.size() != 4)
            return fail(error_code_t::ATTRIBUTE_NOT_SET, "The dim for " + name + " is invalid");
        if (stride.size() != 4)
            return fail(error_code_t::ATTRIBUTE_NOT_SET, "The stride for " + name + " is invalid");
        for (int i = 0; i < 4; i++)
            if (dim[i] < 1 || stride[i] < 1)
                return fail(error_code_t::INVALID_VALUE, name + ": dims " + dims_text(dim) +
                                                             ", strides " + dims_text(stride) +
                                                             ": each must be at least 1");
        if (stride[3] != 1)
            return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                        "The stride for the last dimension corresponding to the embedding size "
                        "per head should be 1 for " +
                            name);
        if (dim != want[p])
            return fail(error_code_t::INVALID_VALUE, name + " is " + dims_text(dim) + ", want " +
                                                         dims_text(want[p]) +
                                                         " from Q's and V's dims");
        DataType_t type = t.get_data_type();
        if (p == STATS && type != DataType_t::FLOAT)
            return fail(error_code_t::GRAPH_NOT_SUPPORTED, "Stats must be an FP32 tensor");
        if (p != STATS && type != DataType_t::BFLOAT16)
            return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                        name + ": the stand-in runs bf16 operands only (cuDNN takes fp16 too, "
                               "never fp32)");
        if (p != STATS) /* the strides keep every row 16-byte aligned */
            for (int i = 0; i < 3; i++)
                if (dim[i] > 1 && stride[i] * 2 % ALIGNMENT)
                    return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                                name + ": stride " + std::to_string(stride[i]) + " of dimension " +
                                    std::to_string(i) + " is " + std::to_string(stride[i] * 2) +
                                    " bytes, not a multiple of the tensor's 16-byte alignment");
    }
    if (d % 8 || d_v % 8 || d > 256 || d_v > 256)
        return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                    "Num hidden_dim should be less than or equal to 256 and hidden_dim should be "
                    "multiple of 8 (d_qk " +
                        std::to_string(d) + ", d_v " + std::to_string(d_v) + ")");
    if (banded && right_bound < 0)
        return fail(error_code_t::INVALID_VALUE,
                    "Right bound needs to be larger than or equal to zero");
    if (banded && bottom_right && s_q > s_kv)
        return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                    "Bottom right causal mask does not support max_s_q > max_s_kv");
    if (backward && s_q == 1 && s_kv == 1)
        return fail(error_code_t::GRAPH_NOT_SUPPORTED, "s_q = s_kv = 1 is not supported.");
    if (backward) { /* cuDNN before 9.26 reads only a packed Stats right: 9.19 is modelled */
        const std::vector<int64_t> &st = ports[STATS]->get_stride();
        if (st[3] != 1 || st[2] != 1 || st[1] != s_q || st[0] != h * s_q)
            return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                        "For cuDNN version below 9.26.0, a non-ragged Stats input of sdpa_backward "
                        "must be packed BHSD (strides " +
                            dims_text(st) + ")");
    }
    return {};
}

/* The non-virtual tensors named in the variant pack: a uid each, none given twice (a tensor
 * used by two operands keeps its one). */
fe::error_t fe::graph::Graph::state::assign_uids() {
    std::set<int64_t> taken;
    std::set<const Tensor_attributes *> seen;
    for (int p = 0; p < NPORTS; p++) {
        if (!used(p) || !ports[p]->has_uid() || !seen.insert(ports[p].get()).second) continue;
        if (!taken.insert(ports[p]->get_uid()).second)
            return fail(error_code_t::INVALID_VALUE,
                        std::string("uid ") + std::to_string(ports[p]->get_uid()) + " of " +
                            port_name[p] + " is another tensor's too");
    }
    int64_t next = taken.empty() ? 1 : *taken.rbegin() + 1;
    for (int p = 0; p < NPORTS; p++)
        if (used(p) && !ports[p]->has_uid()) ports[p]->set_uid(next++);
    return {};
}

namespace cudnn_frontend::graph {

Graph::Graph() : s(new state) {}
Graph::~Graph() = default;

Graph &Graph::set_sm_version(int32_t sm) {
    s->sm = sm;
    return *this;
}
Graph &Graph::set_io_data_type(DataType_t t) {
    s->io = t;
    return *this;
}
Graph &Graph::set_intermediate_data_type(DataType_t t) {
    s->intermediate = t;
    return *this;
}
Graph &Graph::set_compute_data_type(DataType_t t) {
    s->compute = t;
    return *this;
}

std::shared_ptr<Tensor_attributes> Graph::tensor(Tensor_attributes const &t) {
    return std::make_shared<Tensor_attributes>(t);
}

/* A node's output: virtual until marked (set_output), its layout inferred at validate unless
 * set. */
static tensor_ptr output_tensor(const std::string &name) {
    auto t = std::make_shared<Tensor_attributes>();
    t->set_name(name).set_is_virtual(true);
    return t;
}

std::array<std::shared_ptr<Tensor_attributes>, 2> Graph::sdpa(tensor_ptr q, tensor_ptr k,
                                                              tensor_ptr v, SDPA_attributes a) {
    s->nodes++;
    s->backward = false;
    s->scale = a.attn_scale, s->banded = a.bound_set, s->right_bound = a.right_bound;
    s->bottom_right = a.alignment == DiagonalAlignment_t::BOTTOM_RIGHT;
    s->stats_set = a.stats_set, s->generate_stats = a.generate_stats;
    s->ports[Q] = q, s->ports[K] = k, s->ports[V] = v;
    s->ports[O] = output_tensor(a.name + "::O");
    s->ports[STATS] = a.generate_stats ? output_tensor(a.name + "::Stats") : nullptr;
    return {s->ports[O], s->ports[STATS]};
}

std::array<std::shared_ptr<Tensor_attributes>, 3>
Graph::sdpa_backward(tensor_ptr q, tensor_ptr k, tensor_ptr v, tensor_ptr o, tensor_ptr dO,
                     tensor_ptr stats, SDPA_backward_attributes a) {
    s->nodes++;
    s->backward = true;
    s->scale = a.attn_scale, s->banded = a.bound_set, s->right_bound = a.right_bound;
    s->bottom_right = a.alignment == DiagonalAlignment_t::BOTTOM_RIGHT;
    s->ports[Q] = q, s->ports[K] = k, s->ports[V] = v, s->ports[O] = o, s->ports[DO] = dO;
    s->ports[STATS] = stats;
    s->ports[DQ] = output_tensor(a.name + "::dQ");
    s->ports[DK] = output_tensor(a.name + "::dK");
    s->ports[DV] = output_tensor(a.name + "::dV");
    return {s->ports[DQ], s->ports[DK], s->ports[DV]};
}

fe::error_t Graph::validate() {
    TRY(s->in_order(stage::defined, "validate"));
    if (s->nodes != 1)
        return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                    "the stand-in runs graphs of one sdpa or sdpa_backward node; this one has " +
                        std::to_string(s->nodes));
    if (s->intermediate == DataType_t::NOT_SET)
        return fail(
            error_code_t::ATTRIBUTE_NOT_SET,
            "Intermediate tensor data type needs to be set as internal tensors require it.");
    if (s->compute == DataType_t::NOT_SET)
        return fail(error_code_t::ATTRIBUTE_NOT_SET, "compute data type is not set");
    if (s->intermediate != DataType_t::FLOAT || s->compute != DataType_t::FLOAT)
        return fail(error_code_t::GRAPH_NOT_SUPPORTED,
                    "the stand-in computes and keeps intermediates in fp32 only");
    if (!s->backward && !s->stats_set)
        return fail(error_code_t::ATTRIBUTE_NOT_SET, "generate_stats attribute not set");
    TRY(s->validate_ports());
    TRY(check_sm(s->sm));
    TRY(s->assign_uids());
    s->at = stage::validated;
    return {};
}

fe::error_t Graph::build_operation_graph(cudnnHandle_t handle) {
    TRY(s->in_order(stage::validated, "build_operation_graph"));
    cudaStream_t stream;
    if (cudnnGetStream(handle, &stream) != CUDNN_STATUS_SUCCESS)
        return fail(error_code_t::HANDLE_ERROR, "build_operation_graph: not a live cuDNN handle");
    for (int p = 0; p < NPORTS; p++) {
        state::operand &f = s->fixed[p];
        f.used = s->used(p);
        if (!f.used) continue;
        const Tensor_attributes &t = *s->ports[p];
        f.uid = t.get_uid(), f.dim = t.get_dim(), f.stride = t.get_stride();
        f.type = t.get_data_type();
    }
    const std::vector<int64_t> &qd = s->fixed[Q].dim, &vd = s->fixed[V].dim;
    cuemu::sdpa_shape &sh = s->shape;
    sh.b = qd[0], sh.h = qd[1], sh.s_q = qd[2], sh.d_qk = qd[3], sh.s_kv = vd[2], sh.d_v = vd[3];
    sh.scale = s->scale, sh.banded = s->banded, sh.right_bound = s->right_bound;
    sh.shift = s->bottom_right ? sh.s_kv - sh.s_q : 0;
    s->at = stage::lowered;
    return {};
}

/* One engine serves every mode: the stand-in's. */
fe::error_t Graph::create_execution_plans(std::vector<HeurMode_t> const &modes) {
    TRY(s->in_order(stage::lowered, "create_execution_plans"));
    if (modes.empty())
        return fail(error_code_t::HEURISTIC_QUERY_FAILED, "no heuristic mode asked for");
    s->at = stage::planned;
    return {};
}

fe::error_t Graph::check_support() {
    TRY(s->in_order(stage::planned, "check_support"));
    TRY(check_sm(s->sm));
    s->at = stage::supported;
    return {};
}

fe::error_t Graph::build_plans() {
    TRY(s->in_order(stage::supported, "build_plans"));
    s->workspace = s->backward ? cuemu::sdpa_backward_workspace_bytes(s->shape) : 0;
    s->at = stage::built;
    return {};
}

fe::error_t Graph::get_workspace_size(int64_t &bytes) const {
    if (s->at != stage::built)
        return fail(error_code_t::INVALID_VALUE, "get_workspace_size before build_plans");
    bytes = (int64_t)s->workspace;
    return {};
}

fe::error_t Graph::execute(cudnnHandle_t handle, std::unordered_map<int64_t, void *> &pack,
                           void *workspace) const {
    if (s->at != stage::built)
        return fail(error_code_t::GRAPH_EXECUTION_FAILED, "execute before build_plans");
    cudaStream_t stream;
    if (cudnnGetStream(handle, &stream) != CUDNN_STATUS_SUCCESS)
        return fail(error_code_t::HANDLE_ERROR, "execute: not a live cuDNN handle");
    cuemu::sdpa_view view[NPORTS] = {};
    for (int p = 0; p < NPORTS; p++) {
        const state::operand &f = s->fixed[p];
        if (!f.used) continue;
        std::string name = std::string(port_name[p]) + " (uid " + std::to_string(f.uid) + ")";
        auto it = pack.find(f.uid);
        if (it == pack.end() || !it->second)
            return fail(error_code_t::INVALID_VARIANT_PACK, name + " is not in the variant pack");
        if ((uintptr_t)it->second % ALIGNMENT)
            return fail(error_code_t::INVALID_VARIANT_PACK,
                        name +
                            ": device pointer is not aligned to the tensor's 16-byte alignment.");
        int64_t last = 0; /* the farthest element from the start */
        for (int i = 0; i < 4; i++) last += (f.dim[i] - 1) * f.stride[i];
        cuemu::check_device_range(("cuDNN execute: " + name).c_str(), it->second,
                                  (size_t)(last + 1) * type_bytes(f.type));
        view[p].p = it->second;
        for (int i = 0; i < 4; i++) view[p].stride[i] = f.stride[i];
    }
    if (s->workspace) {
        if (!workspace)
            return fail(error_code_t::GRAPH_EXECUTION_FAILED,
                        "execute: no workspace, but the plan needs " +
                            std::to_string(s->workspace) + " bytes");
        cuemu::check_device_range("cuDNN execute: the workspace", workspace, s->workspace);
    }
    /* the pointers and the shape as they are now: the graph may be gone when the stream runs */
    cuemu::sdpa_shape sh = s->shape;
    if (s->backward)
        cuemu::enqueue(stream, [=] {
            cuemu::sdpa_backward(sh, view[Q], view[K], view[V], view[O], view[DO], view[STATS],
                                 view[DQ], view[DK], view[DV], workspace);
        });
    else
        cuemu::enqueue(stream, [=] {
            cuemu::sdpa_forward(sh, view[Q], view[K], view[V], view[O], view[STATS]);
        });
    return {};
}

} // namespace cudnn_frontend::graph
