// TransportLog (see transport_log.h).
#include "models/train/transport_log.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "data/atomic_file.h"
#include "ops/ops.h"

namespace lm::train {

namespace {

// Six significant digits ("nan" for NaN): gradient norms span many decades.
std::string g6(double v) {
  if (std::isnan(v)) return "nan";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

// L2 norm of a parameter's gradient; 0 when it received none (e.g. ablation no_transport).
double grad_norm(const Tensor& p) {
  const Tensor g = p.grad();
  if (!g.defined()) return 0.0;
  NoGradGuard no_grad;
  return std::sqrt(sum(mul(g, g)).item());
}

}  // namespace

const char* TransportLog::header() {
  return "epoch,bags,w_min,w_max,w_entropy,w_ess_fraction,s_std,grad_proto_vis,grad_prompt_inst,grad_temp_vis,grad_temp_struct,"
         "temp_vis,temp_struct";
}

TransportLog::TransportLog(nn::Module& model, std::string path, int first_epoch) : path_(std::move(path)) {
  auto* m = dynamic_cast<models::LibraMIL*>(&model);
  if (!m || path_.empty()) return;
  model_ = m;
  model_->record_transport_stats(true);
  std::ifstream in(path_);
  std::string line;
  if (!std::getline(in, line) || line != header()) return;  // nothing (or something else) to continue
  while (std::getline(in, line)) {
    const int epoch = std::atoi(line.c_str());
    if (!line.empty() && epoch < first_epoch) rows_.push_back(line);
  }
}

void TransportLog::after_backward() {
  if (!active()) return;
  const models::TransportStats& t = model_->last_transport_stats();
  const double v[] = {t.w_min, t.w_max, t.w_entropy, t.w_ess / (double)t.n, t.s_std, grad_norm(model_->proto_vis),
                      grad_norm(model_->prompt_inst), grad_norm(model_->temp_vis), grad_norm(model_->temp_struct)};
  if (sums_.empty()) sums_.assign(std::size(v), 0.0);
  for (size_t k = 0; k < std::size(v); ++k) sums_[k] += v[k];
  ++steps_;
}

void TransportLog::end_epoch(int epoch) {
  if (!active() || steps_ == 0) return;
  std::ostringstream row;
  row << epoch << ',' << steps_;
  for (double s : sums_) row << ',' << g6(s / steps_);
  row << ',' << g6(model_->temp_vis.item()) << ',' << g6(model_->temp_struct.item());
  rows_.push_back(row.str());
  std::string text = std::string(header()) + "\n";
  for (const std::string& r : rows_) text += r + "\n";
  data::write_file_atomic(path_, text);
  sums_.clear();
  steps_ = 0;
}

}  // namespace lm::train
