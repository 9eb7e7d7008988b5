// lm::cpu::sgemm / dgemm against a float64 naive reference: every micro-kernel the CPU
// supports, all four transpose combinations, edge shapes (0, 1, odd, block-straddling),
// padded leading dimensions, alpha/beta variants and beta = 0 over a NaN-filled C; the K-split
// form on 1, 2 and 3 threads (the skinny forms and sgemm_rows' row epilogue:
// test_gemm_skinny.cpp).
// The CUDA GEMMs (cuda/gemm.h: cuBLAS, tiled, tensor-core TF32, gemm_bf16) against the same
// float64 reference when a GPU is present; counted and reported as skipped otherwise.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gemm_problem.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/isa.h"

#ifdef LIBRAMIL_WITH_CUDA
#include <stdexcept>

#include "cuda/device.h"
#include "cuda/gemm.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"
#endif

namespace {

using gemm_test::AlphaBeta;
using gemm_test::count_mismatches;
using gemm_test::Problem;
using gemm_test::Shape;
using lm::cpu::GemmKernel;

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

TEST_CASE("sgemm: K-split form (small C, long K) against float64, bit-identical on 1, 2, 3 threads") {
  // Shapes no skinny form takes (M, N < 128, M > 4), each with its expected chunk count, so the
  // test fails if the form stops being chosen as well as if it computes wrongly.
  const struct {
    Shape s;
    int64_t chunks;
  } cases[] = {{{40, 50, 4200}, 2}, {{33, 17, 8300}, 4}, {{21, 37, 33000}, 16}};
  CHECK(lm::cpu::detail::k_split_chunks(512, 512, 16000) == 4);  // a Linear layer's dW over a bag
  CHECK(lm::cpu::detail::k_split_chunks(2048, 2048, 2048) == 1);  // large C: slabs
  CHECK(lm::cpu::detail::k_split_chunks(64, 64, 4095) == 1);      // K below 2 chunks
  CHECK(lm::cpu::detail::k_split_chunks(1024, 1024, 65536) == 4);  // 3 partial Cs of 4 MiB: the cap
  const int saved_threads = omp_get_max_threads();
  std::mt19937 rng(11);
  for (GemmKernel k : supported_kernels()) {
    const std::string name = lm::cpu::sgemm_kernel_name(k);
    for (size_t ci = 0; ci < std::size(cases); ++ci) {
      const Shape& s = cases[ci].s;
      REQUIRE(lm::cpu::detail::k_split_chunks(s.M, s.N, s.K) == cases[ci].chunks);
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        const AlphaBeta& ab = kAlphaBetas[(ci + t) % 4];  // alpha, beta, NaN-filled C cases
        Problem<float> p(ta, tb, s, t % 2 ? 3 : 0, float(ab.alpha), float(ab.beta), ab.nan_c, rng);
        INFO(name << " M=" << s.M << " N=" << s.N << " K=" << s.K << " ta=" << ta << " tb=" << tb);
        std::vector<std::vector<float>> got;
        for (int threads : {1, 2, 3}) {
          omp_set_num_threads(threads);
          got.push_back(p.C);
          lm::cpu::sgemm_with_kernel(k, ta, tb, p.M, p.N, p.K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb,
                                     p.beta, got.back().data(), p.ldc);
        }
        omp_set_num_threads(saved_threads);
        CHECK(count_mismatches(p, got[0], p.reference(), 2e-6, name) == 0);
        CHECK(std::memcmp(got[0].data(), got[1].data(), got[0].size() * sizeof(float)) == 0);
        CHECK(std::memcmp(got[0].data(), got[2].data(), got[0].size() * sizeof(float)) == 0);
      }
    }
  }
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

// ---- CUDA GEMMs (cuda/gemm.h) ----------------------------------------------------------------
// Every problem (Problem above: alpha = 1, beta = 0, C NaN-filled so that padding columns must
// come back NaN and every in-range entry must be written) runs on the GPU through cuBLAS, the
// tiled kernel and the tensor-core kernel (float32 and float64; float64 under TensorCore is the
// tiled kernel, so it must match Tiled bit for bit), and through gemm_bf16. Shapes include
// 1x1x1, odd sizes that leave partial 16 x 16 fragments and 128 x 128 block tiles, K = 0, and
// each runs with packed and padded (+3: odd, unaligned rows: the scalar-load paths) leading
// dimensions, all four transposes.
//
// Inputs: A uniform in [-3, 3), B in [-0.25, 0.25), so the scale s = max|a| max|b| ~ 0.75 (not 1:
// the bounds really scale with it). Bound: |got - ref| <= c * sqrt(K) * s, ref the float64 sum.
//   float32 (cuBLAS, tiled): c = 1e-5. Each of the K float32 additions rounds by <= 2^-24 of a
//     partial sum of ~sqrt(k) * rms(ab); random signs give ~2.4e-8 * K * rms(ab), with
//     rms(ab) <= s / 3 that is 4e-6 s at K = 512, 50x below the bound.
//   TF32 (tensorcore): c = 5e-3. Each input is rounded to TF32 (10-bit mantissa, unit roundoff
//     2^-11 = 4.9e-4), so each product is off by up to ~2^-10 relative; random signs give a sum
//     error of ~sqrt(2/3) 2^-11 sqrt(K) rms(ab) ~ 1.3e-4 sqrt(K) s: the bound is ~38 sigma, yet
//     ~100x below the ~0.5 sqrt(K) s error of any indexing mistake.
//   BF16 (gemm_bf16, inputs rounded from the float32 values): c = 2e-2 (unit roundoff 2^-8:
//     ~1.1e-3 sqrt(K) s, ~19 sigma).
//   Tensor cores against the float64 sum of the *rounded* inputs (TF32 rounded like cvt.rna,
//     BF16 as tensor/dtype.h rounds): c = 5e-5. Those products are exact in float32 (11 + 11 and
//     8 + 8 significand bits), so only float32 accumulation is left; 5x the float32 bound
//     because tensor cores truncate inside an MMA instead of rounding.
//   float64 (all three backends): c = 1e-12.
#ifdef LIBRAMIL_WITH_CUDA
namespace {

using lm::Device;
using lm::DType;
using lm::Tensor;
using lm::cuda::GemmBackend;

constexpr double kTolF32 = 1e-5, kTolTf32 = 5e-3, kTolBf16 = 2e-2, kTolTcRounded = 5e-5, kTolF64 = 1e-12;
constexpr int64_t kChecksPerCudaCase = 12;  // see the loop in the test case below

struct CudaCase {
  Shape s;
  bool ta, tb;
  int64_t pad;
};

std::vector<CudaCase> cuda_cases() {
  const Shape shapes[] = {{1, 1, 1},   {17, 33, 65},  {128, 128, 128}, {1000, 24, 512},
                          {129, 130, 31}, {64, 1, 300}, {5, 300, 16},   {4, 5, 0}};
  std::vector<CudaCase> out;
  for (const Shape& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (int64_t pad : {0, 3}) out.push_back({s, bool(t & 1), bool(t & 2), pad});
  return out;
}

// float -> TF32 as cvt.rna.tf32.f32 rounds (to nearest, ties away from zero), kept in a float.
float round_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&x, &u, 4);
  return x;
}
float round_bf16(float x) { return lm::bf16_to_float(lm::float_to_bf16(x)); }

template <typename T>
Problem<T> cuda_problem(const CudaCase& c, std::mt19937& rng) {
  Problem<T> p(c.ta, c.tb, c.s, c.pad, T(1), T(0), /*nan_c=*/true, rng);
  for (auto& v : p.A) v *= T(3);
  for (auto& v : p.B) v *= T(0.25);
  return p;
}

// s = max|a| max|b| over the stored buffers (padding included: same distribution, a touch looser).
template <typename T>
double input_scale(const Problem<T>& p) {
  double a = 0, b = 0;
  for (T v : p.A) a = std::max(a, std::abs(double(v)));
  for (T v : p.B) b = std::max(b, std::abs(double(v)));
  return a * b;
}

template <typename T>
Tensor on_gpu(const std::vector<T>& v) {
  return Tensor::from_vector(v, {int64_t(v.size())}).to(Device::cuda(0));
}

// Runs gemm_with(backend) on device copies of p's buffers; returns the whole C buffer.
template <typename T>
std::vector<double> gpu_gemm(GemmBackend backend, const Problem<T>& p) {
  Tensor A = on_gpu(p.A), B = on_gpu(p.B), C = on_gpu(p.C);
  lm::cuda::gemm_with(backend, Device::cuda(0), lm::dtype_of<T>::value, p.ta, p.tb, p.M, p.N, p.K, A.raw_data(),
                      p.lda, B.raw_data(), p.ldb, C.raw_data(), p.ldc);
  return C.to(Device::cpu()).to_double_vector();
}

// gemm_bf16 on p's float buffers rounded to bfloat16 (tensor/dtype.h), float32 C.
std::vector<double> gpu_gemm_bf16(const Problem<float>& p) {
  Tensor A = Tensor::from_vector(p.A, {int64_t(p.A.size())}).to(DType::BF16).to(Device::cuda(0));
  Tensor B = Tensor::from_vector(p.B, {int64_t(p.B.size())}).to(DType::BF16).to(Device::cuda(0));
  Tensor C = on_gpu(p.C);
  lm::cuda::gemm_bf16(Device::cuda(0), p.ta, p.tb, p.M, p.N, p.K, A.raw_data(), p.lda, B.raw_data(), p.ldb,
                      C.data<float>(), p.ldc);
  return C.to(Device::cpu()).to_double_vector();
}

// Mismatches of got vs ref over the whole C buffer: padding columns must still be NaN, every
// (i, j) inside C finite and within atol. Reports the first one.
template <typename T>
int64_t cuda_mismatches(const Problem<T>& p, const std::vector<double>& got, const std::vector<double>& ref,
                        double atol, const std::string& what) {
  int64_t bad = 0;
  for (int64_t i = 0; i < p.M; ++i)
    for (int64_t j = 0; j < p.ldc; ++j) {
      const int64_t idx = i * p.ldc + j;
      const double g = got[idx], r = ref[idx];
      const bool ok = j >= p.N ? std::isnan(g) : std::isfinite(g) && std::abs(g - r) <= atol;
      if (!ok && bad++ == 0)
        MESSAGE(what << " M=" << p.M << " N=" << p.N << " K=" << p.K << " ta=" << p.ta << " tb=" << p.tb
                     << " lda=" << p.lda << " ldb=" << p.ldb << " ldc=" << p.ldc << " at (" << i << "," << j
                     << "): got " << g << " want " << r << " (atol " << atol << ")");
    }
  return bad;
}

bool have_gpu() {
  lm::cuda::ensure_registered();
  return lm::cuda::device_count() > 0;
}

}  // namespace

