// The per-patch scores file of one slide (`libramil eval --scores DIR` writes DIR/<slide>.h5;
// `libramil heatmap --scores` reads it; docs/heatmaps.md):
//
//   coords        (N, 2) int64   level-0 top-left (x, y) of each patch, copied from the features
//                                file with its attributes (patch_size_level0, patch_size,
//                                target_magnification when the features file has them)
//   <score>       (N) float32    one dataset per score ("weight", "attention_0", "entity_3", ...),
//                                attributes `label` (what a person reads) and `description`
//   /             attributes: `scores` (the score datasets' names, comma-separated, in order),
//                 `model`, `checkpoint`, `features`, `slide`, `written_by`, and (when written by
//                 eval) `probabilities` (comma-separated) and `prediction` (the class index),
//                 all strings
//
// h5py reads it as it is. Written atomically (data/formats/hdf5_writer.h); every read error
// names the file in one line.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/slides/patch_outputs.h"

namespace lm::slides {

struct ScoreColumn {
  std::string name, label, description;
  std::vector<float> values;  // (N)
};

struct SlideScores {
  std::vector<Coord> coords;
  int64_t patch_size_level0 = 0;  // 0: unknown (the features file did not say)
  int64_t patch_size = 0;         // pixels at the target magnification; 0: unknown
  double target_mag = 0;          // 0: unknown
  std::map<std::string, std::string> info;  // root string attributes (model, checkpoint, ...)
  std::vector<ScoreColumn> scores;
};

// Throws naming `path` when a score's length differs from the coords' count, a name is empty,
// repeated, "coords" or holds a comma.
void write_scores_h5(const std::string& path, const SlideScores& s);
SlideScores read_scores_h5(const std::string& path);

// The scores that `specs` ask for, in the file's order, each once: "all"; "weight";
// "attention:CLASS" (dataset attention_CLASS; plain "attention" is the dataset of that name, or
// every attention_* one); "entity:NAME" (entity_NAME, or the entity whose label is NAME, ignoring
// case); or a dataset's own name. Throws naming `path`, the spec and the scores it has.
std::vector<const ScoreColumn*> select_scores(const SlideScores& s, const std::vector<std::string>& specs,
                                              const std::string& path);

// The patch geometry attributes of a features (or patches) file's `coords` into `s`
// (patch_size_level0, patch_size, target_magnification; absent ones stay 0).
void read_coords_attributes(const std::string& path, SlideScores& s);

}  // namespace lm::slides
