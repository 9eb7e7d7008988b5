// EfficientNet-Lite (Tan and Le 2019; TensorFlow's efficientnet/lite builder): the default patch
// encoder, EfficientNet-Lite0 with its ImageNet weights, as tools/convert_weights.py
// efficientnet-lite0 writes it: every BatchNorm already folded into the conv before it, so each
// layer is one conv2d with a bias. The network, from the file's metadata:
//   stem:   conv k x k / stride s (3 x 3 / 2, 3 -> 32), ReLU6
//   blocks: MBConv (no squeeze-and-excitation in lite models), each
//             expand    1 x 1 conv in -> in * e, ReLU6          (only when e != 1)
//             depthwise k x k conv / stride, groups = channels, ReLU6
//             project   1 x 1 conv -> out                       (linear)
//             + the block input when "residual" (stride 1, in == out)
//   head:   1 x 1 conv -> feature_dim (1280), ReLU6, global average pool -> (B, 1280)
//           (no dropout, no classifier).
// Every conv pads as TensorFlow's "SAME", computed from the actual input size of that layer:
// total = max((ceil(H / s) - 1) * s + k - H, 0), top = total / 2, bottom = total - top (the
// odd pixel goes to the bottom / right), which is the package's Conv2dStaticSamePadding for 224
// inputs (tested against its values).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/patch_encoders/patch_encoder.h"

namespace lm::data {
struct SafetensorsFile;
}

namespace lm::models {

// TensorFlow "SAME" padding of one axis of `size` pixels for a kernel / stride.
struct SamePadding {
  int64_t before = 0, after = 0;
};
SamePadding tf_same_padding(int64_t size, int64_t kernel, int64_t stride);

class EfficientNetLite : public PatchEncoder {
 public:
  // One MBConv block: its shape (from libramil.blocks) and folded weights.
  struct Block {
    int64_t kernel = 3, stride = 1, expand = 1, in = 0, out = 0;
    bool residual = false;
    Tensor expand_w, expand_b;  // (in * expand, in, 1, 1), (in * expand); undefined when expand == 1
    Tensor dw_w, dw_b;          // (C, 1, k, k), (C) with C = in * expand
    Tensor proj_w, proj_b;      // (out, C, 1, 1), (out)
  };

  // Reads the architecture from f's metadata (libramil.arch, feature_dim, stem, blocks) and
  // the weights (stem.*, blocks.{i}.expand|depthwise|project.*, head.*), checking every shape;
  // moves them to `device`. Errors name the file.
  EfficientNetLite(const data::SafetensorsFile& f, Device device);

  std::string name() const override { return arch_; }
  int64_t feature_dim() const override { return feature_dim_; }
  // (B, 3, H, W) float32 on device() -> (B, feature_dim()); any H, W >= 1 (the padding follows
  // the input), although the weights were trained at preprocess().input_size.
  Tensor encode(const Tensor& batch) override;
  const std::vector<Block>& blocks() const { return blocks_; }

 private:
  std::string arch_;
  int64_t feature_dim_ = 0, stem_kernel_ = 3, stem_stride_ = 2;
  Tensor stem_w_, stem_b_, head_w_, head_b_;
  std::vector<Block> blocks_;
};

// The arch loader registered for "efficientnet_lite0" in patch_encoder.cpp.
std::unique_ptr<PatchEncoder> load_efficientnet_lite(const data::SafetensorsFile& f, Device device);

}  // namespace lm::models
