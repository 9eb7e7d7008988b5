// CPU softmax / log_softmax kernels, forward and backward (docs/ops/softmax.md).
// Each (outer index) block is independent, so blocks run in parallel with OpenMP; inside a
// block the loops over `inner` lanes are contiguous and vectorise. Float32 inputs compute
// exp in float32 and accumulate sums in float64 (at least as accurate as torch's float32).
// Float32 rows over the last dim have AVX-512 and AVX2 versions (exp16_nonpos / exp8_nonpos, a
// Cephes polynomial of ~2 ulp, instead of libm's scalar expf), chosen by row_kernel()
// (row_kernel.h; LIBRAMIL_ROW_KERNEL=portable turns them off).
#include "ops/cpu/softmax.h"

#include "ops/cpu/avx2_math.h"
#include "ops/cpu/avx512_math.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/row_kernel.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace lm::cpu {

namespace {


// One row (inner == 1): x, y: (n) contiguous.
template <class T>
void softmax_row(const T* x, int64_t n, bool log, T* y) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  if (std::isinf(m) && m < 0) m = 0;  // an all -inf row: exp(-inf) = 0, sum 0 -> NaN like torch
  double s = 0;
  if (log) {
    for (int64_t j = 0; j < n; ++j) s += (double)std::exp(x[j] - m);
    // (x - m) - log(s), not x - (m + log(s)): x - m is exact near the maximum, and rounding
    // m + log(s) to float32 would cost up to half an ulp of |m|.
    const T ls = (T)std::log(s);
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) - ls;
  } else {
    for (int64_t j = 0; j < n; ++j) {
      T e = std::exp(x[j] - m);
      y[j] = e;
      s += (double)e;
    }
    const T inv = (T)(1.0 / s);
    for (int64_t j = 0; j < n; ++j) y[j] *= inv;
  }
}

#if LM_X86
// softmax_row for float32 on 16 lanes. exp(x - m) is exp16_nonpos with lanes below -87.33
// (where float32 exp leaves the normal range) set to 0, so masked (-inf) entries weigh exactly 0.
LM_AVX512 void softmax_row_avx512(const float* x, int64_t n, bool log, float* y) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 vm = ninf;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = tail_mask(n - j);
    vm = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, k, x + j), vm);  // NaN lanes ignored, as in softmax_row
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, vm);
  float m = lanes[0];
  for (int i = 1; i < 16; ++i) m = lanes[i] > m ? lanes[i] : m;
  if (std::isinf(m) && m < 0) m = 0;
  const __m512 vmax = _mm512_set1_ps(m), lo = _mm512_set1_ps(-87.33654f);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = tail_mask(n - j);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vmax);
    const __mmask16 live = k & ~_mm512_cmp_ps_mask(d, lo, _CMP_LT_OQ);
    const __m512 e = _mm512_maskz_mov_ps(live, exp16_nonpos(d));
    if (!log) _mm512_mask_storeu_ps(y + j, k, e);
    add_to_f64(s0, s1, e);
  }
  const double s = hsum8d(_mm512_add_pd(s0, s1));
  if (log) {
    const __m512 ls = _mm512_set1_ps((float)std::log(s));
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = tail_mask(n - j);
      _mm512_mask_storeu_ps(y + j, k, _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vmax), ls));
    }
  } else {
    const __m512 inv = _mm512_set1_ps((float)(1.0 / s));
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = tail_mask(n - j);
      _mm512_mask_storeu_ps(y + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + j), inv));
    }
  }
}

