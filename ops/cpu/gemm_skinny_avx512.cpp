// AVX-512 SGEMM paths for skinny products, where packing (gemm.cpp) would copy the large
// operand for a handful of output rows or columns, or where K is too short to amortise it.
// Libra-MIL's step is full of them (8000 instances, D = 512, 24 class queries, 56 prototypes):
// similarities V P^T (8000x56x512 tB), attention scores Q V^T (24x8000x512 tB), pooled
// attn V (24x512x8000), dV = attn^T dPooled (8000x512x24 tA), the 8000x46x10 head.
//
// One "broadcast form" kernel serves all of them (bcast_tile): a tile T(R rows, 16*NV columns)
// of a product T = a * b lives in R x NV zmm accumulators; per k it loads the NV vectors of
// b's row k and broadcasts (vbroadcastss from memory) a(r, k) for the R rows:
//
//   for k:  bv[v] = b[k, 16v : 16v+16]             (NV loads, the last one masked)
//           for r < R:  acc[r][v] += a(r, k) * bv[v]  (R*NV FMAs)
//
// NV <= 4 (64 columns) and R = 6, 8, 12, 12 for NV = 4, 3, 2, 1: about 24 accumulators + NV
// vectors + 1 broadcast of the 32 zmm registers, 4-6 loads per 12 cycles of FMAs. There are no
// horizontal reductions (the earlier "dot form" for trans_b, a 4 x 6 tile of dot products over
// K reduced across lanes at the end, reached about half the GEMM peak and is gone). a and b are
// read through strides, so a transposed operand needs no copy; C may be written transposed
// (T = C^T: the tile goes through a small buffer, then scalar writes).
//
// Drivers: which operand is streamed unpacked and which one is small.
//   stream_rows: rows of T are streamed (op(A) rows; B rows when T = C^T), each row tile runs
//     all of K against a small b that stays in L1/L2; OpenMP over row tiles.
//     - N <= 64 (8000x56x512 tB, 8000x46x10): b = op(B); B^T is packed once per call into a
//       zero-padded (K, Npad) panel when trans_b, B is used in place otherwise.
//     - M <= 64, trans_b (24x8000x512 tB): C^T = B op(A)^T, b = op(A)^T (A^T packed into a
//       (K, Mpad) panel when !trans_a).
//     - K <= 32, !trans_b (8000x512x24 tA): b = B in place, 64-column strips.
//   stream_k: M <= 32, long K, !trans_b (24x512x8000): B streamed in place. K blocks of 128
//     keep a thread's B block (128 x its columns) in L2 and one strip (128 x 64) in L1 while
//     every row tile passes over it; C accumulates across K blocks (beta on the first).
//     OpenMP over strips of 64 (or 48) columns.
//   dot_rows: M <= 4, trans_b (the 3 class rows through 512x512 Linear layers, 3x512x512 tB):
//     each C[m, j] a dot product over K, B rows read once, lanes reduced at the end.
// Left on the packed path (measured no faster): M = 56 with long K (56x512x8000 tA: 56 is
// exactly four 14-row packed tiles), and K = 56 (8000x512x56).
//
// The tiling does not depend on the thread count, so results are bit-identical for any number
// of threads. Handles alpha, beta (beta == 0: C not read) and any leading dimensions; the result
// equals the packed path's up to float rounding (different summation order).
#include "ops/cpu/isa.h"

#if LM_X86  // x86 only: gemm.cpp never calls it elsewhere
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>

#include "ops/cpu/avx512_math.h"
#include "ops/cpu/gemm.h"

