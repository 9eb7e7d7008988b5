// Tests of the baseline MIL models (models/mil/baselines.h):
//  - logits and every parameter gradient (cross-entropy loss, lm::backward) against the
//    independent PyTorch implementations of tools/baselines_reference.py, with our random
//    weights transferred through safetensors (which also checks that the state_dict names
//    agree: the reference loads them strictly and returns one gradient per parameter);
//  - the per-patch scores (models/mil/patch_scores.h: ABMIL / gated attention, TransMIL class-token
//    attention) against the same reference's, computed there from its own attention matrices;
//  - the factory, input checks and attention accessors;
//  - each model overfits one bag with AdamW (a training sanity check).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/formats/safetensors.h"
#include "models/mil/baselines.h"
#include "models/nn/optim.h"
#include "models/mil/patch_scores.h"
#include "ops/ops.h"
#include "tests/test_util.h"

namespace {

using lm::Generator;
using lm::Tensor;
namespace models = lm::models;

// max |a - b| / max(max |b|, floor)
double rel_err(const Tensor& a, const Tensor& b, double floor) {
  auto va = a.to_double_vector(), vb = b.to_double_vector();
  REQUIRE(va.size() == vb.size());
  double diff = 0, scale = floor;
  for (size_t i = 0; i < va.size(); ++i) {
    diff = std::max(diff, std::abs(va[i] - vb[i]));
    scale = std::max(scale, std::abs(vb[i]));
  }
  return diff / scale;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_double_vector()) m = std::max(m, std::abs(v));
  return m;
}

Tensor label_tensor(int64_t label) { return Tensor::from_vector(std::vector<int64_t>{label}, {1}); }

struct Case {
  std::string model;
  int64_t n, c, label;
  uint64_t seed;
  std::string tag() const { return model + "_n" + std::to_string(n) + "_c" + std::to_string(c); }
};

struct Result {
  Tensor logits;
  std::map<std::string, Tensor> grads;
  std::vector<std::string> names;  // registration order
  std::map<std::string, std::vector<float>> scores;  // models/mil/patch_scores.h, when the model has them
};

}  // namespace

TEST_CASE("baselines: logits and gradients match the PyTorch reference") {
  const int64_t D = 32;
  const auto dir = lm::test::scratch_dir("baselines_reference");
  std::vector<Case> cases;
  uint64_t seed = 1000;
  for (const auto& m : models::baseline_names())
    for (int64_t n : {1, 7, 300})
      for (int64_t c : {2, 3}) cases.push_back({m, n, c, (int64_t)(seed % (uint64_t)c), seed++});

  // Build every model, write its weights and bag, run our forward/backward.
  std::vector<Result> ours(cases.size());
  std::ofstream jobs(dir / "jobs.txt");
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& k = cases[i];
    Generator gen(k.seed);
    auto model = models::make_baseline(k.model, D, k.c, gen);
    Tensor x = Tensor::randn({k.n, D}, gen);
    const std::string w = (dir / (k.tag() + ".weights.safetensors")).string();
    const std::string f = (dir / (k.tag() + ".x.safetensors")).string();
    const std::string o = (dir / (k.tag() + ".out.safetensors")).string();
    lm::data::write_safetensors(w, model->ordered_state_dict());
    lm::data::write_safetensors(f, std::vector<std::pair<std::string, Tensor>>{{"x", x}});
    jobs << k.model << ' ' << w << ' ' << f << ' ' << k.label << ' ' << o << '\n';

    if (models::has_patch_scores(*model)) {
      models::PatchScores ps = models::compute_patch_scores(*model, x);
      for (auto& sc : ps.scores) ours[i].scores[sc.name] = sc.values;
      model->train();
    }
    Tensor logits = model->forward(x);
    REQUIRE(logits.shape() == lm::Shape{k.c});
    Tensor loss = lm::cross_entropy(logits, label_tensor(k.label));
    lm::backward(loss);
    ours[i].logits = logits.detach().contiguous();
    for (auto& [name, p] : model->named_parameters()) {
      ours[i].names.push_back(name);
      INFO(k.tag() << " " << name);
      REQUIRE(p.grad().defined());
      ours[i].grads[name] = p.grad().contiguous();
    }
  }
  jobs.close();
  lm::test::run_python_tool("baselines_reference.py", "batch " + (dir / "jobs.txt").string());

  std::map<std::string, double> logit_err, grad_err, score_err;
  std::map<std::string, std::string> worst;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& k = cases[i];
    INFO(k.tag());
    auto ref = lm::data::read_safetensors((dir / (k.tag() + ".out.safetensors")).string());
    double le = rel_err(ours[i].logits, ref.at("logits"), 1e-6);
    CHECK(le < 1e-5);
    logit_err[k.model] = std::max(logit_err[k.model], le);
    // One reference gradient per parameter, no more.
    size_t n_ref = 0;
    for (auto& name : ref.order) n_ref += name.rfind("grad.", 0) == 0;
    CHECK(n_ref == ours[i].names.size());
    // Relative to each tensor's largest entry, floored at 1e-3 of the model's largest
    // gradient entry (some gradients are exactly zero in exact arithmetic: the bias of the
    // last attention layer always, all attention parameters when N = 1).
    double gscale = 0;
    for (auto& name : ours[i].names) gscale = std::max(gscale, max_abs(ref.at("grad." + name)));
    for (auto& name : ours[i].names) {
      INFO(name);
      double ge = rel_err(ours[i].grads.at(name), ref.at("grad." + name), 1e-3 * gscale);
      CHECK(ge < 1e-4);
      if (ge > grad_err[k.model]) worst[k.model] = k.tag() + " " + name;
      grad_err[k.model] = std::max(grad_err[k.model], ge);
    }
    // Per-patch scores: the same names on both sides, each within 1e-5 of the largest entry.
    size_t n_scores = 0;
    for (auto& name : ref.order) n_scores += name.rfind("scores.", 0) == 0;
    CHECK(n_scores == ours[i].scores.size());
    CHECK((ours[i].scores.empty() == (k.model == "meanpool" || k.model == "maxpool")));
    for (auto& [name, v] : ours[i].scores) {
      INFO("score " << name);
      REQUIRE(ref.contains("scores." + name));
      Tensor mine = Tensor::from_vector(v, {(int64_t)v.size()});
      double se = rel_err(mine, ref.at("scores." + name), 1e-6);
      CHECK(se < 1e-5);
      score_err[k.model] = std::max(score_err[k.model], se);
    }
  }
  for (const auto& m : models::baseline_names())
    MESSAGE("baselines vs torch: " << m << " max rel err logits " << logit_err[m] << ", grads " << grad_err[m] << " (" << worst[m]
                                   << "), per-patch scores " << score_err[m]);
}

