// config.json and checkpoint metadata (see config_json.h): one table of keys and JSON types,
// the writer, the reader, and the report's lenient filter, all following that table.
#include "models/train/config_json.h"

#include <limits>
#include <sstream>
#include <utility>

namespace lm::train {

namespace {

enum class Kind { Text, Integer, Unsigned, Number, Boolean };

// Every top-level key options_to_json writes, with its type.
const std::pair<const char*, Kind> kKeys[] = {
    {"model", Kind::Text},           {"mode", Kind::Text},          {"fusion", Kind::Text},
    {"ablation", Kind::Text},        {"dim", Kind::Integer},        {"num_classes", Kind::Integer},
    {"ot_epsilon", Kind::Number},    {"ot_iter", Kind::Integer},    {"heads", Kind::Integer},
    {"num_vis_prototypes", Kind::Integer}, {"text_dim", Kind::Integer}, {"num_text_prototypes", Kind::Integer},
    {"epochs", Kind::Integer},       {"folds", Kind::Integer},      {"lr", Kind::Number},
    {"weight_decay", Kind::Number},  {"warmup_steps", Kind::Integer}, {"seed", Kind::Unsigned},
    {"select", Kind::Text},          {"classes", Kind::Text},       {"tensorboard", Kind::Boolean}};

const char* expected(Kind k) {
  switch (k) {
    case Kind::Text: return "a string";
    case Kind::Integer: return "an integer";
    case Kind::Unsigned: return "a non-negative integer";
    case Kind::Number: return "a number";
    case Kind::Boolean: return "true or false";
  }
  return "";
}

bool fits(const nlohmann::json& v, Kind k) {
  switch (k) {
    case Kind::Text: return v.is_string();
    case Kind::Integer: return v.is_number_integer();
    case Kind::Unsigned: return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    case Kind::Number: return v.is_number();
    case Kind::Boolean: return v.is_boolean();
  }
  return false;
}

Kind kind_of(const char* key) {
  for (const auto& [k, kind] : kKeys)
    if (std::string(k) == key) return kind;
  throw std::logic_error(std::string("config_json: no type for key '") + key + "'");
}

// Typed reads of `config[key]` into `out` when the key is present.
struct Reader {
  const nlohmann::json& config;
  const WrongKey& wrong;

  const nlohmann::json* get(const char* key) const {
    if (!config.contains(key)) return nullptr;
    const nlohmann::json& v = config[key];
    const Kind kind = kind_of(key);
    if (!fits(v, kind)) wrong(key, v, expected(kind));
    return &v;
  }
  void read(const char* key, std::string& out) const {
    if (const auto* v = get(key)) out = v->get<std::string>();
  }
  void read(const char* key, int& out) const {
    if (const auto* v = get(key)) {
      if (v->is_number_unsigned() ? v->get<uint64_t>() > (uint64_t)std::numeric_limits<int>::max()
                                  : (v->get<int64_t>() > std::numeric_limits<int>::max() ||
                                     v->get<int64_t>() < std::numeric_limits<int>::min()))
        wrong(key, *v, "an integer of at most 10 digits");
      out = v->get<int>();
    }
  }
  void read(const char* key, int64_t& out) const {  // same range as int (the flags are int)
    int v = (int)out;
    read(key, v);
    out = v;
  }
  void read(const char* key, uint64_t& out) const {
    if (const auto* v = get(key)) out = v->get<uint64_t>();
  }
  void read(const char* key, double& out) const {
    if (const auto* v = get(key)) out = v->get<double>();
  }
  void read(const char* key, bool& out) const {
    if (const auto* v = get(key)) out = v->get<bool>();
  }
};

}  // namespace

std::string shown_json(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

nlohmann::json options_to_json(const TrainOptions& o, const Dataset& d) {
  nlohmann::json j;
  j["model"] = o.model;
  j["dim"] = d.dim;
  j["num_classes"] = d.num_classes;
  if (o.model == "libramil") {
    j["mode"] = o.libramil.mode;
    j["fusion"] = o.libramil.fusion;
    j["ot_epsilon"] = o.libramil.ot_epsilon;
    j["ot_iter"] = o.libramil.ot_iter;
    j["heads"] = o.libramil.heads;
    j["num_vis_prototypes"] = o.libramil.num_vis_prototypes;
    j["ablation"] = o.libramil.ablation;
    if (d.z_ins.defined()) {
      j["text_dim"] = d.z_ins.shape()[1];
      j["num_text_prototypes"] = d.z_ins.shape()[0];
    }
  }
  j["epochs"] = o.epochs;
  j["folds"] = o.folds;
  j["lr"] = o.lr;
  j["weight_decay"] = o.weight_decay;
  j["warmup_steps"] = o.warmup_steps;
  j["seed"] = o.seed;
  j["select"] = o.select;
  if (o.tensorboard) j["tensorboard"] = true;  // absent: off (so earlier runs' files read the same)
  if (!o.class_names.empty()) {
    std::string names;
    for (const auto& n : o.class_names) names += (names.empty() ? "" : ",") + n;
    j["classes"] = names;
  }
  return j;
}

void options_from_json(const nlohmann::json& config, TrainOptions& o, const WrongKey& wrong) {
  const Reader r{config, wrong};
  r.read("model", o.model);
  r.read("mode", o.libramil.mode);
  r.read("fusion", o.libramil.fusion);
  r.read("ablation", o.libramil.ablation);
  r.read("ot_epsilon", o.libramil.ot_epsilon);
  r.read("ot_iter", o.libramil.ot_iter);
  r.read("heads", o.libramil.heads);
  r.read("num_vis_prototypes", o.libramil.num_vis_prototypes);
  r.read("epochs", o.epochs);
  r.read("folds", o.folds);
  r.read("lr", o.lr);
  r.read("weight_decay", o.weight_decay);
  r.read("warmup_steps", o.warmup_steps);
  r.read("seed", o.seed);
  r.read("select", o.select);
  r.read("tensorboard", o.tensorboard);
  std::string names;
  r.read("classes", names);
  if (!names.empty()) {
    o.class_names.clear();
    std::stringstream ss(names);
    for (std::string n; std::getline(ss, n, ',');) o.class_names.push_back(n);
  }
}

std::vector<std::string> drop_mistyped_config_keys(nlohmann::json& config) {
  std::vector<std::string> problems;
  for (const auto& [key, kind] : kKeys)
    if (config.contains(key) && !fits(config[key], kind)) {
      problems.push_back("'" + std::string(key) + "' is " + shown_json(config[key]) + ", expected " + expected(kind));
      config.erase(key);
    }
  if (!config.contains("inputs")) return problems;
  nlohmann::json& in = config["inputs"];
  if (!in.is_object()) {
    problems.push_back("'inputs' is " + shown_json(in) + ", expected an object");
    config.erase("inputs");
    return problems;
  }
  std::vector<std::string> bad;
  for (auto it = in.begin(); it != in.end(); ++it)
    if (!it.value().is_string()) {
      problems.push_back("'inputs." + it.key() + "' is " + shown_json(it.value()) + ", expected a string");
      bad.push_back(it.key());
    }
  for (const std::string& k : bad) in.erase(k);
  return problems;
}

}  // namespace lm::train
