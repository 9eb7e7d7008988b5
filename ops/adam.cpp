// The Adam / AdamW update op (see adam.h): checks, then one dispatch per device.
#include "ops/adam.h"

#include <map>
#include <stdexcept>

#include "ops/cpu/adam.h"
#include "ops/op_utils.h"

namespace lm {

void adam_update(const std::vector<AdamParam>& params) {
  std::map<std::pair<int, int>, std::vector<AdamParam>> by_device;  // (kind, index) -> its parameters
  for (const AdamParam& a : params) {
    if (!is_compute_float(a.p.dtype()) || !a.p.is_contiguous())
      throw std::invalid_argument("adam_update: parameter must be a packed float32/float64 tensor, got " + a.p.str());
    for (const Tensor* t : {&a.g, &a.m, &a.v})
      if (t->shape() != a.p.shape() || t->dtype() != a.p.dtype() || t->device() != a.p.device() || !t->is_contiguous())
        throw std::invalid_argument("adam_update: gradient and state must match the parameter " + a.p.str() +
                                    " (packed, same dtype and device), got " + t->str());
    by_device[{(int)a.p.device().type, a.p.device().index}].push_back(a);
  }
  for (const auto& [key, group] : by_device) {
    auto counts = [&group] {  // only while profiling
      profiler::Work w{0, 0, 0};
      for (const AdamParam& a : group)
        w = work::combined(w, work::adam(a.p.numel(), dtype_size(a.p.dtype()), a.step.decoupled, a.step.weight_decay != 0));
      return w;
    };
    LM_DISPATCH_COUNTED("adam_update", counts(), group[0].p.device(), adam_update, group);
  }
}

}  // namespace lm