TEST_CASE("cuda gemm: backend names, gemm_bf16 argument checks (no GPU needed)") {
  CHECK(std::string(lm::cuda::gemm_backend_name(GemmBackend::Cublas)) == "cublas");
  CHECK(std::string(lm::cuda::gemm_backend_name(GemmBackend::Tiled)) == "tiled");
  CHECK(std::string(lm::cuda::gemm_backend_name(GemmBackend::TensorCore)) == "tensorcore");
  CHECK(std::string(lm::cuda::gemm_backend_name(GemmBackend::CublasLt)) == "cublaslt");
  float c = 0;
  CHECK_THROWS_AS(lm::cuda::gemm_bf16(Device::cpu(), false, false, 1, 1, 1, nullptr, 1, nullptr, 1, &c, 1),
                  std::invalid_argument);
}

TEST_CASE("cuda gemm: cuBLAS, cuBLASLt, tiled, tensorcore (TF32) and gemm_bf16 vs float64, all transposes") {
  const auto cases = cuda_cases();
  const int64_t expected = int64_t(cases.size()) * kChecksPerCudaCase;
  if (!have_gpu()) {
    MESSAGE("cuda gemm: " << expected << " CUDA cases skipped (no GPU)");
    return;
  }
  std::mt19937 rng(99);
  int64_t checks = 0, bad = 0;
  auto check = [&](int64_t mismatches) {
    ++checks;
    if (mismatches) ++bad;
  };
  for (const CudaCase& c : cases) {
    try {
      const std::string at = " pad=" + std::to_string(c.pad);
      const double rk = std::sqrt(double(c.s.K));
      // float32: cuBLAS, tiled, tensor cores (TF32: against the exact and the TF32-rounded inputs)
      Problem<float> p = cuda_problem<float>(c, rng);
      const auto ref = p.reference();
      const double s = input_scale(p);
      check(cuda_mismatches(p, gpu_gemm(GemmBackend::Cublas, p), ref, kTolF32 * rk * s, "cublas f32" + at));
      check(cuda_mismatches(p, gpu_gemm(GemmBackend::CublasLt, p), ref, kTolF32 * rk * s, "cublaslt f32" + at));
      check(cuda_mismatches(p, gpu_gemm(GemmBackend::Tiled, p), ref, kTolF32 * rk * s, "tiled f32" + at));
      const auto tc = gpu_gemm(GemmBackend::TensorCore, p);
      check(cuda_mismatches(p, tc, ref, kTolTf32 * rk * s, "tensorcore tf32" + at));
      Problem<float> pr = p;
      for (auto& v : pr.A) v = round_tf32(v);
      for (auto& v : pr.B) v = round_tf32(v);
      check(cuda_mismatches(p, tc, pr.reference(), kTolTcRounded * rk * s, "tensorcore tf32 vs rounded inputs" + at));
      // bf16 inputs (rounded from p's float32 values)
      const auto bf = gpu_gemm_bf16(p);
      check(cuda_mismatches(p, bf, ref, kTolBf16 * rk * s, "gemm_bf16" + at));
      for (size_t i = 0; i < p.A.size(); ++i) pr.A[i] = round_bf16(p.A[i]);
      for (size_t i = 0; i < p.B.size(); ++i) pr.B[i] = round_bf16(p.B[i]);
      check(cuda_mismatches(p, bf, pr.reference(), kTolTcRounded * rk * s, "gemm_bf16 vs rounded inputs" + at));
      // float64: cuBLAS, tiled, and TensorCore (= the tiled kernel, bit for bit)
      Problem<double> q = cuda_problem<double>(c, rng);
      const auto qref = q.reference();
      const double qs = input_scale(q);
      check(cuda_mismatches(q, gpu_gemm(GemmBackend::Cublas, q), qref, kTolF64 * rk * qs, "cublas f64" + at));
      check(cuda_mismatches(q, gpu_gemm(GemmBackend::CublasLt, q), qref, kTolF64 * rk * qs, "cublaslt f64" + at));
      const auto tiled64 = gpu_gemm(GemmBackend::Tiled, q);
      check(cuda_mismatches(q, tiled64, qref, kTolF64 * rk * qs, "tiled f64" + at));
      const auto tc64 = gpu_gemm(GemmBackend::TensorCore, q);
      check(cuda_mismatches(q, tc64, qref, kTolF64 * rk * qs, "tensorcore f64 (tiled fallback)" + at));
      const bool same = std::equal(tc64.begin(), tc64.end(), tiled64.begin(), tiled64.end(),
                                   [](double x, double y) { return x == y || (std::isnan(x) && std::isnan(y)); });
      CHECK_MESSAGE(same, "tensorcore f64 is not the tiled kernel's result" << at);
      check(same ? 0 : 1);
    } catch (const std::exception& e) {
      FAIL_CHECK("cuda gemm M=" << c.s.M << " N=" << c.s.N << " K=" << c.s.K << " ta=" << c.ta << " tb=" << c.tb
                                << " threw: " << std::string(e.what()));
      ++bad;
    }
  }
  MESSAGE("cuda gemm: " << checks << " CUDA cases, " << bad << " wrong");
  CHECK(checks == expected);
  CHECK_MESSAGE(bad == 0, bad << " of " << checks << " CUDA GEMM cases wrong");
}

