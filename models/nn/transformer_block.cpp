// The pre-LN transformer block of the frozen encoders. See transformer_block.h.
#include "models/nn/transformer_block.h"

#include "ops/ops.h"

namespace lm::models {

Tensor pre_ln_block(const Tensor& x, const PreLnBlockWeights& w, int64_t heads, double eps, const Tensor& mask) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), dh = D / heads;
  const Tensor qkv = linear(layer_norm(x, w.ln1_w, w.ln1_b, eps), w.qkv_w, w.qkv_b);  // (B, L, 3D)
  auto split = [&](int64_t j) {  // (B, heads, L, dh)
    return permute(reshape(slice(qkv, 2, j * D, (j + 1) * D), {B, L, heads, dh}), {0, 2, 1, 3});
  };
  Tensor a = scaled_dot_product_attention(split(0), split(1), split(2), mask);  // (B, heads, L, dh)
  a = reshape(permute(a, {0, 2, 1, 3}), {B, L, D});
  Tensor y = add(x, linear(a, w.out_w, w.out_b));
  const Tensor h = gelu(linear(layer_norm(y, w.ln2_w, w.ln2_b, eps), w.fc1_w, w.fc1_b));
  return add(y, linear(h, w.fc2_w, w.fc2_b));
}

}  // namespace lm::models
