// Baseline MIL models (see baselines.h for the equations and the TransMIL simplifications).
#include "models/mil/baselines.h"

#include <cmath>
#include <stdexcept>

#include "ops/ops.h"

namespace lm::models {

namespace {

void check_sizes(const char* model, int64_t dim, int64_t num_classes, int64_t hidden) {
  if (dim <= 0 || num_classes <= 0 || hidden <= 0)
    throw std::invalid_argument(std::string(model) + ": dim (" + std::to_string(dim) + "), num_classes (" +
                                std::to_string(num_classes) + ") and hidden (" + std::to_string(hidden) +
                                ") must be positive");
}

void check_bag(const char* model, const Tensor& x, int64_t dim) {
  if (x.dim() != 2 || x.shape()[1] != dim)
    throw std::invalid_argument(std::string(model) + ": bag " + x.str() + " is not (N, " + std::to_string(dim) + ")");
  if (x.shape()[0] == 0) throw std::invalid_argument(std::string(model) + ": empty bag (0 instances)");
}

// z (1, L) -> classifier -> logits (C)
Tensor head(nn::Linear& classifier, const Tensor& z) { return reshape(classifier(z), {classifier.out_features}); }

// x (C, H, W) -> zero-padded (C, H + 2p, W + 2p), differentiable (cat with zeros).
Tensor pad2d(const Tensor& x, int64_t p) {
  if (p == 0) return x;
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2);
  Tensor zw = Tensor::zeros({C, H, p}, x.dtype(), x.device());
  Tensor y = cat({zw, x, zw}, 2);
  Tensor zh = Tensor::zeros({C, p, W + 2 * p}, x.dtype(), x.device());
  return cat({zh, y, zh}, 1);
}

// Depthwise convolution, stride 1, "same" zero padding: x (C, H, W), w (C, k, k) (k odd),
// b (C) -> (C, H, W), out[c, y, x] = b[c] + sum_{dy,dx} w[c, dy, dx] * xpad[c, y + dy, x + dx]
// (cross-correlation, as torch's conv2d).
Tensor depthwise_conv2d(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2), k = w.size(1);
  Tensor xp = pad2d(x, k / 2);
  Tensor out = reshape(b, {C, 1, 1});
  for (int64_t dy = 0; dy < k; ++dy) {
    Tensor rows = slice(xp, 1, dy, dy + H);  // (C, H, W + k - 1)
    Tensor wrow = select(w, 1, dy);          // (C, k)
    for (int64_t dx = 0; dx < k; ++dx) {
      Tensor tap = reshape(select(wrow, 1, dx), {C, 1, 1});
      out = add(out, mul(slice(rows, 2, dx, dx + W), tap));
    }
  }
  return out;
}

int64_t ceil_sqrt(int64_t n) {
  int64_t s = (int64_t)std::sqrt((double)n);
  while (s * s < n) ++s;
  while (s > 0 && (s - 1) * (s - 1) >= n) --s;
  return s;
}

}  // namespace

Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

// ---- ABMIL ---------------------------------------------------------------------------------

ABMIL::ABMIL(int64_t d, int64_t c, Generator& gen, int64_t l, int64_t a)
    : dim(d), num_classes(c), hidden(l), attn_dim(a), classifier((check_sizes("ABMIL", d, c, l), l), c, gen, true) {
  // classifier is constructed first (member order puts it last, but the draw order below
  // follows the reference registration: feature, attention, classifier), so redraw it last.
  if (a <= 0) throw std::invalid_argument("ABMIL: attn_dim must be positive");
  feature.emplace_back<nn::Linear>(d, l, gen);
  feature.emplace_back<nn::ReLU>();
  register_module("feature", feature);
  attention.emplace_back<nn::Linear>(l, a, gen);
  attention.emplace_back<Tanh>();
  attention.emplace_back<nn::Linear>(a, 1, gen);
  register_module("attention", attention);
  classifier.reset_parameters(gen);
  register_module("classifier", classifier);
}

Tensor ABMIL::forward(const Tensor& x) {
  check_bag("ABMIL", x, dim);
  const int64_t N = x.size(0);
  Tensor h = feature(x);                                  // (N, L)
  Tensor a = softmax(reshape(attention(h), {1, N}), 1);   // (1, N)
  last_attention_ = reshape(a, {N}).detach().contiguous();
  return head(classifier, matmul(a, h));                  // (1, L) -> (C)
}

