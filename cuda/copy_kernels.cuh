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

// The CPU's conversions (tensor/dtype.h: float_to_half, float_to_bf16, half_to_float), bit for
// bit, so that a tensor converted on either device holds the same bits.
__device__ __forceinline__ float half_bits_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        mant <<= 1;
        ++e;
      } while (!(mant & 0x400));
      mant &= 0x3ff;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return __uint_as_float(bits);
}

__device__ __forceinline__ uint16_t float_to_half_bits(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint32_t sign = (x >> 16) & 0x8000, absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));  // inf / NaN
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);                                     // overflow
  if (absx < 0x38800000u) {  // subnormal or zero in half
    if (absx < 0x33000000u) return (uint16_t)sign;
    const uint32_t mant = (absx & 0x7fffff) | 0x800000;
    const int shift = 126 - (int)(absx >> 23);
    uint32_t half_mant = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1))) ++half_mant;
    return (uint16_t)(sign | half_mant);
  }
  uint32_t h = (absx - 0x38000000u) >> 13;
  const uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return (uint16_t)(sign | h);
}

__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  const uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

// Element codes for the kernel (a runtime switch per element is cheap next to the memory
// traffic, and keeps one kernel for all 12 pairs).
enum : int { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3 };

// Loads element i as double, the CPU's load_as_double.
__device__ __forceinline__ double load_elem(const void* p, int code, int64_t i) {
  switch (code) {
    case kF32: return (double)static_cast<const float*>(p)[i];
    case kF64: return static_cast<const double*>(p)[i];
    case kF16: return (double)half_bits_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return (double)__uint_as_float((uint32_t)static_cast<const uint16_t*>(p)[i] << 16);
  }
}

// Stores v as element i, the CPU's store_from_double (float16 / bfloat16 through float32).
__device__ __forceinline__ void store_elem(void* p, int code, int64_t i, double v) {
  switch (code) {
    case kF32: static_cast<float*>(p)[i] = (float)v; break;
    case kF64: static_cast<double*>(p)[i] = v; break;
    case kF16: static_cast<uint16_t*>(p)[i] = float_to_half_bits((float)v); break;
    default: static_cast<uint16_t*>(p)[i] = float_to_bf16_bits((float)v); break;
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
