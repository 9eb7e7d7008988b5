// Per-patch scores of the MIL models (models/mil/patch_scores.h).
#include "models/mil/patch_scores.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "models/mil/baselines.h"
#include "data/feature_bag.h"
#include "data/formats/hdf5_reader.h"
#include "data/tables.h"
#include "data/text_util.h"
#include "models/mil/libramil.h"
#include "ops/ops.h"

namespace lm::models {

namespace {

std::vector<float> floats(const Tensor& t) {
  std::vector<double> d = t.to(Device::cpu()).to_double_vector();
  return std::vector<float>(d.begin(), d.end());
}

std::vector<double> softmax_of(const Tensor& logits) {
  std::vector<double> v = logits.to(Device::cpu()).to_double_vector();
  double m = -INFINITY, z = 0;
  for (double x : v) m = std::max(m, x);
  for (double& x : v) z += (x = std::exp(x - m));
  for (double& x : v) x /= z;
  return v;
}

}  // namespace

bool has_patch_scores(const nn::Module& m) {
  return dynamic_cast<const LibraMIL*>(&m) || dynamic_cast<const ABMIL*>(&m) || dynamic_cast<const GatedABMIL*>(&m) ||
         dynamic_cast<const TransMIL*>(&m);
}

PatchScores compute_patch_scores(nn::Module& model, const Tensor& x, const std::vector<std::string>& entity_names) {
  model.eval();
  NoGradGuard no_grad;
  PatchScores out;
  if (auto* lib = dynamic_cast<LibraMIL*>(&model)) {
    LibraMILExplanation ex;
    out.model = "libramil";
    out.probabilities = softmax_of(lib->explain(x, ex));
    out.scores.push_back({"weight", "instance weight",
                          "the fused instance weight w_j that scales each instance before the class attention",
                          floats(ex.instance_weights)});
    const int64_t C = ex.attention.shape()[0], N = ex.attention.shape()[1];
    std::vector<float> att = floats(ex.attention);  // (C, N)
    for (int64_t c = 0; c < C; ++c)
      out.scores.push_back({"attention_" + std::to_string(c), "class " + std::to_string(c) + " attention",
                            "the attention of class " + std::to_string(c) + "'s prior over the instances (mean over heads)",
                            std::vector<float>(att.begin() + c * N, att.begin() + (c + 1) * N)});
    const int64_t Kt = ex.sim_text.shape()[1];
    std::vector<float> sim = floats(ex.sim_text);  // (N, Kt)
    const bool named = (int64_t)entity_names.size() == Kt;
    for (int64_t k = 0; k < Kt; ++k) {
      std::vector<float> v((size_t)N);
      for (int64_t i = 0; i < N; ++i) v[(size_t)i] = sim[(size_t)(i * Kt + k)];
      out.scores.push_back({"entity_" + std::to_string(k), named ? entity_names[(size_t)k] : "text " + std::to_string(k),
                            "cosine similarity of each projected instance to text prototype " + std::to_string(k), std::move(v)});
    }
    return out;
  }
  if (auto* tm = dynamic_cast<TransMIL*>(&model)) {
    TransMILExplanation ex;
    out.model = "transmil";
    out.probabilities = softmax_of(tm->explain(x, ex));
    out.scores.push_back({"attention", "class-token attention (layer 2)",
                          "the class token's attention over the instances in the last layer, mean over heads",
                          floats(ex.attention_layer2)});
    out.scores.push_back({"attention_layer1", "class-token attention (layer 1)",
                          "the class token's attention over the instances in the first layer, mean over heads",
                          floats(ex.attention_layer1)});
    return out;
  }
  Tensor attention;
  if (auto* ab = dynamic_cast<ABMIL*>(&model)) {
    out.model = "abmil";
    out.probabilities = softmax_of((*ab)(x));
    attention = ab->last_attention();
  } else if (auto* gab = dynamic_cast<GatedABMIL*>(&model)) {
    out.model = "gated_abmil";
    out.probabilities = softmax_of((*gab)(x));
    attention = gab->last_attention();
  } else {
    throw std::runtime_error("model " + model.type_name() +
                             " has no per-patch scores (Libra-MIL, ABMIL, gated ABMIL and TransMIL have them)");
  }
  out.scores.push_back({"attention", "attention", "the attention pooling weight a_i of each instance (sums to 1)",
                        floats(attention)});
  return out;
}

slides::SlideScores score_features_file(nn::Module& model, const std::string& path, const std::string& checkpoint,
                                        const std::vector<std::string>& entity_names, std::vector<double>* probabilities) {
  data::FeatureBag bag = data::read_feature_bag(path);
  if (!bag.coords.defined())
    throw std::runtime_error(path + ": no 'coords' dataset: per-patch scores need each patch's position (.pt bags carry "
                                    "none; features from `libramil extract`, TRIDENT or CLAM do)");
  slides::SlideScores s;
  const std::vector<double> c = bag.coords.to_double_vector();
  for (size_t i = 0; i + 1 < c.size(); i += 2) s.coords.push_back({int64_t(c[i]), int64_t(c[i + 1])});
  slides::read_coords_attributes(path, s);
  {
    data::H5Reader h(path);
    if (auto slide = h.attr_string("/", "slide")) s.info["slide"] = *slide;
  }
  PatchScores ps = compute_patch_scores(model, bag.features, entity_names);
  for (PatchScore& p : ps.scores) s.scores.push_back({p.name, p.label, p.description, std::move(p.values)});
  std::string probs;
  for (double p : ps.probabilities) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", p);
    probs += (probs.empty() ? "" : ",") + std::string(buf);
  }
  s.info["model"] = ps.model;
  s.info["checkpoint"] = std::filesystem::absolute(checkpoint).string();
  s.info["features"] = std::filesystem::absolute(path).string();
  s.info["probabilities"] = probs;
  s.info["prediction"] = std::to_string(std::max_element(ps.probabilities.begin(), ps.probabilities.end()) - ps.probabilities.begin());
  if (probabilities) *probabilities = ps.probabilities;
  return s;
}

std::vector<std::string> entity_names_for(const std::string& checkpoint, const std::string& instance_priors) {
  namespace fs = std::filesystem;
  std::string priors = instance_priors;
  if (priors.empty()) {
    const fs::path config = fs::absolute(checkpoint).parent_path().parent_path() / "config.json";
    std::error_code ec;
    if (!fs::is_regular_file(config, ec)) return {};
    try {
      std::ifstream f(config);
      const nlohmann::json j = nlohmann::json::parse(f);
      priors = j.at("inputs").at("instance_priors").get<std::string>();
    } catch (const std::exception&) {
      return {};
    }
    if (priors.empty() || !fs::is_regular_file(priors, ec)) return {};
  }
  std::vector<std::string> out;
  for (const std::string& p : data::read_instance_prompts(priors)) out.push_back(entity_label(p));
  return out;
}

std::string entity_label(const std::string& prompt) {
  const size_t colon = prompt.find(':');
  std::string n = colon == std::string::npos ? "" : data::trim(prompt.substr(0, colon));
  if (n.empty() || n.size() > 60) {
    n = data::trim(prompt);
    if (n.size() > 40) n = n.substr(0, 39) + "\xE2\x80\xA6";
  }
  return n;
}

}  // namespace lm::models