// ---- Gated ABMIL ---------------------------------------------------------------------------

GatedABMIL::GatedABMIL(int64_t d, int64_t c, Generator& gen, int64_t l, int64_t a)
    : dim(d),
      num_classes(c),
      hidden(l),
      attn_dim(a),
      attention_w((check_sizes("GatedABMIL", d, c, l), a), 1, gen),
      classifier(l, c, gen) {
  if (a <= 0) throw std::invalid_argument("GatedABMIL: attn_dim must be positive");
  feature.emplace_back<nn::Linear>(d, l, gen);
  feature.emplace_back<nn::ReLU>();
  register_module("feature", feature);
  attention_V.emplace_back<nn::Linear>(l, a, gen);
  attention_V.emplace_back<Tanh>();
  register_module("attention_V", attention_V);
  attention_U.emplace_back<nn::Linear>(l, a, gen);
  attention_U.emplace_back<Sigmoid>();
  register_module("attention_U", attention_U);
  attention_w.reset_parameters(gen);
  register_module("attention_w", attention_w);
  classifier.reset_parameters(gen);
  register_module("classifier", classifier);
}

Tensor GatedABMIL::forward(const Tensor& x) {
  check_bag("GatedABMIL", x, dim);
  const int64_t N = x.size(0);
  Tensor h = feature(x);                                  // (N, L)
  Tensor g = mul(attention_V(h), attention_U(h));         // (N, A)
  Tensor a = softmax(reshape(attention_w(g), {1, N}), 1); // (1, N)
  last_attention_ = reshape(a, {N}).detach().contiguous();
  return head(classifier, matmul(a, h));
}

// ---- mean / max pooling --------------------------------------------------------------------

MeanPoolMIL::MeanPoolMIL(int64_t d, int64_t c, Generator& gen, int64_t l)
    : dim(d), num_classes(c), hidden(l), classifier((check_sizes("MeanPoolMIL", d, c, l), l), c, gen) {
  feature.emplace_back<nn::Linear>(d, l, gen);
  feature.emplace_back<nn::ReLU>();
  register_module("feature", feature);
  classifier.reset_parameters(gen);
  register_module("classifier", classifier);
}

Tensor MeanPoolMIL::forward(const Tensor& x) {
  check_bag("MeanPoolMIL", x, dim);
  return head(classifier, mean(feature(x), {0}, true));
}

MaxPoolMIL::MaxPoolMIL(int64_t d, int64_t c, Generator& gen, int64_t l)
    : dim(d), num_classes(c), hidden(l), classifier((check_sizes("MaxPoolMIL", d, c, l), l), c, gen) {
  feature.emplace_back<nn::Linear>(d, l, gen);
  feature.emplace_back<nn::ReLU>();
  register_module("feature", feature);
  classifier.reset_parameters(gen);
  register_module("classifier", classifier);
}

Tensor MaxPoolMIL::forward(const Tensor& x) {
  check_bag("MaxPoolMIL", x, dim);
  return head(classifier, amax(feature(x), {0}, true));
}

// ---- TransMIL ------------------------------------------------------------------------------

TransMILAttention::TransMILAttention(int64_t d, int h, Generator& gen)
    : dim(d), heads(h), to_qkv(d, 3 * d, gen, /*bias=*/false) {
  if (h <= 0 || d % h != 0)
    throw std::invalid_argument("TransMIL attention: width " + std::to_string(d) + " is not divisible by " +
                                std::to_string(h) + " heads");
  register_module("to_qkv", to_qkv);
  to_out.emplace_back<nn::Linear>(d, d, gen);
  register_module("to_out", to_out);
}

Tensor TransMILAttention::forward(const Tensor& x) {
  const int64_t L = x.size(0), hd = dim / heads;
  Tensor qkv = to_qkv(x);  // (L, 3D): q | k | v
  auto split = [&](int64_t i) {  // -> (1, heads, L, hd)
    return unsqueeze(permute(reshape(slice(qkv, 1, i * dim, (i + 1) * dim), {L, (int64_t)heads, hd}), {1, 0, 2}), 0);
  };
  Tensor out = scaled_dot_product_attention(split(0), split(1), split(2));  // (1, heads, L, hd)
  out = reshape(permute(squeeze(out, 0), {1, 0, 2}), {L, dim});
  return to_out(out);
}

