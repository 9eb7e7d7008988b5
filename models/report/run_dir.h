// One run directory as `libramil report` reads it (config.json, logs/*.csv, test predictions)
// and the small HTML helpers every report section shares. Internal to models/report: the
// sections (sections.cpp, explain.cpp) and the page (report.cpp) include it.
#pragma once
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/metrics.h"
#include "models/report/svg_plot.h"

namespace lm::report {

// ---- HTML helpers ---------------------------------------------------------------------------

inline std::string h(const std::string& s) { return escape_xml(s); }
inline std::string note(const std::string& html_text) { return "<p class=\"note\">" + html_text + "</p>\n"; }
inline std::string mean_pm_std(double mean, double std) {
  return fmt_fixed(mean, 4) + " &plusmn; " + (std::isnan(std) ? std::string("-") : fmt_fixed(std, 4));
}

// The whole file; throws "cannot read <path>".
std::string read_text_file(const std::filesystem::path& p);
// A number, or NaN for an empty or non-numeric cell.
double to_num(const std::string& s);

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

// Reads a CSV with a header row (a UTF-8 byte-order mark is dropped); throws naming the file.
Table read_table(const std::filesystem::path& p);

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
  nlohmann::json config = nlohmann::json::object();
  std::map<std::string, std::string> inputs;
  std::string model = "unknown", model_label = "unknown";
  std::string mode = "paper", ablation = "none";  // Libra-MIL's recorded mode and ablation
  std::string fusion = "softmax";                   // and paper mode's fusion
  double lr = 0;                                    // the recorded learning rate
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

// The run's recorded input (config.json "inputs"), or "".
std::string input(const Run& r, const std::string& key);
// Reads run directory `dir`, the index-th of the report (its HTML anchors are "run<index>"). A
// missing or broken file becomes a note in Run::notes, never an exception.
Run load_run(const std::string& dir, size_t index);
// A class as the run names it: `train --classes`, else "class <c>".
std::string class_name(const Run& r, int c);

}  // namespace lm::report
