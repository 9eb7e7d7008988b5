// The skinny SGEMM forms' drivers, shared by the AVX-512 and AVX2 versions
// (gemm_skinny_avx512.cpp, gemm_skinny_avx2.cpp). Skinny products are those where packing
// (gemm.cpp) would copy the large operand for a handful of output rows or columns, or where K
// is too short to amortise it. Libra-MIL's step is full of them (8000 instances, D = 512, 24
// class queries, 56 prototypes): similarities V P^T (8000x56x512 tB), attention scores Q V^T
// (24x8000x512 tB), pooled attn V (24x512x8000), dV = attn^T dPooled (8000x512x24 tA), the
// 8000x46x10 head.
//
// One "broadcast form" tile serves all of them: a tile T(R rows, W*NV columns) of a product
// T = a * b (W = floats per vector: 16 for AVX-512, 8 for AVX2) lives in R x NV vector
// accumulators; per k it loads the NV vectors of b's row k and broadcasts a(r, k) for the R rows:
//
//   for k:  bv[v] = b[k, W*v : W*v+W]               (NV loads, the last one masked)
//           for r < R:  acc[r][v] += a(r, k) * bv[v]  (R*NV FMAs)
//
// The tiles prefetch the streamed rows (a) and b's rows ahead: on a large bag both come from
// memory (stream_k's B block on a strip's first row tile; the rows of V at N = 32000).
// The ISA file supplies the tiles (with as many accumulators as its register file holds) and a
// dot-product form; this header supplies which operand is streamed unpacked and which is small:
//   stream_rows: rows of T are streamed (op(A) rows; B rows when T = C^T), each row tile runs
//     all of K against a small b that stays in L1/L2; OpenMP over row tiles.
//     - N <= 128 (8000x56x512 tB, 8000x46x10, 16000x80x512 tB): b = op(B); B^T is packed once
//       per call into a zero-padded (K, Npad) panel when trans_b, B is used in place otherwise.
//       Wider than one strip (N > 64 on AVX-512), a row tile runs each strip in turn while its
//       rows of a are in L1 (16000x80x512 tB: 6.8 against the packed path's 9.1 ms on AVX-512,
//       7.6 against 8.6 on AVX2).
//     - M <= 64, trans_b (24x8000x512 tB): C^T = B op(A)^T, b = op(A)^T (A^T packed into a
//       (K, Mpad) panel when !trans_a).
//     - K <= 32, !trans_b (8000x512x24 tA): b = B in place, strips of W*NV columns (AVX-512
//       only: with AVX2's 16-column strips every row tile re-reads all of B from L2, and the
//       packed path was faster, 186 against 138 GFLOP/s at 8000x512x24 tA).
//   stream_k: M <= 128 (AVX-512) or 32 (AVX2), long K, !trans_b (24x512x8000; on AVX-512 also
//     56x512x8000 tA, 195 against the packed path's 174 GFLOP/s, where AVX2 got 117 against
//     123; and the step's 80x512x16000 tA, 7.5 against 8.5 ms, 128x512x4000 2.7 against 3.0,
//     where AVX2 got 10.7 against 8.2 ms): B streamed in place. K blocks of 128 keep a
//     thread's B block (128 x its columns) in L2 and one strip in L1 while every row tile
//     passes over it; C accumulates across K blocks (beta on the first). OpenMP over strips.
//   dot rows: M <= 4, trans_b (the 3 class rows through 512x512 Linear layers, 3x512x512 tB):
//     each C[m, j] a dot product over K, B rows read once, lanes reduced at the end.
// Left on the packed path (measured no faster): K = 56 (8000x512x56), and on AVX2 M = 56 with
// long K and short K (K <= 32).
//
// The tiling does not depend on the thread count, so results are bit-identical for any number
// of threads. Handles alpha, beta (beta == 0: C not read) and any leading dimensions; the result
// equals the packed path's up to float rounding (different summation order).
//
// An ISA is a struct with
//   static constexpr int kWidth;       floats per vector
//   static constexpr int kMaxNV;       widest strip, in vectors
//   static int rows_for(int nv);       tile rows for a strip of nv vectors
//   static TileFn tile(bool trans_c, int nv, int rows);
//   static DotFn dot(int m);           m = 1..4
//   static int strip_vectors(int64_t M, int64_t N);   stream_k's strip width
//   static constexpr bool kShortKForm;  whether short-K products take stream_rows
//   static constexpr int64_t kStreamKRows;  stream_k: M at most this
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "ops/cpu/gemm.h"  // AlignedBuffer

