// Softmax / log_softmax kernels of cuda/softmax.cu (device code only; host side, launch configuration and
// numerics there). Self-contained (CUDA headers, cuda/device_math.cuh, cuda/block_reduce.cuh)
// so that tests/test_cuda_emulated.cpp also runs them on the CPU (tests/cuda_emulator.h).
#pragma once
#include <cstdint>

#include "block_reduce.cuh"
#include "device_math.cuh"

namespace LM_CUDA_NS::softmax_kernels {

// x, y: (outer, n) packed. One block per row.
template <class T>
__global__ void softmax_rows_kernel(const T* __restrict__ x, int64_t outer, int64_t n, bool log_out,
                                    T* __restrict__ y) {
  __shared__ T st[33];
  __shared__ double sd[33];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* xr = x + o * n;
    T* yr = y + o * n;
    T m;
    double s;
    block_row_max_sumexp(xr, n, st, sd, m, s);
    if (log_out) {
      const T ls = (T)d_log(s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = (xr[j] - m) - ls;
    } else {
      const T inv = (T)(1.0 / s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = d_exp(xr[j] - m) * inv;
    }
  }
}

// x, y: (outer, n, inner) packed. One thread per (outer, inner) column.
template <class T>
__global__ void softmax_columns_kernel(const T* __restrict__ x, int64_t outer, int64_t n, int64_t inner, bool log_out,
                                       T* __restrict__ y) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const T* xc = x + o * n * inner + i;
    T* yc = y + o * n * inner + i;
    T m = neg_inf<T>();
    for (int64_t j = 0; j < n; ++j) m = max_skip_nan(m, xc[j * inner]);
    if (d_isinf(m) && m < 0) m = 0;
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += (double)d_exp(xc[j * inner] - m);
    if (log_out) {
      const T ls = (T)d_log(s);
      for (int64_t j = 0; j < n; ++j) yc[j * inner] = (xc[j * inner] - m) - ls;
    } else {
      const T inv = (T)(1.0 / s);
      for (int64_t j = 0; j < n; ++j) yc[j * inner] = d_exp(xc[j * inner] - m) * inv;
    }
  }
}

// y, g, gx: (outer, n) packed. One block per row.
//   softmax:     gx = y * (g - sum(g * y));   log_softmax: gx = g - exp(y) * sum(g)
template <class T>
__global__ void softmax_backward_rows_kernel(const T* __restrict__ y, const T* __restrict__ g, int64_t outer,
                                             int64_t n, bool log_out, T* __restrict__ gx) {
  __shared__ double sd[33];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* yr = y + o * n;
    const T* gr = g + o * n;
    T* dr = gx + o * n;
    double acc = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      acc += log_out ? (double)gr[j] : (double)gr[j] * (double)yr[j];
    acc = block_reduce(acc, SumOp{}, 0.0, sd);
    const T a = (T)acc;
    if (log_out)
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dr[j] = gr[j] - d_exp(yr[j]) * a;
    else
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dr[j] = yr[j] * (gr[j] - a);
  }
}

// y, g, gx: (outer, n, inner) packed. One thread per (outer, inner) column.
template <class T>
__global__ void softmax_backward_columns_kernel(const T* __restrict__ y, const T* __restrict__ g, int64_t outer,
                                                int64_t n, int64_t inner, bool log_out, T* __restrict__ gx) {
  const int64_t total = outer * inner;
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
    const int64_t o = k / inner, i = k % inner;
    const int64_t base = o * n * inner + i;
    double acc = 0;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t p = base + j * inner;
      acc += log_out ? (double)g[p] : (double)g[p] * (double)y[p];
    }
    const T a = (T)acc;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t p = base + j * inner;
      gx[p] = log_out ? g[p] - d_exp(y[p]) * a : y[p] * (g[p] - a);
    }
  }
}

