// CPU adaptive average pooling, forward and backward (ops/cpu/pool.h). Each (n, c) plane is
// independent: planes run in parallel with OpenMP. The backward scatters each bin's share
// g / |bin| over the bin, bins in row-major order (the same bits for any thread count).
#include "ops/cpu/pool.h"
#include "ops/cpu/parallel.h"

#include <algorithm>

namespace lm::cpu {

namespace {


// PyTorch's adaptive bin [start, end) of output index i, for `in` inputs and `out` outputs.
inline int64_t bin_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t bin_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

template <class T>
void forward_typed(const T* x, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW, T* out) {
#pragma omp parallel for schedule(static) if (rows * H * W > kImageParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xp = x + r * H * W;
    T* op = out + r * OH * OW;
    for (int64_t i = 0; i < OH; ++i) {
      const int64_t h0 = bin_start(i, H, OH), h1 = bin_end(i, H, OH);
      for (int64_t j = 0; j < OW; ++j) {
        const int64_t w0 = bin_start(j, W, OW), w1 = bin_end(j, W, OW);
        double s = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) s += (double)xp[h * W + w];
        op[i * OW + j] = (T)(s / (double)((h1 - h0) * (w1 - w0)));
      }
    }
  }
}

template <class T>
void backward_typed(const T* g, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW, T* gx) {
#pragma omp parallel for schedule(static) if (rows * H * W > kImageParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* gp = g + r * OH * OW;
    T* dp = gx + r * H * W;
    std::fill(dp, dp + H * W, (T)0);
    for (int64_t i = 0; i < OH; ++i) {
      const int64_t h0 = bin_start(i, H, OH), h1 = bin_end(i, H, OH);
      for (int64_t j = 0; j < OW; ++j) {
        const int64_t w0 = bin_start(j, W, OW), w1 = bin_end(j, W, OW);
        const T share = (T)((double)gp[i * OW + j] / (double)((h1 - h0) * (w1 - w0)));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) dp[h * W + w] += share;
      }
    }
  }
}

}  // namespace

void adaptive_avg_pool2d_forward(const Tensor& x, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                 Tensor& out) {
  if (x.dtype() == DType::F32) forward_typed<float>(x.data<float>(), rows, H, W, OH, OW, out.data<float>());
  else forward_typed<double>(x.data<double>(), rows, H, W, OH, OW, out.data<double>());
}

void adaptive_avg_pool2d_backward(const Tensor& grad_out, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                  Tensor& grad_x) {
  if (grad_out.dtype() == DType::F32)
    backward_typed<float>(grad_out.data<float>(), rows, H, W, OH, OW, grad_x.data<float>());
  else
    backward_typed<double>(grad_out.data<double>(), rows, H, W, OH, OW, grad_x.data<double>());
}

}  // namespace lm::cpu
