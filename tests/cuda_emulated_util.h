// Comparison helpers shared by the emulated-CUDA suites (tests/test_cuda_emulated*.cpp).
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace lm::test::emulated {

constexpr unsigned kLibThreads = 256;  // cuda/common.cuh's kThreads: the library's block size

// n values uniform in [-1, 1) from std::mt19937(seed).
template <class T>
inline std::vector<T> random_vec(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(rng));
  return v;
}

// max |x - y| / (|y| + 1) over entries; +inf where exactly one is non-finite or they differ in
// non-finite value.
template <class T>
inline double max_err(const std::vector<T>& x, const std::vector<T>& y) {
  REQUIRE(x.size() == y.size());
  double e = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    const double a = x[k], b = y[k];
    if (!std::isfinite(a) || !std::isfinite(b)) {
      if (!(a == b || (std::isnan(a) && std::isnan(b)))) return std::numeric_limits<double>::infinity();
      continue;
    }
    e = std::max(e, std::abs(a - b) / (std::abs(b) + 1.0));
  }
  return e;
}

// max |got - want| / max(1, max |want|); equal infinities and NaN in both are skipped.
inline double attn_err(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() >= want.size());
  double diff = 0, scale = 1;
  for (size_t x = 0; x < want.size(); ++x) {
    const double a = got[x], b = want[x];
    if (std::isnan(a) || std::isnan(b)) {
      if (std::isnan(a) != std::isnan(b)) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (std::isinf(a) || std::isinf(b)) {
      if (a != b) return std::numeric_limits<double>::infinity();
      continue;
    }
    diff = std::max(diff, std::abs(a - b));
    scale = std::max(scale, std::abs(b));
  }
  return diff / scale;
}

// Random values in [-4, 4) of a dtype, as a CPU tensor.
inline lm::Tensor rand_tensor(const lm::Shape& s, lm::DType dt, unsigned seed) {
  lm::Generator g(seed);
  return lm::Tensor::uniform(s, -4.0, 4.0, g, dt);
}

inline double tensor_err(const lm::Tensor& got, const lm::Tensor& want) {
  return attn_err(got.to_double_vector(), want.to_double_vector());
}

}  // namespace lm::test::emulated
