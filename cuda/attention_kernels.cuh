// The fused attention kernels of cuda/attention.cu, in a header so that the standalone kernel
// study cuda/dev/attention.cu runs exactly the library's code (it is compiled by plain nvcc
// without the library). Self-contained: CUDA headers and cuda/device_math.cuh only, no
// tensor/ or error-checking code. Design, numerics and layout: cuda/attention.cu's top comment
// and docs/ops/attention.md. Needs C++17. tests/test_cuda_emulated.cpp also runs these kernels
// on the CPU (tests/cuda_emulator.h).
#pragma once
#ifndef LM_CUDA_EMULATION  // tests/cuda_emulator.h provides the CUDA names on the CPU
#include <cuda_runtime.h>
#endif

#include <cmath>
#include <cstdint>

#include "device_math.cuh"  // kWarp, d_exp, d_log, d_isinf, neg_inf (lm::cuda)

namespace LM_CUDA_NS::attention_kernels {

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

// Host side: how many items (keys, or queries) each split of a loop over `n` items gets: whole
// tiles, at least kMinTilesPerSplit of them, and enough splits that `base_blocks` blocks per
// split reach about four blocks per SM (`sms` multiprocessors). The split count is
// ceil(n / result).
inline int64_t items_per_split_for(int64_t n, int64_t base_blocks, int sms) {
  const int64_t target = 4LL * (sms < 1 ? 1 : sms);
  int64_t splits = base_blocks >= target ? 1 : (target + base_blocks - 1) / base_blocks;
  const int64_t max_splits = (n + kTile * kMinTilesPerSplit - 1) / (kTile * kMinTilesPerSplit);
  if (splits > max_splits) splits = max_splits;
  if (splits > 65535) splits = 65535;
  if (splits < 1) splits = 1;
  int64_t per = (n + splits - 1) / splits;
  per = (per + kTile - 1) / kTile * kTile;
  return per;
}

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
// Host side: the Mask view of an additive mask of nd <= 4 dims (shape, element strides)
// broadcast to (B, H, Lq, Lk): dims align to the right; size-1 and missing dims get stride 0.
template <class T>
inline Mask<T> make_mask(const T* p, int64_t nd, const int64_t* shape, const int64_t* strides) {
  int64_t st[4] = {0, 0, 0, 0};
  for (int64_t a = 0; a < nd; ++a) st[4 - nd + a] = shape[a] == 1 ? 0 : strides[a];
  return Mask<T>{p, st[0], st[1], st[2], st[3]};
}
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

}  // namespace LM_CUDA_NS::attention_kernels