namespace lm::cpu::detail {
namespace {

// LM_AVX512, tail_mask, hsum16: ops/cpu/avx512_math.h.
constexpr int64_t kSkinny = 64;    // stream_rows: the small dimension (N or M) is at most this
constexpr int64_t kLong = 128;     // ... and the streamed dimension at least this
constexpr int64_t kStreamKRows = 32;  // stream_k: M at most this (M = 56: the packed 14-row tiles win)
constexpr int64_t kShortK = 32;    // short-K stream_rows: K at most this (K = 56: no gain, packed)
constexpr int kMaxNV = 4;          // widest tile: 4 vectors = 64 columns
constexpr int kMaxR = 12;          // tallest tile
constexpr int64_t kKBlock = 128;   // stream_k: K block
constexpr int64_t kMaxPanel = 256 * 1024;  // stream_rows: K * 16*NV floats of b kept near L2

// Rows of a tile whose widest strip has nv vectors (about 24 accumulators).
constexpr int rows_for(int nv) { return nv <= 2 ? 12 : nv == 3 ? 8 : 6; }

// ---- broadcast-form tile ------------------------------------------------------------------
// T(r, j) = sum_k a(r, k) b(k, j) for r < R, j < ncols (ncols in (16*(NV-1), 16*NV]).
//   a: a(r, k) = a[r*sa_i + k*sa_k]           (R rows of the streamed operand)
//   b: b(k, j) = b[k*sb_k + j], j < 16*NV     (columns past ncols: read only if `last` allows)
//   c: T(r, j) -> c[r*ldc + j], or c[j*ldc + r] when TRANS_C; c = alpha*T + beta*c,
//      c not read when beta == 0.
// `last` masks the loads of b's last vector and the stores of C's last vector.
template <int R, int NV, bool TRANS_C>
LM_AVX512 void bcast_tile(int64_t kc, const float* a, int64_t sa_i, int64_t sa_k, const float* b,
                                 int64_t sb_k, __mmask16 last, float alpha, float beta, float* c, int64_t ldc,
                                 int ncols) {
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += sa_k, b += sb_k) {
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
    for (int j = 0; j < ncols; ++j) {
      float* p = c + j * ldc;
      if (beta == 0.0f)
        for (int r = 0; r < R; ++r) p[r] = tile[r][j];
      else
        for (int r = 0; r < R; ++r) p[r] = tile[r][j] + beta * p[r];
    }
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, __mmask16, float, float,
                        float*, int64_t, int);

// kTiles[trans_c][nv - 1][rows - 1]; nullptr where rows > rows_for(nv).
template <int NV, bool T, int... R>
constexpr std::array<TileFn, kMaxR> tile_row(std::integer_sequence<int, R...>) {
  return {&bcast_tile<R + 1, NV, T>...};
}
template <bool T>
constexpr std::array<std::array<TileFn, kMaxR>, kMaxNV> tile_table() {
  return {tile_row<1, T>(std::make_integer_sequence<int, rows_for(1)>{}),
          tile_row<2, T>(std::make_integer_sequence<int, rows_for(2)>{}),
          tile_row<3, T>(std::make_integer_sequence<int, rows_for(3)>{}),
          tile_row<4, T>(std::make_integer_sequence<int, rows_for(4)>{})};
}
constexpr std::array<std::array<std::array<TileFn, kMaxR>, kMaxNV>, 2> kTiles = {tile_table<false>(),
                                                                                  tile_table<true>()};

// A product T(rows, cols) = a(rows, K) * b(K, cols), written into C (transposed or not).
struct Stream {
  int64_t rows, cols, K;
  const float* a;
  int64_t sa_i, sa_k;  // a(r, k) = a[r*sa_i + k*sa_k]
  const float* b;
  int64_t sb_k;        // b(k, j) = b[k*sb_k + j]
  float alpha, beta;
  float* c;
  int64_t ldc;
  bool trans_c;        // T(r, j) -> c[j*ldc + r] instead of c[r*ldc + j]
  int nv = kMaxNV;     // strips of 16*nv columns
};

// Rows of the row tile (from the widest strip).
int tile_rows(const Stream& s) { return rows_for((int)std::min<int64_t>(s.nv, (s.cols + 15) / 16)); }

// T[r0 : r0+R, j0 : j0+16*nv] (clipped) over k in [k0, k0+kc), with the given beta.
void run_tile(const Stream& s, int R, int64_t r0, int64_t j0, int64_t k0, int64_t kc, float beta) {
  const int rows = (int)std::min<int64_t>(R, s.rows - r0);
  const int ncols = (int)std::min<int64_t>(16 * s.nv, s.cols - j0);
  const int nv = (ncols + 15) / 16;
  float* c = s.trans_c ? s.c + j0 * s.ldc + r0 : s.c + r0 * s.ldc + j0;
  kTiles[s.trans_c][nv - 1][rows - 1](kc, s.a + r0 * s.sa_i + k0 * s.sa_k, s.sa_i, s.sa_k, s.b + k0 * s.sb_k + j0,
                                      s.sb_k, tail_mask(ncols - 16 * (nv - 1)), s.alpha, beta, c, s.ldc, ncols);
}

// Row tiles split across threads; each tile runs every strip over the whole of K.
void stream_rows(const Stream& s, int threads) {
  const int R = tile_rows(s);
  const int64_t tiles = (s.rows + R - 1) / R, width = 16 * s.nv;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < tiles; ++t)
    for (int64_t j0 = 0; j0 < s.cols; j0 += width) run_tile(s, R, t * R, j0, 0, s.K, s.beta);
}

// Each thread owns a contiguous range of strips (16*nv columns); per K block, every row tile
// passes over each strip of the B block while it is in L1.
void stream_k(const Stream& s, int threads) {
  const int R = tile_rows(s);
  const int64_t width = 16 * s.nv, strips = (s.cols + width - 1) / width;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t q0 = strips * t / nt, q1 = strips * (t + 1) / nt;
    for (int64_t k0 = 0; k0 < s.K; k0 += kKBlock) {
      const int64_t kc = std::min(kKBlock, s.K - k0);
      const float beta = k0 == 0 ? s.beta : 1.0f;
      for (int64_t q = q0; q < q1; ++q)
        for (int64_t r0 = 0; r0 < s.rows; r0 += R) run_tile(s, R, r0, q * width, k0, kc, beta);
    }
  }
}

