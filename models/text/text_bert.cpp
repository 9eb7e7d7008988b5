// BERT sentence encoder and the helpers shared by the text encoders. See text_bert.h.
#include "models/text/text_bert.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <numeric>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "ops/ops.h"

namespace lm::models {

namespace text_detail {

void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("text encoder '" + path + "': " + what);
}

Tensor take(const std::map<std::string, Tensor>& tensors, const std::string& path, const std::string& key,
            const Shape& shape) {
  auto it = tensors.find(key);
  if (it == tensors.end()) fail(path, "missing tensor '" + key + "' (expected shape " + shape_str(shape) + ")");
  const Tensor& t = it->second;
  if (t.shape() != shape)
    fail(path, "tensor '" + key + "' has shape " + shape_str(t.shape()) + ", expected " + shape_str(shape));
  if (!is_floating(t.dtype())) fail(path, "tensor '" + key + "' is " + dtype_name(t.dtype()) + ", expected a float type");
  Tensor f = t.dtype() == DType::F32 ? t : t.to(DType::F32);
  // Copy out of the mapping: the encoder outlives the SafetensorsFile.
  return f.clone();
}

int64_t meta_int(const std::map<std::string, std::string>& meta, const std::string& path, const std::string& key) {
  auto it = meta.find(key);
  if (it == meta.end()) fail(path, "metadata entry '" + key + "' is missing (re-run tools/convert_weights.py)");
  try {
    size_t pos = 0;
    long long v = std::stoll(it->second, &pos);
    if (pos != it->second.size() || v <= 0) throw std::invalid_argument("");
    return v;
  } catch (const std::exception&) {
    fail(path, "metadata entry '" + key + "' is not a positive integer: '" + it->second + "'");
  }
}

double meta_double(const std::map<std::string, std::string>& meta, const std::string& path, const std::string& key) {
  auto it = meta.find(key);
  if (it == meta.end()) fail(path, "metadata entry '" + key + "' is missing (re-run tools/convert_weights.py)");
  try {
    size_t pos = 0;
    double v = std::stod(it->second, &pos);
    if (pos != it->second.size() || !(v > 0)) throw std::invalid_argument("");
    return v;
  } catch (const std::exception&) {
    fail(path, "metadata entry '" + key + "' is not a positive number: '" + it->second + "'");
  }
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

std::string file_hash(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open the file");
  f.seekg(0, std::ios::end);
  const uint64_t size = (uint64_t)f.tellg();
  uint64_t h = fnv1a64(&size, sizeof size);
  auto hash_range = [&](uint64_t from, uint64_t n) {
    std::vector<char> buf(1 << 20);
    f.clear();
    f.seekg((std::streamoff)from);
    while (n > 0) {
      const size_t want = (size_t)std::min<uint64_t>(n, buf.size());
      f.read(buf.data(), (std::streamsize)want);
      const size_t got = (size_t)f.gcount();
      if (got == 0) break;
      h = fnv1a64(buf.data(), got, h);
      n -= got;
    }
  };
  const uint64_t head = std::min<uint64_t>(size, 8ull << 20);
  hash_range(0, head);
  if (size > head) {
    const uint64_t tail = std::min<uint64_t>(size - head, 1ull << 20);
    hash_range(size - tail, tail);
  }
  return hex64(h);
}

void warn_truncated_once(std::atomic<bool>& flag, const std::string& who, int64_t n, int64_t total, int64_t context,
                         int64_t longest) {
  if (n <= 0 || flag.exchange(true)) return;
  std::cerr << "libramil: " << who << ": " << n << " of " << total << " text(s) exceed the context of " << context
            << " tokens (longest: " << longest << ") and were truncated (reported once)\n";
}

std::vector<size_t> order_by_length(const std::vector<int64_t>& lengths) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
  return order;
}

}  // namespace text_detail

using namespace text_detail;