// softmax_row_avx512 on AVX2, with its bits: its 16 lanes as two halves (avx2_math.h).
LM_AVX2 void softmax_row_avx2(const float* x, int64_t n, bool log, float* y) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 vm_lo = ninf, vm_hi = ninf;
  for (int64_t j = 0; j < n; j += 8) {
    __m256 v = load8(x + j, n - j);
    if (n - j < 8) v = _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(tail_mask8(n - j)));  // -inf past the end
    if (j % 16 == 0) vm_lo = _mm256_max_ps(v, vm_lo);  // NaN lanes ignored, as in softmax_row
    else vm_hi = _mm256_max_ps(v, vm_hi);
  }
  alignas(32) float lanes[16];
  _mm256_store_ps(lanes, vm_lo);
  _mm256_store_ps(lanes + 8, vm_hi);
  float m = lanes[0];
  for (int i = 1; i < 16; ++i) m = lanes[i] > m ? lanes[i] : m;
  if (std::isinf(m) && m < 0) m = 0;
  const __m256 vmax = _mm256_set1_ps(m), underflow = _mm256_set1_ps(-87.33654f);
  __m256d s[4];
  for (__m256d& v : s) v = _mm256_setzero_pd();
  for (int64_t j = 0; j < n; j += 8) {
    const __m256 d = _mm256_sub_ps(load8(x + j, n - j), vmax);
    const __m256 dead = _mm256_cmp_ps(d, underflow, _CMP_LT_OQ);
    const __m256 e = zero_past_end(_mm256_andnot_ps(dead, exp8_nonpos(d)), n - j);
    if (!log) store8(y + j, n - j, e);
    if (j % 16 == 0) add_to_f64(s[0], s[1], e);
    else add_to_f64(s[2], s[3], e);
  }
  const double sum = hsum_f64(s);
  if (log) {
    const __m256 ls = _mm256_set1_ps((float)std::log(sum));
    for (int64_t j = 0; j < n; j += 8)
      store8(y + j, n - j, _mm256_sub_ps(_mm256_sub_ps(load8(x + j, n - j), vmax), ls));
  } else {
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (int64_t j = 0; j < n; j += 8) store8(y + j, n - j, _mm256_mul_ps(load8(y + j, n - j), inv));
  }
}

#endif  // LM_X86

template <class T>
void softmax_row_any(const T* x, int64_t n, bool log, T* y, RowKernel kernel) {
  if constexpr (std::is_same_v<T, float>) {
#if LM_X86
    if (kernel == RowKernel::Avx512) return softmax_row_avx512(x, n, log, y);
    if (kernel == RowKernel::Avx2) return softmax_row_avx2(x, n, log, y);
#endif
  }
  softmax_row(x, n, log, y);
}

// One block (inner > 1): x, y: (n, inner) contiguous; softmax down each of `inner` columns.
template <class T>
void softmax_block(const T* x, int64_t n, int64_t inner, bool log, T* y, std::vector<T>& m,
                   std::vector<double>& s) {
  m.assign(inner, -std::numeric_limits<T>::infinity());
  s.assign(inner, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const T* r = x + j * inner;
    for (int64_t i = 0; i < inner; ++i) m[i] = r[i] > m[i] ? r[i] : m[i];
  }
  for (int64_t i = 0; i < inner; ++i)
    if (std::isinf(m[i]) && m[i] < 0) m[i] = 0;
  for (int64_t j = 0; j < n; ++j) {
    const T* r = x + j * inner;
    T* o = y + j * inner;
    for (int64_t i = 0; i < inner; ++i) {
      T e = std::exp(r[i] - m[i]);
      if (!log) o[i] = e;
      s[i] += (double)e;
    }
  }
  if (log) {
    for (int64_t i = 0; i < inner; ++i) s[i] = std::log(s[i]);  // s becomes log(sum)
    for (int64_t j = 0; j < n; ++j) {
      const T* r = x + j * inner;
      T* o = y + j * inner;
      for (int64_t i = 0; i < inner; ++i) o[i] = (r[i] - m[i]) - (T)s[i];
    }
  } else {
    for (int64_t i = 0; i < inner; ++i) s[i] = 1.0 / s[i];
    for (int64_t j = 0; j < n; ++j) {
      T* o = y + j * inner;
      for (int64_t i = 0; i < inner; ++i) o[i] *= (T)s[i];
    }
  }
}

