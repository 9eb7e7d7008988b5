// CUDA fused scaled dot-product attention, forward and backward (cuda/kernels.h, "attention";
// math, the backward's derivation and the edge cases in docs/ops/attention.md). The (Lq, Lk)
// score matrix never exists in memory: the forward keeps an online softmax (running max m,
// running sum l, unnormalised output row) over tiles of keys and also writes the per-row
// log-sum-exp lse; the backward recomputes p_ij = exp(score_ij - lse_i) tile by tile.
//
// Layout of every main kernel: a block of kRows warps, one warp per "row" (a query in the
// forward and in the dq kernel, a key in the dk/dv kernel). The block stages tiles of kTile
// "items" (keys, or queries) in shared memory, in column chunks, for all its warps. Scores are
// lane-per-item dot products (lane t owns item t of the tile: no shuffles inside the dot), the
// row's running statistics use all-lane butterfly reductions, and output rows are accumulated
// in registers with lanes striding over columns (a block owns CW columns; more columns are
// more blocks along grid.z, which recompute the scores). Any d, dv >= 1 works.
//
// Long loops over items are split across blocks (grid.y, "flash-decoding"), so that a few
// dozen queries over 200000 keys still fill the GPU: each split writes a partial result and a
// second kernel merges the splits in split order. No atomics: the same input on the same
// device (the split count follows the SM count) gives the same bits.
//
// Numerics: float32 inputs accumulate in float32 (scores, sums, outputs), except the row dot
// products delta_i = dO_i . O_i and the merge of split partial gradients (float64);
// float64 inputs accumulate in float64.
// The kernels live in cuda/attention_kernels.cuh (shared with the study cuda/dev/attention.cu);
// this file holds the host side.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include "cuda/attention_kernels.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace lm::cuda {

namespace {

using namespace attention_kernels;  // the kernels (cuda/attention_kernels.cuh)

// ---- host side -------------------------------------------------------------------------------

struct Dims {
  int64_t B, H, Lq, Lk;
  int d, dv;
};

Dims check_dims(const char* fn, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask) {
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument(std::string("cuda::") + fn + ": " + why + " (q " + q.str() + ", k " + k.str() + ", v " +
                                v.str() + (mask.defined() ? ", mask " + mask.str() : std::string()) + ")");
  };
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) bad("q, k, v must be 4-d");
  const Shape &sq = q.shape(), &sk = k.shape(), &sv = v.shape();
  if (sk[0] != sq[0] || sv[0] != sq[0] || sk[1] != sq[1] || sv[1] != sq[1] || sk[3] != sq[3] || sv[2] != sk[2])
    bad("shapes do not match (B, H, Lq, d), (B, H, Lk, d), (B, H, Lk, dv)");
  for (int64_t s : {sq[0], sq[1], sq[2], sq[3], sk[2], sv[3]})
    if (s < 1) bad("every size must be >= 1");
  if (sq[3] > INT_MAX || sv[3] > INT_MAX) bad("head dims must fit in int");
  if (!q.is_contiguous() || !k.is_contiguous() || !v.is_contiguous()) bad("q, k, v must be packed");
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype()) bad("dtypes differ");
  if (q.dtype() != DType::F32 && q.dtype() != DType::F64) bad("float32 or float64 expected");
  if (mask.defined()) {
    if (mask.dtype() != q.dtype() || mask.device() != q.device()) bad("mask dtype / device differ from q");
    const Shape score{sq[0], sq[1], sq[2], sk[2]};
    if (mask.dim() > 4) bad("mask has more than 4 dims");
    for (int64_t a = 0; a < mask.dim(); ++a) {
      const int64_t have = mask.shape()[a], want = score[4 - mask.dim() + a];
      if (have != 1 && have != want) bad("mask does not broadcast to (B, H, Lq, Lk)");
    }
  }
  return Dims{sq[0], sq[1], sq[2], sk[2], (int)sq[3], (int)sv[3]};
}

template <class T> Mask<T> mask_view(const Tensor& mask) {
  if (!mask.defined()) return Mask<T>{nullptr, 0, 0, 0, 0};
  return make_mask<T>(mask.data<T>(), mask.dim(), mask.shape().data(), mask.strides().data());
}

// items_per_split_for (cuda/attention_kernels.cuh) with the device's multiprocessor count.
int64_t items_per_split(int64_t n, int64_t base_blocks, int device) {
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || sms < 1) sms = 1;
  return items_per_split_for(n, base_blocks, sms);
}