// Operands that start mid-allocation (element offsets 1 and 3: 4- / 8-byte aligned, not 16 or
// 256), as views into a larger tensor give them: every backend must still compute the product
// (cuBLASLt's heuristic must be told the real alignment), and a second call of the same shape
// with other data (cuBLASLt's cached plan) must too.
TEST_CASE("cuda gemm: operands at unaligned offsets, every backend, twice per shape") {
  const Shape shapes[] = {{33, 17, 40}, {128, 96, 64}};
  const int64_t offsets[][3] = {{1, 3, 1}, {3, 0, 2}};
  const GemmBackend backends[] = {GemmBackend::Cublas, GemmBackend::CublasLt, GemmBackend::Tiled,
                                  GemmBackend::TensorCore};
  const int64_t expected = int64_t(std::size(shapes) * std::size(offsets) * std::size(backends)) * 2 * 2;
  if (!have_gpu()) {
    MESSAGE("cuda gemm (unaligned): " << expected << " CUDA cases skipped (no GPU)");
    return;
  }
  std::mt19937 rng(17);
  int64_t checks = 0, bad = 0;
  auto run = [&](auto tag, const Shape& s, const int64_t* off, GemmBackend backend) {
    using T = decltype(tag);
    const CudaCase c{s, false, true, 0};
    Problem<T> p = cuda_problem<T>(c, rng);
    auto placed = [](const std::vector<T>& v, int64_t o) {
      std::vector<T> w(v.size() + size_t(o), T(0));
      std::copy(v.begin(), v.end(), w.begin() + o);
      return on_gpu(w);
    };
    Tensor A = placed(p.A, off[0]), B = placed(p.B, off[1]), C = placed(p.C, off[2]);
    const size_t es = sizeof(T);
    lm::cuda::gemm_with(backend, Device::cuda(0), lm::dtype_of<T>::value, p.ta, p.tb, p.M, p.N, p.K,
                        static_cast<char*>(A.raw_data()) + off[0] * es, p.lda,
                        static_cast<char*>(B.raw_data()) + off[1] * es, p.ldb,
                        static_cast<char*>(C.raw_data()) + off[2] * es, p.ldc);
    std::vector<double> got = C.to(Device::cpu()).to_double_vector();
    got.erase(got.begin(), got.begin() + off[2]);
    const bool tf32 = backend == GemmBackend::TensorCore && sizeof(T) == 4;
    const double tol = (tf32 ? kTolTf32 : sizeof(T) == 4 ? kTolF32 : kTolF64) * std::sqrt(double(p.K)) * input_scale(p);
    ++checks;
    if (cuda_mismatches(p, got, p.reference(), tol, std::string("unaligned ") + lm::cuda::gemm_backend_name(backend)))
      ++bad;
  };
  for (const Shape& s : shapes)
    for (const auto& off : offsets)
      for (GemmBackend backend : backends)
        for (int rep = 0; rep < 4; ++rep) {  // float32, float64, float32 again, float64 again
          try {
            if (rep % 2 == 0) run(float(0), s, off, backend);
            else run(double(0), s, off, backend);
          } catch (const std::exception& e) {  // thrown before run() counted the case
            FAIL_CHECK("unaligned " << std::string(lm::cuda::gemm_backend_name(backend)) << " M=" << s.M << " threw: " << std::string(e.what()));
            ++bad;
            ++checks;
          }
        }
  MESSAGE("cuda gemm (unaligned): " << checks << " CUDA cases, " << bad << " wrong");
  CHECK(checks == expected);
  CHECK(bad == 0);
}

