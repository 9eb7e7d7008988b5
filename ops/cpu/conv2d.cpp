// CPU conv2d kernels, forward and backward (ops/cpu/conv2d.h; derivations in
// docs/ops/conv2d.md). Three paths:
//   - pointwise (1x1, stride 1, no padding, one group): out[n] = W x[n], one GEMM per image;
//   - depthwise (groups == C_in == C_out): direct loops, (n, c) planes in parallel, the inner
//     loop over output columns written so that the compiler vectorises it (stride 1 and 2
//     specialised);
//   - everything else: im2col per image, then one GEMM per group (the project's SGEMM /
//     DGEMM, ops/cpu/gemm.h); the backward maps the GEMM's gradient back with col2im.
// Images run one after another with the GEMM threaded inside, except when a per-image GEMM is
// too small for the GEMM's own threads (ops/cpu/gemm.h: gemm_threads): then images run in
// parallel, each GEMM single-threaded. Sums over images (grad_weight, grad_bias) always run in
// image order: the same bits for any thread count.
#include "ops/cpu/conv2d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/cpu/gemm.h"
#include "ops/cpu/parallel.h"

namespace lm::cpu {

namespace {


template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// C(M, N) = op(A) op(B) + beta C, row-major (ops/cpu/gemm.h), float or double.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc) {
  sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B,
          int64_t ldb, double beta, double* C, int64_t ldc) {
  dgemm(ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

// The output positions o in [lo, hi) of one axis whose input position o*s - p + k lies in
// [0, in): lo = ceil((p - k) / s), hi = floor((in - 1 + p - k) / s) + 1, clipped to [0, out].
inline void valid_range(int64_t in, int64_t out, int64_t s, int64_t p, int64_t k, int64_t& lo, int64_t& hi) {
  const int64_t a = p - k, b = in - 1 + p - k;
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = b < 0 ? 0 : std::min(out, b / s + 1);
  if (lo > hi) lo = hi;
}

// dst[o] (+)= w * src[o*s + off] for o in [lo, hi); the stride-1 and stride-2 loops are
// written out so that they vectorise.
template <class T, bool Scatter>
inline void axpy_row(T w, const T* __restrict__ a, T* __restrict__ b, int64_t lo, int64_t hi, int64_t s, int64_t off) {
  // Gather (Scatter == false): b[o] += w * a[o*s + off].  Scatter: b[o*s + off] += w * a[o].
  if (s == 1) {
#pragma omp simd
    for (int64_t o = lo; o < hi; ++o) {
      if constexpr (Scatter) b[o + off] += w * a[o];
      else b[o] += w * a[o + off];
    }
  } else if (s == 2) {
#pragma omp simd
    for (int64_t o = lo; o < hi; ++o) {
      if constexpr (Scatter) b[2 * o + off] += w * a[o];
      else b[o] += w * a[2 * o + off];
    }
  } else {
    for (int64_t o = lo; o < hi; ++o) {
      if constexpr (Scatter) b[o * s + off] += w * a[o];
      else b[o] += w * a[o * s + off];
    }
  }
}

// sum_o g[o] * x[o*s + off] over [lo, hi), accumulated in T (one output row).
template <class T>
inline T dot_row(const T* __restrict__ g, const T* __restrict__ x, int64_t lo, int64_t hi, int64_t s, int64_t off) {
  T acc = 0;
  if (s == 1) {
#pragma omp simd reduction(+ : acc)
    for (int64_t o = lo; o < hi; ++o) acc += g[o] * x[o + off];
  } else if (s == 2) {
#pragma omp simd reduction(+ : acc)
    for (int64_t o = lo; o < hi; ++o) acc += g[o] * x[2 * o + off];
  } else {
    for (int64_t o = lo; o < hi; ++o) acc += g[o] * x[o * s + off];
  }
  return acc;
}

// out: (N, C_out, P) packed; every (n, co) row set to bias[co].
template <class T>
void fill_bias(const T* bias, int64_t N, int64_t C, int64_t P, T* out) {
#pragma omp parallel for schedule(static) if (N * C * P > kImageParallelGrain)
  for (int64_t nc = 0; nc < N * C; ++nc) std::fill(out + nc * P, out + (nc + 1) * P, bias[nc % C]);
}

// grad_bias[c] = sum over n, p of g[n, c, p]; g: (N, C, P) packed; float64 sums in image order.
template <class T>
void bias_grad(const T* g, int64_t N, int64_t C, int64_t P, T* gb) {
#pragma omp parallel for schedule(static) if (N * C * P > kImageParallelGrain)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* r = g + (n * C + c) * P;
      T part = 0;
#pragma omp simd reduction(+ : part)
      for (int64_t p = 0; p < P; ++p) part += r[p];
      s += (double)part;
    }
    gb[c] = (T)s;
  }
}

// Runs image(n, col) for every image n, col a scratch buffer of col_size elements: images in
// parallel (a buffer per thread) when one image's GEMM (M x N x K) is too small for sgemm's own
// threads, else one after another with the GEMM threaded.
template <class T, class Image>
void for_each_image(int64_t N, size_t col_size, int64_t M, int64_t Ncols, int64_t K, const Image& image) {
  if (N > 1 && gemm_threads(M, Ncols, K) <= 1) {
#pragma omp parallel
    {
      std::vector<T> col(col_size);
#pragma omp for schedule(static)
      for (int64_t n = 0; n < N; ++n) image(n, col.data());
    }
  } else {
    std::vector<T> col(col_size);
    for (int64_t n = 0; n < N; ++n) image(n, col.data());
  }
}

template <class T>
void forward_typed(const T* x, const T* w, const T* bias, const Conv2dGeometry& g, T* out) {
  if (g.depthwise()) return depthwise_forward(x, w, bias, g, out);
  const int64_t P = g.OH * g.OW, HW = g.H * g.W;
  const int64_t Cig = g.C_in / g.groups, Cog = g.C_out / g.groups, Kg = Cig * g.KH * g.KW;
  const T beta = bias ? (T)1 : (T)0;
  if (bias) fill_bias(bias, g.N, g.C_out, P, out);
  const bool pointwise = g.pointwise();
  // One image: out[n, group] (Cog, P) = W[group] (Cog, Kg) x col[group] (Kg, P).
  auto image = [&](int64_t n, T* col) {
    const T* xn = x + n * g.C_in * HW;
    T* on = out + n * g.C_out * P;
    if (pointwise) return gemm(false, false, g.C_out, P, g.C_in, w, g.C_in, xn, P, beta, on, P);
    im2col(xn, g.C_in, g, col);
    for (int64_t gr = 0; gr < g.groups; ++gr)
      gemm(false, false, Cog, P, Kg, w + gr * Cog * Kg, Kg, col + gr * Kg * P, P, beta, on + gr * Cog * P, P);
  };
  const size_t col_size = pointwise ? 0 : (size_t)(g.C_in * g.KH * g.KW * P);
  for_each_image<T>(g.N, col_size, Cog, P, Kg, image);
}

template <class T>
void backward_typed(const T* gout, const T* x, const T* w, const Conv2dGeometry& g, T* gx, T* gw, T* gb) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W;
  const int64_t Cig = g.C_in / g.groups, Cog = g.C_out / g.groups, Kg = Cig * g.KH * g.KW;
  if (gb) bias_grad(gout, g.N, g.C_out, P, gb);
  if (g.depthwise()) return depthwise_backward(gout, x, w, g, gx, gw);
  const bool pointwise = g.pointwise();
  const size_t col_size = pointwise ? 0 : (size_t)(g.C_in * g.KH * g.KW * P);
  if (gw && g.N == 0) std::fill(gw, gw + g.C_out * Kg, (T)0);
  if (gx) {
    // grad col[group] (Kg, P) = W[group]^T (Kg, Cog) x grad_out[n, group] (Cog, P); col2im.
    auto image = [&](int64_t n, T* col) {
      const T* gn = gout + n * g.C_out * P;
      T* gxn = gx + n * g.C_in * HW;
      if (pointwise) return gemm(true, false, g.C_in, P, g.C_out, w, g.C_in, gn, P, (T)0, gxn, P);
      for (int64_t gr = 0; gr < g.groups; ++gr)
        gemm(true, false, Kg, P, Cog, w + gr * Cog * Kg, Kg, gn + gr * Cog * P, P, (T)0, col + gr * Kg * P, P);
      col2im(col, g.C_in, g, gxn);
    };
    for_each_image<T>(g.N, col_size, Cog, P, Kg, image);
  }
  if (gw) {
    // grad W[group] (Cog, Kg) += grad_out[n, group] (Cog, P) x col[group]^T (P, Kg), n in order.
    std::vector<T> col(col_size);
    for (int64_t n = 0; n < g.N; ++n) {
      const T* gn = gout + n * g.C_out * P;
      const T* xn = x + n * g.C_in * HW;
      const T beta = n == 0 ? (T)0 : (T)1;
      if (pointwise) {
        gemm(false, true, g.C_out, g.C_in, P, gn, P, xn, P, beta, gw, g.C_in);
        continue;
      }
      im2col(xn, g.C_in, g, col.data());
      for (int64_t gr = 0; gr < g.groups; ++gr)
        gemm(false, true, Cog, Kg, P, gn + gr * Cog * P, P, col.data() + gr * Kg * P, P, beta, gw + gr * Cog * Kg,
             Kg);
    }
  }
}

}  // namespace

