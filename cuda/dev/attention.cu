// Kernel study: fused scaled dot-product attention, forward and backward, float32 (llm.c
// dev/cuda style): a CPU reference (float64 sums), kernel versions 1..2, validation of each
// against the reference, then timing at the Libra-MIL shape (56 prototype queries over 200000
// instance keys, d = dv = 512, one head).
// Standalone program, not part of the library build. Compile and run (on a GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/attention_dev cuda/dev/attention.cu && /tmp/attention_dev [version]
// (use -arch=sm_80 for A100). Version 2 is what cuda/attention.cu ships.
//
//   1: naive, materialising: a thread per score (S = s q k^T + M, (Lq, Lk) in memory), a thread
//      per row for the softmax (P and lse in memory), a thread per output element for P v;
//      backward the same way (dP, dS = P (dP - rowsum(dP P)), then dq, dk, dv a thread per
//      element).
//   2: fused (cuda/attention.cu): online softmax over key tiles staged in shared memory, a warp
//      per query row, lane-per-key dot products, the output row in registers, keys split over
//      blocks and merged in order; backward with FlashAttention-2 algebra (delta = rowsum(dO O),
//      p recomputed from lse), a warp per query row for dq and a warp per key row for dk / dv.
//      The kernels below are a verbatim copy of cuda/attention.cu's (between "Tile geometry"
//      and "host side"); re-copy them when the library's change.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common.h"

// ---- CPU reference (float64 sums) -----------------------------------------------------------
// q: (BH, Lq, d), k: (BH, Lk, d), v: (BH, Lk, dv); mask: (Lq, Lk) or empty; out: (BH, Lq, dv),
// lse: (BH, Lq).
void attention_forward_cpu(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                           const std::vector<float>& mask, int BH, int Lq, int Lk, int d, int dv, float scale,
                           std::vector<float>& out, std::vector<float>& lse) {
  out.assign((size_t)BH * Lq * dv, 0.f);
  lse.assign((size_t)BH * Lq, 0.f);
  std::vector<double> s(Lk), o(dv);
  for (int b = 0; b < BH; ++b)
    for (int i = 0; i < Lq; ++i) {
      const float* qi = &q[((size_t)b * Lq + i) * d];
      double m = -INFINITY;
      for (int j = 0; j < Lk; ++j) {
        const float* kj = &k[((size_t)b * Lk + j) * d];
        double a = 0;
        for (int c = 0; c < d; ++c) a += (double)qi[c] * kj[c];
        s[j] = a * scale + (mask.empty() ? 0.0 : (double)mask[(size_t)i * Lk + j]);
        m = s[j] > m ? s[j] : m;
      }
      double l = 0;
      for (int c = 0; c < dv; ++c) o[c] = 0;
      for (int j = 0; j < Lk; ++j) {
        const double p = std::exp(s[j] - m);
        l += p;
        const float* vj = &v[((size_t)b * Lk + j) * dv];
        for (int c = 0; c < dv; ++c) o[c] += p * vj[c];
      }
      for (int c = 0; c < dv; ++c) out[((size_t)b * Lq + i) * dv + c] = (float)(o[c] / l);
      lse[(size_t)b * Lq + i] = (float)(m + std::log(l));
    }
}

