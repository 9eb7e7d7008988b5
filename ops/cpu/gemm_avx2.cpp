// AVX2 + FMA SGEMM micro-kernel (see gemm.cpp for the blocking scheme around it).
//
// Register tile: 6 rows x 16 columns of C = 6 x 2 ymm accumulators (8 floats each).
// Per k step:
//   b0, b1 <- Bp[k, 0:8], Bp[k, 8:16]              (2 aligned vector loads)
//   for i < 6:  a = broadcast(Ap[k, i]);  c[i][0] += a * b0;  c[i][1] += a * b1
// 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers. The tile's C rows
// are prefetched at the start (their loads at the end were ~17% of a 2048^3 product) and A 8
// steps ahead. The packers below do the layouts of gemm.cpp's with 8x8 in-register transposes.
//
// Compiled with a per-function target attribute, so this file builds without -march flags;
// gemm.cpp only calls it after __builtin_cpu_supports("avx2") and ("fma").
#include "ops/cpu/gemm.h"
#include "ops/cpu/isa.h"

#if LM_X86  // x86 only: gemm.cpp never asks for this kernel elsewhere
#include <immintrin.h>

#include <algorithm>

namespace lm::cpu::detail {
namespace {

#define LM_AVX2_TARGET __attribute__((target("avx2,fma")))

constexpr int kMR = 6;
constexpr int kNR = 16;

// Ap: (kc, 6) packed A panel.  Bp: (kc, 16) packed B panel, 64-byte aligned.
// C: (6, 16) tile of the output, row stride ldc; C = alpha * Ap^T Bp + beta * C.
LM_AVX2_TARGET void kernel_avx2(int64_t kc, const float* __restrict Ap,
                                const float* __restrict Bp, float* C, int64_t ldc, float alpha,
                                float beta) {
  __m256 c0[kMR], c1[kMR];  // c0[i] = C[i, 0:8], c1[i] = C[i, 8:16]
#pragma GCC unroll 8
  for (int i = 0; i < kMR; ++i) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
    // The tile's C rows (16 floats, at most two cache lines each) are read at the end: start
    // fetching them now so the loads there do not stall (they were ~17% of the time at 2048^3).
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 15), _MM_HINT_T0);
  }

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp);
    const __m256 b1 = _mm256_load_ps(Bp + 8);
    _mm_prefetch(reinterpret_cast<const char*>(Ap + 8 * kMR), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      const __m256 a = _mm256_broadcast_ss(Ap + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    Ap += kMR;
    Bp += kNR;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      _mm256_storeu_ps(C + i * ldc, _mm256_mul_ps(va, c0[i]));
      _mm256_storeu_ps(C + i * ldc + 8, _mm256_mul_ps(va, c1[i]));
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      float* c = C + i * ldc;
      _mm256_storeu_ps(c, _mm256_fmadd_ps(va, c0[i], _mm256_mul_ps(vb, _mm256_loadu_ps(c))));
      _mm256_storeu_ps(c + 8,
                       _mm256_fmadd_ps(va, c1[i], _mm256_mul_ps(vb, _mm256_loadu_ps(c + 8))));
    }
  }
}


// ---- packing with AVX2 ------------------------------------------------------------------
// The portable packers in gemm.cpp copy one float at a time; non-transposed A (a 6 x kc strip
// to transpose) and transposed B made packing ~15% of a single-thread 8192x512x512 or
// 512x512x8192 product. These do the same layouts 8 floats at a time with 8 x 8 in-register
// transposes.

// Transposes the 8 x 8 block r[0..7] (r[i] = row i) in registers: afterwards r[c] = column c.
// unpack (32-bit pairs), shuffle (64-bit pairs), then swap 128-bit halves.
LM_AVX2_TARGET inline void transpose8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  // u0 = a0 b0 c0 d0 | a4 b4 c4 d4, u1 = a1 b1 c1 d1 | a5 .., u2 = ..2 | ..6, u3 = ..3 | ..7
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Stores the first LANES (6 or 8) floats of v at dst (unaligned).
template <int LANES>
LM_AVX2_TARGET inline void store_lanes(float* dst, __m256 v) {
  if constexpr (LANES == 8) {
    _mm256_storeu_ps(dst, v);
  } else {
    static_assert(LANES == 6);
    _mm_storeu_ps(dst, _mm256_castps256_ps128(v));
    _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), _mm256_extractf128_ps(v, 1));
  }
}