namespace lm::cpu::detail::skinny {

constexpr int64_t kSkinny = 64;       // stream_rows, C^T form: M at most this
constexpr int64_t kSkinnyN = 128;     // stream_rows, small N: N at most this (1-2 strips on AVX-512)
constexpr int64_t kLong = 128;        // ... and the streamed dimension at least this
constexpr int64_t kShortK = 32;       // short-K stream_rows: K at most this (K = 56: no gain, packed)
constexpr int64_t kKBlock = 128;      // stream_k: K block
constexpr int64_t kMaxPanel = 256 * 1024;  // stream_rows: K * padded width floats of b kept near L2

// T(r, j) = sum_k a(r, k) b(k, j) for r < rows (the tile's R), j < ncols (<= W*NV):
//   a(r, k) = a[r*sa_i + k*sa_k];  b(k, j) = b[k*sb_k + j] (nothing read past ncols);
//   T(r, j) -> c[r*ldc + j], or c[j*ldc + r] when the tile writes C transposed;
//   c = alpha*T + beta*c, c not read when beta == 0.
using TileFn = void (*)(int64_t kc, const float* a, int64_t sa_i, int64_t sa_k, const float* b,
                        int64_t sb_k, int ncols, float alpha, float beta, float* c, int64_t ldc);
// C (m, N) = alpha * A (m, K) B^T + beta * C, B: (N, K) with row stride ldb; OpenMP inside.
using DotFn = void (*)(int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                       const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int threads);

// ---- pieces the ISA files share ---------------------------------------------------------

// A tile written transposed (T = C^T): tile[r][j] = alpha * T(r, j) for r < R, j < ncols, row
// stride `width` floats; c[j*ldc + r] = tile[r][j] (+ beta * c[j*ldc + r] when beta != 0).
template <int R>
inline void store_tile_transposed(const float* tile, int width, int ncols, float beta, float* c, int64_t ldc) {
  for (int j = 0; j < ncols; ++j) {
    float* p = c + j * ldc;
    if (beta == 0.0f)
      for (int r = 0; r < R; ++r) p[r] = tile[r * width + j];
    else
      for (int r = 0; r < R; ++r) p[r] = tile[r * width + j] + beta * p[r];
  }
}

// The table of tile functions an ISA's tile(trans_c, nv, rows) looks up:
// TileTable<Tile, MaxNV, MaxR, rows_for>::value[trans_c][nv - 1][rows - 1], where
// Tile<R, NV, TRANS_C>::fn is the tile function; nullptr where rows > rows_for(nv).
template <template <int, int, bool> class Tile, int MaxNV, int MaxR, int (*RowsFor)(int)>
struct TileTable {
  template <int NV, bool T, int... R>
  static constexpr std::array<TileFn, MaxR> row(std::integer_sequence<int, R...>) {
    return {Tile<R + 1, NV, T>::fn...};
  }
  template <bool T, int... NV>
  static constexpr std::array<std::array<TileFn, MaxR>, MaxNV> table(std::integer_sequence<int, NV...>) {
    return {row<NV + 1, T>(std::make_integer_sequence<int, RowsFor(NV + 1)>{})...};
  }
  static constexpr std::array<std::array<std::array<TileFn, MaxR>, MaxNV>, 2> value = {
      table<false>(std::make_integer_sequence<int, MaxNV>{}), table<true>(std::make_integer_sequence<int, MaxNV>{})};
};

// stream_k's strip width in vectors of `width` floats: nv_a or nv_b, whichever pads the M x N
// output less (nv_b on a tie).
inline int fewer_padded(int64_t M, int64_t N, int width, int nv_a, int nv_b, int (*rows_for)(int)) {
  auto padded = [&](int nv) {
    const int64_t R = rows_for(nv), W = int64_t(width) * nv;
    return (M + R - 1) / R * R * ((N + W - 1) / W * W);
  };
  return padded(nv_a) < padded(nv_b) ? nv_a : nv_b;
}

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
  int nv;              // strips of W*nv columns
};

// Rows of the row tile (from the widest strip).
template <class Isa>
int tile_rows(const Stream& s) {
  return Isa::rows_for((int)std::min<int64_t>(s.nv, (s.cols + Isa::kWidth - 1) / Isa::kWidth));
}

// T[r0 : r0+R, j0 : j0+W*nv] (clipped) over k in [k0, k0+kc), with the given beta.
template <class Isa>
void run_tile(const Stream& s, int R, int64_t r0, int64_t j0, int64_t k0, int64_t kc, float beta) {
  const int rows = (int)std::min<int64_t>(R, s.rows - r0);
  const int ncols = (int)std::min<int64_t>(Isa::kWidth * s.nv, s.cols - j0);
  const int nv = (ncols + Isa::kWidth - 1) / Isa::kWidth;
  float* c = s.trans_c ? s.c + j0 * s.ldc + r0 : s.c + r0 * s.ldc + j0;
  Isa::tile(s.trans_c, nv, rows)(kc, s.a + r0 * s.sa_i + k0 * s.sa_k, s.sa_i, s.sa_k,
                                 s.b + k0 * s.sb_k + j0, s.sb_k, ncols, s.alpha, beta, c, s.ldc);
}

