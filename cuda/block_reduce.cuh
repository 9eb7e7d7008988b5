// Deterministic warp-shuffle and block reductions (device code only), used by every
// reduction-style kernel. Self-contained (CUDA headers + cuda/device_math.cuh) so that the
// kernel headers built on it also compile for the CPU emulator (tests/cuda_emulator.h).
//
// Determinism: a block reduction combines each thread's partial in a fixed tree (warp
// shuffles, then one warp over the per-warp partials in shared memory). With a fixed
// blockDim the same inputs always give the same bits; no kernel here uses atomics.
#pragma once
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

}  // namespace lm::cuda
