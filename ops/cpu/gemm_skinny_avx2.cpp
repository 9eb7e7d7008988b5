// AVX2 + FMA tiles for the skinny SGEMM forms (drivers and dispatch: gemm_skinny.h), the
// 8-lane counterparts of gemm_skinny_avx512.cpp for processors without AVX-512.
//
// Broadcast-form tiles (bcast_tile) of R rows x 8*NV columns with NV <= 2 (16 columns) and
// R = 12 for NV = 1, 6 for NV = 2: 12 accumulators + NV vectors of b + 1 broadcast of the 16 ymm
// registers, the packed 6 x 16 kernel's ratio of loads to FMAs. AVX2 has no masked FMA or
// broadcast-from-memory operand, so a partial last vector of b is read with vmaskmovps (only in
// tiles whose last vector is partial) and the broadcast goes through a register.
// dot_rows: tiny M (<= 4) against B rows, two 8-lane chains per row.
#include "ops/cpu/isa.h"

#if LM_X86  // x86 only: gemm.cpp never calls it elsewhere
#include <immintrin.h>
#include <omp.h>

#include "ops/cpu/avx2_math.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/gemm_skinny.h"

namespace lm::cpu::detail {
namespace {

// LM_AVX2, tail_mask8: ops/cpu/avx2_math.h.
using skinny::DotFn;
using skinny::TileFn;
constexpr int kMaxNV = 2;  // widest tile: 2 vectors = 16 columns
constexpr int kMaxR = 12;  // tallest tile

// Rows of a tile whose widest strip has nv vectors (12 accumulators).
constexpr int skinny_rows_for(int nv) { return nv <= 1 ? 12 : 6; }

// ---- broadcast-form tile ------------------------------------------------------------------
// T(r, j) = sum_k a(r, k) b(k, j) for r < R, j < ncols (ncols in (8*(NV-1), 8*NV]).
//   a: a(r, k) = a[r*sa_i + k*sa_k]           (R rows of the streamed operand)
//   b: b(k, j) = b[k*sb_k + j], j < ncols
//   c: T(r, j) -> c[r*ldc + j], or c[j*ldc + r] when TRANS_C; c = alpha*T + beta*c,
//      c not read when beta == 0.
// PARTIAL: the last vector of b (and of C) has fewer than 8 columns, read and written masked.
template <int R, int NV, bool PARTIAL>
LM_AVX2 inline void bcast_accumulate(int64_t kc, const float* a, int64_t sa_i, int64_t sa_k,
                                     const float* b, int64_t sb_k, __m256i last, __m256 acc[R][NV]) {
  for (int64_t k = 0; k < kc; ++k, a += sa_k, b += sb_k) {
    if ((k & 15) == 0) {  // the streamed rows come from DRAM on a large bag: fetch 2 lines ahead
#pragma GCC unroll 12
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(a + r * sa_i + 32 * sa_k), _MM_HINT_T0);
    }
    // b's row 32 ahead (6 cycles of FMAs per k): stream_k's B block comes from memory on the first row tile of a strip.
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(b + 32 * sb_k + 8 * v), _MM_HINT_T0);
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      bv[v] = PARTIAL && v + 1 == NV ? _mm256_maskload_ps(b + 8 * v, last) : _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * sa_i);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
}

template <int R, int NV, bool TRANS_C>
LM_AVX2 void bcast_tile(int64_t kc, const float* a, int64_t sa_i, int64_t sa_k, const float* b,
                        int64_t sb_k, int ncols, float alpha, float beta, float* c, int64_t ldc) {
  const int last_cols = ncols - 8 * (NV - 1);
  const __m256i last = tail_mask8(last_cols);
  __m256 acc[R][NV];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  if constexpr (!TRANS_C) {  // start fetching the C rows written (and read when beta != 0) below
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + ncols - 1), _MM_HINT_T0);
    }
  }
  if (last_cols == 8)
    bcast_accumulate<R, NV, false>(kc, a, sa_i, sa_k, b, sb_k, last, acc);
  else
    bcast_accumulate<R, NV, true>(kc, a, sa_i, sa_k, b, sb_k, last, acc);

  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if constexpr (!TRANS_C) {
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        float* p = c + r * ldc + 8 * v;
        const int left = v + 1 < NV ? 8 : last_cols;
        __m256 t = _mm256_mul_ps(va, acc[r][v]);
        if (beta != 0.0f) t = _mm256_fmadd_ps(vb, load8(p, left), t);
        store8(p, left, t);
      }
  } else {
    alignas(32) float tile[R][8 * NV];  // tile[r][j] = alpha * T(r, j)
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) _mm256_store_ps(&tile[r][8 * v], _mm256_mul_ps(va, acc[r][v]));
    skinny::store_tile_transposed<R>(&tile[0][0], 8 * NV, ncols, beta, c, ldc);
  }
}

