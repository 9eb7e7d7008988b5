// Cross-entropy kernels of cuda/loss.cu (device code only; host side, launch configuration and
// numerics there). Self-contained (CUDA headers, cuda/device_math.cuh, cuda/block_reduce.cuh)
// so that tests/test_cuda_emulated.cpp also runs them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>

#include "block_reduce.cuh"
#include "device_math.cuh"

namespace LM_CUDA_NS::loss_kernels {

// x: (B, C) packed; t: (B) int64; lse: (B), float64 (LseT = double) or T; row_loss: (B) float64.
template <class T, class LseT>
__global__ void cross_entropy_rows_kernel(const T* __restrict__ x, const int64_t* __restrict__ t, int64_t B,
                                          int64_t C, LseT* __restrict__ lse, double* __restrict__ row_loss) {
  __shared__ T st[33];
  __shared__ double sd[33];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const T* r = x + b * C;
    T m;
    double s;
    block_row_max_sumexp(r, C, st, sd, m, s);
    if (threadIdx.x == 0) {
      const double l = (double)m + d_log(s);
      lse[b] = (LseT)l;
      const int64_t tb = t[b];  // validated on the host, except under a graph capture (ops/loss.cpp)
      row_loss[b] = (tb >= 0 && tb < C) ? l - (double)r[tb] : (double)NAN;
    }
  }
}

// row_loss: (B) float64; loss: one element = mean. A single block, fixed-order reduction.
template <class T>
__global__ void mean_kernel(const double* __restrict__ row_loss, int64_t B, T* __restrict__ loss) {
  __shared__ double sd[33];
  double acc = 0;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) acc += row_loss[b];
  acc = block_reduce(acc, SumOp{}, 0.0, sd);
  if (threadIdx.x == 0) loss[0] = (T)(acc / (double)B);
}

// x, gx: (B, C) packed; t: (B) int64; lse: (B).
//   gx[b, c] = g / B * (exp(x[b, c] - lse_b) - [c == t_b])
template <class T, class LseT>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ g_dev, double g_host,
                                              const T* __restrict__ x, const int64_t* __restrict__ t,
                                              const LseT* __restrict__ lse, int64_t B, int64_t C,
                                              T* __restrict__ gx) {
  // g: the loss's upstream gradient, read on the device when it lives there (no host sync).
  const double g = g_dev ? (double)*g_dev : g_host;
  const double scale = g / (double)B;
  const int64_t total = B * C;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t b = k / C, c = k % C;
    const double l = (double)lse[b];
    gx[k] = (T)(scale * (d_exp((double)x[k] - l) - (c == t[b] ? 1.0 : 0.0)));
  }
}

}  // namespace LM_CUDA_NS::loss_kernels
