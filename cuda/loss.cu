// CUDA cross-entropy on raw logits (fused log-softmax + NLL), forward and backward
// (ops/cpu/loss.h). Same numerics as the CPU: row maximum first, exp in the logits' dtype,
// row sums and the batch mean in float64; lse is saved in float64 (also accepted in the
// logits' dtype, should a caller allocate it so).
//
// Forward: one block per row writes lse_b and the row loss (float64 workspace), then a
// single block adds the row losses in a fixed order (deterministic). Backward: a thread per
// logit. Targets are validated by the caller (ops/loss.cpp), except under a CUDA graph capture;
// an out-of-range target gives a NaN row loss (never a read outside the row).
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/loss_kernels.cuh"
#include "tensor/op_kinds.h"

namespace lm::cuda {

namespace {

using namespace loss_kernels;

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