// dout: (BH, Lq, dv); dq, dk, dv_: shaped like q, k, v.
void attention_backward_cpu(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                            const std::vector<float>& mask, const std::vector<float>& out,
                            const std::vector<float>& lse, const std::vector<float>& dout, int BH, int Lq, int Lk, int d,
                            int dv, float scale, std::vector<float>& dq, std::vector<float>& dk,
                            std::vector<float>& dvv) {
  std::vector<double> gq((size_t)BH * Lq * d, 0), gk((size_t)BH * Lk * d, 0), gv((size_t)BH * Lk * dv, 0);
  for (int b = 0; b < BH; ++b)
    for (int i = 0; i < Lq; ++i) {
      const size_t r = (size_t)b * Lq + i;
      double D = 0;
      for (int c = 0; c < dv; ++c) D += (double)dout[r * dv + c] * out[r * dv + c];
      for (int j = 0; j < Lk; ++j) {
        const size_t kr = (size_t)b * Lk + j;
        double s = 0, dp = 0;
        for (int c = 0; c < d; ++c) s += (double)q[r * d + c] * k[kr * d + c];
        for (int c = 0; c < dv; ++c) dp += (double)dout[r * dv + c] * v[kr * dv + c];
        s = s * scale + (mask.empty() ? 0.0 : (double)mask[(size_t)i * Lk + j]);
        const double p = std::exp(s - (double)lse[r]);
        const double ds = p * (dp - D);
        for (int c = 0; c < d; ++c) {
          gq[r * d + c] += scale * ds * k[kr * d + c];
          gk[kr * d + c] += scale * ds * q[r * d + c];
        }
        for (int c = 0; c < dv; ++c) gv[kr * dv + c] += p * dout[r * dv + c];
      }
    }
  dq.assign(gq.begin(), gq.end());
  dk.assign(gk.begin(), gk.end());
  dvv.assign(gv.begin(), gv.end());
}

// ---- version 1: naive, materialising ----------------------------------------------------------
// q: (BH, Lq, d), k: (BH, Lk, d); mask: (Lq, Lk) or null; S: (BH, Lq, Lk). A thread per score.
__global__ void scores_kernel1(const float* q, const float* k, const float* mask, int BH, int Lq, int Lk, int d,
                               float scale, float* S) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lq * Lk) return;
  const int j = (int)(x % Lk), i = (int)((x / Lk) % Lq), b = (int)(x / ((long long)Lk * Lq));
  const float* qi = q + ((long long)b * Lq + i) * d;
  const float* kj = k + ((long long)b * Lk + j) * d;
  float a = 0;
  for (int c = 0; c < d; ++c) a += qi[c] * kj[c];
  S[x] = a * scale + (mask ? mask[(long long)i * Lk + j] : 0.f);
}
// S -> P in place, lse: (rows). A thread per row.
__global__ void softmax_kernel1(float* S, long long rows, int Lk, float* lse) {
  const long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float* s = S + r * Lk;
  float m = -INFINITY;
  for (int j = 0; j < Lk; ++j) m = s[j] > m ? s[j] : m;
  const float mm = isinf(m) && m < 0 ? 0.f : m;
  float l = 0;
  for (int j = 0; j < Lk; ++j) l += expf(s[j] - mm);
  for (int j = 0; j < Lk; ++j) s[j] = expf(s[j] - mm) / l;
  lse[r] = mm + logf(l);
}
// P: (BH, Lq, Lk), v: (BH, Lk, dv), out: (BH, Lq, dv). A thread per output element.
__global__ void pv_kernel1(const float* P, const float* v, int BH, int Lq, int Lk, int dv, float* out) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lq * dv) return;
  const int c = (int)(x % dv);
  const long long r = x / dv, b = r / Lq;
  float a = 0;
  for (int j = 0; j < Lk; ++j) a += P[r * Lk + j] * v[(b * Lk + j) * dv + c];
  out[x] = a;
}
// dout: (BH, Lq, dv), v: (BH, Lk, dv), dP: (BH, Lq, Lk). A thread per element.
__global__ void dp_kernel1(const float* dout, const float* v, int BH, int Lq, int Lk, int dv, float* dP) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lq * Lk) return;
  const int j = (int)(x % Lk);
  const long long r = x / Lk, b = r / Lq;
  float a = 0;
  for (int c = 0; c < dv; ++c) a += dout[r * dv + c] * v[(b * Lk + j) * dv + c];
  dP[x] = a;
}
// P, dP -> dS in place of dP: dS = P (dP - sum_l dP_l P_l). A thread per row.
__global__ void ds_kernel1(const float* P, float* dP, long long rows, int Lk) {
  const long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float D = 0;
  for (int j = 0; j < Lk; ++j) D += dP[r * Lk + j] * P[r * Lk + j];
  for (int j = 0; j < Lk; ++j) dP[r * Lk + j] = P[r * Lk + j] * (dP[r * Lk + j] - D);
}
// dS: (BH, Lq, Lk), k: (BH, Lk, d), dq: (BH, Lq, d) = scale dS k. A thread per element.
__global__ void dq_kernel1(const float* dS, const float* k, int BH, int Lq, int Lk, int d, float scale, float* dq) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lq * d) return;
  const int c = (int)(x % d);
  const long long r = x / d, b = r / Lq;
  float a = 0;
  for (int j = 0; j < Lk; ++j) a += dS[r * Lk + j] * k[(b * Lk + j) * d + c];
  dq[x] = scale * a;
}
// A: (BH, Lq, Lk) (dS or P), X: (BH, Lq, n) (q or dout), Y: (BH, Lk, n) = factor A^T X.
__global__ void at_x_kernel1(const float* A, const float* X, int BH, int Lq, int Lk, int n, float factor, float* Y) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lk * n) return;
  const int c = (int)(x % n);
  const long long kr = x / n, b = kr / Lk, j = kr % Lk;
  float a = 0;
  for (int i = 0; i < Lq; ++i) a += A[(b * Lq + i) * Lk + j] * X[(b * Lq + i) * n + c];
  Y[x] = factor * a;
}

