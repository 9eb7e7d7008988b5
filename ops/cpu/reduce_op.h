// The reductions' op enum alone, for the CPU kernels (ops/cpu/reduce.h) and the self-contained
// CUDA kernel header (cuda/reduce_kernels.cuh, also compiled by the cuda/dev/reduce.cu study).
#pragma once

namespace lm::cpu {

enum class ReduceOp { Sum, Max, LogSumExp };

}  // namespace lm::cpu
