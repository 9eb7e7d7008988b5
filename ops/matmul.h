// Matrix products. matmul follows NumPy/PyTorch rules for >= 2-d operands: the last two dims
// multiply, leading (batch) dims broadcast. Transposed views (e.g. t(W)) are passed to the
// GEMM as a transpose flag, never copied.
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor matmul(const Tensor& a, const Tensor& b);  // a (..., M, K), b (..., K, N) -> (..., M, N)
// x (..., in) @ weight (out, in)^T + bias (out) -> (..., out). bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace lm
