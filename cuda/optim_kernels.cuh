// Adam / AdamW kernels of cuda/optim.cu (device code only; host side, launch configuration and
// numerics there). Self-contained (CUDA headers, cuda/device_math.cuh, cuda/block_reduce.cuh)
// so that tests/test_cuda_emulated.cpp also runs them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>

#include "block_reduce.cuh"
#include "device_math.cuh"

namespace LM_CUDA_NS::optim_kernels {

// p, g, m, v: (n) packed of T. mode: 0 no decay, 1 decoupled (AdamW), 2 L2 (Adam).
template <class T>
__global__ void adam_kernel(int64_t n, T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                            T* __restrict__ v, double step_size, double bc2_sqrt, double b1, double b2, double eps,
                            double wd, double decay, int mode) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    double pi = (double)p[i];
    double gi = (double)g[i];
    if (mode == 1) pi = (double)(T)(pi * decay);
    if (mode == 2) gi = (double)(T)(gi + wd * pi);
    const T mi = (T)(b1 * (double)m[i] + (1.0 - b1) * gi);
    const T vi = (T)(b2 * (double)v[i] + (1.0 - b2) * gi * gi);
    m[i] = mi;
    v[i] = vi;
    const double denom = d_sqrt((double)vi) / bc2_sqrt + eps;
    p[i] = (T)(pi - step_size * (double)mi / denom);
  }
}

}  // namespace LM_CUDA_NS::optim_kernels