// ---- version 2: the library's fused kernels (verbatim copy of cuda/attention.cu) -------------
namespace v2 {
constexpr int kWarp = 32;
template <class T> __device__ __forceinline__ T neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return -INFINITY; }
template <> __device__ __forceinline__ double neg_inf<double>() { return -(double)INFINITY; }
__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ bool d_isinf(float x) { return isinf(x); }
__device__ __forceinline__ bool d_isinf(double x) { return isinf(x); }

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

}  // namespace v2

// ---- drivers ----------------------------------------------------------------------------------

struct Problem {
  int BH, Lq, Lk, d, dv;
  bool mask;
  const char* name;
};

// Device buffers of one problem, plus the workspaces of both versions (sized for any split).
struct Buffers {
  float *q, *k, *v, *mask = nullptr, *out, *lse, *dout, *dq, *dk, *dv;
  float *S = nullptr, *dP = nullptr;               // version 1
  float *po, *pm, *pl, *delta, *pdq, *pdk, *pdv;    // version 2
};

int g_sms = 1;

// cuda/attention.cu's split choice (items_per_split).
long long items_per_split(long long n, long long base_blocks) {
  const long long target = 4LL * g_sms;
  long long splits = base_blocks >= target ? 1 : (target + base_blocks - 1) / base_blocks;
  const long long max_splits = (n + v2::kTile * v2::kMinTilesPerSplit - 1) / (v2::kTile * v2::kMinTilesPerSplit);
  splits = std::max(1LL, std::min(std::min(splits, max_splits), 65535LL));
  long long per = (n + splits - 1) / splits;
  return (per + v2::kTile - 1) / v2::kTile * v2::kTile;
}

float* dev_alloc(size_t n) {
  float* p = nullptr;
  DEV_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(float)));
  return p;
}

v2::Mask<float> mask_view(const Problem& P, const Buffers& b) {
  return v2::Mask<float>{P.mask ? b.mask : nullptr, 0, 0, P.mask ? (int64_t)P.Lk : 0, P.mask ? 1 : 0};
}

