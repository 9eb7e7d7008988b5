// Libra-MIL forward pass, step by step as numbered in ../shared/docs/SPEC.md.
#include "models/mil/libramil.h"

#include <cmath>
#include <stdexcept>

#include "ops/ops.h"

namespace lm::models {

void LibraMILConfig::validate() const {
  auto bad = [](const std::string& m) { throw std::invalid_argument("Libra-MIL config: " + m); };
  if (dim <= 0 || text_dim <= 0) bad("dim and text_dim must be positive");
  if (num_vis_prototypes <= 0) bad("num_vis_prototypes must be positive");
  if (num_text_prototypes <= 0) bad("there must be at least one instance prior");
  if (num_classes < 2) bad("num_classes must be >= 2");
  if (heads <= 0 || dim % heads != 0) bad("heads (" + std::to_string(heads) + ") must divide dim (" + std::to_string(dim) + ")");
  if (mode != "paper" && mode != "reference") bad("mode must be paper or reference, got '" + mode + "'");
  if (fusion != "softmax" && fusion != "literal" && fusion != "standardised")
    bad("fusion must be softmax, literal or standardised, got '" + fusion + "'");
  if (!(ot_epsilon > 0)) bad("ot_epsilon must be positive");
  if (ot_iter < 1) bad("ot_iter must be >= 1");
  if (ablation != "none" && ablation != "no_instance_priors" && ablation != "no_visual_prototypes" && ablation != "concat" &&
      ablation != "no_transport")
    bad("unknown ablation '" + ablation + "'");
  if (ablation != "none" && mode != "paper") bad("ablations apply to paper mode only");
}

LibraMIL::LibraMIL(const LibraMILConfig& c, const Tensor& z_ins, const Tensor& z_bag, Generator& gen)
    : q_proj(c.dim, c.dim, gen), k_proj(c.dim, c.dim, gen), v_proj(c.dim, c.dim, gen), o_proj(c.dim, c.dim, gen),
      config_(c) {
  c.validate();
  if (z_ins.dim() != 2 || z_ins.shape()[0] != c.num_text_prototypes || z_ins.shape()[1] != c.text_dim)
    throw std::invalid_argument("Libra-MIL: instance-prior embeddings " + z_ins.str() + " do not match (Kt=" +
                                std::to_string(c.num_text_prototypes) + ", Dt=" + std::to_string(c.text_dim) + ")");
  if (z_bag.dim() != 2 || z_bag.shape()[0] != c.num_classes || z_bag.shape()[1] != c.text_dim)
    throw std::invalid_argument("Libra-MIL: bag-prior embeddings " + z_bag.str() + " do not match (C=" +
                                std::to_string(c.num_classes) + ", Dt=" + std::to_string(c.text_dim) + ")");
  const int64_t D = c.dim, Dt = c.text_dim;
  // Registration order follows the reference module so state_dicts list the same way.
  proto_vis = register_parameter("proto_vis", Tensor::randn({c.num_vis_prototypes, D}, gen));
  prompt_inst = register_parameter("prompt_inst", z_ins.to(DType::F32).clone());
  prompt_bag = register_parameter("prompt_bag", z_bag.to(DType::F32).clone());
  proj_v.emplace_back<nn::Linear>(D, D, gen);
  proj_v.emplace_back<nn::LayerNorm>(D);
  proj_v.emplace_back<nn::GELU>();
  register_module("proj_v", proj_v);
  proj_llm.emplace_back<nn::Linear>(Dt, D, gen);
  proj_llm.emplace_back<nn::LayerNorm>(D);
  register_module("proj_llm", proj_llm);
  temp_struct = register_parameter("temp_struct", Tensor::scalar(1.0));
  temp_vis = register_parameter("temp_vis", Tensor::scalar(1.0));
  register_module("q_proj", q_proj);
  register_module("k_proj", k_proj);
  register_module("v_proj", v_proj);
  register_module("o_proj", o_proj);
  classification_head.emplace_back<nn::LayerNorm>(D);
  classification_head.emplace_back<nn::Linear>(D, D, gen);
  classification_head.emplace_back<nn::ReLU>();
  classification_head.emplace_back<nn::Linear>(D, 1, gen);
  register_module("classification_head", classification_head);
  if (c.ablation == "concat") {
    double bound = 1.0 / std::sqrt((double)(c.num_vis_prototypes + c.num_text_prototypes));
    concat_weight = register_parameter("concat_weight",
                                       Tensor::uniform({c.num_vis_prototypes + c.num_text_prototypes}, -bound, bound, gen));
  }
  register_buffer("T_struct_llm", z_ins.to(DType::F32).clone());
  register_buffer("T_bag_llm", z_bag.to(DType::F32).clone());
}

Tensor LibraMIL::forward(const Tensor& x) { return run(x, nullptr); }

// Linear -> LayerNorm [-> GELU] of a projection head as one fused op (ops/linear_norm.h).
static Tensor project(const nn::Sequential& head, const Tensor& x, bool gelu) {
  const auto& lin = head.at<nn::Linear>(0);
  const auto& ln = head.at<nn::LayerNorm>(1);
  return linear_layer_norm(x, lin.weight, lin.bias, ln.weight, ln.bias, ln.eps, gelu);
}

Tensor LibraMIL::explain(const Tensor& x, LibraMILExplanation& ex) {
  NoGradGuard no_grad;
  return run(x, &ex);
}

// Steps 2-7 of paper mode. V (N, D), Pv (Kv, D), Pt (Kt, D) -> the instance weights w (N),
// so that Xf = w[:, None] * V (applied inside class_query_attention, never materialised).
Tensor LibraMIL::fuse_paper(const Tensor& V, const Tensor& Pv, const Tensor& Pt, LibraMILExplanation* ex,
                            const Tensor& key_queries, Tensor* keys_t) {
  const int64_t N = V.shape()[0];
  // 2. cosine similarities of every instance to every prototype.
  // One product against both prototype sets, divided by the instances' norms afterwards:
  // l2_normalize(V) P^T == (V P^T) / max(|V_j|, eps), without materialising normalised V.
  // With key_queries (R, D), step 8's V key_queries^T rides along as R more columns: one pass
  // over V (and, backwards, one product into V's gradient) instead of two.
  Tensor Pvn = l2_normalize(Pv, 1), Ptn = l2_normalize(Pt, 1);
  const int64_t Kv = Pv.shape()[0], Kt = Pt.shape()[0];
  const bool with_keys = key_queries.defined() && keys_t != nullptr;
  auto similarities = [&] {
    if (!with_keys) return div(matmul(V, t(cat({Pvn, Ptn}, 0))), unsqueeze(l2_norm_clamped(V), 1));
    Tensor all = matmul(V, t(cat({Pvn, Ptn, key_queries}, 0)));  // (N, Kv + Kt + R)
    *keys_t = slice(all, 1, Kv + Kt, all.shape()[1]);
    return div(slice(all, 1, 0, Kv + Kt), unsqueeze(l2_norm_clamped(V), 1));
  };
  const std::string& ab = config_.ablation;
  if (ab == "no_transport") {
    // Ablation (issue 23): no reweighting at all, every instance weighs 1 (Xf = V); the rest of
    // the model is unchanged. proto_vis and temp_vis then receive no gradient, and the
    // similarities are computed only for an explanation.
    Tensor w = Tensor::ones({N}, V.dtype(), V.device());
    if (ex) {
      ex->instance_weights = w.to(DType::F32).clone();
      ex->sim_text = slice(similarities(), 1, Kv, Kv + Kt).detach().to(DType::F32).clone();
    }
    return w;
  }
  Tensor S = similarities();                      // (N, Kv + Kt)
  Tensor Sv = slice(S, 1, 0, Kv);                 // (N, Kv)
  Tensor St = slice(S, 1, Kv, Kv + Kt);           // (N, Kt)
  Tensor s;                        // (N) fused instance score
  Tensor plan;
  if (ab == "no_instance_priors") {
    s = matmul(Sv, softmax(mean(Sv, {0}), 0));  // visual similarities weighted by the visual marginal
  } else if (ab == "no_visual_prototypes") {
    s = matmul(St, softmax(mean(St, {0}), 0));
  } else if (ab == "concat") {
    s = matmul(cat({Sv, St}, 1), concat_weight);
  } else {
    // 3. marginals over the prototype sets from the bag's mean similarities.
    Tensor mu = softmax(mean(Sv, {0}), 0);  // (Kv)
    Tensor nu = softmax(mean(St, {0}), 0);  // (Kt)
    // 4-5. transport between visual and text prototypes, cost 1 - cos.
    Tensor cost = rsub(1.0, matmul(Pvn, t(Ptn)));  // (Kv, Kt)
    SinkhornOptions sc;
    sc.epsilon = config_.ot_epsilon;
    sc.iterations = config_.ot_iter;
    plan = sinkhorn_plan(mu, nu, cost, sc);  // (Kv, Kt)
    // 6. s_j = Sv_j T St_j^T, without forming anything of size N x Kv x Kt.
    s = bilinear_rows(Sv, plan, St);  // (N)
  }
  if (record_stats_ && is_training()) last_scores_ = s.detach();
  // 7. reweight instances.
  Tensor w;
  if (config_.fusion == "literal") {
    w = s;
  } else if (config_.fusion == "standardised") {
    // Issue 23's form with a usable scale: s standardised within the bag (zero mean, unit
    // population standard deviation) before the temperature, so that the softmax sees logits of
    // spread exp(-temp_vis) ~ 0.37 at the start instead of the ~5e-3 spread of raw s.
    // That is layer normalisation of s as one row, without weight or bias; kStandardiseEps
    // keeps a constant s (a one-instance bag) at w = 1 instead of 0 / 0.
    Tensor z = reshape(layer_norm(unsqueeze(s, 0), Tensor(), Tensor(), kStandardiseEps), {-1});  // (N)
    w = mul(softmax(mul(z, exp(neg(temp_vis))), 0), (double)N);
  } else {
    w = mul(softmax(mul(s, exp(neg(temp_vis))), 0), (double)N);
  }
  if (ex) {
    ex->instance_weights = w.detach().to(DType::F32).clone();
    ex->instance_scores = s.detach().to(DType::F32).clone();
    ex->sim_text = St.detach().to(DType::F32).clone();
    if (plan.defined()) ex->plan = plan.detach().to(DType::F32).clone();
  }
  return w;
}

// Reference mode: one transport problem per instance between its text and visual
// attention distributions (SPEC "Forward, reference mode"). Returns the instance weights w
// (N): Xf = w[:, None] * V.
Tensor LibraMIL::fuse_reference(const Tensor& V, const Tensor& Pv, const Tensor& Pt, LibraMILExplanation* ex) {
  Tensor a_t = softmax(mul(matmul(V, t(Pt)), exp(neg(temp_struct))), -1);  // (N, Kt)
  Tensor a_v = softmax(mul(matmul(V, t(Pv)), exp(neg(temp_vis))), -1);     // (N, Kv)
  Tensor cost = rsub(1.0, matmul(l2_normalize(Pt, 1), t(l2_normalize(Pv, 1))));  // (Kt, Kv)
  SinkhornOptions sc;
  sc.epsilon = config_.ot_epsilon;
  sc.iterations = config_.ot_iter;
  Tensor cols = sinkhorn_column_sums(a_t, a_v, cost, sc);  // (N, Kv) column sums of each plan
  Tensor fused = softmax(cols, -1);                         // (N, Kv)
  Tensor scale = sum(fused, {1}, true);                     // (N, 1), = 1 up to rounding
  if (ex) {
    ex->instance_scores = reshape(scale, {-1}).detach().to(DType::F32).clone();
    ex->instance_weights = ex->instance_scores;
    ex->sim_text = matmul(l2_normalize(V, 1), t(l2_normalize(Pt, 1))).detach().to(DType::F32).clone();
  }
  return reshape(scale, {-1});
}

// Multi-head cross-attention with C queries over the N reweighted instances Xf = w[:, None] V,
// computed without projecting the instances and without forming Xf: with Wk_h, Wv_h the rows
// of k_proj / v_proj belonging to head h,
//   scores_h = (Q_h Wk_h) Xf^T + Q_h bk_h = ((Q_h Wk_h) V^T) * w^T + Q_h bk_h
//   out_h    = (A_h Xf) Wv_h^T + bv_h     = ((A_h * w^T) V) Wv_h^T + bv_h,
// because softmax rows sum to one. Q_h bk_h is the same for every instance, so it cancels
// in the softmax and is dropped. This replaces the two (N, D) x (D, D) projections of the
// keys and values (and their gradients) by products with only C x heads rows; the result
// equals o_proj(MHA(q_proj(Pb), k_proj(Xf), v_proj(Xf))) (see the parity test).
Tensor LibraMIL::key_queries(const Tensor& Pb) {
  const int64_t C = Pb.shape()[0], D = config_.dim, heads = config_.heads, d = D / heads;
  Tensor q = permute(reshape(q_proj(Pb), {C, heads, d}), {1, 0, 2});  // (H, C, d)
  Tensor wk = reshape(k_proj.weight, {heads, d, D});                  // (H, d, D)
  return reshape(matmul(q, wk), {heads * C, D});                      // (H*C, D)
}

Tensor LibraMIL::class_query_attention(const Tensor& q_keys, const Tensor& V, Tensor keys_t, const Tensor& w,
                                       LibraMILExplanation* ex) {
  const int64_t C = q_keys.shape()[0] / config_.heads, D = config_.dim, heads = config_.heads, d = D / heads;
  Tensor wv = reshape(v_proj.weight, {heads, d, D});                         // (H, d, D)
  // The keys V (Q_h Wk_h)^T, as V's product with the queries: with V as the left operand, V's
  // gradient from it is one GEMM that adds into V's running gradient sum (autograd/node.h).
  // Paper mode computes it inside step 2's product (fuse_paper); otherwise it is computed here.
  if (!keys_t.defined()) keys_t = matmul(V, t(q_keys));                     // (N, H*C)
  // scores = keys^T * w^T / sqrt(d), attn = softmax(scores) along N, pooled = (attn * w^T) V:
  // one op (ops/attention_pool.h).
  Tensor attn;
  Tensor pooled = weighted_attention_pool(keys_t, w, V, 1.0 / std::sqrt((double)d), ex ? &attn : nullptr);
  pooled = reshape(pooled, {heads, C, D});                                   // (H, C, D)
  Tensor out = add(matmul(pooled, transpose(wv, 1, 2)), reshape(v_proj.bias, {heads, 1, d}));  // (H, C, d)
  if (ex) ex->attention = mean(reshape(attn, {heads, C, -1}), {0}).detach().to(DType::F32).contiguous();
  return o_proj(reshape(permute(out, {1, 0, 2}), {C, D}));                   // (C, D)
}

Tensor LibraMIL::run(const Tensor& x, LibraMILExplanation* ex) {
  if (x.dim() != 2 || x.shape()[1] != config_.dim)
    throw std::invalid_argument("Libra-MIL: bag features " + x.str() + " do not match the model width D=" + std::to_string(config_.dim));
  if (x.shape()[0] == 0) throw std::invalid_argument("Libra-MIL: empty bag (0 instances)");
  // 1. projections.
  Tensor V = project(proj_v, x, true);
  Tensor Pv = project(proj_v, proto_vis, true);
  Tensor Pt = project(proj_llm, prompt_inst, false);
  Tensor Pb = project(proj_llm, prompt_bag, false);
  last_scores_ = Tensor();
  Tensor q_keys = key_queries(Pb);  // (H*C, D), step 8's queries through the key projection
  Tensor keys_t;                    // (N, H*C) = V q_keys^T, from step 2's product in paper mode
  Tensor w = config_.mode == "paper" ? fuse_paper(V, Pv, Pt, ex, q_keys, &keys_t) : fuse_reference(V, Pv, Pt, ex);
  if (record_stats_ && is_training()) stats_ = transport_stats(w, last_scores_);
  // 8. class priors attend over the reweighted instances Xf = w[:, None] * V.
  Tensor H = class_query_attention(q_keys, V, keys_t, w, ex);  // (C, D)
  // 9. one logit per class query.
  return squeeze(classification_head(H), -1);
}

}  // namespace lm::models
