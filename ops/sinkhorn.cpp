// Sinkhorn ops: shape checks, dispatch to the CPU kernels, and autograd records whose
// backward calls the exact recompute-based backward kernels.
#include "ops/sinkhorn.h"

#include "ops/cpu/sinkhorn.h"
#include "ops/op_utils.h"
#include "ops/shape.h"

#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/sinkhorn.cuh"
#endif

namespace lm {

using namespace ops_detail;

namespace {

struct Problem {
  Tensor a, b, cost;  // packed, batched: a (B, K1), b (B, K2)
  int64_t B = 1, K1 = 0, K2 = 0;
  bool shared = true, batched = false;
};

Problem prepare(const char* op, const Tensor& a, const Tensor& b, const Tensor& cost) {
  check_float(op, a);
  check_float(op, b);
  check_float(op, cost);
  check_same(op, a, b);
  check_same(op, a, cost);
#ifndef LIBRAMIL_WITH_CUDA
  if (!a.device().is_cpu()) no_cuda(op);
#endif
  Problem p;
  if (a.dim() != b.dim() || a.dim() < 1 || a.dim() > 2)
    fail(op, "marginals must both be (K) or both (B, K), got " + a.str() + " and " + b.str());
  p.batched = a.dim() == 2;
  p.B = p.batched ? a.shape()[0] : 1;
  if (p.batched && b.shape()[0] != p.B) fail(op, "batch sizes differ: " + a.str() + " and " + b.str());
  p.K1 = a.shape().back();
  p.K2 = b.shape().back();
  if (p.K1 == 0 || p.K2 == 0) fail(op, "empty marginal: " + a.str() + ", " + b.str());
  if (cost.dim() == 2) {
    if (cost.shape() != Shape{p.K1, p.K2}) fail(op, "cost " + cost.str() + " does not match marginals (" + std::to_string(p.K1) + ", " + std::to_string(p.K2) + ")");
  } else if (cost.dim() == 3) {
    if (cost.shape() != Shape{p.B, p.K1, p.K2}) fail(op, "batched cost " + cost.str() + " does not match marginals " + a.str() + ", " + b.str());
    p.shared = false;
  } else {
    fail(op, "cost must be (K1, K2) or (B, K1, K2), got " + cost.str());
  }
  p.a = a.contiguous();
  p.b = b.contiguous();
  p.cost = cost.contiguous();
  return p;
}

cpu::SinkhornOptions options(const SinkhornConfig& c) {
  if (!(c.epsilon > 0)) throw std::invalid_argument("sinkhorn: epsilon must be positive, got " + std::to_string(c.epsilon));
  if (c.iterations < 1) throw std::invalid_argument("sinkhorn: iterations must be >= 1");
  cpu::SinkhornOptions o;
  o.epsilon = c.epsilon;
  o.iterations = c.iterations;
  o.tol = c.tolerance;
  return o;
}

template <class T>
void forward_typed(const Problem& p, const SinkhornConfig& c, T* plan, T* cols) {
  profiler::Scope prof("sinkhorn_forward");
  auto o = options(c);
  if (c.log_domain)
    cpu::sinkhorn_log_forward<T>(p.a.data<T>(), p.b.data<T>(), p.cost.data<T>(), p.B, p.K1, p.K2, p.shared, o, nullptr,
                                 nullptr, plan, cols, nullptr, nullptr);
  else
    cpu::sinkhorn_forward<T>(p.a.data<T>(), p.b.data<T>(), p.cost.data<T>(), p.B, p.K1, p.K2, p.shared, o, nullptr,
                             nullptr, plan, cols, nullptr, nullptr);
}

template <class T>
void backward_typed(const Problem& p, const SinkhornConfig& c, const T* gplan, const T* gcols, T* ga, T* gb, T* gc) {
  profiler::Scope prof("sinkhorn_backward");
  auto o = options(c);
  if (c.log_domain)
    cpu::sinkhorn_log_backward<T>(p.a.data<T>(), p.b.data<T>(), p.cost.data<T>(), p.B, p.K1, p.K2, p.shared, o, gplan,
                                  gcols, nullptr, nullptr, nullptr, ga, gb, gc);
  else
    cpu::sinkhorn_backward<T>(p.a.data<T>(), p.b.data<T>(), p.cost.data<T>(), p.B, p.K1, p.K2, p.shared, o, gplan, gcols,
                              nullptr, nullptr, nullptr, ga, gb, gc);
}

#ifdef LIBRAMIL_WITH_CUDA
// CUDA tensors: the plain-domain and log-domain kernels of cuda/sinkhorn.cuh run on the device,
// on its current stream.

// Makes `device` current for the scope.
struct ScopedCudaDevice {
  int prev = -1;
  explicit ScopedCudaDevice(int device) {
    if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
    if (prev != device) cudaSetDevice(device);
  }
  ~ScopedCudaDevice() {
    if (prev >= 0) cudaSetDevice(prev);
  }
};

void check_cuda(cudaError_t e, const char* op, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(op) + ": CUDA Sinkhorn " + what + " failed: " + cudaGetErrorString(e));
}

cuda::SinkhornOptions cuda_options(const SinkhornConfig& c) {
  const cpu::SinkhornOptions o = options(c);
  cuda::SinkhornOptions r;
  r.epsilon = o.epsilon;
  r.iterations = o.iterations;
  r.tol = o.tol;
  r.log_domain_stabiliser = o.log_domain_stabiliser;
  return r;
}

// out: (B, K1, K2) plan or (B, K2) column sums, packed, on p's CUDA device.
template <class T>
void forward_cuda(const char* op, const Problem& p, const SinkhornConfig& c, bool plan_out, Tensor& out) {
  cuda::ensure_registered();
  const int dev = out.device().index;
  ScopedCudaDevice guard(dev);
  cudaStream_t stream = static_cast<cudaStream_t>(cuda::current_stream_handle(dev));
  if (c.log_domain) {
    check_cuda(cuda::sinkhorn_log_forward<T>(p.a.data<T>(), p.b.data<T>(), p.cost.data<T>(), p.B, p.K1, p.K2, p.shared,
                                             cuda_options(c), nullptr, nullptr, plan_out ? out.data<T>() : nullptr,
                                             plan_out ? nullptr : out.data<T>(), nullptr, nullptr, stream),
               op, "log-domain forward");
    return;
  }
  check_cuda(cuda::sinkhorn_forward<T>(p.a.data<T>(), p.b.data<T>(), p.cost.data<T>(), p.B, p.K1, p.K2, p.shared,
                                       cuda_options(c), nullptr, nullptr, plan_out ? out.data<T>() : nullptr,
                                       plan_out ? nullptr : out.data<T>(), nullptr, nullptr, stream),
             op, "forward");
}

// gg: packed gradient of the output; da, db, dc: packed, on the device (dc undefined: skipped).
template <class T>
void backward_cuda(const char* op, const Problem& p, const SinkhornConfig& c, bool plan_out, const Tensor& gg, Tensor& da,
                   Tensor& db, Tensor& dc) {
  cuda::ensure_registered();
  const int dev = gg.device().index;
  ScopedCudaDevice guard(dev);
  cudaStream_t stream = static_cast<cudaStream_t>(cuda::current_stream_handle(dev));
  const cuda::SinkhornOptions o = cuda_options(c);
  const size_t ws = cuda::sinkhorn_backward_workspace_bytes(p.B, p.K1, p.K2, o.iterations, p.shared, sizeof(T));
  Tensor work = Tensor::empty({(int64_t)((ws + 7) / 8)}, DType::I64, gg.device());  // workspace
  if (c.log_domain) {
    check_cuda(cuda::sinkhorn_log_backward<T>(p.a.data<T>(), p.b.data<T>(), p.cost.data<T>(), p.B, p.K1, p.K2,
                                              p.shared, o, plan_out ? gg.data<T>() : nullptr,
                                              plan_out ? nullptr : gg.data<T>(), nullptr, nullptr, nullptr,
                                              da.data<T>(), db.data<T>(), dc.defined() ? dc.data<T>() : nullptr,
                                              work.raw_data(), work.nbytes(), stream),
               op, "log-domain backward");
    return;
  }
  check_cuda(cuda::sinkhorn_backward<T>(p.a.data<T>(), p.b.data<T>(), p.cost.data<T>(), p.B, p.K1, p.K2, p.shared, o,
                                        plan_out ? gg.data<T>() : nullptr, plan_out ? nullptr : gg.data<T>(), nullptr,
                                        nullptr, nullptr, da.data<T>(), db.data<T>(),
                                        dc.defined() ? dc.data<T>() : nullptr, work.raw_data(), work.nbytes(), stream),
             op, "backward");
}
#endif

Tensor run(const char* op, const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornConfig& c, bool plan_out) {
  Problem p = prepare(op, a, b, cost);
  Shape out_shape = plan_out ? Shape{p.B, p.K1, p.K2} : Shape{p.B, p.K2};
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
#ifdef LIBRAMIL_WITH_CUDA
  if (a.device().is_cuda()) {
    if (a.dtype() == DType::F32) forward_cuda<float>(op, p, c, plan_out, out);
    else forward_cuda<double>(op, p, c, plan_out, out);
  } else
#endif
  if (a.dtype() == DType::F32)
    forward_typed<float>(p, c, plan_out ? out.data<float>() : nullptr, plan_out ? nullptr : out.data<float>());
  else
    forward_typed<double>(p, c, plan_out ? out.data<double>() : nullptr, plan_out ? nullptr : out.data<double>());
  if (!p.batched) {
    Shape s = plan_out ? Shape{p.K1, p.K2} : Shape{p.K2};
    out = out.as_strided(s, contiguous_strides(s), 0);
  }
  if (autograd::needs_grad({a, b, cost})) {
    bool ga = a.requires_grad(), gb = b.requires_grad(), gc = cost.requires_grad();
    Problem saved = p;
    saved.a = p.a.detach();
    saved.b = p.b.detach();
    saved.cost = p.cost.detach();
    Shape sa = a.shape(), sb = b.shape(), sc = cost.shape();
    autograd::record(op, {a, b, cost}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gg = g.contiguous();
      DType dt = gg.dtype();
      Tensor da = Tensor::empty(sa, dt, gg.device()), db = Tensor::empty(sb, dt, gg.device()),
             dc = Tensor::empty(sc, dt, gg.device());
#ifdef LIBRAMIL_WITH_CUDA
      if (gg.device().is_cuda()) {
        Tensor dcw = gc ? dc : Tensor();
        if (dt == DType::F32) backward_cuda<float>(op, saved, c, plan_out, gg, da, db, dcw);
        else backward_cuda<double>(op, saved, c, plan_out, gg, da, db, dcw);
        return {ga ? da : Tensor(), gb ? db : Tensor(), gc ? dc : Tensor()};
      }
#endif
      if (dt == DType::F32)
        backward_typed<float>(saved, c, plan_out ? gg.data<float>() : nullptr, plan_out ? nullptr : gg.data<float>(),
                              da.data<float>(), db.data<float>(), gc ? dc.data<float>() : nullptr);
      else
        backward_typed<double>(saved, c, plan_out ? gg.data<double>() : nullptr, plan_out ? nullptr : gg.data<double>(),
                               da.data<double>(), db.data<double>(), gc ? dc.data<double>() : nullptr);
      return {ga ? da : Tensor(), gb ? db : Tensor(), gc ? dc : Tensor()};
    });
  }
  return out;
}

}  // namespace

Tensor sinkhorn_plan(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornConfig& c) {
  return run("sinkhorn_plan", a, b, cost, c, true);
}

Tensor sinkhorn_column_sums(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornConfig& c) {
  return run("sinkhorn_column_sums", a, b, cost, c, false);
}

}  // namespace lm
