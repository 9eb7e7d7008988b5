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
// Kernel versions under study live in cuda/dev/attention.cu.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace lm::cuda {

namespace {

// Tile geometry per dtype: DC columns of q / k per score chunk, DVC columns of v / dO per
// chunk, CW output columns per block (held in registers: CW / 32 per lane and accumulator).
template <class T> struct Cfg;
template <> struct Cfg<float> {
  static constexpr int DC = 64, DVC = 128, CW = 512;
};
template <> struct Cfg<double> {
  static constexpr int DC = 32, DVC = 64, CW = 256;
};
constexpr int kTile = 32;             // items per tile: one per lane
constexpr int kRows = 8;              // rows (warps) per block
constexpr int kBlock = kRows * kWarp;  // threads per block
constexpr int64_t kMinTilesPerSplit = 4;

__device__ __forceinline__ float d_fmax(float a, float b) { return fmaxf(a, b); }  // NaN loses
__device__ __forceinline__ double d_fmax(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ int64_t lmin(int64_t a, int64_t b) { return a < b ? a : b; }
template <class T> __device__ __forceinline__ bool is_neg_inf(T x) { return d_isinf(x) && x < 0; }

// Butterfly reductions: every lane gets the result, with the same bits on every lane.
template <class T> __device__ __forceinline__ T warp_all_sum(T v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
template <class T> __device__ __forceinline__ T warp_all_max(T v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v = d_fmax(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Block-cooperative copy of an (nr, nc) corner of a row-major matrix into dst (R, C) with row
// stride LDS, zero-filling rows >= nr and columns >= nc (so padded items contribute 0, not
// stale shared memory). src: the corner's first element; ld: its row stride in elements.
template <class T, int R, int C, int LDS>
__device__ __forceinline__ void stage(T* dst, const T* __restrict__ src, int64_t ld, int nr, int nc) {
  for (int idx = threadIdx.x; idx < R * C; idx += blockDim.x) {
    const int r = idx / C, c = idx % C;
    dst[r * LDS + c] = (r < nr && c < nc) ? src[(int64_t)r * ld + c] : T(0);
  }
}

// The additive mask read as (B, H, Lq, Lk) through strides (0 on broadcast dims); p null: none.
template <class T> struct Mask {
  const T* p;
  int64_t sb, sh, si, sj;
};
template <class T> __device__ __forceinline__ const T* mask_head(const Mask<T>& m, int64_t bh, int64_t H) {
  return m.p + (bh / H) * m.sb + (bh % H) * m.sh;
}

// ---- forward ---------------------------------------------------------------------------------
// q: (BH, Lq, d), k: (BH, Lk, d), v: (BH, Lk, dv) packed; mask: see Mask.
// grid.x = BH * ceil(Lq / kRows) (a warp per query row), grid.y = key splits (split y owns keys
// [y * keys_per_split, (y + 1) * keys_per_split)), grid.z = ceil(dv / CW) output column chunks.
// One split: out (BH, Lq, dv) and lse (BH, Lq) are written directly. Several: part_o
// (splits, BH * Lq, dv) unnormalised output sums, part_m / part_l (splits, BH * Lq) the split's
// running max and sum (merged by attention_combine_kernel).
template <class T>
__global__ void __launch_bounds__(kBlock)
    attention_forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, Mask<T> mask,
                             int64_t H, int64_t Lq, int64_t Lk, int d, int dv, T scale, int64_t keys_per_split,
                             T* __restrict__ out, T* __restrict__ lse, T* __restrict__ part_o, T* __restrict__ part_m,
                             T* __restrict__ part_l) {
  constexpr int DC = Cfg<T>::DC, DVC = Cfg<T>::DVC, CW = Cfg<T>::CW, NACC = CW / kWarp, PER = DVC / kWarp;
  __shared__ T sK[kTile][DC + 1];  // k tile chunk; +1: lane-per-key reads hit distinct banks
  __shared__ T sQ[kRows][DC];      // the block's q rows, same chunk
  __shared__ T sV[kTile][DVC];     // v tile chunk
  __shared__ T sP[kRows][kTile];   // p of each row for the tile's keys
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t row_blocks = (Lq + kRows - 1) / kRows;
  const int64_t bh = blockIdx.x / row_blocks, i0 = (blockIdx.x % row_blocks) * kRows, i = i0 + warp;
  const bool row_ok = i < Lq;
  const int nrows = (int)lmin(kRows, Lq - i0);
  const int64_t j_begin = (int64_t)blockIdx.y * keys_per_split, j_end = lmin(Lk, j_begin + keys_per_split);
  const int col0 = blockIdx.z * CW;
  const T* qb = q + (bh * Lq + i0) * d;
  const T* kb = k + bh * Lk * d;
  const T* vb = v + bh * Lk * dv;
  const T* mrow = (mask.p && row_ok) ? mask_head(mask, bh, H) + i * mask.si : nullptr;

  T m = neg_inf<T>(), l = 0;
  T acc[NACC];
#pragma unroll
  for (int t = 0; t < NACC; ++t) acc[t] = 0;

  for (int64_t j0 = j_begin; j0 < j_end; j0 += kTile) {
    const int nk = (int)lmin(kTile, j_end - j0);
    // Score of key j0 + lane: q_i . k_j over chunks of d.
    T s = 0;
    for (int c0 = 0; c0 < d; c0 += DC) {
      const int nc = min(DC, d - c0);
      __syncthreads();  // the previous readers of sK / sQ are done
      stage<T, kTile, DC, DC + 1>(&sK[0][0], kb + j0 * d + c0, d, nk, nc);
      stage<T, kRows, DC, DC>(&sQ[0][0], qb + c0, d, nrows, nc);
      __syncthreads();
      for (int c = 0; c < nc; ++c) s += sQ[warp][c] * sK[lane][c];
    }
    if (lane < nk) {
      s *= scale;
      if (mrow) s += mrow[(j0 + lane) * mask.sj];
    } else {
      s = neg_inf<T>();
    }
    // Online softmax: new max, rescale the running sum and output, p for this tile. While the
    // max is still -inf (every key so far masked) nothing is added and nothing rescaled.
    const T mn = d_fmax(m, warp_all_max(s));
    T alpha = 1, p = 0;
    if (!is_neg_inf(mn)) {
      alpha = d_exp(m - mn);  // m = -inf: 0 (the sums so far are 0 anyway)
      p = d_exp(s - mn);      // masked key: 0
    }
    l = l * alpha + warp_all_sum(p);
    m = mn;
#pragma unroll
    for (int t = 0; t < NACC; ++t) acc[t] *= alpha;
    __syncwarp();
    sP[warp][lane] = p;
    __syncwarp();
    // acc[c] += sum_j p_j v[j, c] over this block's columns, DVC at a time.
#pragma unroll
    for (int sub = 0; sub < CW / DVC; ++sub) {
      const int cs = col0 + sub * DVC;
      if (cs >= dv) break;  // uniform over the block
      __syncthreads();
      stage<T, kTile, DVC, DVC>(&sV[0][0], vb + j0 * dv + cs, dv, nk, min(DVC, dv - cs));
      __syncthreads();
      for (int j = 0; j < nk; ++j) {
        const T pj = sP[warp][j];
#pragma unroll
        for (int t = 0; t < PER; ++t) acc[sub * PER + t] += pj * sV[j][t * kWarp + lane];
      }
    }
  }

  if (!row_ok) return;
  const int64_t rows = (int64_t)(gridDim.x / row_blocks) * Lq, r = bh * Lq + i;
  if (gridDim.y == 1) {
    const T inv = T(1) / l;  // l = 0 (all keys masked): inf, and 0 * inf = NaN like the composed op
#pragma unroll
    for (int sub = 0; sub < CW / DVC; ++sub)
#pragma unroll
      for (int t = 0; t < PER; ++t) {
        const int c = col0 + sub * DVC + t * kWarp + lane;
        if (c < dv) out[r * dv + c] = acc[sub * PER + t] * inv;
      }
    if (blockIdx.z == 0 && lane == 0) lse[r] = m + d_log(l);  // all masked: -inf + -inf = -inf
  } else {
    const int64_t pr = (int64_t)blockIdx.y * rows + r;
#pragma unroll
    for (int sub = 0; sub < CW / DVC; ++sub)
#pragma unroll
      for (int t = 0; t < PER; ++t) {
        const int c = col0 + sub * DVC + t * kWarp + lane;
        if (c < dv) part_o[pr * dv + c] = acc[sub * PER + t];
      }
    if (blockIdx.z == 0 && lane == 0) {
      part_m[pr] = m;
      part_l[pr] = l;
    }
  }
}

// part_o: (splits, rows, dv), part_m, part_l: (splits, rows); out: (rows, dv), lse: (rows).
// A warp per row, splits merged in order: M = max_s m_s, L = sum_s l_s e^(m_s - M),
// out = (sum_s o_s e^(m_s - M)) / L, lse = M + log L. Splits with m_s = -inf (all keys masked)
// weigh 0; a row with every split so is NaN / -inf as in the one-split kernel.
template <class T>
__global__ void attention_combine_kernel(const T* __restrict__ part_o, const T* __restrict__ part_m,
                                         const T* __restrict__ part_l, int splits, int64_t rows, int dv,
                                         T* __restrict__ out, T* __restrict__ lse) {
  const int lane = threadIdx.x % kWarp, warps = blockDim.x / kWarp;
  for (int64_t r = (int64_t)blockIdx.x * warps + threadIdx.x / kWarp; r < rows; r += (int64_t)gridDim.x * warps) {
    T M = neg_inf<T>();
    for (int s = 0; s < splits; ++s) M = d_fmax(M, part_m[s * rows + r]);
    T L = 0;
    for (int s = 0; s < splits; ++s) {
      const T ms = part_m[s * rows + r];
      if (!is_neg_inf(ms)) L += part_l[s * rows + r] * d_exp(ms - M);
    }
    const T inv = T(1) / L;
    for (int c = lane; c < dv; c += kWarp) {
      T o = 0;
      for (int s = 0; s < splits; ++s) {
        const T ms = part_m[s * rows + r];
        if (!is_neg_inf(ms)) o += part_o[(s * rows + r) * dv + c] * d_exp(ms - M);
      }
      out[r * dv + c] = o * inv;
    }
    if (lane == 0) lse[r] = M + d_log(L);
  }
}

// ---- backward --------------------------------------------------------------------------------
// dout, out: (rows, dv) packed; delta: (rows). A warp per row: delta_i = sum_c dO_ic O_ic
// (float64 accumulation, fixed lane order).
template <class T>
__global__ void attention_delta_kernel(const T* __restrict__ dout, const T* __restrict__ out, int64_t rows, int dv,
                                       T* __restrict__ delta) {
  const int lane = threadIdx.x % kWarp, warps = blockDim.x / kWarp;
  for (int64_t r = (int64_t)blockIdx.x * warps + threadIdx.x / kWarp; r < rows; r += (int64_t)gridDim.x * warps) {
    double a = 0;
    for (int c = lane; c < dv; c += kWarp) a += (double)dout[r * dv + c] * (double)out[r * dv + c];
    a = warp_all_sum(a);
    if (lane == 0) delta[r] = (T)a;
  }
}

// q, k, v, mask as in the forward; dout: (BH, Lq, dv); lse, delta: (BH, Lq).
// grid.x = BH * ceil(Lq / kRows) (a warp per query row), grid.y = key splits, grid.z =
// ceil(d / CW) dq column chunks. Per key tile: s_ij, p_ij = exp(s_ij - lse_i),
// dp_ij = dO_i . v_j, ds_ij = p_ij (dp_ij - delta_i); then dq_i += ds_ij k_j.
// One split: dq (BH, Lq, d) = scale * sum_j ds_ij k_j. Several: part (splits, BH * Lq, d) holds
// the unscaled sum over the split's keys (attention_sum_splits_kernel adds and scales).
template <class T>
__global__ void __launch_bounds__(kBlock)
    attention_backward_dq_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                 Mask<T> mask, const T* __restrict__ dout, const T* __restrict__ lse,
                                 const T* __restrict__ delta, int64_t H, int64_t Lq, int64_t Lk, int d, int dv, T scale,
                                 int64_t keys_per_split, T* __restrict__ dq, T* __restrict__ part) {
  constexpr int DC = Cfg<T>::DC, DVC = Cfg<T>::DVC, CW = Cfg<T>::CW, NACC = CW / kWarp, PER = DC / kWarp;
  __shared__ T sK[kTile][DC + 1];    // k tile chunk
  __shared__ T sQ[kRows][DC];        // the block's q rows
  __shared__ T sV[kTile][DVC + 1];   // v tile chunk
  __shared__ T sO[kRows][DVC];       // the block's dO rows
  __shared__ T sDS[kRows][kTile];    // ds of each row for the tile's keys
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t row_blocks = (Lq + kRows - 1) / kRows;
  const int64_t bh = blockIdx.x / row_blocks, i0 = (blockIdx.x % row_blocks) * kRows, i = i0 + warp;
  const bool row_ok = i < Lq;
  const int nrows = (int)lmin(kRows, Lq - i0);
  const int64_t j_begin = (int64_t)blockIdx.y * keys_per_split, j_end = lmin(Lk, j_begin + keys_per_split);
  const int col0 = blockIdx.z * CW;
  const T* qb = q + (bh * Lq + i0) * d;
  const T* ob = dout + (bh * Lq + i0) * dv;
  const T* kb = k + bh * Lk * d;
  const T* vb = v + bh * Lk * dv;
  const T* mrow = (mask.p && row_ok) ? mask_head(mask, bh, H) + i * mask.si : nullptr;
  const T lse_i = row_ok ? lse[bh * Lq + i] : T(0);
  const T delta_i = row_ok ? delta[bh * Lq + i] : T(0);

  T acc[NACC];
#pragma unroll
  for (int t = 0; t < NACC; ++t) acc[t] = 0;

  for (int64_t j0 = j_begin; j0 < j_end; j0 += kTile) {
    const int nk = (int)lmin(kTile, j_end - j0);
    T s = 0, dp = 0;
    for (int c0 = 0; c0 < d; c0 += DC) {
      const int nc = min(DC, d - c0);
      __syncthreads();
      stage<T, kTile, DC, DC + 1>(&sK[0][0], kb + j0 * d + c0, d, nk, nc);
      stage<T, kRows, DC, DC>(&sQ[0][0], qb + c0, d, nrows, nc);
      __syncthreads();
      for (int c = 0; c < nc; ++c) s += sQ[warp][c] * sK[lane][c];
    }
    for (int c0 = 0; c0 < dv; c0 += DVC) {
      const int nc = min(DVC, dv - c0);
      __syncthreads();
      stage<T, kTile, DVC, DVC + 1>(&sV[0][0], vb + j0 * dv + c0, dv, nk, nc);
      stage<T, kRows, DVC, DVC>(&sO[0][0], ob + c0, dv, nrows, nc);
      __syncthreads();
      for (int c = 0; c < nc; ++c) dp += sO[warp][c] * sV[lane][c];
    }
    T ds = 0;
    if (lane < nk && row_ok) {
      s *= scale;
      if (mrow) s += mrow[(j0 + lane) * mask.sj];
      const T p = d_exp(s - lse_i);  // masked: 0; a fully masked row (lse = -inf): NaN, as composed
      ds = p * (dp - delta_i);
    }
    __syncwarp();
    sDS[warp][lane] = ds;
    __syncwarp();
#pragma unroll
    for (int sub = 0; sub < CW / DC; ++sub) {
      const int cs = col0 + sub * DC;
      if (cs >= d) break;
      __syncthreads();
      stage<T, kTile, DC, DC + 1>(&sK[0][0], kb + j0 * d + cs, d, nk, min(DC, d - cs));
      __syncthreads();
      for (int j = 0; j < nk; ++j) {
        const T dsj = sDS[warp][j];
#pragma unroll
        for (int t = 0; t < PER; ++t) acc[sub * PER + t] += dsj * sK[j][t * kWarp + lane];
      }
    }
  }

  if (!row_ok) return;
  const int64_t rows = (int64_t)(gridDim.x / row_blocks) * Lq, r = bh * Lq + i;
  const bool direct = gridDim.y == 1;
  T* dst = direct ? dq + r * d : part + ((int64_t)blockIdx.y * rows + r) * d;
  const T f = direct ? scale : T(1);
#pragma unroll
  for (int sub = 0; sub < CW / DC; ++sub)
#pragma unroll
    for (int t = 0; t < PER; ++t) {
      const int c = col0 + sub * DC + t * kWarp + lane;
      if (c < d) dst[c] = f * acc[sub * PER + t];
    }
}

// q, k, v, mask, dout, lse, delta as in the dq kernel.
// grid.x = BH * ceil(Lk / kRows) (a warp per key row), grid.y = query splits (split y owns
// queries [y * queries_per_split, ...)), grid.z = ceil(max(d, dv) / CW) column chunks of dk and
// dv. Per query tile: p_ij and ds_ij recomputed as in the dq kernel (lane per query), then
// dv_j += p_ij dO_i and dk_j += ds_ij q_i.
// One split: dk (BH, Lk, d) = scale * sum_i ds_ij q_i, dvo (BH, Lk, dv) = sum_i p_ij dO_i.
// Several: part_k (splits, BH * Lk, d), part_v (splits, BH * Lk, dv), unscaled. A null output
// (dk / dvo, or part_k / part_v) is not written.
template <class T>
__global__ void __launch_bounds__(kBlock)
    attention_backward_dkdv_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                   Mask<T> mask, const T* __restrict__ dout, const T* __restrict__ lse,
                                   const T* __restrict__ delta, int64_t H, int64_t Lq, int64_t Lk, int d, int dv,
                                   T scale, int64_t queries_per_split, T* __restrict__ dk, T* __restrict__ dvo,
                                   T* __restrict__ part_k, T* __restrict__ part_v) {
  constexpr int DC = Cfg<T>::DC, DVC = Cfg<T>::DVC, CW = Cfg<T>::CW, NACC = CW / kWarp;
  constexpr int PK = DC / kWarp, PV = DVC / kWarp;
  __shared__ T sQ[kTile][DC + 1];    // q tile chunk (lane = query)
  __shared__ T sK[kRows][DC];        // the block's k rows
  __shared__ T sO[kTile][DVC + 1];   // dO tile chunk
  __shared__ T sV[kRows][DVC];       // the block's v rows
  __shared__ T sP[kRows][kTile];     // p of each key row for the tile's queries
  __shared__ T sDS[kRows][kTile];    // ds, same
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t key_blocks = (Lk + kRows - 1) / kRows;
  const int64_t bh = blockIdx.x / key_blocks, j0 = (blockIdx.x % key_blocks) * kRows, j = j0 + warp;
  const bool key_ok = j < Lk;
  const int nkeys = (int)lmin(kRows, Lk - j0);
  const int64_t i_begin = (int64_t)blockIdx.y * queries_per_split, i_end = lmin(Lq, i_begin + queries_per_split);
  const int col0 = blockIdx.z * CW;
  const T* qb = q + bh * Lq * d;
  const T* ob = dout + bh * Lq * dv;
  const T* kb = k + (bh * Lk + j0) * d;
  const T* vb = v + (bh * Lk + j0) * dv;
  const T* lse_b = lse + bh * Lq;
  const T* delta_b = delta + bh * Lq;
  const T* mcol = (mask.p && key_ok) ? mask_head(mask, bh, H) + j * mask.sj : nullptr;

  T acc_k[NACC], acc_v[NACC];
#pragma unroll
  for (int t = 0; t < NACC; ++t) acc_k[t] = acc_v[t] = 0;

  for (int64_t q0 = i_begin; q0 < i_end; q0 += kTile) {
    const int nq = (int)lmin(kTile, i_end - q0);
    T s = 0, dp = 0;
    for (int c0 = 0; c0 < d; c0 += DC) {
      const int nc = min(DC, d - c0);
      __syncthreads();
      stage<T, kTile, DC, DC + 1>(&sQ[0][0], qb + q0 * d + c0, d, nq, nc);
      stage<T, kRows, DC, DC>(&sK[0][0], kb + c0, d, nkeys, nc);
      __syncthreads();
      for (int c = 0; c < nc; ++c) s += sQ[lane][c] * sK[warp][c];
    }
    for (int c0 = 0; c0 < dv; c0 += DVC) {
      const int nc = min(DVC, dv - c0);
      __syncthreads();
      stage<T, kTile, DVC, DVC + 1>(&sO[0][0], ob + q0 * dv + c0, dv, nq, nc);
      stage<T, kRows, DVC, DVC>(&sV[0][0], vb + c0, dv, nkeys, nc);
      __syncthreads();
      for (int c = 0; c < nc; ++c) dp += sO[lane][c] * sV[warp][c];
    }
    T p = 0, ds = 0;
    if (lane < nq && key_ok) {
      const int64_t iq = q0 + lane;
      s *= scale;
      if (mcol) s += mcol[iq * mask.si];
      p = d_exp(s - lse_b[iq]);
      ds = p * (dp - delta_b[iq]);
    }
    __syncwarp();
    sP[warp][lane] = p;
    sDS[warp][lane] = ds;
    __syncwarp();
#pragma unroll
    for (int sub = 0; sub < CW / DVC; ++sub) {
      const int cs = col0 + sub * DVC;
      if (cs >= dv) break;
      __syncthreads();
      stage<T, kTile, DVC, DVC + 1>(&sO[0][0], ob + q0 * dv + cs, dv, nq, min(DVC, dv - cs));
      __syncthreads();
      for (int iq = 0; iq < nq; ++iq) {
        const T pi = sP[warp][iq];
#pragma unroll
        for (int t = 0; t < PV; ++t) acc_v[sub * PV + t] += pi * sO[iq][t * kWarp + lane];
      }
    }
#pragma unroll
    for (int sub = 0; sub < CW / DC; ++sub) {
      const int cs = col0 + sub * DC;
      if (cs >= d) break;
      __syncthreads();
      stage<T, kTile, DC, DC + 1>(&sQ[0][0], qb + q0 * d + cs, d, nq, min(DC, d - cs));
      __syncthreads();
      for (int iq = 0; iq < nq; ++iq) {
        const T dsi = sDS[warp][iq];
#pragma unroll
        for (int t = 0; t < PK; ++t) acc_k[sub * PK + t] += dsi * sQ[iq][t * kWarp + lane];
      }
    }
  }

  if (!key_ok) return;
  const int64_t rows = (int64_t)(gridDim.x / key_blocks) * Lk, r = bh * Lk + j;
  const bool direct = gridDim.y == 1;
  T* dst_k = direct ? (dk ? dk + r * d : nullptr) : (part_k ? part_k + ((int64_t)blockIdx.y * rows + r) * d : nullptr);
  T* dst_v = direct ? (dvo ? dvo + r * dv : nullptr)
                    : (part_v ? part_v + ((int64_t)blockIdx.y * rows + r) * dv : nullptr);
  const T f = direct ? scale : T(1);
  if (dst_k) {
#pragma unroll
    for (int sub = 0; sub < CW / DC; ++sub)
#pragma unroll
      for (int t = 0; t < PK; ++t) {
        const int c = col0 + sub * DC + t * kWarp + lane;
        if (c < d) dst_k[c] = f * acc_k[sub * PK + t];
      }
  }
  if (dst_v) {
#pragma unroll
    for (int sub = 0; sub < CW / DVC; ++sub)
#pragma unroll
      for (int t = 0; t < PV; ++t) {
        const int c = col0 + sub * DVC + t * kWarp + lane;
        if (c < dv) dst_v[c] = acc_v[sub * PV + t];
      }
  }
}

// part: (splits, n) packed; out: (n) = factor * sum_s part[s] (float64 sum, splits in order).
template <class T>
__global__ void attention_sum_splits_kernel(const T* __restrict__ part, int splits, int64_t n, double factor,
                                            T* __restrict__ out) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t x = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; x < n; x += stride) {
    double a = 0;
    for (int s = 0; s < splits; ++s) a += (double)part[s * n + x];
    out[x] = (T)(factor * a);
  }
}

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
  Mask<T> m{nullptr, 0, 0, 0, 0};
  if (!mask.defined()) return m;
  int64_t st[4] = {0, 0, 0, 0};
  const int64_t nd = mask.dim();
  for (int64_t a = 0; a < nd; ++a) st[4 - nd + a] = mask.shape()[a] == 1 ? 0 : mask.strides()[a];
  m.p = mask.data<T>();
  m.sb = st[0];
  m.sh = st[1];
  m.si = st[2];
  m.sj = st[3];
  return m;
}

// How many items (keys, or queries) each split of a loop over `n` items gets: whole tiles, at
// least kMinTilesPerSplit of them, and enough splits that `base_blocks` blocks per split reach
// about four blocks per SM. The split count is ceil(n / result).
int64_t items_per_split(int64_t n, int64_t base_blocks, int device) {
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || sms < 1) sms = 1;
  const int64_t target = 4LL * sms;
  int64_t splits = base_blocks >= target ? 1 : (target + base_blocks - 1) / base_blocks;
  const int64_t max_splits = (n + kTile * kMinTilesPerSplit - 1) / (kTile * kMinTilesPerSplit);
  splits = std::max<int64_t>(1, std::min<int64_t>({splits, max_splits, 65535}));
  int64_t per = (n + splits - 1) / splits;
  per = (per + kTile - 1) / kTile * kTile;
  return per;
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
