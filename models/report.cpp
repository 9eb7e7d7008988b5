// HTML run reports (see report.h). Every section guards its own inputs: a missing or broken
// file becomes a visible note, never an exception out of render_report.
#include "models/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "data/atomic_file.h"
#include "data/feature_bag.h"
#include "data/metrics.h"
#include "data/slides/scores_file.h"
#include "data/tables.h"
#include "models/config_keys.h"
#include "models/libramil.h"
#include "models/patch_scores.h"
#include "models/report_slides.h"
#include "models/svg_plot.h"
#include "models/trainer.h"
#include "data/text_util.h"

namespace lm::report {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
using data::lower;
using data::trim;


// ---- small helpers ------------------------------------------------------------------------

std::string h(const std::string& s) { return escape_xml(s); }

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

std::string mean_pm_std(double mean, double std) {
  return fmt_fixed(mean, 4) + " &plusmn; " + (std::isnan(std) ? std::string("-") : fmt_fixed(std, 4));
}

std::string note(const std::string& html_text) { return "<p class=\"note\">" + html_text + "</p>\n"; }

// A CSV with a header row: column name -> index, rows of strings.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  int col(const std::string& name) const {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return (int)i;
    return -1;
  }
  double num(size_t row, const std::string& name) const {
    int c = col(name);
    return c < 0 || (size_t)c >= rows[row].size() ? NAN : to_num(rows[row][(size_t)c]);
  }
};

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

// ---- one run -------------------------------------------------------------------------------

struct Pred {
  int fold = 0;
  std::string slide;
  int label = 0;
  std::vector<double> probs;
  int pred() const { return (int)(std::max_element(probs.begin(), probs.end()) - probs.begin()); }
};

struct FoldLog {
  int fold = 0;
  Table table;
};

struct Run {
  std::string dir, name, id;  // id: HTML anchor prefix
  json config = json::object();
  std::map<std::string, std::string> inputs;
  std::string model = "unknown", model_label = "unknown";
  int num_classes = 0, folds = 0;
  std::vector<std::string> class_names;  // train --classes (config.json "classes"); empty: numbered
  int shots = -1;
  std::string shots_note;
  bool has_summary = false;
  data::MeanStd acc{NAN, NAN}, auc{NAN, NAN}, f1{NAN, NAN};
  bool has_final = false;
  Table final_log;
  std::vector<FoldLog> fold_logs;
  std::vector<Pred> preds;
  std::vector<std::string> notes;  // HTML
  std::string simulated;           // the README's first line when the data are simulated
  std::string simulated_readme;
};

