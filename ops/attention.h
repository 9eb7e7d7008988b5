// Scaled dot-product attention over heads:
//   q (B, H, Lq, d), k (B, H, Lk, d), v (B, H, Lk, dv) -> (B, H, Lq, dv)
//   out = softmax(q k^T * scale + mask) v, scale = 1/sqrt(d) unless given (> 0).
// mask (optional): additive float tensor broadcastable to (B, H, Lq, Lk), e.g. 0 / -inf.
// The multi-head module with its projections lives in models/nn/nn.h.
// Derivation of the backward: docs/ops/attention.md.
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& mask = Tensor(), double scale = 0.0);

}  // namespace lm
