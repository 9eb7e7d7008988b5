// Kernel study: softmax forward over the rows of an (N, C) float32 matrix (llm.c dev/cuda
// style): a CPU reference, kernel versions 1..4, validation of each against the reference,
// then timing (ms and effective GB/s for one read + one write of N*C floats, also as a share of
// the measured device-to-device copy bandwidth).
// Standalone program, not part of the library build. Compile and run (on a GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90 -I. -o /tmp/softmax_dev cuda/dev/softmax.cu && /tmp/softmax_dev [version]
// (use -arch=sm_80 for A100). Version 3 is what cuda/softmax.cu ships (inner == 1 path).
//
//   1: one thread per row, three passes over the row (naive; uncoalesced).
//   2: one block per row, shared-memory tree reductions (max, then sum).
//   3: one block per row, warp-shuffle reductions + one warp over per-warp partials, float64
//      sum (the library kernel: deterministic, CPU-equal numerics).
//   4: one warp per row, online softmax (running max and rescaled sum in one pass), float sum.
// Few long rows (Libra-MIL's softmax over N instances: 1 or 24 rows of 100000), the library's
// own kernels from cuda/softmax_kernels.cuh (compile with -I. at the repository root):
//   rows:  softmax_rows_kernel, one block per row (what cuda/softmax.cu ran before session 9);
//   split: row_split's chunks, a block per (row, chunk), three kernels (library since then).
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common.h"
#include "cuda/softmax_kernels.cuh"

// ---- CPU reference: out = softmax(inp) row-wise, float64 sums ------------------------------
void softmax_cpu(const float* inp, float* out, int N, int C) {
  for (int i = 0; i < N; ++i) {
    const float* x = inp + (size_t)i * C;
    float* y = out + (size_t)i * C;
    float m = -INFINITY;
    for (int j = 0; j < C; ++j) m = x[j] > m ? x[j] : m;
    double s = 0;
    for (int j = 0; j < C; ++j) s += (double)std::exp(x[j] - m);
    const float inv = (float)(1.0 / s);
    for (int j = 0; j < C; ++j) y[j] = std::exp(x[j] - m) * inv;
  }
}

// ---- version 1: a thread per row ------------------------------------------------------------
// inp, out: (N, C) row-major.
__global__ void softmax_kernel1(const float* inp, float* out, int N, int C) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const float* x = inp + (size_t)i * C;
  float* y = out + (size_t)i * C;
  float m = -INFINITY;
  for (int j = 0; j < C; ++j) m = x[j] > m ? x[j] : m;
  double s = 0;
  for (int j = 0; j < C; ++j) s += (double)expf(x[j] - m);
  const float inv = (float)(1.0 / s);
  for (int j = 0; j < C; ++j) y[j] = expf(x[j] - m) * inv;
}

// ---- version 2: a block per row, shared-memory tree reductions -------------------------------
// inp, out: (N, C) row-major; blockDim.x a power of two; shared: blockDim.x doubles.
__global__ void softmax_kernel2(const float* inp, float* out, int N, int C) {
  extern __shared__ double shared2[];
  const int i = blockIdx.x, t = threadIdx.x;
  const float* x = inp + (size_t)i * C;
  float* y = out + (size_t)i * C;
  float m = -INFINITY;
  for (int j = t; j < C; j += blockDim.x) m = x[j] > m ? x[j] : m;
  shared2[t] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (t < s) shared2[t] = shared2[t + s] > shared2[t] ? shared2[t + s] : shared2[t];
    __syncthreads();
  }
  m = (float)shared2[0];
  __syncthreads();
  double sum = 0;
  for (int j = t; j < C; j += blockDim.x) sum += (double)expf(x[j] - m);
  shared2[t] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (t < s) shared2[t] += shared2[t + s];
    __syncthreads();
  }
  const float inv = (float)(1.0 / shared2[0]);
  for (int j = t; j < C; j += blockDim.x) y[j] = expf(x[j] - m) * inv;
}

