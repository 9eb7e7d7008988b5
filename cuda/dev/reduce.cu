// Kernel study: column reductions of an (N, C) float32 matrix into C values (sum and max over
// the rows), the shape of a linear layer's bias gradient over a bag of N instances
// (llm.c dev/cuda style): CPU reference, the library's kernel versions, validation, timing.
// Standalone program, not part of the library build. Compile and run (on a GPU), from the
// repository root:
//   nvcc -O3 -std=c++17 -arch=sm_90 -I. -o /tmp/reduce_dev cuda/dev/reduce.cu && /tmp/reduce_dev
// Both versions are the library's own kernels (cuda/reduce_kernels.cuh), launched as
// cuda/reduce.cu launches them:
//   1: one thread per column, looping over the N rows in order (reduce_columns_kernel; what
//      cuda/reduce.cu ran for every column reduction before session 9): only C threads.
//   2: the rows split into chunks (column_split), a thread per (chunk, column) writing a float64
//      partial, then a thread per column adding its partials in chunk order (library since
//      session 9 for Sum / Max with few outputs).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common.h"
#include "cuda/reduce_kernels.cuh"

namespace rk = lm::cuda::reduce_kernels;
using lm::ReduceOp;

constexpr int kThreads = 256;

// ---- CPU reference: float64 sums, max skipping NaN (there is none here) --------------------------
std::vector<float> columns_cpu(ReduceOp op, const std::vector<float>& x, int N, int C) {
  std::vector<double> acc(C, op == ReduceOp::Sum ? 0.0 : -INFINITY);
  for (int r = 0; r < N; ++r)
    for (int c = 0; c < C; ++c) {
      const double v = x[(size_t)r * C + c];
      acc[c] = op == ReduceOp::Sum ? acc[c] + v : (v > acc[c] ? v : acc[c]);
    }
  return std::vector<float>(acc.begin(), acc.end());
}

// ---- the two versions --------------------------------------------------------------------------
void run_v1(ReduceOp op, const float* x, int N, int C, float* out) {
  rk::reduce_columns_kernel<float><<<ceil_div(C, kThreads), kThreads>>>(op, x, 1, N, C, out);
}

void run_v2(ReduceOp op, const float* x, int N, int C, float* out, double* partial) {
  const rk::ColumnSplit s = rk::column_split(1, N, C);
  if (s.chunks == 1) return run_v1(op, x, N, C, out);
  rk::reduce_column_chunks_kernel<float><<<ceil_div(s.chunks * C, kThreads), kThreads>>>(
      op, x, 1, N, C, s.rows_per_chunk, s.chunks, partial);
  rk::reduce_column_partials_kernel<float><<<ceil_div(C, kThreads), kThreads>>>(op, partial, 1, C, s.chunks, out);
}

int main() {
  int dev = 0;
  cudaDeviceProp prop;
  DEV_CHECK(cudaGetDeviceProperties(&prop, dev));
  std::printf("column reduction study on %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  const double copy_gbs = copy_bandwidth_gbs((size_t)100000 * 512 * sizeof(float));
  struct Shape {
    int N, C;
  };
  bool all_ok = true;
  for (Shape sh : {Shape{100000, 512}, Shape{8000, 512}, Shape{100000, 46}, Shape{8000, 10}}) {
    const int N = sh.N, C = sh.C;
    const rk::ColumnSplit split = rk::column_split(1, N, C);
    std::printf("N=%d C=%d (v2: %lld chunks of %lld rows)\n", N, C, (long long)split.chunks,
                (long long)split.rows_per_chunk);
    const std::vector<float> x = random_vector((size_t)N * C, -1.f, 1.f, 7);
    float* d_x = to_device(x);
    float* d_out = nullptr;
    double* d_partial = nullptr;
    DEV_CHECK(cudaMalloc(&d_out, C * sizeof(float)));
    DEV_CHECK(cudaMalloc(&d_partial, (size_t)(split.chunks > 1 ? split.chunks : 1) * C * sizeof(double)));
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {
      const char* name = op == ReduceOp::Sum ? "sum" : "max";
      const std::vector<float> ref = columns_cpu(op, x, N, C);
      // float64 accumulation either way: the float32 results agree to rounding.
      for (int v = 1; v <= 2; ++v) {
        DEV_CHECK(cudaMemset(d_out, 0, C * sizeof(float)));
        if (v == 1) run_v1(op, d_x, N, C, d_out);
        else run_v2(op, d_x, N, C, d_out, d_partial);
        DEV_CHECK(cudaGetLastError());
        char label[64];
        std::snprintf(label, sizeof label, "%s v%d", name, v);
        all_ok = validate(label, d_out, ref, 1e-5, 1e-6) && all_ok;
      }
      for (int v = 1; v <= 2; ++v) {
        const float ms = time_ms([&] {
          if (v == 1) run_v1(op, d_x, N, C, d_out);
          else run_v2(op, d_x, N, C, d_out, d_partial);
        });
        const double gbs = (double)N * C * sizeof(float) / (ms * 1e-3) / 1e9;
        std::printf("  %s v%d  %.4f ms  %.1f GB/s (%.0f%% of copy)\n", name, v, ms, gbs, 100.0 * gbs / copy_gbs);
        std::printf("BENCH reduce_cols_%s v%d N=%d C=%d ms=%.4f gbs=%.1f\n", name, v, N, C, ms, gbs);
      }
    }
    DEV_CHECK(cudaFree(d_x));
    DEV_CHECK(cudaFree(d_out));
    DEV_CHECK(cudaFree(d_partial));
  }
  std::printf(all_ok ? "all versions match the CPU reference\n" : "MISMATCH\n");
  return all_ok ? 0 : 1;
}
