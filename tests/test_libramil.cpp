// Libra-MIL end to end against the independent PyTorch implementation of SPEC.md in
// tools/libramil_reference.py: random weights (PyTorch init, reference names) are loaded
// here, one forward + backward on a random bag, and the logits, loss and every parameter
// gradient are compared, in paper mode (both fusions) and reference mode, for several bag
// sizes, and so are the per-patch scores heatmaps draw (models/mil/patch_scores.h: instance weight,
// each class query's attention, each text prototype's similarity). Also: the protocol on a tiny dataset, the selection rule, checkpoint round trips.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/formats/safetensors.h"
#include "models/mil/libramil.h"
#include "models/mil/patch_scores.h"
#include "models/train/checkpoint.h"
#include "models/train/trainer.h"
#include "ops/ops.h"
#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

double rel_err(const Tensor& a, const Tensor& b) {
  auto x = a.to_double_vector(), y = b.to_double_vector();
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num = std::max(num, std::abs(x[i] - y[i]));
    den = std::max(den, std::abs(y[i]));
  }
  return num / std::max(den, 1e-30);
}

struct ParityCase {
  std::string mode, fusion;
  int64_t n;
  std::string dtype;
  std::string ablation = "none";
};

void check_parity(const ParityCase& c, const fs::path& dir, const std::string& weights) {
  CAPTURE(c.mode);
  CAPTURE(c.fusion);
  CAPTURE(c.n);
  CAPTURE(c.dtype);
  CAPTURE(c.ablation);
  Generator gen(1000 + (uint64_t)c.n);
  DType dt = c.dtype == "float64" ? DType::F64 : DType::F32;
  Tensor x = Tensor::randn({c.n, 32}, gen, dt);
  std::string feat = (dir / ("bag_" + std::to_string(c.n) + "_" + c.dtype + ".safetensors")).string();
  data::write_safetensors(feat, std::vector<std::pair<std::string, Tensor>>{{"features", x}});
  int label = (int)(c.n % 3);
  auto dump = [&](const std::string& dtype) {
    std::string ref =
        (dir / ("ref_" + c.mode + c.fusion + c.ablation + std::to_string(c.n) + dtype + ".safetensors")).string();
    test::run_python_tool("libramil_reference.py", "dump --weights " + weights + " --features " + feat + " --label " +
                                                       std::to_string(label) + " --mode " + c.mode + " --fusion " + c.fusion +
                                                       " --heads 4 --ablation " + c.ablation + " --dtype " + dtype + " --out " + ref);
    return ref;
  };
  std::string ref = dump(c.dtype);
  // For float32 runs, the float64 reference tells how far PyTorch's own float32 result is from
  // the exact answer: gradients that cancel to ~0 (e.g. the head bias, whose gradient is the sum
  // of softmax - onehot) are pure rounding noise in both implementations.
  std::string ref64 = c.dtype == "float32" ? dump("float64") : ref;
  train::LibraMILOverrides ov;
  ov.mode = c.mode;
  ov.fusion = c.fusion;
  ov.heads = 4;
  ov.ablation = c.ablation;
  auto model = train::load_model_from_checkpoint(weights, ov);
  model->to(dt);
  Tensor logits = (*model)(x);
  Tensor loss = cross_entropy(unsqueeze(logits, 0), Tensor::from_vector(std::vector<int64_t>{label}, {1}));
  backward(loss);
  data::SafetensorsFile r = data::read_safetensors(ref);
  data::SafetensorsFile r64 = data::read_safetensors(ref64);
  double tol_logit = dt == DType::F64 ? 1e-10 : 1e-5;
  double tol_grad = dt == DType::F64 ? 1e-8 : 1e-4;
  CHECK(rel_err(logits, r.at("logits")) < tol_logit);
  CHECK(rel_err(loss, r.at("loss")) < tol_logit);
  // Each gradient: error = max|ours - torch| / max|torch|. Where PyTorch's own float32 result
  // is far from its float64 one (cancellation), ours must instead be no further from the
  // float64 answer than 4x PyTorch's float32 distance.
  // Gradients that are mathematically zero (reference mode: sum_k fused_j[k] = 1, so the
  // prototypes, prompts and temperatures get only rounding noise; the head bias: sum of
  // softmax - onehot) are judged against a floor relative to the model's largest gradient.
  double global = 0;
  for (auto& [name, p] : model->named_parameters())
    for (double v : r64.at("grad." + name).to_double_vector()) global = std::max(global, std::abs(v));
  const double floor = 1e-6 * global;
  double worst = 0, raw_worst = 0;
  std::string worst_name;
  for (auto& [name, p] : model->named_parameters()) {
    Tensor g = p.grad().defined() ? p.grad() : Tensor::zeros(p.shape(), p.dtype());
    auto a = g.to_double_vector(), b = r.at("grad." + name).to_double_vector(), e = r64.at("grad." + name).to_double_vector();
    double diff = 0, scale = 0, ours_exact = 0, torch_exact = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      diff = std::max(diff, std::abs(a[i] - b[i]));
      scale = std::max(scale, std::abs(b[i]));
      ours_exact = std::max(ours_exact, std::abs(a[i] - e[i]));
      torch_exact = std::max(torch_exact, std::abs(b[i] - e[i]));
    }
    // Plus an absolute allowance (as in torch.allclose) of a few ulps of an O(1) value:
    // 3e-7 in float32, 1e-15 in float64.
    const double atol = dt == DType::F64 ? 1e-15 : 3e-7;
    double err = std::max(0.0, diff - atol) / std::max(scale, floor);
    if (err >= tol_grad && dt == DType::F32 && ours_exact <= 4 * torch_exact) err = 0.0;  // rounding noise, no worse than torch
    if (err > worst) {
      worst = err;
      worst_name = name;
    }
    raw_worst = std::max(raw_worst, diff / std::max(scale, floor));
  }
  CAPTURE(worst_name);
  CHECK(worst < tol_grad);
  // The explanation (per-patch scores) against the reference's own weight, attention and
  // similarity matrices.
  models::PatchScores ps = models::compute_patch_scores(*model, x);
  const Tensor& ref_w = r.at("explain.weight");
  const Tensor& ref_a = r.at("explain.attention");  // (C, N)
  const Tensor& ref_s = r.at("explain.sim_text");   // (N, Kt)
  const int64_t C = ref_a.shape()[0], Kt = ref_s.shape()[1];
  REQUIRE(ps.scores.size() == size_t(1 + C + Kt));
  auto as_tensor = [&](const std::vector<float>& v) { return Tensor::from_vector(v, {(int64_t)v.size()}); };
  const double tol_score = dt == DType::F64 ? 1e-6 : 1e-5;  // scores come back as float32
  double score_worst = 0;
  auto check_score = [&](const models::PatchScore& sc, const Tensor& ref_values) {
    CAPTURE(sc.name);
    const double e = rel_err(as_tensor(sc.values), ref_values);
    CHECK(e < tol_score);
    score_worst = std::max(score_worst, e);
  };
  CHECK(ps.scores[0].name == "weight");
  check_score(ps.scores[0], ref_w);
  for (int64_t k = 0; k < C; ++k) {
    CHECK(ps.scores[size_t(1 + k)].name == "attention_" + std::to_string(k));
    check_score(ps.scores[size_t(1 + k)], select(ref_a, 0, k).contiguous());
  }
  for (int64_t k = 0; k < Kt; ++k) {
    CHECK(ps.scores[size_t(1 + C + k)].name == "entity_" + std::to_string(k));
    check_score(ps.scores[size_t(1 + C + k)], select(ref_s, 1, k).contiguous());
  }
  MESSAGE("libramil parity " << c.mode << "/" << c.fusion << " N=" << c.n << " " << c.dtype << ": logits rel err "
                             << rel_err(logits, r.at("logits")) << ", worst grad rel err " << worst << " (" << worst_name << "), before the absolute allowance " << raw_worst
                             << "; per-patch scores worst rel err " << score_worst);
}

}  // namespace

