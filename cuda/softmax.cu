// CUDA softmax / log_softmax over the middle axis of a packed (outer, n, inner) view, forward
// and backward (ops/cpu/softmax.h; math in docs/ops/softmax.md). Same numerics as the CPU:
// the row maximum is subtracted first (an all -inf row uses 0 and yields NaN like torch),
// exp is taken in the input dtype, sums accumulate in float64.
//
// inner == 1: one block per row (three passes over the row: max, sum, write), block
// reductions by warp shuffles in a fixed order; few long rows (one softmax over N instances)
// are cut into chunks instead, a block per (row, chunk), the same three passes as three
// kernels with per-chunk partials (row_split, cuda/softmax_kernels.cuh). inner > 1: one
// thread per (outer, inner) column walking down n with stride inner (neighbouring threads,
// neighbouring addresses).
// Kernel versions under study live in cuda/dev/softmax.cu.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/softmax_kernels.cuh"
#include "tensor/op_kinds.h"

namespace lm::cuda {

namespace {

using namespace softmax_kernels;

// Blocks for the split kernels' (row, chunk) pairs (grid-stride beyond).
unsigned split_grid(const RowSplit& sp, int64_t outer) { return grid_rows(outer * sp.chunks); }

template <class T>
void forward_typed(const T* x, int64_t outer, int64_t n, int64_t inner, bool log_out, T* y, Device device,
                   cudaStream_t s) {
  const RowSplit sp = inner == 1 ? row_split(outer, n) : RowSplit{n, 1};
  if (sp.chunks > 1) {
    Tensor part_max = Tensor::empty({outer * sp.chunks}, dtype_of<T>::value, device);  // workspaces
    Tensor part_sum = Tensor::empty({outer * sp.chunks}, DType::F64, device);
    const unsigned grid = split_grid(sp, outer);
    softmax_split_max_kernel<T><<<grid, kThreads, 0, s>>>(x, outer, n, sp.per_chunk, sp.chunks, part_max.data<T>());
    check_launch("softmax_split_max_kernel");
    softmax_split_sum_kernel<T><<<grid, kThreads, 0, s>>>(x, outer, n, sp.per_chunk, sp.chunks, part_max.data<T>(),
                                                          part_sum.data<double>());
    check_launch("softmax_split_sum_kernel");
    softmax_split_write_kernel<T><<<grid, kThreads, 0, s>>>(x, outer, n, sp.per_chunk, sp.chunks, part_max.data<T>(),
                                                            part_sum.data<double>(), log_out, y);
    check_launch("softmax_split_write_kernel");
    return;
  }
  if (inner == 1) {
    softmax_rows_kernel<T><<<grid_rows(outer), kThreads, 0, s>>>(x, outer, n, log_out, y);
    check_launch("softmax_rows_kernel");
  } else {
    softmax_columns_kernel<T><<<grid_for(outer * inner), kThreads, 0, s>>>(x, outer, n, inner, log_out, y);
    check_launch("softmax_columns_kernel");
  }
}

template <class T>
void backward_typed(const T* y, const T* g, int64_t outer, int64_t n, int64_t inner, bool log_out, T* gx,
                    Device device, cudaStream_t s) {
  const RowSplit sp = inner == 1 ? row_split(outer, n) : RowSplit{n, 1};
  if (sp.chunks > 1) {
    Tensor part_dot = Tensor::empty({outer * sp.chunks}, DType::F64, device);  // workspace
    const unsigned grid = split_grid(sp, outer);
    softmax_split_backward_dot_kernel<T><<<grid, kThreads, 0, s>>>(y, g, outer, n, sp.per_chunk, sp.chunks, log_out,
                                                                   part_dot.data<double>());
    check_launch("softmax_split_backward_dot_kernel");
    softmax_split_backward_write_kernel<T><<<grid, kThreads, 0, s>>>(y, g, outer, n, sp.per_chunk, sp.chunks,
                                                                     log_out, part_dot.data<double>(), gx);
    check_launch("softmax_split_backward_write_kernel");
    return;
  }
  if (inner == 1) {
    softmax_backward_rows_kernel<T><<<grid_rows(outer), kThreads, 0, s>>>(y, g, outer, n, log_out, gx);
    check_launch("softmax_backward_rows_kernel");
  } else {
    softmax_backward_columns_kernel<T><<<grid_for(outer * inner), kThreads, 0, s>>>(y, g, outer, n, inner, log_out, gx);
    check_launch("softmax_backward_columns_kernel");
  }
}

}  // namespace

void softmax_forward(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log, Tensor& out) {
  KernelScope scope(x);
  if (outer * n * inner == 0) return;
  if (x.dtype() == DType::F32)
    forward_typed<float>(x.data<float>(), outer, n, inner, log, out.data<float>(), x.device(), scope.stream);
  else
    forward_typed<double>(x.data<double>(), outer, n, inner, log, out.data<double>(), x.device(), scope.stream);
}

void softmax_backward(const Tensor& y, const Tensor& grad_y, int64_t outer, int64_t n, int64_t inner, bool log,
                      Tensor& grad_x) {
  KernelScope scope(y);
  if (outer * n * inner == 0) return;
  if (y.dtype() == DType::F32)
    backward_typed<float>(y.data<float>(), grad_y.data<float>(), outer, n, inner, log, grad_x.data<float>(),
                          y.device(), scope.stream);
  else
    backward_typed<double>(y.data<double>(), grad_y.data<double>(), outer, n, inner, log, grad_x.data<double>(),
                           y.device(), scope.stream);
}

}  // namespace lm::cuda
