// The CONCH text tower. See text_conch.h and docs/text_encoders.md.
#include "models/text/text_conch.h"

#include <algorithm>
#include <limits>

#include "models/text/text_bert.h"
#include "models/nn/transformer_block.h"
#include "ops/ops.h"

namespace lm::models {

using namespace text_detail;

ConchTextEncoder::ConchTextEncoder(const ConchConfig& cfg, const std::map<std::string, Tensor>& T,
                                   data::Tokenizer tokenizer, std::string path, std::string id)
    : cfg_(cfg), tok_(std::move(tokenizer)), path_(std::move(path)), id_(std::move(id)) {
  const int64_t D = cfg.width, I = cfg.intermediate;
  if (D % cfg.heads != 0)
    fail(path_, "width " + std::to_string(D) + " is not divisible by " + std::to_string(cfg.heads) + " heads");
  if (cfg.context < 2) fail(path_, "context " + std::to_string(cfg.context) + " is too short");
  if (tok_.vocab_size() > cfg.vocab)
    fail(path_, "the tokenizer has " + std::to_string(tok_.vocab_size()) + " ids but the embedding table has " +
                    std::to_string(cfg.vocab) + " rows");
  tok_emb_ = take(T, path_, "token_embedding.weight", {cfg.vocab, D});
  pos_emb_ = take(T, path_, "positional_embedding", {cfg.context, D});
  cls_emb_ = take(T, path_, "cls_emb", {D});
  for (int64_t i = 0; i < cfg.layers; ++i) {
    const std::string p = "transformer.resblocks." + std::to_string(i) + ".";
    PreLnBlockWeights b;
    b.ln1_w = take(T, path_, p + "ln_1.weight", {D});
    b.ln1_b = take(T, path_, p + "ln_1.bias", {D});
    b.qkv_w = take(T, path_, p + "attn.in_proj_weight", {3 * D, D});
    b.qkv_b = take(T, path_, p + "attn.in_proj_bias", {3 * D});
    b.out_w = take(T, path_, p + "attn.out_proj.weight", {D, D});
    b.out_b = take(T, path_, p + "attn.out_proj.bias", {D});
    b.ln2_w = take(T, path_, p + "ln_2.weight", {D});
    b.ln2_b = take(T, path_, p + "ln_2.bias", {D});
    b.fc1_w = take(T, path_, p + "mlp.c_fc.weight", {I, D});
    b.fc1_b = take(T, path_, p + "mlp.c_fc.bias", {I});
    b.fc2_w = take(T, path_, p + "mlp.c_proj.weight", {D, I});
    b.fc2_b = take(T, path_, p + "mlp.c_proj.bias", {D});
    blocks_.push_back(std::move(b));
  }
  lnf_w_ = take(T, path_, "ln_final.weight", {D});
  lnf_b_ = take(T, path_, "ln_final.bias", {D});
  proj_ = take(T, path_, "text_projection", {D, cfg.embed_dim});
  pad_id_ = tok_.pad_id();
}

std::vector<int64_t> ConchTextEncoder::token_ids(const std::string& text, bool* truncated, int64_t* length) const {
  const int64_t n = cfg_.context - 1;  // 127: the CLS token takes the last position
  // Encode with specials, truncate / pad to 127; CONCH then appends one pad (128) and
  // encode_text drops the last id again, which leaves these 127 ids.
  data::Encoding e = tok_.encode_full(text, n);
  if (truncated) *truncated = e.truncated;
  if (length) *length = e.untruncated_length;
  std::vector<int64_t> ids = std::move(e.ids);
  ids.resize((size_t)n, pad_id_);
  return ids;
}

Tensor ConchTextEncoder::forward(const std::vector<std::vector<int64_t>>& ids) {
  const int64_t B = (int64_t)ids.size(), D = cfg_.width, H = cfg_.heads;
  const int64_t N = cfg_.context - 1, L = cfg_.context;
  std::vector<int64_t> flat;
  flat.reserve((size_t)(B * N));
  for (const auto& s : ids) flat.insert(flat.end(), s.begin(), s.end());
  // Additive mask (B, 1, L, L): causal rows; the CLS row (L-1) sees key p iff p == 0 or
  // token p-1 is not pad (open_clip's build_cls_mask, shifted by its left pad).
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> mask((size_t)(B * L * L), 0.f);
  for (int64_t b = 0; b < B; ++b) {
    float* m = mask.data() + (size_t)(b * L * L);
    for (int64_t r = 0; r < L; ++r)
      for (int64_t p = r + 1; p < L; ++p) m[r * L + p] = ninf;
    float* cls = m + (L - 1) * L;
    for (int64_t p = 1; p < L; ++p)
      if (ids[(size_t)b][(size_t)(p - 1)] == pad_id_) cls[p] = ninf;
  }
  const Tensor add_mask = Tensor::from_vector(mask, {B, 1, L, L});

  Tensor x = reshape(index_select(tok_emb_, 0, Tensor::from_vector(flat, {B * N})), {B, N, D});
  x = cat({x, expand(reshape(cls_emb_, {1, 1, D}), {B, 1, D})}, 1);  // (B, L, D)
  x = add(x, pos_emb_);
  for (const PreLnBlockWeights& blk : blocks_) x = pre_ln_block(x, blk, H, cfg_.eps, add_mask);
  const Tensor cls = layer_norm(select(x, 1, L - 1), lnf_w_, lnf_b_, cfg_.eps);  // (B, D)
  return l2_normalize(matmul(cls, proj_), -1);
}

Tensor ConchTextEncoder::encode(const std::vector<std::string>& texts) {
  NoGradGuard no_grad;
  const int64_t K = (int64_t)texts.size(), E = cfg_.embed_dim;
  Tensor out = Tensor::zeros({K, E});
  if (K == 0) return out;
  std::vector<std::vector<int64_t>> ids((size_t)K);
  int64_t n_trunc = 0, longest = 0;
  for (int64_t i = 0; i < K; ++i) {
    bool tr = false;
    int64_t len = 0;
    ids[(size_t)i] = token_ids(texts[(size_t)i], &tr, &len);
    if (tr) {
      ++n_trunc;
      longest = std::max(longest, len);
    }
  }
  warn_truncated_once(warned_, "text encoder (conch)", n_trunc, K, cfg_.context - 1, longest);
  float* dst = out.data<float>();
  for (int64_t s = 0; s < K; s += batch_size) {
    const int64_t e = std::min(K, s + batch_size);
    std::vector<std::vector<int64_t>> batch(ids.begin() + s, ids.begin() + e);
    const Tensor emb = forward(batch).contiguous();
    std::copy(emb.data<float>(), emb.data<float>() + (e - s) * E, dst + s * E);
  }
  return out;
}

std::unique_ptr<TextEncoder> load_conch_converted(const data::SafetensorsFile& f, const std::string& id) {
  ConchConfig c;
  const auto& m = f.metadata;
  c.layers = meta_int(m, f.path, "libramil.layers");
  c.width = meta_int(m, f.path, "libramil.width");
  c.heads = meta_int(m, f.path, "libramil.heads");
  c.intermediate = meta_int(m, f.path, "libramil.intermediate");
  c.vocab = meta_int(m, f.path, "libramil.vocab");
  c.context = meta_int(m, f.path, "libramil.context");
  c.embed_dim = meta_int(m, f.path, "libramil.embed_dim");
  c.eps = meta_double(m, f.path, "libramil.layer_norm_eps");
  auto it = m.find("libramil.tokenizer");
  if (it == m.end()) fail(f.path, "metadata entry 'libramil.tokenizer' is missing (re-run tools/convert_weights.py)");
  data::Tokenizer tok = [&] {
    try {
      return data::Tokenizer::from_json_string(it->second, f.path + " (metadata libramil.tokenizer)");
    } catch (const std::exception& e) {
      fail(f.path, std::string("the stored tokenizer is invalid: ") + e.what());
    }
  }();
  return std::make_unique<ConchTextEncoder>(c, f.tensors, std::move(tok), f.path, id);
}

}  // namespace lm::models
