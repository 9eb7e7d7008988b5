// float16 / bfloat16 <-> float32 by bit manipulation (round to nearest even), written once for
// the CPU (tensor/dtype.h) and the CUDA conversion kernels (cuda/copy_kernels.cuh), so that a
// tensor converted on either device holds the same bits. Self-contained (CUDA-free headers
// only): g++ compiles these as inline functions, nvcc as host + device functions (LM_HALF_FN,
// undefined again at the end so that it cannot clash with other headers' macros).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LM_HALF_FN __host__ __device__ __forceinline__
#else
#define LM_HALF_FN inline
#endif

namespace lm {

// The bits of a float and back (the device's intrinsics in device code).
LM_HALF_FN uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
LM_HALF_FN float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// IEEE binary16 <-> float32.
LM_HALF_FN float half_to_float(uint16_t h) {
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
  return bits_to_float(bits);
}

LM_HALF_FN uint16_t float_to_half(float f) {
  const uint32_t x = float_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000, absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));  // inf / NaN
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);                                     // overflow
  if (absx < 0x38800000u) {  // subnormal or zero in half
    if (absx < 0x33000000u) return (uint16_t)sign;
    const uint32_t mant = (absx & 0x7fffff) | 0x800000;
    const int shift = 126 - (int)(absx >> 23);  // 14 + (113 - exp)
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

// bfloat16 (the upper half of a float32) <-> float32.
LM_HALF_FN float bf16_to_float(uint16_t b) { return bits_to_float((uint32_t)b << 16); }

LM_HALF_FN uint16_t float_to_bf16(float f) {
  const uint32_t x = float_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

}  // namespace lm

#undef LM_HALF_FN
