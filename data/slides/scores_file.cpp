// Reading and writing the per-patch scores file (data/slides/scores_file.h).
#include "data/slides/scores_file.h"

#include <set>
#include <sstream>
#include <stdexcept>

#include "data/formats/hdf5_reader.h"
#include "data/formats/hdf5_writer.h"
#include "data/text_util.h"

namespace lm::slides {

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

const char* kInfoKeys[] = {"model", "checkpoint", "features", "slide", "written_by", "probabilities", "prediction"};

}  // namespace

void write_scores_h5(const std::string& path, const SlideScores& s) {
  const size_t n = s.coords.size();
  std::set<std::string> seen;
  std::string names;
  for (const ScoreColumn& c : s.scores) {
    if (c.name.empty() || c.name == "coords" || c.name.find(',') != std::string::npos || c.name.find('/') != std::string::npos)
      throw std::runtime_error(path + ": invalid score name '" + c.name + "'");
    if (!seen.insert(c.name).second) throw std::runtime_error(path + ": score '" + c.name + "' given twice");
    if (c.values.size() != n)
      throw std::runtime_error(path + ": score '" + c.name + "' has " + std::to_string(c.values.size()) + " values for " +
                               std::to_string(n) + " patches");
    names += (names.empty() ? "" : ",") + c.name;
  }
  std::vector<int64_t> flat;
  flat.reserve(2 * n);
  for (const Coord& c : s.coords) flat.push_back(c[0]), flat.push_back(c[1]);
  data::H5Writer w(path);
  w.dataset_i64("coords", {uint64_t(n), 2}, flat.data());
  if (s.patch_size_level0 > 0) w.attr_i64("coords", "patch_size_level0", s.patch_size_level0);
  if (s.patch_size > 0) w.attr_i64("coords", "patch_size", s.patch_size);
  if (s.target_mag > 0) w.attr_f64("coords", "target_magnification", s.target_mag);
  for (const ScoreColumn& c : s.scores) {
    w.dataset_f32(c.name, {uint64_t(n)}, c.values.data());
    w.attr_string(c.name, "label", c.label);
    w.attr_string(c.name, "description", c.description);
  }
  w.attr_string("/", "scores", names);
  for (const auto& [k, v] : s.info) w.attr_string("/", k, v);
  w.commit();
}

std::vector<const ScoreColumn*> select_scores(const SlideScores& s, const std::vector<std::string>& specs,
                                              const std::string& path) {
  std::set<const ScoreColumn*> chosen;
  auto by_name = [&](const std::string& n) -> const ScoreColumn* {
    for (const ScoreColumn& c : s.scores)
      if (c.name == n) return &c;
    return nullptr;
  };
  for (const std::string& spec : specs) {
    std::vector<const ScoreColumn*> hit;
    const size_t colon = spec.find(':');
    const std::string kind = spec.substr(0, colon), arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
    if (spec == "all") {
      for (const ScoreColumn& c : s.scores) hit.push_back(&c);
    } else if (const ScoreColumn* c = by_name(spec)) {
      hit.push_back(c);
    } else if (kind == "attention" && colon == std::string::npos) {
      for (const ScoreColumn& c2 : s.scores)
        if (c2.name.rfind("attention_", 0) == 0) hit.push_back(&c2);
    } else if ((kind == "attention" || kind == "entity") && !arg.empty()) {
      if (const ScoreColumn* c2 = by_name(kind + "_" + arg)) hit.push_back(c2);
      else
        for (const ScoreColumn& c3 : s.scores)
          if (c3.name.rfind(kind + "_", 0) == 0 && data::lower(c3.label) == data::lower(arg)) hit.push_back(&c3);
    }
    if (hit.empty()) {
      std::string have;
      for (const ScoreColumn& c : s.scores) have += (have.empty() ? "" : ", ") + c.name + (c.label != c.name && c.name.rfind("entity_", 0) == 0 ? " (" + c.label + ")" : "");
      throw std::runtime_error(path + ": no score '" + spec + "' (it has: " + have + ")");
    }
    chosen.insert(hit.begin(), hit.end());
  }
  std::vector<const ScoreColumn*> out;
  for (const ScoreColumn& c : s.scores)
    if (chosen.count(&c)) out.push_back(&c);
  return out;
}

void read_coords_attributes(const std::string& path, SlideScores& s) {
  data::H5Reader h(path);
  if (!h.has("coords")) return;
  s.patch_size_level0 = int64_t(h.attr_number("coords", "patch_size_level0").value_or(0));
  s.patch_size = int64_t(h.attr_number("coords", "patch_size").value_or(0));
  s.target_mag = h.attr_number("coords", "target_magnification").value_or(0);
}

SlideScores read_scores_h5(const std::string& path) {
  data::H5Reader h(path);
  SlideScores s;
  if (!h.has("coords")) throw std::runtime_error(path + ": no 'coords' dataset (not a scores file of `libramil eval --scores`?)");
  const auto shape = h.shape("coords");
  if (shape.size() != 2 || shape[1] != 2)
    throw std::runtime_error(path + ": dataset 'coords' must have shape (N, 2)");
  const std::vector<int64_t> flat = h.read_i64("coords");
  for (size_t i = 0; i + 1 < flat.size(); i += 2) s.coords.push_back({flat[i], flat[i + 1]});
  s.patch_size_level0 = int64_t(h.attr_number("coords", "patch_size_level0").value_or(0));
  s.patch_size = int64_t(h.attr_number("coords", "patch_size").value_or(0));
  s.target_mag = h.attr_number("coords", "target_magnification").value_or(0);
  const auto names = h.attr_string("/", "scores");
  if (!names) throw std::runtime_error(path + ": no 'scores' attribute listing the score datasets (not a scores file of `libramil eval --scores`?)");
  for (const char* k : kInfoKeys)
    if (auto v = h.attr_string("/", k)) s.info[k] = *v;
  for (const std::string& name : split_commas(*names)) {
    if (!h.has(name)) throw std::runtime_error(path + ": the 'scores' attribute names '" + name + "', which is not a dataset");
    const auto sh = h.shape(name);
    if (sh.size() != 1 || sh[0] != int64_t(s.coords.size()))
      throw std::runtime_error(path + ": score '" + name + "' must have shape (" + std::to_string(s.coords.size()) + ")");
    ScoreColumn c;
    c.name = name;
    c.label = h.attr_string(name, "label").value_or(name);
    c.description = h.attr_string(name, "description").value_or("");
    c.values = h.read_f32(name);
    s.scores.push_back(std::move(c));
  }
  if (s.scores.empty()) throw std::runtime_error(path + ": holds no scores");
  return s;
}

}  // namespace lm::slides