Tensor TransMILAttention::first_token_attention(const Tensor& x) {
  NoGradGuard no_grad;
  const int64_t L = x.size(0), hd = dim / heads;
  Tensor qkv = to_qkv(x);                                                                   // (L, 3D)
  Tensor q = reshape(slice(slice(qkv, 0, 0, 1), 1, 0, dim), {(int64_t)heads, 1, hd});        // (H, 1, hd)
  Tensor k = permute(reshape(slice(qkv, 1, dim, 2 * dim), {L, (int64_t)heads, hd}), {1, 2, 0});  // (H, hd, L)
  Tensor scores = mul(matmul(q, k), 1.0 / std::sqrt((double)hd));                           // (H, 1, L)
  return reshape(softmax(scores, -1), {(int64_t)heads, L}).detach().contiguous();
}

TransLayer::TransLayer(int64_t d, int h, Generator& gen) : norm(d), attn(d, h, gen) {
  register_module("norm", norm);
  register_module("attn", attn);
}

Tensor TransLayer::forward(const Tensor& x) { return add(x, attn(norm(x))); }

DepthwiseConv2d::DepthwiseConv2d(int64_t c, int64_t k, Generator& gen) : channels(c), kernel(k) {
  if (c <= 0 || k <= 0 || k % 2 == 0)
    throw std::invalid_argument("DepthwiseConv2d: channels (" + std::to_string(c) + ") must be positive and kernel (" +
                                std::to_string(k) + ") positive and odd");
  // torch Conv2d default: kaiming_uniform_(a = sqrt(5)) with fan_in = (C / groups) * k * k = k * k,
  // so weight and bias ~ U(-1/k, 1/k).
  const double bound = 1.0 / (double)k;
  weight = register_parameter("weight", Tensor::uniform({c, 1, k, k}, -bound, bound, gen));
  bias = register_parameter("bias", Tensor::uniform({c}, -bound, bound, gen));
}

Tensor DepthwiseConv2d::forward(const Tensor& x) {
  if (x.dim() != 3 || x.size(0) != channels)
    throw std::invalid_argument("DepthwiseConv2d(" + std::to_string(channels) + "): input " + x.str() + " is not (C, H, W)");
  return depthwise_conv2d(x, reshape(weight, {channels, kernel, kernel}), bias);
}

PPEG::PPEG(int64_t d, Generator& gen) : dim(d), proj(d, 7, gen), proj1(d, 5, gen), proj2(d, 3, gen) {
  register_module("proj", proj);
  register_module("proj1", proj1);
  register_module("proj2", proj2);
}

Tensor PPEG::forward(const Tensor& x, int64_t H, int64_t W) {
  const int64_t C = dim;
  if (x.dim() != 2 || x.size(1) != C || x.size(0) != 1 + H * W)
    throw std::invalid_argument("PPEG: tokens " + x.str() + " are not (1 + " + std::to_string(H) + "*" +
                                std::to_string(W) + ", " + std::to_string(C) + ")");
  Tensor cls = slice(x, 0, 0, 1);
  Tensor feat = reshape(t(slice(x, 0, 1, 1 + H * W)), {C, H, W});
  // x + conv7(x) + conv5(x) + conv3(x) is one 7x7 depthwise convolution whose kernel is the
  // sum of the three kernels (the smaller ones centred by zero padding) plus a centre 1.
  std::vector<float> delta((size_t)(C * 49), 0.0f);
  for (int64_t c = 0; c < C; ++c) delta[(size_t)(c * 49 + 24)] = 1.0f;
  Tensor centre = Tensor::from_vector(delta, {C, 7, 7}).to(x.dtype()).to(x.device());
  Tensor w = add(add(reshape(proj.weight, {C, 7, 7}), pad2d(reshape(proj1.weight, {C, 5, 5}), 1)),
                 add(pad2d(reshape(proj2.weight, {C, 3, 3}), 2), centre));
  Tensor b = add(add(proj.bias, proj1.bias), proj2.bias);
  Tensor y = depthwise_conv2d(feat, w, b);         // (C, H, W)
  return cat({cls, t(reshape(y, {C, H * W}))}, 0);  // (1 + HW, C)
}

