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
#include "models/libramil.h"
#include "models/nn.h"

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

// A fresh model of options.model for this dataset.
std::unique_ptr<nn::Module> make_model(const TrainOptions& options, const Dataset& data, Generator& gen);

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

// The checkpoint format: the model's state_dict with the reference names, the run's
// configuration in the metadata (key "libramil.config", JSON) and the checksum of the tensor
// data (data::kChecksumKey), which every read verifies (data/safetensors.h).
void save_checkpoint(const std::string& path, nn::Module& model, const std::string& config_json);
void load_checkpoint(const std::string& path, nn::Module& model);

// JSON of the options that define the model (for checkpoint metadata and logs).
std::string options_json(const TrainOptions& options, const Dataset& data);

}  // namespace lm::train

namespace lm::train {

// The Libra-MIL settings that tensor shapes cannot tell. Each one that is set replaces the
// checkpoint's recorded value; one left unset keeps it (a command sets only the flags the user
// gave, so a flag's default never replaces what the checkpoint was trained with).
struct LibraMILOverrides {
  std::optional<std::string> mode, fusion;
  std::optional<double> ot_epsilon;
  std::optional<int> ot_iter, heads;
};

// The sizes a checkpoint's model has: the model's name, the feature width D it takes
// ('proto_vis' (P, D) for Libra-MIL, metadata "dim" for baselines) and its number of classes
// ('prompt_bag' rows for Libra-MIL, metadata "num_classes" for baselines).
struct CheckpointShape {
  std::string model;
  int64_t dim = 0;
  int64_t num_classes = 0;
};

// Rebuilds the model a checkpoint holds: its class and sizes from the "libramil.config"
// metadata (written by save_checkpoint) or, for a bare Libra-MIL state_dict (e.g. saved from
// PyTorch with the reference names), from the tensor shapes. Mode, fusion, epsilon,
// iterations and heads come from `overrides` where set, else from the metadata, else from
// LibraMILConfig's defaults. Loads the weights; with `shape`, also fills in its sizes from the
// same read of the file (read, and its checksum verified, once). Throws naming the file.
std::unique_ptr<nn::Module> load_model_from_checkpoint(const std::string& path, const LibraMILOverrides& overrides = {},
                                                       CheckpointShape* shape = nullptr);

}  // namespace lm::train