unsigned grid_x(int64_t blocks, const char* kernel) {
  if (blocks > INT_MAX) throw std::invalid_argument(std::string(kernel) + ": problem too large for one grid");
  return (unsigned)blocks;
}

// Blocks for a warp-per-row kernel of kThreads threads over `rows` rows (grid-stride loop).
unsigned grid_warp_rows(int64_t rows) { return grid_for(rows * kWarp); }

template <class T>
void forward_typed(const Dims& g, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                   Tensor& out, Tensor& lse, cudaStream_t stream) {
  constexpr int CW = Cfg<T>::CW;
  const int64_t BH = g.B * g.H, rows = BH * g.Lq, row_blocks = (g.Lq + kRows - 1) / kRows;
  const int zc = (g.dv + CW - 1) / CW;
  const int64_t kps = items_per_split(g.Lk, BH * row_blocks * zc, q.device().index);
  const int64_t splits = (g.Lk + kps - 1) / kps;
  const dim3 grid(grid_x(BH * row_blocks, "attention_forward_kernel"), (unsigned)splits, (unsigned)zc);
  const Mask<T> mv = mask_view<T>(mask);
  if (splits == 1) {
    attention_forward_kernel<T><<<grid, kBlock, 0, stream>>>(q.data<T>(), k.data<T>(), v.data<T>(), mv, g.H, g.Lq,
                                                             g.Lk, g.d, g.dv, (T)scale, kps, out.data<T>(),
                                                             lse.data<T>(), nullptr, nullptr, nullptr);
    check_launch("attention_forward_kernel");
    return;
  }
  Tensor po = Tensor::empty({splits, rows, g.dv}, q.dtype(), q.device());
  Tensor pm = Tensor::empty({splits, rows}, q.dtype(), q.device());
  Tensor pl = Tensor::empty({splits, rows}, q.dtype(), q.device());
  attention_forward_kernel<T><<<grid, kBlock, 0, stream>>>(q.data<T>(), k.data<T>(), v.data<T>(), mv, g.H, g.Lq, g.Lk,
                                                           g.d, g.dv, (T)scale, kps, nullptr, nullptr, po.data<T>(),
                                                           pm.data<T>(), pl.data<T>());
  check_launch("attention_forward_kernel");
  attention_combine_kernel<T><<<grid_warp_rows(rows), kThreads, 0, stream>>>(
      po.data<T>(), pm.data<T>(), pl.data<T>(), (int)splits, rows, g.dv, out.data<T>(), lse.data<T>());
  check_launch("attention_combine_kernel");
}

template <class T>
void backward_typed(const Dims& g, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                    const Tensor& out, const Tensor& lse, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv,
                    cudaStream_t stream) {
  constexpr int CW = Cfg<T>::CW;
  const int dev = q.device().index;
  const int64_t BH = g.B * g.H, qrows = BH * g.Lq, krows = BH * g.Lk;
  const Mask<T> mv = mask_view<T>(mask);
  Tensor delta = Tensor::empty({qrows}, q.dtype(), q.device());
  attention_delta_kernel<T><<<grid_warp_rows(qrows), kThreads, 0, stream>>>(dout.data<T>(), out.data<T>(), qrows, g.dv,
                                                                           delta.data<T>());
  check_launch("attention_delta_kernel");

  if (dq.defined()) {
    const int64_t row_blocks = (g.Lq + kRows - 1) / kRows;
    const int zc = (g.d + CW - 1) / CW;
    const int64_t kps = items_per_split(g.Lk, BH * row_blocks * zc, dev);
    const int64_t splits = (g.Lk + kps - 1) / kps;
    const dim3 grid(grid_x(BH * row_blocks, "attention_backward_dq_kernel"), (unsigned)splits, (unsigned)zc);
    Tensor part = splits > 1 ? Tensor::empty({splits, qrows, g.d}, q.dtype(), q.device()) : Tensor();
    attention_backward_dq_kernel<T><<<grid, kBlock, 0, stream>>>(
        q.data<T>(), k.data<T>(), v.data<T>(), mv, dout.data<T>(), lse.data<T>(), delta.data<T>(), g.H, g.Lq, g.Lk,
        g.d, g.dv, (T)scale, kps, dq.data<T>(), part.defined() ? part.data<T>() : nullptr);
    check_launch("attention_backward_dq_kernel");
    if (splits > 1) {
      attention_sum_splits_kernel<T><<<grid_for(qrows * g.d), kThreads, 0, stream>>>(part.data<T>(), (int)splits,
                                                                                     qrows * g.d, scale, dq.data<T>());
      check_launch("attention_sum_splits_kernel");
    }
  }

  if (dk.defined() || dv.defined()) {
    const int64_t key_blocks = (g.Lk + kRows - 1) / kRows;
    const int zc = (std::max(g.d, g.dv) + CW - 1) / CW;
    const int64_t qps = items_per_split(g.Lq, BH * key_blocks * zc, dev);
    const int64_t splits = (g.Lq + qps - 1) / qps;
    const dim3 grid(grid_x(BH * key_blocks, "attention_backward_dkdv_kernel"), (unsigned)splits, (unsigned)zc);
    Tensor pk, pv;
    if (splits > 1 && dk.defined()) pk = Tensor::empty({splits, krows, g.d}, q.dtype(), q.device());
    if (splits > 1 && dv.defined()) pv = Tensor::empty({splits, krows, g.dv}, q.dtype(), q.device());
    attention_backward_dkdv_kernel<T><<<grid, kBlock, 0, stream>>>(
        q.data<T>(), k.data<T>(), v.data<T>(), mv, dout.data<T>(), lse.data<T>(), delta.data<T>(), g.H, g.Lq, g.Lk,
        g.d, g.dv, (T)scale, qps, dk.defined() ? dk.data<T>() : nullptr, dv.defined() ? dv.data<T>() : nullptr,
        pk.defined() ? pk.data<T>() : nullptr, pv.defined() ? pv.data<T>() : nullptr);
    check_launch("attention_backward_dkdv_kernel");
    if (pk.defined()) {
      attention_sum_splits_kernel<T><<<grid_for(krows * g.d), kThreads, 0, stream>>>(pk.data<T>(), (int)splits,
                                                                                     krows * g.d, scale, dk.data<T>());
      check_launch("attention_sum_splits_kernel");
    }
    if (pv.defined()) {
      attention_sum_splits_kernel<T><<<grid_for(krows * g.dv), kThreads, 0, stream>>>(pv.data<T>(), (int)splits,
                                                                                      krows * g.dv, 1.0, dv.data<T>());
      check_launch("attention_sum_splits_kernel");
    }
  }
}

