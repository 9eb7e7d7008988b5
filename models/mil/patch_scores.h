// Per-patch scores of a trained MIL model on one bag, for heatmaps and exports (`libramil eval
// --scores`, `libramil heatmap`, docs/heatmaps.md). Each score is one float per instance (patch),
// detached, on the CPU, in the bag's order:
//
//   Libra-MIL     weight           the fused instance weight w_j (LibraMILExplanation)
//                 attention_<c>    class c's query attention over the instances, mean over heads
//                 entity_<k>       cosine similarity of each instance to text prototype k
//   ABMIL, gated  attention        the attention pooling weights a_i (sum to 1)
//   TransMIL      attention        the class token's attention in the last layer, mean over heads
//                                  (padding copies folded back; see TransMILExplanation)
//                 attention_layer1 the same in the first layer
//
// Mean- and max-pooling baselines have no per-patch score; asking for them is an error.
#pragma once
#include <string>
#include <vector>

#include "data/slides/scores_file.h"
#include "models/nn/nn.h"

namespace lm::models {

struct PatchScore {
  std::string name;         // dataset name in the scores file: "weight", "attention_2", "entity_5", ...
  std::string label;        // what a person reads: "class 2 attention", the entity's text, ...
  std::string description;  // one sentence on what the number is
  std::vector<float> values;  // (N)
};

struct PatchScores {
  std::string model;                 // "libramil", "abmil", "gated_abmil", "transmil"
  std::vector<double> probabilities;  // softmax of the logits (C)
  std::vector<PatchScore> scores;
};

// True for the models that have per-patch scores.
bool has_patch_scores(const nn::Module& model);

// Runs `model` (eval mode, no autograd) on a bag x (N, D) and collects its per-patch scores.
// `entity_names`, when it has one name per text prototype of a Libra-MIL model, labels the
// entity scores (otherwise they are labelled "text <k>"). Throws std::runtime_error naming the
// model type when it has no per-patch scores.
PatchScores compute_patch_scores(nn::Module& model, const Tensor& x, const std::vector<std::string>& entity_names = {});

// The scores file contents of one features file (data/slides/scores_file.h): runs the model on
// its `features`, copies `coords` and their patch-size attributes, and records the model, the
// checkpoint and the features file; `probabilities`, when given, receives the softmax of the
// logits. Throws "<features>: ..." when the file has no coords (.pt
// bags never have them) and what compute_patch_scores throws.
slides::SlideScores score_features_file(nn::Module& model, const std::string& features_path, const std::string& checkpoint,
                                        const std::vector<std::string>& entity_names = {},
                                        std::vector<double>* probabilities = nullptr);

// The entity names of a Libra-MIL checkpoint: entity_label of each text of `instance_priors`
// (a JSON list) when given, else of the instance priors that the run's config.json (beside the
// checkpoints/ folder holding `checkpoint`) names; empty when neither is there or readable.
std::vector<std::string> entity_names_for(const std::string& checkpoint, const std::string& instance_priors);

// A short name for an instance-prior text: the part before its first ':' ("tumor cells: large
// nuclei ..." -> "tumor cells"), else the whole text, cut to 40 characters.
std::string entity_label(const std::string& prompt);

}  // namespace lm::models
