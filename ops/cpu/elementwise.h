// CPU kernels for elementwise ops: broadcasting binary ops and parameterised unary maps,
// forward and backward. Inputs are float32 or float64; outputs are packed.
#pragma once
#include "tensor/tensor.h"

namespace lm::cpu {

// Eq: 1 where x == y, else 0 (NaN equals nothing); not differentiable (ops::eq records no grad).
enum class BinaryOp { Add, Sub, Mul, Div, Eq };
enum class UnaryOp { Neg, Exp, Log, Sqrt, Pow, Abs, Clamp, Relu, Relu6, Sigmoid, Tanh, Gelu, AddScalar, MulScalar, RSubScalar };

struct UnaryParams {
  double p0 = 0, p1 = 0;  // Pow: exponent; Clamp: lo, hi; *Scalar: the scalar
};

// out (packed, broadcast shape) = a op b, reading a and b through broadcast strides.
void binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// out (packed, x's shape) = f(x).
void unary_forward(UnaryOp op, const UnaryParams& p, const Tensor& x, Tensor& out);
// grad_x = grad_y * f'(x), given the packed x, y = f(x) and grad_y.
void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& y, const Tensor& grad_y, Tensor& grad_x);

}  // namespace lm::cpu
