// The CONCH text tower (CoCa / open_clip TextTransformer with a CLS token), exactly as
// docs/SPEC.md "Text encoders" describes it:
//   ids: byte-level BPE with specials, truncated / padded to 127 (CONCH's tokenize() pads to
//   128 and encode_text drops the last id again), token_embedding, the learned cls_emb appended
//   as position 128, + positional_embedding; residual pre-LN blocks
//   x += out_proj(MHA(ln_1(x))) (fused in_proj), x += c_proj(GELU(c_fc(ln_2(x))));
//   attention mask: causal for every row, and the CLS row may attend key p when p == 0 or
//   token p-1 is not pad (open_clip's build_cls_mask, one-position shift included);
//   output: l2_normalize(ln_final(x[CLS]) @ text_projection).
// Weights as tools/convert_weights.py conch writes them: the checkpoint's `text.` keys without
// the prefix ("token_embedding.weight", "transformer.resblocks.0.attn.in_proj_weight", ...).
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/formats/safetensors.h"
#include "data/text/tokenizer.h"
#include "models/text/text_encoder.h"
#include "models/nn/transformer_block.h"

namespace lm::models {

struct ConchConfig {
  int64_t layers = 12, width = 768, heads = 12, intermediate = 3072, vocab = 32007, context = 128, embed_dim = 512;
  double eps = 1e-5;
};

class ConchTextEncoder : public TextEncoder {
 public:
  ConchTextEncoder(const ConchConfig& cfg, const std::map<std::string, Tensor>& tensors, data::Tokenizer tokenizer,
                   std::string path, std::string id);
  Tensor encode(const std::vector<std::string>& texts) override;
  int64_t dim() const override { return cfg_.embed_dim; }
  std::string id() const override { return id_; }
  std::string kind() const override { return "conch"; }
  const ConchConfig& config() const { return cfg_; }
  // Token ids of one text as the tower sees them (context - 1 ids, before the CLS token).
  std::vector<int64_t> token_ids(const std::string& text, bool* truncated = nullptr, int64_t* length = nullptr) const;
  int64_t batch_size = 32;

 private:
  Tensor forward(const std::vector<std::vector<int64_t>>& ids);  // (B, context-1) ids -> (B, embed_dim)
  ConchConfig cfg_;
  Tensor tok_emb_, pos_emb_, cls_emb_, lnf_w_, lnf_b_, proj_;
  std::vector<PreLnBlockWeights> blocks_;
  data::Tokenizer tok_;
  int64_t pad_id_ = 0;
  std::string path_, id_;
  std::atomic<bool> warned_{false};
};

// A converted file (metadata "libramil.encoder" = "conch").
std::unique_ptr<TextEncoder> load_conch_converted(const data::SafetensorsFile& f, const std::string& id);

}  // namespace lm::models