BertEncoder::BertEncoder(const BertConfig& cfg, const std::map<std::string, Tensor>& T, data::Tokenizer tokenizer,
                         std::string path, std::string id)
    : cfg_(cfg), tok_(std::move(tokenizer)), path_(std::move(path)), id_(std::move(id)) {
  const int64_t D = cfg.width, I = cfg.intermediate;
  if (D % cfg.heads != 0)
    fail(path_, "width " + std::to_string(D) + " is not divisible by " + std::to_string(cfg.heads) + " heads");
  if (cfg_.context > cfg.max_positions) cfg_.context = cfg.max_positions;
  if (cfg_.context < 2) fail(path_, "context " + std::to_string(cfg_.context) + " is too short");
  if (tok_.vocab_size() > cfg.vocab)
    fail(path_, "the tokenizer has " + std::to_string(tok_.vocab_size()) + " ids but the embedding table has " +
                    std::to_string(cfg.vocab) + " rows");
  word_ = take(T, path_, "embeddings.word_embeddings.weight", {cfg.vocab, D});
  pos_ = take(T, path_, "embeddings.position_embeddings.weight", {cfg.max_positions, D});
  type0_ = select(take(T, path_, "embeddings.token_type_embeddings.weight", {cfg.type_vocab, D}), 0, 0).contiguous();
  eln_w_ = take(T, path_, "embeddings.LayerNorm.weight", {D});
  eln_b_ = take(T, path_, "embeddings.LayerNorm.bias", {D});
  for (int64_t i = 0; i < cfg.layers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i) + ".";
    Layer L;
    L.qkv_w = cat({take(T, path_, p + "attention.self.query.weight", {D, D}),
                   take(T, path_, p + "attention.self.key.weight", {D, D}),
                   take(T, path_, p + "attention.self.value.weight", {D, D})},
                  0);
    L.qkv_b = cat({take(T, path_, p + "attention.self.query.bias", {D}), take(T, path_, p + "attention.self.key.bias", {D}),
                   take(T, path_, p + "attention.self.value.bias", {D})},
                  0);
    L.ao_w = take(T, path_, p + "attention.output.dense.weight", {D, D});
    L.ao_b = take(T, path_, p + "attention.output.dense.bias", {D});
    L.ln1_w = take(T, path_, p + "attention.output.LayerNorm.weight", {D});
    L.ln1_b = take(T, path_, p + "attention.output.LayerNorm.bias", {D});
    L.i_w = take(T, path_, p + "intermediate.dense.weight", {I, D});
    L.i_b = take(T, path_, p + "intermediate.dense.bias", {I});
    L.o_w = take(T, path_, p + "output.dense.weight", {D, I});
    L.o_b = take(T, path_, p + "output.dense.bias", {D});
    L.ln2_w = take(T, path_, p + "output.LayerNorm.weight", {D});
    L.ln2_b = take(T, path_, p + "output.LayerNorm.bias", {D});
    layers_.push_back(std::move(L));
  }
  pad_id_ = tok_.pad_id();
}

Tensor BertEncoder::forward(const std::vector<std::vector<int64_t>>& ids) {
  const int64_t B = (int64_t)ids.size(), D = cfg_.width, H = cfg_.heads, dh = D / H;
  int64_t L = 0;
  for (const auto& s : ids) L = std::max<int64_t>(L, (int64_t)s.size());
  std::vector<int64_t> flat((size_t)(B * L), pad_id_);
  std::vector<float> mask((size_t)(B * L), -std::numeric_limits<float>::infinity());
  std::vector<float> keep((size_t)(B * L), 0.f);
  for (int64_t b = 0; b < B; ++b)
    for (size_t j = 0; j < ids[b].size(); ++j) {
      flat[(size_t)(b * L) + j] = ids[b][j];
      mask[(size_t)(b * L) + j] = 0.f;
      keep[(size_t)(b * L) + j] = 1.f;
    }
  const Tensor add_mask = Tensor::from_vector(mask, {B, 1, 1, L});
  const Tensor keep_t = Tensor::from_vector(keep, {B, L, 1});

  Tensor x = reshape(index_select(word_, 0, Tensor::from_vector(flat, {B * L})), {B, L, D});
  x = add(add(x, slice(pos_, 0, 0, L)), type0_);
  x = layer_norm(x, eln_w_, eln_b_, cfg_.eps);
  for (const Layer& ly : layers_) {
    const Tensor qkv = linear(x, ly.qkv_w, ly.qkv_b);  // (B, L, 3D)
    auto heads = [&](int64_t j) { return permute(reshape(slice(qkv, 2, j * D, (j + 1) * D), {B, L, H, dh}), {0, 2, 1, 3}); };
    Tensor ctx = scaled_dot_product_attention(heads(0), heads(1), heads(2), add_mask);  // (B, H, L, dh)
    ctx = reshape(permute(ctx, {0, 2, 1, 3}), {B, L, D});
    x = layer_norm(add(linear(ctx, ly.ao_w, ly.ao_b), x), ly.ln1_w, ly.ln1_b, cfg_.eps);
    const Tensor h = gelu(linear(x, ly.i_w, ly.i_b));
    x = layer_norm(add(linear(h, ly.o_w, ly.o_b), x), ly.ln2_w, ly.ln2_b, cfg_.eps);
  }
  const Tensor summed = sum(mul(x, keep_t), {1});             // (B, D)
  const Tensor count = clamp(sum(keep_t, {1}), 1e-9, 1e300);  // (B, 1)
  return l2_normalize(div(summed, count), -1);
}

