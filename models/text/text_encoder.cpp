// Text-encoder loading (dispatch on the converted file's metadata or a HF folder), the
// default encoder's location and the on-disk embedding cache. Encoders: text_bert.cpp,
// text_conch.cpp; file format and tools: docs/text_encoders.md.
#include "models/text/text_encoder.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "data/libramil_home.h"
#include "data/formats/safetensors.h"
#include "models/text/text_bert.h"
#include "models/text/text_conch.h"
#include "ops/ops.h"

namespace lm::models {

using namespace text_detail;
namespace fs = std::filesystem;

std::string default_encoder_path() {
  return (fs::path(data::libramil_home()) / "encoders" / "all-MiniLM-L6-v2.safetensors").string();
}

std::unique_ptr<TextEncoder> load_text_encoder(const std::string& path_in) {
  const bool is_default = path_in.empty();
  const std::string path = is_default ? default_encoder_path() : path_in;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (is_default)
      fail(path, "the default text encoder (all-MiniLM-L6-v2) is not installed; run tools/setup.sh "
                 "(or tools/setup_default_encoder.sh), or pass an encoder file explicitly");
    fail(path, "no such file or folder");
  }
  if (fs::is_directory(path, ec)) return load_bert_folder(path);
  data::SafetensorsFile f = [&] {
    try {
      return data::read_safetensors(path);
    } catch (const std::exception& e) {
      fail(path, std::string("cannot read the weights: ") + e.what());
    }
  }();
  auto it = f.metadata.find("libramil.encoder");
  if (it == f.metadata.end())
    fail(path, "not a converted text encoder (no metadata entry 'libramil.encoder'); convert the checkpoint "
               "with tools/convert_weights.py conch|bert INPUT OUTPUT.safetensors");
  const std::string id = file_hash(path);
  if (it->second == "conch") return load_conch_converted(f, id);
  if (it->second == "bert") return load_bert_converted(f, id);
  fail(path, "unknown encoder kind '" + it->second + "' in metadata 'libramil.encoder' (expected conch or bert)");
}

Tensor encode_cached(TextEncoder& encoder, const std::vector<std::string>& texts, const std::string& cache_dir) {
  if (cache_dir.empty()) return encoder.encode(texts);
  const int64_t K = (int64_t)texts.size(), D = encoder.dim();
  const fs::path dir = fs::path(cache_dir) / ("text-" + encoder.id());
  auto file_of = [&](const std::string& text) {
    return dir / (hex64(fnv1a64(text.data(), text.size())) + ".safetensors");
  };
  Tensor out = Tensor::zeros({K, D});
  float* dst = out.data<float>();
  std::map<std::string, std::vector<int64_t>> missing;  // text -> rows
  std::vector<std::string> order;
  for (int64_t i = 0; i < K; ++i) {
    const std::string& text = texts[(size_t)i];
    const fs::path p = file_of(text);
    bool hit = false;
    std::error_code ec;
    if (fs::exists(p, ec)) {
      try {
        data::SafetensorsFile f = data::read_safetensors(p.string());
        auto t = f.metadata.find("text");
        auto e = f.metadata.find("encoder");
        if (t != f.metadata.end() && t->second == text && e != f.metadata.end() && e->second == encoder.id() &&
            f.contains("embedding") && f.at("embedding").shape() == Shape{D} && f.at("embedding").dtype() == DType::F32) {
          const Tensor emb = f.at("embedding").contiguous();
          std::copy(emb.data<float>(), emb.data<float>() + D, dst + i * D);
          hit = true;
        }
      } catch (const std::exception& ex) {
        std::cerr << "libramil: ignoring unreadable cached text embedding " << p.string() << ": " << ex.what() << "\n";
      }
    }
    if (!hit) {
      auto [mit, inserted] = missing.try_emplace(text);
      if (inserted) order.push_back(text);
      mit->second.push_back(i);
    }
  }
  if (order.empty()) return out;
  const Tensor emb = encoder.encode(order).contiguous();
  const float* src = emb.data<float>();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir.string(), "cannot create the embedding cache directory: " + ec.message());
  std::set<fs::path> written;
  for (size_t j = 0; j < order.size(); ++j) {
    for (int64_t row : missing[order[j]]) std::copy(src + j * D, src + (j + 1) * D, dst + row * D);
    const fs::path p = file_of(order[j]);
    if (!written.insert(p).second) continue;  // a hash collision within this call: keep the first
    Tensor one = Tensor::empty({D});
    std::copy(src + j * D, src + (j + 1) * D, one.data<float>());
    try {
      data::write_safetensors(p.string(), std::vector<std::pair<std::string, Tensor>>{{"embedding", one}},
                              {{"text", order[j]}, {"encoder", encoder.id()}, {"kind", encoder.kind()}});
    } catch (const std::exception& ex) {  // e.g. a text that is not valid UTF-8 cannot be stored as metadata
      std::cerr << "libramil: not caching a text embedding: " << ex.what() << "\n";
    }
  }
  return out;
}

}  // namespace lm::models
