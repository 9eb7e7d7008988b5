// AVX-512 helpers shared by the row kernels (row_kernel.h): masks for row tails, in-order lane
// sums, exp(x) for x <= 0 and erf(x), sixteen lanes at a time. Each function carries its own
// target attribute, so the including file builds without -march flags; callers ask row_kernel()
// before using them. avx2_math.h has the AVX2 counterparts. Off x86 (LM_X86 == 0,
// ops/cpu/isa.h) none of this is compiled.
#pragma once
#include <cstdint>

#include "ops/cpu/fast_math.h"  // the coefficients

#include "ops/cpu/isa.h"

#if LM_X86
#include <immintrin.h>

// GCC 12's AVX-512 intrinsic headers trip -W(maybe-)uninitialized on their own
// _mm512_undefined_ps() placeholders when inlined at -O3: false positives, silenced here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define LM_AVX512 __attribute__((target("avx512f,avx512dq,fma")))

namespace lm::cpu {

// Lanes [0, min(left, 16)) set.
LM_AVX512 inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

// Sum of t[0..N), in index order. The lane sums below store their vector to an aligned array
// and add it here: the vector itself never crosses a call boundary (a template taking __m512 by
// value crashed under ASan at -O1, where it is not inlined).
template <class T, int N>
inline T sum_in_order(const T* t) {
  T s = 0;
  for (int i = 0; i < N; ++i) s += t[i];
  return s;
}

// Sum of the 16 float32 lanes, in lane order (GCC 12's _mm512_reduce_add_ps trips
// -Wuninitialized).
LM_AVX512 inline float hsum16(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  return sum_in_order<float, 16>(t);
}

// s0 += v[0:8], s1 += v[8:16] in float64: a float32 vector added into two float64 sums.
LM_AVX512 inline void add_to_f64(__m512d& s0, __m512d& s1, __m512 v) {
  s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
  s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
}

// Sum of the 8 float64 lanes, in lane order.
LM_AVX512 inline double hsum8d(__m512d v) {
  alignas(64) double t[8];
  _mm512_store_pd(t, v);
  return sum_in_order<double, 8>(t);
}

// exp(x) for x <= 0, the arithmetic of exp_nonpos (fast_math.h) on 16 lanes; 2^n applied with
// scalef. A NaN lane stays NaN (max(-87, x) returns x when x is NaN).
LM_AVX512 inline __m512 exp16_nonpos(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-87.f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpP[0]);
  for (int k = 1; k < 6; ++k) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP[k]));
  p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// erf(x), the arithmetic of erf_poly (fast_math.h) on 16 lanes. NaN stays NaN (max(-4, x) and
// min(4, x) return x when x is NaN).
LM_AVX512 inline __m512 erf16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(4.f), _mm512_max_ps(_mm512_set1_ps(-4.f), x));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(kErfP[0]);
  for (int k = 1; k < 7; ++k) p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(kErfP[k]));
  p = _mm512_mul_ps(x, p);
  __m512 q = _mm512_set1_ps(kErfQ[0]);
  for (int k = 1; k < 5; ++k) q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(kErfQ[k]));
  return _mm512_div_ps(p, q);
}

}  // namespace lm::cpu
#endif  // LM_X86
