// Kernels of cuda/resize.cu (device code only): the two passes of the separable image resize
// and normalize_channels, forward and backward (ops/cpu/resize.h has the contracts, docs/ops/resize.md
// the math). A pass applies one axis's CSR table (ops/cpu/resize_table.h, built on the host);
// the backward runs the same passes with the transposed tables, so every output is a gather
// summed in table order: no atomics, the CPU's order and (up to contraction) its bits.
// Self-contained (CUDA headers and cuda/device_math.cuh) so that tests/test_cuda_emulated.cpp
// also runs them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>

#include "device_math.cuh"

namespace LM_CUDA_NS::resize_kernels {

// Along the last dim, a thread per output element (grid-stride).
// x: (rows, src_size) packed; offsets: (dst_size + 1); src, w: (nnz); y: (rows, dst_size) packed.
template <class T>
__global__ void resize_horizontal_kernel(const T* __restrict__ x, int64_t rows, int64_t src_size, int64_t dst_size,
                                         const int64_t* __restrict__ offsets, const int64_t* __restrict__ src,
                                         const T* __restrict__ w, T* __restrict__ y) {
  const int64_t total = rows * dst_size, stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t r = i / dst_size, d = i - r * dst_size;
    const T* xr = x + r * src_size;
    T acc = T(0);
    for (int64_t e = offsets[d]; e < offsets[d + 1]; ++e) acc += xr[src[e]] * w[e];
    y[i] = acc;
  }
}

// Along the middle dim, a thread per output element (grid-stride; consecutive threads read
// consecutive columns, so loads coalesce).
// x: (planes, src_size, width) packed; offsets: (dst_size + 1); src, w: (nnz);
// y: (planes, dst_size, width) packed.
template <class T>
__global__ void resize_vertical_kernel(const T* __restrict__ x, int64_t planes, int64_t src_size, int64_t dst_size,
                                       int64_t width, const int64_t* __restrict__ offsets,
                                       const int64_t* __restrict__ src, const T* __restrict__ w, T* __restrict__ y) {
  const int64_t total = planes * dst_size * width, stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t j = i % width, d = (i / width) % dst_size, p = i / (width * dst_size);
    const T* xp = x + p * src_size * width + j;
    T acc = T(0);
    for (int64_t e = offsets[d]; e < offsets[d + 1]; ++e) acc += xp[src[e] * width] * w[e];
    y[i] = acc;
  }
}

// x, y: (planes, hw) packed, plane p of channel p % C; mean, sd: (C). y = (x - mean[c]) / sd[c].
template <class T>
__global__ void normalize_channels_kernel(const T* __restrict__ x, int64_t planes, int64_t C, int64_t hw,
                                          const T* __restrict__ mean, const T* __restrict__ sd, T* __restrict__ y) {
  const int64_t total = planes * hw, stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t c = (i / hw) % C;
    y[i] = (x[i] - mean[c]) / sd[c];
  }
}

// g, gx: (planes, hw) packed; sd: (C). gx = g / sd[c].
template <class T>
__global__ void normalize_channels_backward_kernel(const T* __restrict__ g, int64_t planes, int64_t C, int64_t hw,
                                                   const T* __restrict__ sd, T* __restrict__ gx) {
  const int64_t total = planes * hw, stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t c = (i / hw) % C;
    gx[i] = g[i] / sd[c];
  }
}

}  // namespace LM_CUDA_NS::resize_kernels
