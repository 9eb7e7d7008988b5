// Matrix products. matmul follows NumPy/PyTorch rules for >= 2-d operands: the last two dims
// multiply, leading (batch) dims broadcast. Transposed views (e.g. t(W)) are passed to the
// GEMM as a transpose flag, never copied.
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor matmul(const Tensor& a, const Tensor& b);  // a (..., M, K), b (..., K, N) -> (..., M, N)
// x (..., in) @ weight (out, in)^T + bias (out) -> (..., out). bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// The product a @ b without recording it for autograd, under the profiler label `prof_name`.
// With `into` (2-d operands; a packed CPU tensor of the result's shape and dtype): into += a @ b
// by the GEMM itself (beta = 1), returned -- for a backward that adds its contribution into a
// gradient's running sum (autograd/node.h, accumulation_target).
Tensor matmul_untracked(const Tensor& a, const Tensor& b, const char* prof_name, const Tensor& into = Tensor());

}  // namespace lm
