// CPU kernels for 2-d convolution (NCHW, zero padding, groups), forward and backward.
// 1x1 convolutions are one GEMM per image, other convolutions im2col + GEMM per image and
// group (ops/cpu/gemm.h), depthwise convolutions a direct kernel. Derivations of the backward
// (im2col / col2im views of both gradients): docs/ops/conv2d.md.
#pragma once
#include "tensor/op_kinds.h"
#include "tensor/tensor.h"

namespace lm::cpu {

// Conv2dGeometry: tensor/op_kinds.h (shared with the CUDA kernels).

// x: (N, C_in, H, W) packed; weight: (C_out, C_in / groups, KH, KW) packed; bias: (C_out)
// packed or undefined (= 0); out: (N, C_out, OH, OW) packed (written). All one float dtype.
//   out[n, co, oh, ow] = bias[co] + sum_{ci in group(co), kh, kw}
//       weight[co, ci - group_start, kh, kw] * x[n, ci, oh*sh - pt + kh, ow*sw - pl + kw]
// (x outside [0, H) x [0, W) reads zero).
void conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& g, Tensor& out);

// grad_out: (N, C_out, OH, OW) packed; x, weight: the forward's packed inputs (x may be
// undefined when grad_weight is, weight when grad_x is).
// grad_x: (N, C_in, H, W), grad_weight: (C_out, C_in / groups, KH, KW), grad_bias: (C_out),
// each packed and overwritten, or undefined to skip. Sums over images run in image order
// (same bits for any thread count).
void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Conv2dGeometry& g,
                     Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias);

// ---- building blocks, exposed for tests/test_cuda_emulated.cpp ----------------------------

// One image. x: (C, H, W) packed; col: (C * KH * KW, OH * OW) packed, row (c, kh, kw), column
// (oh, ow): col = x[c, oh*sh - pt + kh, ow*sw - pl + kw], 0 outside the image.
template <class T>
void im2col(const T* x, int64_t C, const Conv2dGeometry& g, T* col);

// The adjoint of im2col, one image. col: (C * KH * KW, OH * OW) packed; x: (C, H, W) packed,
// overwritten with the sum of every col entry that im2col would have read from it.
template <class T>
void col2im(const T* col, int64_t C, const Conv2dGeometry& g, T* x);

// Depthwise (g.depthwise()). x: (N, C, H, W); weight: (C, 1, KH, KW); bias: (C) or nullptr;
// out: (N, C, OH, OW); all packed.
template <class T>
void depthwise_forward(const T* x, const T* weight, const T* bias, const Conv2dGeometry& g, T* out);

// Depthwise backward. grad_out: (N, C, OH, OW); x: (N, C, H, W); weight: (C, 1, KH, KW);
// grad_x: (N, C, H, W) or nullptr; grad_weight: (C, 1, KH, KW) or nullptr; all packed.
template <class T>
void depthwise_backward(const T* grad_out, const T* x, const T* weight, const Conv2dGeometry& g, T* grad_x,
                        T* grad_weight);

}  // namespace lm::cpu
