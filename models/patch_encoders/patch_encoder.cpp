// Patch-encoder loading: known names -> the setup step's install path, the converted file's
// kind check and arch dispatch, the preprocessing read from its metadata, and encode_images
// (the preprocessing pipeline in front of every encoder). See patch_encoder.h and
// docs/patch_encoders.md.
#include "models/patch_encoders/patch_encoder.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/libramil_home.h"
#include "data/formats/safetensors.h"
#include "models/patch_encoders/conch_vision.h"
#include "models/patch_encoders/efficientnet_lite.h"
#include "ops/ops.h"
#include "ops/resize.h"

namespace lm::models {

namespace fs = std::filesystem;

namespace patch_detail {

void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("patch encoder '" + path + "': " + what);
}

const std::string& meta_at(const std::map<std::string, std::string>& meta, const std::string& path,
                           const std::string& key) {
  auto it = meta.find(key);
  if (it == meta.end()) fail(path, "metadata entry '" + key + "' is missing (re-run tools/convert_weights.py)");
  return it->second;
}

namespace {

std::vector<double> three_numbers(const std::map<std::string, std::string>& meta, const std::string& path,
                                   const std::string& key, bool positive) {
  const std::string& text = meta_at(meta, path, key);
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  std::vector<double> v;
  if (j.is_array() && j.size() == 3)
    for (const auto& e : j)
      if (e.is_number() && (!positive || e.get<double>() > 0)) v.push_back(e.get<double>());
  if (v.size() != 3)
    fail(path, "metadata entry '" + key + "' must be a JSON list of 3 " + (positive ? "positive " : "") +
                   "numbers, got '" + text + "'");
  return v;
}

}  // namespace

PatchPreprocess read_preprocess(const std::map<std::string, std::string>& meta, const std::string& path) {
  PatchPreprocess p;
  const std::string& size = meta_at(meta, path, "libramil.input_size");
  try {
    size_t pos = 0;
    p.input_size = std::stoll(size, &pos);
    if (pos != size.size() || p.input_size <= 0) throw std::invalid_argument("");
  } catch (const std::exception&) {
    fail(path, "metadata entry 'libramil.input_size' is not a positive integer: '" + size + "'");
  }
  const std::string& resize = meta_at(meta, path, "libramil.resize");
  if (resize == "bilinear") p.resize = ResizeMode::bilinear;
  else if (resize == "bicubic") p.resize = ResizeMode::bicubic;
  else fail(path, "metadata entry 'libramil.resize' is '" + resize + "' (expected bilinear or bicubic)");
  const std::string& aa = meta_at(meta, path, "libramil.antialias");
  if (aa != "true" && aa != "false")
    fail(path, "metadata entry 'libramil.antialias' is '" + aa + "' (expected true or false)");
  p.antialias = aa == "true";
  p.mean = three_numbers(meta, path, "libramil.mean", false);
  p.std = three_numbers(meta, path, "libramil.std", true);
  return p;
}

Tensor take(const data::SafetensorsFile& f, const std::string& key, const Shape& shape, Device device) {
  auto it = f.tensors.find(key);
  if (it == f.tensors.end()) fail(f.path, "missing tensor '" + key + "' (expected shape " + shape_str(shape) + ")");
  const Tensor& t = it->second;
  if (t.shape() != shape)
    fail(f.path, "tensor '" + key + "' has shape " + shape_str(t.shape()) + ", expected " + shape_str(shape));
  if (!is_floating(t.dtype()))
    fail(f.path, "tensor '" + key + "' is " + dtype_name(t.dtype()) + ", expected a float type");
  Tensor x = t.dtype() == DType::F32 ? t : t.to(DType::F32);
  // Copy out of the mapping: the encoder outlives the SafetensorsFile.
  return device.is_cpu() ? x.clone() : x.contiguous().to(device);
}

}  // namespace patch_detail

using namespace patch_detail;