TEST_CASE("Libra-MIL forward/backward equals the PyTorch reference of SPEC.md") {
  fs::path dir = test::scratch_dir("libramil_parity");
  std::string weights = (dir / "weights.safetensors").string();
  test::run_python_tool("libramil_reference.py",
                        "init --out " + weights + " --dim 32 --text-dim 24 --kv 5 --kt 7 --classes 3 --heads 4 --seed 3");
  std::vector<ParityCase> cases = {
      {"paper", "softmax", 1, "float32"},    {"paper", "softmax", 7, "float32"},   {"paper", "softmax", 300, "float32"},
      {"paper", "softmax", 5000, "float32"}, {"paper", "literal", 7, "float32"},   {"paper", "literal", 300, "float32"},
      {"reference", "softmax", 1, "float32"}, {"reference", "softmax", 300, "float32"},
      {"reference", "softmax", 5000, "float32"}, {"paper", "softmax", 50, "float64"}, {"reference", "softmax", 50, "float64"},
      {"paper", "softmax", 300, "float32", "no_transport"},  {"paper", "softmax", 50, "float64", "no_transport"},
      {"paper", "standardised", 1, "float32"}, {"paper", "standardised", 300, "float32"},
      {"paper", "standardised", 50, "float64"}, {"paper", "standardised", 300, "float32", "no_instance_priors"},
  };
  for (const ParityCase& c : cases) check_parity(c, dir, weights);
}

// `bench train-step --fusion` (issue #4's "paper mode's share of a training step"): the fusion
// alone is timed for both modes and its fields reach the JSON; other models are refused.
TEST_CASE("bench train-step --fusion: the fusion alone is timed for both modes; other models are refused") {
  const auto dir = test::scratch_dir("bench_fusion");
  for (const std::string mode : {"paper", "reference"}) {
    const auto log = dir / (mode + ".txt");
    const int rc = test::run_libramil("bench train-step --fusion --instances 200 --dim 32 --text-prototypes 7 "
                                      "--visual-prototypes 4 --repeats 1 --threads 1 --mode " + mode,
                                      log);
    const std::string out = test::read_text(log);
    INFO(out);
    REQUIRE(rc == 0);
    const nlohmann::json j = nlohmann::json::parse(out.substr(out.find('{')));
    CHECK(j.at("mode") == mode);
    CHECK(j.at("fusion_median_ms").get<double>() > 0);
    CHECK(j.at("fusion_forward_median_ms").get<double>() > 0);
    CHECK(j.at("fusion_share_of_step").get<double>() ==
          doctest::Approx(j.at("fusion_median_ms").get<double>() / j.at("median_ms").get<double>()));
  }
  const auto log = dir / "abmil.txt";
  CHECK(test::run_libramil("bench train-step --fusion --model abmil --instances 50 --dim 16 --repeats 1", log) != 0);
  const std::string out = test::read_text(log);
  INFO(out);
  CHECK(out.find("--fusion times Libra-MIL's fusion (--model libramil)") != std::string::npos);
}
