// Reading a run directory for the report (run_dir.h): config.json, the fold logs, the summary
// and the test predictions, each guarded so that a broken file becomes a note.
#include "models/report/run_dir.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

#include "data/metrics.h"
#include "data/tables.h"
#include "data/text_util.h"
#include "models/train/config_json.h"

namespace lm::report {

namespace fs = std::filesystem;
using json = nlohmann::json;
using data::lower;
using data::trim;

std::string read_text_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

double to_num(const std::string& s) {
  if (s.empty()) return NAN;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return NAN;
  return v;
}

Table read_table(const fs::path& p) {
  Table t;
  std::vector<data::CsvRecord> recs = data::parse_csv(read_text_file(p), p.string());
  if (recs.empty()) throw std::runtime_error(p.string() + ": empty file");
  t.header = recs[0].fields;
  if (!t.header.empty() && t.header[0].rfind("\xEF\xBB\xBF", 0) == 0) t.header[0].erase(0, 3);
  for (size_t i = 1; i < recs.size(); ++i)
    if (!(recs[i].fields.size() == 1 && recs[i].fields[0].empty())) t.rows.push_back(recs[i].fields);
  return t;
}


std::string input(const Run& r, const std::string& key) {
  auto it = r.inputs.find(key);
  return it == r.inputs.end() ? "" : it->second;
}

namespace {

std::string run_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  std::string n = p.filename().string();
  if (n.empty() || n == "." || n == "..") {
    std::error_code ec;
    fs::path a = fs::absolute(p, ec);
    n = a.filename().string();
  }
  return n.empty() ? dir : n;
}

// Shots = train slides per class in fold 0 (config.json "shots" wins when recorded).
void derive_shots(Run& r) {
  if (r.config.contains("shots") && r.config["shots"].is_number_integer()) {
    r.shots = r.config["shots"].get<int>();
    return;
  }
  if (!input(r, "shots").empty()) {  // train --shots K and demo record it with the inputs
    double k = to_num(input(r, "shots"));
    if (std::isfinite(k) && k >= 0) {
      r.shots = (int)k;
      return;
    }
  }
  std::string split = input(r, "split"), labels = input(r, "labels");
  if (split.empty() || labels.empty()) {
    r.shots_note = "the run does not record its split and labels";
    return;
  }
  try {
    std::vector<data::FoldSplit> s = data::read_split_json(split, 0);
    std::map<std::string, int> lab;
    for (auto& l : data::read_labels_csv(labels)) lab[l.name] = l.label;
    std::map<int, int> per_class;
    for (const std::string& n : s.at(0).train)
      if (lab.count(n)) ++per_class[lab[n]];
    if (per_class.empty()) {
      r.shots_note = "no labelled train slide in fold 0";
      return;
    }
    int lo = std::numeric_limits<int>::max(), hi = 0;
    for (auto& [c, k] : per_class) lo = std::min(lo, k), hi = std::max(hi, k);
    r.shots = lo;
    if (hi != lo) r.shots_note = "unequal train slides per class (" + std::to_string(lo) + ".." + std::to_string(hi) + "); the minimum is shown";
  } catch (const std::exception& e) {
    r.shots_note = std::string("cannot derive shots: ") + e.what();
  }
}

void detect_simulated(Run& r) {
  std::string feats = input(r, "features");
  if (feats.empty()) return;
  for (fs::path p : {fs::path(feats) / "README.txt", fs::path(feats).parent_path() / "README.txt",
                     fs::path(feats).lexically_normal().parent_path().parent_path() / "README.txt"}) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) continue;
    try {
      std::string t = read_text_file(p);
      if (lower(t).find("simulated") == std::string::npos) continue;
      std::string first = trim(t.substr(0, t.find('\n')));
      r.simulated = first.empty() ? "simulated data" : first;
      r.simulated_readme = p.string();
      return;
    } catch (...) {
    }
  }
}

}  // namespace

