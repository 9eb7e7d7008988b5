// CPU kernels of the separable image resize and of normalize_channels (ops/cpu/resize.h; math
// in docs/ops/resize.md). OpenMP over rows / (plane, output row) / planes above a work grain;
// every output is a fixed-order sum, so the results do not depend on the thread count.
#include "ops/cpu/resize.h"
#include "ops/cpu/parallel.h"

namespace lm::cpu {

namespace {


template <class T>
void horizontal_typed(const T* __restrict x, int64_t rows, int64_t src_size, int64_t dst_size,
                      const int64_t* __restrict offsets, const int64_t* __restrict src, const T* __restrict w,
                      T* __restrict y) {
  const int64_t nnz = offsets[dst_size];
#pragma omp parallel for schedule(static) if (rows * nnz > kImageParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * src_size;
    T* yr = y + r * dst_size;
    for (int64_t d = 0; d < dst_size; ++d) {
      T acc = T(0);
      for (int64_t e = offsets[d]; e < offsets[d + 1]; ++e) acc += xr[src[e]] * w[e];
      yr[d] = acc;
    }
  }
}

template <class T>
void vertical_typed(const T* __restrict x, int64_t planes, int64_t src_size, int64_t dst_size, int64_t width,
                    const int64_t* __restrict offsets, const int64_t* __restrict src, const T* __restrict w,
                    T* __restrict y) {
  const int64_t nnz = offsets[dst_size];
#pragma omp parallel for collapse(2) schedule(static) if (planes * nnz * width > kImageParallelGrain)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t d = 0; d < dst_size; ++d) {
      T* __restrict yr = y + (p * dst_size + d) * width;
      const T* xp = x + p * src_size * width;
      const int64_t e0 = offsets[d], e1 = offsets[d + 1];
      if (e0 == e1) {  // a source row no output reads (transposed tables of strong downscales)
        for (int64_t j = 0; j < width; ++j) yr[j] = T(0);
        continue;
      }
      {
        const T* __restrict xr = xp + src[e0] * width;
        const T we = w[e0];
        for (int64_t j = 0; j < width; ++j) yr[j] = xr[j] * we;
      }
      for (int64_t e = e0 + 1; e < e1; ++e) {
        const T* __restrict xr = xp + src[e] * width;
        const T we = w[e];
        for (int64_t j = 0; j < width; ++j) yr[j] += xr[j] * we;
      }
    }
}

template <class T>
void normalize_typed(const T* __restrict x, int64_t planes, int64_t C, int64_t hw, const T* mean, const T* sd,
                     T* __restrict y) {
#pragma omp parallel for schedule(static) if (planes * hw > kImageParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    const T m = mean[p % C], s = sd[p % C];
    const T* xp = x + p * hw;
    T* yp = y + p * hw;
    for (int64_t j = 0; j < hw; ++j) yp[j] = (xp[j] - m) / s;
  }
}

template <class T>
void normalize_backward_typed(const T* __restrict g, int64_t planes, int64_t C, int64_t hw, const T* sd,
                              T* __restrict gx) {
#pragma omp parallel for schedule(static) if (planes * hw > kImageParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    const T s = sd[p % C];
    const T* gp = g + p * hw;
    T* dp = gx + p * hw;
    for (int64_t j = 0; j < hw; ++j) dp[j] = gp[j] / s;
  }
}

}  // namespace

void resize_horizontal_pass(const Tensor& x, int64_t rows, const ResizeAxis& a, Tensor& out) {
  if (rows * a.dst_size == 0) return;
  if (x.dtype() == DType::F32)
    horizontal_typed<float>(x.data<float>(), rows, a.src_size, a.dst_size, a.offsets.data<int64_t>(),
                            a.src.data<int64_t>(), a.weight.data<float>(), out.data<float>());
  else
    horizontal_typed<double>(x.data<double>(), rows, a.src_size, a.dst_size, a.offsets.data<int64_t>(),
                             a.src.data<int64_t>(), a.weight.data<double>(), out.data<double>());
}

void resize_vertical_pass(const Tensor& x, int64_t planes, int64_t width, const ResizeAxis& a, Tensor& out) {
  if (planes * a.dst_size * width == 0) return;
  if (x.dtype() == DType::F32)
    vertical_typed<float>(x.data<float>(), planes, a.src_size, a.dst_size, width, a.offsets.data<int64_t>(),
                          a.src.data<int64_t>(), a.weight.data<float>(), out.data<float>());
  else
    vertical_typed<double>(x.data<double>(), planes, a.src_size, a.dst_size, width, a.offsets.data<int64_t>(),
                           a.src.data<int64_t>(), a.weight.data<double>(), out.data<double>());
}

void normalize_channels_forward(const Tensor& x, int64_t planes, int64_t C, int64_t hw, const Tensor& mean,
                                const Tensor& sd, Tensor& out) {
  if (planes * hw == 0) return;
  if (x.dtype() == DType::F32)
    normalize_typed<float>(x.data<float>(), planes, C, hw, mean.data<float>(), sd.data<float>(), out.data<float>());
  else
    normalize_typed<double>(x.data<double>(), planes, C, hw, mean.data<double>(), sd.data<double>(),
                            out.data<double>());
}

void normalize_channels_backward(const Tensor& grad_y, int64_t planes, int64_t C, int64_t hw, const Tensor& sd,
                                 Tensor& grad_x) {
  if (planes * hw == 0) return;
  if (grad_y.dtype() == DType::F32)
    normalize_backward_typed<float>(grad_y.data<float>(), planes, C, hw, sd.data<float>(), grad_x.data<float>());
  else
    normalize_backward_typed<double>(grad_y.data<double>(), planes, C, hw, sd.data<double>(), grad_x.data<double>());
}

}  // namespace lm::cpu
