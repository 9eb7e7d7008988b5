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
#include "ops/cpu/reduce.h"

namespace lm::cuda {

using cpu::ReduceOp;

namespace {

// x: (outer, red) packed; out: (outer) packed. One block per row (grid-stride over rows).
template <class T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* __restrict__ x, int64_t outer, int64_t red,
                                   T* __restrict__ out) {
  __shared__ double sd[33];
  __shared__ T st[33];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* row = x + o * red;
    if (op == ReduceOp::Sum) {
      double acc = 0;
      for (int64_t r = threadIdx.x; r < red; r += blockDim.x) acc += (double)row[r];
      acc = block_reduce(acc, SumOp{}, 0.0, sd);
      if (threadIdx.x == 0) out[o] = (T)acc;
      continue;
    }
    T m = neg_inf<T>();
    for (int64_t r = threadIdx.x; r < red; r += blockDim.x) m = max_skip_nan(m, row[r]);
    m = block_reduce(m, MaxOp{}, neg_inf<T>(), st);
    if (op == ReduceOp::Max) {
      if (threadIdx.x == 0) out[o] = m;
      continue;
    }
    if (d_isinf(m)) {  // all -inf (or +inf present): the CPU returns m
      if (threadIdx.x == 0) out[o] = m;
      continue;
    }
    double acc = 0;
    for (int64_t r = threadIdx.x; r < red; r += blockDim.x) acc += exp((double)(row[r] - m));
    acc = block_reduce(acc, SumOp{}, 0.0, sd);
    if (threadIdx.x == 0) out[o] = (T)((double)m + log(acc));
  }
}

// x: (outer, red, inner) packed; out: (outer, inner) packed. One thread per output.
template <class T>
__global__ void reduce_columns_kernel(ReduceOp op, const T* __restrict__ x, int64_t outer, int64_t red,
                                      int64_t inner, T* __restrict__ out) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const T* col = x + o * red * inner + i;
    if (op == ReduceOp::Sum) {
      double acc = 0;
      for (int64_t r = 0; r < red; ++r) acc += (double)col[r * inner];
      out[k] = (T)acc;
      continue;
    }
    T m = neg_inf<T>();
    for (int64_t r = 0; r < red; ++r) m = max_skip_nan(m, col[r * inner]);
    if (op == ReduceOp::Max || d_isinf(m)) {
      out[k] = m;
      continue;
    }
    double acc = 0;
    for (int64_t r = 0; r < red; ++r) acc += exp((double)(col[r * inner] - m));
    out[k] = (T)((double)m + log(acc));
  }
}

// x: (outer, red, inner) packed; out: (outer, inner) int64. First maximum wins; a NaN beats
// any number (as the CPU argmax).
template <class T>
__global__ void argmax_kernel(const T* __restrict__ x, int64_t outer, int64_t red, int64_t inner,
                              int64_t* __restrict__ out) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const T* col = x + o * red * inner + i;
    int64_t best = 0;
    T bv = col[0];
    for (int64_t r = 1; r < red; ++r) {
      const T v = col[r * inner];
      if (v > bv || (isnan(v) && !isnan(bv))) {
        bv = v;
        best = r;
      }
    }
    out[k] = best;
  }
}

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
