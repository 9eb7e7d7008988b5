// CUDA elementwise kernels: broadcasting binary ops (add, sub, mul, div) and the
// parameterised unary maps of ops/cpu/elementwise.h (neg ... gelu, scalar ops), forward and
// backward. The formulas are the CPU kernels' (ops/cpu/elementwise.cpp), in the same dtype.
//
// Packed operands go through one grid-stride map kernel that reads and writes 16 bytes per
// access (float4 / double2) when every pointer is 16-byte aligned, with a scalar tail.
// Broadcast or strided binary operands go through an index kernel that reads each input
// through its broadcast strides (stride 0 on broadcast dims); size-1 dims are dropped and
// mergeable dims fused first, so any realistic rank fits the 8-dim index.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/elementwise_kernels.cuh"
#include "tensor/op_kinds.h"

namespace lm::cuda {

using lm::BinaryOp;
using lm::UnaryOp;
using lm::UnaryParams;

namespace {

using namespace elementwise_kernels;

inline bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

template <class T, int NIN, class F>
void launch_map(const char* name, cudaStream_t stream, int64_t n, const T* in0, const T* in1, const T* in2, T* out,
                F f) {
  if (n <= 0) return;
  const bool vec = aligned16(in0) && (NIN < 2 || aligned16(in1)) && (NIN < 3 || aligned16(in2)) && aligned16(out);
  const int64_t work = vec ? n / (int64_t)(16 / sizeof(T)) + 16 : n;
  map_kernel<T, NIN, F><<<grid_for(work), kThreads, 0, stream>>>(n, vec, in0, in1, in2, out, f);
  check_launch(name);
}

Shape broadcast_strides_of(const Tensor& x, const Shape& out) {
  Shape st(out.size(), 0);
  const size_t off = out.size() - (size_t)x.dim();
  for (size_t i = 0; i < (size_t)x.dim(); ++i) st[off + i] = x.shape()[i] == 1 ? 0 : x.strides()[i];
  return st;
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, cudaStream_t stream) {
  const Shape& shape = out.shape();
  const int64_t n = out.numel();
  if (n == 0) return;
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  const BinaryF f{op};
  if (a.shape() == shape && a.is_contiguous() && b.shape() == shape && b.is_contiguous()) {
    launch_map<T, 2>("binary_forward (packed)", stream, n, pa, pb, (const T*)nullptr, po, f);
    return;
  }
  const Index2 ix = make_index2(shape, broadcast_strides_of(a, shape), broadcast_strides_of(b, shape), "cuda::binary_forward");
  binary_index_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(n, ix, pa, pb, po, f);
  check_launch("binary_forward (broadcast)");
}

}  // namespace

void binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  KernelScope scope(out);
  if (out.dtype() == DType::F32) binary_typed<float>(op, a, b, out, scope.stream);
  else binary_typed<double>(op, a, b, out, scope.stream);
}

void unary_forward(UnaryOp op, const UnaryParams& p, const Tensor& x, Tensor& out) {
  KernelScope scope(x);
  const UnaryF f{op, p.p0, p.p1};
  if (x.dtype() == DType::F32)
    launch_map<float, 1>("unary_forward", scope.stream, x.numel(), x.data<float>(), (const float*)nullptr,
                         (const float*)nullptr, out.data<float>(), f);
  else
    launch_map<double, 1>("unary_forward", scope.stream, x.numel(), x.data<double>(), (const double*)nullptr,
                          (const double*)nullptr, out.data<double>(), f);
}

void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& y, const Tensor& grad_y,
                    Tensor& grad_x) {
  KernelScope scope(x);
  const UnaryGradF f{op, p.p0, p.p1};
  if (x.dtype() == DType::F32)
    launch_map<float, 3>("unary_backward", scope.stream, x.numel(), x.data<float>(), y.data<float>(),
                         grad_y.data<float>(), grad_x.data<float>(), f);
  else
    launch_map<double, 3>("unary_backward", scope.stream, x.numel(), x.data<double>(), y.data<double>(),
                          grad_y.data<double>(), grad_x.data<double>(), f);
}

}  // namespace lm::cuda