template <class T>
void im2col(const T* x, int64_t C, const Conv2dGeometry& g, T* col) {
  const int64_t P = g.OH * g.OW, rows = C * g.KH * g.KW;
#pragma omp parallel for schedule(static) if (rows * P > kImageParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / (g.KH * g.KW), kh = (r / g.KW) % g.KH, kw = r % g.KW;
    const T* xc = x + c * g.H * g.W;
    T* dst = col + r * P;
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    valid_range(g.H, g.OH, g.stride_h, g.pad_top, kh, oh_lo, oh_hi);
    valid_range(g.W, g.OW, g.stride_w, g.pad_left, kw, ow_lo, ow_hi);
    std::fill(dst, dst + oh_lo * g.OW, (T)0);
    std::fill(dst + oh_hi * g.OW, dst + P, (T)0);
    const int64_t sw = g.stride_w, off = kw - g.pad_left;
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
      const T* __restrict__ xr = xc + (oh * g.stride_h - g.pad_top + kh) * g.W;
      T* __restrict__ d = dst + oh * g.OW;
      std::fill(d, d + ow_lo, (T)0);
      if (sw == 1) {
        std::memcpy(d + ow_lo, xr + ow_lo + off, (size_t)(ow_hi - ow_lo) * sizeof(T));
      } else {
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) d[ow] = xr[ow * sw + off];
      }
      std::fill(d + ow_hi, d + g.OW, (T)0);
    }
  }
}

