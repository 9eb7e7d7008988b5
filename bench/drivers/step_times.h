// The timings an op benchmark reports (bench sinkhorn, bench attention; filled by
// bench::time_forward_backward, bench/drivers/benchmark.h): over the timed steps, the median and the
// fastest forward + backward step and the median forward part, in milliseconds.
#pragma once

namespace lm::bench {

struct StepTimes {
  double median_ms = 0, min_ms = 0;  // forward + backward
  double forward_median_ms = 0;      // the forward part of the same steps
};

}  // namespace lm::bench
