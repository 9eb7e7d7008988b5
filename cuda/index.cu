// index_select on the GPU (cuda/kernels.h, "index"): the gather forward and the deterministic
// scatter-add backward of cuda/index_kernels.cuh, which documents both. The op
// (ops/shape.cpp) checks the indices on the host, uploads them, and for the backward builds
// the CSR inversion (offsets, ks) the kernel reads.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/index_kernels.cuh"
#include "cuda/kernels.h"

namespace lm::cuda {

namespace {

using namespace index_kernels;

void require(bool ok, const char* fn, const std::string& why) {
  if (!ok) throw std::invalid_argument(std::string("cuda::") + fn + ": " + why);
}

void check_index(const char* fn, const Tensor& t, int64_t n, const Tensor& like, const char* what) {
  require(t.defined() && t.dtype() == DType::I64 && t.dim() == 1 && t.numel() == n && t.is_contiguous() &&
              t.device() == like.device(),
          fn, std::string(what) + " must be a packed int64 (" + std::to_string(n) + ") tensor on " + like.device().str());
}

}  // namespace

void index_select_forward(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& idx, Tensor& out) {
  const char* fn = "index_select_forward";
  require(x.device().is_cuda() && x.is_contiguous() && x.numel() == outer * n * inner, fn,
          "x must be a packed CUDA tensor of (outer, n, inner) elements, got " + x.str());
  const int64_t K = idx.defined() ? idx.numel() : 0;
  check_index(fn, idx, K, x, "idx");
  require(out.defined() && out.dtype() == x.dtype() && out.device() == x.device() && out.is_contiguous() &&
              out.numel() == outer * K * inner,
          fn, "out must be packed, of x's dtype, with (outer, K, inner) elements");
  const int64_t total = outer * K * inner;
  if (total == 0) return;
  KernelScope scope(x);
  switch (dtype_size(x.dtype())) {
    case 2:
      gather_rows_kernel<uint16_t><<<grid_for(total), kThreads, 0, scope.stream>>>(
          outer, n, K, inner, idx.data<int64_t>(), static_cast<const uint16_t*>(x.raw_data()),
          static_cast<uint16_t*>(out.raw_data()));
      break;
    case 4:
      gather_rows_kernel<uint32_t><<<grid_for(total), kThreads, 0, scope.stream>>>(
          outer, n, K, inner, idx.data<int64_t>(), static_cast<const uint32_t*>(x.raw_data()),
          static_cast<uint32_t*>(out.raw_data()));
      break;
    case 8:
      gather_rows_kernel<uint64_t><<<grid_for(total), kThreads, 0, scope.stream>>>(
          outer, n, K, inner, idx.data<int64_t>(), static_cast<const uint64_t*>(x.raw_data()),
          static_cast<uint64_t*>(out.raw_data()));
      break;
    default: throw std::invalid_argument(std::string("cuda::") + fn + ": unsupported element size");
  }
  check_launch("gather_rows_kernel");
}

void index_select_backward(const Tensor& grad_out, int64_t outer, int64_t n, int64_t inner, const Tensor& offsets,
                           const Tensor& ks, Tensor& grad_x) {
  const char* fn = "index_select_backward";
  const int64_t K = ks.defined() ? ks.numel() : 0;
  require(grad_out.device().is_cuda() && grad_out.is_contiguous() && grad_out.numel() == outer * K * inner, fn,
          "grad_out must be a packed CUDA tensor of (outer, K, inner) elements, got " + grad_out.str());
  require(grad_out.dtype() == DType::F32 || grad_out.dtype() == DType::F64, fn, "float32 or float64 gradients only");
  check_index(fn, offsets, n + 1, grad_out, "offsets");
  check_index(fn, ks, K, grad_out, "ks");
  require(grad_x.defined() && grad_x.dtype() == grad_out.dtype() && grad_x.device() == grad_out.device() &&
              grad_x.is_contiguous() && grad_x.numel() == outer * n * inner,
          fn, "grad_x must be packed, of grad_out's dtype, with (outer, n, inner) elements");
  const int64_t total = outer * n * inner;
  if (total == 0) return;
  KernelScope scope(grad_out);
  if (grad_out.dtype() == DType::F32)
    scatter_add_rows_kernel<float><<<grid_for(total), kThreads, 0, scope.stream>>>(
        outer, n, K, inner, offsets.data<int64_t>(), ks.data<int64_t>(), grad_out.data<float>(), grad_x.data<float>());
  else
    scatter_add_rows_kernel<double><<<grid_for(total), kThreads, 0, scope.stream>>>(
        outer, n, K, inner, offsets.data<int64_t>(), ks.data<int64_t>(), grad_out.data<double>(),
        grad_x.data<double>());
  check_launch("scatter_add_rows_kernel");
}

}  // namespace lm::cuda
