// CPU layer-norm kernels, forward and backward (docs/ops/layernorm.md). Rows are independent
// and run in parallel with OpenMP; dweight / dbias are reduced over rows through fixed-size
// chunks of float64 partial sums added in a fixed order (no atomics, same bits for any thread
// count).
#include "ops/cpu/layer_norm.h"
#include "ops/cpu/parallel.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lm::cpu {

namespace {

constexpr int64_t kRowsPerChunk = 32;  // chunking of the dweight / dbias reduction

template <class T>
void forward_typed(const T* x, const T* w, const T* b, double eps, int64_t rows, int64_t D, T* y, T* mean,
                   T* rstd) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    double s = 0;
    for (int64_t j = 0; j < D; ++j) s += (double)xr[j];
    const double mu = s / (double)D;
    double v = 0;
    for (int64_t j = 0; j < D; ++j) {
      const double c = (double)xr[j] - mu;
      v += c * c;
    }
    const double rs = 1.0 / std::sqrt(v / (double)D + eps);
    mean[r] = (T)mu;
    rstd[r] = (T)rs;
    for (int64_t j = 0; j < D; ++j) {
      double h = ((double)xr[j] - mu) * rs;
      if (w) h *= (double)w[j];
      if (b) h += (double)b[j];
      yr[j] = (T)h;
    }
  }
}

template <class T>
void backward_typed(const T* g, const T* x, const T* w, const T* mean, const T* rstd, int64_t rows, int64_t D,
                    T* gx, T* gw, T* gb) {
  const bool params = gw || gb;
  const int64_t nchunks = params ? (rows + kRowsPerChunk - 1) / kRowsPerChunk : 0;
  std::vector<double> pw(gw ? (size_t)(nchunks * D) : 0, 0.0), pb(gb ? (size_t)(nchunks * D) : 0, 0.0);
  const int64_t total_chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
#pragma omp parallel for schedule(dynamic, 1) if (rows * D > kParallelGrain)
  for (int64_t c = 0; c < total_chunks; ++c) {
    const int64_t r0 = c * kRowsPerChunk, r1 = std::min(rows, r0 + kRowsPerChunk);
    double* cw = gw ? pw.data() + c * D : nullptr;
    double* cb = gb ? pb.data() + c * D : nullptr;
    for (int64_t r = r0; r < r1; ++r) {
      const T* gr = g + r * D;
      const T* xr = x + r * D;
      const double mu = (double)mean[r], rs = (double)rstd[r];
      if (cw)
        for (int64_t j = 0; j < D; ++j) cw[j] += (double)gr[j] * (((double)xr[j] - mu) * rs);
      if (cb)
        for (int64_t j = 0; j < D; ++j) cb[j] += (double)gr[j];
      if (!gx) continue;
      // a = mean_D(gw), bsum = mean_D(gw * xhat)
      double a = 0, bsum = 0;
      for (int64_t j = 0; j < D; ++j) {
        const double gwj = w ? (double)gr[j] * (double)w[j] : (double)gr[j];
        a += gwj;
        bsum += gwj * (((double)xr[j] - mu) * rs);
      }
      a /= (double)D;
      bsum /= (double)D;
      T* dr = gx + r * D;
      for (int64_t j = 0; j < D; ++j) {
        const double gwj = w ? (double)gr[j] * (double)w[j] : (double)gr[j];
        const double xh = ((double)xr[j] - mu) * rs;
        dr[j] = (T)(rs * (gwj - a - xh * bsum));
      }
    }
  }
  // Fixed-order reduction of the chunk partials.
  if (gw)
    for (int64_t j = 0; j < D; ++j) {
      double s = 0;
      for (int64_t c = 0; c < nchunks; ++c) s += pw[c * D + j];
      gw[j] = (T)s;
    }
  if (gb)
    for (int64_t j = 0; j < D; ++j) {
      double s = 0;
      for (int64_t c = 0; c < nchunks; ++c) s += pb[c * D + j];
      gb[j] = (T)s;
    }
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
T* mut_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, int64_t rows,
                        int64_t D, Tensor& out, Tensor& mean, Tensor& rstd) {
  if (rows * D == 0) return;
  if (x.dtype() == DType::F32)
    forward_typed<float>(x.data<float>(), ptr_or_null<float>(weight), ptr_or_null<float>(bias), eps, rows, D,
                         out.data<float>(), mean.data<float>(), rstd.data<float>());
  else
    forward_typed<double>(x.data<double>(), ptr_or_null<double>(weight), ptr_or_null<double>(bias), eps, rows, D,
                          out.data<double>(), mean.data<double>(), rstd.data<double>());
}

void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, int64_t rows, int64_t D, Tensor& grad_x, Tensor& grad_weight,
                         Tensor& grad_bias) {
  if (x.dtype() == DType::F32)
    backward_typed<float>(grad_y.data<float>(), x.data<float>(), ptr_or_null<float>(weight), mean.data<float>(),
                          rstd.data<float>(), rows, D, mut_or_null<float>(grad_x), mut_or_null<float>(grad_weight),
                          mut_or_null<float>(grad_bias));
  else
    backward_typed<double>(grad_y.data<double>(), x.data<double>(), ptr_or_null<double>(weight),
                           mean.data<double>(), rstd.data<double>(), rows, D, mut_or_null<double>(grad_x),
                           mut_or_null<double>(grad_weight), mut_or_null<double>(grad_bias));
}

}  // namespace lm::cpu
