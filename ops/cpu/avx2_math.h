// AVX2 + FMA helpers shared by the row kernels (row_kernel.h), the 8-lane counterparts of
// avx512_math.h: loads and stores that stop at a row's end, lane sums, exp(x) for x <= 0 and
// erf(x). Each function carries its own target attribute, so the including file builds without
// -march flags; callers ask row_kernel() before using them.
//
// The AVX2 rows give the AVX-512 rows' bits. The AVX-512 kernels sum a row in 16 lanes (element j
// into lane j % 16) and add the lanes in lane order at the end; the AVX2 kernels keep the same 16
// lanes as two 8-lane halves, lo (lanes 0-7) and hi (8-15): a vector of 8 elements starting at j
// (a multiple of 8) goes into lo when j % 16 == 0, else into hi. Tails: the AVX-512 kernels add
// zeros in the lanes past the row's end, which leaves a sum unchanged, so the AVX2 kernels skip
// whole halves there. exp and erf below do the AVX-512 versions' operations in the same order.
#pragma once
#include "ops/cpu/isa.h"

#if LM_X86  // x86 only (the aarch64 build compiles none of this)
#include <immintrin.h>

#include <cstdint>

#include "ops/cpu/fast_math.h"  // the coefficients

#include "ops/cpu/avx512_math.h"  // sum_in_order

#define LM_AVX2 __attribute__((target("avx2,fma")))

namespace lm::cpu {

// Lanes [0, left) set (all bits; every lane when left >= 8, none when left <= 0): the mask of
// _mm256_maskload_ps / _mm256_maskstore_ps.
LM_AVX2 inline __m256i tail_mask8(int64_t left) {
  const int n = left >= 8 ? 8 : left <= 0 ? 0 : static_cast<int>(left);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The 8 floats at p when left >= 8 of the row remain, else the first `left` of them and zeros
// (no read past the row's end).
LM_AVX2 inline __m256 load8(const float* p, int64_t left) {
  return left >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask8(left));
}

// Stores the lanes of v that fall before the row's end.
LM_AVX2 inline void store8(float* p, int64_t left, __m256 v) {
  if (left >= 8) _mm256_storeu_ps(p, v);
  else _mm256_maskstore_ps(p, tail_mask8(left), v);
}

// v with the lanes from `left` on set to +0 (as the AVX-512 kernels' zero-masked operations).
LM_AVX2 inline __m256 zero_past_end(__m256 v, int64_t left) {
  return left >= 8 ? v : _mm256_and_ps(v, _mm256_castsi256_ps(tail_mask8(left)));
}

// Sum of the 16 float32 lanes (lo: 0-7, hi: 8-15), in lane order: the AVX-512 hsum16.
LM_AVX2 inline float hsum16(__m256 lo, __m256 hi) {
  alignas(32) float t[16];
  _mm256_store_ps(t, lo);
  _mm256_store_ps(t + 8, hi);
  return sum_in_order<float, 16>(t);
}

// Float64 sums of the 16 lanes are four vectors of 4: s[0] holds lanes 0-3, s[1] 4-7, s[2] 8-11,
// s[3] 12-15 (the AVX-512 kernels' s0 is s[0], s[1]; their s1 is s[2], s[3]).

// a += v's lanes 0-3, b += its lanes 4-7, in float64: the AVX-512 add_to_f64, one half at a time
// (s[0], s[1] for a lo half, s[2], s[3] for a hi half).
LM_AVX2 inline void add_to_f64(__m256d& a, __m256d& b, __m256 v) {
  a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  b = _mm256_add_pd(b, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

// The AVX-512 kernels' hsum8d(s0 + s1): lane k of s0 + s1 is lane k plus lane k + 8 (k < 8), and
// those eight are added in order.
LM_AVX2 inline double hsum_f64(const __m256d s[4]) {
  alignas(32) double t[8];
  _mm256_store_pd(t, _mm256_add_pd(s[0], s[2]));
  _mm256_store_pd(t + 4, _mm256_add_pd(s[1], s[3]));
  return sum_in_order<double, 8>(t);
}

// exp(x) for x <= 0, exp16_nonpos (avx512_math.h) on 8 lanes: the same reduction and polynomial;
// 2^n built in the exponent bits instead of scalef (n >= -126 after the clamp, so 2^n is a normal
// float and p 2^n rounds once, as scalef does). Below -87 the result is exp(-87); a NaN lane
// stays NaN (max(-87, x) returns x when x is NaN).
LM_AVX2 inline __m256 exp8_nonpos(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP[0]);
  for (int k = 1; k < 6; ++k) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP[k]));
  p = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  // A NaN n converts to INT_MIN, whose bits give 2^0 here: p is NaN then anyway.
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// erf(x): erf_poly (fast_math.h) on 8 lanes, erf16 (avx512_math.h) operation for operation. NaN
// stays NaN (max(-4, x) and min(4, x) return x when x is NaN).
LM_AVX2 inline __m256 erf8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(4.f), _mm256_max_ps(_mm256_set1_ps(-4.f), x));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(kErfP[0]);
  for (int k = 1; k < 7; ++k) p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(kErfP[k]));
  p = _mm256_mul_ps(x, p);
  __m256 q = _mm256_set1_ps(kErfQ[0]);
  for (int k = 1; k < 5; ++k) q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(kErfQ[k]));
  return _mm256_div_ps(p, q);
}

}  // namespace lm::cpu
#endif  // LM_X86