TEST_CASE("baselines: factory, shapes and input checks") {
  Generator gen(7);
  CHECK(models::baseline_names() == std::vector<std::string>{"abmil", "gated_abmil", "meanpool", "maxpool", "transmil"});
  try {
    models::make_baseline("clam", 8, 2, gen);
    FAIL("no exception for an unknown name");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    CHECK(msg.find("clam") != std::string::npos);
    for (const auto& m : models::baseline_names()) CHECK(msg.find(m) != std::string::npos);
  }
  for (const auto& name : models::baseline_names()) {
    INFO(name);
    auto m = models::make_baseline(name, 16, 4, gen);
    CHECK(m->forward(Tensor::randn({5, 16}, gen)).shape() == lm::Shape{4});
    CHECK_THROWS_AS(m->forward(Tensor::randn({5, 15}, gen)), std::invalid_argument);
    CHECK_THROWS_AS(m->forward(Tensor::randn({16}, gen)), std::invalid_argument);
    CHECK_THROWS_AS(m->forward(Tensor::zeros({0, 16})), std::invalid_argument);
  }
  // Same seed, same model.
  Generator g1(3), g2(3);
  auto a = models::make_baseline("transmil", 8, 2, g1), b = models::make_baseline("transmil", 8, 2, g2);
  auto sa = a->ordered_state_dict(), sb = b->ordered_state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) CHECK(rel_err(sa[i].second, sb[i].second, 1e-30) == 0.0);
  // Default widths.
  models::ABMIL ab(1024, 2, gen);
  CHECK(ab.feature.at<lm::nn::Linear>(0).weight.shape() == lm::Shape{256, 1024});
  CHECK(ab.attention.at<lm::nn::Linear>(0).weight.shape() == lm::Shape{128, 256});
  models::TransMIL tm(1024, 2, gen);
  CHECK(tm._fc1.at<lm::nn::Linear>(0).weight.shape() == lm::Shape{512, 1024});
  CHECK(tm.cls_token.shape() == lm::Shape{1, 512});
  CHECK(tm.pos_layer.proj.weight.shape() == lm::Shape{512, 1, 7, 7});
}

TEST_CASE("baselines: attention weights are exposed") {
  Generator gen(11);
  Tensor x = Tensor::randn({9, 12}, gen);
  models::ABMIL ab(12, 2, gen, 16, 8);
  models::GatedABMIL gab(12, 2, gen, 16, 8);
  CHECK_FALSE(ab.last_attention().defined());
  ab.forward(x);
  gab.forward(x);
  for (const Tensor& a : {ab.last_attention(), gab.last_attention()}) {
    REQUIRE(a.shape() == lm::Shape{9});
    CHECK_FALSE(a.requires_grad());
    double s = 0;
    for (double v : a.to_double_vector()) {
      CHECK(v > 0);
      s += v;
    }
    CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("baselines: each model overfits one bag with AdamW") {
  for (const auto& name : models::baseline_names()) {
    INFO(name);
    Generator gen(42);
    const int64_t D = 32, C = 3, N = name == "transmil" ? 16 : 40;
    auto model = models::make_baseline(name, D, C, gen);
    Tensor x = Tensor::randn({N, D}, gen);
    // Train towards the class the untrained model likes least.
    Tensor y = label_tensor(lm::argmax(lm::neg(model->forward(x)), 0).to_int_vector()[0]);
    lm::optim::AdamW opt(model->parameters(), name == "transmil" ? 2e-4 : 1e-3);
    double first = 0, last = 0;
    int steps = 0;
    for (; steps < 100; ++steps) {
      opt.zero_grad();
      Tensor loss = lm::cross_entropy(model->forward(x), y);
      last = loss.item();
      if (steps == 0) first = last;
      if (last < 0.05) break;
      lm::backward(loss);
      opt.step();
    }
    MESSAGE("overfit " << name << ": loss " << first << " -> " << last << " after " << steps << " steps");
    CHECK(last < 0.05);
  }
}
