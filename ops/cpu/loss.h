// CPU kernels for the cross-entropy loss on raw logits (log-softmax + negative
// log-likelihood, fused). Targets are validated by the caller (ops/loss.cpp).
#pragma once
#include "tensor/tensor.h"

namespace lm::cpu {

// logits: (B, C) packed float32/float64; target: (B) int64, each in [0, C);
// loss: one element (written) = mean_b(lse_b - logits[b, target_b]);
// lse: (B) packed float64 (written): the row log-sum-exp, saved for backward (float64 even
// for float32 logits, so that exp(logits - lse) does not inherit the rounding of a large lse).
// Row sums and the mean accumulate in float64.
void cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t B, int64_t C, Tensor& loss,
                           Tensor& lse);

// grad_loss: one element; logits, lse, target as in the forward; grad_logits: (B, C) packed:
//   grad_logits[b, c] = grad_loss / B * (exp(logits[b, c] - lse_b) - [c == target_b])
void cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t B, int64_t C, Tensor& grad_logits);

}  // namespace lm::cpu
