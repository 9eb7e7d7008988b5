// Softmax / log_softmax kernels of cuda/softmax.cu (device code only; host side, launch configuration and
// numerics there). Self-contained (CUDA headers, cuda/device_math.cuh, cuda/block_reduce.cuh)
// so that tests/test_cuda_emulated.cpp also runs them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>

#include "block_reduce.cuh"
#include "device_math.cuh"

namespace LM_CUDA_NS::softmax_kernels {

// x, y: (outer, n) packed. One block per row.
template <class T>
__global__ void softmax_rows_kernel(const T* __restrict__ x, int64_t outer, int64_t n, bool log_out,
                                    T* __restrict__ y) {
  __shared__ T st[33];
  __shared__ double sd[33];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* xr = x + o * n;
    T* yr = y + o * n;
    T m;
    double s;
    block_row_max_sumexp(xr, n, st, sd, m, s);
    if (log_out) {
      const T ls = (T)d_log(s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = (xr[j] - m) - ls;
    } else {
      const T inv = (T)(1.0 / s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = d_exp(xr[j] - m) * inv;
    }
  }
}

// x, y: (outer, n, inner) packed. One thread per (outer, inner) column.
template <class T>
__global__ void softmax_columns_kernel(const T* __restrict__ x, int64_t outer, int64_t n, int64_t inner, bool log_out,
                                       T* __restrict__ y) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const T* xc = x + o * n * inner + i;
    T* yc = y + o * n * inner + i;
    T m = neg_inf<T>();
    for (int64_t j = 0; j < n; ++j) m = max_skip_nan(m, xc[j * inner]);
    if (d_isinf(m) && m < 0) m = 0;
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += (double)d_exp(xc[j * inner] - m);
    if (log_out) {
      const T ls = (T)d_log(s);
      for (int64_t j = 0; j < n; ++j) yc[j * inner] = (xc[j * inner] - m) - ls;
    } else {
      const T inv = (T)(1.0 / s);
      for (int64_t j = 0; j < n; ++j) yc[j * inner] = d_exp(xc[j * inner] - m) * inv;
    }
  }
}

// y, g, gx: (outer, n) packed. One block per row.
//   softmax:     gx = y * (g - sum(g * y));   log_softmax: gx = g - exp(y) * sum(g)
template <class T>
__global__ void softmax_backward_rows_kernel(const T* __restrict__ y, const T* __restrict__ g, int64_t outer,
                                             int64_t n, bool log_out, T* __restrict__ gx) {
  __shared__ double sd[33];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* yr = y + o * n;
    const T* gr = g + o * n;
    T* dr = gx + o * n;
    double acc = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      acc += log_out ? (double)gr[j] : (double)gr[j] * (double)yr[j];
    acc = block_reduce(acc, SumOp{}, 0.0, sd);
    const T a = (T)acc;
    if (log_out)
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dr[j] = gr[j] - d_exp(yr[j]) * a;
    else
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dr[j] = yr[j] * (gr[j] - a);
  }
}

// y, g, gx: (outer, n, inner) packed. One thread per (outer, inner) column.
template <class T>
__global__ void softmax_backward_columns_kernel(const T* __restrict__ y, const T* __restrict__ g, int64_t outer,
                                                int64_t n, int64_t inner, bool log_out, T* __restrict__ gx) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const int64_t base = o * n * inner + i;
    double acc = 0;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t p = base + j * inner;
      acc += log_out ? (double)g[p] : (double)g[p] * (double)y[p];
    }
    const T a = (T)acc;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t p = base + j * inner;
      gx[p] = log_out ? g[p] - d_exp(y[p]) * a : y[p] * (g[p] - a);
    }
  }
}

}  // namespace LM_CUDA_NS::softmax_kernels
