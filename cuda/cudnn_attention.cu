// cuDNN fused attention through the backend graph API (cuda/cudnn_attention.h).
//
// The backend API is a set of opaque descriptors filled attribute by attribute and then
// "finalized" (validated and frozen):
//   tensor descriptors (uid, dtype, dims, strides, alignment; the scale is a by-value scalar)
//   -> one SDPA operation descriptor naming its tensors
//   -> an operation graph (the operation + a cuDNN handle)
//   -> heuristics: a ranked list of engine configurations
//   -> an execution plan: the first configuration that finalizes, with its workspace size
//   -> per call, a variant pack (uid -> device pointer, the workspace) executed on the plan.
// Everything up to the operation descriptor needs no GPU (cudnn_sdpa_check_operation, tested
// on the CPU); from the graph on a handle, hence a device, is needed.
#include "cuda/cudnn_attention.h"

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/library.h"

#if __has_include(<cudnn_graph.h>)
#include <cudnn_graph.h>
#define LM_HAVE_CUDNN 1
#endif

namespace lm::cuda {

std::string cudnn_sdpa_unsupported(const SdpaShape& s, DType dtype, bool has_mask) {
  if (dtype != DType::F32) return std::string("dtype ") + dtype_name(dtype) + " (the cuDNN path takes float32 inputs)";
  if (has_mask) return "a mask (the cuDNN path takes none)";
  for (int64_t x : {s.B, s.H, s.Lq, s.Lk, s.d, s.dv})
    if (x < 1) return "an empty dimension";
  if (s.d % 8 != 0 || s.dv % 8 != 0 || s.d > 128 || s.dv > 128)
    return "head dims d = " + std::to_string(s.d) + ", dv = " + std::to_string(s.dv) +
           " (the cuDNN path takes multiples of 8 up to 128)";
  return "";
}

SdpaDims sdpa_dims(const SdpaShape& s) {
  return SdpaDims{{s.B, s.H, s.Lq, s.d}, {s.B, s.H, s.Lk, s.d}, {s.B, s.H, s.Lk, s.dv}, {s.B, s.H, s.Lq, s.dv}};
}

#ifndef LM_HAVE_CUDNN

namespace {
[[noreturn]] void no_headers() { throw CudnnUnavailable("built without cuDNN headers (cudnn_graph.h)"); }
}  // namespace
int64_t cudnn_version() { no_headers(); }
std::string cudnn_sdpa_check_operation(const SdpaDims&, bool, bool) { no_headers(); }
void cudnn_sdpa_prepare(const Device&, const SdpaShape&, bool, bool) { no_headers(); }
void cudnn_sdpa_forward(const Tensor&, const Tensor&, const Tensor&, double, Tensor&, Tensor&) { no_headers(); }
void cudnn_sdpa_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         double, Tensor&, Tensor&, Tensor&) {
  no_headers();
}

#else

