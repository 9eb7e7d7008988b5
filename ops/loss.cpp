// cross_entropy: argument checks (shapes, int64 targets in [0, C)), dispatch to the fused
// log-softmax + NLL kernels, and the recorded backward (softmax - onehot) / B * grad.
#include "ops/loss.h"

#include "autograd/engine.h"
#include "ops/cpu/loss.h"
#include "ops/op_utils.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

Tensor cross_entropy(const Tensor& logits, const Tensor& target) {
  const char* name = "cross_entropy";
  check_float(name, logits);
  check_cpu_or_cuda(name, logits);
  if (!target.defined()) fail(name, "undefined target");
  if (target.dtype() != DType::I64) fail(name, "target must be int64 class indices, got " + target.str());
  if (target.device() != logits.device()) fail(name, "device mismatch: logits " + logits.str() + " vs target " + target.str());
  int64_t B = 0, C = 0;
  if (logits.dim() == 2) {
    B = logits.shape()[0];
    C = logits.shape()[1];
    if (target.shape() != Shape{B})
      fail(name, "logits " + logits.str() + " need a target of shape [" + std::to_string(B) + "], got " + target.str());
  } else if (logits.dim() == 1) {
    B = 1;
    C = logits.shape()[0];
    if (target.numel() != 1 || target.dim() > 1)
      fail(name, "logits " + logits.str() + " (one sample) need a scalar or [1] target, got " + target.str());
  } else {
    fail(name, "logits must be (B, C) or (C), got " + logits.str());
  }
  if (B == 0) fail(name, "empty batch: logits " + logits.str());
  if (C == 0) fail(name, "no classes: logits " + logits.str());
  Tensor tc = target.contiguous();
  // Reading the targets on the host synchronises with the device, which a CUDA graph capture
  // (cuda/graph.h) forbids: skipped then. The kernels give an out-of-range target a NaN loss.
  if (!device_capturing(tc.device())) {
    std::vector<int64_t> tv = tc.to_int_vector();
    for (size_t i = 0; i < tv.size(); ++i)
      if (tv[i] < 0 || tv[i] >= C)
        fail(name, "target " + std::to_string(tv[i]) + " (at position " + std::to_string(i) +
                       ") is out of range [0, " + std::to_string(C) + ") for logits " + logits.str());
  }
  Tensor xc = logits.contiguous();
  Tensor loss = Tensor::empty({}, logits.dtype(), logits.device());
  Tensor lse = Tensor::empty({B}, DType::F64, logits.device());
  LM_DISPATCH_COUNTED("cross_entropy_forward", work::cross_entropy_forward(B, C, dtype_size(logits.dtype())), logits.device(),
                      cross_entropy_forward, xc, tc, B, C, loss, lse);
  if (needs_grad({logits})) {
    Tensor xs = xc.detach(), ts = tc.detach();
    Shape shape = logits.shape();
    record(name, {logits}, loss, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gx = Tensor::empty(shape, xs.dtype(), xs.device());
      LM_DISPATCH_COUNTED("cross_entropy_backward", work::cross_entropy_backward(B, C, dtype_size(xs.dtype())), xs.device(),
                          cross_entropy_backward, g, xs, ts, lse, B, C, gx);
      return {gx};
    });
  }
  return loss;
}

}  // namespace lm
