// Helpers shared by ops/cpu/sinkhorn.cpp (plain domain) and ops/cpu/sinkhorn_log.cpp (log
// domain): argument checks, the fixed chunking that makes shared-cost gradient sums
// independent of the thread count, and small vector loops. Internal; not part of the API.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "ops/cpu/sinkhorn.h"

namespace lm::cpu::sinkhorn_detail {

// grad_cost with a shared cost: problems are split into min(B, kGradChunks) contiguous chunks;
// each chunk is summed sequentially into its own (K1, K2) accumulator, then the accumulators
// are added in chunk order. The split does not depend on the thread count, so neither do the
// bits of the result.
inline constexpr int64_t kGradChunks = 64;

inline int64_t chunk_count(int64_t B) { return std::min<int64_t>(B, kGradChunks); }
inline int64_t chunk_begin(int64_t c, int64_t B, int64_t chunks) { return c * B / chunks; }

inline void check_args(const char* op, const void* a, const void* b, const void* cost, int64_t B,
                       int64_t K1, int64_t K2, const SinkhornOptions& opt) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument(std::string(op) + ": " + why + " (B=" + std::to_string(B) +
                                ", K1=" + std::to_string(K1) + ", K2=" + std::to_string(K2) +
                                ", epsilon=" + std::to_string(opt.epsilon) +
                                ", iterations=" + std::to_string(opt.iterations) + ")");
  };
  if (B < 0 || K1 < 1 || K2 < 1) fail("need B >= 0, K1 >= 1, K2 >= 1");
  if (const char* why = sinkhorn_options_problem(opt)) fail(why);  // tensor/op_kinds.h
  if (B > 0 && (a == nullptr || b == nullptr || cost == nullptr)) fail("a, b, cost must be non-null");
}

}  // namespace lm::cpu::sinkhorn_detail
