// Fusion-only benchmark of reference-mode Sinkhorn (`libramil bench sinkhorn`, compared with
// the PyTorch anchor by bench/compare_sinkhorn.py): one transport problem per instance,
// marginals a_t (N, Kt) and a_v (N, Kv), shared cost (Kt, Kv), column sums of every plan,
// timed forward + backward of sum(cols o W).
#pragma once
#include <cstdint>

#include "ops/sinkhorn.h"
#include "bench/drivers/step_times.h"
#include "tensor/tensor.h"

namespace lm::bench {

struct SinkhornBenchOptions {
  int64_t instances = 8000, text_prototypes = 46, visual_prototypes = 10;
  int64_t proto_dim = 16;  // width of the random prototypes the cost is made from
  SinkhornOptions config;   // epsilon 0.05, 20 iterations, plain domain by default
  int repeats = 5, warmup = 1;
  uint64_t seed = 0;
  Device device = Device::cpu();  // CUDA: inputs made on the CPU (same values), moved to the
                                  // GPU; forward and backward each end with a synchronisation
};

// median_ms, min_ms, forward_median_ms: StepTimes (bench/drivers/step_times.h).
struct SinkhornBenchResult : StepTimes {
  int64_t inputs_bytes = 0;          // tensor memory held before the timed steps (inputs, W)
  int64_t peak_bytes = 0;            // high-water mark of tensor memory during the steps (CPU
                                     // storage; CUDA: the device's caching allocator)
  int64_t rss_before_bytes = 0;      // resident set size just before the timed steps (Linux)
};

// Inputs as in the model: a_t = softmax(randn (N, Kt)), a_v = softmax(randn (N, Kv)),
// cost = 1 - cos(Pt, Pv) for random Pt (Kt, proto_dim), Pv (Kv, proto_dim); W = randn (N, Kv).
SinkhornBenchResult bench_sinkhorn(const SinkhornBenchOptions& options);

// One step on given inputs (float32 or float64): cols = sinkhorn_column_sums(a_t, a_v, cost),
// loss = sum(cols o weights), backward, on `device` (results come back on the CPU). For checking
// against PyTorch on the same inputs.
struct SinkhornStepResult {
  Tensor cols, grad_a_t, grad_a_v, grad_cost;
};
SinkhornStepResult sinkhorn_step(const Tensor& a_t, const Tensor& a_v, const Tensor& cost, const Tensor& weights,
                                 const SinkhornOptions& config, Device device = Device::cpu());

}  // namespace lm::bench
