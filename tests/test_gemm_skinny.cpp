// The skinny SGEMM forms (ops/cpu/gemm_skinny.h with the AVX-512 and AVX2 tiles) called
// directly on 1 and 2 threads, and sgemm_rows' row epilogue, against the float64 reference of
// gemm_problem.h.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gemm_problem.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/isa.h"

using gemm_test::AlphaBeta;
using gemm_test::count_mismatches;
using gemm_test::Problem;
using gemm_test::Shape;
using lm::cpu::GemmKernel;

// sgemm_rows: the epilogue sees every row of C exactly once, and when it sees a row that row is
// final (a snapshot taken inside the callback matches the float64 reference). Shapes reach the
// packed path split over threads along M (per A block, several K and N blocks: K > 256, N > 4096
// with a 4100-column C), along N, single-threaded, and a skinny form (one call at the end).
TEST_CASE("sgemm_rows: the row epilogue sees every row once, after its last K block") {
  struct Seen {
    int64_t N, ldc;
    const float* C;
    std::vector<float> snapshot;
    std::vector<int> calls;  // per row
  };
  const Shape shapes[] = {{700, 200, 600}, {64, 4100, 300}, {40, 30, 20}, {3000, 40, 64}, {1, 1, 1}, {337, 70, 300}};
  std::mt19937 rng(21);
  const int prev_threads = omp_get_max_threads();
  for (const Shape& sh : shapes)
    for (int threads : {1, 2})
      for (bool tb : {false, true}) {
        Problem<float> p(false, tb, sh, 3, 1.0f, 0.0f, true, rng);
        const auto ref = p.reference();
        Seen seen{p.N, p.ldc, p.C.data(), std::vector<float>(p.C.size(), 0.0f), std::vector<int>(p.M, 0)};
        auto fn = [](void* ctx, int64_t r0, int64_t r1) {
          Seen& s = *static_cast<Seen*>(ctx);
          for (int64_t r = r0; r < r1; ++r) {
            ++s.calls[r];  // rows of one call never overlap another's: no race
            std::copy(s.C + r * s.ldc, s.C + r * s.ldc + s.N, s.snapshot.begin() + r * s.ldc);
          }
        };
        omp_set_num_threads(threads);
        lm::cpu::sgemm_rows(false, tb, p.M, p.N, p.K, 1.0f, p.A.data(), p.lda, p.B.data(), p.ldb, 0.0f, p.C.data(),
                            p.ldc, lm::cpu::RowEpilogue{fn, &seen});
        INFO("M=" << p.M << " N=" << p.N << " K=" << p.K << " tb=" << tb << " threads=" << threads);
        CHECK(std::all_of(seen.calls.begin(), seen.calls.end(), [](int c) { return c == 1; }));
        std::vector<float> got = p.C;  // padding columns as C had them
        for (int64_t r = 0; r < p.M; ++r)
          std::copy(seen.snapshot.begin() + r * p.ldc, seen.snapshot.begin() + r * p.ldc + p.N, got.begin() + r * p.ldc);
        CHECK(count_mismatches(p, got, ref, 2e-6, "sgemm_rows snapshot") == 0);
      }
  omp_set_num_threads(prev_threads);
}

