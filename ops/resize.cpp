// resize_image, normalize_channels and images_to_tensor: argument checks, the per-axis tables
// (ops/cpu/resize_table.h, built on the host in the input's dtype and moved to its device),
// dispatch to the two passes, and the recorded backwards. The backward of the separable map
// y = A_h x A_w^T is x_grad = A_h^T g A_w: the same two passes, in reverse order, with the
// transposed tables (docs/ops/resize.md).
#include "ops/resize.h"

#include <cmath>
#include <string>

#include "autograd/engine.h"
#include "ops/cpu/resize.h"
#include "ops/cpu/resize_table.h"
#include "ops/op_utils.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

namespace {

template <class T>
ResizeAxis to_axis(const cpu::ResizeTable<T>& t, Device dev) {
  ResizeAxis a;
  a.src_size = t.src_size;
  a.dst_size = t.dst_size;
  a.offsets = Tensor::from_vector(t.offsets, {(int64_t)t.offsets.size()}).to(dev);
  a.src = Tensor::from_vector(t.src, {(int64_t)t.src.size()}).to(dev);
  a.weight = Tensor::from_vector(t.weight, {(int64_t)t.weight.size()}).to(dev);
  return a;
}

// The tables of both axes (forward), and their transposes when `backward` (for the gradient).
struct ResizePlan {
  ResizeAxis rows, cols;        // rows: H -> out_h; cols: W -> out_w
  ResizeAxis rows_t, cols_t;    // transposed: out_h -> H, out_w -> W
};

template <class T>
ResizePlan make_plan(int64_t H, int64_t W, int64_t out_h, int64_t out_w, bool cubic, bool aa, bool backward,
                     Device dev) {
  ResizePlan p;
  const auto th = cpu::make_resize_table<T>(H, out_h, cubic, aa);
  const auto tw = cpu::make_resize_table<T>(W, out_w, cubic, aa);
  p.rows = to_axis(th, dev);
  p.cols = to_axis(tw, dev);
  if (backward) {
    p.rows_t = to_axis(cpu::transpose_resize_table(th), dev);
    p.cols_t = to_axis(cpu::transpose_resize_table(tw), dev);
  }
  return p;
}

const char* mode_name(ResizeMode m) { return m == ResizeMode::bilinear ? "bilinear" : "bicubic"; }

}  // namespace

Tensor resize_image(const Tensor& x, int64_t out_h, int64_t out_w, ResizeMode mode, bool antialias) {
  const char* name = "resize_image";
  check_float(name, x);
  check_cpu_or_cuda(name, x);
  if (mode != ResizeMode::bilinear && mode != ResizeMode::bicubic)
    fail(name, "unknown mode " + std::to_string(static_cast<int>(mode)) + " (expected bilinear or bicubic)");
  if (x.dim() != 4) fail(name, "input must be 4-d (N, C, H, W), got " + x.str());
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  if (H < 1 || W < 1) fail(name, "input height and width must be >= 1, got " + x.str());
  if (out_h < 1 || out_w < 1)
    fail(name, "output size must be >= 1 x 1, got " + std::to_string(out_h) + " x " + std::to_string(out_w) +
                   " for input " + x.str());
  const int64_t planes = N * C;
  const bool cubic = mode == ResizeMode::bicubic;
  const bool grad = needs_grad({x});
  const ResizePlan plan = x.dtype() == DType::F32
                              ? make_plan<float>(H, W, out_h, out_w, cubic, antialias, grad, x.device())
                              : make_plan<double>(H, W, out_h, out_w, cubic, antialias, grad, x.device());
  Tensor xc = x.contiguous();
  // Rows first (each of the planes * H rows from W to out_w), then columns (H -> out_h).
  Tensor tmp = Tensor::empty({planes, H, out_w}, x.dtype(), x.device());
  Tensor out = Tensor::empty({N, C, out_h, out_w}, x.dtype(), x.device());
  LM_DISPATCH_NAMED(prof_label(name, mode_name(mode)), x.device(), resize_horizontal_pass, xc, planes * H, plan.cols,
                    tmp);
  LM_DISPATCH_NAMED(prof_label(name, mode_name(mode)), x.device(), resize_vertical_pass, tmp, planes, out_w, plan.rows,
                    out);
  if (grad) {
    const ResizeAxis rows_t = plan.rows_t, cols_t = plan.cols_t;
    const Shape xshape = x.shape();
    const DType dt = x.dtype();
    const Device dev = x.device();
    record(name, {x}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      // g: (planes, out_h, out_w) -> (planes, H, out_w) -> (planes * H, W).
      Tensor gtmp = Tensor::empty({planes, H, out_w}, dt, dev);
      Tensor gx = Tensor::empty(xshape, dt, dev);
      LM_DISPATCH_NAMED("resize_image.backward", dev, resize_vertical_pass, gc, planes, out_w, rows_t, gtmp);
      LM_DISPATCH_NAMED("resize_image.backward", dev, resize_horizontal_pass, gtmp, planes * H, cols_t, gx);
      return {gx};
    });
  }
  return out;
}

