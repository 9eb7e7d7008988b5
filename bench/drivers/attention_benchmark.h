// Attention-only benchmark (`libramil bench attention`): forward + backward of
// scaled_dot_product_attention on random q, k, v at one shape, through the path chosen by
// LIBRAMIL_CUDA_ATTENTION (fused / composed / cudnn; the CPU always composes), reporting which
// path actually ran. tools/gpu_check.sh times our fused kernels and cuDNN's against PyTorch's
// scaled_dot_product_attention at TransMIL's shape with it.
#pragma once
#include <cstdint>
#include <string>

#include "bench/drivers/step_times.h"
#include "tensor/tensor.h"

namespace lm::bench {

struct AttentionBenchOptions {
  int64_t B = 1, H = 8, Lq = 2048, Lk = 2048, d = 64, dv = 64;
  int repeats = 5, warmup = 1;
  uint64_t seed = 0;
  bool forward_only = false;
  std::string path;  // LIBRAMIL_CUDA_ATTENTION for the run ("" = as the environment says)
  Device device = Device::cpu();
};

// median_ms, min_ms, forward_median_ms: StepTimes (bench/drivers/step_times.h); with forward_only the
// "step" is the forward alone.
struct AttentionBenchResult : StepTimes {
  int64_t peak_bytes = 0;  // tensor memory high-water mark during the timed steps
  std::string forward_ran, backward_ran;  // "fused" | "cudnn" | "composed" ("" if none ran)
};

// Inputs: q, k, v ~ randn (float32) on `device`, gradient of the output ~ randn.
AttentionBenchResult bench_attention(const AttentionBenchOptions& options);

}  // namespace lm::bench
