// Convolution and adaptive-pooling kernels of cuda/conv2d.cu (device code only; host side,
// the GEMM calls and launch sizes there; math in docs/ops/conv2d.md). Self-contained (CUDA
// headers, cuda/device_math.cuh, cuda/block_reduce.cuh) so that tests/test_cuda_emulated.cpp
// also runs them on the CPU (tests/cuda_emulator.h).
//
// Every kernel is deterministic (no atomics): col2im and the input gradients gather, for each
// input element, the taps that read it in (kh, kw) order, the order in which the CPU kernels
// (ops/cpu/conv2d.cpp) scatter them; sums over many terms are block reductions in float64.
// Grid-stride loops throughout: any grid size is correct.
#pragma once
#include <cstdint>

#include "block_reduce.cuh"
#include "device_math.cuh"

namespace LM_CUDA_NS::conv2d_kernels {

// The geometry of one convolution (ops/cpu/conv2d.h's Conv2dGeometry, as plain data).
struct ConvGeom {
  int64_t N, C_in, H, W, C_out, KH, KW, OH, OW, stride_h, stride_w, pad_top, pad_left, groups;
};

__device__ __forceinline__ int64_t global_thread() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t global_stride() { return (int64_t)blockDim.x * gridDim.x; }

// The output position o with o*s - p + k == i, or -1 when there is none in [0, out).
__device__ __forceinline__ int64_t tap_output(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out) {
  const int64_t t = i + p - k;
  if (t < 0 || t % s != 0) return -1;
  const int64_t o = t / s;
  return o < out ? o : -1;
}

// One image. x: (C, H, W) packed; col: (C*KH*KW, OH*OW) packed, row (c, kh, kw), column (oh, ow):
// col = x[c, oh*sh - pt + kh, ow*sw - pl + kw], 0 outside the image. A thread per col entry.
template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, int64_t C, ConvGeom g, T* __restrict__ col) {
  const int64_t P = g.OH * g.OW, total = C * g.KH * g.KW * P;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t p = i % P, r = i / P;
    const int64_t oh = p / g.OW, ow = p % g.OW;
    const int64_t kw = r % g.KW, kh = (r / g.KW) % g.KH, c = r / (g.KH * g.KW);
    const int64_t ih = oh * g.stride_h - g.pad_top + kh, iw = ow * g.stride_w - g.pad_left + kw;
    col[i] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? x[(c * g.H + ih) * g.W + iw] : (T)0;
  }
}

// The adjoint of im2col, one image. col: (C*KH*KW, OH*OW) packed; x: (C, H, W) packed,
// overwritten: x[c, ih, iw] = sum over the (kh, kw) whose tap reads it of col[(c, kh, kw), (oh, ow)].
// A thread per x element.
template <class T>
__global__ void col2im_kernel(const T* __restrict__ col, int64_t C, ConvGeom g, T* __restrict__ x) {
  const int64_t P = g.OH * g.OW, total = C * g.H * g.W;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t iw = i % g.W, ih = (i / g.W) % g.H, c = i / (g.H * g.W);
    T acc = 0;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t oh = tap_output(ih, kh, g.stride_h, g.pad_top, g.OH);
      if (oh < 0) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t ow = tap_output(iw, kw, g.stride_w, g.pad_left, g.OW);
        if (ow >= 0) acc += col[((c * g.KH + kh) * g.KW + kw) * P + oh * g.OW + ow];
      }
    }
    x[i] = acc;
  }
}

// out: (N, C, P) packed; out[n, c, p] += bias[c]. A thread per element.
template <class T>
__global__ void bias_add_kernel(T* __restrict__ out, const T* __restrict__ bias, int64_t N, int64_t C, int64_t P) {
  const int64_t total = N * C * P;
  for (int64_t i = global_thread(); i < total; i += global_stride()) out[i] += bias[(i / P) % C];
}

// dst, src: (n) packed; dst += src (grad_weight summed over images, in image order).
template <class T>
__global__ void accumulate_kernel(T* __restrict__ dst, const T* __restrict__ src, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += global_stride()) dst[i] += src[i];
}

// g: (N, C, P) packed; gb: (C): gb[c] = sum over n, p of g[n, c, p], float64. One block per
// channel (grid-stride over channels), a block reduction over its N * P terms.
template <class T>
__global__ void bias_grad_kernel(const T* __restrict__ g, int64_t N, int64_t C, int64_t P, T* __restrict__ gb) {
  __shared__ double sd[33];
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double s = 0;
    for (int64_t j = threadIdx.x; j < N * P; j += blockDim.x) s += (double)g[((j / P) * C + c) * P + j % P];
    s = block_reduce(s, SumOp{}, 0.0, sd);
    if (threadIdx.x == 0) gb[c] = (T)s;
  }
}

// Depthwise forward (groups == C_in == C_out). x: (N, C, H, W); w: (C, 1, KH, KW); bias: (C) or
// nullptr; out: (N, C, OH, OW); all packed. A thread per output element, taps in (kh, kw) order.
template <class T>
__global__ void depthwise_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                         ConvGeom g, T* __restrict__ out) {
  const int64_t C = g.C_in, total = g.N * C * g.OH * g.OW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t ow = i % g.OW, oh = (i / g.OW) % g.OH, nc = i / (g.OH * g.OW), c = nc % C;
    const T* xp = x + nc * g.H * g.W;
    const T* wp = w + c * g.KH * g.KW;
    T acc = bias ? bias[c] : (T)0;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.stride_h - g.pad_top + kh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = ow * g.stride_w - g.pad_left + kw;
        if (iw >= 0 && iw < g.W) acc += wp[kh * g.KW + kw] * xp[ih * g.W + iw];
      }
    }
    out[i] = acc;
  }
}

