// Random SGEMM / DGEMM problems and their float64 reference, shared by test_gemm.cpp and
// test_gemm_skinny.cpp: op(A)(M,K), op(B)(K,N), C(M,N) with padded leading dimensions, and a
// comparison whose tolerance scales with sqrt(K) (padding columns must come back untouched).
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace gemm_test {

struct Shape {
  int64_t M, N, K;
};

// One random problem in type T: op(A)(M,K), op(B)(K,N), C(M,N) with padded leading dims.
template <typename T>
struct Problem {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  T alpha, beta;
  std::vector<T> A, B, C;  // A: (M,K) or (K,M) if ta; B: (K,N) or (N,K) if tb; C: (M,N)

  Problem(bool ta_, bool tb_, Shape s, int64_t pad, T alpha_, T beta_, bool nan_c,
          std::mt19937& rng)
      : ta(ta_), tb(tb_), M(s.M), N(s.N), K(s.K), alpha(alpha_), beta(beta_) {
    const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
    const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
    lda = a_cols + pad;
    ldb = b_cols + pad;
    ldc = N + pad;
    std::uniform_real_distribution<T> d(-1, 1);
    A.resize(std::max<int64_t>(1, a_rows * lda));
    B.resize(std::max<int64_t>(1, b_rows * ldb));
    C.resize(std::max<int64_t>(1, M * ldc));
    for (auto& v : A) v = d(rng);
    for (auto& v : B) v = d(rng);
    for (auto& v : C) v = nan_c ? std::numeric_limits<T>::quiet_NaN() : d(rng);
  }

  T a(int64_t i, int64_t k) const { return ta ? A[k * lda + i] : A[i * lda + k]; }
  T b(int64_t k, int64_t j) const { return tb ? B[j * ldb + k] : B[k * ldb + j]; }

  // float64 naive reference of the whole C buffer (padding columns must be untouched).
  std::vector<double> reference() const {
    std::vector<double> ref(C.begin(), C.end());
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += double(a(i, k)) * double(b(k, j));
        const double c0 = beta == T(0) ? 0.0 : double(beta) * double(C[i * ldc + j]);
        ref[i * ldc + j] = double(alpha) * s + c0;
      }
    return ref;
  }
};

// Compares result vs reference; tolerance scales with sqrt(K) and the magnitudes involved.
// Returns the number of mismatches (and reports the first one).
template <typename T>
int64_t count_mismatches(const Problem<T>& p, const std::vector<T>& got,
                         const std::vector<double>& ref, double eps, const std::string& what) {
  int64_t bad = 0;
  const double tol = eps * std::sqrt(double(std::max<int64_t>(p.K, 1))) *
                     (std::abs(double(p.alpha)) + std::abs(double(p.beta)) + 1);
  for (int64_t i = 0; i < p.M; ++i) {
    for (int64_t j = 0; j < p.ldc; ++j) {
      const int64_t idx = i * p.ldc + j;
      const double r = ref[idx], g = double(got[idx]);
      bool ok;
      if (j >= p.N) {
        // padding: must be bit-identical to the input (NaN stays NaN)
        ok = (std::isnan(r) && std::isnan(g)) || r == g;
      } else {
        ok = std::isfinite(g) && std::abs(g - r) <= tol * (1 + std::abs(r));
      }
      if (!ok && bad++ == 0) {
        MESSAGE(what << " M=" << p.M << " N=" << p.N << " K=" << p.K << " ta=" << p.ta
                     << " tb=" << p.tb << " alpha=" << p.alpha << " beta=" << p.beta
                     << " at (" << i << "," << j << "): got " << g << " want " << r);
      }
    }
  }
  return bad;
}

struct AlphaBeta {
  double alpha, beta;
  bool nan_c;
};
}  // namespace gemm_test
