// Layer-norm kernels of cuda/layer_norm.cu (device code only; host side, launch configuration and
// numerics there). Self-contained (CUDA headers, cuda/device_math.cuh, cuda/block_reduce.cuh)
// so that tests/test_cuda_emulated.cpp also runs them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>

#include "block_reduce.cuh"
#include "device_math.cuh"

namespace LM_CUDA_NS::layer_norm_kernels {

constexpr int64_t kRowsPerChunk = 32;  // as ops/cpu/layer_norm.cpp

// x, y: (rows, D) packed; w, b: (D) or nullptr; mean, rstd: (rows). One block per row.
template <class T>
__global__ void layer_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                          double eps, int64_t rows, int64_t D, T* __restrict__ y,
                                          T* __restrict__ mean, T* __restrict__ rstd) {
  __shared__ double sd[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    double s = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += (double)xr[j];
    s = block_reduce(s, SumOp{}, 0.0, sd);
    const double mu = s / (double)D;
    double v = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double c = (double)xr[j] - mu;
      v += c * c;
    }
    v = block_reduce(v, SumOp{}, 0.0, sd);
    const double rs = 1.0 / d_sqrt(v / (double)D + eps);
    if (threadIdx.x == 0) {
      mean[r] = (T)mu;
      rstd[r] = (T)rs;
    }
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double h = ((double)xr[j] - mu) * rs;
      if (w) h *= (double)w[j];
      if (b) h += (double)b[j];
      yr[j] = (T)h;
    }
  }
}

// g, x, gx: (rows, D) packed; w: (D) or nullptr; mean, rstd: (rows). One block per row.
//   gx = rstd * (gw - mean_D(gw) - xhat * mean_D(gw * xhat)),  gw = g * w, xhat = (x - mean) * rstd
template <class T>
__global__ void layer_norm_backward_x_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w,
                                             const T* __restrict__ mean, const T* __restrict__ rstd, int64_t rows,
                                             int64_t D, T* __restrict__ gx) {
  __shared__ double sd[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = g + r * D;
    const T* xr = x + r * D;
    T* dr = gx + r * D;
    const double mu = (double)mean[r], rs = (double)rstd[r];
    double a = 0, bsum = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double gwj = w ? (double)gr[j] * (double)w[j] : (double)gr[j];
      a += gwj;
      bsum += gwj * (((double)xr[j] - mu) * rs);
    }
    a = block_reduce(a, SumOp{}, 0.0, sd) / (double)D;
    bsum = block_reduce(bsum, SumOp{}, 0.0, sd) / (double)D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double gwj = w ? (double)gr[j] * (double)w[j] : (double)gr[j];
      const double xh = ((double)xr[j] - mu) * rs;
      dr[j] = (T)(rs * (gwj - a - xh * bsum));
    }
  }
}

// g, x: (rows, D) packed; mean, rstd: (rows); pw, pb: (nchunks, D) float64 partials, or
// nullptr. Grid: (ceil(D / blockDim.x), chunks); a thread per (chunk, column).
template <class T>
__global__ void layer_norm_param_partials_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                                 const T* __restrict__ mean, const T* __restrict__ rstd, int64_t rows,
                                                 int64_t D, int64_t nchunks, double* __restrict__ pw,
                                                 double* __restrict__ pb) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= D) return;
  for (int64_t c = blockIdx.y; c < nchunks; c += gridDim.y) {
    const int64_t r0 = c * kRowsPerChunk;
    const int64_t r1 = r0 + kRowsPerChunk < rows ? r0 + kRowsPerChunk : rows;
    double sw = 0, sb = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const double gv = (double)g[r * D + j];
      sw += gv * (((double)x[r * D + j] - (double)mean[r]) * (double)rstd[r]);
      sb += gv;
    }
    if (pw) pw[c * D + j] = sw;
    if (pb) pb[c * D + j] = sb;
  }
}

// pw, pb: (nchunks, D) partials or nullptr; gw, gb: (D) or nullptr. A thread per column.
template <class T>
__global__ void layer_norm_param_sum_kernel(const double* __restrict__ pw, const double* __restrict__ pb,
                                            int64_t nchunks, int64_t D, T* __restrict__ gw, T* __restrict__ gb) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < D; j += stride) {
    if (gw) {
      double s = 0;
      for (int64_t c = 0; c < nchunks; ++c) s += pw[c * D + j];
      gw[j] = (T)s;
    }
    if (gb) {
      double s = 0;
      for (int64_t c = 0; c < nchunks; ++c) s += pb[c * D + j];
      gb[j] = (T)s;
    }
  }
}

}  // namespace LM_CUDA_NS::layer_norm_kernels
