// CPU reduction kernels over a (outer, reduced, inner) view of a packed tensor.
#pragma once
#include "tensor/op_kinds.h"
#include "tensor/tensor.h"

namespace lm::cpu {

// x: (outer, reduced, inner) packed; out: (outer, inner) packed.
// Float32 inputs accumulate in float64 for sums.
void reduce_forward(ReduceOp op, const Tensor& x, int64_t outer, int64_t reduced, int64_t inner, Tensor& out);
// argmax over the reduced axis -> out (outer, inner) int64.
void argmax_forward(const Tensor& x, int64_t outer, int64_t reduced, int64_t inner, Tensor& out);

}  // namespace lm::cpu
