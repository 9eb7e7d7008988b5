// Image resize passes and normalize_channels on the GPU (cuda/kernels.h, "resize"): host sides
// of cuda/resize_kernels.cuh, with the contracts of ops/cpu/resize.h. The op (ops/resize.cpp)
// builds each axis's table on the host (ops/cpu/resize_table.h) and moves it to the device;
// these wrappers check shapes and launch one grid-stride kernel per pass.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/resize_kernels.cuh"

namespace lm::cuda {

namespace {

using namespace resize_kernels;

void require(bool ok, const char* fn, const std::string& why) {
  if (!ok) throw std::invalid_argument(std::string("cuda::") + fn + ": " + why);
}

void check_axis(const char* fn, const ResizeAxis& a, const Tensor& x) {
  require(a.offsets.defined() && a.offsets.dtype() == DType::I64 && a.offsets.numel() == a.dst_size + 1 &&
              a.offsets.device() == x.device() && a.src.defined() && a.src.dtype() == DType::I64 &&
              a.src.device() == x.device() && a.weight.defined() && a.weight.dtype() == x.dtype() &&
              a.weight.device() == x.device() && a.weight.numel() == a.src.numel(),
          fn, "the table must be int64 offsets (dst + 1), int64 src and weights of x's dtype (nnz), on " +
                  x.device().str());
}

}  // namespace

void resize_horizontal_pass(const Tensor& x, int64_t rows, const ResizeAxis& a, Tensor& out) {
  const char* fn = "resize_horizontal_pass";
  check_axis(fn, a, x);
  require(x.is_contiguous() && x.numel() == rows * a.src_size && out.is_contiguous() &&
              out.numel() == rows * a.dst_size && out.dtype() == x.dtype() && out.device() == x.device(),
          fn, "x must be packed (rows, src), out packed (rows, dst), same dtype and device; got " + x.str() + ", " +
                  out.str());
  const int64_t total = rows * a.dst_size;
  if (total == 0) return;
  KernelScope scope(x);
  if (x.dtype() == DType::F32)
    resize_horizontal_kernel<float><<<grid_for(total), kThreads, 0, scope.stream>>>(
        x.data<float>(), rows, a.src_size, a.dst_size, a.offsets.data<int64_t>(), a.src.data<int64_t>(),
        a.weight.data<float>(), out.data<float>());
  else
    resize_horizontal_kernel<double><<<grid_for(total), kThreads, 0, scope.stream>>>(
        x.data<double>(), rows, a.src_size, a.dst_size, a.offsets.data<int64_t>(), a.src.data<int64_t>(),
        a.weight.data<double>(), out.data<double>());
  check_launch("resize_horizontal_kernel");
}

void resize_vertical_pass(const Tensor& x, int64_t planes, int64_t width, const ResizeAxis& a, Tensor& out) {
  const char* fn = "resize_vertical_pass";
  check_axis(fn, a, x);
  require(x.is_contiguous() && x.numel() == planes * a.src_size * width && out.is_contiguous() &&
              out.numel() == planes * a.dst_size * width && out.dtype() == x.dtype() && out.device() == x.device(),
          fn, "x must be packed (planes, src, width), out packed (planes, dst, width), same dtype and device; got " +
                  x.str() + ", " + out.str());
  const int64_t total = planes * a.dst_size * width;
  if (total == 0) return;
  KernelScope scope(x);
  if (x.dtype() == DType::F32)
    resize_vertical_kernel<float><<<grid_for(total), kThreads, 0, scope.stream>>>(
        x.data<float>(), planes, a.src_size, a.dst_size, width, a.offsets.data<int64_t>(), a.src.data<int64_t>(),
        a.weight.data<float>(), out.data<float>());
  else
    resize_vertical_kernel<double><<<grid_for(total), kThreads, 0, scope.stream>>>(
        x.data<double>(), planes, a.src_size, a.dst_size, width, a.offsets.data<int64_t>(), a.src.data<int64_t>(),
        a.weight.data<double>(), out.data<double>());
  check_launch("resize_vertical_kernel");
}

void normalize_channels_forward(const Tensor& x, int64_t planes, int64_t C, int64_t hw, const Tensor& mean,
                                const Tensor& sd, Tensor& out) {
  const int64_t total = planes * hw;
  if (total == 0) return;
  KernelScope scope(x);
  if (x.dtype() == DType::F32)
    normalize_channels_kernel<float><<<grid_for(total), kThreads, 0, scope.stream>>>(
        x.data<float>(), planes, C, hw, mean.data<float>(), sd.data<float>(), out.data<float>());
  else
    normalize_channels_kernel<double><<<grid_for(total), kThreads, 0, scope.stream>>>(
        x.data<double>(), planes, C, hw, mean.data<double>(), sd.data<double>(), out.data<double>());
  check_launch("normalize_channels_kernel");
}

void normalize_channels_backward(const Tensor& grad_y, int64_t planes, int64_t C, int64_t hw, const Tensor& sd,
                                 Tensor& grad_x) {
  const int64_t total = planes * hw;
  if (total == 0) return;
  KernelScope scope(grad_y);
  if (grad_y.dtype() == DType::F32)
    normalize_channels_backward_kernel<float><<<grid_for(total), kThreads, 0, scope.stream>>>(
        grad_y.data<float>(), planes, C, hw, sd.data<float>(), grad_x.data<float>());
  else
    normalize_channels_backward_kernel<double><<<grid_for(total), kThreads, 0, scope.stream>>>(
        grad_y.data<double>(), planes, C, hw, sd.data<double>(), grad_x.data<double>());
  check_launch("normalize_channels_backward_kernel");
}

}  // namespace lm::cuda
