// Views and layout ops with their gradients. A view's backward maps the output gradient
// back onto the input's shape: reshape -> reshape back, permute -> inverse permutation,
// expand -> sum over the expanded dims, slice -> scatter into zeros.
#include "ops/shape.h"

#include <algorithm>
#include <numeric>

#include "ops/elementwise.h"
#include "ops/index_csr.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

namespace {

// Records a view whose gradient is computed by `back` from the output gradient.
Tensor make_view(const char* name, const Tensor& x, Tensor v, std::function<Tensor(const Tensor&)> back) {
  if (needs_grad({x})) record(name, {x}, v, [back](const Tensor& g) -> std::vector<Tensor> { return {back(g)}; });
  return v;
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  Shape shape = shape_in;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) fail("reshape", "more than one -1 in " + shape_str(shape_in));
      infer = (int64_t)i;
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0) fail("reshape", "cannot reshape " + x.str() + " to " + shape_str(shape_in));
    shape[infer] = x.numel() / known;
  }
  if (shape_numel(shape) != x.numel()) fail("reshape", "cannot reshape " + x.str() + " to " + shape_str(shape_in));
  Tensor base = x.is_contiguous() ? x.detach() : x.contiguous();
  Tensor v = base.as_strided(shape, contiguous_strides(shape), base.offset());
  Shape orig = x.shape();
  return make_view("reshape", x, v, [orig](const Tensor& g) { return reshape(g, orig); });
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  if ((int64_t)dims.size() != x.dim()) fail("permute", "got " + std::to_string(dims.size()) + " dims for " + x.str());
  std::vector<int64_t> d(dims.size()), seen(dims.size(), 0);
  Shape sh, st;
  for (size_t i = 0; i < dims.size(); ++i) {
    d[i] = wrap_dim(dims[i], x.dim(), "permute");
    if (seen[d[i]]++) fail("permute", "repeated dimension in permutation");
    sh.push_back(x.shape()[d[i]]);
    st.push_back(x.strides()[d[i]]);
  }
  std::vector<int64_t> inv(d.size());
  for (size_t i = 0; i < d.size(); ++i) inv[d[i]] = (int64_t)i;
  return make_view("permute", x, x.as_strided(sh, st, x.offset()), [inv](const Tensor& g) { return permute(g, inv); });
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  std::vector<int64_t> p(x.dim());
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[wrap_dim(d0, x.dim(), "transpose")], p[wrap_dim(d1, x.dim(), "transpose")]);
  return permute(x, p);
}