Tensor BertEncoder::encode(const std::vector<std::string>& texts) {
  NoGradGuard no_grad;
  const int64_t K = (int64_t)texts.size(), D = cfg_.width;
  Tensor out = Tensor::zeros({K, D});
  if (K == 0) return out;
  std::vector<std::vector<int64_t>> ids((size_t)K);
  std::vector<int64_t> lengths((size_t)K);
  int64_t n_trunc = 0, longest = 0;
  for (int64_t i = 0; i < K; ++i) {
    data::Encoding e = tok_.encode_full(texts[(size_t)i], cfg_.context);
    if (e.truncated) {
      ++n_trunc;
      longest = std::max(longest, e.untruncated_length);
    }
    ids[(size_t)i] = std::move(e.ids);
    lengths[(size_t)i] = (int64_t)ids[(size_t)i].size();
  }
  warn_truncated_once(warned_, "text encoder (bert)", n_trunc, K, cfg_.context, longest);
  const std::vector<size_t> order = order_by_length(lengths);
  float* dst = out.data<float>();
  for (size_t s = 0; s < order.size(); s += (size_t)batch_size) {
    const size_t e = std::min(order.size(), s + (size_t)batch_size);
    std::vector<std::vector<int64_t>> batch;
    for (size_t j = s; j < e; ++j) batch.push_back(ids[order[j]]);
    const Tensor emb = forward(batch).contiguous();
    const float* src = emb.data<float>();
    for (size_t j = s; j < e; ++j)
      std::copy(src + (j - s) * (size_t)D, src + (j - s + 1) * (size_t)D, dst + order[j] * (size_t)D);
  }
  return out;
}

