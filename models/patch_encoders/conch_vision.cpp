// CONCH's vision tower on the engine's ops (reshape / permute, linear, layer_norm,
// scaled_dot_product_attention, gelu through models/nn/transformer_block.h): see conch_vision.h and
// docs/patch_encoders.md; reference: tools/conch_vision_reference.py (the conch-fork wheel's own
// model code over timm).
#include "models/patch_encoders/conch_vision.h"

#include <cmath>

#include "data/formats/safetensors.h"
#include "ops/ops.h"

namespace lm::models {

using namespace patch_detail;

namespace {

int64_t meta_positive(const data::SafetensorsFile& f, const std::string& key) {
  const std::string& text = meta_at(f.metadata, f.path, key);
  try {
    size_t pos = 0;
    const int64_t v = std::stoll(text, &pos);
    if (pos == text.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  fail(f.path, "metadata entry '" + key + "' is not a positive integer: '" + text + "'");
}

double meta_eps(const data::SafetensorsFile& f, const std::string& key) {
  const std::string& text = meta_at(f.metadata, f.path, key);
  try {
    size_t pos = 0;
    const double v = std::stod(text, &pos);
    if (pos == text.size() && v > 0 && v < 1) return v;
  } catch (const std::exception&) {
  }
  fail(f.path, "metadata entry '" + key + "' is not a number in (0, 1): '" + text + "'");
}

}  // namespace

ConchVision::ConchVision(const data::SafetensorsFile& f, Device device)
    : PatchEncoder(read_preprocess(f.metadata, f.path), device, f.path) {
  Config& c = cfg_;
  c.width = meta_positive(f, "libramil.width");
  c.layers = meta_positive(f, "libramil.layers");
  c.heads = meta_positive(f, "libramil.heads");
  c.mlp_dim = meta_positive(f, "libramil.mlp_dim");
  c.patch_size = meta_positive(f, "libramil.patch_size");
  c.embed_dim = meta_positive(f, "libramil.feature_dim");
  c.pool_heads = meta_positive(f, "libramil.pool_heads");
  c.eps = meta_eps(f, "libramil.layer_norm_eps");
  c.pool_eps = meta_eps(f, "libramil.pool_layer_norm_eps");
  if (meta_at(f.metadata, f.path, "libramil.class_token") != "true")
    fail(f.path, "metadata entry 'libramil.class_token' must be 'true' (CONCH's trunk has a class token)");
  if (meta_positive(f, "libramil.pool_queries") != 1)
    fail(f.path, "metadata entry 'libramil.pool_queries' must be 1 (the contrast pooler's single query)");
  const int64_t D = c.width, E = c.embed_dim, I = c.mlp_dim, p = c.patch_size, S = preprocess().input_size;
  if (D % c.heads != 0)
    fail(f.path, "width " + std::to_string(D) + " is not divisible by " + std::to_string(c.heads) + " heads");
  if (E % c.pool_heads != 0)
    fail(f.path, "feature_dim " + std::to_string(E) + " is not divisible by " + std::to_string(c.pool_heads) +
                     " pooler heads");
  if (S % p != 0)
    fail(f.path, "input_size " + std::to_string(S) + " is not a multiple of the patch size " + std::to_string(p));
  const int64_t g = S / p, L = 1 + g * g;

  patch_w_ = reshape(take(f, "patch_embed.weight", {D, 3, p, p}, device), {D, 3 * p * p});
  patch_b_ = take(f, "patch_embed.bias", {D}, device);
  cls_ = reshape(take(f, "cls_token", {D}, device), {1, 1, D});
  pos_ = take(f, "pos_embed", {L, D}, device);
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    PreLnBlockWeights w;
    w.ln1_w = take(f, b + "norm1.weight", {D}, device);
    w.ln1_b = take(f, b + "norm1.bias", {D}, device);
    w.qkv_w = take(f, b + "qkv.weight", {3 * D, D}, device);
    w.qkv_b = take(f, b + "qkv.bias", {3 * D}, device);
    w.out_w = take(f, b + "proj.weight", {D, D}, device);
    w.out_b = take(f, b + "proj.bias", {D}, device);
    w.ln2_w = take(f, b + "norm2.weight", {D}, device);
    w.ln2_b = take(f, b + "norm2.bias", {D}, device);
    w.fc1_w = take(f, b + "fc1.weight", {I, D}, device);
    w.fc1_b = take(f, b + "fc1.bias", {I}, device);
    w.fc2_w = take(f, b + "fc2.weight", {D, I}, device);
    w.fc2_b = take(f, b + "fc2.bias", {D}, device);
    blocks_.push_back(std::move(w));
  }
  norm_w_ = take(f, "norm.weight", {D}, device);
  norm_b_ = take(f, "norm.bias", {D}, device);
  query_ = take(f, "pool.query", {1, E}, device);
  ln_q_w_ = take(f, "pool.ln_q.weight", {E}, device);
  ln_q_b_ = take(f, "pool.ln_q.bias", {E}, device);
  ln_k_w_ = take(f, "pool.ln_k.weight", {D}, device);
  ln_k_b_ = take(f, "pool.ln_k.bias", {D}, device);
  q_w_ = take(f, "pool.q.weight", {E, E}, device);
  q_b_ = take(f, "pool.q.bias", {E}, device);
  k_w_ = take(f, "pool.k.weight", {E, D}, device);
  k_b_ = take(f, "pool.k.bias", {E}, device);
  v_w_ = take(f, "pool.v.weight", {E, D}, device);
  v_b_ = take(f, "pool.v.bias", {E}, device);
  out_w_ = take(f, "pool.out.weight", {E, E}, device);
  out_b_ = take(f, "pool.out.bias", {E}, device);
  ln_c_w_ = take(f, "ln_contrast.weight", {E}, device);
  ln_c_b_ = take(f, "ln_contrast.bias", {E}, device);
  take(f, "proj_contrast", {E, E}, Device::cpu());  // stored, checked, not applied (see the header)
  // Every tensor of the file must have been read: an unknown name means another network.
  const size_t used = 4 + 12 * (size_t)c.layers + 2 + 13 + 2 + 1;  // trunk, blocks, norm, pool, ln, proj
  if (f.tensors.size() != used)
    fail(f.path, "holds " + std::to_string(f.tensors.size()) + " tensors, expected " + std::to_string(used) +
                     " for " + std::to_string(c.layers) + " layers");
}

Tensor ConchVision::encode(const Tensor& batch) {
  const int64_t S = preprocess().input_size, p = cfg_.patch_size, g = S / p, D = cfg_.width;
  const int64_t E = cfg_.embed_dim, ph = cfg_.pool_heads;
  if (batch.dim() != 4 || batch.size(1) != 3 || batch.size(2) != S || batch.size(3) != S)
    fail(path(), "encode expects a (B, 3, " + std::to_string(S) + ", " + std::to_string(S) + ") batch, got " +
                     shape_str(batch.shape()));
  if (batch.dtype() != DType::F32) fail(path(), std::string("encode expects float32, got ") + dtype_name(batch.dtype()));
  if (batch.device() != device())
    fail(path(), "encode: the batch is on " + batch.device().str() + " but the weights are on " + device().str());
  const int64_t B = batch.size(0), L = 1 + g * g;
  // Patch embed: (B, 3, g p, g p) -> (B, g, g, 3, p, p) -> (B, g g, 3 p p) -> linear.
  Tensor x = reshape(permute(reshape(batch, {B, 3, g, p, g, p}), {0, 2, 4, 1, 3, 5}), {B, g * g, 3 * p * p});
  x = linear(x, patch_w_, patch_b_);                  // (B, g g, D)
  x = add(cat({expand(cls_, {B, 1, D}), x}, 1), pos_);  // (B, L, D)
  for (const PreLnBlockWeights& w : blocks_) x = pre_ln_block(x, w, cfg_.heads, cfg_.eps);
  x = layer_norm(x, norm_w_, norm_b_, cfg_.eps);
  // Attentional pooler (one query, torch MultiheadAttention with kdim = vdim = D).
  const Tensor kv = layer_norm(x, ln_k_w_, ln_k_b_, cfg_.pool_eps);
  const int64_t dh = E / ph;
  const Tensor q = linear(layer_norm(query_, ln_q_w_, ln_q_b_, cfg_.pool_eps), q_w_, q_b_);  // (1, E)
  const Tensor qh = expand(reshape(q, {1, ph, 1, dh}), {B, ph, 1, dh});
  auto heads = [&](const Tensor& t) { return permute(reshape(t, {B, L, ph, dh}), {0, 2, 1, 3}); };
  Tensor a = scaled_dot_product_attention(qh, heads(linear(kv, k_w_, k_b_)), heads(linear(kv, v_w_, v_b_)));
  a = linear(reshape(a, {B, E}), out_w_, out_b_);  // (B, ph, 1, dh) -> (B, E): heads concatenated
  return layer_norm(a, ln_c_w_, ln_c_b_, cfg_.pool_eps);
}

std::unique_ptr<PatchEncoder> load_conch_vision(const data::SafetensorsFile& f, Device device) {
  return std::make_unique<ConchVision>(f, device);
}

}  // namespace lm::models
