// Fused CPU kernels for the row-wise tail of Linear -> LayerNorm [-> GELU] (float32):
// the bias add, the normalisation, the affine map and the exact (erf) GELU in one pass over
// each row, and the whole backward of that tail in two passes per row. The matrix products
// around them (x W^T, dW = dy^T x, dx = dy W) are ordinary sgemm calls made by the op
// (ops/linear_norm.cpp). Derivation: docs/ops/layernorm.md, "Fused Linear + LayerNorm + GELU".
#pragma once
#include <cstdint>

namespace lm::cpu {

// y: (rows, D) holds x W^T on entry; the linear bias `lin_bias` (D, may be null) is added in
// place, so on return y is the pre-normalisation activation that backward needs.
// w, b: LayerNorm weight and bias (D, both required). out: (rows, D). mean, rstd: (rows).
void layer_norm_gelu_forward(float* y, const float* lin_bias, const float* w, const float* b, float eps, int64_t rows,
                             int64_t D, bool gelu, float* out, float* mean, float* rstd);

// g: dL/d(out) (rows, D). Writes gy = dL/dy (rows, D); and, when non-null, gw, gb = dL/d(LN
// weight, LN bias) and gcol = column sums of gy (= dL/d(linear bias)), each (D). The column
// reductions go through fixed chunks of rows added in a fixed order: the same bits for any
// thread count.
void layer_norm_gelu_backward(const float* g, const float* y, const float* w, const float* b, const float* mean,
                              const float* rstd, int64_t rows, int64_t D, bool gelu, float* gy, float* gw, float* gb,
                              float* gcol);

}  // namespace lm::cpu
