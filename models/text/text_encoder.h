// Frozen text encoders that turn prior texts into embeddings: the CONCH text tower and
// BERT-family sentence encoders (all-MiniLM-L6-v2 is the default), loaded from weights
// converted by tools/convert_weights.py (one safetensors file holding the weights, the
// architecture in its metadata and the tokenizer) or from a Hugging Face BERT folder.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lm::models {

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // texts -> (K, Dt) float32, L2-normalised rows. Runs without autograd.
  virtual Tensor encode(const std::vector<std::string>& texts) = 0;
  virtual int64_t dim() const = 0;
  // Identifies the weights (e.g. a hash of the file), used as the embedding-cache key.
  virtual std::string id() const = 0;
  virtual std::string kind() const = 0;  // "conch" | "bert"
};

// path: a converted .safetensors file or a Hugging Face BERT folder with model.safetensors.
// An empty path means the default encoder (default_encoder_path()). Errors name the path.
std::unique_ptr<TextEncoder> load_text_encoder(const std::string& path);

// Where the setup step puts the converted default encoder (all-MiniLM-L6-v2):
// $LIBRAMIL_HOME/encoders/all-MiniLM-L6-v2.safetensors, LIBRAMIL_HOME defaulting to
// ~/.cache/libramil.
std::string default_encoder_path();

// Encodes `texts`, reusing embeddings cached under `cache_dir` by (encoder id, text) hash;
// an empty cache_dir disables the cache.
Tensor encode_cached(TextEncoder& encoder, const std::vector<std::string>& texts, const std::string& cache_dir);

}  // namespace lm::models
