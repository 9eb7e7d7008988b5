// CPU cross-entropy kernels (fused log-softmax + NLL), forward and backward.
// Rows run in parallel; the mean over rows is a fixed-order float64 sum (deterministic).
#include "ops/cpu/loss.h"
#include "ops/cpu/parallel.h"

#include <cmath>
#include <limits>
#include <vector>

namespace lm::cpu {

namespace {


template <class T>
void forward_typed(const T* x, const int64_t* t, int64_t B, int64_t C, T* loss, double* lse) {
  std::vector<double> row_loss(B);
#pragma omp parallel for schedule(static) if (B * C > kParallelGrain)
  for (int64_t b = 0; b < B; ++b) {
    const T* r = x + b * C;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t c = 0; c < C; ++c) m = r[c] > m ? r[c] : m;
    if (std::isinf(m) && m < 0) m = 0;
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += (double)std::exp(r[c] - m);
    const double l = (double)m + std::log(s);
    lse[b] = l;
    row_loss[b] = l - (double)r[t[b]];
  }
  double acc = 0;
  for (int64_t b = 0; b < B; ++b) acc += row_loss[b];
  loss[0] = (T)(acc / (double)B);
}

template <class T>
void backward_typed(double g, const T* x, const int64_t* t, const double* lse, int64_t B, int64_t C, T* gx) {
  const double scale = g / (double)B;
#pragma omp parallel for schedule(static) if (B * C > kParallelGrain)
  for (int64_t b = 0; b < B; ++b) {
    const T* r = x + b * C;
    T* d = gx + b * C;
    const double l = lse[b];
    for (int64_t c = 0; c < C; ++c) d[c] = (T)(scale * (std::exp((double)r[c] - l) - (c == t[b] ? 1.0 : 0.0)));
  }
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t B, int64_t C, Tensor& loss,
                           Tensor& lse) {
  const int64_t* t = target.data<int64_t>();
  if (logits.dtype() == DType::F32)
    forward_typed<float>(logits.data<float>(), t, B, C, loss.data<float>(), lse.data<double>());
  else
    forward_typed<double>(logits.data<double>(), t, B, C, loss.data<double>(), lse.data<double>());
}

void cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t B, int64_t C, Tensor& grad_logits) {
  const double g = grad_loss.item();
  const int64_t* t = target.data<int64_t>();
  if (logits.dtype() == DType::F32)
    backward_typed<float>(g, logits.data<float>(), t, lse.data<double>(), B, C, grad_logits.data<float>());
  else
    backward_typed<double>(g, logits.data<double>(), t, lse.data<double>(), B, C, grad_logits.data<double>());
}

}  // namespace lm::cpu
