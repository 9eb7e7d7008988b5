// Elementwise ops: argument checks, dispatch to the CPU/CUDA kernels, and gradients.
// Binary-op gradients are reduced back over broadcast dimensions with sum_to.
#include "ops/elementwise.h"

#include "autograd/engine.h"
#include "ops/cpu/elementwise.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

namespace ops_detail {

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op, "shapes " + shape_str(a) + " and " + shape_str(b) + " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Tensor& x, const Shape& out) {
  Shape st(out.size(), 0);
  size_t off = out.size() - (size_t)x.dim();
  for (size_t i = 0; i < (size_t)x.dim(); ++i)
    st[off + i] = x.shape()[i] == 1 ? 0 : x.strides()[i];
  return st;
}

}  // namespace ops_detail

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  std::vector<int64_t> dims;
  int64_t lead = g.dim() - (int64_t)shape.size();
  for (int64_t i = 0; i < g.dim(); ++i) {
    if (i < lead) dims.push_back(i);
    else if (shape[i - lead] == 1 && g.shape()[i] != 1) dims.push_back(i);
  }
  Tensor s = dims.empty() ? g : sum(g, dims, true);
  return reshape(s, shape);
}

static Tensor binary(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  check_float(name, a);
  check_float(name, b);
  check_same(name, a, b);
  Shape out_shape = broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  LM_DISPATCH_COUNTED(name, work::binary(a.numel(), b.numel(), out.numel(), dtype_size(a.dtype())), a.device(), binary_forward,
                      op, a, b, out);
  if (needs_grad({a, b})) {
    bool ga = a.requires_grad(), gb = b.requires_grad();
    Shape sa = a.shape(), sb = b.shape();
    Tensor ad = a.detach(), bd = b.detach();
    record(name, {a, b}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor da, db;
      switch (op) {
        case BinaryOp::Add:
          if (ga) da = sum_to(g, sa);
          if (gb) db = sum_to(g, sb);
          break;
        case BinaryOp::Sub:
          if (ga) da = sum_to(g, sa);
          if (gb) db = sum_to(neg(g), sb);
          break;
        case BinaryOp::Mul:
          if (ga) da = sum_to(mul(g, bd), sa);
          if (gb) db = sum_to(mul(g, ad), sb);
          break;
        case BinaryOp::Div:
          if (ga) da = sum_to(div(g, bd), sa);
          if (gb) db = sum_to(neg(div(mul(g, ad), mul(bd, bd))), sb);
          break;
        case BinaryOp::Eq: break;  // not reached: eq records no grad
      }
      return {da, db};
    });
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary("div", BinaryOp::Div, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;  // a step function: zero gradient almost everywhere, none recorded
  return binary("eq", BinaryOp::Eq, a, b);
}

static Tensor unary(const char* name, UnaryOp op, const Tensor& x, UnaryParams p = {}) {
  check_float(name, x);
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  LM_DISPATCH_COUNTED(name, work::unary_forward(op, p.p0, x.numel(), dtype_size(x.dtype())), x.device(), unary_forward, op, p,
                      xc, out);
  if (needs_grad({x})) {
    Tensor xs = xc.detach(), ys = out.detach();
    record(name, {x}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      Tensor gx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
      LM_DISPATCH_COUNTED(prof_label(name, "backward"), work::unary_backward(op, p.p0, xs.numel(), dtype_size(xs.dtype())),
                          xs.device(), unary_backward, op, p, xs, ys, gc, gx);
      return {gx};
    });
  }
  return out;
}

Tensor add(const Tensor& a, double s) { return unary("add_scalar", UnaryOp::AddScalar, a, {s, 0}); }
Tensor mul(const Tensor& a, double s) { return unary("mul_scalar", UnaryOp::MulScalar, a, {s, 0}); }
Tensor rsub(double s, const Tensor& a) { return unary("rsub_scalar", UnaryOp::RSubScalar, a, {s, 0}); }
Tensor neg(const Tensor& x) { return unary("neg", UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary("exp", UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary("log", UnaryOp::Log, x); }
Tensor sqrt(const Tensor& x) { return unary("sqrt", UnaryOp::Sqrt, x); }
Tensor pow(const Tensor& x, double e) { return unary("pow", UnaryOp::Pow, x, {e, 0}); }
Tensor abs(const Tensor& x) { return unary("abs", UnaryOp::Abs, x); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) fail("clamp", "lo " + std::to_string(lo) + " > hi " + std::to_string(hi));
  return unary("clamp", UnaryOp::Clamp, x, {lo, hi});
}
Tensor relu(const Tensor& x) { return unary("relu", UnaryOp::Relu, x); }
Tensor relu6(const Tensor& x) { return unary("relu6", UnaryOp::Relu6, x); }
Tensor sigmoid(const Tensor& x) { return unary("sigmoid", UnaryOp::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary("tanh", UnaryOp::Tanh, x); }
Tensor gelu(const Tensor& x) { return unary("gelu", UnaryOp::Gelu, x); }

}  // namespace lm
