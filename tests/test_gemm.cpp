// lm::cpu::sgemm / dgemm against a float64 naive reference: every micro-kernel the CPU
// supports, all four transpose combinations, edge shapes (0, 1, odd, block-straddling),
// padded leading dimensions, alpha/beta variants and beta = 0 over a NaN-filled C; and the
// AVX-512 skinny forms (gemm_skinny_avx512.cpp) called directly, on 1 and 2 threads.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/gemm.h"

namespace {

using lm::cpu::GemmKernel;

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

std::vector<Shape> test_shapes() {
  std::vector<Shape> s = {
      {0, 0, 0},   {0, 5, 3},    {5, 0, 3},    {5, 3, 0},    {1, 1, 1},    {1, 1, 7},
      {1, 33, 1},  {17, 1, 9},   {14, 32, 1},  {14, 32, 64}, {15, 33, 65}, {13, 31, 3},
      {6, 16, 5},  {7, 17, 257}, {28, 64, 256}, {29, 65, 255},
      {337, 70, 300},  // straddles MC (avx512: 336) and KC (256)
      {70, 337, 513},  // straddles KC twice; more N tiles than M tiles -> split over N
      {3, 4100, 5},    // straddles NC (4096)
      {130, 150, 70},  // large enough to run on two threads
      // skinny shapes (AVX-512 broadcast forms): small M, N or K against a long side
      {24, 900, 131}, {900, 56, 100}, {3, 300, 517}, {24, 100, 900}, {61, 77, 300}, {7, 1000, 33},
  };
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int64_t> d(1, 70);
  for (int r = 0; r < 12; ++r) s.push_back({d(rng), d(rng), d(rng)});
  return s;
}

struct AlphaBeta {
  double alpha, beta;
  bool nan_c;
};
const AlphaBeta kAlphaBetas[] = {{1, 0, true}, {0.5, 0, true}, {1, 1, false},
                                 {-1.5, 0.25, false}, {0, 2, false}, {0, 0, true}};

std::vector<GemmKernel> supported_kernels() {
  std::vector<GemmKernel> ks;
  for (auto k : {GemmKernel::Portable, GemmKernel::Avx2, GemmKernel::Avx512})
    if (lm::cpu::gemm_kernel_supported(k)) ks.push_back(k);
  return ks;
}

// Runs every shape x transpose x alpha/beta case through `gemm` and checks it.
template <typename T, typename Gemm>
void check_all(Gemm gemm, double eps, const std::string& what) {
  std::mt19937 rng(7);
  int64_t cases = 0, bad_cases = 0;
  const auto shapes = test_shapes();
  for (size_t si = 0; si < shapes.size(); ++si) {
    const Shape& s = shapes[si];
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      // Cycle alpha/beta cases and padding over shapes to keep the run short.
      for (size_t v = 0; v < 2; ++v) {
        const AlphaBeta& ab = kAlphaBetas[(si + t + 3 * v) % std::size(kAlphaBetas)];
        const int64_t pad = (si + v) % 3 == 0 ? 0 : 3 + int64_t(si % 5);
        Problem<T> p(ta, tb, s, pad, T(ab.alpha), T(ab.beta), ab.nan_c, rng);
        const auto ref = p.reference();
        std::vector<T> got = p.C;
        gemm(ta, tb, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb, p.beta,
             got.data(), p.ldc);
        ++cases;
        if (count_mismatches(p, got, ref, eps, what) != 0) ++bad_cases;
      }
    }
  }
  CHECK(cases > 0);
  CHECK_MESSAGE(bad_cases == 0, what << ": " << bad_cases << " of " << cases << " cases wrong");
}

}  // namespace

TEST_CASE("sgemm: every supported micro-kernel, all transposes, edge shapes") {
  for (GemmKernel k : supported_kernels()) {
    const std::string name = lm::cpu::sgemm_kernel_name(k);
    INFO("kernel: " << name);
    check_all<float>(
        [k](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float al, const float* A,
            int64_t lda, const float* B, int64_t ldb, float be, float* C, int64_t ldc) {
          lm::cpu::sgemm_with_kernel(k, ta, tb, M, N, K, al, A, lda, B, ldb, be, C, ldc);
        },
        2e-6, name);
  }
}

TEST_CASE("sgemm: default entry point and kernel name") {
  const std::string name = lm::cpu::sgemm_kernel_name();
  CHECK(!name.empty());
  MESSAGE("default sgemm kernel: " << name);
  check_all<float>(lm::cpu::sgemm, 2e-6, "sgemm default");
}

TEST_CASE("sgemm: inside an OpenMP parallel region (runs single-threaded per caller)") {
  const int64_t M = 150, N = 130, K = 90;
  std::vector<float> A(M * K), B(K * N);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-1, 1);
  for (auto& v : A) v = d(rng);
  for (auto& v : B) v = d(rng);
  std::vector<float> want(M * N);
  lm::cpu::sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, want.data(), N);
  std::vector<std::vector<float>> got(4, std::vector<float>(M * N));
  int mismatches = 0;
#pragma omp parallel for num_threads(2) reduction(+ : mismatches)
  for (int t = 0; t < 4; ++t) {
    lm::cpu::sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f,
                   got[t].data(), N);
    for (int64_t i = 0; i < M * N; ++i) mismatches += got[t][i] != want[i];
  }
  CHECK(mismatches == 0);  // same blocking, same kernel -> bit-identical
}

