// Sinkhorn ops: shape and settings checks, dispatch (LM_DISPATCH) to the CPU kernels
// (ops/cpu/sinkhorn.h) or the CUDA kernels (cuda/kernels.h), and autograd records whose
// backward calls the exact recompute-based backward kernels the same way.
#include "ops/sinkhorn.h"

#include "ops/cpu/sinkhorn.h"
#include "ops/op_utils.h"
#include "ops/shape.h"


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
  // The kernels take batched marginals: (K) as (1, K), a view of the same packed data.
  auto batched = [](const Tensor& x, Shape s) { return x.as_strided(s, contiguous_strides(s), x.offset()); };
  p.a = batched(a.contiguous(), {p.B, p.K1});
  p.b = batched(b.contiguous(), {p.B, p.K2});
  p.cost = cost.contiguous();
  return p;
}

// The one validation of the settings (tensor/op_kinds.h), as this op's error.
void check_options(const char* op, const SinkhornOptions& o) {
  if (const char* why = sinkhorn_options_problem(o))
    throw std::invalid_argument(std::string(op) + ": " + why + " (epsilon " + std::to_string(o.epsilon) + ", iterations " +
                                std::to_string(o.iterations) + ")");
}

Tensor run(const char* op, const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& c, bool plan_out) {
  check_options(op, c);
  Problem p = prepare(op, a, b, cost);
  Shape out_shape = plan_out ? Shape{p.B, p.K1, p.K2} : Shape{p.B, p.K2};
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  {
    Tensor plan = plan_out ? out : Tensor(), cols = plan_out ? Tensor() : out;
    LM_DISPATCH_COUNTED("sinkhorn_forward",
                        work::sinkhorn_forward(p.B, p.K1, p.K2, p.shared ? 1 : p.B, c.iterations, c.log_domain, plan_out,
                                               dtype_size(a.dtype())),
                        a.device(), sinkhorn_tensor_forward, p.a, p.b, p.cost, c, plan, cols);
  }
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
             dc = gc ? Tensor::empty(sc, dt, gg.device()) : Tensor();
      const Tensor gplan = plan_out ? gg : Tensor(), gcols = plan_out ? Tensor() : gg;
      LM_DISPATCH_COUNTED("sinkhorn_backward",
                          work::sinkhorn_backward(saved.B, saved.K1, saved.K2, saved.shared ? 1 : saved.B, c.iterations,
                                                  c.log_domain, plan_out, gc, dtype_size(dt)),
                          gg.device(), sinkhorn_tensor_backward, saved.a, saved.b, saved.cost, c, gplan, gcols, da, db,
                          dc);
      return {ga ? da : Tensor(), gb ? db : Tensor(), gc ? dc : Tensor()};
    });
  }
  return out;
}

}  // namespace

Tensor sinkhorn_plan(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& c) {
  return run("sinkhorn_plan", a, b, cost, c, true);
}

Tensor sinkhorn_column_sums(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& c) {
  return run("sinkhorn_column_sums", a, b, cost, c, false);
}

}  // namespace lm
