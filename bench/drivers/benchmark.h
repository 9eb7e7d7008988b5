// Timing of one training step (forward + backward + AdamW) and of an inference forward on
// random data, for `libramil bench train-step` and bench/compare_torch.py.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "models/mil/libramil.h"
#include "bench/drivers/step_times.h"

namespace lm::bench {

struct TrainStepOptions {
  int64_t instances = 8000, dim = 512, text_prototypes = 46, visual_prototypes = 10, classes = 3;
  std::string mode = "paper", model = "libramil";
  int repeats = 5, warmup = 1;
  bool forward_only = false;  // skip the training steps (median_ms stays 0)
  uint64_t seed = 0;
  Device device = Device::cpu();  // CUDA: model, data and optimizer state on the GPU; each
                                  // timed step ends with a device synchronisation
  // CUDA only: after the eager steps, the same model from the same seed runs its warm-up steps
  // eagerly, then zero_grad + forward + backward are captured once as a CUDA graph (cuda/graph.h)
  // and replayed for the timed steps (AdamW stays eager: its step count changes every step).
  // Both runs record their losses, which must agree.
  bool cuda_graph = false;
  // Libra-MIL only: also time forward + backward of the transport fusion alone (paper or
  // reference mode's steps 2-7, LibraMIL::fuse_paper / fuse_reference) on random V (N, D),
  // Pv (Kv, D), Pt (Kt, D) with loss sum(w o r), r random: its share of the training step.
  bool fusion = false;
};

struct TrainStepResult {
  double median_ms = 0, forward_median_ms = 0, min_ms = 0;
  int64_t peak_bytes = 0;  // high-water mark of CPU tensor storage (CUDA: of the device's caching
                           // allocator, cuda/device.h) during the timed steps
  int64_t parameters = 0;
  // With cuda_graph: the graph run's median step, its node count, and the largest difference
  // between the eager and the graph run's loss at the same step (0: identical).
  double graph_median_ms = 0, graph_max_abs_loss_diff = 0;
  int64_t graph_nodes = 0, graph_steps_compared = 0;
  // With fusion: the fusion's forward + backward and forward-only medians (ms).
  StepTimes fusion;
};

TrainStepResult bench_train_step(const TrainStepOptions& options);

// Median of timings (the upper middle one for an even count; 0 for none), shared by the
// benchmarks in models/.
double median(std::vector<double> v);

// Device helpers shared by the benchmarks: wait for the device's queued work (a no-op on the CPU)
// so that a host timer covers the kernels; tensor memory in use and its high-water mark (CUDA:
// the caching allocator's, cuda/device.h; CPU: tensor storage); reset that mark.
void sync_device(Device d);
int64_t device_bytes_in_use(Device d);
int64_t device_peak_bytes(Device d);
void reset_device_peak(Device d);

// The timing loop of the op benchmarks (bench sinkhorn, bench attention): warmup + repeats
// steps of before(), forward() and backward(forward's result), the forward and the backward
// each ended by a device synchronisation; the timed steps' medians and fastest step in ms.
StepTimes time_forward_backward(Device d, int warmup, int repeats, const std::function<void()>& before,
                                const std::function<Tensor()>& forward,
                                const std::function<void(const Tensor&)>& backward);

}  // namespace lm::bench
