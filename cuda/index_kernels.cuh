// Index kernels of cuda/index.cu (device code): index_select's gather and its deterministic
// backward. Host sides there; tests/test_cuda_emulated.cpp also runs them on the CPU
// (tests/cuda_emulator.h).
//
// x is seen as (outer, n, inner) packed, the selected dim in the middle; idx holds K row
// numbers in [0, n). Forward: out (outer, K, inner), out[o, k, i] = x[o, idx[k], i].
// Backward: gx (outer, n, inner), gx[o, j, i] = sum of g[o, k, i] over the k with idx[k] = j.
// Rows may repeat in idx, so several k add into one j: instead of atomics (whose order, and so
// whose float sum, varies from run to run), the host inverts idx into a CSR list (offsets[j] ..
// offsets[j+1] - 1 index `ks`, the k of row j in ascending order) and each thread owns one
// output element and sums its list in that order: the same bits every run, and the same as the
// CPU op, which adds the rows in ascending k.
#pragma once
#include <cstdint>

#include "device_math.cuh"

namespace LM_CUDA_NS::index_kernels {

// E: an unsigned integer of the element size (the gather moves bits, any dtype).
template <class E>
__global__ void gather_rows_kernel(int64_t outer, int64_t n, int64_t K, int64_t inner,
                                   const int64_t* __restrict__ idx, const E* __restrict__ x, E* __restrict__ out) {
  const int64_t total = outer * K * inner, stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t i = e % inner, k = (e / inner) % K, o = e / (inner * K);
    out[e] = x[(o * n + idx[k]) * inner + i];
  }
}

// T: float or double. offsets: (n + 1), ks: (K); g: (outer, K, inner); gx: (outer, n, inner).
template <class T>
__global__ void scatter_add_rows_kernel(int64_t outer, int64_t n, int64_t K, int64_t inner,
                                        const int64_t* __restrict__ offsets, const int64_t* __restrict__ ks,
                                        const T* __restrict__ g, T* __restrict__ gx) {
  const int64_t total = outer * n * inner, stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t i = e % inner, j = (e / inner) % n, o = e / (inner * n);
    T acc = T(0);
    for (int64_t t = offsets[j]; t < offsets[j + 1]; ++t) acc += g[(o * K + ks[t]) * inner + i];
    gx[e] = acc;
  }
}

}  // namespace LM_CUDA_NS::index_kernels
