// AVX-512 SGEMM path for skinny products whose operands are both contiguous along K
// (!trans_a, trans_b) with M or N <= 64, where packing (gemm.cpp) would copy the large operand
// for a handful of output rows or columns. Libra-MIL's step is full of them: attention scores
// (24 class queries x 8000 instances over D = 512), similarities S (8000 instances x 56
// prototypes). Every C[i, j] is then a dot product of two contiguous rows.
//
// Register tile: 4 A rows x 6 B rows = 24 vector accumulators over K (16 floats per step); the
// 24 sums are reduced across lanes at the end of the tile. The large operand is streamed once,
// without a copy; the small one stays in L1/L2.
//
//   for each 4 x 6 tile (i0, j0):  acc[a][b] += A[i0+a, k:k+16] * B[j0+b, k:k+16]
//
// Handles alpha, beta (beta == 0: C not read) and any leading dimensions; the result equals
// the packed path's up to float rounding (different summation order).
//
// Tried and dropped: an "axpy" form for !trans_b with small M (6 x 64 register tile, K blocked
// by 256) for the attention-weighted sums (24 x 512 x 8000); it measured 2-3x slower than the
// packed path (on a loaded machine, 2026-11-29), so those shapes stay packed for now.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "ops/cpu/gemm.h"

// GCC 12's intrinsic headers trip -W(maybe-)uninitialized through _mm512_reduce_add_ps's
// _mm512_undefined_* placeholders: false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace lm::cpu::detail {
namespace {

#define LM_SKINNY_TARGET __attribute__((target("avx512f,avx512dq,fma")))

constexpr int64_t kSkinny = 64;   // the small dimension must be at most this
constexpr int kDotMI = 4, kDotNJ = 6;

LM_SKINNY_TARGET inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

// ---- dot form -------------------------------------------------------------------------------
// C[i0:i0+MI, j0:j0+NJ] from A rows (lda) and B rows (ldb), both of length K.
template <int MI, int NJ>
LM_SKINNY_TARGET void dot_tile(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t K, float alpha,
                               float beta, float* C, int64_t ldc) {
  __m512 acc[MI][NJ];
  for (int a = 0; a < MI; ++a)
    for (int b = 0; b < NJ; ++b) acc[a][b] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 av[MI];
    for (int a = 0; a < MI; ++a) av[a] = _mm512_loadu_ps(A + a * lda + k);
    for (int b = 0; b < NJ; ++b) {
      const __m512 bv = _mm512_loadu_ps(B + b * ldb + k);
      for (int a = 0; a < MI; ++a) acc[a][b] = _mm512_fmadd_ps(av[a], bv, acc[a][b]);
    }
  }
  if (k < K) {
    const __mmask16 m = tail_mask(K - k);
    __m512 av[MI];
    for (int a = 0; a < MI; ++a) av[a] = _mm512_maskz_loadu_ps(m, A + a * lda + k);
    for (int b = 0; b < NJ; ++b) {
      const __m512 bv = _mm512_maskz_loadu_ps(m, B + b * ldb + k);
      for (int a = 0; a < MI; ++a) acc[a][b] = _mm512_fmadd_ps(av[a], bv, acc[a][b]);
    }
  }
  for (int a = 0; a < MI; ++a)
    for (int b = 0; b < NJ; ++b) {
      float* c = C + a * ldc + b;
      const float s = alpha * _mm512_reduce_add_ps(acc[a][b]);
      *c = beta == 0.0f ? s : s + beta * *c;
    }
}

using DotTileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float, float, float*, int64_t);

template <int MI, int... NJ>
constexpr auto dot_row(std::integer_sequence<int, NJ...>) {
  return std::array<DotTileFn, sizeof...(NJ)>{&dot_tile<MI, NJ + 1>...};
}
template <int... MI>
constexpr auto dot_table(std::integer_sequence<int, MI...>) {
  return std::array<std::array<DotTileFn, kDotNJ>, sizeof...(MI)>{dot_row<MI + 1>(std::make_integer_sequence<int, kDotNJ>{})...};
}
constexpr auto kDotTiles = dot_table(std::make_integer_sequence<int, kDotMI>{});

void dot_form(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
              float beta, float* C, int64_t ldc, bool parallel) {
  auto tile = [&](int64_t i0, int64_t j0) {
    const int mi = (int)std::min<int64_t>(kDotMI, M - i0), nj = (int)std::min<int64_t>(kDotNJ, N - j0);
    kDotTiles[mi - 1][nj - 1](A + i0 * lda, lda, B + j0 * ldb, ldb, K, alpha, beta, C + i0 * ldc + j0, ldc);
  };
  if (N >= M) {  // many B rows: B row blocks outer (streamed once), all of A (small) inner
    const int64_t nb = (N + kDotNJ - 1) / kDotNJ;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t jb = 0; jb < nb; ++jb)
      for (int64_t i0 = 0; i0 < M; i0 += kDotMI) tile(i0, jb * kDotNJ);
  } else {
    const int64_t mb = (M + kDotMI - 1) / kDotMI;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t ib = 0; ib < mb; ++ib)
      for (int64_t j0 = 0; j0 < N; j0 += kDotNJ) tile(ib * kDotMI, j0);
  }
}

}  // namespace

bool sgemm_skinny_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int threads) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
  const bool parallel = threads > 1;
  if (!trans_a && trans_b && std::min(M, N) <= kSkinny && std::max(M, N) >= 2 * kSkinny) {
    dot_form(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, parallel);
    return true;
  }
  return false;
}

}  // namespace lm::cpu::detail
