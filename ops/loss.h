// Losses. cross_entropy takes raw logits (B, C) (or (C) for one sample) and int64 class
// targets (B) (or a scalar / (1)), and returns the mean negative log-likelihood, like
// torch.nn.functional.cross_entropy. Gradient: (softmax(logits) - onehot) / B.
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor cross_entropy(const Tensor& logits, const Tensor& target);

}  // namespace lm
