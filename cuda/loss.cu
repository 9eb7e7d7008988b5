// CUDA cross-entropy on raw logits (fused log-softmax + NLL), forward and backward
// (ops/cpu/loss.h). Same numerics as the CPU: row maximum first, exp in the logits' dtype,
// row sums and the batch mean in float64; lse is saved in float64 (also accepted in the
// logits' dtype, should a caller allocate it so).
//
// Forward: one block per row writes lse_b and the row loss (float64 workspace), then a
// single block adds the row losses in a fixed order (deterministic). Backward: a thread per
// logit. Targets are validated by the caller (ops/loss.cpp).
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "ops/cpu/loss.h"

namespace lm::cuda {

namespace {

// x: (B, C) packed; t: (B) int64; lse: (B), float64 (LseT = double) or T; row_loss: (B) float64.
template <class T, class LseT>
__global__ void cross_entropy_rows_kernel(const T* __restrict__ x, const int64_t* __restrict__ t, int64_t B,
                                          int64_t C, LseT* __restrict__ lse, double* __restrict__ row_loss) {
  __shared__ T st[33];
  __shared__ double sd[33];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const T* r = x + b * C;
    T m = neg_inf<T>();
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = max_skip_nan(m, r[c]);
    m = block_reduce(m, MaxOp{}, neg_inf<T>(), st);
    if (d_isinf(m) && m < 0) m = 0;
    double s = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += (double)d_exp(r[c] - m);
    s = block_reduce(s, SumOp{}, 0.0, sd);
    if (threadIdx.x == 0) {
      const double l = (double)m + log(s);
      lse[b] = (LseT)l;
      row_loss[b] = l - (double)r[t[b]];
    }
  }
}

// row_loss: (B) float64; loss: one element = mean. A single block, fixed-order reduction.
template <class T>
__global__ void mean_kernel(const double* __restrict__ row_loss, int64_t B, T* __restrict__ loss) {
  __shared__ double sd[33];
  double acc = 0;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) acc += row_loss[b];
  acc = block_reduce(acc, SumOp{}, 0.0, sd);
  if (threadIdx.x == 0) loss[0] = (T)(acc / (double)B);
}

// x, gx: (B, C) packed; t: (B) int64; lse: (B).
//   gx[b, c] = g / B * (exp(x[b, c] - lse_b) - [c == t_b])
template <class T, class LseT>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ g_dev, double g_host,
                                              const T* __restrict__ x, const int64_t* __restrict__ t,
                                              const LseT* __restrict__ lse, int64_t B, int64_t C,
                                              T* __restrict__ gx) {
  // g: the loss's upstream gradient, read on the device when it lives there (no host sync).
  const double g = g_dev ? (double)*g_dev : g_host;
  const double scale = g / (double)B;
  const int64_t total = B * C;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t b = k / C, c = k % C;
    const double l = (double)lse[b];
    gx[k] = (T)(scale * (exp((double)x[k] - l) - (c == t[b] ? 1.0 : 0.0)));
  }
}

template <class T, class LseT>
void forward_typed(const Tensor& logits, const Tensor& target, int64_t B, int64_t C, Tensor& loss, Tensor& lse,
                   cudaStream_t s) {
  Tensor row_loss = Tensor::empty({B}, DType::F64, logits.device());  // workspace
  cross_entropy_rows_kernel<T, LseT><<<grid_rows(B), kThreads, 0, s>>>(
      logits.data<T>(), target.data<int64_t>(), B, C, static_cast<LseT*>(lse.raw_data()), row_loss.data<double>());
  check_launch("cross_entropy_rows_kernel");
  mean_kernel<T><<<1, 1024, 0, s>>>(row_loss.data<double>(), B, loss.data<T>());
  check_launch("cross_entropy mean_kernel");
}

template <class T, class LseT>
void backward_typed(const Tensor& grad_loss, const Tensor& logits, const Tensor& target, const Tensor& lse, int64_t B,
                    int64_t C, Tensor& grad_logits, cudaStream_t s) {
  // grad_loss on the logits' device in their dtype: the kernel reads it there; otherwise its
  // value is read on the host (one copy).
  const bool on_device = grad_loss.device() == logits.device() && grad_loss.dtype() == logits.dtype();
  const T* g_dev = on_device ? grad_loss.data<T>() : nullptr;
  const double g_host = on_device ? 0.0 : grad_loss.item();
  cross_entropy_backward_kernel<T, LseT><<<grid_for(B * C), kThreads, 0, s>>>(
      g_dev, g_host, logits.data<T>(), target.data<int64_t>(), static_cast<const LseT*>(lse.raw_data()), B, C,
      grad_logits.data<T>());
  check_launch("cross_entropy_backward_kernel");
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t B, int64_t C, Tensor& loss,
                           Tensor& lse) {
  KernelScope scope(logits);
  if (B <= 0 || C <= 0) throw std::invalid_argument("cuda::cross_entropy_forward: empty logits " + logits.str());
  if (lse.dtype() != DType::F64 && lse.dtype() != DType::F32)
    throw std::invalid_argument("cuda::cross_entropy_forward: lse must be float64 or float32, got " + lse.str());
  const bool lse64 = lse.dtype() == DType::F64;
  if (logits.dtype() == DType::F32) {
    if (lse64) forward_typed<float, double>(logits, target, B, C, loss, lse, scope.stream);
    else forward_typed<float, float>(logits, target, B, C, loss, lse, scope.stream);
  } else {
    if (lse64) forward_typed<double, double>(logits, target, B, C, loss, lse, scope.stream);
    else forward_typed<double, float>(logits, target, B, C, loss, lse, scope.stream);
  }
}

void cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t B, int64_t C, Tensor& grad_logits) {
  KernelScope scope(logits);
  if (B * C == 0) return;
  if (grad_loss.numel() != 1)
    throw std::invalid_argument("cuda::cross_entropy_backward: grad_loss must have one element, got " + grad_loss.str());
  const bool lse64 = lse.dtype() == DType::F64;
  if (logits.dtype() == DType::F32) {
    if (lse64) backward_typed<float, double>(grad_loss, logits, target, lse, B, C, grad_logits, scope.stream);
    else backward_typed<float, float>(grad_loss, logits, target, lse, B, C, grad_logits, scope.stream);
  } else {
    if (lse64) backward_typed<double, double>(grad_loss, logits, target, lse, B, C, grad_logits, scope.stream);
    else backward_typed<double, float>(grad_loss, logits, target, lse, B, C, grad_logits, scope.stream);
  }
}

}  // namespace lm::cuda
