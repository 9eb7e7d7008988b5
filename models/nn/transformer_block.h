// The pre-LN transformer block shared by the frozen encoders (no autograd-specific code, any
// device): open_clip's ResidualAttentionBlock (CONCH's text tower, models/text/text_conch.h) and
// timm's VisionTransformer Block (CONCH's vision tower, models/patch_encoders/conch_vision.h) are the
// same computation under different names:
//   x += out(MHA(ln_1(x)))        fused qkv projection (3D, D), `heads` heads of D / heads,
//                                 scale 1 / sqrt(D / heads), optional additive mask
//   x += fc2(GELU(fc1(ln_2(x))))  exact (erf) GELU
// Built from ops only (layer_norm, linear, scaled_dot_product_attention, gelu, add).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace lm::models {

struct PreLnBlockWeights {
  Tensor ln1_w, ln1_b;    // (D), (D)
  Tensor qkv_w, qkv_b;    // (3D, D), (3D): rows [q; k; v]
  Tensor out_w, out_b;    // (D, D), (D)
  Tensor ln2_w, ln2_b;    // (D), (D)
  Tensor fc1_w, fc1_b;    // (I, D), (I)
  Tensor fc2_w, fc2_b;    // (D, I), (D)
};

// x: (B, L, D) -> (B, L, D). mask: additive, broadcastable to (B, heads, L, L), or undefined.
Tensor pre_ln_block(const Tensor& x, const PreLnBlockWeights& w, int64_t heads, double eps,
                    const Tensor& mask = Tensor());

}  // namespace lm::models
