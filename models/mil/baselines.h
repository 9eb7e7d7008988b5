// Baseline MIL models for whole-slide-image classification, the comparison points of the
// Libra-MIL paper. Every model takes a bag X (N, D) of instance (patch) features, N >= 1, and
// returns logits (C). Parameter names equal the PyTorch modules of tools/baselines_reference.py
// (an independent implementation the tests compare against), so state_dicts transfer.
//
//   ABMIL        Ilse, Tomczak, Welling 2018, attention pooling:
//                  h_i = ReLU(W_f x_i + b_f)                         feature.0      (L = hidden)
//                  e_i = w^T tanh(V h_i + b_V) + b_w                 attention.0, attention.2
//                  a = softmax(e) over the N instances; z = sum_i a_i h_i; logits = classifier(z)
//   GatedABMIL   gated attention: e_i = w^T (tanh(V h_i) * sigmoid(U h_i)) + b_w
//                  attention_V.0, attention_U.0, attention_w
//   MeanPoolMIL  h_i as above, z = mean_i h_i, logits = classifier(z)
//   MaxPoolMIL   h_i as above, z = max_i h_i (per feature), logits = classifier(z)
//                (gradient shared equally among tied maxima, as torch.amax)
//   TransMIL     Shao et al., NeurIPS 2021, in the structure of the authors' code:
//                  h = ReLU(_fc1.0(X))  (N, 512); pad to M = ceil(sqrt N)^2 tokens by repeating
//                  the first M - N tokens; prepend cls_token; layer1; pos_layer (PPEG);
//                  layer2; norm; logits = _fc2(cls token).
//                TransLayer: x + attn(norm(x)). PPEG: tokens without cls reshaped to
//                (512, H, W) (H = W = ceil(sqrt N)) become x + conv7(x) + conv5(x) + conv3(x),
//                depthwise convolutions with bias and "same" zero padding (pos_layer.proj,
//                .proj1, .proj2; weights (512, 1, k, k) as torch.nn.Conv2d(groups=512)).
//                SIMPLIFICATIONS vs the original: (1) the attention is EXACT softmax
//                multi-head self-attention (8 heads of width 64, scale 1/sqrt(64)) instead of
//                the Nystrom approximation (no landmarks, no pseudo-inverse, and no residual
//                depthwise convolution on v); the projections keep the Nystrom module's
//                names: attn.to_qkv (Linear(512, 3*512), no bias; q, k, v chunks in that
//                order) and attn.to_out.0 (Linear(512, 512)). (2) No dropout. (3) cls_token
//                is (1, 512) (the bag is unbatched), not (1, 1, 512).
//                The depthwise convolutions are built from differentiable ops: the three
//                kernels and the identity are summed into one 7x7 kernel (exactly equal to
//                the sum of the three convolutions plus x), the map is zero-padded by 3 with
//                cat, and the output is the sum over the 49 taps of kernel[:, dy, dx] times
//                the shifted slice padded[:, dy:dy+H, dx:dx+W].
//
// Initialisation: PyTorch's defaults in distribution (Linear: U(+-1/sqrt(fan_in)); Conv2d
// depthwise k x k: U(+-1/k) for weight and bias; cls_token: N(0, 1)), every draw from the
// Generator passed in.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/nn/nn.h"

namespace lm::models {

// Activation modules nn.h does not provide (no parameters; used inside Sequentials).
class Tanh : public nn::Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Tanh"; }
};

class Sigmoid : public nn::Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sigmoid"; }
};

// Attention-based MIL pooling (Ilse et al. 2018).
class ABMIL : public nn::Module {
 public:
  ABMIL(int64_t dim, int64_t num_classes, Generator& gen, int64_t hidden = 256, int64_t attn_dim = 128);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ABMIL"; }
  // Attention weights a (N) of the last forward (detached, sums to 1); undefined before.
  Tensor last_attention() const { return last_attention_; }

  int64_t dim, num_classes, hidden, attn_dim;
  nn::Sequential feature;    // Linear(D, L), ReLU
  nn::Sequential attention;  // Linear(L, A), Tanh, Linear(A, 1)
  nn::Linear classifier;     // Linear(L, C)

 private:
  Tensor last_attention_;
};

// Gated attention MIL (Ilse et al. 2018).
class GatedABMIL : public nn::Module {
 public:
  GatedABMIL(int64_t dim, int64_t num_classes, Generator& gen, int64_t hidden = 256, int64_t attn_dim = 128);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GatedABMIL"; }
  Tensor last_attention() const { return last_attention_; }

  int64_t dim, num_classes, hidden, attn_dim;
  nn::Sequential feature;      // Linear(D, L), ReLU
  nn::Sequential attention_V;  // Linear(L, A), Tanh
  nn::Sequential attention_U;  // Linear(L, A), Sigmoid
  nn::Linear attention_w;      // Linear(A, 1)
  nn::Linear classifier;       // Linear(L, C)

