// `libramil report`: one self-contained HTML page (inline SVG plots, inline CSS, no
// JavaScript) describing one or more run directories written by train::run_protocol:
//
//  * results: test accuracy / AUC / F1 as mean +- sample std over folds (logs/summary_log.csv)
//    and per fold (logs/final_log.csv); with several runs a comparison table and, when the
//    runs differ in shots (train slides per class of fold 0, from config.json "shots" or from
//    the split and labels named in config.json "inputs"), few-shot curves (metric vs shots,
//    one line per model);
//  * ROC curves and the confusion matrix (argmax) of logs/test_predictions.csv pooled over
//    folds (binary: class-1 score; multiclass: one-vs-rest per class);
//  * learning curves per fold (loss; train / val accuracy and val AUC) from logs/log_<fold>.csv,
//    with the selected epoch marked;
//  * Libra-MIL runs: fold 0's best checkpoint explained (LibraMIL::explain) on up to
//    `heatmap_slides` test slides of fold 0 read from the features directory: instance
//    weights and the predicted class's attention drawn on the patch coordinates, the
//    transport plan between visual and text prototypes (Kv x Kt, columns named by the
//    entities of the instance priors "Entity: description."), and the top-5 patches per
//    entity by similarity to its text prototype (slide, x, y, score). With `slides_dir`, a
//    slide whose image is found there gets its two maps drawn over the slide itself and its
//    top patches cropped at full resolution (models/report/report_slides.h).
//  * a banner when the features are simulated (a README.txt next to or above the features
//    directory that mentions "simulated", as `libramil simulate` writes).
// Missing or unreadable inputs never abort the report: the section shows a note instead.
#pragma once
#include <string>
#include <vector>

namespace lm::report {

struct ReportOptions {
  std::vector<std::string> run_dirs;  // one or more run directories (save_dir of train)
  std::string out_html;               // "" = <run_dirs[0]>/report.html
  int heatmap_slides = 3;             // test slides of fold 0 explained per Libra-MIL run
  std::string slides_dir;             // whole-slide images (<slide>.svs, ...): maps drawn over them
  std::string title;                  // "" = a title made from the run names
};

// The HTML page (nothing is written).
std::string render_report(const ReportOptions& options);

// The output path write_report uses.
std::string report_path(const ReportOptions& options);

// Renders and writes the page atomically to report_path(options) (replacing a previous file).
void write_report(const ReportOptions& options);

}  // namespace lm::report