Tensor normalize_channels(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& sd) {
  const char* name = "normalize_channels";
  check_float(name, x);
  check_cpu_or_cuda(name, x);
  if (x.dim() != 4) fail(name, "input must be 4-d (N, C, H, W), got " + x.str());
  const int64_t N = x.shape()[0], C = x.shape()[1], hw = x.shape()[2] * x.shape()[3];
  if ((int64_t)mean.size() != C || (int64_t)sd.size() != C)
    fail(name, "mean and std must have one entry per channel (C = " + std::to_string(C) + " for input " + x.str() +
                   "), got " + std::to_string(mean.size()) + " and " + std::to_string(sd.size()));
  for (int64_t c = 0; c < C; ++c) {
    if (!(sd[c] > 0) || !std::isfinite(sd[c]))
      fail(name, "std must be finite and > 0, got std[" + std::to_string(c) + "] = " + std::to_string(sd[c]));
    if (!std::isfinite(mean[c]))
      fail(name, "mean must be finite, got mean[" + std::to_string(c) + "] = " + std::to_string(mean[c]));
  }
  // Per-channel constants in x's dtype on its device (torch: torch.as_tensor(mean, dtype=x.dtype)).
  const Tensor m = Tensor::from_vector(mean, {C}).to(x.dtype()).to(x.device());
  const Tensor s = Tensor::from_vector(sd, {C}).to(x.dtype()).to(x.device());
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t planes = N * C;
  LM_DISPATCH(x.device(), normalize_channels_forward, xc, planes, C, hw, m, s, out);
  if (needs_grad({x})) {
    record(name, {x}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      Tensor gx = Tensor::empty(gc.shape(), gc.dtype(), gc.device());
      LM_DISPATCH(gc.device(), normalize_channels_backward, gc, planes, C, hw, s, gx);
      return {gx};
    });
  }
  return out;
}

Tensor images_to_tensor(const std::vector<const uint8_t*>& images, int64_t h, int64_t w) {
  const char* name = "images_to_tensor";
  if (h < 1 || w < 1)
    fail(name, "image size must be >= 1 x 1, got " + std::to_string(h) + " x " + std::to_string(w));
  const int64_t n = (int64_t)images.size();
  for (int64_t i = 0; i < n; ++i)
    if (!images[i]) fail(name, "image " + std::to_string(i) + " of " + std::to_string(n) + " is a null pointer");
  Tensor out = Tensor::empty({n, 3, h, w}, DType::F32);
  float* o = out.data<float>();
  const int64_t hw = h * w;
#pragma omp parallel for collapse(2) schedule(static) if (n * hw > (1 << 16))
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c) {
      const uint8_t* src = images[i] + c;
      float* dst = o + (i * 3 + c) * hw;
      for (int64_t k = 0; k < hw; ++k) dst[k] = static_cast<float>(src[3 * k]) / 255.0f;  // ToTensor: .float().div(255)
    }
  return out;
}

}  // namespace lm