std::string input(const Run& r, const std::string& key) {
  auto it = r.inputs.find(key);
  return it == r.inputs.end() ? "" : it->second;
}

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
    if (r.config.contains("classes") && r.config["classes"].is_string()) {
      std::stringstream names(r.config["classes"].get<std::string>());
      for (std::string n; std::getline(names, n, ',');) r.class_names.push_back(n);
    }
    r.model = r.config.value("model", std::string("unknown"));
    r.num_classes = r.config.value("num_classes", 0);
    r.folds = r.config.value("folds", 0);
  } catch (const std::exception& e) {
    r.notes.push_back("config.json could not be read (" + h(e.what()) + "); the model and its inputs are unknown.");
  }
  r.model_label = r.model;
  if (r.model == "libramil") {
    std::string ab = r.config.value("ablation", std::string("none"));
    std::string mode = r.config.value("mode", std::string("paper"));
    if (mode != "paper") r.model_label += " (" + mode + ")";
    if (ab != "none") r.model_label += " [" + ab + "]";
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

// ---- sections ------------------------------------------------------------------------------

std::string results_section(const Run& r) {
  std::ostringstream s;
  s << "<h3 id=\"" << r.id << "-results\">Results</h3>\n";
  if (!r.has_summary) {
    s << note("No results found (logs/summary_log.csv and logs/final_log.csv are missing).");
    return s.str();
  }
  s << "<table class=\"summary\">\n<tr><th class=\"l\">test metric</th><th>mean &plusmn; std over folds</th></tr>\n"
    << "<tr><td class=\"l\">accuracy</td><td>" << mean_pm_std(r.acc.mean, r.acc.std) << "</td></tr>\n"
    << "<tr><td class=\"l\">ROC-AUC</td><td>" << mean_pm_std(r.auc.mean, r.auc.std) << "</td></tr>\n"
    << "<tr><td class=\"l\">F1</td><td>" << mean_pm_std(r.f1.mean, r.f1.std) << "</td></tr>\n</table>\n";
  if (r.has_final && !r.final_log.rows.empty()) {
    s << "<table class=\"folds\">\n<tr><th>fold</th><th>best epoch</th><th>val acc</th><th>val AUC</th><th>val F1</th>"
      << "<th>test acc</th><th>test AUC</th><th>test F1</th></tr>\n";
    for (size_t i = 0; i < r.final_log.rows.size(); ++i) {
      double be = r.final_log.num(i, "best_epoch");
      s << "<tr><td>" << fmt_fixed(r.final_log.num(i, "fold"), 0) << "</td><td>"
        << (std::isnan(be) ? "?" : fmt_fixed(be + 1, 0)) << "</td>";
      for (const char* c : {"val_acc", "val_auc", "val_f1", "test_acc", "test_auc", "test_f1"})
        s << "<td>" << fmt_fixed(r.final_log.num(i, c), 4) << "</td>";
      s << "</tr>\n";
    }
    s << "</table>\n<p class=\"caption\">Epochs are counted from 1. The best epoch is chosen on validation accuracy "
         "(ties: validation AUC); its checkpoint is reloaded and scored on the test slides.</p>\n";
  }
  return s.str();
}

std::string roc_confusion_section(const Run& r) {
  std::ostringstream s;
  s << "<h3 id=\"" << r.id << "-roc\">ROC curves and confusion matrix</h3>\n";
  if (r.preds.empty()) {
    s << note("No test predictions (logs/test_predictions.csv) to draw ROC curves and the confusion matrix from.");
    return s.str();
  }
  const int C = std::max(r.num_classes, (int)r.preds[0].probs.size());
  std::set<int> folds;
  for (const Pred& p : r.preds) folds.insert(p.fold);
  std::vector<Series> series;
  std::vector<std::string> undefined;
  auto add_curve = [&](int cls, const std::string& name) {
    std::vector<double> score;
    std::vector<int> pos;
    for (const Pred& p : r.preds) {
      score.push_back(cls < (int)p.probs.size() ? p.probs[(size_t)cls] : NAN);
      pos.push_back(p.label == cls);
    }
    RocPoints pts = roc_points(score, pos);
    if (pts.fpr.empty()) {
      undefined.push_back(name);
      return;
    }
    double auc = data::binary_roc_auc(score, pos);
    Series sr;
    sr.name = name + " (AUC " + fmt_fixed(auc, 3) + ")";
    sr.x = pts.fpr;
    sr.y = pts.tpr;
    series.push_back(sr);
  };
  if (C == 2)
    add_curve(1, "pooled");
  else
    for (int c = 0; c < C; ++c) add_curve(c, class_name(r, c) + " vs rest");
  ChartOptions o;
  o.title = C == 2 ? "ROC (class-1 score)" : "ROC, one-vs-rest";
  o.xlabel = "false positive rate";
  o.ylabel = "true positive rate";
  o.xmin = 0, o.xmax = 1, o.ymin = 0, o.ymax = 1;
  o.diagonal = true;
  o.width = 360;
  o.height = 330;
  std::vector<std::vector<int64_t>> cm((size_t)C, std::vector<int64_t>((size_t)C, 0));
  for (const Pred& p : r.preds) ++cm[(size_t)p.label][(size_t)std::min(p.pred(), C - 1)];
  std::vector<std::string> names;
  for (int c = 0; c < C; ++c) names.push_back(class_name(r, c));
  s << "<div class=\"figs\">\n<figure>" << line_chart(series, o) << "<figcaption>Test predictions of all " << folds.size()
    << " folds pooled (" << r.preds.size() << " predictions). The AUC in the results table is the mean of the per-fold AUCs."
    << "</figcaption></figure>\n";
  s << "<figure>" << confusion_matrix(cm, names, "Confusion matrix (argmax)") << "<figcaption>Rows: true class; columns: "
    << "predicted class (argmax of the probabilities); counts pooled over folds, percentages of the row.</figcaption></figure>\n</div>\n";
  if (!undefined.empty()) {
    std::string u;
    for (auto& n : undefined) u += (u.empty() ? "" : ", ") + h(n);
    s << note("No ROC curve for " + u + ": the pooled test labels hold only one side of it.");
  }
  return s.str();
}

std::string learning_section(const Run& r) {
  std::ostringstream s;
  s << "<h3 id=\"" << r.id << "-curves\">Learning curves</h3>\n";
  if (r.fold_logs.empty()) {
    s << note("No epoch logs (logs/log_&lt;fold&gt;.csv).");
    return s.str();
  }
  for (const FoldLog& fl : r.fold_logs) {
    const Table& t = fl.table;
    std::vector<double> ep;
    for (size_t i = 0; i < t.rows.size(); ++i) ep.push_back(t.num(i, "epoch") + 1);
    auto col = [&](const std::string& c) {
      std::vector<double> v;
      for (size_t i = 0; i < t.rows.size(); ++i) v.push_back(t.num(i, c));
      return v;
    };
    double best = NAN;
    if (r.has_final)
      for (size_t i = 0; i < r.final_log.rows.size(); ++i)
        if ((int)r.final_log.num(i, "fold") == fl.fold) best = r.final_log.num(i, "best_epoch") + 1;
    ChartOptions o;
    o.xlabel = "epoch";
    o.integer_x = true;
    o.width = 360;
    o.height = 240;
    if (std::isfinite(best)) {
      o.vlines = {best};
      o.vline_label = "selected epoch";
    }
    bool markers = t.rows.size() <= 30;
    auto series = [&](const std::string& name, const std::string& c, size_t colour, bool dashed) {
      Series sr;
      sr.name = name;
      sr.x = ep;
      sr.y = col(c);
      sr.color = palette(colour);
      sr.dashed = dashed;
      sr.markers = markers;
      return sr;
    };
    ChartOptions lo = o;
    lo.title = "fold " + std::to_string(fl.fold) + ": loss";
    lo.ylabel = "cross-entropy";
    ChartOptions ao = o;
    ao.title = "fold " + std::to_string(fl.fold) + ": accuracy";
    ao.ylabel = "accuracy / AUC";
    ao.ymin = 0;
    ao.ymax = 1;
    s << "<div class=\"figs\">\n<figure>"
      << line_chart({series("train", "train_loss", 0, false), series("val", "val_loss", 1, false), series("test", "test_loss", 2, true)}, lo)
      << "</figure>\n<figure>"
      << line_chart({series("train acc", "train_acc", 0, false), series("val acc", "val_acc", 1, false),
                     series("val AUC", "val_auc", 1, true)},
                    ao)
      << "</figure>\n</div>\n";
  }
  return s.str();
}

// ---- explanations (Libra-MIL) --------------------------------------------------------------

std::string feature_file(const std::string& dir, const std::string& slide) {
  for (const char* ext : {".h5", ".hdf5", ".pt", ".pth"}) {
    fs::path p = fs::path(dir) / (slide + ext);
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

std::string entity_name(const std::string& prompt) { return models::entity_label(prompt); }

struct Explained {
  std::string slide;
  int label = -1, pred = 0;
  double prob = 0;
  bool has_coords = false;
  std::vector<int64_t> x, y;
  std::vector<double> weight, attention, sim;  // sim: (N, Kt)
  int64_t n = 0, kt = 0;
  std::vector<double> plan;                    // (Kv, Kt) or empty
  int64_t kv = 0;
};

std::vector<int64_t> top_k(const std::vector<double>& v, size_t k) {
  std::vector<int64_t> idx(v.size());
  for (size_t i = 0; i < v.size(); ++i) idx[i] = (int64_t)i;
  k = std::min(k, idx.size());
  std::partial_sort(idx.begin(), idx.begin() + (std::ptrdiff_t)k, idx.end(), [&](int64_t a, int64_t b) {
    double va = v[(size_t)a], vb = v[(size_t)b];
    if (std::isnan(va)) return false;
    if (std::isnan(vb)) return true;
    return va > vb;
  });
  idx.resize(k);
  return idx;
}

std::string explain_section(const Run& r, int max_slides, const std::string& slides_dir) {
  std::ostringstream s;
  s << "<h3 id=\"" << r.id << "-explain\">Heatmaps, transport plan and top patches (fold 0)</h3>\n";
  if (r.model != "libramil") {
    s << note("Model <code>" + h(r.model) + "</code>: instance heatmaps, the transport plan and the text-prototype patches "
              "exist for Libra-MIL runs only.");
    return s.str();
  }
  if (max_slides <= 0) {
    s << note("Skipped (no slides requested).");
    return s.str();
  }
  fs::path ckpt = fs::path(r.dir) / "checkpoints" / "fold_0_best.safetensors";
  std::error_code ec;
  if (!fs::is_regular_file(ckpt, ec)) {
    s << note("Skipped: the fold-0 checkpoint <code>" + h(ckpt.string()) + "</code> is missing (was the run trained with "
              "checkpoints?), so no heatmaps, transport plan or top patches can be computed.");
    return s.str();
  }
  std::string feats = input(r, "features");
  if (feats.empty() || !fs::is_directory(feats, ec)) {
    s << note("Skipped: the features directory " + (feats.empty() ? std::string("is not recorded in config.json (inputs.features)") : "<code>" + h(feats) + "</code> does not exist") +
              ", so no slide can be explained.");
    return s.str();
  }
  // Test slides of fold 0: from the predictions (with label and probabilities), else the split.
  std::vector<std::pair<std::string, int>> test;
  for (const Pred& p : r.preds)
    if (p.fold == 0) test.push_back({p.slide, p.label});
  if (test.empty() && !input(r, "split").empty()) {
    try {
      for (auto& n : data::read_split_json(input(r, "split"), 0).at(0).test) test.push_back({n, -1});
    } catch (const std::exception& e) {
      s << note("The split could not be read: " + h(e.what()));
    }
  }
  if (test.empty()) {
    s << note("Skipped: no test slides of fold 0 are known (no predictions, no split).");
    return s.str();
  }
  // Up to max_slides, alternating between the true classes so every class shows.
  std::map<int, std::vector<std::string>> by_class;
  for (auto& [n, l] : test) by_class[l].push_back(n);
  std::vector<std::pair<std::string, int>> chosen;
  for (size_t round = 0; (int)chosen.size() < max_slides; ++round) {
    bool any = false;
    for (auto& [l, names] : by_class)
      if (round < names.size() && (int)chosen.size() < max_slides) chosen.push_back({names[round], l}), any = true;
    if (!any) break;
  }
  std::unique_ptr<nn::Module> module;
  try {
    module = train::load_model_from_checkpoint(ckpt.string());
  } catch (const std::exception& e) {
    s << note("Skipped: the checkpoint could not be loaded: " + h(e.what()));
    return s.str();
  }
  auto* model = dynamic_cast<models::LibraMIL*>(module.get());
  if (!model) {
    s << note("Skipped: the checkpoint does not hold a Libra-MIL model.");
    return s.str();
  }
  model->eval();
  std::vector<Explained> done;
  std::vector<std::string> problems;
  for (auto& [slide, label] : chosen) {
    std::string path = feature_file(feats, slide);
    if (path.empty()) {
      problems.push_back("no feature file for slide <code>" + h(slide) + "</code> in <code>" + h(feats) + "</code>");
      continue;
    }
    try {
      data::FeatureBag bag = data::read_feature_bag(path);
      models::LibraMILExplanation ex;
      Tensor logits = model->explain(bag.features, ex);
      std::vector<double> lg = logits.to_double_vector();
      double m = *std::max_element(lg.begin(), lg.end()), z = 0;
      for (double& v : lg) z += (v = std::exp(v - m));
      for (double& v : lg) v /= z;
      Explained e;
      e.slide = slide;
      e.label = label;
      e.pred = (int)(std::max_element(lg.begin(), lg.end()) - lg.begin());
      e.prob = lg[(size_t)e.pred];
      e.n = bag.features.shape()[0];
      if (bag.coords.defined()) {
        std::vector<double> c = bag.coords.to_double_vector();
        e.has_coords = true;
        for (int64_t i = 0; i < e.n; ++i) {
          e.x.push_back((int64_t)c[(size_t)(2 * i)]);
          e.y.push_back((int64_t)c[(size_t)(2 * i + 1)]);
        }
      }
      e.weight = ex.instance_weights.to_double_vector();
      std::vector<double> att = ex.attention.to_double_vector();
      e.attention.assign(att.begin() + (std::ptrdiff_t)(e.pred * e.n), att.begin() + (std::ptrdiff_t)((e.pred + 1) * e.n));
      e.sim = ex.sim_text.to_double_vector();
      e.kt = ex.sim_text.shape()[1];
      if (ex.plan.defined()) {
        e.plan = ex.plan.to_double_vector();
        e.kv = ex.plan.shape()[0];
      }
      done.push_back(std::move(e));
    } catch (const std::exception& ex) {
      problems.push_back("slide <code>" + h(slide) + "</code>: " + h(ex.what()));
    }
  }
  for (auto& p : problems) s << note("Not explained: " + p + ".");
  if (done.empty()) {
    s << note("No slide could be explained, so no heatmaps, transport plan or top patches.");
    return s.str();
  }
  // Entity names from the instance priors.
  const int64_t Kt = done[0].kt;
  std::vector<std::string> entities;
  std::string prior_path = input(r, "instance_priors");
  std::string entity_note;
  if (!prior_path.empty()) {
    try {
      std::vector<std::string> prompts = data::read_instance_prompts(prior_path);
      if ((int64_t)prompts.size() == Kt) {
        for (auto& p : prompts) entities.push_back(entity_name(p));
      } else {
        entity_note = "the instance priors hold " + std::to_string(prompts.size()) + " texts but the model has " +
                      std::to_string(Kt) + " text prototypes; prototypes are numbered instead";
      }
    } catch (const std::exception& e) {
      entity_note = std::string("the instance priors could not be read (") + e.what() + "); prototypes are numbered instead";
    }
  } else {
    entity_note = "config.json does not name the instance priors; prototypes are numbered instead";
  }
  if (entities.empty())
    for (int64_t k = 0; k < Kt; ++k) entities.push_back("text " + std::to_string(k));
  if (!entity_note.empty()) s << note(h(entity_note) + ".");

  // 1. Heatmaps per slide.
  s << "<h4>Instance weights and class attention on the slide</h4>\n"
    << "<p class=\"caption\">Each square is one patch at its position on the slide (coordinates of the feature file). "
       "Left: the fused instance weight w<sub>j</sub> that scales each instance before the class attention; right: the "
       "attention of the predicted class's prior over the instances (mean over heads). The five highest patches of each "
       "map are outlined in red. Where the slide's image is found (<code>--slides-dir</code>), the two maps are drawn over "
       "the slide itself instead, with the five highest patches of each cropped at full resolution.</p>\n";
  for (const Explained& e : done) {
    std::string head = "<b>" + h(e.slide) + "</b>: true " + (e.label >= 0 ? h(class_name(r, e.label)) : std::string("?")) +
                       ", predicted " + h(class_name(r, e.pred)) + " (p = " + fmt_fixed(e.prob, 3) + "), " +
                       std::to_string(e.n) + " patches";
    s << "<p class=\"slide-head\">" << head << "</p>\n";
    if (!e.has_coords) {
      s << note("The feature file has no coordinates (.pt bags carry none), so this slide cannot be drawn.");
      continue;
    }
    if (!slides_dir.empty()) {  // over the slide image itself (models/report_slides.h)
      const std::string file = find_slide_file(slides_dir, e.slide);
      if (file.empty()) {
        s << note("No image of slide <code>" + h(e.slide) + "</code> in <code>" + h(slides_dir) +
                  "</code>: its patches are drawn at their coordinates instead.");
      } else {
        try {
          slides::SlideScores geometry;
          slides::read_coords_attributes(feature_file(feats, e.slide), geometry);
          if (geometry.patch_size_level0 <= 0)
            throw std::runtime_error("the feature file's coords do not record patch_size_level0");
          std::vector<slides::Coord> coords;
          for (int64_t i = 0; i < e.n; ++i) coords.push_back({e.x[(size_t)i], e.y[(size_t)i]});
          const std::vector<SlideMap> maps = {{"instance weight", std::vector<float>(e.weight.begin(), e.weight.end())},
                                              {"attention of " + class_name(r, e.pred),
                                               std::vector<float>(e.attention.begin(), e.attention.end())}};
          s << slide_heatmaps_html(file, coords, geometry.patch_size_level0, maps, 640, 5);
          continue;
        } catch (const std::exception& ex) {
          s << note("The image of slide <code>" + h(e.slide) + "</code> could not be drawn (" + h(ex.what()) +
                    "); its patches are drawn at their coordinates instead.");
        }
      }
    }
    PatchMapOptions wo;
    wo.title = "instance weight";
    wo.value_label = "weight";
    wo.highlight = top_k(e.weight, 5);
    PatchMapOptions ao;
    ao.title = "attention of " + class_name(r, e.pred);
    ao.value_label = "attention";
    ao.highlight = top_k(e.attention, 5);
    s << "<div class=\"figs\">\n<figure>" << patch_map(e.x, e.y, e.weight, wo) << "</figure>\n<figure>"
      << patch_map(e.x, e.y, e.attention, ao) << "</figure>\n</div>\n";
  }

  // 2. Transport plan (mean over the explained slides: its marginals depend on the bag).
  s << "<h4>Transport plan between visual and text prototypes</h4>\n";
  std::vector<const Explained*> with_plan;
  for (const Explained& e : done)
    if (!e.plan.empty() && e.kt == Kt && e.kv == done[0].kv) with_plan.push_back(&e);
  if (with_plan.empty()) {
    s << note("This model computes no prototype-level transport plan (" +
              h("mode " + r.config.value("mode", std::string("?")) + ", ablation " + r.config.value("ablation", std::string("none"))) +
              "); only paper mode without ablation has one.");
  } else {
    const int64_t Kv = with_plan[0]->kv;
    std::vector<double> mean((size_t)(Kv * Kt), 0.0);
    for (const Explained* e : with_plan)
      for (size_t i = 0; i < mean.size(); ++i) mean[i] += e->plan[i] / (double)with_plan.size();
    std::vector<std::string> rows;
    for (int64_t v = 0; v < Kv; ++v) rows.push_back("visual " + std::to_string(v));
    HeatmapOptions ho;
    ho.title = "Transport plan T (" + std::to_string(Kv) + " visual x " + std::to_string(Kt) + " text prototypes)";
    ho.xlabel = "text prototype (entity of the instance priors)";
    ho.ylabel = "visual prototype";
    ho.max_width = 860;
    ho.vmin = 0;  // transported mass
    s << "<figure>" << heatmap(mean, (int)Kv, (int)Kt, rows, entities, ho) << "<figcaption class=\"wide\">Mass moved between "
      << "each learned visual prototype and each text prototype (entity), averaged over the " << with_plan.size()
      << " explained slide" << (with_plan.size() == 1 ? "" : "s") << " (the plan's marginals come from the bag's mean "
      << "similarities, so it varies a little from slide to slide). Hover a cell for its value.</figcaption></figure>\n";
  }

  // 3. Top patches per entity.
  s << "<h4>Top patches per text prototype</h4>\n";
  std::ostringstream t;
  t << "<table class=\"top\">\n<tr><th class=\"l\">entity</th><th>rank</th><th class=\"l\">slide</th><th>patch</th><th>x</th>"
       "<th>y</th><th>cosine similarity</th></tr>\n";
  for (int64_t k = 0; k < Kt; ++k) {
    struct Hit {
      const Explained* e;
      int64_t i;
      double v;
    };
    std::vector<Hit> hits;
    for (const Explained& e : done) {
      if (e.kt != Kt) continue;
      for (int64_t i = 0; i < e.n; ++i) hits.push_back({&e, i, e.sim[(size_t)(i * Kt + k)]});
    }
    size_t top = std::min<size_t>(5, hits.size());
    std::partial_sort(hits.begin(), hits.begin() + (std::ptrdiff_t)top, hits.end(),
                      [](const Hit& a, const Hit& b) { return a.v > b.v; });
    for (size_t j = 0; j < top; ++j) {
      const Hit& hit = hits[j];
      t << "<tr" << (j == 0 ? " class=\"first\"" : "") << ">";
      if (j == 0) t << "<td class=\"l ent\" rowspan=\"" << top << "\">" << h(entities[(size_t)k]) << "</td>";
      t << "<td>" << j + 1 << "</td><td class=\"l\">" << h(hit.e->slide) << "</td><td>" << hit.i << "</td>";
      if (hit.e->has_coords)
        t << "<td>" << hit.e->x[(size_t)hit.i] << "</td><td>" << hit.e->y[(size_t)hit.i] << "</td>";
      else
        t << "<td>&ndash;</td><td>&ndash;</td>";
      t << "<td>" << fmt_fixed(hit.v, 4) << "</td></tr>\n";
    }
  }
  t << "</table>\n";
  std::string caption = "<p class=\"caption\">For each text prototype, the five patches of the " + std::to_string(done.size()) +
                        " explained slide" + (done.size() == 1 ? "" : "s") +
                        " most similar to it (cosine similarity of the projected patch feature and the projected "
                        "entity text, <code>sim_text</code>); x, y are the patch's level-0 coordinates.</p>\n";
  s << caption;
  if (Kt > 12)
    s << "<details><summary>Show the table (" << Kt << " entities &times; 5 patches)</summary>\n" << t.str() << "</details>\n";
  else
    s << t.str();
  return s.str();
}

// ---- comparison of several runs ------------------------------------------------------------

// Per fold of a run: its test slides (from test_predictions.csv) and test metrics (final_log.csv).
struct FoldOutcome {
  std::set<std::string> test;
  double acc = NAN, auc = NAN, f1 = NAN;
};
std::map<int, FoldOutcome> fold_outcomes(const Run& r) {
  std::map<int, FoldOutcome> out;
  for (const Pred& p : r.preds) out[p.fold].test.insert(p.slide);
  if (!r.has_final) return {};
  for (size_t i = 0; i < r.final_log.rows.size(); ++i) {
    const double f = r.final_log.num(i, "fold");
    if (!std::isfinite(f) || !out.count((int)f)) return {};
    FoldOutcome& o = out[(int)f];
    o.acc = r.final_log.num(i, "test_acc"), o.auc = r.final_log.num(i, "test_auc"), o.f1 = r.final_log.num(i, "test_f1");
  }
  return out;
}

// Paired per-fold differences between runs evaluated on the same folds (same test slides in every
// fold), with a paired t-test (data::paired_t_test, as scipy.stats.ttest_rel).
std::string paired_section(const std::vector<Run>& runs) {
  std::vector<std::map<int, FoldOutcome>> outcomes;
  for (const Run& r : runs) outcomes.push_back(fold_outcomes(r));
  std::ostringstream rows;
  int pairs = 0;
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = i + 1; j < runs.size(); ++j) {
      const auto &a = outcomes[i], &b = outcomes[j];
      if (a.size() < 2 || a.size() != b.size()) continue;
      bool same = true;
      for (const auto& [fold, o] : a)
        if (!b.count(fold) || b.at(fold).test != o.test) same = false;
      if (!same) continue;
      ++pairs;
      rows << "<tr><td class=\"l\">" << h(runs[i].name) << " &minus; " << h(runs[j].name) << "</td><td>" << a.size() << "</td>";
      for (double FoldOutcome::*m : {&FoldOutcome::acc, &FoldOutcome::auc, &FoldOutcome::f1}) {
        std::vector<double> x, y;
        for (const auto& [fold, o] : a) x.push_back(o.*m), y.push_back(b.at(fold).*m);
        const data::PairedTest t = data::paired_t_test(x, y);
        rows << "<td>" << (t.mean_diff >= 0 ? "+" : "") << fmt_fixed(t.mean_diff, 4) << " (p "
             << (std::isnan(t.p) ? std::string("-") : fmt_fixed(t.p, 3)) << ")</td>";
      }
      rows << "</tr>\n";
    }
  if (!pairs) return "";
  std::ostringstream s;
  s << "<h3 id=\"paired\">Paired differences (runs on the same folds)</h3>\n<table class=\"compare\">\n<tr><th class=\"l\">runs"
       "</th><th>folds</th><th>test acc</th><th>test AUC</th><th>test F1</th></tr>\n"
    << rows.str()
    << "</table>\n<p class=\"caption\">Mean over folds of the per-fold difference (first run minus second), for runs whose "
       "folds hold the same test slides; p: two-sided paired t-test over folds (n &minus; 1 degrees of freedom). With 5 "
       "folds, only large, consistent differences reach p &lt; 0.05.</p>\n";
  return s.str();
}

std::string comparison_section(const std::vector<Run>& runs) {
  std::ostringstream s;
  s << "<h2 id=\"comparison\">Comparison</h2>\n<table class=\"compare\">\n<tr><th class=\"l\">run</th><th class=\"l\">model</th>"
       "<th>shots</th><th>folds</th><th>test acc</th><th>test AUC</th><th>test F1</th></tr>\n";
  double best = -INFINITY;
  for (const Run& r : runs)
    if (r.has_summary && std::isfinite(r.acc.mean)) best = std::max(best, r.acc.mean);
  for (const Run& r : runs) {
    bool is_best = r.has_summary && r.acc.mean == best;
    s << "<tr" << (is_best ? " class=\"best\"" : "") << "><td class=\"l\"><a href=\"#" << r.id << "\">" << h(r.name)
      << "</a></td><td class=\"l\">" << h(r.model_label) << "</td><td>" << (r.shots >= 0 ? std::to_string(r.shots) : "?")
      << "</td><td>" << r.folds << "</td>";
    if (r.has_summary)
      s << "<td>" << mean_pm_std(r.acc.mean, r.acc.std) << "</td><td>" << mean_pm_std(r.auc.mean, r.auc.std) << "</td><td>"
        << mean_pm_std(r.f1.mean, r.f1.std) << "</td>";
    else
      s << "<td colspan=\"3\">no results</td>";
    s << "</tr>\n";
  }
  s << "</table>\n<p class=\"caption\">Mean &plusmn; sample standard deviation over folds; the row with the best mean "
       "accuracy is in bold. Shots: train slides per class in fold 0.</p>\n";
  s << paired_section(runs);
  // Few-shot curves: metric vs shots, one line per model.
  std::set<int> shots;
  for (const Run& r : runs)
    if (r.shots >= 0 && r.has_summary) shots.insert(r.shots);
  if (shots.size() >= 2) {
    std::map<std::string, std::map<int, const Run*>> by_model;
    std::vector<std::string> order;
    for (const Run& r : runs) {
      if (r.shots < 0 || !r.has_summary) continue;
      if (!by_model.count(r.model_label)) order.push_back(r.model_label);
      auto& slot = by_model[r.model_label][r.shots];
      if (!slot) slot = &r;  // the first run of a (model, shots) pair
    }
    auto chart = [&](const char* title, const char* ylabel, data::MeanStd Run::*metric) {
      std::vector<Series> series;
      for (size_t i = 0; i < order.size(); ++i) {
        Series sr;
        sr.name = order[i];
        sr.markers = true;
        sr.color = palette(i);
        for (auto& [k, r] : by_model[order[i]]) {
          sr.x.push_back(k);
          sr.y.push_back((r->*metric).mean);
          sr.err.push_back((r->*metric).std);
        }
        series.push_back(sr);
      }
      ChartOptions o;
      o.title = title;
      o.xlabel = "shots (train slides per class)";
      o.ylabel = ylabel;
      o.integer_x = true;
      o.width = 420;
      o.height = 300;
      return line_chart(series, o);
    };
    s << "<h3 id=\"fewshot\">Few-shot curves</h3>\n<div class=\"figs\">\n<figure>"
      << chart("Test accuracy vs shots", "accuracy", &Run::acc) << "</figure>\n<figure>"
      << chart("Test AUC vs shots", "ROC-AUC", &Run::auc)
      << "</figure>\n</div>\n<p class=\"caption\">Points: mean over folds; bars: &plusmn; one sample standard deviation.</p>\n";
  } else {
    s << note("No few-shot curve: the runs do not differ in the number of shots" +
              std::string(shots.empty() ? " (or it could not be determined)" : "") + ".");
  }
  return s.str();
}

const char* kCss = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#eef0f3;color:#1d232b;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:26px 36px 60px;background:#fff;min-height:100vh;box-sizing:border-box}
h1{font-size:25px;margin:0 0 4px}
h2{font-size:20px;border-bottom:2px solid #dfe3e8;padding-bottom:4px;margin-top:38px}
h3{font-size:16px;margin:26px 0 8px;color:#2b3a4a}
h4{font-size:14px;margin:20px 0 6px;color:#2b3a4a}
.meta{color:#5d6873;font-size:13px;margin:2px 0}
.banner{background:#fff4e0;border:1px solid #f2b35e;border-left:6px solid #e07b00;padding:10px 14px;margin:16px 0;font-size:14px;border-radius:4px}
.note{background:#f3f5f7;border-left:4px solid #98a2ad;padding:8px 12px;color:#3d4650;font-size:13px;margin:10px 0;border-radius:2px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 12px;text-align:right}
th{background:#f1f4f7;text-align:center;font-weight:600}
td.l,th.l{text-align:left}
td.ent{vertical-align:top;font-weight:600;border-right:1px solid #e3e6ea}
tr.first td{border-top:1px solid #c9ced5}
tr.best td{font-weight:700}
.figs{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start;margin:8px 0}
figure{margin:0}
figcaption,.caption{font-size:12px;color:#5d6873;max-width:400px;margin:4px 0}
.caption{max-width:900px}
figcaption.wide{max-width:900px}
svg.plot{display:block;border:1px solid #e6e8eb;border-radius:3px;background:#fff}
.slide-head{margin:14px 0 4px;font-size:13px}
.gallery{display:flex;flex-wrap:wrap;gap:6px;max-width:660px}
.gallery .patch{font-size:11px;color:#5d6873;text-align:center}
details{margin:8px 0}
details summary{cursor:pointer;color:#0b5cad;font-size:13px}
nav.toc{font-size:13px;margin:10px 0 0}
nav.toc a{margin-right:14px;color:#0b5cad;text-decoration:none}
section.run{margin-top:10px}
code{background:#f1f3f5;padding:1px 4px;border-radius:3px;font-size:12px}
)";

std::string now_string() {
  std::time_t t = std::time(nullptr);
  char b[64];
  std::tm tm{};
  localtime_r(&t, &tm);
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M", &tm);
  return b;
}

}  // namespace

std::string report_path(const ReportOptions& o) {
  if (!o.out_html.empty()) return o.out_html;
  if (o.run_dirs.empty()) throw std::invalid_argument("report: no run directory given");
  return (fs::path(o.run_dirs[0]) / "report.html").string();
}

std::string render_report(const ReportOptions& o) {
  if (o.run_dirs.empty()) throw std::invalid_argument("report: no run directory given");
  std::vector<Run> runs;
  for (size_t i = 0; i < o.run_dirs.size(); ++i) runs.push_back(load_run(o.run_dirs[i], i));
  std::string title = o.title;
  if (title.empty()) {
    title = "libramil report: ";
    for (size_t i = 0; i < runs.size() && i < 4; ++i) title += (i ? ", " : "") + runs[i].name;
    if (runs.size() > 4) title += ", ... (" + std::to_string(runs.size()) + " runs)";
  }
  std::ostringstream s;
  s << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" << h(title) << "</title>\n<style>" << kCss
    << "</style>\n</head>\n<body>\n<main>\n<h1>" << h(title) << "</h1>\n<p class=\"meta\">Generated by <code>libramil report</code> on "
    << now_string() << " from " << runs.size() << " run director" << (runs.size() == 1 ? "y" : "ies") << ".</p>\n";
  // Simulated-data banner.
  std::vector<const Run*> sim;
  for (const Run& r : runs)
    if (!r.simulated.empty()) sim.push_back(&r);
  if (!sim.empty()) {
    s << "<div class=\"banner\"><b>Simulated data.</b> ";
    if (sim.size() == runs.size())
      s << (runs.size() == 1 ? "This run was" : "All runs were");
    else {
      std::string names;
      for (const Run* r : sim) names += (names.empty() ? "" : ", ") + r->name;
      s << "The run" << (sim.size() == 1 ? " " : "s ") << h(names) << (sim.size() == 1 ? " was" : " were");
    }
    s << " trained and tested on features generated by <code>libramil simulate</code>, not on real whole-slide images "
      << "(<code>" << h(sim[0]->simulated_readme) << "</code>: &ldquo;" << h(sim[0]->simulated) << "&rdquo;). "
      << "The numbers and pictures below test the software; they support no clinical or biological conclusion.</div>\n";
  }
  // Table of contents.
  s << "<nav class=\"toc\">";
  if (runs.size() > 1) s << "<a href=\"#comparison\">Comparison</a>";
  for (const Run& r : runs) s << "<a href=\"#" << r.id << "\">" << h(r.name) << "</a>";
  s << "</nav>\n";
  if (runs.size() > 1) s << comparison_section(runs);
  for (const Run& r : runs) {
    s << "<section class=\"run\" id=\"" << r.id << "\">\n<h2>" << h(r.name) << " <small class=\"meta\">" << h(r.model_label)
      << "</small></h2>\n";
    s << "<p class=\"meta\">Directory <code>" << h(r.dir) << "</code>; " << r.folds << " fold" << (r.folds == 1 ? "" : "s") << ", "
      << (r.num_classes > 0 ? std::to_string(r.num_classes) : std::string("?")) << " classes";
    if (r.shots >= 0) s << ", " << r.shots << " shot" << (r.shots == 1 ? "" : "s") << " (train slides per class in fold 0)";
    if (r.config.contains("epochs")) s << ", " << r.config["epochs"].dump() << " epochs";
    if (r.config.contains("lr")) s << ", lr " << fmt_short(r.config.value("lr", 0.0));
    s << ".";
    if (!input(r, "features").empty()) s << " Features: <code>" << h(input(r, "features")) << "</code>.";
    s << "</p>\n";
    for (const std::string& n : r.notes) s << note(n);
    if (!r.shots_note.empty() && runs.size() > 1) s << note("Shots: " + h(r.shots_note) + ".");
    s << results_section(r);
    s << roc_confusion_section(r);
    s << learning_section(r);
    try {
      s << explain_section(r, o.heatmap_slides, o.slides_dir);
    } catch (const std::exception& e) {
      s << note("The explanation section failed: " + h(e.what()));
    }
    s << "</section>\n";
  }
  s << "</main>\n</body>\n</html>\n";
  return s.str();
}

void write_report(const ReportOptions& o) { data::write_file_atomic(report_path(o), render_report(o)); }

}  // namespace lm::report
