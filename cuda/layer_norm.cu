// CUDA layer normalisation over the last dimension of a packed (rows, D) view, forward and
// backward (ops/cpu/layer_norm.h; math in docs/ops/layernorm.md). Statistics accumulate in
// float64 with two passes (mean, then centred variance), exactly as the CPU kernel.
//
// Forward and grad_x: one block per row, block reductions by warp shuffles (fixed order).
// grad_weight / grad_bias: the CPU's deterministic scheme on the GPU: rows are cut into
// chunks of kRowsPerChunk; kernel 1 writes one float64 partial per (chunk, column) (a thread
// per column, rows in order), kernel 2 adds the partials of each column in chunk order. No
// atomics: the same inputs give the same bits, and the order of additions is the CPU's.
// Kernel versions under study live in cuda/dev/layernorm.cu.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/layer_norm_kernels.cuh"
#include "tensor/op_kinds.h"

namespace lm::cuda {

namespace {

using namespace layer_norm_kernels;

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
void backward_typed(const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                    const Tensor& rstd, int64_t rows, int64_t D, Tensor& grad_x, Tensor& grad_weight,
                    Tensor& grad_bias, cudaStream_t s) {
  const T* g = grad_y.data<T>();
  const T* xp = x.data<T>();
  const T* mp = mean.data<T>();
  const T* rp = rstd.data<T>();
  T* gw = grad_weight.defined() ? grad_weight.data<T>() : nullptr;
  T* gb = grad_bias.defined() ? grad_bias.data<T>() : nullptr;
  if (grad_x.defined() && rows > 0 && D > 0) {
    layer_norm_backward_x_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(g, xp, ptr_or_null<T>(weight), mp, rp, rows,
                                                                        D, grad_x.data<T>());
    check_launch("layer_norm_backward_x_kernel");
  }
  if ((gw || gb) && D > 0) {
    const int64_t nchunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
    if (nchunks == 0) {  // no rows: the gradients are zero
      if (gw) check(cudaMemsetAsync(gw, 0, (size_t)D * sizeof(T), s), "layer_norm_backward (memset)");
      if (gb) check(cudaMemsetAsync(gb, 0, (size_t)D * sizeof(T), s), "layer_norm_backward (memset)");
      return;
    }
    // Workspace from the caching allocator; freeing it at scope exit is stream-ordered safe.
    Tensor pw = gw ? Tensor::empty({nchunks, D}, DType::F64, x.device()) : Tensor();
    Tensor pb = gb ? Tensor::empty({nchunks, D}, DType::F64, x.device()) : Tensor();
    double* pwp = gw ? pw.data<double>() : nullptr;
    double* pbp = gb ? pb.data<double>() : nullptr;
    const int threads = 128;
    dim3 grid((unsigned)((D + threads - 1) / threads), (unsigned)(nchunks < 65535 ? nchunks : 65535));
    layer_norm_param_partials_kernel<T><<<grid, threads, 0, s>>>(g, xp, mp, rp, rows, D, nchunks, pwp, pbp);
    check_launch("layer_norm_param_partials_kernel");
    layer_norm_param_sum_kernel<T><<<grid_for(D), kThreads, 0, s>>>(pwp, pbp, nchunks, D, gw, gb);
    check_launch("layer_norm_param_sum_kernel");
  }
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, int64_t rows,
                        int64_t D, Tensor& out, Tensor& mean, Tensor& rstd) {
  KernelScope scope(x);
  if (rows * D == 0) return;
  if (x.dtype() == DType::F32) {
    layer_norm_forward_kernel<float><<<grid_rows(rows), kThreads, 0, scope.stream>>>(
        x.data<float>(), ptr_or_null<float>(weight), ptr_or_null<float>(bias), eps, rows, D, out.data<float>(),
        mean.data<float>(), rstd.data<float>());
  } else {
    layer_norm_forward_kernel<double><<<grid_rows(rows), kThreads, 0, scope.stream>>>(
        x.data<double>(), ptr_or_null<double>(weight), ptr_or_null<double>(bias), eps, rows, D, out.data<double>(),
        mean.data<double>(), rstd.data<double>());
  }
  check_launch("layer_norm_forward_kernel");
}

void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, int64_t rows, int64_t D, Tensor& grad_x, Tensor& grad_weight,
                         Tensor& grad_bias) {
  KernelScope scope(x);
  if (x.dtype() == DType::F32)
    backward_typed<float>(grad_y, x, weight, mean, rstd, rows, D, grad_x, grad_weight, grad_bias, scope.stream);
  else
    backward_typed<double>(grad_y, x, weight, mean, rstd, rows, D, grad_x, grad_weight, grad_bias, scope.stream);
}

}  // namespace lm::cuda
