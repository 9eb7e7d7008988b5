// AVX-512 SGEMM micro-kernel (see gemm.cpp for the blocking scheme around it).
//
// Register tile: MR rows x 32 columns of C = MR x 2 zmm accumulators (16 floats each).
// Per k step:
//   b0, b1  <- Bp[k, 0:16], Bp[k, 16:32]          (2 aligned vector loads)
//   for i < MR:  a = broadcast(Ap[k, i])           (folded into the FMA as {1to16})
//                c[i][0] += a * b0;  c[i][1] += a * b1
// With MR = 14: 28 accumulators + b0 + b1 + a = 31 of 32 zmm registers, 28 FMAs per
// 2 vector loads + 14 broadcasts, enough independent FMA chains to hide the 4-cycle latency
// on both FMA ports.
//
// Compiled with a per-function target attribute, so this file builds without -march flags;
// gemm.cpp only calls it after __builtin_cpu_supports("avx512f") etc.
#include "ops/cpu/gemm.h"
#include "ops/cpu/isa.h"

#if LM_X86  // x86 only: gemm.cpp never asks for this kernel elsewhere
#include <immintrin.h>

#include <algorithm>

namespace lm::cpu::detail {
namespace {

#define LM_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

constexpr int kNR = 32;

// Ap: (kc, MR) packed A panel.  Bp: (kc, 32) packed B panel, 64-byte aligned.
// C: (MR, 32) tile of the output, row stride ldc; C = alpha * Ap^T Bp + beta * C.
template <int MR>
LM_AVX512_TARGET void kernel_avx512(int64_t kc, const float* __restrict Ap,
                                    const float* __restrict Bp, float* C, int64_t ldc,
                                    float alpha, float beta) {
  __m512 c0[MR], c1[MR];  // c0[i] = C[i, 0:16], c1[i] = C[i, 16:32]
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 16), _MM_HINT_T0);
  }

  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(Bp);
    const __m512 b1 = _mm512_load_ps(Bp + 16);
    _mm_prefetch(reinterpret_cast<const char*>(Ap + 8 * MR), _MM_HINT_T0);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(Ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    Ap += MR;
    Bp += kNR;
  }

  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(C + i * ldc, _mm512_mul_ps(va, c0[i]));
      _mm512_storeu_ps(C + i * ldc + 16, _mm512_mul_ps(va, c1[i]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      float* c = C + i * ldc;
      _mm512_storeu_ps(c, _mm512_fmadd_ps(va, c0[i], _mm512_mul_ps(vb, _mm512_loadu_ps(c))));
      _mm512_storeu_ps(c + 16,
                       _mm512_fmadd_ps(va, c1[i], _mm512_mul_ps(vb, _mm512_loadu_ps(c + 16))));
    }
  }
}

constexpr int kMR = 14;

// ---- packing with AVX-512 ---------------------------------------------------------------
// The portable packers in gemm.cpp copy one float at a time; two of the four cases need a
// transpose (non-transposed A, transposed B), which made packing ~20% of the run time for
// long-K shapes. These do the same layouts 16 floats at a time.

// GCC 12's AVX-512 shuffle intrinsics start from _mm512_undefined_ps(), which trips a bogus
// -Wmaybe-uninitialized (GCC PR 105593, fixed in GCC 13) once inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Transposes a 16 x 16 block held in r[0..15] (r[i] = row i) in registers:
// afterwards r[c] = column c. Three shuffle stages: 32-bit pairs, 64-bit pairs, 128-bit lanes.
LM_AVX512_TARGET inline void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  #pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {  // t[2i] = a0 b0 a1 b1 (per 128-bit lane), t[2i+1] = a2 b2 a3 b3
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  #pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {  // r[4i+j] = column j of rows 4i..4i+3, in every 128-bit lane
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  __m512 out[16];
  #pragma GCC unroll 16
  for (int j = 0; j < 4; ++j) {  // gather 128-bit lane L of r[j], r[4+j], r[8+j], r[12+j]
    const __m512 u0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);  // lanes 0,2 | 0,2
    const __m512 u1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);  // lanes 1,3 | 1,3
    const __m512 v0 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    out[j] = _mm512_shuffle_f32x4(u0, v0, 0x88);       // lane 0 -> column j
    out[4 + j] = _mm512_shuffle_f32x4(u1, v1, 0x88);   // lane 1 -> column 4 + j
    out[8 + j] = _mm512_shuffle_f32x4(u0, v0, 0xDD);   // lane 2 -> column 8 + j
    out[12 + j] = _mm512_shuffle_f32x4(u1, v1, 0xDD);  // lane 3 -> column 12 + j
  }
  #pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = out[i];
}