void forward(int version, const Problem& P, const Buffers& b, float scale) {
  const long long rows = (long long)P.BH * P.Lq;
  if (version == 1) {
    const long long ns = rows * P.Lk;
    scores_kernel1<<<ceil_div(ns, 256), 256>>>(b.q, b.k, P.mask ? b.mask : nullptr, P.BH, P.Lq, P.Lk, P.d, scale, b.S);
    softmax_kernel1<<<ceil_div(rows, 128), 128>>>(b.S, rows, P.Lk, b.lse);
    pv_kernel1<<<ceil_div(rows * P.dv, 256), 256>>>(b.S, b.v, P.BH, P.Lq, P.Lk, P.dv, b.out);
  } else {
    constexpr int CW = v2::Cfg<float>::CW;
    const long long row_blocks = (P.Lq + v2::kRows - 1) / v2::kRows;
    const int zc = (P.dv + CW - 1) / CW;
    const long long kps = items_per_split(P.Lk, P.BH * row_blocks * zc);
    const long long splits = (P.Lk + kps - 1) / kps;
    const dim3 grid((unsigned)(P.BH * row_blocks), (unsigned)splits, (unsigned)zc);
    v2::attention_forward_kernel<float><<<grid, v2::kBlock>>>(b.q, b.k, b.v, mask_view(P, b), 1, P.Lq, P.Lk, P.d, P.dv,
                                                              scale, kps, b.out, b.lse, b.po, b.pm, b.pl);
    if (splits > 1)
      v2::attention_combine_kernel<float><<<ceil_div(rows * 32, 256), 256>>>(b.po, b.pm, b.pl, (int)splits, rows, P.dv,
                                                                             b.out, b.lse);
  }
  DEV_CHECK(cudaGetLastError());
}

void backward(int version, const Problem& P, const Buffers& b, float scale) {
  const long long rows = (long long)P.BH * P.Lq, krows = (long long)P.BH * P.Lk;
  if (version == 1) {
    // Recomputes S and P (the composed op would have saved P; this version stores it anyway).
    const long long ns = rows * P.Lk;
    scores_kernel1<<<ceil_div(ns, 256), 256>>>(b.q, b.k, P.mask ? b.mask : nullptr, P.BH, P.Lq, P.Lk, P.d, scale, b.S);
    softmax_kernel1<<<ceil_div(rows, 128), 128>>>(b.S, rows, P.Lk, b.delta);
    dp_kernel1<<<ceil_div(ns, 256), 256>>>(b.dout, b.v, P.BH, P.Lq, P.Lk, P.dv, b.dP);
    ds_kernel1<<<ceil_div(rows, 128), 128>>>(b.S, b.dP, rows, P.Lk);
    dq_kernel1<<<ceil_div(rows * P.d, 256), 256>>>(b.dP, b.k, P.BH, P.Lq, P.Lk, P.d, scale, b.dq);
    at_x_kernel1<<<ceil_div(krows * P.d, 256), 256>>>(b.dP, b.q, P.BH, P.Lq, P.Lk, P.d, scale, b.dk);
    at_x_kernel1<<<ceil_div(krows * P.dv, 256), 256>>>(b.S, b.dout, P.BH, P.Lq, P.Lk, P.dv, 1.f, b.dv);
  } else {
    constexpr int CW = v2::Cfg<float>::CW;
    const v2::Mask<float> mv = mask_view(P, b);
    v2::attention_delta_kernel<float><<<ceil_div(rows * 32, 256), 256>>>(b.dout, b.out, rows, P.dv, b.delta);
    {
      const long long row_blocks = (P.Lq + v2::kRows - 1) / v2::kRows;
      const int zc = (P.d + CW - 1) / CW;
      const long long kps = items_per_split(P.Lk, P.BH * row_blocks * zc);
      const long long splits = (P.Lk + kps - 1) / kps;
      const dim3 grid((unsigned)(P.BH * row_blocks), (unsigned)splits, (unsigned)zc);
      v2::attention_backward_dq_kernel<float><<<grid, v2::kBlock>>>(b.q, b.k, b.v, mv, b.dout, b.lse, b.delta, 1, P.Lq,
                                                                    P.Lk, P.d, P.dv, scale, kps, b.dq, b.pdq);
      if (splits > 1)
        v2::attention_sum_splits_kernel<float><<<ceil_div(rows * P.d, 256), 256>>>(b.pdq, (int)splits, rows * P.d,
                                                                                   scale, b.dq);
    }
    {
      const long long key_blocks = (P.Lk + v2::kRows - 1) / v2::kRows;
      const int zc = (std::max(P.d, P.dv) + CW - 1) / CW;
      const long long qps = items_per_split(P.Lq, P.BH * key_blocks * zc);
      const long long splits = (P.Lq + qps - 1) / qps;
      const dim3 grid((unsigned)(P.BH * key_blocks), (unsigned)splits, (unsigned)zc);
      v2::attention_backward_dkdv_kernel<float><<<grid, v2::kBlock>>>(b.q, b.k, b.v, mv, b.dout, b.lse, b.delta, 1,
                                                                      P.Lq, P.Lk, P.d, P.dv, scale, qps, b.dk, b.dv,
                                                                      b.pdk, b.pdv);
      if (splits > 1) {
        v2::attention_sum_splits_kernel<float><<<ceil_div(krows * P.d, 256), 256>>>(b.pdk, (int)splits, krows * P.d,
                                                                                    scale, b.dk);
        v2::attention_sum_splits_kernel<float><<<ceil_div(krows * P.dv, 256), 256>>>(b.pdv, (int)splits,
                                                                                     krows * P.dv, 1.0, b.dv);
      }
    }
  }
  DEV_CHECK(cudaGetLastError());
}

