// Layer normalisation over the last dimension (PyTorch's nn.functional.layer_norm with
// normalized_shape = (D,)): y = (x - mean) / sqrt(var + eps) * weight + bias, biased
// variance. weight/bias may be undefined. Derivation of the backward: docs/ops/layernorm.md.
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

}  // namespace lm
