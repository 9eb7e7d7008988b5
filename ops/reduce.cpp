// Reductions: dimension bookkeeping, dispatch, and gradients (derived in the comments).
#include "ops/reduce.h"

#include <algorithm>

#include "ops/cpu/reduce.h"
#include "ops/elementwise.h"
#include "ops/op_utils.h"
#include "ops/shape.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

namespace {

struct ReducePlan {
  std::vector<int64_t> dims;  // sorted, unique, non-negative
  Tensor packed;              // input laid out as (outer, reduced, inner)
  int64_t outer = 1, red = 1, inner = 1;
  Shape keep_shape;  // output shape with keepdim
  Shape out_shape;   // output shape as requested
};

ReducePlan plan_reduce(const char* op, const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  ReducePlan p;
  for (int64_t d : dims_in) p.dims.push_back(wrap_dim(d, std::max<int64_t>(x.dim(), 1), op));
  std::sort(p.dims.begin(), p.dims.end());
  p.dims.erase(std::unique(p.dims.begin(), p.dims.end()), p.dims.end());
  if (x.dim() == 0) p.dims.clear();
  p.keep_shape = x.shape();
  for (int64_t d : p.dims) p.keep_shape[d] = 1;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (keepdim || !std::binary_search(p.dims.begin(), p.dims.end(), i)) p.out_shape.push_back(p.keep_shape[i]);
  bool consecutive = p.dims.empty() || p.dims.back() - p.dims.front() + 1 == (int64_t)p.dims.size();
  Tensor src = x.detach();
  std::vector<int64_t> order;
  if (!consecutive) {  // move the reduced dims to the end
    for (int64_t i = 0; i < x.dim(); ++i)
      if (!std::binary_search(p.dims.begin(), p.dims.end(), i)) order.push_back(i);
    int64_t first = (int64_t)order.size();
    for (int64_t d : p.dims) order.push_back(d);
    Shape sh, st;
    for (int64_t i : order) { sh.push_back(x.shape()[i]); st.push_back(x.strides()[i]); }
    src = x.as_strided(sh, st, x.offset());
    p.dims.clear();
    for (int64_t i = first; i < x.dim(); ++i) p.dims.push_back(i);
  }
  p.packed = src.contiguous();
  const Shape& s = p.packed.shape();
  if (p.dims.empty()) {
    p.outer = shape_numel(s);
  } else {
    for (int64_t i = 0; i < p.dims.front(); ++i) p.outer *= s[i];
    for (int64_t d : p.dims) p.red *= s[d];
    for (int64_t i = p.dims.back() + 1; i < (int64_t)s.size(); ++i) p.inner *= s[i];
  }
  return p;
}

std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) d[i] = i;
  return d;
}

// Broadcasts a reduced result (keepdim shape) back to the input's shape, packed.
Tensor expand_back(const Tensor& g, const Shape& keep_shape, const Shape& full) {
  return expand(reshape(g, keep_shape), full).contiguous();
}

Tensor reduce_op(const char* name, ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_float(name, x);
  ReducePlan p = plan_reduce(name, x, dims, keepdim);
  if (p.red == 0 && op != ReduceOp::Sum) fail(name, "reduction over an empty dimension of " + x.str());
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
  LM_DISPATCH_COUNTED(name, work::reduce(op, x.numel(), out.numel(), dtype_size(x.dtype())), x.device(), reduce_forward, op,
                      p.packed, p.outer, p.red, p.inner, out);
  if (needs_grad({x})) {
    Shape keep = p.keep_shape, full = x.shape();
    Tensor xs = x.detach(), ys = out.detach();
    record(name, {x}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gx;
      if (op == ReduceOp::Sum) {
        // d sum / dx_i = 1: broadcast the output gradient back.
        gx = expand_back(g, keep, full);
      } else if (op == ReduceOp::Max) {
        // Split the gradient equally among the positions equal to the maximum (on the
        // tensors' device: no host round trip).
        Tensor mask = eq(xs, reshape(ys, keep));
        Tensor count = sum(mask, dims, true);
        gx = mul(mask, expand_back(div(reshape(g, keep), count), keep, full));
      } else {
        // d logsumexp / dx_i = exp(x_i - y) = softmax(x)_i.
        gx = mul(expand_back(g, keep, full), exp(sub(xs, expand_back(ys, keep, full))));
      }
      return {gx};
    });
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_op("sum", ReduceOp::Sum, x, dims, keepdim);
}
Tensor sum(const Tensor& x) { return sum(x, all_dims(x), false); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_float("mean", x);
  int64_t count = 1;
  std::vector<int64_t> d = dims;
  for (int64_t k : d) count *= x.shape()[wrap_dim(k, x.dim(), "mean")];
  if (count == 0) fail("mean", "mean over an empty dimension of " + x.str());
  return mul(sum(x, dims, keepdim), 1.0 / (double)count);
}
Tensor mean(const Tensor& x) { return mean(x, all_dims(x), false); }

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_op("amax", ReduceOp::Max, x, dims, keepdim);
}
Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  return reduce_op("max", ReduceOp::Max, x, {dim}, keepdim);
}
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_op("logsumexp", ReduceOp::LogSumExp, x, dims, keepdim);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  check_float("argmax", x);
  ReducePlan p = plan_reduce("argmax", x, {dim}, keepdim);
  if (p.red == 0) fail("argmax", "argmax over an empty dimension of " + x.str());
  Tensor out = Tensor::empty(p.out_shape, DType::I64, x.device());
  LM_DISPATCH_COUNTED("argmax", work::argmax(x.numel(), out.numel(), dtype_size(x.dtype())), x.device(), argmax_forward,
                      p.packed, p.outer, p.red, p.inner, out);
  return out;
}

}  // namespace lm