Buffers make_buffers(const Problem& P, const std::vector<float>& q, const std::vector<float>& k,
                     const std::vector<float>& v, const std::vector<float>& mask, const std::vector<float>& dout,
                     bool with_v1) {
  Buffers b;
  const size_t rows = (size_t)P.BH * P.Lq, krows = (size_t)P.BH * P.Lk;
  b.q = to_device(q);
  b.k = to_device(k);
  b.v = to_device(v);
  if (P.mask) b.mask = to_device(mask);
  b.dout = to_device(dout);
  b.out = dev_alloc(rows * P.dv);
  b.lse = dev_alloc(rows);
  b.dq = dev_alloc(rows * P.d);
  b.dk = dev_alloc(krows * P.d);
  b.dv = dev_alloc(krows * P.dv);
  if (with_v1) {
    b.S = dev_alloc(rows * P.Lk);
    b.dP = dev_alloc(rows * P.Lk);
  }
  const size_t max_splits = 65535;  // generous upper bounds: splits never exceed items / 128 + 1
  const size_t ks = std::min<size_t>(max_splits, P.Lk / 128 + 1), qs = std::min<size_t>(max_splits, P.Lq / 128 + 1);
  b.po = dev_alloc(ks * rows * P.dv);
  b.pm = dev_alloc(ks * rows);
  b.pl = dev_alloc(ks * rows);
  b.delta = dev_alloc(rows);
  b.pdq = dev_alloc(ks * rows * P.d);
  b.pdk = dev_alloc(qs * krows * P.d);
  b.pdv = dev_alloc(qs * krows * P.dv);
  return b;
}

void free_buffers(Buffers& b) {
  for (float* p : {b.q, b.k, b.v, b.mask, b.out, b.lse, b.dout, b.dq, b.dk, b.dv, b.S, b.dP, b.po, b.pm, b.pl, b.delta,
                   b.pdq, b.pdk, b.pdv})
    if (p) DEV_CHECK(cudaFree(p));
}

double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) m = std::max(m, (double)std::fabs(v));
  return m;
}

// Per-element |err| <= 1e-5 max|ref| + 1e-4 |ref| (float32 sums of up to a few thousand terms).
bool check(const char* name, const float* d, const std::vector<float>& ref) {
  return validate(name, d, ref, 1e-5 * max_abs(ref) + 1e-7, 1e-4);
}

