// Copy kernels of cuda/copy.cu (device code):
// the strided copy, the dtype conversion (float32 / float64 / float16 / bfloat16, the CPU's
// bit-exact rounding), add and fill. Host sides there. tests/test_cuda_emulated.cpp also runs
// them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "device_math.cuh"
#include "index2.cuh"
#include "tensor/half_bits.h"

namespace LM_CUDA_NS::copy_kernels {

// src, dst: any layout described by ix (make_index2, cuda/index2.cuh: operand 0 the source,
// 1 the destination); E: an unsigned integer of the element size.
template <class E>
__global__ void strided_copy_kernel(int64_t n, Index2 ix, const E* __restrict__ src, E* __restrict__ dst) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t os, od;
    index2_offsets(ix, i, os, od);
    dst[od] = src[os];
  }
}

// ---- dtype conversion ----------------------------------------------------------------------

// The conversions are the CPU's own (tensor/half_bits.h, host + device), so that a tensor
// converted on either device holds the same bits.

// Element codes for the kernel (a runtime switch per element is cheap next to the memory
// traffic, and keeps one kernel for all 12 pairs).
enum : int { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3 };

// Loads element i as double, the CPU's load_as_double.
__device__ __forceinline__ double load_elem(const void* p, int code, int64_t i) {
  switch (code) {
    case kF32: return (double)static_cast<const float*>(p)[i];
    case kF64: return static_cast<const double*>(p)[i];
    case kF16: return (double)half_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return (double)bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  }
}

// Stores v as element i, the CPU's store_from_double (float16 / bfloat16 through float32).
__device__ __forceinline__ void store_elem(void* p, int code, int64_t i, double v) {
  switch (code) {
    case kF32: static_cast<float*>(p)[i] = (float)v; break;
    case kF64: static_cast<double*>(p)[i] = v; break;
    case kF16: static_cast<uint16_t*>(p)[i] = float_to_half((float)v); break;
    default: static_cast<uint16_t*>(p)[i] = float_to_bf16((float)v); break;
  }
}

// src, dst: (n) packed, element codes sc / dc.
__global__ void convert_kernel(int64_t n, const void* __restrict__ src, int sc, void* __restrict__ dst, int dc) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    store_elem(dst, dc, i, load_elem(src, sc, i));
}

// ---- elementwise helpers for tensor/ (DeviceHooks::add / fill) ------------------------------

// z, x, y: (n) packed; z may alias x.
template <class T>
__global__ void add_kernel(int64_t n, T* z, const T* x, const T* __restrict__ y) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) z[i] = x[i] + y[i];
}

// dst: (n) packed elements of the unsigned type E, each set to `bits`.
template <class E>
__global__ void fill_kernel(int64_t n, E* __restrict__ dst, E bits) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = bits;
}

}  // namespace LM_CUDA_NS::copy_kernels
