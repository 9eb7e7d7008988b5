// Times lm::cpu::sgemm on C(M,N) = A(M,K) * B(K,N) (row-major, no transposes).
//   gemm_bench M N K [repeats=10] [threads=omp default]
// One warm-up call, then `repeats` timed calls; prints each call's GFLOP/s, the median, and a
// final JSON line for scripts (bench/compare_gemm.py parses it).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "ops/cpu/gemm.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s M N K [repeats] [threads]\n", argv[0]);
    return 2;
  }
  const int64_t M = std::atoll(argv[1]), N = std::atoll(argv[2]), K = std::atoll(argv[3]);
  const int repeats = argc > 4 ? std::max(1, std::atoi(argv[4])) : 10;
  if (argc > 5) omp_set_num_threads(std::max(1, std::atoi(argv[5])));
  const int threads = omp_get_max_threads();

  std::vector<float> A(M * K), B(K * N), C(M * N);  // A: (M, K)  B: (K, N)  C: (M, N)
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& v : A) v = dist(rng);
  for (auto& v : B) v = dist(rng);

  auto run = [&] {
    lm::cpu::sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
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
  std::printf("sgemm %lldx%lldx%lld threads=%d kernel=%s: median %.3f ms, %.2f GFLOP/s\n",
              (long long)M, (long long)N, (long long)K, threads, lm::cpu::sgemm_kernel_name(),
              median, gflops);
  std::printf(
      "{\"M\":%lld,\"N\":%lld,\"K\":%lld,\"threads\":%d,\"median_ms\":%.4f,\"gflops\":%.3f,"
      "\"kernel\":\"%s\"}\n",
      (long long)M, (long long)N, (long long)K, threads, median, gflops,
      lm::cpu::sgemm_kernel_name());
  return 0;
}
