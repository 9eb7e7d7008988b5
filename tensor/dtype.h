// Element types a Tensor can hold, their sizes and names; the float16 / bfloat16 conversions
// used when such tensors are read, written or computed on (compute always happens in float32
// or float64) are tensor/half_bits.h, shared with the CUDA conversion kernel.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "tensor/half_bits.h"  // half_to_float, float_to_half, bf16_to_float, float_to_bf16

namespace lm {

enum class DType : uint8_t { F32, F64, I64, F16, BF16 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I64: return "int64";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
  }
  return "?";
}

inline bool is_floating(DType t) { return t != DType::I64; }
// Types kernels compute in directly (float16/bfloat16 are storage types: convert first).
inline bool is_compute_float(DType t) { return t == DType::F32 || t == DType::F64; }

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };

}  // namespace lm
