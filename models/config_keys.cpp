// drop_mistyped_config_keys (see config_keys.h). The table follows options_json and
// run_protocol's "inputs" in models/trainer.cpp.
#include "models/config_keys.h"

#include <utility>

namespace lm::train {

namespace {

enum class Kind { Text, Integer, Unsigned, Number };

const char* expected(Kind k) {
  switch (k) {
    case Kind::Text: return "a string";
    case Kind::Integer: return "an integer";
    case Kind::Unsigned: return "a non-negative integer";
    case Kind::Number: return "a number";
  }
  return "";
}

bool fits(const nlohmann::json& v, Kind k) {
  switch (k) {
    case Kind::Text: return v.is_string();
    case Kind::Integer: return v.is_number_integer();
    case Kind::Unsigned: return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    case Kind::Number: return v.is_number();
  }
  return false;
}

std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

}  // namespace

std::vector<std::string> drop_mistyped_config_keys(nlohmann::json& config) {
  std::vector<std::string> problems;
  static const std::pair<const char*, Kind> keys[] = {
      {"model", Kind::Text},           {"mode", Kind::Text},          {"fusion", Kind::Text},
      {"ablation", Kind::Text},        {"dim", Kind::Integer},        {"num_classes", Kind::Integer},
      {"ot_epsilon", Kind::Number},    {"ot_iter", Kind::Integer},    {"heads", Kind::Integer},
      {"num_vis_prototypes", Kind::Integer}, {"text_dim", Kind::Integer}, {"num_text_prototypes", Kind::Integer},
      {"epochs", Kind::Integer},       {"folds", Kind::Integer},      {"lr", Kind::Number},
      {"weight_decay", Kind::Number},  {"warmup_steps", Kind::Integer}, {"seed", Kind::Unsigned},
      {"select", Kind::Text}, {"classes", Kind::Text}};
  for (const auto& [key, kind] : keys)
    if (config.contains(key) && !fits(config[key], kind)) {
      problems.push_back("'" + std::string(key) + "' is " + shown(config[key]) + ", expected " + expected(kind));
      config.erase(key);
    }
  if (!config.contains("inputs")) return problems;
  nlohmann::json& in = config["inputs"];
  if (!in.is_object()) {
    problems.push_back("'inputs' is " + shown(in) + ", expected an object");
    config.erase("inputs");
    return problems;
  }
  std::vector<std::string> bad;
  for (auto it = in.begin(); it != in.end(); ++it)
    if (!it.value().is_string()) {
      problems.push_back("'inputs." + it.key() + "' is " + shown(it.value()) + ", expected a string");
      bad.push_back(it.key());
    }
  for (const std::string& k : bad) in.erase(k);
  return problems;
}

}  // namespace lm::train