template <class T>
void col2im(const T* col, int64_t C, const Conv2dGeometry& g, T* x) {
  const int64_t P = g.OH * g.OW;
  // Each channel's plane gets only its own KH * KW rows of col: channels run in parallel.
#pragma omp parallel for schedule(static) if (C * g.KH * g.KW * P > kImageParallelGrain)
  for (int64_t c = 0; c < C; ++c) {
    T* xc = x + c * g.H * g.W;
    std::fill(xc, xc + g.H * g.W, (T)0);
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* src = col + ((c * g.KH + kh) * g.KW + kw) * P;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
        valid_range(g.H, g.OH, g.stride_h, g.pad_top, kh, oh_lo, oh_hi);
        valid_range(g.W, g.OW, g.stride_w, g.pad_left, kw, ow_lo, ow_hi);
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
          axpy_row<T, true>((T)1, src + oh * g.OW, xc + (oh * g.stride_h - g.pad_top + kh) * g.W, ow_lo, ow_hi,
                            g.stride_w, kw - g.pad_left);
      }
  }
}

template <class T>
void depthwise_forward(const T* x, const T* weight, const T* bias, const Conv2dGeometry& g, T* out) {
  const int64_t C = g.C_in, KK = g.KH * g.KW;
  const int64_t NC = g.N * C;
#pragma omp parallel for schedule(static) if (NC * g.OH * g.OW * KK > kImageParallelGrain)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const int64_t c = nc % C;
    const T* xp = x + nc * g.H * g.W;
    const T* wp = weight + c * KK;
    T* op = out + nc * g.OH * g.OW;
    std::fill(op, op + g.OH * g.OW, bias ? bias[c] : (T)0);
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      int64_t oh_lo, oh_hi;
      valid_range(g.H, g.OH, g.stride_h, g.pad_top, kh, oh_lo, oh_hi);
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        int64_t ow_lo, ow_hi;
        valid_range(g.W, g.OW, g.stride_w, g.pad_left, kw, ow_lo, ow_hi);
        const T wv = wp[kh * g.KW + kw];
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
          axpy_row<T, false>(wv, xp + (oh * g.stride_h - g.pad_top + kh) * g.W, op + oh * g.OW, ow_lo, ow_hi,
                             g.stride_w, kw - g.pad_left);
      }
    }
  }
}

