// BERT-family sentence encoder (all-MiniLM-L6-v2 and the like): [CLS] text [SEP] WordPiece
// ids, word + position + token-type-0 embeddings and LayerNorm, post-LN blocks (self-attention
// with an additive padding mask, exact-GELU MLP), mean pooling over the non-pad tokens, L2
// normalisation. Weights in Hugging Face naming without the "bert." prefix (what
// tools/convert_weights.py bert writes, and what a HF folder's model.safetensors holds).
// Also: helpers shared by the text encoders (text_detail).
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/formats/safetensors.h"
#include "data/text/tokenizer.h"
#include "models/text/text_encoder.h"
#include "data/checksum.h"

namespace lm::models {

namespace text_detail {

// Errors of the text encoders: "text encoder '<path>': <what>".
[[noreturn]] void fail(const std::string& path, const std::string& what);

// The named tensor as contiguous float32 of exactly `shape`; errors name the key, the file
// and both shapes (or that the key is missing).
Tensor take(const std::map<std::string, Tensor>& tensors, const std::string& path, const std::string& key,
            const Shape& shape);

// An integer / float metadata entry; errors name the key.
int64_t meta_int(const std::map<std::string, std::string>& meta, const std::string& path, const std::string& key);
double meta_double(const std::map<std::string, std::string>& meta, const std::string& path, const std::string& key);

// FNV-1a 64 of bytes, hex.
using data::fnv1a64;  // data/checksum.h
std::string hex64(uint64_t v);
// Fast content hash of a file: its size, first 8 MiB and last 1 MiB.
std::string file_hash(const std::string& path);

// Prints "libramil: <encoder>: N of M texts longer than the context (C tokens) were truncated"
// to stderr the first time it is called with n > 0 for `flag`.
void warn_truncated_once(std::atomic<bool>& flag, const std::string& who, int64_t n, int64_t total, int64_t context,
                         int64_t longest);

// Indices 0..n-1 sorted (stably) by length, so that batches hold texts of similar length.
std::vector<size_t> order_by_length(const std::vector<int64_t>& lengths);

}  // namespace text_detail

struct BertConfig {
  int64_t layers = 0, width = 0, heads = 0, intermediate = 0, vocab = 0, max_positions = 0, type_vocab = 0;
  int64_t context = 0;  // tokens per text incl. [CLS]/[SEP] (truncation length)
  double eps = 1e-12;
};

class BertEncoder : public TextEncoder {
 public:
  // tensors: HF names ("embeddings.word_embeddings.weight", "encoder.layer.0...."); every
  // tensor is checked against cfg. `path` names errors; `id` is the content hash.
  BertEncoder(const BertConfig& cfg, const std::map<std::string, Tensor>& tensors, data::Tokenizer tokenizer,
              std::string path, std::string id);
  Tensor encode(const std::vector<std::string>& texts) override;
  int64_t dim() const override { return cfg_.width; }
  std::string id() const override { return id_; }
  std::string kind() const override { return "bert"; }
  const BertConfig& config() const { return cfg_; }
  int64_t batch_size = 32;

 private:
  struct Layer {
    Tensor qkv_w, qkv_b, ao_w, ao_b, ln1_w, ln1_b, i_w, i_b, o_w, o_b, ln2_w, ln2_b;
  };
  Tensor forward(const std::vector<std::vector<int64_t>>& ids);  // one padded batch -> (B, D)
  BertConfig cfg_;
  Tensor word_, pos_, type0_, eln_w_, eln_b_;
  std::vector<Layer> layers_;
  data::Tokenizer tok_;
  int64_t pad_id_ = 0;
  std::string path_, id_;
  std::atomic<bool> warned_{false};
};

// A converted file (metadata "libramil.encoder" = "bert").
std::unique_ptr<TextEncoder> load_bert_converted(const data::SafetensorsFile& f, const std::string& id);
// A Hugging Face folder: config.json, model.safetensors, tokenizer.json or vocab.txt
// (sentence_bert_config.json optional, for the context length).
std::unique_ptr<TextEncoder> load_bert_folder(const std::string& folder);

}  // namespace lm::models
