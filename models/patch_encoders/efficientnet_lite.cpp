// EfficientNet-Lite on the engine's ops (conv2d, relu6, add, adaptive_avg_pool2d): the network
// from a converted file's metadata and BN-folded weights. See efficientnet_lite.h and
// docs/patch_encoders.md; reference: tools/patch_encoder_reference.py (the PyTorch package).
#include "models/patch_encoders/efficientnet_lite.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "data/formats/safetensors.h"
#include "ops/conv2d.h"
#include "ops/ops.h"

namespace lm::models {

using namespace patch_detail;

SamePadding tf_same_padding(int64_t size, int64_t kernel, int64_t stride) {
  const int64_t out = (size + stride - 1) / stride;  // ceil(size / stride)
  const int64_t total = std::max<int64_t>((out - 1) * stride + kernel - size, 0);
  return {total / 2, total - total / 2};
}

namespace {

nlohmann::json parse_json(const data::SafetensorsFile& f, const std::string& key) {
  const std::string& text = meta_at(f.metadata, f.path, key);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) fail(f.path, "metadata entry '" + key + "' is not valid JSON");
  return j;
}

// A positive integer field of a JSON object in metadata entry `key`.
int64_t field(const data::SafetensorsFile& f, const std::string& key, const nlohmann::json& obj,
              const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_number_integer() || it->get<int64_t>() < 1)
    fail(f.path, "metadata entry '" + key + "': every entry needs a positive integer '" + name + "', got " +
                     obj.dump());
  return it->get<int64_t>();
}

// conv2d with TensorFlow "SAME" padding for this input's height and width.
Tensor conv_same(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t groups = 1) {
  const int64_t kh = w.size(2), kw = w.size(3);
  const SamePadding ph = tf_same_padding(x.size(2), kh, stride), pw = tf_same_padding(x.size(3), kw, stride);
  Conv2dOptions opt;
  opt.stride_h = opt.stride_w = stride;
  opt.pad_top = ph.before, opt.pad_bottom = ph.after;
  opt.pad_left = pw.before, opt.pad_right = pw.after;
  opt.groups = groups;
  return conv2d(x, w, b, opt);
}

}  // namespace

