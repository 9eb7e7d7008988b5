// Loading the inputs a run needs (labels, splits, feature bags, priors and their
// embeddings) from the users' files, with one-line errors naming the file and the problem.
#pragma once
#include <string>
#include <vector>

#include "data/feature_cache.h"
#include "data/tables.h"
#include "models/train/trainer.h"

namespace lm::app {

// Finds <dir>/<slide>.h5 (or .hdf5, .pt, in that order); throws naming the slide and the
// directory. When a slide has more than one of them, warns once (on stderr) naming them all
// and the one used: "libramil: warning: slide 's': both D/s.h5 and D/s.pt exist; using D/s.h5".
std::string find_feature_file(const std::string& dir, const std::string& slide);

// The bag-prior rows to use for C classes: all C rows, or rows C..2C-1 of a two-scale file
// (SPEC: low-resolution rows first, then high-resolution rows).
std::vector<std::string> select_bag_prompts(const std::vector<std::string>& rows, int num_classes, const std::string& path);

// Checks, from the bag's shape alone (probe_feature_bag), that the bag at `bag_path` has
// `model_width` features per instance; otherwise throws "file <bag_path>: [slide '<slide>': ]
// feature width W does not match the model width D of checkpoint <checkpoint>".
void check_bag_width(const std::string& bag_path, int64_t model_width, const std::string& checkpoint,
                     const std::string& slide = "");

// Reads tensor "embeddings" (K, Dt) from a safetensors file written by `libramil encode-text`.
Tensor read_embeddings(const std::string& path, int64_t expected_rows);

}  // namespace lm::app
