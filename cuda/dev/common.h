// Shared utilities of the cuda/dev/ kernel harnesses (llm.c dev/cuda style): error checks,
// random inputs, validation against a CPU reference, and event timing. Header-only, not part
// of the library build.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define DEV_CHECK(call)                                                                          \
  do {                                                                                           \
    cudaError_t err_ = (call);                                                                   \
    if (err_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(err_), __FILE__, __LINE__, \
                   cudaGetErrorString(err_));                                                    \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

inline int ceil_div(long long a, long long b) { return (int)((a + b - 1) / b); }

// Deterministic uniform values in [lo, hi) (xorshift), so runs are comparable.
inline std::vector<float> random_vector(size_t n, float lo, float hi, unsigned seed = 42) {
  std::vector<float> v(n);
  unsigned s = seed ? seed : 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    v[i] = lo + (hi - lo) * (float)((s >> 8) * (1.0 / 16777216.0));
  }
  return v;
}

inline float* to_device(const std::vector<float>& v) {
  float* d = nullptr;
  DEV_CHECK(cudaMalloc(&d, v.size() * sizeof(float)));
  DEV_CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  return d;
}

// Compares a device result with the CPU reference; prints the worst error; returns pass/fail.
inline bool validate(const char* name, const float* d_out, const std::vector<float>& ref, double atol, double rtol) {
  std::vector<float> got(ref.size());
  DEV_CHECK(cudaMemcpy(got.data(), d_out, ref.size() * sizeof(float), cudaMemcpyDeviceToHost));
  double worst = 0;
  size_t worst_i = 0, bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs((double)got[i] - (double)ref[i]);
    if (!(e <= atol + rtol * std::fabs((double)ref[i]))) ++bad;
    if (!(e <= worst)) { worst = e; worst_i = i; }
  }
  std::printf("  %-28s max |err| %.3e at %zu (got %.7g, ref %.7g)%s\n", name, worst, worst_i, got[worst_i],
              ref[worst_i], bad ? "  FAIL" : "  ok");
  return bad == 0;
}

// Median-free simple timing: mean milliseconds over `repeats` launches after one warm-up.
template <class F>
float time_ms(F launch, int repeats = 50) {
  launch();
  DEV_CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  DEV_CHECK(cudaEventCreate(&a));
  DEV_CHECK(cudaEventCreate(&b));
  DEV_CHECK(cudaEventRecord(a));
  for (int i = 0; i < repeats; ++i) launch();
  DEV_CHECK(cudaEventRecord(b));
  DEV_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  DEV_CHECK(cudaEventElapsedTime(&ms, a, b));
  DEV_CHECK(cudaEventDestroy(a));
  DEV_CHECK(cudaEventDestroy(b));
  DEV_CHECK(cudaGetLastError());
  return ms / repeats;
}

// The measured copy bandwidth, the yardstick of memory-bound kernels (issue 3: softmax and
// layer norm should reach 80% of it): a device-to-device cudaMemcpy of `bytes` reads and writes
// `bytes` each, so GB/s = 2 * bytes / time. Prints "BENCH copy_bandwidth gbs=..." for
// tools/gpu_check.sh and returns it.
inline double copy_bandwidth_gbs(size_t bytes) {
  void *a = nullptr, *b = nullptr;
  DEV_CHECK(cudaMalloc(&a, bytes));
  DEV_CHECK(cudaMalloc(&b, bytes));
  DEV_CHECK(cudaMemset(a, 0, bytes));
  const float ms = time_ms([&] { DEV_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); }, 50);
  DEV_CHECK(cudaFree(a));
  DEV_CHECK(cudaFree(b));
  const double gbs = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
  std::printf("copy bandwidth (device-to-device cudaMemcpy of %.1f MB): %.4f ms, %.1f GB/s\n", bytes / 1e6, ms, gbs);
  std::printf("BENCH copy_bandwidth gbs=%.1f\n", gbs);
  return gbs;
}