namespace {

// ---- the library -------------------------------------------------------------------------------
struct CudnnApi {
  decltype(&cudnnGetVersion) get_version = nullptr;
  decltype(&cudnnGetErrorString) error_string = nullptr;
  decltype(&cudnnCreate) create = nullptr;
  decltype(&cudnnSetStream) set_stream = nullptr;
  decltype(&cudnnBackendCreateDescriptor) desc_create = nullptr;
  decltype(&cudnnBackendDestroyDescriptor) desc_destroy = nullptr;
  decltype(&cudnnBackendSetAttribute) set_attr = nullptr;
  decltype(&cudnnBackendGetAttribute) get_attr = nullptr;
  decltype(&cudnnBackendFinalize) finalize = nullptr;
  decltype(&cudnnBackendExecute) execute = nullptr;
};

const CudnnApi& api() {
  const std::string soname = "libcudnn.so." + std::to_string(CUDNN_MAJOR);
  const char* env = std::getenv("LIBRAMIL_CUDNN_LIBRARY");
  std::vector<std::string> candidates{env ? std::string(env) : std::string(), soname};
#ifdef LIBRAMIL_CUDNN_LIBDIR
  candidates.push_back(std::string(LIBRAMIL_CUDNN_LIBDIR) + "/" + soname);
#endif
  try {
    const char* hint = "set LIBRAMIL_CUDNN_LIBRARY to its path";
    return load_api<CudnnApi>(candidates, hint, [](const CudaLibrary& lib, CudnnApi& a) {
      LM_RESOLVE(lib, a.get_version, "cudnnGetVersion");
      LM_RESOLVE(lib, a.error_string, "cudnnGetErrorString");
      LM_RESOLVE(lib, a.create, "cudnnCreate");
      LM_RESOLVE(lib, a.set_stream, "cudnnSetStream");
      LM_RESOLVE(lib, a.desc_create, "cudnnBackendCreateDescriptor");
      LM_RESOLVE(lib, a.desc_destroy, "cudnnBackendDestroyDescriptor");
      LM_RESOLVE(lib, a.set_attr, "cudnnBackendSetAttribute");
      LM_RESOLVE(lib, a.get_attr, "cudnnBackendGetAttribute");
      LM_RESOLVE(lib, a.finalize, "cudnnBackendFinalize");
      LM_RESOLVE(lib, a.execute, "cudnnBackendExecute");
    });
  } catch (const std::runtime_error& e) {
    throw CudnnUnavailable(e.what());
  }
}

std::string status_str(cudnnStatus_t st) {
  const char* s = api().error_string(st);
  return s ? s : "status " + std::to_string((int)st);
}

// A failed step: `unavailable` ones (cuDNN refuses the problem) may fall back, others may not.
[[noreturn]] void fail(const std::string& what, cudnnStatus_t st, bool unavailable) {
  const std::string msg = "cuDNN attention: " + what + ": " + status_str(st);
  if (unavailable) throw CudnnUnavailable(msg);
  throw std::runtime_error(msg);
}
void ok(cudnnStatus_t st, const std::string& what, bool unavailable = false) {
  if (st != CUDNN_STATUS_SUCCESS) fail(what, st, unavailable);
}

// ---- descriptors ------------------------------------------------------------------------------
// An owned backend descriptor (move-only).
struct Desc {
  cudnnBackendDescriptor_t d = nullptr;
  Desc() = default;
  explicit Desc(cudnnBackendDescriptorType_t type, const char* what) {
    ok(api().desc_create(type, &d), std::string("create ") + what);
  }
  ~Desc() {
    if (d) api().desc_destroy(d);
  }
  Desc(Desc&& o) noexcept : d(o.d) { o.d = nullptr; }
  Desc& operator=(Desc&& o) noexcept {
    std::swap(d, o.d);
    return *this;
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
};

void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t n,
         const void* value, const char* what) {
  ok(api().set_attr(d, name, type, n, value), std::string("set ") + what);
}
void set_desc(const Desc& d, cudnnBackendAttributeName_t name, const Desc& value, const char* what) {
  set(d.d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value.d, what);
}

// The tensors' unique ids, shared by the descriptors and the variant packs.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kScale, kDO, kDQ, kDK, kDV };

// A finalized tensor descriptor: packed strides (or a by-value scalar, dims 1,1,1,1).
Desc tensor(int64_t uid, cudnnDataType_t dtype, const std::array<int64_t, 4>& dims, bool by_value, const char* what) {
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR, what);
  const std::array<int64_t, 4> strides{dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
  const int64_t align = by_value ? 4 : 16;
  set(t.d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, what);
  set(t.d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dtype, what);
  set(t.d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, what);
  set(t.d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data(), what);
  set(t.d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data(), what);
  if (by_value) {
    const bool yes = true;
    set(t.d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes, what);
  }
  ok(api().finalize(t.d), std::string("finalize ") + what, true);
  return t;
}

// ---- the SDPA operations' enum values ------------------------------------------------------------
// The library is dlopen'ed at run time, so the headers we build against may be older than the
// libcudnn that runs (a machine with cuDNN 9.14's headers and a 9.19 library, say). The SDPA
// operations' descriptor-type and attribute values are cuDNN 9's ABI: fixed numbers, the same in
// every 9.x header that has them. They are spelled here once, so the code builds against any
// cuDNN 9 header, and checked against the names wherever the header has them (9.17+). Whether
// the running library knows them is asked at run time (require_version).
namespace sdpa {
template <typename E>
constexpr E value(int v) { return static_cast<E>(v); }
using Attr = cudnnBackendAttributeName_t;
using Type = cudnnBackendDescriptorType_t;
constexpr Type kFwdDescriptor = value<Type>(41), kBwdDescriptor = value<Type>(43);
constexpr Attr kFwdQ = value<Attr>(2800), kFwdK = value<Attr>(2801), kFwdV = value<Attr>(2802),
               kFwdO = value<Attr>(2803), kFwdStats = value<Attr>(2804), kFwdScale = value<Attr>(2805);
constexpr Attr kBwdQ = value<Attr>(2851), kBwdK = value<Attr>(2852), kBwdV = value<Attr>(2853),
               kBwdO = value<Attr>(2854), kBwdStats = value<Attr>(2855), kBwdScale = value<Attr>(2856),
               kBwdDQ = value<Attr>(2859), kBwdDK = value<Attr>(2860), kBwdDV = value<Attr>(2861),
               kBwdDO = value<Attr>(2862);
#if CUDNN_VERSION >= 91700
static_assert(kFwdDescriptor == CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR &&
              kBwdDescriptor == CUDNN_BACKEND_OPERATION_SDPA_BWD_DESCRIPTOR);
static_assert(kFwdQ == CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC && kFwdK == CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC &&
              kFwdV == CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC && kFwdO == CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC &&
              kFwdStats == CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC &&
              kFwdScale == CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC);
static_assert(kBwdQ == CUDNN_ATTR_OPERATION_SDPA_BWD_QDESC && kBwdK == CUDNN_ATTR_OPERATION_SDPA_BWD_KDESC &&
              kBwdV == CUDNN_ATTR_OPERATION_SDPA_BWD_VDESC && kBwdO == CUDNN_ATTR_OPERATION_SDPA_BWD_ODESC &&
              kBwdStats == CUDNN_ATTR_OPERATION_SDPA_BWD_STATSDESC &&
              kBwdScale == CUDNN_ATTR_OPERATION_SDPA_BWD_SCALEDESC &&
              kBwdDQ == CUDNN_ATTR_OPERATION_SDPA_BWD_DQDESC && kBwdDK == CUDNN_ATTR_OPERATION_SDPA_BWD_DKDESC &&
              kBwdDV == CUDNN_ATTR_OPERATION_SDPA_BWD_DVDESC && kBwdDO == CUDNN_ATTR_OPERATION_SDPA_BWD_DODDESC);
#endif
}  // namespace sdpa

// The finalized SDPA operation and the tensors it names (kept alive with it).
struct Operation {
  std::vector<Desc> tensors;
  Desc op;
};

Operation build_operation(const SdpaDims& g, bool backward, bool stats) {
  Operation o;
  const cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const std::array<int64_t, 4> stats_dims{g.q[0], g.q[1], g.q[2], 1}, one{1, 1, 1, 1};
  auto add = [&](int64_t uid, cudnnDataType_t t, const std::array<int64_t, 4>& dims, bool bv,
                 const char* what) -> Desc& {
    o.tensors.push_back(tensor(uid, t, dims, bv, what));
    return o.tensors.back();
  };
  if (!backward) {
    o.op = Desc(sdpa::kFwdDescriptor, "SDPA forward operation");
    set_desc(o.op, sdpa::kFwdQ, add(kQ, bf16, g.q, false, "q tensor"), "forward q");
    set_desc(o.op, sdpa::kFwdK, add(kK, bf16, g.k, false, "k tensor"), "forward k");
    set_desc(o.op, sdpa::kFwdV, add(kV, bf16, g.v, false, "v tensor"), "forward v");
    set_desc(o.op, sdpa::kFwdO, add(kO, bf16, g.o, false, "out tensor"), "forward out");
    set_desc(o.op, sdpa::kFwdScale, add(kScale, f32, one, true, "scale scalar"),
             "forward scale");
    if (stats)
      set_desc(o.op, sdpa::kFwdStats, add(kStats, f32, stats_dims, false, "stats tensor"),
               "forward stats");
    ok(api().finalize(o.op.d), "finalize the SDPA forward operation", true);
  } else {
    o.op = Desc(sdpa::kBwdDescriptor, "SDPA backward operation");
    set_desc(o.op, sdpa::kBwdQ, add(kQ, bf16, g.q, false, "q tensor"), "backward q");
    set_desc(o.op, sdpa::kBwdK, add(kK, bf16, g.k, false, "k tensor"), "backward k");
    set_desc(o.op, sdpa::kBwdV, add(kV, bf16, g.v, false, "v tensor"), "backward v");
    set_desc(o.op, sdpa::kBwdO, add(kO, bf16, g.o, false, "out tensor"), "backward out");
    set_desc(o.op, sdpa::kBwdDO, add(kDO, bf16, g.o, false, "dout tensor"),
             "backward dout");
    set_desc(o.op, sdpa::kBwdStats, add(kStats, f32, stats_dims, false, "stats tensor"),
             "backward stats");
    set_desc(o.op, sdpa::kBwdScale, add(kScale, f32, one, true, "scale scalar"),
             "backward scale");
    set_desc(o.op, sdpa::kBwdDQ, add(kDQ, bf16, g.q, false, "dq tensor"), "backward dq");
    set_desc(o.op, sdpa::kBwdDK, add(kDK, bf16, g.k, false, "dk tensor"), "backward dk");
    set_desc(o.op, sdpa::kBwdDV, add(kDV, bf16, g.v, false, "dv tensor"), "backward dv");
    ok(api().finalize(o.op.d), "finalize the SDPA backward operation", true);
  }
  return o;
}

void require_version(int64_t need, const char* what) {
  const int64_t have = cudnn_version();
  if (have < need)
    throw CudnnUnavailable("cuDNN " + std::to_string(have) + " has no SDPA " + what + " operation (needs " +
                           std::to_string(need) + "+)");
}

// ---- handles and plans ------------------------------------------------------------------------
constexpr int kMaxDevices = 64;

// One handle per device, created on first use (on the current device) and kept.
cudnnHandle_t handle_for(int device) {
  static std::mutex mu;
  static cudnnHandle_t handles[kMaxDevices] = {};
  if (device < 0 || device >= kMaxDevices) throw std::runtime_error("cuDNN attention: bad device index");
  std::lock_guard<std::mutex> lock(mu);
  if (!handles[device]) ok(api().create(&handles[device]), "cudnnCreate", true);
  return handles[device];
}

struct Plan {
  Operation operation;
  Desc graph, heuristics;
  std::vector<Desc> configs;
  Desc plan;
  int64_t workspace = 0;
};

std::shared_ptr<Plan> build_plan(cudnnHandle_t h, const SdpaDims& g, bool backward, bool stats) {
  auto p = std::make_shared<Plan>();
  p->operation = build_operation(g, backward, stats);
  p->graph = Desc(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
  set(p->graph.d, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h, "graph handle");
  set(p->graph.d, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->operation.op.d, "graph ops");
  ok(api().finalize(p->graph.d), "finalize the operation graph", true);

  p->heuristics = Desc(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  set(p->heuristics.d, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->graph.d,
      "heuristics graph");
  set(p->heuristics.d, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics mode");
  ok(api().finalize(p->heuristics.d), "finalize the heuristics", true);
  int64_t count = 0;
  ok(api().get_attr(p->heuristics.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
     "count the engine configurations", true);
  if (count < 1) throw CudnnUnavailable("cuDNN attention: the heuristics offer no engine for this shape");
  std::vector<cudnnBackendDescriptor_t> raw((size_t)count);
  for (int64_t i = 0; i < count; ++i) {
    p->configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine configuration");
    raw[(size_t)i] = p->configs.back().d;
  }
  int64_t got = 0;
  ok(api().get_attr(p->heuristics.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                    raw.data()),
     "get the engine configurations", true);
  cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
  for (int64_t i = 0; i < got; ++i) {
    Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
    set(plan.d, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h, "plan handle");
    set(plan.d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw[(size_t)i],
        "plan engine configuration");
    last = api().finalize(plan.d);
    if (last == CUDNN_STATUS_SUCCESS) {
      p->plan = std::move(plan);
      break;
    }
  }
  if (!p->plan.d) fail("no engine configuration finalizes into a plan", last, true);
  int64_t n = 0;
  ok(api().get_attr(p->plan.d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &p->workspace),
     "get the workspace size");
  return p;
}

// Plans by (device, shape, direction, stats); a shape cuDNN refused is remembered with its
// reason, so that the fallback does not rebuild the refusal at every call.
struct PlanCache {
  std::mutex mu;
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int>, std::shared_ptr<Plan>> plans;
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int>, std::string> refused;
};
PlanCache& cache() {
  static PlanCache c;
  return c;
}

std::shared_ptr<Plan> plan_for(int device, const SdpaShape& s, bool backward, bool stats) {
  const auto key = std::make_tuple(device, s.B, s.H, s.Lq, s.Lk, s.d, s.dv, (backward ? 2 : 0) + (stats ? 1 : 0));
  PlanCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (auto it = c.plans.find(key); it != c.plans.end()) return it->second;
  if (auto it = c.refused.find(key); it != c.refused.end()) throw CudnnUnavailable(it->second);
  try {
    auto p = build_plan(handle_for(device), sdpa_dims(s), backward, stats);
    c.plans[key] = p;
    return p;
  } catch (const CudnnUnavailable& e) {
    c.refused[key] = e.what();
    throw;
  }
}

void check_tensor(const char* fn, const char* what, const Tensor& t, DType dt, const std::array<int64_t, 4>& dims,
                  const Tensor& q) {
  const Shape want(dims.begin(), dims.end());
  if (!t.defined() || t.dtype() != dt || t.shape() != want || !t.is_contiguous() || t.device() != q.device())
    throw std::invalid_argument(std::string("cuda::") + fn + ": " + what + " must be a packed " + dtype_name(dt) +
                                " tensor of shape " + shape_str(want) + " on " + q.device().str() + ", got " +
                                (t.defined() ? t.str() : std::string("undefined")));
}

SdpaShape shape_of(const char* fn, const Tensor& q, const Tensor& k, const Tensor& v) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || !q.device().is_cuda())
    throw std::invalid_argument(std::string("cuda::") + fn + ": q, k, v must be 4-d CUDA tensors");
  const SdpaShape s{q.shape()[0], q.shape()[1], q.shape()[2], k.shape()[2], q.shape()[3], v.shape()[3]};
  const SdpaDims g = sdpa_dims(s);
  check_tensor(fn, "q", q, DType::BF16, g.q, q);
  check_tensor(fn, "k", k, DType::BF16, g.k, q);
  check_tensor(fn, "v", v, DType::BF16, g.v, q);
  return s;
}

// Runs a plan on the current stream with the given uid -> pointer bindings.
void execute(const Tensor& q, const Plan& p, std::vector<int64_t> uids, std::vector<void*> ptrs, const char* what) {
  KernelScope scope(q);
  const int device = q.device().index;
  cudnnHandle_t h = handle_for(device);
  Tensor ws;
  void* wsp = nullptr;
  if (p.workspace > 0) {
    ws = Tensor::empty({(p.workspace + 3) / 4}, DType::F32, q.device());
    wsp = ws.raw_data();
  }
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
  set(pack.d, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, (int64_t)uids.size(), uids.data(), "pack uids");
  set(pack.d, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, (int64_t)ptrs.size(), ptrs.data(),
      "pack pointers");
  set(pack.d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &wsp, "pack workspace");
  ok(api().finalize(pack.d), "finalize the variant pack");
  static std::mutex exec_mu;  // one handle per device: its stream binding and execution go together
  std::lock_guard<std::mutex> lock(exec_mu);
  ok(api().set_stream(h, scope.stream), "cudnnSetStream");
  ok(api().execute(h, p.plan.d, pack.d), what);
}

}  // namespace

int64_t cudnn_version() { return (int64_t)api().get_version(); }

std::string cudnn_sdpa_check_operation(const SdpaDims& dims, bool backward, bool stats) {
  try {
    build_operation(dims, backward, stats || backward);
    return "";
  } catch (const CudnnUnavailable& e) {
    return e.what();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
}

void cudnn_sdpa_prepare(const Device& device, const SdpaShape& s, bool backward, bool stats) {
  if (!device.is_cuda()) throw std::invalid_argument("cuda::cudnn_sdpa_prepare: not a CUDA device");
  require_version(backward ? kCudnnSdpaBackwardVersion : kCudnnSdpaForwardVersion, backward ? "backward" : "forward");
  DeviceGuard guard((ensure_registered(), device.index));
  plan_for(device.index, s, backward, stats || backward);
}

void cudnn_sdpa_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out, Tensor& stats) {
  const char* fn = "cudnn_sdpa_forward";
  const SdpaShape s = shape_of(fn, q, k, v);
  const SdpaDims g = sdpa_dims(s);
  check_tensor(fn, "out", out, DType::BF16, g.o, q);
  if (stats.defined()) check_tensor(fn, "stats", stats, DType::F32, {s.B, s.H, s.Lq, 1}, q);
  require_version(kCudnnSdpaForwardVersion, "forward");
  DeviceGuard guard((ensure_registered(), q.device().index));
  auto p = plan_for(q.device().index, s, false, stats.defined());
  float sc = (float)scale;
  std::vector<int64_t> uids{kQ, kK, kV, kO, kScale};
  std::vector<void*> ptrs{q.raw_data(), k.raw_data(), v.raw_data(), out.raw_data(), &sc};
  if (stats.defined()) {
    uids.push_back(kStats);
    ptrs.push_back(stats.raw_data());
  }
  execute(q, *p, uids, ptrs, "execute the SDPA forward");
}

void cudnn_sdpa_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& dout,
                         const Tensor& stats, double scale, Tensor& dq, Tensor& dk, Tensor& dv) {
  const char* fn = "cudnn_sdpa_backward";
  const SdpaShape s = shape_of(fn, q, k, v);
  const SdpaDims g = sdpa_dims(s);
  check_tensor(fn, "out", out, DType::BF16, g.o, q);
  check_tensor(fn, "dout", dout, DType::BF16, g.o, q);
  check_tensor(fn, "stats", stats, DType::F32, {s.B, s.H, s.Lq, 1}, q);
  check_tensor(fn, "dq", dq, DType::BF16, g.q, q);
  check_tensor(fn, "dk", dk, DType::BF16, g.k, q);
  check_tensor(fn, "dv", dv, DType::BF16, g.v, q);
  require_version(kCudnnSdpaBackwardVersion, "backward");
  DeviceGuard guard((ensure_registered(), q.device().index));
  auto p = plan_for(q.device().index, s, true, true);
  float sc = (float)scale;
  execute(q, *p, {kQ, kK, kV, kO, kDO, kStats, kScale, kDQ, kDK, kDV},
          {q.raw_data(), k.raw_data(), v.raw_data(), out.raw_data(), dout.raw_data(), stats.raw_data(), &sc,
           dq.raw_data(), dk.raw_data(), dv.raw_data()},
          "execute the SDPA backward");
}

#endif  // LM_HAVE_CUDNN

}  // namespace lm::cuda
