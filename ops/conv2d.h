// 2-d convolution (NCHW, zero padding that may be asymmetric, groups / depthwise) and adaptive
// average pooling: the ops of the CNN patch encoders (EfficientNet-Lite0, a ViT patch embed).
// Kernels: ops/cpu/conv2d.h, ops/cpu/pool.h, cuda/conv2d.cu. Derivation of the convolution's
// backward: docs/ops/conv2d.md. relu6 lives with the other pointwise maps (ops/elementwise.h).
#pragma once
#include "tensor/tensor.h"

namespace lm {

struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1;
  // zero padding, may be asymmetric (TensorFlow "same" padding pads bottom/right one more)
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t groups = 1;  // groups == C_in == C_out is depthwise
};

// x: (N, C_in, H, W), weight: (C_out, C_in / groups, KH, KW), bias: (C_out) or undefined Tensor()
// -> (N, C_out, OH, OW), OH = (H + pad_top + pad_bottom - KH) / stride_h + 1 (same for W).
// Float32 or float64, CPU or CUDA; gradients to x, weight and bias. Any layout (made packed).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt = {});

// x: (N, C, H, W) -> (N, C, out_h, out_w), PyTorch's adaptive_avg_pool2d bins:
// start = floor(i * H / out_h), end = ceil((i + 1) * H / out_h) (the same for columns).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace lm
