// AVX-512 tiles for the skinny SGEMM forms (drivers and dispatch: gemm_skinny.h).
//
// Broadcast-form tiles (bcast_tile) of R rows x 16*NV columns, NV <= 4 (64 columns) and
// R = 6, 8, 12, 12 for NV = 4, 3, 2, 1: about 24 accumulators + NV vectors + 1 broadcast of the
// 32 zmm registers, 4-6 loads per 12 cycles of FMAs. There are no horizontal reductions (the
// earlier "dot form" for trans_b, a 4 x 6 tile of dot products over K reduced across lanes at
// the end, reached about half the GEMM peak and is gone). a and b are read through strides, so
// a transposed operand needs no copy; C may be written transposed (T = C^T: the tile goes
// through a small buffer, then scalar writes). dot_rows: tiny M (<= 4) against B rows.
#include "ops/cpu/isa.h"

#if LM_X86  // x86 only: gemm.cpp never calls it elsewhere
#include <immintrin.h>
#include <omp.h>

#include "ops/cpu/avx512_math.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/gemm_skinny.h"

namespace lm::cpu::detail {
namespace {

// LM_AVX512, tail_mask, hsum16: ops/cpu/avx512_math.h.
using skinny::DotFn;
using skinny::TileFn;
constexpr int kMaxNV = 4;  // widest tile: 4 vectors = 64 columns
constexpr int kMaxR = 12;  // tallest tile

// Rows of a tile whose widest strip has nv vectors (about 24 accumulators).
constexpr int skinny_rows_for(int nv) { return nv <= 2 ? 12 : nv == 3 ? 8 : 6; }

// ---- broadcast-form tile ------------------------------------------------------------------
// T(r, j) = sum_k a(r, k) b(k, j) for r < R, j < ncols (ncols in (16*(NV-1), 16*NV]).
//   a: a(r, k) = a[r*sa_i + k*sa_k]           (R rows of the streamed operand)
//   b: b(k, j) = b[k*sb_k + j], j < ncols
//   c: T(r, j) -> c[r*ldc + j], or c[j*ldc + r] when TRANS_C; c = alpha*T + beta*c,
//      c not read when beta == 0.
// `last` masks the loads of b's last vector and the stores of C's last vector.
template <int R, int NV, bool TRANS_C>
LM_AVX512 void bcast_tile(int64_t kc, const float* a, int64_t sa_i, int64_t sa_k, const float* b,
                          int64_t sb_k, int ncols, float alpha, float beta, float* c, int64_t ldc) {
  const __mmask16 last = tail_mask(ncols - 16 * (NV - 1));
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += sa_k, b += sb_k) {
    if ((k & 15) == 0) {  // the streamed rows come from DRAM on a large bag: fetch 2 lines ahead
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(a + r * sa_i + 32 * sa_k), _MM_HINT_T0);
    }
    // b's row 16 ahead: stream_k's B block comes from memory on the first row tile of a strip.
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(b + 16 * sb_k + 16 * v), _MM_HINT_T0);
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = v + 1 < NV ? _mm512_loadu_ps(b + 16 * v) : _mm512_maskz_loadu_ps(last, b + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * sa_i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if constexpr (!TRANS_C) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* p = c + r * ldc + 16 * v;
        const __mmask16 m = v + 1 < NV ? (__mmask16)0xFFFF : last;
        __m512 t = _mm512_mul_ps(va, acc[r][v]);
        if (beta != 0.0f) t = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, p), t);
        _mm512_mask_storeu_ps(p, m, t);
      }
  } else {
    alignas(64) float tile[R][16 * NV];  // tile[r][j] = alpha * T(r, j)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm512_store_ps(&tile[r][16 * v], _mm512_mul_ps(va, acc[r][v]));
    skinny::store_tile_transposed<R>(&tile[0][0], 16 * NV, ncols, beta, c, ldc);
  }
}

template <int R, int NV, bool T>
struct Tile {
  static constexpr TileFn fn = &bcast_tile<R, NV, T>;
};
constexpr auto& kTiles = skinny::TileTable<Tile, kMaxNV, kMaxR, skinny_rows_for>::value;

// ---- tiny M, trans_b: dot products ------------------------------------------------------
// C (M <= 4, N) = op(A) B^T with A rows and B rows contiguous along K (q_proj / o_proj / head
// Linear layers applied to the C = 3 class rows: 3x512x512 tB). The broadcast form would fill
// 3 of 16 lanes; here each B row is read once with full vectors against the M rows of A (in
// L1), and the M sums are reduced across lanes at the end. OpenMP over blocks of B rows.
template <int MR>
LM_AVX512 void dot_rows(int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                               int64_t ldb, float beta, float* C, int64_t ldc, int threads) {
  constexpr int64_t kBlock = 32;  // B rows per parallel chunk
  const int64_t blocks = (N + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    for (int64_t j = blk * kBlock, end = std::min(N, j + kBlock); j < end; ++j) {
      const float* b = B + j * ldb;
      __m512 acc[MR], acc2[MR];
      for (int m = 0; m < MR; ++m) acc[m] = acc2[m] = _mm512_setzero_ps();
      int64_t k = 0;
      for (; k + 32 <= K; k += 32) {  // two independent chains per row
        const __m512 b0 = _mm512_loadu_ps(b + k), b1 = _mm512_loadu_ps(b + k + 16);
        for (int m = 0; m < MR; ++m) {
          acc[m] = _mm512_fmadd_ps(_mm512_loadu_ps(A + m * lda + k), b0, acc[m]);
          acc2[m] = _mm512_fmadd_ps(_mm512_loadu_ps(A + m * lda + k + 16), b1, acc2[m]);
        }
      }
      for (; k < K; k += 16) {
        const __mmask16 msk = tail_mask(K - k);
        const __m512 b0 = _mm512_maskz_loadu_ps(msk, b + k);
        for (int m = 0; m < MR; ++m) acc[m] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(msk, A + m * lda + k), b0, acc[m]);
      }
      for (int m = 0; m < MR; ++m) {
        const float sum = hsum16(_mm512_add_ps(acc[m], acc2[m]));
        float* c = C + m * ldc + j;
        *c = beta == 0.0f ? alpha * sum : alpha * sum + beta * *c;
      }
    }
  }
}

// The tile set gemm_skinny.h's drivers run on AVX-512.
struct Avx512Tiles {
  static constexpr int kWidth = 16, kMaxNV = 4;
  static constexpr int64_t kStreamKRows = 128;  // includes M = 56 and 80 (gemm_skinny.h)
  static constexpr bool kShortKForm = true;
  static int rows_for(int nv) { return skinny_rows_for(nv); }
  static TileFn tile(bool trans_c, int nv, int rows) { return kTiles[trans_c][nv - 1][rows - 1]; }
  static DotFn dot(int m) {
    return m == 1 ? dot_rows<1> : m == 2 ? dot_rows<2> : m == 3 ? dot_rows<3> : dot_rows<4>;
  }
  // stream_k's strip width in vectors: 4 (6-row tiles) or 3 (8-row tiles), whichever pads the
  // M x N output less (8 rows: 3; 24 rows: 4).
  static int strip_vectors(int64_t M, int64_t N) { return skinny::fewer_padded(M, N, 16, 3, 4, skinny_rows_for); }
};

}  // namespace

bool sgemm_skinny_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int threads) {
  return skinny::sgemm_skinny<Avx512Tiles>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                           threads);
}

}  // namespace lm::cpu::detail
#endif  // LM_X86
