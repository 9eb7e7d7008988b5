// The per-epoch transport log of a Libra-MIL run (issue 23): logs/transport_<fold>.csv with,
// per epoch (0-based, as log_<fold>.csv), the mean over the epoch's training bags of the
// instance weights' spread (min, max, entropy, effective sample size as a fraction of the bag;
// transport_stats.h) and
// of the fused scores' standard deviation, the temperatures at the epoch's end, and the mean
// L2 norm of the gradients reaching proto_vis, prompt_inst, temp_vis and temp_struct. It tells
// whether the reweighting does anything (docs/science.md); `libramil report` shows it.
#pragma once
#include <string>
#include <vector>

#include "models/mil/libramil.h"
#include "models/nn/nn.h"

namespace lm::train {

class TransportLog {
 public:
  // Active for a Libra-MIL model and a non-empty path (a run directory); switches the model's
  // statistics on. Rows for epochs before first_epoch are read back from the file an
  // interrupted run left (train --resume).
  TransportLog(nn::Module& model, std::string path, int first_epoch);
  bool active() const { return model_ != nullptr; }
  // After each training step's backward: the forward's statistics and the gradient norms.
  void after_backward();
  // Averages the epoch's steps into a row and writes the whole file atomically.
  void end_epoch(int epoch);

  static const char* header();

 private:
  models::LibraMIL* model_ = nullptr;
  std::string path_;
  std::vector<std::string> rows_;  // written lines, header excluded
  std::vector<double> sums_;       // this epoch's running sums, one per averaged column
  int steps_ = 0;
};

}  // namespace lm::train