template <int R, int NV, bool T>
struct Tile {
  static constexpr TileFn fn = &bcast_tile<R, NV, T>;
};
constexpr auto& kTiles = skinny::TileTable<Tile, kMaxNV, kMaxR, skinny_rows_for>::value;

// Sum of the 8 lanes of v.
LM_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---- tiny M, trans_b: dot products ------------------------------------------------------
// C (M <= 4, N) = op(A) B^T with A rows and B rows contiguous along K (the class rows through
// 512x512 Linear layers: 3x512x512 tB). Each B row is read once with full vectors against the
// M rows of A (in L1), and the M sums are reduced across lanes at the end. OpenMP over blocks of
// B rows.
template <int MR>
LM_AVX2 void dot_rows(int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                      int64_t ldb, float beta, float* C, int64_t ldc, int threads) {
  constexpr int64_t kBlock = 32;  // B rows per parallel chunk
  const int64_t blocks = (N + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    for (int64_t j = blk * kBlock, end = std::min(N, j + kBlock); j < end; ++j) {
      const float* b = B + j * ldb;
      __m256 acc[MR], acc2[MR];
      for (int m = 0; m < MR; ++m) acc[m] = acc2[m] = _mm256_setzero_ps();
      int64_t k = 0;
      for (; k + 16 <= K; k += 16) {  // two independent chains per row
        const __m256 b0 = _mm256_loadu_ps(b + k), b1 = _mm256_loadu_ps(b + k + 8);
        for (int m = 0; m < MR; ++m) {
          acc[m] = _mm256_fmadd_ps(_mm256_loadu_ps(A + m * lda + k), b0, acc[m]);
          acc2[m] = _mm256_fmadd_ps(_mm256_loadu_ps(A + m * lda + k + 8), b1, acc2[m]);
        }
      }
      for (; k < K; k += 8) {
        const __m256 b0 = load8(b + k, K - k);
        for (int m = 0; m < MR; ++m) acc[m] = _mm256_fmadd_ps(load8(A + m * lda + k, K - k), b0, acc[m]);
      }
      for (int m = 0; m < MR; ++m) {
        const float sum = hsum8(_mm256_add_ps(acc[m], acc2[m]));
        float* c = C + m * ldc + j;
        *c = beta == 0.0f ? alpha * sum : alpha * sum + beta * *c;
      }
    }
  }
}

// The tile set gemm_skinny.h's drivers run on AVX2.
struct Avx2Tiles {
  static constexpr int kWidth = 8, kMaxNV = 2;
  static constexpr int64_t kStreamKRows = 32;  // M = 56: the packed 6 x 16 tiles win
  static constexpr bool kShortKForm = false;  // the packed path is faster (gemm_skinny.h)
  static int rows_for(int nv) { return skinny_rows_for(nv); }
  static TileFn tile(bool trans_c, int nv, int rows) { return kTiles[trans_c][nv - 1][rows - 1]; }
  static DotFn dot(int m) {
    return m == 1 ? dot_rows<1> : m == 2 ? dot_rows<2> : m == 3 ? dot_rows<3> : dot_rows<4>;
  }
  // stream_k's strip width in vectors: 2 (6-row tiles) or 1 (12-row tiles), whichever pads the
  // M x N output less (24 rows: 2; 12 rows: 1).
  static int strip_vectors(int64_t M, int64_t N) { return skinny::fewer_padded(M, N, 8, 1, 2, skinny_rows_for); }
};

}  // namespace

bool sgemm_skinny_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                       int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int threads) {
  return skinny::sgemm_skinny<Avx2Tiles>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                         threads);
}

}  // namespace lm::cpu::detail
#endif  // LM_X86
