// The files a `train` run writes in its directory (TrainOptions::save_dir), so that
// `train --overwrite` removes an earlier run's files, and only those, before it starts: a
// 1-fold run over a 2-fold directory must not leave the old fold 1 for the report to plot;
// and so that `train --resume` removes what a killed run left behind.
#pragma once
#include <string>
#include <vector>

namespace lm::train {

// The name of each fold's TensorBoard event file, in RUN/tensorboard/fold_<k>/ (TensorBoard
// reads every file whose name holds "tfevents"; one fixed name per fold, rewritten atomically
// after each epoch, so --resume and --overwrite know it).
inline constexpr const char* kEventFileName = "events.out.tfevents.libramil";

// True for a path inside a run directory ('/'-separated, relative to it) that a run writes:
// config.json, report.html; logs/log_<i>.csv, logs/transport_<i>.csv, logs/fold_<i>_result.json, logs/final_log.csv,
// logs/summary_log.csv, logs/test_predictions.csv; checkpoints/fold_<i>_best.safetensors,
// checkpoints/fold_<i>_last.safetensors; tensorboard/fold_<i>/<kEventFileName> (train
// --tensorboard); and the temporaries the atomic writers leave beside
// any of these when killed (.<name>.tmp-<digits>, <name>.tmp-<6 characters>).
bool run_owns(const std::string& relative_path);

// Removes every regular file (or link) of `dir`, `dir`/logs, `dir`/checkpoints and
// `dir`/tensorboard/fold_<k> that run_owns, then those folders (and tensorboard/) where that
// leaves them empty; nothing else is touched
// (no other folder is entered). Returns how many files went. Throws "cannot remove <path>:
// <reason>" on the first that cannot be removed.
int remove_run_files(const std::string& dir);

// What a run killed with SIGKILL leaves in `dir` that a resume never uses, removed by
// `train --resume` once it holds the run's lock: the temporaries of the files the run owns
// (see run_owns; a writer that was killed never renamed them), and
// checkpoints/fold_<k>_last.safetensors of a fold k whose logs/fold_<k>_result.json holds
// that fold's result (the run was killed between writing the result and removing the resume
// state). Everything else stays, the resume state of an unfinished fold included. Returns
// the removed paths, relative to `dir`; throws "cannot remove <path>: <reason>".
std::vector<std::string> remove_resume_leftovers(const std::string& dir);

}  // namespace lm::train
