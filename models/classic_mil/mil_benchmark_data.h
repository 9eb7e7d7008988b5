// Reader for the classic multiple-instance-learning benchmarks (Musk1, Musk2, Fox, Tiger,
// Elephant) in the layout of tests/data/mil (from MilDatasets.jl, original-datasets):
//
//   DIR/data.csv      tab-separated and TRANSPOSED: one row per feature, one column per
//                     instance (every row the same number of columns)
//   DIR/bagids.csv    one 1-based bag id per instance (line i = instance i); ids start at 1
//                     and are contiguous: instances of a bag are consecutive and the ids run
//                     1, ..., B in order
//   DIR/labels.csv    0/1 per instance, constant within a bag (the bag label)
//   DIR/cvindexes/rep=R_fold=F.csv
//                     1-based bag ids of the TEST fold of repetition R, fold F (R 1..reps,
//                     F 1..folds); train = every other bag. Within a repetition the test
//                     folds must be disjoint and cover every bag.
//
// Every malformed input raises std::runtime_error naming the file (and line / column where it
// applies): ragged rows, non-numeric values, non-contiguous bag ids, a label that is not 0/1
// or changes within a bag (names the bag), count mismatches between the files, fold ids out
// of range or repeated, missing fold files.
#pragma once
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lm::data {

struct MilDataset {
  std::string name;              // the directory's base name ("Musk1")
  int64_t dim = 0;               // features per instance
  int64_t num_instances = 0;
  std::vector<Tensor> bags;      // bag b (0-based; id b+1): float32 (n_b, dim), contiguous
  std::vector<int> labels;       // bag label, 0 or 1
  // test_folds[r][f]: 0-based bag indices of the test fold of repetition r+1, fold f+1
  // (sorted ascending). Empty when the directory has no cvindexes/.
  std::vector<std::vector<std::vector<int>>> test_folds;

  int num_bags() const { return (int)bags.size(); }
  int reps() const { return (int)test_folds.size(); }
  int folds() const { return test_folds.empty() ? 0 : (int)test_folds[0].size(); }
  // 0-based bag indices not in test fold (rep, fold) (0-based), ascending.
  std::vector<int> train_bags(int rep, int fold) const;
};

// Reads DIR (layout above). Throws std::runtime_error naming the offending file.
MilDataset read_mil_dataset(const std::string& dir);

}  // namespace lm::data
