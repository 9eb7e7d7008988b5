// Kernel arguments that hold tensors, taken by both backends' kernels (ops/cpu/*.h and
// cuda/kernels.h with the same signatures). Plain kinds and geometries: tensor/op_kinds.h.
#pragma once
#include <cstdint>

#include "tensor/op_kinds.h"
#include "tensor/tensor.h"

namespace lm {

// One axis of a separable image resize, as tensors on the image's device (ops/cpu/resize.h),
// built by ops/resize.cpp from ops/cpu/resize_table.h's ResizeTable. offsets: (dst_size + 1)
// int64; src: (nnz) int64 in [0, src_size); weight: (nnz), the image's dtype. Destination
// d = sum over e in [offsets[d], offsets[d+1]) of weight[e] * source src[e].
struct ResizeAxis {
  int64_t src_size = 0, dst_size = 0;
  Tensor offsets, src, weight;
};

// One parameter's Adam / AdamW update (ops/adam.h): the parameter p, its gradient g and its
// state m (exp_avg), v (exp_avg_sq), all packed, one shape, one dtype (float32 or float64), one
// device; updated in place with the step's constants.
struct AdamParam {
  Tensor p, g, m, v;
  AdamStep step;
};

}  // namespace lm
