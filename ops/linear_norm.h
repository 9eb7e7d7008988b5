// linear_layer_norm: y = x W^T + b, then LayerNorm over the last dim with weight gamma and bias
// beta, then (optionally) the exact GELU -- the projection heads of Libra-MIL (proj_v is
// Linear -> LayerNorm -> GELU, proj_llm Linear -> LayerNorm) as one op.
//
// On the CPU in float32 it runs the fused kernels of ops/cpu/layer_norm_gelu.h around two or
// three sgemm calls, keeping only y (rows, D) and the row statistics for backward. Elsewhere
// (float64, CUDA tensors, missing affine parameters) it is the composition
// gelu(layer_norm(linear(x, W, b), gamma, beta)), which is also the reference the tests
// compare the fused path against.
#pragma once
#include "tensor/tensor.h"

namespace lm {

// x (..., Din), W (Dout, Din), b (Dout) or undefined, gamma/beta (Dout) or undefined.
Tensor linear_layer_norm(const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& gamma, const Tensor& beta,
                         double eps, bool gelu);

// The same function, always as the composition of the separate ops (for tests and CUDA).
Tensor linear_layer_norm_composed(const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& gamma,
                                  const Tensor& beta, double eps, bool gelu);

}  // namespace lm