// ---- split rows: few long rows ---------------------------------------------------------------
// One block per row leaves a GPU idle when there are few rows: Libra-MIL's instance reweighting
// is one softmax over all N instances (one row of 100000 on one block of a 132-SM device), the
// class-query attention C x heads rows of N. Then each row is cut into `chunks` runs of
// `per_chunk` elements, a block per (row, chunk), in passes whose per-chunk partials are
// combined by every block the same way (a fixed tree over the chunks): the row max M, then the
// chunks' float64 sums of exp(x - M) (each block adds them up to S), then the writes. The
// element formulas are the rows kernel's (exp in T of x - M, sums in float64), only the order
// of the float64 additions differs. Backward likewise: the chunks' sums of g y (or g), then
// the writes.
struct RowSplit {
  int64_t per_chunk, chunks;  // chunks == 1: use the one-block-per-row kernels
};
// Host side: split when there are fewer than kFewRows rows of at least 2 kMinChunk elements;
// about kBlocksWanted blocks in all, chunks of at least kMinChunk elements, at most kMaxChunks
// (the combine step reduces them in one block's registers: 4 per thread of 256).
inline RowSplit row_split(int64_t outer, int64_t n) {
  constexpr int64_t kFewRows = 1024, kMinChunk = 1024, kMaxChunks = 1024, kBlocksWanted = 1024;
  if (outer < 1 || outer >= kFewRows || n < 2 * kMinChunk) return {n, 1};
  int64_t chunks = (kBlocksWanted + outer - 1) / outer;
  const int64_t most = n / kMinChunk;
  if (chunks > most) chunks = most;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  if (chunks < 2) return {n, 1};
  const int64_t per = (n + chunks - 1) / chunks;
  return {per, (n + per - 1) / per};
}

// Block b of a split pass: its row, and its chunk as a range [begin, end) of flat indices into
// the packed (outer, n) arrays (x, y, g, gx alike).
struct SplitChunk {
  int64_t row, begin, end;
};
__device__ __forceinline__ SplitChunk split_chunk(int64_t b, int64_t n, int64_t per_chunk, int64_t chunks) {
  const int64_t row = b / chunks, j = (b % chunks) * per_chunk;
  return SplitChunk{row, row * n + j, row * n + (j + per_chunk < n ? j + per_chunk : n)};
}

// The combine step of every pass: a fixed-order block reduction over the row's `chunks`
// partials p[0 .. chunks) (each thread folds its strided share in order, then the tree), the
// same result in every block that asks.
template <class T, class Op>
__device__ T combine_chunks(const T* __restrict__ p, int64_t chunks, Op op, T identity, T* shared) {
  T v = identity;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) v = op(v, p[c]);
  return block_reduce(v, op, identity, shared);
}

// The row max from the chunks' maxima; an all -inf row uses 0 (as block_row_max_sumexp).
template <class T>
__device__ T split_row_max(const T* __restrict__ part_max, int64_t chunks, T* st) {
  T m = combine_chunks(part_max, chunks, MaxOp{}, neg_inf<T>(), st);
  if (d_isinf(m) && m < 0) m = 0;
  return m;
}

// Pass 1. x: (outer, n) packed; part_max: (outer, chunks), each chunk's max (NaN skipped).
template <class T>
__global__ void softmax_split_max_kernel(const T* __restrict__ x, int64_t outer, int64_t n, int64_t per_chunk,
                                         int64_t chunks, T* __restrict__ part_max) {
  __shared__ T st[33];
  for (int64_t b = blockIdx.x; b < outer * chunks; b += gridDim.x) {
    const SplitChunk k = split_chunk(b, n, per_chunk, chunks);
    T m = neg_inf<T>();
    for (int64_t p = k.begin + threadIdx.x; p < k.end; p += blockDim.x) m = max_skip_nan(m, x[p]);
    m = block_reduce(m, MaxOp{}, neg_inf<T>(), st);
    if (threadIdx.x == 0) part_max[b] = m;
  }
}

