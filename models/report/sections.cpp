// The report's per-run sections (results, ROC and confusion, learning curves) and the
// comparison of several runs (table, paired per-fold differences with a t-test, few-shot curves).
#include "models/report/sections.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/metrics.h"

namespace lm::report {

using json = nlohmann::json;

namespace {
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
}  // namespace

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
}  // namespace lm::report
