// The few-shot training and evaluation protocol of ../shared/docs/SPEC.md ("Training and
// evaluation protocol"): per fold a fresh model, AdamW with a cosine schedule and linear
// warm-up stepped after every bag, per-epoch evaluation on val and test, best-checkpoint
// selection (val accuracy, ties broken by val AUC), reload, test metrics; mean and sample
// std over folds. Logs and checkpoints go to TrainOptions::save_dir.
#pragma once
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "data/feature_cache.h"
#include "data/metrics.h"
#include "data/tables.h"
#include "models/mil/libramil.h"
#include "models/nn/nn.h"

namespace lm::train {

struct TrainOptions {
  std::string model = "libramil";  // libramil | abmil | gated_abmil | meanpool | maxpool | transmil
  models::LibraMILConfig libramil;  // dim, text_dim, Kt, C are filled from the data
  int epochs = 20;
  int folds = 5;
  double lr = 1e-4;
  double weight_decay = 0.01;
  int warmup_steps = 100;
  uint64_t seed = 7;
  // Which epoch's model a fold keeps (selection_key): val_acc (the reference rule: best
  // validation accuracy, ties by AUC, earliest on full ties) | val_auc (ties by accuracy) |
  // val_loss (lowest, ties by accuracy) | last (the final epoch).
  std::string select = "val_acc";
  // Class names in label order (train --classes), for the CSVs; empty: classes are numbers.
  std::vector<std::string> class_names;
  std::string save_dir;       // empty: nothing written
  // Also write TensorBoard event files: save_dir/tensorboard/fold_<k>/ (data/formats/tensorboard.h).
  bool tensorboard = false;
  bool save_checkpoints = true;
  bool show_progress = true;  // progress lines on the log stream
  bool progress_bar = false;  // redraw an in-epoch bar with '\r' (for terminals)
  // Where the inputs came from (labels, split, features, priors, encoder, embeddings), recorded
  // in <save_dir>/config.json under "inputs" so that reports can find them again.
  std::map<std::string, std::string> inputs;
  // Continue an interrupted run in save_dir: folds with logs/fold_<i>_result.json are taken
  // as done; a fold with checkpoints/fold_<i>_last.safetensors continues after its last
  // completed epoch (model, optimizer, schedule step, shuffling stream and selection state
  // restored), so the final metrics equal those of an uninterrupted run.
  bool resume = false;
  // Where the model trains and evaluates. CUDA: parameters, optimizer state and every step's
  // tensors stay on the device; each bag is uploaded through pinned staging buffers
  // (cuda/copy.h, upload_pinned) unless resident_features is set.
  Device device = Device::cpu();
  // CUDA only: keep every bag of the run on the device for the whole run, stored in this dtype
  // (float32, float16 or bfloat16) and converted to float32 on the device at each use; unset:
  // upload each bag when it is used.
  std::optional<DType> resident_features;
};

// Everything a run reads, already loaded and checked.
struct Dataset {
  int num_classes = 0;
  int64_t dim = 0;
  std::map<std::string, int> labels;       // slide -> class
  std::vector<data::FoldSplit> splits;     // at least TrainOptions::folds entries
  const data::FeatureCache* features = nullptr;
  Tensor z_ins, z_bag;                     // (Kt, Dt), (C, Dt) prior embeddings (Libra-MIL)
  std::vector<std::string> instance_prompts;  // for reports (entity names)
};

// The two numbers an epoch is ranked by under `select` (higher is better; a later epoch wins
// only when strictly better). Throws std::invalid_argument for an unknown rule.
struct EpochRecord;
std::pair<double, double> selection_key(const std::string& select, const EpochRecord& r);

struct EpochRecord {
  int epoch = 0;
  double train_loss = 0, train_acc = 0, seconds = 0;
  double val_loss = 0, test_loss = 0;
  double wall_time = 0;  // Unix seconds when the epoch ended (0: not recorded, an older resume file)
  data::Metrics val, test;
};

struct Prediction {
  std::string slide;
  int label = 0;
  std::vector<double> probs;
};

struct FoldResult {
  int fold = 0;
  int best_epoch = 0;
  data::Metrics val, test;               // of the reloaded best checkpoint
  std::vector<EpochRecord> epochs;
  std::vector<Prediction> test_predictions;
  std::string checkpoint;                // path of the best checkpoint ("" when not saved)
};

struct RunResult {
  std::vector<FoldResult> folds;
  data::MeanStd acc, auc, f1;
  double seconds = 0;
};

// Class probabilities and mean loss of `model` on the named slides (no autograd).
struct Evaluation {
  std::vector<Prediction> predictions;
  double loss = 0;
  data::Metrics metrics;
};
// The bags go to the device of the model's parameters (uploaded per bag for CUDA).
Evaluation evaluate(nn::Module& model, const std::vector<std::string>& slides, const Dataset& data);

// Runs all folds. Progress and the epoch table go to `log`.
RunResult run_protocol(const TrainOptions& options, const Dataset& data, std::ostream& log);

}  // namespace lm::train
