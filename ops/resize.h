// Image preprocessing for the patch encoders: resizing (torch's F.interpolate with
// align_corners=False, bilinear / bicubic, with or without antialiasing), per-channel
// normalisation, and packing uint8 RGB images into a float tensor (torchvision's ToTensor).
// Tables and derivation of the backward: ops/cpu/resize_table.h, docs/ops/resize.md.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace lm {

enum class ResizeMode { bilinear, bicubic };

// x: (N, C, H, W) -> (N, C, out_h, out_w). Exactly torch.nn.functional.interpolate(x, size=(out_h, out_w),
// mode='bilinear'|'bicubic', align_corners=False, antialias=antialias) in torch 1.13: separable, rows
// (the last dim) then columns, with precomputed (index, weight) tables per output pixel; with antialias
// and downscaling the kernel support widens by the scale factor; bicubic uses a = -0.5 when antialiased
// and -0.75 when not; non-antialiased bicubic clamps indices at the borders, antialiased modes
// renormalise truncated weights. Float32 / float64, CPU / CUDA; differentiable in x.
Tensor resize_image(const Tensor& x, int64_t out_h, int64_t out_w, ResizeMode mode, bool antialias);

// x: (N, C, H, W), (x - mean[c]) / std[c] (torchvision's Normalize); mean and std have C entries,
// every std > 0 (checked). Differentiable in x: grad_x = grad / std[c].
Tensor normalize_channels(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& std);

// Packs n interleaved RGB uint8 images (each h x w x 3, row-major) into one float32 (n, 3, h, w) tensor
// with values / 255 (torchvision's ToTensor), on the CPU. Not differentiable (plain data).
Tensor images_to_tensor(const std::vector<const uint8_t*>& images, int64_t h, int64_t w);

}  // namespace lm