// stream_k's strip width in vectors: 4 (6-row tiles) or 3 (8-row tiles), whichever pads the
// M x N output less (8 rows: 3; 24 rows: 4).
int strip_vectors(int64_t M, int64_t N) {
  auto padded = [&](int nv) {
    const int64_t R = rows_for(nv), W = 16 * nv;
    return (M + R - 1) / R * R * ((N + W - 1) / W * W);
  };
  return padded(3) < padded(4) ? 3 : 4;
}

// (K, npad) panel, 64-byte aligned, one per thread (grows on demand).
float* panel_buffer(int64_t floats) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buf;
  thread_local int64_t capacity = 0;
  if (floats > capacity) {
    const int64_t bytes = (floats * 4 + 63) / 64 * 64;
    buf.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!buf) throw std::bad_alloc();
    capacity = bytes / 4;
  }
  return buf.get();
}

// P(k, j) = src[j*lds + k] for j < n, 0 for n <= j < npad; P: (K, npad), row stride npad.
// src: n rows of K contiguous floats (B when trans_b, or A when !trans_a), row stride lds.
float* pack_transposed(const float* src, int64_t lds, int64_t n, int64_t K, int64_t npad) {
  float* P = panel_buffer(K * npad);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = n; j < npad; ++j) P[k * npad + j] = 0.0f;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < K; ++k) P[k * npad + j] = src[j * lds + k];
  return P;
}

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

}  // namespace

bool sgemm_skinny_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int threads) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
  threads = std::max(1, threads);
  // op(A)(i, k) = A[i*sa_i + k*sa_k]
  const int64_t sa_i = trans_a ? 1 : lda, sa_k = trans_a ? lda : 1;
  const int64_t npad = (N + 15) / 16 * 16, mpad = (M + 15) / 16 * 16;

  // Tiny M, trans_b, A rows contiguous: dot products, B rows read once with full vectors.
  if (trans_b && !trans_a && M <= 4 && N >= 16 && K >= 16) {
    switch (M) {
      case 1: dot_rows<1>(N, K, alpha, A, lda, B, ldb, beta, C, ldc, threads); break;
      case 2: dot_rows<2>(N, K, alpha, A, lda, B, ldb, beta, C, ldc, threads); break;
      case 3: dot_rows<3>(N, K, alpha, A, lda, B, ldb, beta, C, ldc, threads); break;
      default: dot_rows<4>(N, K, alpha, A, lda, B, ldb, beta, C, ldc, threads); break;
    }
    return true;
  }
  // Small N: stream op(A) rows against op(B) (K, N): B itself, or B^T packed into a panel.
  if (N <= kSkinny && M >= kLong && K * npad <= kMaxPanel) {
    const float* b = trans_b ? pack_transposed(B, ldb, N, K, npad) : B;
    stream_rows({M, N, K, A, sa_i, sa_k, b, trans_b ? npad : ldb, alpha, beta, C, ldc, false}, threads);
    return true;
  }
  // Small M, trans_b: C^T(N, M) = B (N, K) * op(A)^T (K, M); B rows streamed, op(A)^T is A
  // itself when trans_a, else packed into a panel.
  if (trans_b && M <= kSkinny && N >= kLong && K * mpad <= kMaxPanel) {
    const float* b = trans_a ? A : pack_transposed(A, lda, M, K, mpad);
    stream_rows({N, M, K, B, ldb, 1, b, trans_a ? lda : mpad, alpha, beta, C, ldc, true}, threads);
    return true;
  }
  // Small M, !trans_b, long K: B (K, N) streamed in K blocks against op(A).
  if (!trans_b && M <= kStreamKRows && K >= kLong && N >= kLong) {
    stream_k({M, N, K, A, sa_i, sa_k, B, ldb, alpha, beta, C, ldc, false, strip_vectors(M, N)}, threads);
    return true;
  }
  // Short K, !trans_b: op(A) rows streamed against B (K, N), which stays in L1/L2.
  if (!trans_b && K <= kShortK && M >= kLong && N >= kLong) {
    stream_rows({M, N, K, A, sa_i, sa_k, B, ldb, alpha, beta, C, ldc, false}, threads);
    return true;
  }
  return false;
}

}  // namespace lm::cpu::detail
#endif  // LM_X86
