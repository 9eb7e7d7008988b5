// conv2d and adaptive_avg_pool2d: argument checks, the geometry handed to the kernels,
// dispatch, and the recorded backward (ops/cpu/conv2d.h, ops/cpu/pool.h, cuda/conv2d.cu;
// derivation in docs/ops/conv2d.md).
#include "ops/conv2d.h"

#include "autograd/engine.h"
#include "ops/cpu/conv2d.h"
#include "ops/cpu/pool.h"
#include "ops/op_utils.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

namespace {

std::string num(int64_t v) { return std::to_string(v); }

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  const char* name = "conv2d";
  check_float(name, x);
  check_float(name, weight);
  check_same(name, x, weight);
  check_cpu_or_cuda(name, x);
  check_dim(name, x, 4, "input (N, C_in, H, W)");
  check_dim(name, weight, 4, "weight (C_out, C_in / groups, KH, KW)");
  const std::string shapes = "input " + x.str() + ", weight " + weight.str();
  if (opt.stride_h < 1 || opt.stride_w < 1)
    fail(name, "strides must be >= 1, got (" + num(opt.stride_h) + ", " + num(opt.stride_w) + ")");
  if (opt.pad_top < 0 || opt.pad_bottom < 0 || opt.pad_left < 0 || opt.pad_right < 0)
    fail(name, "paddings must be >= 0, got (top " + num(opt.pad_top) + ", bottom " + num(opt.pad_bottom) + ", left " +
                   num(opt.pad_left) + ", right " + num(opt.pad_right) + ")");
  if (opt.groups < 1) fail(name, "groups must be >= 1, got " + num(opt.groups));
  Conv2dGeometry g;
  g.N = x.shape()[0];
  g.C_in = x.shape()[1];
  g.H = x.shape()[2];
  g.W = x.shape()[3];
  g.C_out = weight.shape()[0];
  g.KH = weight.shape()[2];
  g.KW = weight.shape()[3];
  g.stride_h = opt.stride_h;
  g.stride_w = opt.stride_w;
  g.pad_top = opt.pad_top;
  g.pad_left = opt.pad_left;
  g.groups = opt.groups;
  if (g.C_in < 1 || g.H < 1 || g.W < 1) fail(name, "input channels and spatial sizes must be >= 1: " + shapes);
  if (g.C_out < 1 || g.KH < 1 || g.KW < 1) fail(name, "weight sizes must be >= 1: " + shapes);
  if (g.C_in % g.groups != 0)
    fail(name, "C_in " + num(g.C_in) + " is not divisible by groups " + num(g.groups) + ": " + shapes);
  if (g.C_out % g.groups != 0)
    fail(name, "C_out " + num(g.C_out) + " is not divisible by groups " + num(g.groups) + ": " + shapes);
  if (weight.shape()[1] != g.C_in / g.groups)
    fail(name, "weight dim 1 must be C_in / groups = " + num(g.C_in) + " / " + num(g.groups) + " = " +
                   num(g.C_in / g.groups) + ": " + shapes);
  const int64_t span_h = g.H + opt.pad_top + opt.pad_bottom - g.KH, span_w = g.W + opt.pad_left + opt.pad_right - g.KW;
  if (span_h < 0 || span_w < 0)
    fail(name, "non-positive output size: the padded input (" + num(g.H + opt.pad_top + opt.pad_bottom) + ", " +
                   num(g.W + opt.pad_left + opt.pad_right) + ") is smaller than the kernel (" + num(g.KH) + ", " +
                   num(g.KW) + "): " + shapes);
  g.OH = span_h / g.stride_h + 1;
  g.OW = span_w / g.stride_w + 1;
  if (bias.defined()) {
    check_float(name, bias);
    check_same(name, x, bias);
    if (bias.shape() != Shape{g.C_out})
      fail(name, "bias must have shape [" + num(g.C_out) + "] (C_out), got " + bias.str() + "; " + shapes);
  }
  Tensor xc = x.contiguous(), wc = weight.contiguous();
  Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor out = Tensor::empty({g.N, g.C_out, g.OH, g.OW}, x.dtype(), x.device());
  LM_DISPATCH_COUNTED("conv2d_forward", work::conv2d_forward(g, bc.defined(), dtype_size(x.dtype())), x.device(), conv2d_forward,
                      xc, wc, bc, g, out);
  if (needs_grad({x, weight, bias})) {
    const bool gx_needed = x.requires_grad();
    const bool gw_needed = weight.requires_grad();
    const bool gb_needed = bias.defined() && bias.requires_grad();
    // x is read only by grad_weight, weight only by grad_x.
    Tensor xs = gw_needed ? xc.detach() : Tensor(), ws = gx_needed ? wc.detach() : Tensor();
    const Device dev = x.device();
    const DType dt = x.dtype();
    record(name, {x, weight, bias}, out, [=](const Tensor& grad) -> std::vector<Tensor> {
      Tensor gc = grad.contiguous();
      Tensor gx, gw, gb;
      if (gx_needed) gx = Tensor::empty({g.N, g.C_in, g.H, g.W}, dt, dev);
      if (gw_needed) gw = Tensor::empty({g.C_out, g.C_in / g.groups, g.KH, g.KW}, dt, dev);
      if (gb_needed) gb = Tensor::empty({g.C_out}, dt, dev);
      LM_DISPATCH_COUNTED(prof_label(name, "backward"), work::conv2d_backward(g, dtype_size(dt)), dev, conv2d_backward, gc, xs,
                          ws, g, gx, gw, gb);
      return {gx, gw, gb};
    });
  }
  return out;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  const char* name = "adaptive_avg_pool2d";
  check_float(name, x);
  check_cpu_or_cuda(name, x);
  check_dim(name, x, 4, "input (N, C, H, W)");
  if (out_h < 1 || out_w < 1)
    fail(name, "output size must be >= 1, got (" + num(out_h) + ", " + num(out_w) + ") for input " + x.str());
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  if (H < 1 || W < 1) fail(name, "input spatial sizes must be >= 1, got " + x.str());
  const int64_t rows = N * C;
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty({N, C, out_h, out_w}, x.dtype(), x.device());
  LM_DISPATCH(x.device(), adaptive_avg_pool2d_forward, xc, rows, H, W, out_h, out_w, out);
  if (needs_grad({x})) {
    const Device dev = x.device();
    const DType dt = x.dtype();
    record(name, {x}, out, [=](const Tensor& grad) -> std::vector<Tensor> {
      Tensor gc = grad.contiguous();
      Tensor gx = Tensor::empty({N, C, H, W}, dt, dev);
      LM_DISPATCH_NAMED(prof_label(name, "backward"), dev, adaptive_avg_pool2d_backward, gc, rows, H, W, out_h, out_w,
                        gx);
      return {gx};
    });
  }
  return out;
}

}  // namespace lm
