// Reduction kernels (sum, max, log-sum-exp, argmax) of cuda/reduce.cu (device code only; host
// side, launch configuration and numerics there). Self-contained (CUDA headers,
// cuda/device_math.cuh, cuda/block_reduce.cuh, the op enum of ops/cpu/reduce.h) so that
// tests/test_cuda_emulated.cpp also runs them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>

#include "block_reduce.cuh"
#include "device_math.cuh"
#include "ops/cpu/reduce.h"

namespace LM_CUDA_NS::reduce_kernels {

using cpu::ReduceOp;

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
