// l2_normalize row kernels (normalize.h). Derivation of the backward, for a row x with
// n = ||x|| > eps and y = x / n:  dy_i/dx_j = (delta_ij - y_i y_j) / n, so
// gx = (g - y (g . y)) / n. Below eps the denominator is the constant eps: gx = g / eps
// (torch.nn.functional.normalize's convention). Row sums accumulate in float64.
#include "ops/cpu/normalize.h"

#include "ops/cpu/avx2_math.h"
#include "ops/cpu/avx512_math.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/row_kernel.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace lm::cpu {

namespace {
}

template <class T>
void l2_normalize_rows_forward(const T* x, int64_t rows, int64_t D, double eps, T* y, T* denom) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < D; ++j) ss += (double)xr[j] * (double)xr[j];
    const bool clamped = ss < eps * eps;  // as clamp(sumsq, eps^2, inf): no gradient through the norm
    const double d = clamped ? eps : std::sqrt(ss);
    denom[r] = clamped ? (T)-d : (T)d;  // the sign marks clamped rows for backward
    const T inv = (T)(1.0 / d);
    if constexpr (sizeof(T) == 4) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) yr[j] = xr[j] * inv;
    } else {
      for (int64_t j = 0; j < D; ++j) yr[j] = (T)((double)xr[j] / d);
    }
  }
}

template <class T>
void l2_normalize_rows_backward(const T* g, const T* y, const T* denom, int64_t rows, int64_t D, T* gx) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* gr = g + r * D;
    const T* yr = y + r * D;
    T* out = gx + r * D;
    const bool clamped = denom[r] < 0;  // the denominator was the constant eps
    const double d = std::abs((double)denom[r]);
    double dot = 0;
    if (!clamped) {
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < D; ++j) dot += (double)gr[j] * (double)yr[j];
    }
    const T inv = (T)(1.0 / d), tdot = (T)dot;
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) out[j] = (gr[j] - yr[j] * tdot) * inv;
  }
}

namespace {
#if LM_X86
// Sum of squares of a float32 row in float64 on 16 lanes, four independent accumulators (the
// portable loop below is one dependent chain of SSE2 adds: latency-bound, ~2x slower than memory).
LM_AVX512 double sumsq_avx512(const float* x, int64_t D) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
  int64_t j = 0;
  for (; j + 32 <= D; j += 32) {
    const __m512 u = _mm512_loadu_ps(x + j), v = _mm512_loadu_ps(x + j + 16);
    const __m512d u0 = _mm512_cvtps_pd(_mm512_castps512_ps256(u)), u1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(u, 1));
    const __m512d v0 = _mm512_cvtps_pd(_mm512_castps512_ps256(v)), v1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    a0 = _mm512_fmadd_pd(u0, u0, a0);
    a1 = _mm512_fmadd_pd(u1, u1, a1);
    a2 = _mm512_fmadd_pd(v0, v0, a2);
    a3 = _mm512_fmadd_pd(v1, v1, a3);
  }
  for (; j < D; j += 16) {
    const __m512 u = _mm512_maskz_loadu_ps(tail_mask(D - j), x + j);
    const __m512d u0 = _mm512_cvtps_pd(_mm512_castps512_ps256(u)), u1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(u, 1));
    a0 = _mm512_fmadd_pd(u0, u0, a0);
    a1 = _mm512_fmadd_pd(u1, u1, a1);
  }
  return hsum8d(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

// a += squares of v's lanes 0-3, b += squares of its lanes 4-7, in float64.
LM_AVX2 inline void add_squares(__m256d& a, __m256d& b, __m256 v) {
  const __m256d v0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), v1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  a = _mm256_fmadd_pd(v0, v0, a);
  b = _mm256_fmadd_pd(v1, v1, b);
}

// sumsq_avx512 on AVX2, with its bits: its float64 accumulators a0 .. a3 of 8 lanes are
// a[0], a[1] .. a[6], a[7] here (4 lanes each), fed the same elements in the same order.
LM_AVX2 double sumsq_avx2(const float* x, int64_t D) {
  __m256d a[8];
  for (__m256d& v : a) v = _mm256_setzero_pd();
  int64_t j = 0;
  for (; j + 32 <= D; j += 32) {
    add_squares(a[0], a[1], _mm256_loadu_ps(x + j));
    add_squares(a[2], a[3], _mm256_loadu_ps(x + j + 8));
    add_squares(a[4], a[5], _mm256_loadu_ps(x + j + 16));
    add_squares(a[6], a[7], _mm256_loadu_ps(x + j + 24));
  }
  for (; j < D; j += 16) {
    add_squares(a[0], a[1], load8(x + j, D - j));
    add_squares(a[2], a[3], load8(x + j + 8, D - j - 8));
  }
  // (a0 + a1) + (a2 + a3), lane by lane, then its 8 lanes in order.
  alignas(32) double t[8];
  _mm256_store_pd(t, _mm256_add_pd(_mm256_add_pd(a[0], a[2]), _mm256_add_pd(a[4], a[6])));
  _mm256_store_pd(t + 4, _mm256_add_pd(_mm256_add_pd(a[1], a[3]), _mm256_add_pd(a[5], a[7])));
  return sum_in_order<double, 8>(t);
}

#endif  // LM_X86

template <class T>
double sumsq(const T* x, int64_t D, RowKernel kernel) {
  if constexpr (std::is_same_v<T, float>) {
#if LM_X86
    if (kernel == RowKernel::Avx512) return sumsq_avx512(x, D);
    if (kernel == RowKernel::Avx2) return sumsq_avx2(x, D);
#endif
  }
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t j = 0; j < D; ++j) ss += (double)x[j] * (double)x[j];
  return ss;
}
}  // namespace

template <class T>
void l2_norm_rows_forward(const T* x, int64_t rows, int64_t D, double eps, T* norms) {
  const RowKernel kernel = row_kernel();
#pragma omp parallel for schedule(static) if (rows * D > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const double ss = sumsq(x + r * D, D, kernel);
    const bool clamped = ss < eps * eps;
    norms[r] = clamped ? (T)-eps : (T)std::sqrt(ss);
  }
}

// d||x|| / dx = x / ||x||; a clamped row's norm is the constant eps. accumulate: gx += instead of =.
template <class T>
void l2_norm_rows_backward(const T* g, const T* x, const T* norms, int64_t rows, int64_t D, T* gx, bool accumulate) {
#pragma omp parallel for schedule(static) if (rows * D > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    T* out = gx + r * D;
    const T c = norms[r] < 0 ? (T)0 : (T)((double)g[r] / (double)norms[r]);
    if (accumulate) {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) out[j] += c * xr[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) out[j] = c * xr[j];
    }
  }
}

template void l2_norm_rows_forward<float>(const float*, int64_t, int64_t, double, float*);
template void l2_norm_rows_forward<double>(const double*, int64_t, int64_t, double, double*);
template void l2_norm_rows_backward<float>(const float*, const float*, const float*, int64_t, int64_t, float*, bool);
template void l2_norm_rows_backward<double>(const double*, const double*, const double*, int64_t, int64_t, double*, bool);

template void l2_normalize_rows_forward<float>(const float*, int64_t, int64_t, double, float*, float*);
template void l2_normalize_rows_forward<double>(const double*, int64_t, int64_t, double, double*, double*);
template void l2_normalize_rows_backward<float>(const float*, const float*, const float*, int64_t, int64_t, float*);
template void l2_normalize_rows_backward<double>(const double*, const double*, const double*, int64_t, int64_t, double*);

}  // namespace lm::cpu