EfficientNetLite::EfficientNetLite(const data::SafetensorsFile& f, Device device)
    : PatchEncoder(read_preprocess(f.metadata, f.path), device, f.path) {
  arch_ = meta_at(f.metadata, f.path, "libramil.arch");
  {
    const std::string& d = meta_at(f.metadata, f.path, "libramil.feature_dim");
    try {
      size_t pos = 0;
      feature_dim_ = std::stoll(d, &pos);
      if (pos != d.size() || feature_dim_ <= 0) throw std::invalid_argument("");
    } catch (const std::exception&) {
      fail(f.path, "metadata entry 'libramil.feature_dim' is not a positive integer: '" + d + "'");
    }
  }
  // Optional entries that name what this reader implements; anything else is refused.
  for (const auto& [key, want] : {std::pair<const char*, const char*>{"libramil.activation", "relu6"},
                                  std::pair<const char*, const char*>{"libramil.padding", "tf_same"}}) {
    auto it = f.metadata.find(key);
    if (it != f.metadata.end() && it->second != want)
      fail(f.path, std::string("metadata entry '") + key + "' is '" + it->second + "'; only " + want +
                       " is implemented");
  }
  const nlohmann::json stem = parse_json(f, "libramil.stem");
  if (!stem.is_object()) fail(f.path, "metadata entry 'libramil.stem' must be a JSON object");
  stem_kernel_ = field(f, "libramil.stem", stem, "kernel");
  stem_stride_ = field(f, "libramil.stem", stem, "stride");
  const int64_t stem_out = field(f, "libramil.stem", stem, "out");
  stem_w_ = take(f, "stem.weight", {stem_out, 3, stem_kernel_, stem_kernel_}, device);
  stem_b_ = take(f, "stem.bias", {stem_out}, device);

  const nlohmann::json blocks = parse_json(f, "libramil.blocks");
  if (!blocks.is_array() || blocks.empty())
    fail(f.path, "metadata entry 'libramil.blocks' must be a non-empty JSON list");
  int64_t channels = stem_out;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const nlohmann::json& o = blocks[i];
    if (!o.is_object()) fail(f.path, "metadata entry 'libramil.blocks': entry " + std::to_string(i) + " is not an object");
    Block b;
    b.kernel = field(f, "libramil.blocks", o, "kernel");
    b.stride = field(f, "libramil.blocks", o, "stride");
    b.expand = field(f, "libramil.blocks", o, "expand");
    b.in = field(f, "libramil.blocks", o, "in");
    b.out = field(f, "libramil.blocks", o, "out");
    auto r = o.find("residual");
    if (r == o.end() || !r->is_boolean())
      fail(f.path, "metadata entry 'libramil.blocks': entry " + std::to_string(i) + " needs a boolean 'residual'");
    b.residual = r->get<bool>();
    const std::string p = "blocks." + std::to_string(i) + ".";
    if (b.in != channels)
      fail(f.path, "block " + std::to_string(i) + " takes " + std::to_string(b.in) + " channels but receives " +
                       std::to_string(channels));
    if (b.residual && (b.stride != 1 || b.in != b.out))
      fail(f.path, "block " + std::to_string(i) + " is marked residual but has stride " + std::to_string(b.stride) +
                       " and " + std::to_string(b.in) + " -> " + std::to_string(b.out) + " channels");
    const int64_t C = b.in * b.expand;
    if (b.expand != 1) {
      b.expand_w = take(f, p + "expand.weight", {C, b.in, 1, 1}, device);
      b.expand_b = take(f, p + "expand.bias", {C}, device);
    } else if (f.contains(p + "expand.weight")) {
      fail(f.path, "block " + std::to_string(i) + " has expand 1 but a tensor '" + p + "expand.weight'");
    }
    b.dw_w = take(f, p + "depthwise.weight", {C, 1, b.kernel, b.kernel}, device);
    b.dw_b = take(f, p + "depthwise.bias", {C}, device);
    b.proj_w = take(f, p + "project.weight", {b.out, C, 1, 1}, device);
    b.proj_b = take(f, p + "project.bias", {b.out}, device);
    channels = b.out;
    blocks_.push_back(std::move(b));
  }
  head_w_ = take(f, "head.weight", {feature_dim_, channels, 1, 1}, device);
  head_b_ = take(f, "head.bias", {feature_dim_}, device);
  // Every tensor of the file must have been used: a name this reader does not know means a
  // file for some other network.
  size_t used = 4;
  for (const Block& b : blocks_) used += b.expand != 1 ? 6 : 4;
  if (f.tensors.size() != used)
    fail(f.path, "holds " + std::to_string(f.tensors.size()) + " tensors, expected " + std::to_string(used) +
                     " for its libramil.blocks");
}

Tensor EfficientNetLite::encode(const Tensor& batch) {
  if (batch.dim() != 4 || batch.size(1) != 3)
    fail(path(), "encode expects a (B, 3, H, W) batch, got " + shape_str(batch.shape()));
  if (batch.dtype() != DType::F32) fail(path(), std::string("encode expects float32, got ") + dtype_name(batch.dtype()));
  if (batch.device() != device())
    fail(path(), "encode: the batch is on " + batch.device().str() + " but the weights are on " + device().str());
  Tensor x = relu6(conv_same(batch, stem_w_, stem_b_, stem_stride_));
  for (const Block& b : blocks_) {
    Tensor h = b.expand != 1 ? relu6(conv_same(x, b.expand_w, b.expand_b, 1)) : x;
    h = relu6(conv_same(h, b.dw_w, b.dw_b, b.stride, /*groups=*/h.size(1)));
    h = conv_same(h, b.proj_w, b.proj_b, 1);
    x = b.residual ? add(h, x) : h;
  }
  x = relu6(conv_same(x, head_w_, head_b_, 1));
  return reshape(adaptive_avg_pool2d(x, 1, 1), {batch.size(0), feature_dim_});
}

std::unique_ptr<PatchEncoder> load_efficientnet_lite(const data::SafetensorsFile& f, Device device) {
  return std::make_unique<EfficientNetLite>(f, device);
}

}  // namespace lm::models
