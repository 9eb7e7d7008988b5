// The CSR inversion of an index list, for index_select's deterministic CUDA backward
// (cuda/index_kernels.cuh): for idx (K) with entries in [0, n), the k with idx[k] = j are
// ks[offsets[j] .. offsets[j+1] - 1], in ascending order. Host code, written once for the op
// (ops/shape.cpp) and the emulated kernel test.
#pragma once
#include <cstdint>
#include <vector>

namespace lm {

struct IndexCsr {
  std::vector<int64_t> offsets;  // (n + 1)
  std::vector<int64_t> ks;       // (K)
};

inline IndexCsr invert_index(const std::vector<int64_t>& idx, int64_t n) {
  IndexCsr c{std::vector<int64_t>((size_t)n + 1, 0), std::vector<int64_t>(idx.size())};
  for (int64_t i : idx) ++c.offsets[(size_t)i + 1];
  for (int64_t j = 0; j < n; ++j) c.offsets[(size_t)j + 1] += c.offsets[(size_t)j];
  std::vector<int64_t> next(c.offsets.begin(), c.offsets.end() - 1);
  for (size_t k = 0; k < idx.size(); ++k) c.ks[(size_t)next[(size_t)idx[k]]++] = (int64_t)k;
  return c;
}

}  // namespace lm
