// Two operands walked over one logical shape, each through its own element strides: the index
// the broadcast binary kernel (cuda/elementwise_kernels.cuh) and the strided copy
// (cuda/copy_kernels.cuh) share. Host: make_index2 drops size-1 dims and fuses adjacent dims
// that both operands step through as one, so any realistic rank fits kMaxIndexDims. Device:
// index2_offsets gives both operands' offsets of logical element i (row-major).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "device_math.cuh"
#include "tensor/tensor.h"  // Shape, shape_str

namespace LM_CUDA_NS {

constexpr int kMaxIndexDims = 8;

struct Index2 {
  int nd = 0;
  int64_t shape[kMaxIndexDims];
  int64_t s0[kMaxIndexDims];  // element strides of operand 0 (0 on broadcast dims)
  int64_t s1[kMaxIndexDims];  // element strides of operand 1
};

__device__ __forceinline__ void index2_offsets(const Index2& ix, int64_t i, int64_t& o0, int64_t& o1) {
  int64_t rem = i;
  o0 = 0;
  o1 = 0;
  for (int d = ix.nd - 1; d >= 0; --d) {
    const int64_t idx = rem % ix.shape[d];
    rem /= ix.shape[d];
    o0 += idx * ix.s0[d];
    o1 += idx * ix.s1[d];
  }
}

// `who` names the caller in the error for more than kMaxIndexDims non-mergeable dims.
inline Index2 make_index2(const Shape& shape, const Shape& s0, const Shape& s1, const char* who) {
  Shape s, a, b;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!s.empty() && a.back() == s0[d] * shape[d] && b.back() == s1[d] * shape[d]) {
      s.back() *= shape[d];
      a.back() = s0[d];
      b.back() = s1[d];
    } else {
      s.push_back(shape[d]);
      a.push_back(s0[d]);
      b.push_back(s1[d]);
    }
  }
  if (s.size() > (size_t)kMaxIndexDims)
    throw std::runtime_error(std::string(who) + ": more than " + std::to_string(kMaxIndexDims) +
                             " non-mergeable dims in shape " + shape_str(shape));
  Index2 ix;
  ix.nd = (int)s.size();
  for (int d = 0; d < ix.nd; ++d) {
    ix.shape[d] = s[d];
    ix.s0[d] = a[d];
    ix.s1[d] = b[d];
  }
  return ix;
}

}  // namespace LM_CUDA_NS
