// CUDA conv2d and adaptive average pooling, forward and backward (ops/cpu/conv2d.h,
// ops/cpu/pool.h; math in docs/ops/conv2d.md). The CPU kernels' three paths, on the GPU:
//   - pointwise (1x1, stride 1, no padding, one group): one GEMM per image (cuda/gemm.h);
//   - depthwise: direct kernels, a thread per output (forward) or input (grad_x) element, a
//     block per weight tap (grad_weight);
//   - everything else: im2col kernel + one GEMM per group, per image; grad_x by GEMM with the
//     transposed weight + col2im kernel; grad_weight by GEMM of grad_out with im2col, one image
//     at a time, summed in image order (cuda::gemm overwrites C, so images after the first go
//     to a workspace that accumulate_kernel adds).
// Kernels: cuda/conv2d_kernels.cuh. No atomics anywhere: the same inputs give the same bits.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/conv2d_kernels.cuh"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "tensor/op_kinds.h"

namespace lm::cuda {

namespace {

using namespace conv2d_kernels;

ConvGeom geom(const Conv2dGeometry& g) {
  return ConvGeom{g.N,  g.C_in,  g.H,        g.W,        g.C_out,   g.KH,     g.KW,
                  g.OH, g.OW,    g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.groups};
}

template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
void forward_typed(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& g,
                   Tensor& out, cudaStream_t s) {
  const ConvGeom cg = geom(g);
  const T* xp = x.data<T>();
  const T* wp = weight.data<T>();
  const T* bp = data_or_null<T>(bias);
  T* op = out.data<T>();
  const int64_t P = g.OH * g.OW, HW = g.H * g.W;
  if (g.depthwise()) {
    depthwise_forward_kernel<T><<<grid_for(g.N * g.C_out * P), kThreads, 0, s>>>(xp, wp, bp, cg, op);
    check_launch("depthwise_forward_kernel");
    return;
  }
  const Device dev = x.device();
  const DType dt = x.dtype();
  const int64_t Cog = g.C_out / g.groups, Kg = (g.C_in / g.groups) * g.KH * g.KW;
  Tensor col = g.pointwise() ? Tensor() : Tensor::empty({g.C_in * g.KH * g.KW, P}, dt, dev);
  for (int64_t n = 0; n < g.N; ++n) {
    const T* xn = xp + n * g.C_in * HW;
    T* on = op + n * g.C_out * P;
    if (g.pointwise()) {  // out[n] (C_out, P) = W (C_out, C_in) x[n] (C_in, P)
      gemm(dev, dt, false, false, g.C_out, P, g.C_in, wp, g.C_in, xn, P, on, P);
      continue;
    }
    T* cp = col.data<T>();
    im2col_kernel<T><<<grid_for(g.C_in * g.KH * g.KW * P), kThreads, 0, s>>>(xn, g.C_in, cg, cp);
    check_launch("im2col_kernel");
    for (int64_t gr = 0; gr < g.groups; ++gr)
      gemm(dev, dt, false, false, Cog, P, Kg, wp + gr * Cog * Kg, Kg, cp + gr * Kg * P, P, on + gr * Cog * P, P);
  }
  if (bp && g.N > 0) {
    bias_add_kernel<T><<<grid_for(g.N * g.C_out * P), kThreads, 0, s>>>(op, bp, g.N, g.C_out, P);
    check_launch("bias_add_kernel");
  }
}

template <class T>
void backward_typed(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Conv2dGeometry& g,
                    Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias, cudaStream_t s) {
  const ConvGeom cg = geom(g);
  const T* gp = grad_out.data<T>();
  const T* xp = data_or_null<T>(x);
  const T* wp = data_or_null<T>(weight);
  T* gx = data_or_null<T>(grad_x);
  T* gw = data_or_null<T>(grad_weight);
  T* gb = data_or_null<T>(grad_bias);
  const int64_t P = g.OH * g.OW, HW = g.H * g.W;
  const int64_t Cog = g.C_out / g.groups, Kg = (g.C_in / g.groups) * g.KH * g.KW;
  const Device dev = grad_out.device();
  const DType dt = grad_out.dtype();
  if (gb) {
    bias_grad_kernel<T><<<grid_rows(g.C_out), kThreads, 0, s>>>(gp, g.N, g.C_out, P, gb);
    check_launch("bias_grad_kernel");
  }
  if (g.depthwise()) {
    if (gx && g.N > 0) {
      depthwise_backward_x_kernel<T><<<grid_for(g.N * g.C_in * HW), kThreads, 0, s>>>(gp, wp, cg, gx);
      check_launch("depthwise_backward_x_kernel");
    }
    if (gw) {
      depthwise_backward_w_kernel<T><<<grid_rows(g.C_in * g.KH * g.KW), kThreads, 0, s>>>(gp, xp, cg, gw);
      check_launch("depthwise_backward_w_kernel");
    }
    return;
  }
  const bool pointwise = g.pointwise();
  Tensor col = pointwise ? Tensor() : Tensor::empty({g.C_in * g.KH * g.KW, P}, dt, dev);
  if (gx) {
    for (int64_t n = 0; n < g.N; ++n) {
      const T* gn = gp + n * g.C_out * P;
      T* gxn = gx + n * g.C_in * HW;
      if (pointwise) {  // grad_x[n] (C_in, P) = W^T (C_in, C_out) grad_out[n] (C_out, P)
        gemm(dev, dt, true, false, g.C_in, P, g.C_out, wp, g.C_in, gn, P, gxn, P);
        continue;
      }
      T* cp = col.data<T>();
      for (int64_t gr = 0; gr < g.groups; ++gr)  // grad col[group] (Kg, P) = W[group]^T grad_out[n, group]
        gemm(dev, dt, true, false, Kg, P, Cog, wp + gr * Cog * Kg, Kg, gn + gr * Cog * P, P, cp + gr * Kg * P, P);
      col2im_kernel<T><<<grid_for(g.C_in * HW), kThreads, 0, s>>>(cp, g.C_in, cg, gxn);
      check_launch("col2im_kernel");
    }
  }
  if (gw) {
    const int64_t wn = g.C_out * Kg;
    if (g.N == 0) {
      check(cudaMemsetAsync(gw, 0, (size_t)wn * sizeof(T), s), "conv2d_backward (memset)");
      return;
    }
    Tensor part = g.N > 1 ? Tensor::empty({wn}, dt, dev) : Tensor();
    for (int64_t n = 0; n < g.N; ++n) {
      const T* gn = gp + n * g.C_out * P;
      T* dst = n == 0 ? gw : part.data<T>();
      if (pointwise) {  // (C_out, C_in) = grad_out[n] (C_out, P) x[n]^T (P, C_in)
        gemm(dev, dt, false, true, g.C_out, g.C_in, P, gn, P, xp + n * g.C_in * HW, P, dst, g.C_in);
      } else {
        T* cp = col.data<T>();
        im2col_kernel<T><<<grid_for(g.C_in * g.KH * g.KW * P), kThreads, 0, s>>>(xp + n * g.C_in * HW, g.C_in, cg, cp);
        check_launch("im2col_kernel");
        for (int64_t gr = 0; gr < g.groups; ++gr)  // (Cog, Kg) = grad_out[n, group] col[group]^T
          gemm(dev, dt, false, true, Cog, Kg, P, gn + gr * Cog * P, P, cp + gr * Kg * P, P, dst + gr * Cog * Kg, Kg);
      }
      if (n > 0) {
        accumulate_kernel<T><<<grid_for(wn), kThreads, 0, s>>>(gw, dst, wn);
        check_launch("accumulate_kernel");
      }
    }
  }
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& g,
                    Tensor& out) {
  KernelScope scope(x);
  if (g.N == 0) return;
  if (x.dtype() == DType::F32) forward_typed<float>(x, weight, bias, g, out, scope.stream);
  else forward_typed<double>(x, weight, bias, g, out, scope.stream);
}

void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Conv2dGeometry& g,
                     Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias) {
  KernelScope scope(grad_out);
  if (grad_out.dtype() == DType::F32)
    backward_typed<float>(grad_out, x, weight, g, grad_x, grad_weight, grad_bias, scope.stream);
  else
    backward_typed<double>(grad_out, x, weight, g, grad_x, grad_weight, grad_bias, scope.stream);
}

void adaptive_avg_pool2d_forward(const Tensor& x, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                 Tensor& out) {
  KernelScope scope(x);
  const int64_t n = rows * OH * OW;
  if (n == 0) return;
  if (x.dtype() == DType::F32)
    adaptive_avg_pool2d_forward_kernel<float><<<grid_for(n), kThreads, 0, scope.stream>>>(x.data<float>(), rows, H, W,
                                                                                           OH, OW, out.data<float>());
  else
    adaptive_avg_pool2d_forward_kernel<double><<<grid_for(n), kThreads, 0, scope.stream>>>(
        x.data<double>(), rows, H, W, OH, OW, out.data<double>());
  check_launch("adaptive_avg_pool2d_forward_kernel");
}

void adaptive_avg_pool2d_backward(const Tensor& grad_out, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                  Tensor& grad_x) {
  KernelScope scope(grad_out);
  const int64_t n = rows * H * W;
  if (n == 0) return;
  if (grad_out.dtype() == DType::F32)
    adaptive_avg_pool2d_backward_kernel<float><<<grid_for(n), kThreads, 0, scope.stream>>>(
        grad_out.data<float>(), rows, H, W, OH, OW, grad_x.data<float>());
  else
    adaptive_avg_pool2d_backward_kernel<double><<<grid_for(n), kThreads, 0, scope.stream>>>(
        grad_out.data<double>(), rows, H, W, OH, OW, grad_x.data<double>());
  check_launch("adaptive_avg_pool2d_backward_kernel");
}

}  // namespace lm::cuda
