// Times lm::cpu::sgemm on C(M,N) = op(A)(M,K) * op(B)(K,N) (row-major, beta = 0).
//   gemm_bench M N K [repeats=10] [threads=omp default] [--ta] [--tb]
// --ta: A is stored (K, M) and used transposed; --tb: B is stored (N, K) and used transposed
// (flags may appear anywhere; without them the product has no transposes, as before).
// LIBRAMIL_GEMM_SKINNY=0 in the environment times the packed path on skinny shapes.
// One warm-up call, then `repeats` timed calls; prints each call's GFLOP/s, the median (and the
// fastest call, a steadier figure on a loaded machine), and a final JSON line for scripts (bench/compare_gemm.py parses it).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/gemm.h"

int main(int argc, char** argv) {
  bool ta = false, tb = false;
  std::vector<const char*> pos;  // positional arguments, flags removed
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ta")
      ta = true;
    else if (a == "--tb")
      tb = true;
    else
      pos.push_back(argv[i]);
  }
  if (pos.size() < 3) {
    std::fprintf(stderr, "usage: %s M N K [repeats] [threads] [--ta] [--tb]\n", argv[0]);
    return 2;
  }
  const int64_t M = std::atoll(pos[0]), N = std::atoll(pos[1]), K = std::atoll(pos[2]);
  const int repeats = pos.size() > 3 ? std::max(1, std::atoi(pos[3])) : 10;
  if (pos.size() > 4) omp_set_num_threads(std::max(1, std::atoi(pos[4])));
  const int threads = omp_get_max_threads();

  // A: (M, K), or (K, M) when ta.  B: (K, N), or (N, K) when tb.  C: (M, N).
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  std::vector<float> A(M * K), B(K * N), C(M * N);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& v : A) v = dist(rng);
  for (auto& v : B) v = dist(rng);

  auto run = [&] {
    lm::cpu::sgemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
  };
  run();  // warm-up: page in the buffers, grow the packing buffers, start the thread pool

  const double flop = 2.0 * double(M) * double(N) * double(K);
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    run();
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    std::printf("run %2d: %9.3f ms  %8.2f GFLOP/s\n", r, ms.back(), flop / ms.back() * 1e-6);
  }
  std::sort(ms.begin(), ms.end());
  const double median =
      repeats % 2 ? ms[repeats / 2] : 0.5 * (ms[repeats / 2 - 1] + ms[repeats / 2]);
  const double gflops = flop / median * 1e-6;
  std::printf("sgemm %lldx%lldx%lld ta=%d tb=%d threads=%d kernel=%s: min %.3f ms, median %.3f ms, %.2f GFLOP/s\n",
              (long long)M, (long long)N, (long long)K, int(ta), int(tb), threads,
              lm::cpu::sgemm_kernel_name(), ms.front(), median, gflops);
  std::printf(
      "{\"M\":%lld,\"N\":%lld,\"K\":%lld,\"ta\":%d,\"tb\":%d,\"threads\":%d,\"median_ms\":%.4f,"
      "\"min_ms\":%.4f,\"gflops\":%.3f,\"kernel\":\"%s\"}\n",
      (long long)M, (long long)N, (long long)K, int(ta), int(tb), threads, median, ms.front(), gflops,
      lm::cpu::sgemm_kernel_name());
  return 0;
}
