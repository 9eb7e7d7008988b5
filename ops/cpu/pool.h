// CPU kernels for adaptive average pooling over the last two dims of a packed (rows, H, W)
// view (rows = N * C), forward and backward. Bins are PyTorch's adaptive_avg_pool2d bins:
// output row i averages input rows [floor(i H / OH), ceil((i + 1) H / OH)) (the same for
// columns), so neighbouring bins may overlap when H is not a multiple of OH.
#pragma once
#include "tensor/tensor.h"

namespace lm::cpu {

// x: (rows, H, W) packed; out: (rows, OH, OW) packed (written); H, W, OH, OW >= 1.
//   out[r, i, j] = mean of x[r, start_h(i) .. end_h(i) - 1, start_w(j) .. end_w(j) - 1]
// Sums accumulate in float64. Rows run in parallel.
void adaptive_avg_pool2d_forward(const Tensor& x, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                 Tensor& out);

// grad_out: (rows, OH, OW) packed; grad_x: (rows, H, W) packed, overwritten:
//   grad_x[r, h, w] = sum over the bins (i, j) containing (h, w) of grad_out[r, i, j] / |bin (i, j)|
void adaptive_avg_pool2d_backward(const Tensor& grad_out, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                  Tensor& grad_x);

}  // namespace lm::cpu
