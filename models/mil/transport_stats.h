// How much Libra-MIL's transport fusion reweights a bag (issue 23): the spread of the instance
// weights w (Xf = w[:, None] V) and of the fused scores s they come from. Logged per epoch by
// the trainer (logs/transport_<fold>.csv, models/train/transport_log.h) and shown by the report.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace lm::models {

struct TransportStats {
  bool valid = false;
  int64_t n = 0;            // instances
  double w_min = 0, w_max = 0;
  // Entropy (nats) of p = w / sum(w), and the effective sample size (sum w)^2 / sum w^2: ln(n)
  // and n when every weight is equal. NaN when a weight is negative (literal fusion) or the
  // weights sum to zero.
  double w_entropy = 0, w_ess = 0;
  double s_std = 0;         // population standard deviation of s; NaN when s is not defined
};

// Statistics of w (N) and s (N, or undefined), on any device, as float64 sums on the host.
TransportStats transport_stats(const Tensor& w, const Tensor& s);

}  // namespace lm::models