int main(int argc, char** argv) {
  const int only = argc > 1 ? std::atoi(argv[1]) : 0;
  DEV_CHECK(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, 0));
  bool all_ok = true;

  // Validation: a Libra-MIL-like shape with fewer keys (the CPU reference is O(Lq Lk d)) and an
  // odd one with a mask (Lq, Lk) of 0 / -inf (first key never masked).
  const Problem val[] = {{1, 56, 4096, 512, 512, false, "Lq 56, Lk 4096, d = dv = 512"},
                         {2, 5, 300, 37, 19, true, "BH 2, Lq 5, Lk 300, d 37, dv 19, mask"}};
  for (const Problem& P : val) {
    std::printf("validate: %s\n", P.name);
    const float scale = 1.f / std::sqrt((float)P.d);
    std::vector<float> q = random_vector((size_t)P.BH * P.Lq * P.d, -1.f, 1.f, 1);
    std::vector<float> k = random_vector((size_t)P.BH * P.Lk * P.d, -1.f, 1.f, 2);
    std::vector<float> v = random_vector((size_t)P.BH * P.Lk * P.dv, -1.f, 1.f, 3);
    std::vector<float> dout = random_vector((size_t)P.BH * P.Lq * P.dv, -1.f, 1.f, 4);
    std::vector<float> mask;
    if (P.mask) {
      mask = random_vector((size_t)P.Lq * P.Lk, 0.f, 1.f, 5);
      for (size_t x = 0; x < mask.size(); ++x) mask[x] = (x % P.Lk != 0 && mask[x] < 0.4f) ? -INFINITY : 0.f;
    }
    std::vector<float> out, lse, dq, dk, dvv;
    attention_forward_cpu(q, k, v, mask, P.BH, P.Lq, P.Lk, P.d, P.dv, scale, out, lse);
    attention_backward_cpu(q, k, v, mask, out, lse, dout, P.BH, P.Lq, P.Lk, P.d, P.dv, scale, dq, dk, dvv);
    Buffers b = make_buffers(P, q, k, v, mask, dout, true);
    for (int ver = 1; ver <= 2; ++ver) {
      if (only && ver != only) continue;
      std::printf("version %d\n", ver);
      forward(ver, P, b, scale);
      DEV_CHECK(cudaDeviceSynchronize());
      all_ok &= check("out", b.out, out);
      all_ok &= check("lse", b.lse, lse);
      backward(ver, P, b, scale);
      DEV_CHECK(cudaDeviceSynchronize());
      all_ok &= check("dq", b.dq, dq);
      all_ok &= check("dk", b.dk, dk);
      all_ok &= check("dv", b.dv, dvv);
    }
    free_buffers(b);
  }

  // Timing at the Libra-MIL shape (no CPU reference: too slow).
  const Problem T{1, 56, 200000, 512, 512, false, "Lq 56, Lk 200000, d = dv = 512"};
  std::printf("time: %s\n", T.name);
  {
    const float scale = 1.f / std::sqrt((float)T.d);
    std::vector<float> q = random_vector((size_t)T.Lq * T.d, -1.f, 1.f, 1);
    std::vector<float> k = random_vector((size_t)T.Lk * T.d, -1.f, 1.f, 2);
    std::vector<float> v = random_vector((size_t)T.Lk * T.dv, -1.f, 1.f, 3);
    std::vector<float> dout = random_vector((size_t)T.Lq * T.dv, -1.f, 1.f, 4);
    Buffers b = make_buffers(T, q, k, v, {}, dout, true);
    const double flop_fwd = 2.0 * T.Lq * (double)T.Lk * (T.d + T.dv);
    for (int ver = 1; ver <= 2; ++ver) {
      if (only && ver != only) continue;
      const int reps = ver == 1 ? 3 : 20;
      const float fms = time_ms([&] { forward(ver, T, b, scale); }, reps);
      const float bms = time_ms([&] { backward(ver, T, b, scale); }, reps);
      std::printf("  version %d: forward %.4f ms (%.1f GFLOP/s), backward %.4f ms\n", ver, fms, flop_fwd / fms / 1e6,
                  bms);
      // machine-readable lines for tools/gpu_check.sh
      std::printf("BENCH attention_fwd v%d ms=%.4f\n", ver, fms);
      std::printf("BENCH attention_bwd v%d ms=%.4f\n", ver, bms);
    }
    free_buffers(b);
  }
  std::printf(all_ok ? "all versions match the CPU reference\n" : "SOME VERSIONS FAILED\n");
  return all_ok ? 0 : 1;
}
