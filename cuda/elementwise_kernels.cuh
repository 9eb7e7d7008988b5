// Elementwise kernels of cuda/elementwise.cu (device code): the per-element formulas, the packed map kernel (16-byte vectors when
// aligned) and the broadcast / strided binary kernel. Host side and numerics there.
// tests/test_cuda_emulated.cpp also runs them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "device_math.cuh"
#include "index2.cuh"
#include "tensor/op_kinds.h"

namespace LM_CUDA_NS::elementwise_kernels {

using lm::BinaryOp;
using lm::UnaryOp;

template <class T> struct Vec;
template <> struct Vec<float> { using type = float4; };
template <> struct Vec<double> { using type = double2; };

// ---- the per-element formulas (CPU: ops/cpu/elementwise.cpp) -----------------------------
struct BinaryF {
  BinaryOp op;
  template <class T>
  __device__ __forceinline__ T operator()(T x, T y, T) const {
    switch (op) {
      case BinaryOp::Add: return x + y;
      case BinaryOp::Sub: return x - y;
      case BinaryOp::Mul: return x * y;
      case BinaryOp::Div: return x / y;
      case BinaryOp::Eq: return x == y ? (T)1 : (T)0;
    }
    return x;
  }
};

struct UnaryF {
  UnaryOp op;
  double p0, p1;
  template <class T>
  __device__ __forceinline__ T operator()(T v, T, T) const {
    const T a = (T)p0, b = (T)p1;
    switch (op) {
      case UnaryOp::Neg: return -v;
      case UnaryOp::Exp: return d_exp(v);
      case UnaryOp::Log: return d_log(v);
      case UnaryOp::Sqrt: return d_sqrt(v);
      case UnaryOp::Pow: return a == (T)2 ? v * v : d_pow(v, a);
      case UnaryOp::Abs: return d_abs(v);
      case UnaryOp::Clamp: return v < a ? a : (v > b ? b : v);
      case UnaryOp::Relu: return v > 0 ? v : (T)0;
      case UnaryOp::Relu6: return v < 0 ? (T)0 : (v > (T)6 ? (T)6 : v);
      case UnaryOp::Sigmoid: return (T)1 / ((T)1 + d_exp(-v));
      case UnaryOp::Tanh: return d_tanh(v);
      case UnaryOp::Gelu: return (T)0.5 * v * ((T)1 + d_erf(v * (T)0.70710678118654752440));
      case UnaryOp::AddScalar: return v + a;
      case UnaryOp::MulScalar: return v * a;
      case UnaryOp::RSubScalar: return a - v;
    }
    return v;
  }
};

// grad_x = grad_y * f'(x), from x, y = f(x) and grad_y.
struct UnaryGradF {
  UnaryOp op;
  double p0, p1;
  template <class T>
  __device__ __forceinline__ T operator()(T x, T y, T g) const {
    const T a = (T)p0, b = (T)p1;
    switch (op) {
      case UnaryOp::Neg: return -g;
      case UnaryOp::Exp: return g * y;
      case UnaryOp::Log: return g / x;
      case UnaryOp::Sqrt: return g * (T)0.5 / y;
      case UnaryOp::Pow: return g * a * d_pow(x, a - (T)1);
      case UnaryOp::Abs: return x > 0 ? g : (x < 0 ? -g : (T)0);
      case UnaryOp::Clamp: return (x >= a && x <= b) ? g : (T)0;
      case UnaryOp::Relu: return x > 0 ? g : (T)0;
      case UnaryOp::Relu6: return (x <= 0 || x >= (T)6) ? (T)0 : g;
      case UnaryOp::Sigmoid: return g * y * ((T)1 - y);
      case UnaryOp::Tanh: return g * ((T)1 - y * y);
      case UnaryOp::Gelu: {
        // d/dx [x Phi(x)] = Phi(x) + x phi(x), phi the standard normal density.
        const T cdf = (T)0.5 * ((T)1 + d_erf(x * (T)0.70710678118654752440));
        const T pdf = (T)0.39894228040143267794 * d_exp((T)-0.5 * x * x);
        return g * (cdf + x * pdf);
      }
      case UnaryOp::AddScalar: return g;
      case UnaryOp::MulScalar: return g * a;
      case UnaryOp::RSubScalar: return -g;
    }
    return g;
  }
};

// ---- packed map: out[i] = f(in0[i], in1[i], in2[i]) -------------------------------------
// in0, in1, in2, out: (n) packed; in1 / in2 are read only when NIN >= 2 / 3.
// vec: every pointer is 16-byte aligned, so whole float4 / double2 vectors are moved.
template <class T, int NIN, class F>
__global__ void map_kernel(int64_t n, bool vec, const T* __restrict__ in0, const T* __restrict__ in1,
                           const T* __restrict__ in2, T* __restrict__ out, F f) {
  using V = typename Vec<T>::type;
  constexpr int W = (int)(sizeof(V) / sizeof(T));
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  int64_t tail = 0;
  if (vec) {
    const int64_t nv = n / W;
    for (int64_t i = tid; i < nv; i += stride) {
      V v0 = reinterpret_cast<const V*>(in0)[i];
      V v1 = v0, v2 = v0;
      if constexpr (NIN >= 2) v1 = reinterpret_cast<const V*>(in1)[i];
      if constexpr (NIN >= 3) v2 = reinterpret_cast<const V*>(in2)[i];
      V vo;
      const T* e0 = reinterpret_cast<const T*>(&v0);
      const T* e1 = reinterpret_cast<const T*>(&v1);
      const T* e2 = reinterpret_cast<const T*>(&v2);
      T* eo = reinterpret_cast<T*>(&vo);
#pragma unroll
      for (int k = 0; k < W; ++k) eo[k] = f(e0[k], e1[k], e2[k]);
      reinterpret_cast<V*>(out)[i] = vo;
    }
    tail = nv * W;
  }
  for (int64_t i = tail + tid; i < n; i += stride) {
    const T x0 = in0[i];
    T x1 = x0, x2 = x0;
    if constexpr (NIN >= 2) x1 = in1[i];
    if constexpr (NIN >= 3) x2 = in2[i];
    out[i] = f(x0, x1, x2);
  }
}

// ---- broadcast / strided binary -----------------------------------------------------------
// out: (n) packed, the row-major enumeration of ix.shape; a, b read through ix.s0 / ix.s1
// (make_index2, cuda/index2.cuh).
template <class T>
__global__ void binary_index_kernel(int64_t n, Index2 ix, const T* __restrict__ a, const T* __restrict__ b,
                                    T* __restrict__ out, BinaryF f) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t oa, ob;
    index2_offsets(ix, i, oa, ob);
    out[i] = f(a[oa], b[ob], a[oa]);
  }
}

}  // namespace LM_CUDA_NS::elementwise_kernels
