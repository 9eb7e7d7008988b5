// CONCH's vision tower (Lu et al., Nature Medicine 2024; the model code of PyPI's conch-fork
// 0.1.0, open_clip_custom/coca_model.py + vision_tower.py over timm's VisionTransformer) as a
// patch encoder: the 512-d features TRIDENT calls conch_v1, i.e. CONCH's
// encode_image(x, proj_contrast=False, normalize=False) = VisualModel.forward_no_head:
//   patch embed   16 x 16 / 16 conv (3 -> 768), done as a reshape of the image into patches
//                 and one linear map; tokens in row-major (y, x) order of the 28 x 28 grid
//   tokens        [cls_token; patches] + pos_embed (785 x 768, used as stored: the file's
//                 input_size is the size the embedding was trained at)
//   trunk         12 pre-LN blocks (width 768, 12 heads, GELU MLP 3072, LayerNorm eps 1e-6;
//                 models/nn/transformer_block.h), then the final LayerNorm `norm`
//   pooler        CoCa's attentional pooler for the contrast query (AttentionalPooler):
//                 kv = LN_k(tokens) over all 785 tokens (cls included), q = LN_q(query) (1 x 512),
//                 torch MultiheadAttention(512, 8 heads, kdim = vdim = 768) -> (B, 512)
//   output        LN_contrast(pooled) -> (B, 512). The pooler LayerNorms use eps 1e-5.
// proj_contrast (512 x 512) is stored but not applied: TRIDENT's conch_v1 features stop before
// it. Weights and metadata as tools/convert_weights.py conch-vision writes them (names in
// docs/patch_encoders.md); the user converts their own checkpoint (gated, CC BY-NC-ND 4.0).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/patch_encoders/patch_encoder.h"
#include "models/nn/transformer_block.h"

namespace lm::data {
struct SafetensorsFile;
}

namespace lm::models {

class ConchVision : public PatchEncoder {
 public:
  struct Config {
    int64_t width = 768, layers = 12, heads = 12, mlp_dim = 3072, patch_size = 16;
    int64_t embed_dim = 512, pool_heads = 8;  // the pooler's width (= feature_dim) and heads
    double eps = 1e-6, pool_eps = 1e-5;
  };

  // Reads the shape from f's metadata (libramil.width, layers, heads, mlp_dim, patch_size,
  // feature_dim, pool_heads, layer_norm_eps, pool_layer_norm_eps, input_size) and every tensor,
  // checking each shape; moves them to `device`. Errors name the file.
  ConchVision(const data::SafetensorsFile& f, Device device);

  std::string name() const override { return "conch_vit_b16"; }
  int64_t feature_dim() const override { return cfg_.embed_dim; }
  // (B, 3, S, S) float32 on device(), S = preprocess().input_size -> (B, feature_dim()).
  Tensor encode(const Tensor& batch) override;
  const Config& config() const { return cfg_; }

 private:
  Config cfg_;
  Tensor patch_w_, patch_b_;  // (D, 3 p p) (the conv weight flattened as c, y, x), (D)
  Tensor cls_, pos_;          // (1, 1, D), (1 + g g, D)
  std::vector<PreLnBlockWeights> blocks_;
  Tensor norm_w_, norm_b_;
  Tensor query_, ln_q_w_, ln_q_b_, ln_k_w_, ln_k_b_;  // (1, E), (E), (E), (D), (D)
  Tensor q_w_, q_b_, k_w_, k_b_, v_w_, v_b_, out_w_, out_b_;  // (E, E | D), (E)
  Tensor ln_c_w_, ln_c_b_;
};

// The arch loader registered for "conch_vit_b16" in patch_encoder.cpp.
std::unique_ptr<PatchEncoder> load_conch_vision(const data::SafetensorsFile& f, Device device);

}  // namespace lm::models
