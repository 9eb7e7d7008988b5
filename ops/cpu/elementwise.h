// CPU kernels for elementwise ops: broadcasting binary ops and parameterised unary maps,
// forward and backward. Inputs are float32 or float64; outputs are packed.
#pragma once
#include "tensor/op_kinds.h"
#include "tensor/tensor.h"

namespace lm::cpu {

// BinaryOp, UnaryOp, UnaryParams: tensor/op_kinds.h (shared with the CUDA kernels).

// out (packed, broadcast shape) = a op b, reading a and b through broadcast strides.
void binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// out (packed, x's shape) = f(x).
void unary_forward(UnaryOp op, const UnaryParams& p, const Tensor& x, Tensor& out);
// grad_x = grad_y * f'(x), given the packed x, y = f(x) and grad_y.
void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& y, const Tensor& grad_y, Tensor& grad_x);

}  // namespace lm::cpu