namespace {

BertConfig config_from_meta(const data::SafetensorsFile& f) {
  BertConfig c;
  const auto& m = f.metadata;
  c.layers = meta_int(m, f.path, "libramil.layers");
  c.width = meta_int(m, f.path, "libramil.width");
  c.heads = meta_int(m, f.path, "libramil.heads");
  c.intermediate = meta_int(m, f.path, "libramil.intermediate");
  c.vocab = meta_int(m, f.path, "libramil.vocab");
  c.max_positions = meta_int(m, f.path, "libramil.max_positions");
  c.type_vocab = meta_int(m, f.path, "libramil.type_vocab");
  c.context = meta_int(m, f.path, "libramil.context");
  c.eps = meta_double(m, f.path, "libramil.layer_norm_eps");
  return c;
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::unique_ptr<TextEncoder> load_bert_converted(const data::SafetensorsFile& f, const std::string& id) {
  const BertConfig c = config_from_meta(f);
  auto it = f.metadata.find("libramil.tokenizer");
  if (it == f.metadata.end()) fail(f.path, "metadata entry 'libramil.tokenizer' is missing (re-run tools/convert_weights.py)");
  data::Tokenizer tok = [&] {
    try {
      return data::Tokenizer::from_json_string(it->second, f.path + " (metadata libramil.tokenizer)");
    } catch (const std::exception& e) {
      fail(f.path, std::string("the stored tokenizer is invalid: ") + e.what());
    }
  }();
  return std::make_unique<BertEncoder>(c, f.tensors, std::move(tok), f.path, id);
}

std::unique_ptr<TextEncoder> load_bert_folder(const std::string& folder) {
  namespace fs = std::filesystem;
  const fs::path dir(folder);
  const fs::path cfg_path = dir / "config.json", st_path = dir / "model.safetensors";
  if (!fs::exists(cfg_path)) fail(folder, "not a Hugging Face BERT folder: config.json is missing");
  if (!fs::exists(st_path)) {
    if (fs::exists(dir / "pytorch_model.bin"))
      fail(folder, "holds pytorch_model.bin but no model.safetensors; convert it with "
                   "`tools/convert_weights.py bert " + folder + " OUT.safetensors`");
    fail(folder, "model.safetensors is missing");
  }
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(read_file_text(cfg_path.string()));
  } catch (const nlohmann::json::exception& e) {
    fail(cfg_path.string(), std::string("not valid JSON: ") + e.what());
  }
  auto get_int = [&](const char* key, int64_t def) -> int64_t {
    if (!cfg.contains(key)) {
      if (def > 0) return def;
      fail(cfg_path.string(), std::string("missing entry '") + key + "'");
    }
    if (!cfg[key].is_number_integer() || cfg[key].get<int64_t>() <= 0)
      fail(cfg_path.string(), std::string("entry '") + key + "' is not a positive integer");
    return cfg[key].get<int64_t>();
  };
  const std::string act = cfg.value("hidden_act", std::string("gelu"));
  if (act != "gelu") fail(cfg_path.string(), "hidden_act '" + act + "' is not supported (only exact 'gelu')");
  if (cfg.value("position_embedding_type", std::string("absolute")) != "absolute")
    fail(cfg_path.string(), "position_embedding_type must be 'absolute'");
  BertConfig c;
  c.layers = get_int("num_hidden_layers", 0);
  c.width = get_int("hidden_size", 0);
  c.heads = get_int("num_attention_heads", 0);
  c.intermediate = get_int("intermediate_size", 0);
  c.vocab = get_int("vocab_size", 0);
  c.max_positions = get_int("max_position_embeddings", 512);
  c.type_vocab = get_int("type_vocab_size", 2);
  c.eps = cfg.contains("layer_norm_eps") && cfg["layer_norm_eps"].is_number() ? cfg["layer_norm_eps"].get<double>() : 1e-12;

  data::Tokenizer tok = [&] {
    try {
      if (fs::exists(dir / "tokenizer.json")) return data::Tokenizer::from_file((dir / "tokenizer.json").string());
      if (fs::exists(dir / "vocab.txt")) return data::Tokenizer::from_file((dir / "vocab.txt").string());
    } catch (const std::exception& e) {
      fail(folder, std::string("cannot load the tokenizer: ") + e.what());
    }
    fail(folder, "neither tokenizer.json nor vocab.txt");
  }();
  // Context: sentence_bert_config.json's max_seq_length, else the tokenizer's truncation
  // length, else max_position_embeddings (as tools/convert_weights.py).
  c.context = c.max_positions;
  if (fs::exists(dir / "sentence_bert_config.json")) {
    try {
      auto sb = nlohmann::json::parse(read_file_text((dir / "sentence_bert_config.json").string()));
      if (sb.contains("max_seq_length") && sb["max_seq_length"].is_number_integer())
        c.context = std::min(c.max_positions, sb["max_seq_length"].get<int64_t>());
    } catch (const nlohmann::json::exception& e) {
      fail((dir / "sentence_bert_config.json").string(), std::string("not valid JSON: ") + e.what());
    }
  } else if (tok.file_max_length() > 0) {
    c.context = std::min(c.max_positions, tok.file_max_length());
  }

  data::SafetensorsFile f = [&] {
    try {
      return data::read_safetensors(st_path.string());
    } catch (const std::exception& e) {
      fail(folder, e.what());
    }
  }();
  // Canonical names: no "bert." prefix, LayerNorm gamma/beta -> weight/bias.
  std::map<std::string, Tensor> T;
  for (const auto& [name, t] : f.tensors) {
    std::string k = name.rfind("bert.", 0) == 0 ? name.substr(5) : name;
    for (auto [from, to] : {std::pair<std::string, std::string>{"LayerNorm.gamma", "LayerNorm.weight"},
                            {"LayerNorm.beta", "LayerNorm.bias"}}) {
      auto pos = k.find(from);
      if (pos != std::string::npos) k.replace(pos, from.size(), to);
    }
    T[k] = t;
  }
  std::string id = file_hash(st_path.string());
  for (const char* name : {"tokenizer.json", "vocab.txt", "config.json", "sentence_bert_config.json"})
    if (fs::exists(dir / name)) id += file_hash((dir / name).string());
  id = hex64(fnv1a64(id.data(), id.size(), fnv1a64(&c.context, sizeof c.context)));
  return std::make_unique<BertEncoder>(c, T, std::move(tok), st_path.string(), id);
}

}  // namespace lm::models