TransMIL::TransMIL(int64_t d, int64_t c, Generator& gen, int64_t l, int h)
    : dim(d),
      num_classes(c),
      hidden(l),
      heads(h),
      pos_layer((check_sizes("TransMIL", d, c, l), l), gen),
      layer1(l, h, gen),
      layer2(l, h, gen),
      norm(l),
      _fc2(l, c, gen) {
  // Registration (state_dict) order of the reference: cls_token (own parameter), pos_layer,
  // _fc1, layer1, layer2, norm, _fc2.
  cls_token = register_parameter("cls_token", Tensor::randn({1, l}, gen));
  register_module("pos_layer", pos_layer);
  _fc1.emplace_back<nn::Linear>(d, l, gen);
  _fc1.emplace_back<nn::ReLU>();
  register_module("_fc1", _fc1);
  register_module("layer1", layer1);
  register_module("layer2", layer2);
  register_module("norm", norm);
  register_module("_fc2", _fc2);
}

Tensor TransMIL::forward(const Tensor& x) { return run(x, nullptr); }

Tensor TransMIL::explain(const Tensor& x, TransMILExplanation& ex) {
  NoGradGuard no_grad;
  return run(x, &ex);
}

namespace {
// Class-token attention (H, 1 + side^2) -> per instance (N): mean over heads, the class token's
// own entry dropped, each padding token's entry added to the instance it copies.
Tensor instance_attention(const Tensor& a, int64_t N) {
  std::vector<double> v = mean(a, {0}).to(DType::F64).to(Device::cpu()).to_double_vector();  // (1 + side^2)
  std::vector<float> out((size_t)N, 0.0f);
  std::vector<double> acc((size_t)N, 0.0);
  for (size_t t = 1; t < v.size(); ++t) acc[(t - 1) % (size_t)N] += v[t];
  for (int64_t i = 0; i < N; ++i) out[(size_t)i] = (float)acc[(size_t)i];
  return Tensor::from_vector(out, {N});
}
}  // namespace

Tensor TransMIL::run(const Tensor& x, TransMILExplanation* ex) {
  check_bag("TransMIL", x, dim);
  const int64_t N = x.size(0);
  Tensor h = _fc1(x);  // (N, L)
  const int64_t side = ceil_sqrt(N), add_length = side * side - N;
  if (add_length > 0) h = cat({h, slice(h, 0, 0, add_length)}, 0);  // (side^2, L): token N + j copies token j
  h = cat({cls_token, h}, 0);                                         // (1 + side^2, L)
  if (ex) ex->attention_layer1 = instance_attention(layer1.attn.first_token_attention(layer1.norm(h)), N);
  h = layer1(h);
  h = pos_layer.forward(h, side, side);
  if (ex) ex->attention_layer2 = instance_attention(layer2.attn.first_token_attention(layer2.norm(h)), N);
  h = layer2(h);
  Tensor cls = norm(slice(h, 0, 0, 1));  // LayerNorm is per token: only the cls row is used
  return reshape(_fc2(cls), {num_classes});
}

// ---- factory -------------------------------------------------------------------------------

std::vector<std::string> baseline_names() { return {"abmil", "gated_abmil", "meanpool", "maxpool", "transmil"}; }

std::unique_ptr<nn::Module> make_baseline(const std::string& name, int64_t dim, int64_t num_classes, Generator& gen) {
  if (name == "abmil") return std::make_unique<ABMIL>(dim, num_classes, gen);
  if (name == "gated_abmil") return std::make_unique<GatedABMIL>(dim, num_classes, gen);
  if (name == "meanpool") return std::make_unique<MeanPoolMIL>(dim, num_classes, gen);
  if (name == "maxpool") return std::make_unique<MaxPoolMIL>(dim, num_classes, gen);
  if (name == "transmil") return std::make_unique<TransMIL>(dim, num_classes, gen);
  std::string valid;
  for (auto& n : baseline_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown baseline model '" + name + "' (valid: " + valid + ")");
}

}  // namespace lm::models