Run load_run(const std::string& dir, size_t index) {
  Run r;
  r.dir = dir;
  r.name = run_name(dir);
  r.id = "run" + std::to_string(index);
  const fs::path d(dir), logs = d / "logs";
  std::error_code ec;
  if (!fs::is_directory(d, ec)) {
    r.notes.push_back("<code>" + h(dir) + "</code> is not a directory.");
    return r;
  }
  try {
    r.config = json::parse(read_text_file(d / "config.json"));
    if (!r.config.is_object()) throw std::runtime_error("not a JSON object");
    for (const std::string& m : train::drop_mistyped_config_keys(r.config)) r.notes.push_back("config.json: " + h(m) + "; ignored.");
    if (r.config.contains("inputs")) for (auto& [k, v] : r.config["inputs"].items()) r.inputs[k] = v.get<std::string>();
    // The run's options through the one reader of config.json (models/train/config_json.h);
    // keys of the wrong type were set aside above, so only an out-of-range integer is left.
    train::TrainOptions o;
    o.model = "unknown";  // what the report shows for a key that is not recorded
    o.folds = 0;
    train::options_from_json(r.config, o, [](const std::string& key, const nlohmann::json& value, const char* expected) {
      throw std::runtime_error("'" + key + "' is " + train::shown_json(value) + ", expected " + expected);
    });
    r.model = o.model;
    r.folds = o.folds;
    r.class_names = o.class_names;
    r.mode = o.libramil.mode;
    r.ablation = o.libramil.ablation;
    r.fusion = o.libramil.fusion;
    r.lr = o.lr;
    r.num_classes = r.config.value("num_classes", 0);
  } catch (const std::exception& e) {
    r.notes.push_back("config.json could not be read (" + h(e.what()) + "); the model and its inputs are unknown.");
  }
  r.model_label = r.model;
  if (r.model == "libramil") {
    if (r.mode != "paper") r.model_label += " (" + r.mode + ")";
    if (r.ablation != "none") r.model_label += " [" + r.ablation + "]";
    if (r.mode == "paper" && r.fusion != "softmax") r.model_label += " {" + r.fusion + "}";
  }
  // A learning rate other than train's default names the run apart (e.g. a baseline at its own
  // rate beside the same model at the shared one).
  if (r.lr > 0 && r.lr != train::TrainOptions().lr) {
    std::ostringstream lr;
    lr << r.lr;
    r.model_label += " lr " + lr.str();
  }
  // Summary, per-fold results.
  try {
    Table s = read_table(logs / "summary_log.csv");
    for (size_t i = 0; i < s.rows.size(); ++i) {
      if (s.rows[i].empty()) continue;
      data::MeanStd m{s.num(i, "mean"), s.num(i, "std")};
      const std::string& k = s.rows[i][0];
      if (k == "acc") r.acc = m;
      if (k == "auc") r.auc = m;
      if (k == "f1") r.f1 = m;
    }
    r.has_summary = true;
  } catch (const std::exception& e) {
    r.notes.push_back("logs/summary_log.csv: " + h(e.what()));
  }
  try {
    r.final_log = read_table(logs / "final_log.csv");
    r.has_final = true;
    if (!r.has_summary && !r.final_log.rows.empty()) {  // recompute from the folds
      std::vector<double> a, u, f;
      for (size_t i = 0; i < r.final_log.rows.size(); ++i) {
        a.push_back(r.final_log.num(i, "test_acc"));
        u.push_back(r.final_log.num(i, "test_auc"));
        f.push_back(r.final_log.num(i, "test_f1"));
      }
      r.acc = data::mean_std(a);
      r.auc = data::mean_std(u);
      r.f1 = data::mean_std(f);
      r.has_summary = true;
      r.notes.push_back("The summary was recomputed from logs/final_log.csv (mean and sample std of the folds).");
    }
  } catch (const std::exception& e) {
    r.notes.push_back("logs/final_log.csv: " + h(e.what()));
  }
  // Epoch logs.
  for (int fold = 0; fold < 1000; ++fold) {
    fs::path p = logs / ("log_" + std::to_string(fold) + ".csv");
    if (!fs::exists(p, ec)) {
      if (fold >= std::max(r.folds, 1)) break;
      continue;
    }
    try {
      r.fold_logs.push_back({fold, read_table(p)});
    } catch (const std::exception& e) {
      r.notes.push_back(h(p.filename().string()) + ": " + h(e.what()));
    }
  }
  // Test predictions.
  try {
    Table t = read_table(logs / "test_predictions.csv");
    int cf = t.col("fold"), cs = t.col("slide"), cl = t.col("label");
    if (cf < 0 || cs < 0 || cl < 0) throw std::runtime_error("expected columns fold, slide, label, prob_0, ...");
    std::vector<int> pc;
    for (int c = 0;; ++c) {
      int k = t.col("prob_" + std::to_string(c));
      if (k < 0) break;
      pc.push_back(k);
    }
    if (pc.size() < 2) throw std::runtime_error("fewer than two prob_<class> columns");
    for (auto& row : t.rows) {
      if (row.size() < t.header.size()) continue;
      Pred p;
      p.fold = (int)to_num(row[(size_t)cf]);
      p.slide = row[(size_t)cs];
      p.label = (int)to_num(row[(size_t)cl]);
      for (int k : pc) p.probs.push_back(to_num(row[(size_t)k]));
      if (p.label < 0 || p.label >= (int)pc.size()) continue;
      r.preds.push_back(std::move(p));
    }
    if (r.num_classes <= 0) r.num_classes = (int)pc.size();
  } catch (const std::exception& e) {
    r.notes.push_back("logs/test_predictions.csv: " + h(e.what()));
  }
  if (r.folds <= 0) r.folds = (int)std::max(r.fold_logs.size(), r.has_final ? r.final_log.rows.size() : 0);
  derive_shots(r);
  detect_simulated(r);
  return r;
}

// A class as the run names it: `train --classes`, else "class <c>".
std::string class_name(const Run& r, int c) {
  return c >= 0 && c < (int)r.class_names.size() ? r.class_names[c] : "class " + std::to_string(c);
}

}  // namespace lm::report
