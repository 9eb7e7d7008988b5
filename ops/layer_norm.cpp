// layer_norm: argument checks, dispatch, and the recorded backward, which calls the fused
// backward kernel with the saved input, weight and per-row mean / rstd
// (derivation in docs/ops/layernorm.md).
#include "ops/layer_norm.h"

#include <cmath>

#include "autograd/engine.h"
#include "ops/cpu/layer_norm.h"
#include "ops/op_utils.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* name = "layer_norm";
  check_float(name, x);
  check_cpu_or_cuda(name, x);
  if (x.dim() < 1) fail(name, "input must have at least 1 dimension, got " + x.str());
  if (!(eps >= 0) || !std::isfinite(eps)) fail(name, "eps must be finite and >= 0, got " + std::to_string(eps));
  const int64_t D = x.shape().back();
  const int64_t rows = D == 0 ? 0 : x.numel() / D;
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    const char* what = p == &weight ? "weight" : "bias";
    check_float(name, *p);
    check_same(name, x, *p);
    if (p->shape() != Shape{D})
      fail(name, std::string(what) + " must have shape [" + std::to_string(D) + "] (the last dim of the input " +
                     x.str() + "), got " + p->str());
  }
  Tensor xc = x.contiguous();
  Tensor wc = weight.defined() ? weight.contiguous() : Tensor();
  Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({rows}, x.dtype(), x.device());
  Tensor rstd = Tensor::empty({rows}, x.dtype(), x.device());
  LM_DISPATCH_COUNTED("layer_norm_forward", work::layer_norm_forward(rows, D, wc.defined(), bc.defined(), dtype_size(x.dtype())),
                      x.device(), layer_norm_forward, xc, wc, bc, eps, rows, D, out, mean, rstd);
  if (needs_grad({x, weight, bias})) {
    const bool gx_needed = x.requires_grad();
    const bool gw_needed = weight.defined() && weight.requires_grad();
    const bool gb_needed = bias.defined() && bias.requires_grad();
    Tensor xs = xc.detach(), ws = wc.defined() ? wc.detach() : Tensor();
    record(name, {x, weight, bias}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      Tensor gx, gw, gb;
      if (gx_needed) gx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
      if (gw_needed) gw = Tensor::empty({D}, xs.dtype(), xs.device());
      if (gb_needed) gb = Tensor::empty({D}, xs.dtype(), xs.device());
      LM_DISPATCH_COUNTED("layer_norm_backward", work::layer_norm_backward(rows, D, dtype_size(xs.dtype())), xs.device(),
                          layer_norm_backward, gc, xs, ws, mean, rstd, rows, D, gx, gw, gb);
      return {gx, gw, gb};
    });
  }
  return out;
}

}  // namespace lm
