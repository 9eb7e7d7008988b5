// Optimizer updates on the GPU (cuda/optim.cu), called by models/optim.cpp for parameters that
// live on a CUDA device, so that a training step never copies parameters, gradients or
// optimizer state to the host. No CUDA headers.
#pragma once
#include "tensor/tensor.h"

namespace lm::cuda {

// The per-step constants of one parameter's Adam update (models/optim.cpp, adam_consts).
struct AdamStep {
  double step_size;  // lr / (1 - beta1^step)
  double bc2_sqrt;   // sqrt(1 - beta2^step)
  double decay;      // 1 - lr * weight_decay for AdamW, else 1
  double beta1, beta2, eps, weight_decay;
  bool decoupled;    // AdamW (decay the parameter) rather than Adam's L2 term on the gradient
};

// One Adam / AdamW update, in place: p, m (exp_avg), v (exp_avg_sq) and g, all packed, one
// shape, one dtype (float32 or float64), one CUDA device. The arithmetic is the CPU kernel's
// (models/optim.cpp, adam_range): float64 with the parameter dtype's rounding at the same
// points as torch.optim's implementation. Asynchronous on the current stream.
void adam_update(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamStep& c);

}  // namespace lm::cuda