Tensor t(const Tensor& x) {
  check_dim("t", x, 2, "input");
  return transpose(x, 0, 1);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  if ((int64_t)shape.size() < x.dim()) fail("expand", "cannot expand " + x.str() + " to " + shape_str(shape));
  Shape sh(shape.size()), st(shape.size(), 0);
  size_t lead = shape.size() - x.dim();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      if (shape[i] < 0) fail("expand", "-1 not allowed for a new leading dim");
      sh[i] = shape[i];
      continue;
    }
    int64_t xs = x.shape()[i - lead];
    int64_t want = shape[i] == -1 ? xs : shape[i];
    if (xs != want && xs != 1) fail("expand", "cannot expand " + x.str() + " to " + shape_str(shape));
    sh[i] = want;
    st[i] = xs == want ? x.strides()[i - lead] : 0;
  }
  Shape orig = x.shape();
  return make_view("expand", x, x.as_strided(sh, st, x.offset()), [orig](const Tensor& g) { return sum_to(g, orig); });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  int64_t d = wrap_dim(dim, x.dim(), "slice");
  int64_t n = x.shape()[d];
  if (step <= 0) fail("slice", "step must be positive");
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = x.shape(), st = x.strides();
  sh[d] = (end - start + step - 1) / step;
  st[d] = x.strides()[d] * step;
  Tensor v = x.as_strided(sh, st, x.offset() + start * x.strides()[d]);
  Shape orig = x.shape();
  return make_view("slice", x, v, [orig, d, start, step, sh](const Tensor& g) {
    // The slice's region of a packed tensor of x's shape.
    auto region_of = [&](const Tensor& full) {
      Shape vst = full.strides();
      vst[d] *= step;
      return full.as_strided(sh, vst, full.offset() + start * full.strides()[d]);
    };
    // When x's gradient already has a running sum (another slice of x got there first: Sv and
    // St of the similarities, or paper mode's similarities and keys of one product), add g into
    // its region in place (autograd/node.h) instead of a zero-filled x-sized gradient that the
    // engine would then add.
    Tensor acc = autograd::accumulation_target(0);
    if (acc.defined() && acc.shape() == orig && acc.dtype() == g.dtype() && acc.is_contiguous() &&
        add_into_view(region_of(acc), g))
      return acc;
    Tensor gx = Tensor::zeros(orig, g.dtype(), g.device());
    region_of(gx).copy_from(g);
    return gx;
  });
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  int64_t d = wrap_dim(dim, x.dim(), "select");
  int64_t n = x.shape()[d];
  if (index < -n || index >= n) fail("select", "index " + std::to_string(index) + " out of range for dim of size " + std::to_string(n));
  if (index < 0) index += n;
  return squeeze(slice(x, d, index, index + 1), d);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape sh = x.shape(), st = x.strides();
  int64_t s = d < x.dim() ? x.strides()[d] * x.shape()[d] : 1;
  sh.insert(sh.begin() + d, 1);
  st.insert(st.begin() + d, s);
  Shape orig = x.shape();
  return make_view("unsqueeze", x, x.as_strided(sh, st, x.offset()), [orig](const Tensor& g) { return reshape(g, orig); });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim(), "squeeze");
  if (x.shape()[d] != 1) return x;
  Shape sh = x.shape(), st = x.strides();
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  Shape orig = x.shape();
  return make_view("squeeze", x, x.as_strided(sh, st, x.offset()), [orig](const Tensor& g) { return reshape(g, orig); });
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = wrap_dim(start_dim, x.dim(), "flatten"), e = wrap_dim(end_dim, x.dim(), "flatten");
  Shape sh;
  for (int64_t i = 0; i < s; ++i) sh.push_back(x.shape()[i]);
  int64_t m = 1;
  for (int64_t i = s; i <= e; ++i) m *= x.shape()[i];
  sh.push_back(m);
  for (int64_t i = e + 1; i < x.dim(); ++i) sh.push_back(x.shape()[i]);
  return reshape(x, sh);
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  return make_view("contiguous", x, x.contiguous(), [](const Tensor& g) { return g; });
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) fail("cat", "no tensors given");
  const Tensor& f = xs[0];
  int64_t d = wrap_dim(dim, f.dim(), "cat");
  Shape out_shape = f.shape();
  out_shape[d] = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) {
    check_same("cat", f, x);
    if (x.dim() != f.dim()) fail("cat", "rank mismatch: " + f.str() + " vs " + x.str());
    for (int64_t i = 0; i < f.dim(); ++i)
      if (i != d && x.shape()[i] != f.shape()[i]) fail("cat", "shape mismatch outside dim " + std::to_string(d) + ": " + f.str() + " vs " + x.str());
    sizes.push_back(x.shape()[d]);
    out_shape[d] += x.shape()[d];
  }
  Tensor out = Tensor::empty(out_shape, f.dtype(), f.device());
  int64_t pos = 0;
  for (const Tensor& x : xs) {
    Shape sh = out_shape;
    sh[d] = x.shape()[d];
    out.as_strided(sh, out.strides(), pos * out.strides()[d]).copy_from(x);
    pos += x.shape()[d];
  }
  if (needs_grad(xs)) {
    record("cat", xs, out, [d, sizes](const Tensor& g) -> std::vector<Tensor> {
      std::vector<Tensor> gs;
      int64_t p = 0;
      for (int64_t s : sizes) {
        gs.push_back(slice(g, d, p, p + s).contiguous());
        p += s;
      }
      return gs;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) fail("stack", "no tensors given");
  int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (const Tensor& x : xs) {
    if (x.shape() != xs[0].shape()) fail("stack", "shape mismatch: " + xs[0].str() + " vs " + x.str());
    us.push_back(unsqueeze(x, d));
  }
  return cat(us, d);
}

#ifdef LIBRAMIL_WITH_CUDA
// index_select on CUDA: one gather kernel forward, one scatter-add kernel backward
// (cuda/index_kernels.cuh), instead of a device copy per selected row.
static Tensor index_select_cuda(const Tensor& x, int64_t d, const std::vector<int64_t>& idx) {
  const Shape& s = x.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t a = 0; a < d; ++a) outer *= s[a];
  for (int64_t a = d + 1; a < x.dim(); ++a) inner *= s[a];
  const int64_t n = s[d], K = (int64_t)idx.size();
  Shape out_shape = s;
  out_shape[d] = K;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  Tensor idx_dev = Tensor::from_vector(idx, {K}).to(x.device());
  cuda::index_select_forward(x.contiguous(), outer, n, inner, idx_dev, out);
  if (needs_grad({x})) {
    const IndexCsr csr = invert_index(idx, n);  // row j's k, ascending (ops/index_csr.h)
    const Device dev = x.device();
    Tensor off_dev = Tensor::from_vector(csr.offsets, {n + 1}).to(dev);
    Tensor ks_dev = Tensor::from_vector(csr.ks, {K}).to(dev);
    const Shape orig = s;
    record("index_select", {x}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gx = Tensor::empty(orig, g.dtype(), g.device());
      cuda::index_select_backward(g.contiguous(), outer, n, inner, off_dev, ks_dev, gx);
      return {gx};
    });
  }
  return out;
}
#endif

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  if (index.dtype() != DType::I64 || index.dim() != 1) fail("index_select", "index must be a 1-d int64 tensor, got " + index.str());
  int64_t d = wrap_dim(dim, x.dim(), "index_select");
  std::vector<int64_t> idx = index.to_int_vector();
  int64_t n = x.shape()[d];
  for (int64_t i : idx)
    if (i < 0 || i >= n) fail("index_select", "index " + std::to_string(i) + " out of range for dim of size " + std::to_string(n));
