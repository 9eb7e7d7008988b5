// A run's options as JSON: the one writer and the one reader of config.json (train, train
// --resume, report) and of a checkpoint's "libramil.config" metadata (eval, dump, report's
// explanations). Every key has one JSON type (a table in config_json.cpp); a reader meets a
// value of another type ("epochs": "ten") as a one-line message, never a raw JSON exception.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/train/trainer.h"

namespace lm::train {

// The options that define the model and the run: model, dim, num_classes, the Libra-MIL
// settings (mode, fusion, ablation, ot_epsilon, ot_iter, heads, num_vis_prototypes, text_dim,
// num_text_prototypes), epochs, folds, lr, weight_decay, warmup_steps, seed, select, classes.
nlohmann::json options_to_json(const TrainOptions& options, const Dataset& data);

// Called with the key ("epochs"), its value and what was expected ("an integer") when a value
// has the wrong type; must throw.
using WrongKey = std::function<void(const std::string& key, const nlohmann::json& value, const char* expected)>;

// Reads the keys options_to_json writes that are present in `config` into `options` (a key
// that is absent keeps its value; "dim", "num_classes", "text_dim", "num_text_prototypes"
// are sizes the data decide and are not read). A value of the wrong type calls `wrong`.
void options_from_json(const nlohmann::json& config, TrainOptions& options, const WrongKey& wrong);

// "'epochs' is "ten"" style: the value as JSON, cut to 40 characters.
std::string shown_json(const nlohmann::json& value);

// Removes from `config` (a JSON object) every known key whose value has another type than
// options_to_json writes, and "inputs" when it is not an object or its entries that are not
// strings; returns one description per removal, e.g. "'epochs' is "ten", expected an integer".
// Unknown keys are left alone. (The report reads a run as it is and notes what it set aside.)
std::vector<std::string> drop_mistyped_config_keys(nlohmann::json& config);

}  // namespace lm::train