// Depthwise grad_x. gout: (N, C, OH, OW); w: (C, 1, KH, KW); gx: (N, C, H, W), overwritten;
// all packed. A thread per input element, gathering its taps in (kh, kw) order.
template <class T>
__global__ void depthwise_backward_x_kernel(const T* __restrict__ gout, const T* __restrict__ w, ConvGeom g,
                                            T* __restrict__ gx) {
  const int64_t C = g.C_in, total = g.N * C * g.H * g.W;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t iw = i % g.W, ih = (i / g.W) % g.H, nc = i / (g.H * g.W), c = nc % C;
    const T* gp = gout + nc * g.OH * g.OW;
    const T* wp = w + c * g.KH * g.KW;
    T acc = 0;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t oh = tap_output(ih, kh, g.stride_h, g.pad_top, g.OH);
      if (oh < 0) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t ow = tap_output(iw, kw, g.stride_w, g.pad_left, g.OW);
        if (ow >= 0) acc += wp[kh * g.KW + kw] * gp[oh * g.OW + ow];
      }
    }
    gx[i] = acc;
  }
}

// Depthwise grad_weight. gout: (N, C, OH, OW); x: (N, C, H, W); gw: (C, 1, KH, KW), overwritten;
// all packed. One block per (c, kh, kw) (grid-stride), a float64 block reduction over n, oh, ow.
template <class T>
__global__ void depthwise_backward_w_kernel(const T* __restrict__ gout, const T* __restrict__ x, ConvGeom g,
                                            T* __restrict__ gw) {
  __shared__ double sd[33];
  const int64_t C = g.C_in, KK = g.KH * g.KW, P = g.OH * g.OW;
  for (int64_t b = blockIdx.x; b < C * KK; b += gridDim.x) {
    const int64_t c = b / KK, kh = (b % KK) / g.KW, kw = b % g.KW;
    double s = 0;
    for (int64_t j = threadIdx.x; j < g.N * P; j += blockDim.x) {
      const int64_t n = j / P, oh = (j % P) / g.OW, ow = j % g.OW;
      const int64_t ih = oh * g.stride_h - g.pad_top + kh, iw = ow * g.stride_w - g.pad_left + kw;
      if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
        s += (double)gout[(n * C + c) * P + oh * g.OW + ow] * (double)x[((n * C + c) * g.H + ih) * g.W + iw];
    }
    s = block_reduce(s, SumOp{}, 0.0, sd);
    if (threadIdx.x == 0) gw[b] = (T)s;
  }
}

// PyTorch's adaptive bin [start, end) of output index i (`in` inputs, `out` outputs).
__device__ __forceinline__ int64_t bin_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
__device__ __forceinline__ int64_t bin_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// x: (rows, H, W) packed; out: (rows, OH, OW) packed: the mean of each bin (float64 sum).
// A thread per output element.
template <class T>
__global__ void adaptive_avg_pool2d_forward_kernel(const T* __restrict__ x, int64_t rows, int64_t H, int64_t W,
                                                   int64_t OH, int64_t OW, T* __restrict__ out) {
  const int64_t total = rows * OH * OW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t j = i % OW, oi = (i / OW) % OH, r = i / (OH * OW);
    const int64_t h0 = bin_start(oi, H, OH), h1 = bin_end(oi, H, OH), w0 = bin_start(j, W, OW), w1 = bin_end(j, W, OW);
    const T* xp = x + r * H * W;
    double s = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) s += (double)xp[h * W + w];
    out[i] = (T)(s / (double)((h1 - h0) * (w1 - w0)));
  }
}

// gout: (rows, OH, OW) packed; gx: (rows, H, W) packed, overwritten: the sum of g / |bin| over
// the bins holding (h, w), bins in row-major order. Bins holding row h: oi in
// [floor(h OH / H), ceil((h + 1) OH / H) - 1]. A thread per input element.
template <class T>
__global__ void adaptive_avg_pool2d_backward_kernel(const T* __restrict__ gout, int64_t rows, int64_t H, int64_t W,
                                                    int64_t OH, int64_t OW, T* __restrict__ gx) {
  const int64_t total = rows * H * W;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t w = i % W, h = (i / W) % H, r = i / (H * W);
    const int64_t i0 = (h * OH) / H, i1 = ((h + 1) * OH + H - 1) / H;  // candidate bins [i0, i1)
    const int64_t j0 = (w * OW) / W, j1 = ((w + 1) * OW + W - 1) / W;
    const T* gp = gout + r * OH * OW;
    T acc = 0;
    for (int64_t oi = i0; oi < i1 && oi < OH; ++oi) {
      const int64_t h0 = bin_start(oi, H, OH), h1 = bin_end(oi, H, OH);
      if (h < h0 || h >= h1) continue;
      for (int64_t oj = j0; oj < j1 && oj < OW; ++oj) {
        const int64_t w0 = bin_start(oj, W, OW), w1 = bin_end(oj, W, OW);
        if (w < w0 || w >= w1) continue;
        acc += (T)((double)gp[oi * OW + oj] / (double)((h1 - h0) * (w1 - w0)));
      }
    }
    gx[i] = acc;
  }
}

}  // namespace LM_CUDA_NS::conv2d_kernels
