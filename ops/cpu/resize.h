// CPU kernels of the image resize (ops/resize.h) and of normalize_channels: the two passes of a
// separable resize, each one axis's table (ops/cpu/resize_table.h) applied to a packed image,
// and the per-channel affine normalisation. The backward of a pass is the same pass with the
// transposed table (docs/ops/resize.md), so forward and backward share these kernels.
#pragma once
#include <cstdint>

#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lm::cpu {

// ResizeAxis: tensor/kernel_args.h (shared with the CUDA kernels).

// Along the last dim. x: (rows, axis.src_size) packed; out: (rows, axis.dst_size) packed.
// Rows run in parallel; each output sums its taps in table order in x's dtype (as torch).
void resize_horizontal_pass(const Tensor& x, int64_t rows, const ResizeAxis& axis, Tensor& out);

// Along the middle dim. x: (planes, axis.src_size, width) packed; out: (planes, axis.dst_size,
// width) packed. (plane, output row) pairs run in parallel; the loop over width vectorises.
void resize_vertical_pass(const Tensor& x, int64_t planes, int64_t width, const ResizeAxis& axis, Tensor& out);

// x, out: (planes, hw) packed, plane p of channel p % C; mean, sd: (C) packed, x's dtype.
//   out = (x - mean[c]) / sd[c]
void normalize_channels_forward(const Tensor& x, int64_t planes, int64_t C, int64_t hw, const Tensor& mean,
                                const Tensor& sd, Tensor& out);
// grad_y, grad_x: (planes, hw) packed; sd: (C). grad_x = grad_y / sd[c].
void normalize_channels_backward(const Tensor& grad_y, int64_t planes, int64_t C, int64_t hw, const Tensor& sd,
                                 Tensor& grad_x);

}  // namespace lm::cpu
