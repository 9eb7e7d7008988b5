// Models and their checkpoints: a fresh model for a run's options, the checkpoint file (a
// safetensors state_dict with the run's options in its metadata) and the model rebuilt from
// one for eval, dump and the report's explanations.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "models/nn/nn.h"
#include "models/train/trainer.h"

namespace lm::train {

// A fresh model of options.model for this dataset.
std::unique_ptr<nn::Module> make_model(const TrainOptions& options, const Dataset& data, Generator& gen);

// The checkpoint format: the model's state_dict with the reference names, the run's
// configuration in the metadata (key "libramil.config", JSON) and the checksum of the tensor
// data (data::kChecksumKey), which every read verifies (data/formats/safetensors.h).
void save_checkpoint(const std::string& path, nn::Module& model, const std::string& config_json);
void load_checkpoint(const std::string& path, nn::Module& model);

// The Libra-MIL settings that tensor shapes cannot tell. Each one that is set replaces the
// checkpoint's recorded value; one left unset keeps it (a command sets only the flags the user
// gave, so a flag's default never replaces what the checkpoint was trained with).
struct LibraMILOverrides {
  std::optional<std::string> mode, fusion, ablation;
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