// ---- version 3: a block per row, warp shuffles (the library kernel) -------------------------
// The library's block reduction (cuda/block_reduce.cuh), as cuda/softmax.cu uses it.
#include "../block_reduce.cuh"
using lm::cuda::block_reduce;
using Max = lm::cuda::MaxOp;
using Sum = lm::cuda::SumOp;

// inp, out: (N, C) row-major; blockDim.x a multiple of 32.
__global__ void softmax_kernel3(const float* inp, float* out, int N, int C) {
  __shared__ float sf[33];
  __shared__ double sd[33];
  const float* x = inp + (size_t)blockIdx.x * C;
  float* y = out + (size_t)blockIdx.x * C;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < C; j += blockDim.x) m = x[j] > m ? x[j] : m;
  m = block_reduce(m, Max{}, -INFINITY, sf);
  if (isinf(m) && m < 0) m = 0;
  double s = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) s += (double)expf(x[j] - m);
  s = block_reduce(s, Sum{}, 0.0, sd);
  const float inv = (float)(1.0 / s);
  for (int j = threadIdx.x; j < C; j += blockDim.x) y[j] = expf(x[j] - m) * inv;
}

// ---- version 4: a warp per row, online softmax ------------------------------------------
// inp, out: (N, C) row-major; blockDim.x a multiple of 32 (blockDim.x / 32 rows per block).
__global__ void softmax_kernel4(const float* inp, float* out, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  const float* x = inp + (size_t)row * C;
  float* y = out + (size_t)row * C;
  float m = -INFINITY, s = 0.f;
  for (int j = lane; j < C; j += 32) {
    const float v = x[j];
    if (v > m) {
      s = s * expf(m - v) + 1.f;
      m = v;
    } else {
      s += expf(v - m);
    }
  }
  for (int off = 16; off > 0; off /= 2) {  // combine (m, s) pairs
    const float m2 = __shfl_down_sync(0xffffffffu, m, off);
    const float s2 = __shfl_down_sync(0xffffffffu, s, off);
    const float mn = fmaxf(m, m2);
    s = (m == -INFINITY ? 0.f : s * expf(m - mn)) + (m2 == -INFINITY ? 0.f : s2 * expf(m2 - mn));
    m = mn;
  }
  m = __shfl_sync(0xffffffffu, m, 0);
  s = __shfl_sync(0xffffffffu, s, 0);
  const float inv = 1.f / s;
  for (int j = lane; j < C; j += 32) y[j] = expf(x[j] - m) * inv;
}

void run(int version, const float* d_in, float* d_out, int N, int C, int block) {
  switch (version) {
    case 1: softmax_kernel1<<<ceil_div(N, block), block>>>(d_in, d_out, N, C); break;
    case 2: softmax_kernel2<<<N, block, block * sizeof(double)>>>(d_in, d_out, N, C); break;
    case 3: softmax_kernel3<<<N, block>>>(d_in, d_out, N, C); break;
    case 4: softmax_kernel4<<<ceil_div(N, block / 32), block>>>(d_in, d_out, N, C); break;
    default: std::fprintf(stderr, "unknown version %d\n", version); std::exit(1);
  }
  DEV_CHECK(cudaGetLastError());
}

