// Libra-MIL (Zhuang, Zhou, Wang, AAAI 2026; contract: ../shared/docs/SPEC.md).
// A bag X (N, D) of patch features is projected (proj_v), compared with learned visual
// prototypes and with text prototypes made from task-specific language priors (proj_llm of
// the instance-prior embeddings), the two similarity maps are fused by optimal transport
// between the prototype sets ("stereoscopic" fusion), the fused instance scores reweight
// the instances, and the class priors attend over them (cross-attention) to give one logit
// per class. Parameter names equal the reference code's state_dict.
#pragma once
#include <string>

#include "models/mil/transport_stats.h"
#include "models/nn/nn.h"
#include "ops/sinkhorn.h"

namespace lm::models {

// fusion "standardised": s is divided by sqrt(var(s) + kStandardiseEps) within the bag.
inline constexpr double kStandardiseEps = 1e-8;

struct LibraMILConfig {
  int64_t dim = 512;                // D: feature width
  int64_t text_dim = 512;           // Dt: text-embedding width
  int64_t num_vis_prototypes = 10;  // Kv
  int64_t num_text_prototypes = 46; // Kt (from the instance priors)
  int64_t num_classes = 3;          // C (from the bag priors)
  int heads = 8;
  std::string mode = "paper";       // paper | reference
  std::string fusion = "softmax";   // paper mode step 7: softmax | literal | standardised (issue 23)
  double ot_epsilon = 0.05;
  int ot_iter = 20;
  // Ablations of the paper (Table: w/o instance priors, w/o visual prototypes, SOT -> concat).
  std::string ablation = "none";    // none | no_instance_priors | no_visual_prototypes | concat | no_transport
  void validate() const;            // throws std::invalid_argument naming the bad field
};

// What `explain` returns next to the logits (all detached, CPU float32).
struct LibraMILExplanation {
  Tensor instance_weights;  // (N) the weight each instance gets in Xf (paper mode: w_j)
  Tensor instance_scores;   // (N) fused score s_j (paper mode) or sum_k fused_j[k] (reference)
  Tensor attention;         // (C, N) class-query attention over instances, mean over heads
  Tensor plan;              // (Kv, Kt) transport plan (paper mode; undefined otherwise)
  Tensor sim_text;          // (N, Kt) cosine similarity of each instance to each text prototype
};

class LibraMIL : public nn::Module {
 public:
  // z_ins (Kt, Dt), z_bag (C, Dt): text embeddings of the instance and bag priors.
  LibraMIL(const LibraMILConfig& config, const Tensor& z_ins, const Tensor& z_bag, Generator& gen);
  // X (N, D) -> logits (C)
  Tensor forward(const Tensor& x) override;
  // Forward that also fills `ex` (no autograd).
  Tensor explain(const Tensor& x, LibraMILExplanation& ex);
  std::string type_name() const override { return "LibraMIL"; }
  // Issue 23: when on, every training-mode forward records the spread of its instance weights w
  // and fused scores s (transport_stats.h; costs a copy of w and s to the host), read after the
  // forward; evaluation forwards (eval mode) skip it.
  void record_transport_stats(bool on) { record_stats_ = on; }
  const TransportStats& last_transport_stats() const { return stats_; }
  const LibraMILConfig& config() const { return config_; }

  Tensor proto_vis, prompt_inst, prompt_bag, temp_struct, temp_vis;
  nn::Sequential proj_v, proj_llm;
  nn::Linear q_proj, k_proj, v_proj, o_proj;
  nn::Sequential classification_head;
  Tensor concat_weight;  // ablation "concat" only: (Kv + Kt) weights of the similarity maps

  // The transport fusion alone (SPEC steps 2-7): projected instances V (N, D), visual and text
  // prototypes Pv (Kv, D), Pt (Kt, D) -> the instance weights w (N) (Xf = w[:, None] V); fills
  // ex when given. Public for `bench train-step --fusion`, which times it beside the step.
  // With key_queries (R, D) and keys_t, step 8's keys V key_queries^T (N, R) come out of step
  // 2's product into *keys_t (the ablation "no_transport" computes them on their own).
  Tensor fuse_paper(const Tensor& V, const Tensor& Pv, const Tensor& Pt, LibraMILExplanation* ex = nullptr,
                    const Tensor& key_queries = Tensor(), Tensor* keys_t = nullptr);
  Tensor fuse_reference(const Tensor& V, const Tensor& Pv, const Tensor& Pt, LibraMILExplanation* ex = nullptr);

 private:
  // Step 8's class queries through q_proj and each head's rows of k_proj: (H*C, D).
  Tensor key_queries(const Tensor& Pb);
  // Step 8 from the key queries; keys_t (N, H*C) = V q_keys^T when already computed, else undefined.
  Tensor class_query_attention(const Tensor& q_keys, const Tensor& V, Tensor keys_t, const Tensor& w,
                               LibraMILExplanation* ex);
  Tensor run(const Tensor& x, LibraMILExplanation* ex);
  LibraMILConfig config_;
  bool record_stats_ = false;
  Tensor last_scores_;  // s of the last paper-mode forward, kept only while recording
  TransportStats stats_;
};

}  // namespace lm::models
