// transport_stats (see transport_stats.h).
#include "models/mil/transport_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lm::models {

TransportStats transport_stats(const Tensor& w, const Tensor& s) {
  TransportStats t;
  const std::vector<double> wv = w.detach().to(Device::cpu()).to_double_vector();
  if (wv.empty()) return t;
  t.valid = true;
  t.n = (int64_t)wv.size();
  t.w_min = *std::min_element(wv.begin(), wv.end());
  t.w_max = *std::max_element(wv.begin(), wv.end());
  double sum = 0, sum2 = 0;
  for (double x : wv) sum += x, sum2 += x * x;
  if (t.w_min < 0 || !(sum > 0)) {
    t.w_entropy = t.w_ess = NAN;
  } else {
    double h = 0;
    for (double x : wv)
      if (x > 0) h -= (x / sum) * std::log(x / sum);
    t.w_entropy = h;
    t.w_ess = sum * sum / sum2;
  }
  t.s_std = NAN;
  if (s.defined()) {
    const std::vector<double> sv = s.detach().to(Device::cpu()).to_double_vector();
    double m = 0, v = 0;
    for (double x : sv) m += x;
    m /= (double)sv.size();
    for (double x : sv) v += (x - m) * (x - m);
    t.s_std = std::sqrt(v / (double)sv.size());
  }
  return t;
}

}  // namespace lm::models