// ---- skinny broadcast forms (AVX-512 and AVX2) ---------------------------------------------
#if LM_X86  // x86 builds only (ops/cpu/isa.h), like gemm_skinny_avx512.cpp / gemm_skinny_avx2.cpp
// Each form of detail::sgemm_skinny_avx512 / _avx2 (gemm_skinny.h) on odd sizes around the
// vectors (16 or 8 floats) and the row tiles, every transpose it accepts, alpha/beta variants
// (NaN-filled C with beta = 0), padded leading dimensions, on 1 and 2 threads. The function must
// accept the shape (so that a change of the dispatch cannot silently send these cases to the
// packed path), match the float64 reference, and give bit-identical results on 1 and 2 threads.
namespace {

struct SkinnyForm {
  const char* name;
  std::vector<bool> ta, tb;  // transposes the form accepts
  std::vector<int64_t> Ms, Ns, Ks;
};

using SkinnyFn = bool (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t, int);

// expect_handled = false: the form must decline every case (the AVX2 short-K products).
void check_skinny_form(SkinnyFn skinny, const SkinnyForm& f, bool expect_handled = true) {
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
              const bool handled = skinny(
                  ta, tb, M, N, K, p.alpha, p.A.data(), p.lda, p.B.data(), p.ldb, p.beta, got.data(), p.ldc,
                  threads);
              ++cases;
              if (!handled) {
                if (not_handled++ == 0 && expect_handled)
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
  CHECK(not_handled == (expect_handled ? 0 : cases));
  CHECK_MESSAGE(bad_cases == 0, f.name << ": " << bad_cases << " of " << cases << " cases wrong");
  CHECK(thread_mismatch == 0);
}

// Every form on one ISA; short_k: whether that ISA streams short-K products (AVX2 leaves them
// to the packed path); stream_k_rows: the most rows its stream_k takes (128 or 32).
void check_skinny_forms(SkinnyFn skinny, bool short_k, int64_t stream_k_rows) {
  // Small N: op(A) rows streamed against op(B) (B^T packed into a panel when trans_b).
  check_skinny_form(skinny, {"small N", {false, true}, {false, true}, {129, 1000}, {1, 7, 8, 9, 15, 16, 17, 56, 64, 65, 80, 113, 128}, {1, 10, 17, 512}});
  // Small M, trans_b: C^T = B op(A)^T, written transposed.
  check_skinny_form(skinny, {"small M, trans_b", {false, true}, {true}, {1, 5, 24, 64}, {129, 1000}, {1, 10, 17, 512}});
  // Tiny M (<= 4), trans_b, !trans_a: dot products over K (two chains, masked tail).
  check_skinny_form(skinny, {"tiny M, dot", {false}, {true}, {1, 2, 3, 4}, {16, 17, 129, 512}, {16, 17, 33, 47, 512}});
  // Small M (<= 128 on AVX-512, 32 on AVX2), !trans_b, long K: K blocked (block 128), strips of 64 or 48 (AVX-512) or
  // 16 or 8 (AVX2) columns per thread.
  std::vector<int64_t> long_k_rows = {1, 5, 8, 12, 24, 32};
  if (stream_k_rows >= 128) long_k_rows.insert(long_k_rows.end(), {33, 56, 64, 65, 80, 101, 128});
  check_skinny_form(skinny, {"small M, long K", {false, true}, {false}, long_k_rows, {129, 200}, {128, 257, 512}});
  // Short K (<= 32), !trans_b: op(A) rows streamed against B, 64-column strips (AVX-512 only).
  check_skinny_form(skinny, {"short K", {false, true}, {false}, {129, 1000}, {129, 200}, {1, 10, 17, 32}}, short_k);
}

}  // namespace

TEST_CASE("sgemm: AVX-512 skinny broadcast forms against float64, 1 and 2 threads") {
  if (!lm::cpu::gemm_kernel_supported(GemmKernel::Avx512)) {
    MESSAGE("skipped: this CPU has no AVX-512, the skinny forms are never used");
    return;
  }
  check_skinny_forms(lm::cpu::detail::sgemm_skinny_avx512, true, 128);
}

TEST_CASE("sgemm: AVX2 skinny broadcast forms against float64, 1 and 2 threads") {
  if (!lm::cpu::gemm_kernel_supported(GemmKernel::Avx2)) {
    MESSAGE("skipped: this CPU has no AVX2, the AVX2 skinny forms are never used");
    return;
  }
  check_skinny_forms(lm::cpu::detail::sgemm_skinny_avx2, false, 32);
}
#endif  // LM_X86