template <class T>
void forward_typed(const T* x, int64_t outer, int64_t n, int64_t inner, bool log, T* y) {
  const int64_t work = outer * n * inner;
  if (inner == 1) {
    const RowKernel kernel = row_kernel();
#pragma omp parallel for schedule(static) if (work > kParallelGrain)
    for (int64_t o = 0; o < outer; ++o) softmax_row_any(x + o * n, n, log, y + o * n, kernel);
    return;
  }
#pragma omp parallel if (work > kParallelGrain && outer > 1)
  {
    std::vector<T> m;
    std::vector<double> s;
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outer; ++o) softmax_block(x + o * n * inner, n, inner, log, y + o * n * inner, m, s);
  }
}

template <class T>
void backward_typed(const T* y, const T* g, int64_t outer, int64_t n, int64_t inner, bool log, T* gx) {
  const int64_t work = outer * n * inner;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (work > kParallelGrain)
    for (int64_t o = 0; o < outer; ++o) {
      const T* yr = y + o * n;
      const T* gr = g + o * n;
      T* dr = gx + o * n;
      double acc = 0;
      // The difference g - sum cancels: it is formed in float64 before rounding to T.
      if (log) {
        for (int64_t j = 0; j < n; ++j) acc += (double)gr[j];
        for (int64_t j = 0; j < n; ++j) dr[j] = (T)((double)gr[j] - (double)std::exp(yr[j]) * acc);
      } else {
        for (int64_t j = 0; j < n; ++j) acc += (double)gr[j] * (double)yr[j];
        for (int64_t j = 0; j < n; ++j) dr[j] = (T)((double)yr[j] * ((double)gr[j] - acc));
      }
    }
    return;
  }
#pragma omp parallel if (work > kParallelGrain && outer > 1)
  {
    std::vector<double> acc;
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      const T* yb = y + o * n * inner;
      const T* gb = g + o * n * inner;
      T* db = gx + o * n * inner;
      acc.assign(inner, 0.0);
      for (int64_t j = 0; j < n; ++j) {
        const T* yr = yb + j * inner;
        const T* gr = gb + j * inner;
        if (log)
          for (int64_t i = 0; i < inner; ++i) acc[i] += (double)gr[i];
        else
          for (int64_t i = 0; i < inner; ++i) acc[i] += (double)gr[i] * (double)yr[i];
      }
      for (int64_t j = 0; j < n; ++j) {
        const T* yr = yb + j * inner;
        const T* gr = gb + j * inner;
        T* dr = db + j * inner;
        if (log)
          for (int64_t i = 0; i < inner; ++i) dr[i] = (T)((double)gr[i] - (double)std::exp(yr[i]) * acc[i]);
        else
          for (int64_t i = 0; i < inner; ++i) dr[i] = (T)((double)yr[i] * ((double)gr[i] - acc[i]));
      }
    }
  }
}

}  // namespace

void softmax_one_row(const float* x, int64_t n, float* y) { softmax_row_any(x, n, false, y, row_kernel()); }
void softmax_one_row(const double* x, int64_t n, double* y) { softmax_row(x, n, false, y); }

void softmax_forward(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log, Tensor& out) {
  if (outer * n * inner == 0) return;
  if (x.dtype() == DType::F32) forward_typed<float>(x.data<float>(), outer, n, inner, log, out.data<float>());
  else forward_typed<double>(x.data<double>(), outer, n, inner, log, out.data<double>());
}

void softmax_backward(const Tensor& y, const Tensor& grad_y, int64_t outer, int64_t n, int64_t inner, bool log,
                      Tensor& grad_x) {
  if (outer * n * inner == 0) return;
  if (y.dtype() == DType::F32)
    backward_typed<float>(y.data<float>(), grad_y.data<float>(), outer, n, inner, log, grad_x.data<float>());
  else
    backward_typed<double>(y.data<double>(), grad_y.data<double>(), outer, n, inner, log, grad_x.data<double>());
}

}  // namespace lm::cpu
