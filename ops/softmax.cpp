// softmax / log_softmax: argument checks, the (outer, n, inner) view of the input around the
// softmax dim, dispatch to the kernels, and the recorded backward (which needs only the
// saved output y; derivation in docs/ops/softmax.md).
#include "ops/softmax.h"

#include "autograd/engine.h"
#include "ops/cpu/softmax.h"
#include "ops/op_utils.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

namespace {

Tensor softmax_op(const char* name, const Tensor& x, int64_t dim, bool log) {
  check_float(name, x);
  check_cpu_or_cuda(name, x);
  // A 0-d tensor is a single row of one element (dim 0 or -1), as in torch.
  const int64_t nd = x.dim();
  const int64_t d = wrap_dim(dim, nd == 0 ? 1 : nd, name);
  int64_t outer = 1, n = 1, inner = 1;
  if (nd > 0) {
    for (int64_t i = 0; i < d; ++i) outer *= x.shape()[i];
    n = x.shape()[d];
    for (int64_t i = d + 1; i < nd; ++i) inner *= x.shape()[i];
  }
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  LM_DISPATCH_COUNTED("softmax_forward", work::softmax_forward(x.numel(), dtype_size(x.dtype())), x.device(), softmax_forward,
                      xc, outer, n, inner, log, out);
  if (needs_grad({x})) {
    Tensor ys = out.detach();
    record(name, {x}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      Tensor gx = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
      LM_DISPATCH_COUNTED("softmax_backward", work::softmax_backward(ys.numel(), dtype_size(ys.dtype()), log), ys.device(),
                          softmax_backward, ys, gc, outer, n, inner, log, gx);
      return {gx};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op("softmax", x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_op("log_softmax", x, dim, true); }

}  // namespace lm
