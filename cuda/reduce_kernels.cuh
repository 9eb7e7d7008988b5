// Reduction kernels (sum, max, log-sum-exp, argmax) of cuda/reduce.cu (device code only; host
// side, launch configuration and numerics there). Self-contained (CUDA headers,
// cuda/device_math.cuh, cuda/block_reduce.cuh, the op enum of tensor/op_kinds.h) so that
// tests/test_cuda_emulated.cpp also runs them on the CPU (tests/cuda_emulator.h) and the
// study cuda/dev/reduce.cu times them (compiled with -I at the repository root).
#pragma once
#include <cstdint>

#include "block_reduce.cuh"
#include "device_math.cuh"
#include "tensor/op_kinds.h"

namespace LM_CUDA_NS::reduce_kernels {

using lm::ReduceOp;

// x: (outer, red) packed; out: (outer) packed. One block per row (grid-stride over rows).
template <class T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* __restrict__ x, int64_t outer, int64_t red,
                                   T* __restrict__ out) {
  __shared__ double sd[33];
  __shared__ T st[33];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* row = x + o * red;
    if (op == ReduceOp::Sum) {
      double acc = 0;
      for (int64_t r = threadIdx.x; r < red; r += blockDim.x) acc += (double)row[r];
      acc = block_reduce(acc, SumOp{}, 0.0, sd);
      if (threadIdx.x == 0) out[o] = (T)acc;
      continue;
    }
    T m = neg_inf<T>();
    for (int64_t r = threadIdx.x; r < red; r += blockDim.x) m = max_skip_nan(m, row[r]);
    m = block_reduce(m, MaxOp{}, neg_inf<T>(), st);
    if (op == ReduceOp::Max) {
      if (threadIdx.x == 0) out[o] = m;
      continue;
    }
    if (d_isinf(m)) {  // all -inf (or +inf present): the CPU returns m
      if (threadIdx.x == 0) out[o] = m;
      continue;
    }
    double acc = 0;
    for (int64_t r = threadIdx.x; r < red; r += blockDim.x) acc += d_exp((double)(row[r] - m));
    acc = block_reduce(acc, SumOp{}, 0.0, sd);
    if (threadIdx.x == 0) out[o] = (T)((double)m + d_log(acc));
  }
}

// x: (outer, red, inner) packed; out: (outer, inner) packed. One thread per output.
template <class T>
__global__ void reduce_columns_kernel(ReduceOp op, const T* __restrict__ x, int64_t outer, int64_t red,
                                      int64_t inner, T* __restrict__ out) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const T* col = x + o * red * inner + i;
    if (op == ReduceOp::Sum) {
      double acc = 0;
      for (int64_t r = 0; r < red; ++r) acc += (double)col[r * inner];
      out[k] = (T)acc;
      continue;
    }
    T m = neg_inf<T>();
    for (int64_t r = 0; r < red; ++r) m = max_skip_nan(m, col[r * inner]);
    if (op == ReduceOp::Max || d_isinf(m)) {
      out[k] = m;
      continue;
    }
    double acc = 0;
    for (int64_t r = 0; r < red; ++r) acc += d_exp((double)(col[r * inner] - m));
    out[k] = (T)((double)m + d_log(acc));
  }
}

