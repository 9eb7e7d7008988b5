// CUDA reductions over a packed (outer, reduced, inner) view: sum, max and log-sum-exp
// (ops/cpu/reduce.h), plus argmax. Same accumulation types as the CPU kernels: sums of
// float32 accumulate in float64; max skips NaN like the CPU loop `v > m ? v : m`.
//
// inner == 1 (reducing the last dims): one block per output row, each thread accumulates a
// strided slice of the row in a fixed order, then a warp-shuffle block reduction (fixed tree).
// inner > 1: one thread per (outer, inner) output, looping over the reduced axis in order;
// neighbouring threads read neighbouring addresses (coalesced). No atomics anywhere: the
// same input gives the same bits on every run.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce_kernels.cuh"
#include "ops/cpu/reduce.h"

namespace lm::cuda {

using cpu::ReduceOp;

namespace {

using namespace reduce_kernels;

template <class T>
void reduce_typed(ReduceOp op, const T* x, int64_t outer, int64_t red, int64_t inner, T* out, cudaStream_t s) {
  if (outer * inner == 0) return;
  if (red == 0) {  // only Sum reaches here (the op rejects empty max / logsumexp): zeros
    check(cudaMemsetAsync(out, 0, (size_t)(outer * inner) * sizeof(T), s), "reduce_forward (empty)");
    return;
  }
  if (inner == 1) {
    reduce_rows_kernel<T><<<grid_rows(outer), kThreads, 0, s>>>(op, x, outer, red, out);
    check_launch("reduce_rows_kernel");
  } else {
    reduce_columns_kernel<T><<<grid_for(outer * inner), kThreads, 0, s>>>(op, x, outer, red, inner, out);
    check_launch("reduce_columns_kernel");
  }
}

}  // namespace

void reduce_forward(ReduceOp op, const Tensor& x, int64_t outer, int64_t reduced, int64_t inner, Tensor& out) {
  KernelScope scope(x);
  if (x.dtype() == DType::F32)
    reduce_typed<float>(op, x.data<float>(), outer, reduced, inner, out.data<float>(), scope.stream);
  else
    reduce_typed<double>(op, x.data<double>(), outer, reduced, inner, out.data<double>(), scope.stream);
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
