// l2_normalize / l1_normalize / cosine_similarity_matrix. On the CPU, l2_normalize over the
// last dim runs row kernels with a hand-written backward (ops/cpu/normalize.cpp); every other
// case is composed from existing ops so that autograd comes from the composition. The clamp max(norm, eps) follows
// torch.nn.functional.normalize: below eps the denominator is the constant eps and carries no
// gradient. For p = 2 the clamp is applied to the sum of squares (against eps^2) before the
// square root: the same function and gradient, without sqrt's infinite derivative at 0
// (0 * inf = NaN) for an all-zero slice.
#include "ops/normalize.h"

#include <cmath>
#include <limits>

#include "autograd/engine.h"
#include "ops/cpu/normalize.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace lm {

using namespace ops_detail;

namespace {

void check_normalize(const char* name, const Tensor& x, int64_t dim, double eps) {
  check_float(name, x);
  check_cpu_or_cuda(name, x);
  if (x.dim() < 1) fail(name, "input must have at least 1 dimension, got " + x.str());
  wrap_dim(dim, x.dim(), name);
  if (!(eps > 0) || !std::isfinite(eps)) fail(name, "eps must be finite and > 0, got " + std::to_string(eps));
}

constexpr double kInf = std::numeric_limits<double>::infinity();

// CPU, last dim: the row kernels of ops/cpu/normalize.h with their hand-written backward.
Tensor l2_normalize_last_dim(const Tensor& x, double eps) {
  const int64_t D = x.shape().back(), rows = x.numel() / D;
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype()), denom = Tensor::empty({rows}, x.dtype());
  {
    profiler::Scope prof("l2_normalize", work::l2_normalize_forward(x.numel(), dtype_size(x.dtype())));
    if (x.dtype() == DType::F32) cpu::l2_normalize_rows_forward(xc.data<float>(), rows, D, eps, y.data<float>(), denom.data<float>());
    else cpu::l2_normalize_rows_forward(xc.data<double>(), rows, D, eps, y.data<double>(), denom.data<double>());
  }
  if (autograd::needs_grad({x})) {
    Tensor ys = y.detach();
    autograd::record("l2_normalize", {x}, y, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      Tensor gx = Tensor::empty(ys.shape(), ys.dtype());
      profiler::Scope prof("l2_normalize_backward", work::l2_normalize_backward(ys.numel(), dtype_size(ys.dtype())));
      if (ys.dtype() == DType::F32)
        cpu::l2_normalize_rows_backward(gc.data<float>(), ys.data<float>(), denom.data<float>(), rows, D, gx.data<float>());
      else
        cpu::l2_normalize_rows_backward(gc.data<double>(), ys.data<double>(), denom.data<double>(), rows, D, gx.data<double>());
      return {gx};
    });
  }
  return y;
}

}  // namespace

Tensor l2_normalize(const Tensor& x, int64_t dim, double eps) {
  check_normalize("l2_normalize", x, dim, eps);
  const int64_t d = wrap_dim(dim, x.dim(), "l2_normalize");
  if (x.device().is_cpu() && d == x.dim() - 1 && x.numel() > 0) return l2_normalize_last_dim(x, eps);
  // max(||x||, eps) = sqrt(max(sum x^2, eps^2))
  Tensor sumsq = sum(pow(x, 2.0), {dim}, true);
  Tensor denom = sqrt(clamp(sumsq, eps * eps, kInf));
  return div(x, denom);
}

Tensor l2_norm_clamped(const Tensor& x, double eps) {
  const char* name = "l2_norm_clamped";
  check_normalize(name, x, -1, eps);
  if (!x.device().is_cpu() || x.numel() == 0)  // composed: sqrt(max(sum x^2, eps^2)) over the last dim
    return sqrt(clamp(sum(pow(x, 2.0), {-1}), eps * eps, kInf));
  const int64_t D = x.shape().back(), rows = x.numel() / D;
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  Tensor xc = x.contiguous();
  Tensor signed_norms = Tensor::empty({rows}, x.dtype());  // negative for clamped rows
  {
    profiler::Scope prof(name, 2.0 * x.numel(), (double)x.nbytes());
    if (x.dtype() == DType::F32) cpu::l2_norm_rows_forward(xc.data<float>(), rows, D, eps, signed_norms.data<float>());
    else cpu::l2_norm_rows_forward(xc.data<double>(), rows, D, eps, signed_norms.data<double>());
  }
  Tensor out = abs(signed_norms);  // no grad here: built from a fresh tensor
  out = reshape(out, out_shape).contiguous();
  if (autograd::needs_grad({x})) {
    Tensor xs = xc.detach();
    autograd::record(name, {x}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      // Add into x's running gradient sum when the engine offers one (autograd/node.h).
      Tensor acc = autograd::accumulation_target(0);
      const bool accumulate = acc.defined() && acc.shape() == xs.shape() && acc.dtype() == xs.dtype();
      Tensor gx = accumulate ? acc : Tensor::empty(xs.shape(), xs.dtype());
      profiler::Scope prof("l2_norm_clamped_backward", 2.0 * xs.numel(), (accumulate ? 3.0 : 2.0) * xs.nbytes());
      if (xs.dtype() == DType::F32)
        cpu::l2_norm_rows_backward(gc.data<float>(), xs.data<float>(), signed_norms.data<float>(), rows, D,
                                   gx.data<float>(), accumulate);
      else
        cpu::l2_norm_rows_backward(gc.data<double>(), xs.data<double>(), signed_norms.data<double>(), rows, D,
                                   gx.data<double>(), accumulate);
      return {gx};
    });
  }
  return out;
}

Tensor l1_normalize(const Tensor& x, int64_t dim, double eps) {
  check_normalize("l1_normalize", x, dim, eps);
  Tensor denom = clamp(sum(abs(x), {dim}, true), eps, kInf);
  return div(x, denom);
}

Tensor cosine_similarity_matrix(const Tensor& a, const Tensor& b, double eps) {
  const char* name = "cosine_similarity_matrix";
  check_float(name, a);
  check_float(name, b);
  check_same(name, a, b);
  check_dim(name, a, 2, "a");
  check_dim(name, b, 2, "b");
  if (a.shape()[1] != b.shape()[1])
    fail(name, "a (N, D) and b (M, D) must share D, got " + a.str() + " and " + b.str());
  // t(...) is a transposed view: matmul passes it to the GEMM as a flag, no copy.
  return matmul(l2_normalize(a, 1, eps), t(l2_normalize(b, 1, eps)));
}

}  // namespace lm