// Pass 2. part_sum: (outer, chunks) float64, each chunk's sum of exp(x - M).
template <class T>
__global__ void softmax_split_sum_kernel(const T* __restrict__ x, int64_t outer, int64_t n, int64_t per_chunk,
                                         int64_t chunks, const T* __restrict__ part_max,
                                         double* __restrict__ part_sum) {
  __shared__ T st[33];
  __shared__ double sd[33];
  for (int64_t b = blockIdx.x; b < outer * chunks; b += gridDim.x) {
    const SplitChunk k = split_chunk(b, n, per_chunk, chunks);
    const T m = split_row_max(part_max + k.row * chunks, chunks, st);
    double s = 0;
    for (int64_t p = k.begin + threadIdx.x; p < k.end; p += blockDim.x) s += (double)d_exp(x[p] - m);
    s = block_reduce(s, SumOp{}, 0.0, sd);
    if (threadIdx.x == 0) part_sum[b] = s;
  }
}

// Pass 3. y: (outer, n) packed, as softmax_rows_kernel writes it.
template <class T>
__global__ void softmax_split_write_kernel(const T* __restrict__ x, int64_t outer, int64_t n, int64_t per_chunk,
                                           int64_t chunks, const T* __restrict__ part_max,
                                           const double* __restrict__ part_sum, bool log_out, T* __restrict__ y) {
  __shared__ T st[33];
  __shared__ double sd[33];
  for (int64_t b = blockIdx.x; b < outer * chunks; b += gridDim.x) {
    const SplitChunk k = split_chunk(b, n, per_chunk, chunks);
    const T m = split_row_max(part_max + k.row * chunks, chunks, st);
    const double s = combine_chunks(part_sum + k.row * chunks, chunks, SumOp{}, 0.0, sd);
    if (log_out) {
      const T ls = (T)d_log(s);
      for (int64_t p = k.begin + threadIdx.x; p < k.end; p += blockDim.x) y[p] = (x[p] - m) - ls;
    } else {
      const T inv = (T)(1.0 / s);
      for (int64_t p = k.begin + threadIdx.x; p < k.end; p += blockDim.x) y[p] = d_exp(x[p] - m) * inv;
    }
  }
}

// Backward pass 1. part_dot: (outer, chunks) float64, each chunk's sum of g y (log: of g).
template <class T>
__global__ void softmax_split_backward_dot_kernel(const T* __restrict__ y, const T* __restrict__ g, int64_t outer,
                                                  int64_t n, int64_t per_chunk, int64_t chunks, bool log_out,
                                                  double* __restrict__ part_dot) {
  __shared__ double sd[33];
  for (int64_t b = blockIdx.x; b < outer * chunks; b += gridDim.x) {
    const SplitChunk k = split_chunk(b, n, per_chunk, chunks);
    double acc = 0;
    for (int64_t p = k.begin + threadIdx.x; p < k.end; p += blockDim.x)
      acc += log_out ? (double)g[p] : (double)g[p] * (double)y[p];
    acc = block_reduce(acc, SumOp{}, 0.0, sd);
    if (threadIdx.x == 0) part_dot[b] = acc;
  }
}

// Backward pass 2. gx as softmax_backward_rows_kernel writes it.
template <class T>
__global__ void softmax_split_backward_write_kernel(const T* __restrict__ y, const T* __restrict__ g, int64_t outer,
                                                    int64_t n, int64_t per_chunk, int64_t chunks, bool log_out,
                                                    const double* __restrict__ part_dot, T* __restrict__ gx) {
  __shared__ double sd[33];
  for (int64_t b = blockIdx.x; b < outer * chunks; b += gridDim.x) {
    const SplitChunk k = split_chunk(b, n, per_chunk, chunks);
    const T a = (T)combine_chunks(part_dot + k.row * chunks, chunks, SumOp{}, 0.0, sd);
    if (log_out)
      for (int64_t p = k.begin + threadIdx.x; p < k.end; p += blockDim.x) gx[p] = g[p] - d_exp(y[p]) * a;
    else
      for (int64_t p = k.begin + threadIdx.x; p < k.end; p += blockDim.x) gx[p] = y[p] * (g[p] - a);
  }
}

}  // namespace LM_CUDA_NS::softmax_kernels