#ifdef LIBRAMIL_WITH_CUDA
  if (x.device().is_cuda() && (!needs_grad({x}) || x.dtype() == DType::F32 || x.dtype() == DType::F64))
    return index_select_cuda(x, d, idx);
#endif
  Shape out_shape = x.shape();
  out_shape[d] = (int64_t)idx.size();
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  Shape row_shape = x.shape();
  row_shape[d] = 1;
  for (size_t k = 0; k < idx.size(); ++k) {
    Tensor src = x.as_strided(row_shape, x.strides(), x.offset() + idx[k] * x.strides()[d]);
    out.as_strided(row_shape, out.strides(), (int64_t)k * out.strides()[d]).copy_from(src);
  }
  if (needs_grad({x})) {
    Shape orig = x.shape();
    record("index_select", {x}, out, [orig, d, idx, row_shape](const Tensor& g) -> std::vector<Tensor> {
      // Scatter-add each selected row's gradient back to the row it came from.
      Tensor gx = Tensor::zeros(orig, g.dtype(), g.device());
      Tensor gc = g.contiguous();
      for (size_t k = 0; k < idx.size(); ++k) {
        Tensor dst = gx.as_strided(row_shape, gx.strides(), idx[k] * gx.strides()[d]);
        Tensor src = gc.as_strided(row_shape, gc.strides(), (int64_t)k * gc.strides()[d]);
        dst.copy_from(add_same_shape(dst, src));
      }
      return {gx};
    });
  }
  return out;
}

}  // namespace lm