// Source: `rows` (<= LANES) rows, row i at src + i*lds, each with `kc` contiguous values.
// Destination: for every k < kc, LANES floats at dst + k*ldd holding src[0..rows)[k] followed
// by zeros. (A transpose of a rows x kc strip.)
template <int LANES>
LM_AVX2_TARGET void transpose_strip(const float* src, int64_t lds, int rows, int64_t kc,
                                    float* dst, int64_t ldd) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      r[i] = i < rows ? _mm256_loadu_ps(src + i * lds + k) : _mm256_setzero_ps();
    transpose8x8(r);
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) store_lanes<LANES>(dst + (k + c) * ldd, r[c]);
  }
  for (; k < kc; ++k) {  // k tail, one column at a time
    float* d = dst + k * ldd;
    for (int i = 0; i < LANES; ++i) d[i] = i < rows ? src[i * lds + k] : 0.0f;
  }
}

// A block op(A)(mc, kc) -> panels of (kc, 6). A: (M, K), or (K, M) when trans_a.
LM_AVX2_TARGET void pack_a_avx2(bool trans_a, const float* A, int64_t lda, int64_t mc,
                                int64_t kc, float* Ap) {
  for (int64_t p0 = 0; p0 < mc; p0 += kMR, Ap += kc * kMR) {
    const int rows = static_cast<int>(std::min<int64_t>(kMR, mc - p0));
    if (!trans_a) {  // op(A)(i, k) = A[i*lda + k]: transpose the 6 x kc strip
      transpose_strip<kMR>(A + p0 * lda, lda, rows, kc, Ap, kMR);
    } else if (rows == kMR) {  // op(A)(i, k) = A[k*lda + i]: 6 contiguous values per k
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + k * lda + p0;
        _mm_storeu_ps(Ap + k * kMR, _mm_loadu_ps(src));
        Ap[k * kMR + 4] = src[4];
        Ap[k * kMR + 5] = src[5];
      }
    } else {  // bottom edge: fewer than 6 rows, zero-padded
      for (int64_t k = 0; k < kc; ++k)
        for (int i = 0; i < kMR; ++i) Ap[k * kMR + i] = i < rows ? A[k * lda + p0 + i] : 0.0f;
    }
  }
}

// B block op(B)(kc, nc) -> panels of (kc, 16). B: (K, N), or (N, K) when trans_b.
LM_AVX2_TARGET void pack_b_avx2(bool trans_b, const float* B, int64_t ldb, int64_t kc,
                                int64_t nc, float* Bp) {
  for (int64_t q0 = 0; q0 < nc; q0 += kNR, Bp += kc * kNR) {
    const int64_t cols = std::min<int64_t>(kNR, nc - q0);
    if (trans_b) {  // op(B)(k, j) = B[j*ldb + k]: transpose two 8 x kc strips
      for (int h = 0; h < 2; ++h) {
        const int rows = static_cast<int>(std::clamp<int64_t>(cols - 8 * h, 0, 8));
        transpose_strip<8>(B + (q0 + 8 * h) * ldb, ldb, rows, kc, Bp + 8 * h, kNR);
      }
    } else if (cols == kNR) {  // op(B)(k, j) = B[k*ldb + j]: 16 contiguous values per k
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + k * ldb + q0;
        _mm256_store_ps(Bp + k * kNR, _mm256_loadu_ps(src));
        _mm256_store_ps(Bp + k * kNR + 8, _mm256_loadu_ps(src + 8));
      }
    } else {  // right edge: fewer than 16 columns, zero-padded
      for (int64_t k = 0; k < kc; ++k)
        for (int j = 0; j < kNR; ++j) Bp[k * kNR + j] = j < cols ? B[k * ldb + q0 + j] : 0.0f;
    }
  }
}

}  // namespace

KernelSpec avx2_kernel_spec() {
  // mc x kc A block (~288 KiB) in L2; kc x 16 B micro-panel (16 KiB) in L1d; B block in L3.
  return {GemmKernel::Avx2, kMR, kNR, 48 * kMR, 256, 4096, kernel_avx2, "avx2 6x16 packed",
          pack_a_avx2, pack_b_avx2};
}

}  // namespace lm::cpu::detail
#endif  // LM_X86
