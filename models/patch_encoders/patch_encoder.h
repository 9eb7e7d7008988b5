// Patch encoders: frozen image networks that turn slide patches into one feature vector each
// (the instances of a MIL bag). Every encoder is loaded from one converted safetensors file
// (tools/convert_weights.py) whose metadata makes it self-describing: libramil.kind
// "patch_encoder", libramil.arch (which network), libramil.feature_dim, and the preprocessing
// (input_size, resize, antialias, mean, std). Encoders, dispatched on the arch in
// patch_encoder.cpp: efficientnet_lite.{h,cpp} (the default, EfficientNet-Lite0) and
// conch_vision.{h,cpp} (CONCH's ViT-B/16, from a user's own converted checkpoint). File format,
// sources and checks: docs/patch_encoders.md.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ops/resize.h"
#include "tensor/tensor.h"

namespace lm::data {
struct SafetensorsFile;
}

namespace lm::models {

// How raw patches become the network's input, from the file's metadata:
// x in [0, 1] (uint8 / 255), resized to input_size x input_size with `resize` (antialiased or
// not, as torch's F.interpolate(align_corners=False)), then (x - mean[c]) / std[c] per channel.
struct PatchPreprocess {
  int64_t input_size = 0;                                 // libramil.input_size
  ResizeMode resize = ResizeMode::bilinear;               // libramil.resize: "bilinear" | "bicubic"
  bool antialias = true;                                  // libramil.antialias: "true" | "false"
  std::vector<double> mean, std;                          // libramil.mean / libramil.std: JSON, 3 each
};

class PatchEncoder {
 public:
  virtual ~PatchEncoder() = default;
  virtual std::string name() const = 0;  // the arch, e.g. "efficientnet_lite0"
  virtual int64_t feature_dim() const = 0;
  const PatchPreprocess& preprocess() const { return preprocess_; }
  Device device() const { return device_; }
  const std::string& path() const { return path_; }  // the file it was loaded from

  // A preprocessed batch (B, 3, S, S) float32 on device() -> (B, feature_dim()) on device().
  virtual Tensor encode(const Tensor& batch) = 0;
  // n RGB uint8 images (h x w x 3, row-major) -> (n, feature_dim()) float32 on device():
  // images_to_tensor -> resize_image to S x S -> normalize_channels -> encode, without autograd,
  // batch_size images at a time.
  Tensor encode_images(const std::vector<const uint8_t*>& rgb, int64_t h, int64_t w);
  int64_t batch_size = 32;

 protected:
  PatchEncoder(PatchPreprocess preprocess, Device device, std::string path)
      : preprocess_(std::move(preprocess)), device_(device), path_(std::move(path)) {}

 private:
  PatchPreprocess preprocess_;
  Device device_;
  std::string path_;
};

// name_or_path: a known encoder name ("efficientnet-lite0"), resolved to
// patch_encoder_path(name), or a converted .safetensors file. The weights go to `device`.
// Errors are one line naming the file: not installed (run tools/setup.sh), unreadable, not a
// patch encoder (e.g. a text encoder file), or an unknown arch.
std::unique_ptr<PatchEncoder> load_patch_encoder(const std::string& name_or_path, Device device = Device::cpu());

// The names load_patch_encoder knows, and where tools/setup.sh installs each:
// $LIBRAMIL_HOME/encoders/<name>.safetensors, LIBRAMIL_HOME defaulting to ~/.cache/libramil.
std::vector<std::string> known_patch_encoders();
std::string patch_encoder_path(const std::string& name);

namespace patch_detail {

// Errors of the patch encoders: "patch encoder '<path>': <what>".
[[noreturn]] void fail(const std::string& path, const std::string& what);
// The preprocessing entries of a converted file's metadata; errors name the key.
PatchPreprocess read_preprocess(const std::map<std::string, std::string>& meta, const std::string& path);
// A metadata entry that must be present (errors name the key and the file).
const std::string& meta_at(const std::map<std::string, std::string>& meta, const std::string& path,
                           const std::string& key);
// The named tensor as contiguous float32 of exactly `shape`, copied to `device`; errors name
// the key, the file and both shapes.
Tensor take(const data::SafetensorsFile& f, const std::string& key, const Shape& shape, Device device);

}  // namespace patch_detail

}  // namespace lm::models
