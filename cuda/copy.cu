// CUDA strided copy: dst[idx] = src[idx] for every logical index of two same-shape,
// same-dtype tensors on the same device, each read / written through its own strides. This is
// the device-side transpose / contiguous(). tensor/ cannot call it yet (Tensor::contiguous()
// of a non-contiguous CUDA tensor still goes through a host round trip in tensor.cpp: see
// docs/cuda.md); ops and tests can call lm::cuda::copy_strided / lm::cuda::contiguous directly.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/copy.h"
#include "cuda/kernels.h"

namespace lm::cuda {

namespace {

constexpr int kMaxDims = 8;

struct CopyIndex {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t ss[kMaxDims];  // src element strides
  int64_t ds[kMaxDims];  // dst element strides
};

// src, dst: any layout described by ix; E: an unsigned integer of the element size.
template <class E>
__global__ void strided_copy_kernel(int64_t n, CopyIndex ix, const E* __restrict__ src, E* __restrict__ dst) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t rem = i, os = 0, od = 0;
    for (int d = ix.nd - 1; d >= 0; --d) {
      const int64_t idx = rem % ix.shape[d];
      rem /= ix.shape[d];
      os += idx * ix.ss[d];
      od += idx * ix.ds[d];
    }
    dst[od] = src[os];
  }
}

CopyIndex make_index(const Shape& shape, const Shape& ss, const Shape& ds) {
  Shape s, a, b;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!s.empty() && a.back() == ss[d] * shape[d] && b.back() == ds[d] * shape[d]) {
      s.back() *= shape[d];
      a.back() = ss[d];
      b.back() = ds[d];
    } else {
      s.push_back(shape[d]);
      a.push_back(ss[d]);
      b.push_back(ds[d]);
    }
  }
  if (s.size() > (size_t)kMaxDims)
    throw std::runtime_error("cuda::copy_strided: more than " + std::to_string(kMaxDims) +
                             " non-mergeable dims in shape " + shape_str(shape));
  CopyIndex ix;
  ix.nd = (int)s.size();
  for (int d = 0; d < ix.nd; ++d) {
    ix.shape[d] = s[d];
    ix.ss[d] = a[d];
    ix.ds[d] = b[d];
  }
  return ix;
}

template <class E>
void launch(int64_t n, const CopyIndex& ix, const Tensor& src, Tensor& dst, cudaStream_t s) {
  strided_copy_kernel<E><<<grid_for(n), kThreads, 0, s>>>(n, ix, static_cast<const E*>(src.raw_data()),
                                                          static_cast<E*>(dst.raw_data()));
  check_launch("strided_copy_kernel");
}

}  // namespace

void copy_strided(const Tensor& src, Tensor& dst) {
  KernelScope scope(dst);
  if (src.shape() != dst.shape() || src.dtype() != dst.dtype() || src.device() != dst.device() ||
      !src.device().is_cuda())
    throw std::invalid_argument("cuda::copy_strided: need same shape, dtype and CUDA device: " + src.str() + " -> " +
                                dst.str());
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (src.is_contiguous() && dst.is_contiguous()) {
    check(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice, scope.stream),
          "copy_strided (packed)");
    return;
  }
  const CopyIndex ix = make_index(dst.shape(), src.strides(), dst.strides());
  switch (dtype_size(dst.dtype())) {
    case 2: launch<uint16_t>(n, ix, src, dst, scope.stream); break;
    case 4: launch<uint32_t>(n, ix, src, dst, scope.stream); break;
    case 8: launch<uint64_t>(n, ix, src, dst, scope.stream); break;
    default: throw std::invalid_argument("cuda::copy_strided: unsupported dtype " + std::string(dtype_name(dst.dtype())));
  }
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy_strided(x, out);
  return out;
}

}  // namespace lm::cuda