 private:
  Tensor last_attention_;
};

// Instance embedding, then mean pooling over instances, then a linear head.
class MeanPoolMIL : public nn::Module {
 public:
  MeanPoolMIL(int64_t dim, int64_t num_classes, Generator& gen, int64_t hidden = 256);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MeanPoolMIL"; }
  int64_t dim, num_classes, hidden;
  nn::Sequential feature;  // Linear(D, L), ReLU
  nn::Linear classifier;   // Linear(L, C)
};

// Instance embedding, then max pooling over instances, then a linear head.
class MaxPoolMIL : public nn::Module {
 public:
  MaxPoolMIL(int64_t dim, int64_t num_classes, Generator& gen, int64_t hidden = 256);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MaxPoolMIL"; }
  int64_t dim, num_classes, hidden;
  nn::Sequential feature;
  nn::Linear classifier;
};

// ---- TransMIL ----------------------------------------------------------------------------

// Exact multi-head self-attention with the Nystrom module's parameter names (see the top).
class TransMILAttention : public nn::Module {
 public:
  TransMILAttention(int64_t dim, int heads, Generator& gen);
  Tensor forward(const Tensor& x) override;  // (L, dim) -> (L, dim)
  // The attention probabilities of token 0's query over the L tokens (keys), per head:
  // x (L, dim) -> (heads, L), each row summing to 1. No autograd (detached).
  Tensor first_token_attention(const Tensor& x);
  std::string type_name() const override { return "TransMILAttention"; }
  int64_t dim;
  int heads;
  nn::Linear to_qkv;      // (3*dim, dim), no bias
  nn::Sequential to_out;  // Linear(dim, dim)
};

// x + attn(norm(x))
class TransLayer : public nn::Module {
 public:
  TransLayer(int64_t dim, int heads, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "TransLayer"; }
  nn::LayerNorm norm;
  TransMILAttention attn;
};

// Depthwise 2-d convolution, weight (C, 1, k, k), bias (C), stride 1, zero padding k/2
// (torch.nn.Conv2d(C, C, k, 1, k // 2, groups=C)). Holds the parameters; PPEG runs them.
class DepthwiseConv2d : public nn::Module {
 public:
  DepthwiseConv2d(int64_t channels, int64_t kernel, Generator& gen);
  // x (C, H, W) -> (C, H, W), computed as a sum of shifted slices (differentiable).
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "DepthwiseConv2d"; }
  int64_t channels, kernel;
  Tensor weight, bias;
};

// Pyramid position encoding generator: tokens (1 + H*W, C) -> (1 + H*W, C).
class PPEG : public nn::Module {
 public:
  PPEG(int64_t dim, Generator& gen);
  Tensor forward(const Tensor& x, int64_t H, int64_t W);
  std::string type_name() const override { return "PPEG"; }
  int64_t dim;
  DepthwiseConv2d proj, proj1, proj2;  // 7x7, 5x5, 3x3
};

// What TransMIL::explain returns next to the logits (detached, CPU float32): the class token's
// attention over the N instances in each layer, mean over heads. The padding tokens (copies of
// the first instances, see the top) give their attention back to the instance they copy, and
// the class token's attention to itself is left out, so each vector sums to 1 minus that share.
struct TransMILExplanation {
  Tensor attention_layer1;  // (N)
  Tensor attention_layer2;  // (N): the layer whose class token feeds the classifier
};

class TransMIL : public nn::Module {
 public:
  TransMIL(int64_t dim, int64_t num_classes, Generator& gen, int64_t hidden = 512, int heads = 8);
  Tensor forward(const Tensor& x) override;
  // Forward that also fills `ex` (no autograd); the same logits as forward.
  Tensor explain(const Tensor& x, TransMILExplanation& ex);
  std::string type_name() const override { return "TransMIL"; }
  int64_t dim, num_classes, hidden;
  int heads;
  PPEG pos_layer;
  nn::Sequential _fc1;  // Linear(D, hidden), ReLU
  Tensor cls_token;     // (1, hidden)
  TransLayer layer1, layer2;
  nn::LayerNorm norm;
  nn::Linear _fc2;      // Linear(hidden, C)

 private:
  Tensor run(const Tensor& x, TransMILExplanation* ex);
};

// ---- factory -----------------------------------------------------------------------------

// "abmil", "gated_abmil", "meanpool", "maxpool", "transmil" (default widths).
std::vector<std::string> baseline_names();
// Throws std::invalid_argument listing the valid names for an unknown one.
std::unique_ptr<nn::Module> make_baseline(const std::string& name, int64_t dim, int64_t num_classes, Generator& gen);

}  // namespace lm::models
