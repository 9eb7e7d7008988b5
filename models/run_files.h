// The files a `train` run writes in its directory (TrainOptions::save_dir), so that
// `train --overwrite` removes an earlier run's files, and only those, before it starts: a
// 1-fold run over a 2-fold directory must not leave the old fold 1 for the report to plot.
#pragma once
#include <string>

namespace lm::train {

// True for a path inside a run directory ('/'-separated, relative to it) that a run writes:
// config.json, report.html; logs/log_<i>.csv, logs/fold_<i>_result.json, logs/final_log.csv,
// logs/summary_log.csv, logs/test_predictions.csv; checkpoints/fold_<i>_best.safetensors,
// checkpoints/fold_<i>_last.safetensors; and the temporaries the atomic writers leave beside
// any of these when killed (.<name>.tmp-<digits>, <name>.tmp-<6 characters>).
bool run_owns(const std::string& relative_path);

// Removes every regular file (or link) of `dir`, `dir`/logs and `dir`/checkpoints that
// run_owns, then logs/ and checkpoints/ where that leaves them empty; nothing else is touched
// (no other folder is entered). Returns how many files went. Throws "cannot remove <path>:
// <reason>" on the first that cannot be removed.
int remove_run_files(const std::string& dir);

}  // namespace lm::train