// Source: `rows` (<= 16) rows, row i at src + i*lds, each with `kc` contiguous values.
// Destination: for every k < kc, `lanes` (<= 16) floats at dst + k*ldd holding
// src[0..rows)[k] followed by zeros. (A transpose of a rows x kc strip.)
LM_AVX512_TARGET void transpose_strip(const float* src, int64_t lds, int rows, int64_t kc,
                                      float* dst, int64_t ldd, int lanes) {
  const __mmask16 store_mask = static_cast<__mmask16>((1u << lanes) - 1);
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    __m512 r[16];
    #pragma GCC unroll 16
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_loadu_ps(src + i * lds + k) : _mm512_setzero_ps();
    transpose16x16(r);
    #pragma GCC unroll 16
    for (int c = 0; c < 16; ++c) _mm512_mask_storeu_ps(dst + (k + c) * ldd, store_mask, r[c]);
  }
  for (; k < kc; ++k) {  // k tail, one column at a time
    float* d = dst + k * ldd;
    for (int i = 0; i < lanes; ++i) d[i] = i < rows ? src[i * lds + k] : 0.0f;
  }
}

#pragma GCC diagnostic pop

// (count <= 16) contiguous floats -> a 16-lane vector, zeros beyond count.
LM_AVX512_TARGET inline __m512 load_partial(const float* p, int64_t count) {
  if (count >= 16) return _mm512_loadu_ps(p);
  if (count <= 0) return _mm512_setzero_ps();
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), p);
}

// A block op(A)(mc, kc) -> panels of (kc, 14). A: (M, K), or (K, M) when trans_a.
LM_AVX512_TARGET void pack_a_avx512(bool trans_a, const float* A, int64_t lda, int64_t mc,
                                    int64_t kc, float* Ap) {
  constexpr int MR = kMR;
  const __mmask16 mr_mask = (1u << MR) - 1;
  for (int64_t p0 = 0; p0 < mc; p0 += MR, Ap += kc * MR) {
    const int rows = static_cast<int>(std::min<int64_t>(MR, mc - p0));
    if (trans_a) {  // op(A)(i, k) = A[k*lda + i]: the panel's 14 values per k are contiguous
      for (int64_t k = 0; k < kc; ++k)
        _mm512_mask_storeu_ps(Ap + k * MR, mr_mask, load_partial(A + k * lda + p0, rows));
    } else {  // op(A)(i, k) = A[i*lda + k]: transpose the 14 x kc strip
      transpose_strip(A + p0 * lda, lda, rows, kc, Ap, MR, MR);
    }
  }
}

// B block op(B)(kc, nc) -> panels of (kc, 32). B: (K, N), or (N, K) when trans_b.
LM_AVX512_TARGET void pack_b_avx512(bool trans_b, const float* B, int64_t ldb, int64_t kc,
                                    int64_t nc, float* Bp) {
  for (int64_t q0 = 0; q0 < nc; q0 += kNR, Bp += kc * kNR) {
    const int64_t cols = std::min<int64_t>(kNR, nc - q0);
    if (trans_b) {  // op(B)(k, j) = B[j*ldb + k]: transpose two 16 x kc strips
      for (int h = 0; h < 2; ++h) {
        const int rows = static_cast<int>(std::clamp<int64_t>(cols - 16 * h, 0, 16));
        transpose_strip(B + (q0 + 16 * h) * ldb, ldb, rows, kc, Bp + 16 * h, kNR, 16);
      }
    } else {  // op(B)(k, j) = B[k*ldb + j]: 32 contiguous values per k
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + k * ldb + q0;
        _mm512_store_ps(Bp + k * kNR, load_partial(src, cols));
        _mm512_store_ps(Bp + k * kNR + 16, load_partial(src + 16, cols - 16));
      }
    }
  }
}

}  // namespace

KernelSpec avx512_kernel_spec() {
  // mc x kc A block (~336 KiB) in the 2 MiB L2; kc x 32 B micro-panel (32 KiB) in the
  // 48 KiB L1d; kc x nc B block (4 MiB) in L3.
  return {GemmKernel::Avx512, kMR, kNR, 24 * kMR, 256, 4096, kernel_avx512<kMR>,
          "avx512 14x32 packed", pack_a_avx512, pack_b_avx512};
}

}  // namespace lm::cpu::detail
#endif  // LM_X86