TEST_CASE("sgemm: unsupported kernel request throws, Auto works") {
  for (auto k : {GemmKernel::Portable, GemmKernel::Avx2, GemmKernel::Avx512}) {
    if (lm::cpu::gemm_kernel_supported(k)) continue;
    float a = 1, b = 1, c = 0;
    CHECK_THROWS(lm::cpu::sgemm_with_kernel(k, false, false, 1, 1, 1, 1.0f, &a, 1, &b, 1,
                                            0.0f, &c, 1));
  }
  float a = 2, b = 3, c = std::numeric_limits<float>::quiet_NaN();
  lm::cpu::sgemm_with_kernel(GemmKernel::Auto, false, false, 1, 1, 1, 1.0f, &a, 1, &b, 1,
                             0.0f, &c, 1);
  CHECK(c == 6.0f);
}

TEST_CASE("dgemm: all transposes, edge shapes") {
  check_all<double>(lm::cpu::dgemm, 1e-13, "dgemm");
}

// ---- AVX-512 skinny broadcast forms --------------------------------------------------------
// Each form of detail::sgemm_skinny_avx512 on odd sizes around its 16-float vectors and its
// row tiles, every transpose it accepts, alpha/beta variants (NaN-filled C with beta = 0),
// padded leading dimensions, on 1 and 2 threads. The function must accept the shape (so that
// a change of the dispatch cannot silently send these cases to the packed path), match the
// float64 reference, and give bit-identical results on 1 and 2 threads.
namespace {

struct SkinnyForm {
  const char* name;
  std::vector<bool> ta, tb;  // transposes the form accepts
  std::vector<int64_t> Ms, Ns, Ks;
};

void check_skinny_form(const SkinnyForm& f) {
  const AlphaBeta abs[] = {{1, 0, true}, {-1.5, 0.25, false}, {0.5, 0, true}, {2, 1, false}};
  std::mt19937 rng(11);
  int64_t cases = 0, bad_cases = 0, not_handled = 0, thread_mismatch = 0, n = 0;
  for (int64_t M : f.Ms)
    for (int64_t N : f.Ns)
      for (int64_t K : f.Ks)
        for (bool ta : f.ta)
          for (bool tb : f.tb) {
            ++n;
            const AlphaBeta& ab = abs[n % std::size(abs)];
            const int64_t pad = n % 3 == 0 ? 0 : 5;
            Problem<float> p(ta, tb, {M, N, K}, pad, float(ab.alpha), float(ab.beta), ab.nan_c, rng);
            const auto ref = p.reference();
            std::vector<float> first;
            for (int threads : {1, 2}) {
              std::vector<float> got = p.C;
              const bool handled = lm::cpu::detail::sgemm_skinny_avx512(
                  ta, tb, M, N, K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb, p.beta, got.data(), p.ldc,
                  threads);
              ++cases;
              if (!handled) {
                if (not_handled++ == 0)
                  MESSAGE(f.name << ": not handled M=" << M << " N=" << N << " K=" << K << " ta=" << ta
                                 << " tb=" << tb);
                continue;
              }
              if (count_mismatches(p, got, ref, 2e-6, std::string(f.name) + " threads=" + std::to_string(threads)))
                ++bad_cases;
              if (threads == 1)
                first = got;
              else if (!std::equal(first.begin(), first.end(), got.begin(), got.end(),
                                   [](float x, float y) { return x == y || (std::isnan(x) && std::isnan(y)); }))
                ++thread_mismatch;
            }
          }
  INFO(f.name);
  CHECK(cases > 0);
  CHECK(not_handled == 0);
  CHECK_MESSAGE(bad_cases == 0, f.name << ": " << bad_cases << " of " << cases << " cases wrong");
  CHECK(thread_mismatch == 0);
}

}  // namespace

TEST_CASE("sgemm: AVX-512 skinny broadcast forms against float64, 1 and 2 threads") {
  if (!lm::cpu::gemm_kernel_supported(GemmKernel::Avx512)) {
    MESSAGE("skipped: this CPU has no AVX-512, the skinny forms are never used");
    return;
  }
  // Small N: op(A) rows streamed against op(B) (B^T packed into a panel when trans_b).
  check_skinny_form({"small N", {false, true}, {false, true}, {129, 1000}, {1, 15, 16, 17, 56, 64}, {1, 10, 17, 512}});
  // Small M, trans_b: C^T = B op(A)^T, written transposed.
  check_skinny_form({"small M, trans_b", {false, true}, {true}, {1, 5, 24, 64}, {129, 1000}, {1, 10, 17, 512}});
  // Tiny M (<= 4), trans_b, !trans_a: dot products over K (two chains of 16, masked tail).
  check_skinny_form({"tiny M, dot", {false}, {true}, {1, 2, 3, 4}, {16, 17, 129, 512}, {16, 17, 33, 47, 512}});
  // Small M (<= 32), !trans_b, long K: K blocked (block 128), strips of 64 (M = 24) or 48
  // (M = 8) columns per thread.
  check_skinny_form({"small M, long K", {false, true}, {false}, {1, 5, 8, 24, 32}, {129, 200}, {128, 257, 512}});
  // Short K (<= 32), !trans_b: op(A) rows streamed against B, 64-column strips.
  check_skinny_form({"short K", {false, true}, {false}, {129, 1000}, {129, 200}, {1, 10, 17, 32}});
}