// Row tiles split across threads; each tile runs every strip over the whole of K.
template <class Isa>
void stream_rows(const Stream& s, int threads) {
  const int R = tile_rows<Isa>(s);
  const int64_t tiles = (s.rows + R - 1) / R, width = Isa::kWidth * s.nv;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < tiles; ++t)
    for (int64_t j0 = 0; j0 < s.cols; j0 += width) run_tile<Isa>(s, R, t * R, j0, 0, s.K, s.beta);
}

// Each thread owns a contiguous range of strips (W*nv columns); per K block, every row tile
// passes over each strip of the B block while it is in L1.
template <class Isa>
void stream_k(const Stream& s, int threads) {
  const int R = tile_rows<Isa>(s);
  const int64_t width = Isa::kWidth * s.nv, strips = (s.cols + width - 1) / width;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t q0 = strips * t / nt, q1 = strips * (t + 1) / nt;
    for (int64_t k0 = 0; k0 < s.K; k0 += kKBlock) {
      const int64_t kc = std::min(kKBlock, s.K - k0);
      const float beta = k0 == 0 ? s.beta : 1.0f;
      for (int64_t q = q0; q < q1; ++q)
        for (int64_t r0 = 0; r0 < s.rows; r0 += R) run_tile<Isa>(s, R, r0, q * width, k0, kc, beta);
    }
  }
}

// (K, npad) panel, 64-byte aligned, one per thread (grows on demand).
inline float* panel_buffer(int64_t floats) {
  thread_local AlignedBuffer buf;
  return buf.get(static_cast<size_t>(floats));
}

// P(k, j) = src[j*lds + k] for j < n, 0 for n <= j < npad; P: (K, npad), row stride npad.
// src: n rows of K contiguous floats (B when trans_b, or A when !trans_a), row stride lds.
inline float* pack_transposed(const float* src, int64_t lds, int64_t n, int64_t K, int64_t npad) {
  float* P = panel_buffer(K * npad);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = n; j < npad; ++j) P[k * npad + j] = 0.0f;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < K; ++k) P[k * npad + j] = src[j * lds + k];
  return P;
}

// The skinny forms' dispatch: runs the product and returns true when the shape is one of them,
// returns false (nothing touched) otherwise. `threads` > 1 allows OpenMP loops.
template <class Isa>
bool sgemm_skinny(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc, int threads) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
  threads = std::max(1, threads);
  constexpr int W = Isa::kWidth, NV = Isa::kMaxNV;
  // op(A)(i, k) = A[i*sa_i + k*sa_k]
  const int64_t sa_i = trans_a ? 1 : lda, sa_k = trans_a ? lda : 1;
  // Panels are padded to whole vectors of the widest strip, so a strip never reads past them.
  const int64_t npad = (N + W - 1) / W * W, mpad = (M + W - 1) / W * W;

  // Tiny M, trans_b, A rows contiguous: dot products, B rows read once with full vectors.
  if (trans_b && !trans_a && M <= 4 && N >= 16 && K >= 16) {
    Isa::dot(static_cast<int>(M))(N, K, alpha, A, lda, B, ldb, beta, C, ldc, threads);
    return true;
  }
  // Small N: stream op(A) rows against op(B) (K, N): B itself, or B^T packed into a panel.
  if (N <= kSkinnyN && M >= kLong && K * npad <= kMaxPanel) {
    const float* b = trans_b ? pack_transposed(B, ldb, N, K, npad) : B;
    stream_rows<Isa>({M, N, K, A, sa_i, sa_k, b, trans_b ? npad : ldb, alpha, beta, C, ldc, false, NV},
                     threads);
    return true;
  }
  // Small M, trans_b: C^T(N, M) = B (N, K) * op(A)^T (K, M); B rows streamed, op(A)^T is A
  // itself when trans_a, else packed into a panel.
  if (trans_b && M <= kSkinny && N >= kLong && K * mpad <= kMaxPanel) {
    const float* b = trans_a ? A : pack_transposed(A, lda, M, K, mpad);
    stream_rows<Isa>({N, M, K, B, ldb, 1, b, trans_a ? lda : mpad, alpha, beta, C, ldc, true, NV},
                     threads);
    return true;
  }
  // Small M, !trans_b, long K: B (K, N) streamed in K blocks against op(A).
  if (!trans_b && M <= Isa::kStreamKRows && K >= kLong && N >= kLong) {
    stream_k<Isa>({M, N, K, A, sa_i, sa_k, B, ldb, alpha, beta, C, ldc, false, Isa::strip_vectors(M, N)},
                  threads);
    return true;
  }
  // Short K, !trans_b: op(A) rows streamed against B (K, N), which stays in L1/L2.
  if (Isa::kShortKForm && !trans_b && K <= kShortK && M >= kLong && N >= kLong) {
    stream_rows<Isa>({M, N, K, A, sa_i, sa_k, B, ldb, alpha, beta, C, ldc, false, NV}, threads);
    return true;
  }
  return false;
}

}  // namespace lm::cpu::detail::skinny
