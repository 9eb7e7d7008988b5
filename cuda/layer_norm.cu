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
#include "ops/cpu/layer_norm.h"

namespace lm::cuda {

namespace {

constexpr int64_t kRowsPerChunk = 32;  // as ops/cpu/layer_norm.cpp

// x, y: (rows, D) packed; w, b: (D) or nullptr; mean, rstd: (rows). One block per row.
template <class T>
__global__ void layer_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                          double eps, int64_t rows, int64_t D, T* __restrict__ y,
                                          T* __restrict__ mean, T* __restrict__ rstd) {
  __shared__ double sd[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    double s = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += (double)xr[j];
    s = block_reduce(s, SumOp{}, 0.0, sd);
    const double mu = s / (double)D;
    double v = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double c = (double)xr[j] - mu;
      v += c * c;
    }
    v = block_reduce(v, SumOp{}, 0.0, sd);
    const double rs = 1.0 / sqrt(v / (double)D + eps);
    if (threadIdx.x == 0) {
      mean[r] = (T)mu;
      rstd[r] = (T)rs;
    }
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double h = ((double)xr[j] - mu) * rs;
      if (w) h *= (double)w[j];
      if (b) h += (double)b[j];
      yr[j] = (T)h;
    }
  }
}

// g, x, gx: (rows, D) packed; w: (D) or nullptr; mean, rstd: (rows). One block per row.
//   gx = rstd * (gw - mean_D(gw) - xhat * mean_D(gw * xhat)),  gw = g * w, xhat = (x - mean) * rstd
template <class T>
__global__ void layer_norm_backward_x_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w,
                                             const T* __restrict__ mean, const T* __restrict__ rstd, int64_t rows,
                                             int64_t D, T* __restrict__ gx) {
  __shared__ double sd[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = g + r * D;
    const T* xr = x + r * D;
    T* dr = gx + r * D;
    const double mu = (double)mean[r], rs = (double)rstd[r];
    double a = 0, bsum = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double gwj = w ? (double)gr[j] * (double)w[j] : (double)gr[j];
      a += gwj;
      bsum += gwj * (((double)xr[j] - mu) * rs);
    }
    a = block_reduce(a, SumOp{}, 0.0, sd) / (double)D;
    bsum = block_reduce(bsum, SumOp{}, 0.0, sd) / (double)D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double gwj = w ? (double)gr[j] * (double)w[j] : (double)gr[j];
      const double xh = ((double)xr[j] - mu) * rs;
      dr[j] = (T)(rs * (gwj - a - xh * bsum));
    }
  }
}

// g, x: (rows, D) packed; mean, rstd: (rows); pw, pb: (nchunks, D) float64 partials, or
// nullptr. Grid: (ceil(D / blockDim.x), chunks); a thread per (chunk, column).
template <class T>
__global__ void layer_norm_param_partials_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                                 const T* __restrict__ mean, const T* __restrict__ rstd, int64_t rows,
                                                 int64_t D, int64_t nchunks, double* __restrict__ pw,
                                                 double* __restrict__ pb) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= D) return;
  for (int64_t c = blockIdx.y; c < nchunks; c += gridDim.y) {
    const int64_t r0 = c * kRowsPerChunk;
    const int64_t r1 = r0 + kRowsPerChunk < rows ? r0 + kRowsPerChunk : rows;
    double sw = 0, sb = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const double gv = (double)g[r * D + j];
      sw += gv * (((double)x[r * D + j] - (double)mean[r]) * (double)rstd[r]);
      sb += gv;
    }
    if (pw) pw[c * D + j] = sw;
    if (pb) pb[c * D + j] = sb;
  }
}

// pw, pb: (nchunks, D) partials or nullptr; gw, gb: (D) or nullptr. A thread per column.
template <class T>
__global__ void layer_norm_param_sum_kernel(const double* __restrict__ pw, const double* __restrict__ pb,
                                            int64_t nchunks, int64_t D, T* __restrict__ gw, T* __restrict__ gb) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < D; j += stride) {
    if (gw) {
      double s = 0;
      for (int64_t c = 0; c < nchunks; ++c) s += pw[c * D + j];
      gw[j] = (T)s;
    }
    if (gb) {
      double s = 0;
      for (int64_t c = 0; c < nchunks; ++c) s += pb[c * D + j];
      gb[j] = (T)s;
    }
  }
}

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