// gemm() as ops/matmul calls it, with the backend LIBRAMIL_CUDA_GEMM selects (tools/gpu_check.sh
// reruns this suite with LIBRAMIL_CUDA_GEMM=tensorcore); the bound follows that backend.
TEST_CASE("cuda gemm: gemm() with the default backend (LIBRAMIL_CUDA_GEMM)") {
  const Shape shapes[] = {{1000, 24, 512}, {17, 33, 65}, {256, 130, 96}};
  const int64_t expected = int64_t(std::size(shapes)) * 4;
  if (!have_gpu()) {
    MESSAGE("cuda gemm(): " << expected << " CUDA cases skipped (no GPU)");
    return;
  }
  const GemmBackend backend = lm::cuda::gemm_backend();
  MESSAGE("default CUDA GEMM backend: " << std::string(lm::cuda::gemm_backend_name(backend)));
  const double c_tol = backend == GemmBackend::TensorCore ? kTolTf32 : kTolF32;
  std::mt19937 rng(5);
  int64_t checks = 0, bad = 0;
  for (const Shape& s : shapes)
    for (int t = 0; t < 4; ++t) {
      const CudaCase c{s, bool(t & 1), bool(t & 2), int64_t(t == 3 ? 5 : 0)};
      Problem<float> p = cuda_problem<float>(c, rng);
      Tensor A = on_gpu(p.A), B = on_gpu(p.B), C = on_gpu(p.C);
      lm::cuda::gemm(Device::cuda(0), DType::F32, p.ta, p.tb, p.M, p.N, p.K, A.raw_data(), p.lda, B.raw_data(), p.ldb,
                     C.raw_data(), p.ldc);
      ++checks;
      const double tol = c_tol * std::sqrt(double(p.K)) * input_scale(p);
      if (cuda_mismatches(p, C.to(Device::cpu()).to_double_vector(), p.reference(), tol,
                          std::string("gemm() ") + lm::cuda::gemm_backend_name(backend)))
        ++bad;
    }
  CHECK(checks == expected);
  CHECK_MESSAGE(bad == 0, bad << " of " << checks << " gemm() cases wrong");
}
#else
TEST_CASE("cuda gemm: not built") {
  MESSAGE("cuda gemm: CUDA GEMM cases skipped (library built without the CUDA backend)");
}
#endif