void check_out(const char* fn, const char* what, const Tensor& t, const Shape& want, const Tensor& q) {
  if (!t.defined() || t.shape() != want || !t.is_contiguous() || t.dtype() != q.dtype() || t.device() != q.device())
    throw std::invalid_argument(std::string("cuda::") + fn + ": " + what + " must be a packed " + dtype_name(q.dtype()) +
                                " tensor of shape " + shape_str(want) + " on " + q.device().str() + ", got " +
                                (t.defined() ? t.str() : std::string("undefined")));
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                       Tensor& out, Tensor& lse) {
  KernelScope scope(q);
  const Dims g = check_dims("attention_forward", q, k, v, mask);
  if (!(scale > 0)) throw std::invalid_argument("cuda::attention_forward: scale must be > 0");
  check_out("attention_forward", "out", out, {g.B, g.H, g.Lq, g.dv}, q);
  check_out("attention_forward", "lse", lse, {g.B, g.H, g.Lq}, q);
  if (q.dtype() == DType::F32)
    forward_typed<float>(g, q, k, v, mask, scale, out, lse, scope.stream);
  else
    forward_typed<double>(g, q, k, v, mask, scale, out, lse, scope.stream);
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                        const Tensor& out, const Tensor& lse, const Tensor& grad_out, Tensor& grad_q, Tensor& grad_k,
                        Tensor& grad_v) {
  KernelScope scope(q);
  const Dims g = check_dims("attention_backward", q, k, v, mask);
  if (!(scale > 0)) throw std::invalid_argument("cuda::attention_backward: scale must be > 0");
  check_out("attention_backward", "out", out, {g.B, g.H, g.Lq, g.dv}, q);
  check_out("attention_backward", "lse", lse, {g.B, g.H, g.Lq}, q);
  check_out("attention_backward", "grad_out", grad_out, {g.B, g.H, g.Lq, g.dv}, q);
  if (grad_q.defined()) check_out("attention_backward", "grad_q", grad_q, q.shape(), q);
  if (grad_k.defined()) check_out("attention_backward", "grad_k", grad_k, k.shape(), q);
  if (grad_v.defined()) check_out("attention_backward", "grad_v", grad_v, v.shape(), q);
  if (q.dtype() == DType::F32)
    backward_typed<float>(g, q, k, v, mask, scale, out, lse, grad_out, grad_q, grad_k, grad_v, scope.stream);
  else
    backward_typed<double>(g, q, k, v, mask, scale, out, lse, grad_out, grad_q, grad_k, grad_v, scope.stream);
}

}  // namespace lm::cuda
