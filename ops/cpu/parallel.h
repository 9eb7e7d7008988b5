// When a CPU kernel splits its work across OpenMP threads: only above kParallelGrain elements
// (docs/tour.md, "Threads"). Below it one thread does the op, because every parallel region
// ends with a barrier and a descheduled second thread costs a whole time slice.
#pragma once
#include <cstdint>

namespace lm::cpu {

// Elements of work (elementwise, reductions, softmax, LayerNorm, normalisation, row kernels)
// below which a kernel runs on the calling thread.
inline constexpr int64_t kParallelGrain = 1 << 19;
// The same for the image kernels (conv2d's per-image loops, pooling planes, resize passes),
// counted in elements or multiply-adds: more work per element, so a lower threshold.
inline constexpr int64_t kImageParallelGrain = 1 << 16;
// The same for fused row ops that run several passes in one parallel region
// (weighted_attention_pool, ops/attention_pool.cpp: a strided transposition, softmax rows and a
// scaling pass; 24 x 16000 is below kParallelGrain, where its softmax alone ran on one thread).
inline constexpr int64_t kFusedRowsParallelGrain = 1 << 15;

}  // namespace lm::cpu