namespace {

using Loader = std::unique_ptr<PatchEncoder> (*)(const data::SafetensorsFile&, Device);

// libramil.arch -> loader. A new encoder adds its line here.
const std::map<std::string, Loader>& arch_loaders() {
  static const std::map<std::string, Loader> loaders = {
      {"conch_vit_b16", &load_conch_vision},
      {"efficientnet_lite0", &load_efficientnet_lite},
  };
  return loaders;
}

// Known names -> the install-script hint shown when the file is missing.
const std::map<std::string, std::string>& known_names() {
  static const std::map<std::string, std::string> names = {
      {"efficientnet-lite0", "tools/setup_patch_encoder.sh"},
  };
  return names;
}

}  // namespace

std::vector<std::string> known_patch_encoders() {
  std::vector<std::string> v;
  for (const auto& [name, _] : known_names()) v.push_back(name);
  return v;
}

std::string patch_encoder_path(const std::string& name) {
  return (fs::path(data::libramil_home()) / "encoders" / (name + ".safetensors")).string();
}

std::unique_ptr<PatchEncoder> load_patch_encoder(const std::string& name_or_path, Device device) {
  auto known = known_names().find(name_or_path);
  const std::string path = known != known_names().end() ? patch_encoder_path(name_or_path) : name_or_path;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (known != known_names().end())
      fail(path, "the patch encoder " + name_or_path + " is not installed; run tools/setup.sh (or " + known->second +
                     "), or pass a converted .safetensors file");
    fail(path, "no such file (expected a converted .safetensors file or one of the names: " +
                   [] {
                     std::string s;
                     for (const auto& n : known_patch_encoders()) s += (s.empty() ? "" : ", ") + n;
                     return s;
                   }() +
                   ")");
  }
  if (fs::is_directory(path, ec)) fail(path, "is a folder, not a converted .safetensors file");
  data::SafetensorsFile f = [&] {
    try {
      return data::read_safetensors(path);
    } catch (const std::exception& e) {
      fail(path, std::string("cannot read it as safetensors: ") + e.what());
    }
  }();
  auto kind = f.metadata.find("libramil.kind");
  if (kind == f.metadata.end()) {
    auto text = f.metadata.find("libramil.encoder");
    if (text != f.metadata.end())
      fail(path, "is a text encoder (libramil.encoder = " + text->second + "), not a patch encoder");
    fail(path, "not a converted patch encoder (no metadata entry 'libramil.kind'); convert the weights with "
               "tools/convert_weights.py efficientnet-lite0 IN.pth OUT.safetensors");
  }
  if (kind->second != "patch_encoder")
    fail(path, "is a " + kind->second + " (libramil.kind), not a patch encoder");
  const std::string& arch = meta_at(f.metadata, path, "libramil.arch");
  auto loader = arch_loaders().find(arch);
  if (loader == arch_loaders().end()) {
    std::string names;
    for (const auto& [n, _] : arch_loaders()) names += (names.empty() ? "" : ", ") + n;
    fail(path, "unknown patch-encoder arch '" + arch + "' (libramil.arch; known: " + names + ")");
  }
  return loader->second(f, device);
}

Tensor PatchEncoder::encode_images(const std::vector<const uint8_t*>& rgb, int64_t h, int64_t w) {
  NoGradGuard no_grad;
  const int64_t n = (int64_t)rgb.size(), S = preprocess_.input_size;
  if (h <= 0 || w <= 0)
    throw std::invalid_argument("encode_images: image size " + std::to_string(h) + " x " + std::to_string(w) +
                                " is empty");
  if (n == 0) return Tensor::zeros({0, feature_dim()}, DType::F32, device_);
  if (batch_size < 1) throw std::invalid_argument("encode_images: batch_size must be >= 1");
  std::vector<Tensor> parts;
  for (int64_t s = 0; s < n; s += batch_size) {
    const int64_t e = std::min(n, s + batch_size);
    const std::vector<const uint8_t*> chunk(rgb.begin() + s, rgb.begin() + e);
    Tensor x = images_to_tensor(chunk, h, w);  // (b, 3, h, w) in [0, 1]
    if (x.device() != device_) x = x.to(device_);
    x = resize_image(x, S, S, preprocess_.resize, preprocess_.antialias);
    x = normalize_channels(x, preprocess_.mean, preprocess_.std);
    parts.push_back(encode(x));
  }
  return parts.size() == 1 ? parts[0] : cat(parts, 0);
}

}  // namespace lm::models
