// Deterministic warp-shuffle and block reductions (device code only), used by every
// reduction-style kernel. Self-contained (CUDA headers + cuda/device_math.cuh) so that the
// kernel headers built on it also compile for the CPU emulator (tests/cuda_emulator.h).
//
// Determinism: a block reduction combines each thread's partial in a fixed tree (warp
// shuffles, then one warp over the per-warp partials in shared memory). With a fixed
// blockDim the same inputs always give the same bits; no kernel here uses atomics.
#pragma once
#include <cstdint>

#include "device_math.cuh"

namespace LM_CUDA_NS {

// The "max" the CPU kernels use: `v > m ? v : m` (a NaN never wins, like the CPU loop).
template <class T> __device__ __forceinline__ T max_skip_nan(T m, T v) { return v > m ? v : m; }

struct SumOp {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return max_skip_nan(a, b); }
};

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int off = kWarp / 2; off > 0; off /= 2) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
  return v;
}

// Reduces one value per thread over the whole block (blockDim.x a multiple of 32, at most
// 1024); every thread gets the result. `shared` holds >= 33 T. Contains __syncthreads():
// call from all threads of the block.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity, T* shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int nwarps = blockDim.x / kWarp;
  v = warp_reduce(v, op);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T r = lane < nwarps ? shared[lane] : identity;
    r = warp_reduce(r, op);
    if (lane == 0) shared[32] = r;
  }
  __syncthreads();
  return shared[32];
}

// The row statistics of softmax and cross-entropy, by the whole block over a row of n: m, the
// maximum (NaN skipped; 0 for an all -inf row, as the CPU), and s, the float64 sum of
// exp(x - m) (exp in T). st, sd: shared scratch of >= 33 elements each. Contains
// __syncthreads(): call from all threads of the block.
template <class T>
__device__ void block_row_max_sumexp(const T* row, int64_t n, T* st, double* sd, T& m, double& s) {
  m = neg_inf<T>();
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = max_skip_nan(m, row[j]);
  m = block_reduce(m, MaxOp{}, neg_inf<T>(), st);
  if (d_isinf(m) && m < 0) m = 0;
  s = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += (double)d_exp(row[j] - m);
  s = block_reduce(s, SumOp{}, 0.0, sd);
}

}  // namespace LM_CUDA_NS