template <class T>
void depthwise_backward(const T* grad_out, const T* x, const T* weight, const Conv2dGeometry& g, T* grad_x,
                        T* grad_weight) {
  const int64_t C = g.C_in, KK = g.KH * g.KW, HW = g.H * g.W, P = g.OH * g.OW;
  const int64_t NC = g.N * C;
  const bool parallel = NC * P * KK > kImageParallelGrain;
  if (grad_x) {
    // grad_x[n, c, ih, iw] = sum of w[c, kh, kw] * grad_out[n, c, oh, ow] over the taps that read it.
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t nc = 0; nc < NC; ++nc) {
      const int64_t c = nc % C;
      const T* gp = grad_out + nc * P;
      const T* wp = weight + c * KK;
      T* gxp = grad_x + nc * HW;
      std::fill(gxp, gxp + HW, (T)0);
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        int64_t oh_lo, oh_hi;
        valid_range(g.H, g.OH, g.stride_h, g.pad_top, kh, oh_lo, oh_hi);
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          int64_t ow_lo, ow_hi;
          valid_range(g.W, g.OW, g.stride_w, g.pad_left, kw, ow_lo, ow_hi);
          const T wv = wp[kh * g.KW + kw];
          for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
            axpy_row<T, true>(wv, gp + oh * g.OW, gxp + (oh * g.stride_h - g.pad_top + kh) * g.W, ow_lo, ow_hi,
                              g.stride_w, kw - g.pad_left);
        }
      }
    }
  }
  if (grad_weight) {
    // grad_w[c, kh, kw] = sum over n, oh, ow of grad_out[n, c, oh, ow] * x[n, c, ih, iw]:
    // channels in parallel, images in order, float64 accumulation per tap.
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t c = 0; c < C; ++c) {
      std::vector<double> acc((size_t)KK, 0.0);
      for (int64_t n = 0; n < g.N; ++n) {
        const T* gp = grad_out + (n * C + c) * P;
        const T* xp = x + (n * C + c) * HW;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          int64_t oh_lo, oh_hi;
          valid_range(g.H, g.OH, g.stride_h, g.pad_top, kh, oh_lo, oh_hi);
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            int64_t ow_lo, ow_hi;
            valid_range(g.W, g.OW, g.stride_w, g.pad_left, kw, ow_lo, ow_hi);
            T part = 0;
            for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
              part += dot_row(gp + oh * g.OW, xp + (oh * g.stride_h - g.pad_top + kh) * g.W, ow_lo, ow_hi,
                              g.stride_w, kw - g.pad_left);
            acc[(size_t)(kh * g.KW + kw)] += (double)part;
          }
        }
      }
      for (int64_t k = 0; k < KK; ++k) grad_weight[c * KK + k] = (T)acc[(size_t)k];
    }
  }
}

#define LM_CONV2D_INSTANTIATE(T)                                                                              \
  template void im2col<T>(const T*, int64_t, const Conv2dGeometry&, T*);                                      \
  template void col2im<T>(const T*, int64_t, const Conv2dGeometry&, T*);                                      \
  template void depthwise_forward<T>(const T*, const T*, const T*, const Conv2dGeometry&, T*);                \
  template void depthwise_backward<T>(const T*, const T*, const T*, const Conv2dGeometry&, T*, T*);
LM_CONV2D_INSTANTIATE(float)
LM_CONV2D_INSTANTIATE(double)
#undef LM_CONV2D_INSTANTIATE

void conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& g, Tensor& out) {
  if (x.dtype() == DType::F32)
    forward_typed<float>(x.data<float>(), weight.data<float>(), data_or_null<float>(bias), g, out.data<float>());
  else
    forward_typed<double>(x.data<double>(), weight.data<double>(), data_or_null<double>(bias), g, out.data<double>());
}

void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Conv2dGeometry& g,
                     Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias) {
  if (grad_out.dtype() == DType::F32)
    backward_typed<float>(grad_out.data<float>(), data_or_null<float>(x), data_or_null<float>(weight), g, data_or_null<float>(grad_x),
                          data_or_null<float>(grad_weight), data_or_null<float>(grad_bias));
  else
    backward_typed<double>(grad_out.data<double>(), data_or_null<double>(x), data_or_null<double>(weight), g,
                           data_or_null<double>(grad_x), data_or_null<double>(grad_weight),
                           data_or_null<double>(grad_bias));
}

}  // namespace lm::cpu