// ---- split columns: a long reduced axis with few outputs --------------------------------------
// The kernel above runs one thread per output: a (100000, 512) column sum (a bias gradient at
// N = 100000) gets 512 threads, two blocks on a 132-SM GPU, each thread reading 100000 values
// in a row. For Sum and Max with few outputs and a long axis the axis is cut instead into
// `chunks` runs of `rows_per_chunk` rows: pass 1 gives every (outer, chunk, inner) a thread that
// reduces its run in order into a float64 partial (a float32 max is exact in float64), pass 2
// combines each output's partials in chunk order. Fixed order, no atomics, and a split that
// depends on the shape only: the same bits on every run and every device. (The sum's order
// differs from the CPU's single run: the float64 partials round differently at 1e-16.)
struct ColumnSplit {
  int64_t rows_per_chunk, chunks;  // chunks == 1: use reduce_columns_kernel
};
// Host side: no more chunks than runs of kMinRows rows, at most kMaxChunks, and only as many as
// bring the thread count to about kThreadsWanted; then the rows spread evenly over them (runs
// of about kMinRows or more). Many outputs (>= kFewOutputs) keep the one-thread-per-output
// kernel, which already fills the device. LogSumExp is never split (column_split_for).
inline ColumnSplit column_split(int64_t outer, int64_t red, int64_t inner) {
  constexpr int64_t kMinRows = 64, kMaxChunks = 1024, kFewOutputs = 65536, kThreadsWanted = 131072;
  const int64_t outputs = outer * inner;
  if (outputs < 1 || outputs >= kFewOutputs || red < 2 * kMinRows) return {red, 1};
  int64_t chunks = (red + kMinRows - 1) / kMinRows;
  const int64_t want = (kThreadsWanted + outputs - 1) / outputs;
  if (chunks > want) chunks = want;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  if (chunks < 2) return {red, 1};
  const int64_t rows = (red + chunks - 1) / chunks;
  return {rows, (red + rows - 1) / rows};
}

// The split cuda/reduce.cu uses for `op` (Sum, Max: column_split; LogSumExp: none).
inline ColumnSplit column_split_for(ReduceOp op, int64_t outer, int64_t red, int64_t inner) {
  return op == ReduceOp::LogSumExp ? ColumnSplit{red, 1} : column_split(outer, red, inner);
}

// Pass 1. x: (outer, red, inner) packed; partial: (outer, chunks, inner) float64. op: Sum or Max.
template <class T>
__global__ void reduce_column_chunks_kernel(ReduceOp op, const T* __restrict__ x, int64_t outer, int64_t red,
                                            int64_t inner, int64_t rows_per_chunk, int64_t chunks,
                                            double* __restrict__ partial) {
  const int64_t total = outer * chunks * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t i = k % inner, oc = k / inner, c = oc % chunks, o = oc / chunks;
    const int64_t r0 = c * rows_per_chunk, r1 = r0 + rows_per_chunk < red ? r0 + rows_per_chunk : red;
    const T* col = x + o * red * inner + i;
    double acc = op == ReduceOp::Sum ? 0.0 : neg_inf<double>();
    if (op == ReduceOp::Sum)
      for (int64_t r = r0; r < r1; ++r) acc += (double)col[r * inner];
    else
      for (int64_t r = r0; r < r1; ++r) acc = max_skip_nan(acc, (double)col[r * inner]);
    partial[k] = acc;
  }
}

// Pass 2. partial: (outer, chunks, inner) float64; out: (outer, inner) packed.
template <class T>
__global__ void reduce_column_partials_kernel(ReduceOp op, const double* __restrict__ partial, int64_t outer,
                                              int64_t inner, int64_t chunks, T* __restrict__ out) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const double* p = partial + o * chunks * inner + i;
    double acc = op == ReduceOp::Sum ? 0.0 : neg_inf<double>();
    if (op == ReduceOp::Sum)
      for (int64_t c = 0; c < chunks; ++c) acc += p[c * inner];
    else
      for (int64_t c = 0; c < chunks; ++c) acc = max_skip_nan(acc, p[c * inner]);
    out[k] = (T)acc;
  }
}

// x: (outer, red, inner) packed; out: (outer, inner) int64. First maximum wins; a NaN beats
// any number (as the CPU argmax).
template <class T>
__global__ void argmax_kernel(const T* __restrict__ x, int64_t outer, int64_t red, int64_t inner,
                              int64_t* __restrict__ out) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const T* col = x + o * red * inner + i;
    int64_t best = 0;
    T bv = col[0];
    for (int64_t r = 1; r < red; ++r) {
      const T v = col[r * inner];
      if (v > bv || (d_isnan(v) && !d_isnan(bv))) {
        bv = v;
        best = r;
      }
    }
    out[k] = best;
  }
}

}  // namespace LM_CUDA_NS::reduce_kernels
