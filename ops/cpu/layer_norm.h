// CPU kernels for layer normalisation over the last dimension of a packed (rows, D) view.
// Math and backward derivation: docs/ops/layernorm.md.
#pragma once
#include "tensor/tensor.h"

namespace lm::cpu {

// x: (rows, D) packed float32/float64; weight, bias: (D) packed, or undefined (= 1 / 0);
// out: (rows, D) packed; mean, rstd: (rows) packed, same dtype as x (written).
//   mean = sum(x)/D, var = sum((x-mean)^2)/D (biased), rstd = 1/sqrt(var + eps)
//   out  = (x - mean) * rstd * weight + bias
// Statistics accumulate in float64 (two passes). Rows run in parallel.
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, int64_t rows,
                        int64_t D, Tensor& out, Tensor& mean, Tensor& rstd);

// grad_y, x: (rows, D) packed; weight: (D) or undefined; mean, rstd: (rows) from the forward.
// grad_x: (rows, D) packed, or undefined to skip; grad_weight, grad_bias: (D) packed, or
// undefined to skip. With xhat = (x - mean) * rstd and gw = grad_y * weight:
//   grad_x      = rstd * (gw - mean_D(gw) - xhat * mean_D(gw * xhat))
//   grad_weight = sum_rows(grad_y * xhat),  grad_bias = sum_rows(grad_y)
// The row sums are deterministic: rows are cut into fixed chunks (independent of the thread
// count), each chunk sums into its own float64 partial, and partials are added in chunk order.
void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, int64_t rows, int64_t D, Tensor& grad_x, Tensor& grad_weight,
                         Tensor& grad_bias);

}  // namespace lm::cpu