int main(int argc, char** argv) {
  const int N = 8 * 1024, C = 4096;
  int only = argc > 1 ? std::atoi(argv[1]) : 0;
  std::printf("softmax forward, N = %d rows, C = %d\n", N, C);
  std::vector<float> inp = random_vector((size_t)N * C, -8.f, 8.f), ref((size_t)N * C);
  softmax_cpu(inp.data(), ref.data(), N, C);
  float* d_in = to_device(inp);
  float* d_out = nullptr;
  DEV_CHECK(cudaMalloc(&d_out, (size_t)N * C * sizeof(float)));
  bool all_ok = true;
  const double copy_gbs = copy_bandwidth_gbs((size_t)N * C * sizeof(float));
  const int blocks[] = {64, 128, 256, 512, 1024};
  for (int v = 1; v <= 4; ++v) {
    if (only && v != only) continue;
    std::printf("version %d\n", v);
    for (int block : blocks) {
      DEV_CHECK(cudaMemset(d_out, 0, (size_t)N * C * sizeof(float)));
      run(v, d_in, d_out, N, C, block);
      DEV_CHECK(cudaDeviceSynchronize());
      char name[64];
      std::snprintf(name, sizeof name, "block %d", block);
      all_ok &= validate(name, d_out, ref, 1e-6, 1e-5);
      const float ms = time_ms([&] { run(v, d_in, d_out, N, C, block); }, v == 1 ? 3 : 50);
      const double gbs = 2.0 * (double)N * C * sizeof(float) / (ms * 1e-3) / 1e9;
      std::printf("  %-28s %.4f ms, %.1f GB/s (%.0f%% of copy)\n", "", ms, gbs, 100.0 * gbs / copy_gbs);
      // machine-readable lines for tools/gpu_check.sh
      std::printf("BENCH softmax_fwd v%d block=%d ms=%.4f\n", v, block, ms);
      std::printf("BENCH softmax_fwd_gbs v%d block=%d gbs=%.1f\n", v, block, gbs);
    }
  }
  DEV_CHECK(cudaFree(d_in));
  DEV_CHECK(cudaFree(d_out));
  // Few long rows: the library's one-block-per-row kernel against its split kernels.
  namespace sk = lm::cuda::softmax_kernels;
  for (int rows : {1, 24}) {
    const int n = 100000;
    const sk::RowSplit sp = sk::row_split(rows, n);
    std::printf("few long rows: %d x %d (split: %lld chunks of %lld)\n", rows, n, (long long)sp.chunks,
                (long long)sp.per_chunk);
    std::vector<float> x = random_vector((size_t)rows * n, -8.f, 8.f, 11), want((size_t)rows * n);
    softmax_cpu(x.data(), want.data(), rows, n);
    float* dx = to_device(x);
    float *dy = nullptr, *pmax = nullptr;
    double* psum = nullptr;
    DEV_CHECK(cudaMalloc(&dy, x.size() * sizeof(float)));
    DEV_CHECK(cudaMalloc(&pmax, (size_t)rows * sp.chunks * sizeof(float)));
    DEV_CHECK(cudaMalloc(&psum, (size_t)rows * sp.chunks * sizeof(double)));
    auto rows_kernel = [&] { sk::softmax_rows_kernel<float><<<rows, 256>>>(dx, rows, n, false, dy); };
    auto split_kernels = [&] {
      const int grid = (int)(rows * sp.chunks);
      sk::softmax_split_max_kernel<float><<<grid, 256>>>(dx, rows, n, sp.per_chunk, sp.chunks, pmax);
      sk::softmax_split_sum_kernel<float><<<grid, 256>>>(dx, rows, n, sp.per_chunk, sp.chunks, pmax, psum);
      sk::softmax_split_write_kernel<float><<<grid, 256>>>(dx, rows, n, sp.per_chunk, sp.chunks, pmax, psum, false, dy);
    };
    for (int v = 1; v <= 2; ++v) {
      DEV_CHECK(cudaMemset(dy, 0, x.size() * sizeof(float)));
      if (v == 1) rows_kernel();
      else split_kernels();
      DEV_CHECK(cudaDeviceSynchronize());
      all_ok &= validate(v == 1 ? "rows (one block per row)" : "split", dy, want, 1e-9, 1e-5);
      const float ms = time_ms([&] { v == 1 ? rows_kernel() : split_kernels(); });
      std::printf("  %-28s %.4f ms\n", v == 1 ? "rows" : "split", ms);
      std::printf("BENCH softmax_long %s rows=%d n=%d ms=%.4f\n", v == 1 ? "rows" : "split", rows, n, ms);
    }
    DEV_CHECK(cudaFree(dx));
    DEV_CHECK(cudaFree(dy));
    DEV_CHECK(cudaFree(pmax));
    DEV_CHECK(cudaFree(psum));
  }
  std::printf(all_ok ? "all versions match the CPU reference\n" : "SOME VERSIONS FAILED\n");
  return all_ok ? 0 : 1;
}
