// CUDA reductions over a packed (outer, reduced, inner) view: sum, max and log-sum-exp
// (ops/cpu/reduce.h), plus argmax. Same accumulation types as the CPU kernels: sums of
// float32 accumulate in float64; max skips NaN like the CPU loop `v > m ? v : m`.
//
// inner == 1 (reducing the last dims): one block per output row, each thread accumulates a
// strided slice of the row in a fixed order, then a warp-shuffle block reduction (fixed tree).
// inner > 1: one thread per (outer, inner) output, looping over the reduced axis in order;
// neighbouring threads read neighbouring addresses (coalesced). Sum and Max with few outputs
// over a long axis (a bias gradient: a column sum over N rows) split the axis into chunks
// instead, two passes through a float64 workspace (column_split, cuda/reduce_kernels.cuh).
// No atomics anywhere: the same input gives the same bits on every run.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce_kernels.cuh"
#include "tensor/op_kinds.h"

namespace lm::cuda {

using lm::ReduceOp;

namespace {

using namespace reduce_kernels;

template <class T>
void reduce_typed(ReduceOp op, const T* x, int64_t outer, int64_t red, int64_t inner, T* out, Device device,
                  cudaStream_t s) {
  if (outer * inner == 0) return;
  if (red == 0) {  // only Sum reaches here (the op rejects empty max / logsumexp): zeros
    check(cudaMemsetAsync(out, 0, (size_t)(outer * inner) * sizeof(T), s), "reduce_forward (empty)");
    return;
  }
  if (inner == 1) {
    reduce_rows_kernel<T><<<grid_rows(outer), kThreads, 0, s>>>(op, x, outer, red, out);
    check_launch("reduce_rows_kernel");
    return;
  }
  const ColumnSplit split = column_split_for(op, outer, red, inner);
  if (split.chunks > 1) {
    Tensor partial = Tensor::empty({outer * split.chunks * inner}, DType::F64, device);  // workspace
    reduce_column_chunks_kernel<T><<<grid_for(outer * split.chunks * inner), kThreads, 0, s>>>(
        op, x, outer, red, inner, split.rows_per_chunk, split.chunks, partial.data<double>());
    check_launch("reduce_column_chunks_kernel");
    reduce_column_partials_kernel<T><<<grid_for(outer * inner), kThreads, 0, s>>>(op, partial.data<double>(), outer,
                                                                                  inner, split.chunks, out);
    check_launch("reduce_column_partials_kernel");
    return;
  }
  reduce_columns_kernel<T><<<grid_for(outer * inner), kThreads, 0, s>>>(op, x, outer, red, inner, out);
  check_launch("reduce_columns_kernel");
}

}  // namespace

void reduce_forward(ReduceOp op, const Tensor& x, int64_t outer, int64_t reduced, int64_t inner, Tensor& out) {
  KernelScope scope(x);
  if (x.dtype() == DType::F32)
    reduce_typed<float>(op, x.data<float>(), outer, reduced, inner, out.data<float>(), x.device(), scope.stream);
  else
    reduce_typed<double>(op, x.data<double>(), outer, reduced, inner, out.data<double>(), x.device(), scope.stream);
}

void argmax_forward(const Tensor& x, int64_t outer, int64_t reduced, int64_t inner, Tensor& out) {
  KernelScope scope(x);
  if (outer * inner == 0 || reduced == 0) return;
  if (x.dtype() == DType::F32)
    argmax_kernel<float><<<grid_for(outer * inner), kThreads, 0, scope.stream>>>(x.data<float>(), outer, reduced,
                                                                                 inner, out.data<int64_t>());
  else
    argmax_kernel<double><<<grid_for(outer * inner), kThreads, 0, scope.stream>>>(x.data<double>(), outer,
                                                                                  reduced, inner, out.data<int64_t>());
  check_launch("argmax_kernel");
}

}  // namespace lm::cuda
