// softmax and log_softmax along one dimension (numerically stable: the row maximum is
// subtracted first). Derivation of the backward: docs/ops/softmax.md.
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace lm
