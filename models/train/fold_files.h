// The files a fold leaves in a run directory for `train --resume` and the report: the epoch
// table (logs/log_<k>.csv), the fold's result (logs/fold_<k>_result.json: metrics, epoch
// records and test predictions, doubles exact, non-finite values as strings) and where its
// last checkpoint lives.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/train/trainer.h"

namespace lm::train {

// v with `prec` decimals, "nan" for NaN (the logs' number format).
std::string fixed_text(double v, int prec = 4);
// Doubles through JSON exactly (17 significant digits), non-finite values as "nan" / "inf" /
// "-inf"; and back.
nlohmann::json exact(double v);
double exact(const nlohmann::json& j);
// Epoch records as a JSON array (the resume state and fold results) and back.
nlohmann::json records_json(const std::vector<EpochRecord>& records);
std::vector<EpochRecord> records_from(const nlohmann::json& array);

// The epoch records as a TensorBoard event file (data/formats/tensorboard.h): per epoch (step =
// the 0-based epoch, as in the CSV) train/loss, train/accuracy, val/{loss,accuracy,auc,f1},
// test/{loss,accuracy,auc,f1}, epoch_seconds; records without a wall time get `fallback_wall_time`.
std::string epoch_events(const std::vector<EpochRecord>& records, double fallback_wall_time);
// Unix time in seconds (with fractions).
double unix_seconds();
// The epoch table as CSV (header row first).
std::string epoch_csv(const std::vector<EpochRecord>& records);
// <save_dir>/logs/fold_<fold>_result.json, <save_dir>/checkpoints/fold_<fold>_last.safetensors.
std::string fold_result_path(const TrainOptions& options, int fold);
std::string fold_last_path(const TrainOptions& options, int fold);
// Writes fold_result_path atomically; reads it back (throws "cannot resume: ..." naming it).
void write_fold_result(const TrainOptions& options, const FoldResult& fold);
FoldResult read_fold_result(const std::string& path);

}  // namespace lm::train
