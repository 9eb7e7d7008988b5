// Fused Linear-tail kernels: bias + LayerNorm + affine + exact GELU, forward and backward
// (layer_norm_gelu.h). One row of D floats stays in L1 across the passes, so each (rows, D)
// tensor is read or written once per pass instead of once per op.
//
// Three versions of each row function: portable C++, AVX-512 and AVX2 + FMA intrinsics (chosen at
// run time by row_kernel(), row_kernel.h). erf and exp are float32 polynomials (fast_math.h), the
// same in all three; the AVX2 rows give the AVX-512 rows' bits, and the portable rows differ from
// them only in summation order and FMA contraction.
#include "ops/cpu/layer_norm_gelu.h"
#include "ops/cpu/fast_math.h"
#include "ops/cpu/avx2_math.h"
#include "ops/cpu/avx512_math.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/row_kernel.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <memory>

namespace lm::cpu {

namespace {

#define LM_INLINE static inline __attribute__((always_inline))


constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// ---- portable rows (any CPU; the compiler vectorises what it can) --------------------------

// One row forward. y (D) gets the linear bias added in place.
void forward_row(float* __restrict y, const float* __restrict lin_bias, const float* __restrict w,
                 const float* __restrict b, float eps, int64_t D, bool gelu, float* __restrict out, float* mean,
                 float* rstd) {
  float s = 0;
  for (int64_t j = 0; j < D; ++j) {
    if (lin_bias) y[j] += lin_bias[j];
    s += y[j];
  }
  const float mu = s / (float)D;
  float var = 0;
  for (int64_t j = 0; j < D; ++j) var += (y[j] - mu) * (y[j] - mu);
  const float rs = 1.0f / std::sqrt(var / (float)D + eps);
  *mean = mu;
  *rstd = rs;
  for (int64_t j = 0; j < D; ++j) {
    const float z = (y[j] - mu) * rs * w[j] + b[j];
    out[j] = gelu ? 0.5f * z * (1.0f + erf_poly(z * kInvSqrt2)) : z;
  }
}

// One row backward (derivation in docs/ops/layernorm.md):
//   xh = (y - mu) rstd,  z = xh w + b,  out = gelu(z)
//   gz = g gelu'(z) = g (Phi(z) + z phi(z));  gw += gz xh;  gb += gz
//   gxh = gz w;  gy = rstd (gxh - mean(gxh) - xh mean(gxh xh));  gcol += gy
void backward_row(const float* __restrict g, const float* __restrict y, const float* __restrict w,
                  const float* __restrict b, float mu, float rs, int64_t D, bool gelu, float* __restrict gy,
                  float* __restrict cw, float* __restrict cb, float* __restrict cc) {
  float s1 = 0, s2 = 0;
  for (int64_t j = 0; j < D; ++j) {
    const float xh = (y[j] - mu) * rs;
    float gz = g[j];
    if (gelu) {
      const float z = xh * w[j] + b[j];
      const float cdf = 0.5f * (1.0f + erf_poly(z * kInvSqrt2));
      const float pdf = kInvSqrt2Pi * exp_nonpos(-0.5f * z * z);
      gz *= cdf + z * pdf;
    }
    cw[j] += gz * xh;
    cb[j] += gz;
    const float gxh = gz * w[j];
    gy[j] = gxh;
    s1 += gxh;
    s2 += gxh * xh;
  }
  const float m1 = s1 / (float)D, m2 = s2 / (float)D;
  for (int64_t j = 0; j < D; ++j) {
    const float xh = (y[j] - mu) * rs;
    const float v = rs * (gy[j] - m1 - xh * m2);
    gy[j] = v;
    cc[j] += v;
  }
}

// ---- AVX-512 rows: the same arithmetic, 16 lanes at a time, masked tails -------------------
#if LM_X86
LM_AVX512 void forward_row_avx512(float* y, const float* lin_bias, const float* w, const float* b, float eps,
                                  int64_t D, bool gelu, float* out, float* mean, float* rstd) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < D; j += 16) {
    const __mmask16 m = tail_mask(D - j);
    __m512 v = _mm512_maskz_loadu_ps(m, y + j);
    if (lin_bias) {
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, lin_bias + j));
      _mm512_mask_storeu_ps(y + j, m, v);
    }
    acc = _mm512_add_ps(acc, v);
  }
  const float mu = hsum16(acc) / (float)D;
  const __m512 vmu = _mm512_set1_ps(mu);
  acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < D; j += 16) {
    const __mmask16 m = tail_mask(D - j);
    const __m512 c = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, y + j), vmu);
    acc = _mm512_fmadd_ps(c, c, acc);
  }
  const float rs = 1.0f / std::sqrt(hsum16(acc) / (float)D + eps);
  *mean = mu;
  *rstd = rs;
  const __m512 vrs = _mm512_set1_ps(rs), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f),
               k = _mm512_set1_ps(kInvSqrt2);
  for (int64_t j = 0; j < D; j += 16) {
    const __mmask16 m = tail_mask(D - j);
    const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + j), vmu), vrs);
    __m512 z = _mm512_fmadd_ps(xh, _mm512_maskz_loadu_ps(m, w + j), _mm512_maskz_loadu_ps(m, b + j));
    if (gelu) z = _mm512_mul_ps(_mm512_mul_ps(half, z), _mm512_add_ps(one, erf16(_mm512_mul_ps(z, k))));
    _mm512_mask_storeu_ps(out + j, m, z);
  }
}

LM_AVX512 void backward_row_avx512(const float* g, const float* y, const float* w, const float* b, float mu, float rs,
                                   int64_t D, bool gelu, float* gy, float* cw, float* cb, float* cc) {
  const __m512 vmu = _mm512_set1_ps(mu), vrs = _mm512_set1_ps(rs), half = _mm512_set1_ps(0.5f),
               one = _mm512_set1_ps(1.0f), k = _mm512_set1_ps(kInvSqrt2), kp = _mm512_set1_ps(kInvSqrt2Pi),
               mhalf = _mm512_set1_ps(-0.5f);
  __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
  for (int64_t j = 0; j < D; j += 16) {
    const __mmask16 m = tail_mask(D - j);
    const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + j), vmu), vrs);
    const __m512 wj = _mm512_maskz_loadu_ps(m, w + j);
    __m512 gz = _mm512_maskz_loadu_ps(m, g + j);  // zero in the tail: every product below is 0 there
    if (gelu) {
      const __m512 z = _mm512_fmadd_ps(xh, wj, _mm512_maskz_loadu_ps(m, b + j));
      const __m512 cdf = _mm512_mul_ps(half, _mm512_add_ps(one, erf16(_mm512_mul_ps(z, k))));
      const __m512 pdf = _mm512_mul_ps(kp, exp16_nonpos(_mm512_mul_ps(mhalf, _mm512_mul_ps(z, z))));
      gz = _mm512_mul_ps(gz, _mm512_fmadd_ps(z, pdf, cdf));
    }
    _mm512_mask_storeu_ps(cw + j, m, _mm512_fmadd_ps(gz, xh, _mm512_maskz_loadu_ps(m, cw + j)));
    _mm512_mask_storeu_ps(cb + j, m, _mm512_add_ps(gz, _mm512_maskz_loadu_ps(m, cb + j)));
    const __m512 gxh = _mm512_mul_ps(gz, wj);
    _mm512_mask_storeu_ps(gy + j, m, gxh);
    s1 = _mm512_add_ps(s1, gxh);
    s2 = _mm512_fmadd_ps(gxh, xh, s2);
  }
  const __m512 m1 = _mm512_set1_ps(hsum16(s1) / (float)D),
               m2 = _mm512_set1_ps(hsum16(s2) / (float)D);
  for (int64_t j = 0; j < D; j += 16) {
    const __mmask16 m = tail_mask(D - j);
    const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + j), vmu), vrs);
    const __m512 v = _mm512_mul_ps(vrs, _mm512_fnmadd_ps(xh, m2, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, gy + j), m1)));
    _mm512_mask_storeu_ps(gy + j, m, v);
    _mm512_mask_storeu_ps(cc + j, m, _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, cc + j)));
  }
}

// ---- AVX2 rows: the AVX-512 rows 8 lanes at a time, with their bits -------------------------
// Every sum keeps the AVX-512 rows' 16 lanes as two halves (avx2_math.h): elements j .. j+7 of a
// row go into the lo half when j % 16 == 0, else into hi. Same operations, in the same order.

LM_AVX2 void forward_row_avx2(float* y, const float* lin_bias, const float* w, const float* b, float eps, int64_t D,
                              bool gelu, float* out, float* mean, float* rstd) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int64_t j = 0; j < D; j += 8) {
    __m256 v = load8(y + j, D - j);
    if (lin_bias) {
      v = _mm256_add_ps(v, load8(lin_bias + j, D - j));
      store8(y + j, D - j, v);
    }
    if (j % 16 == 0) lo = _mm256_add_ps(lo, v);
    else hi = _mm256_add_ps(hi, v);
  }
  const float mu = hsum16(lo, hi) / (float)D;
  const __m256 vmu = _mm256_set1_ps(mu);
  lo = hi = _mm256_setzero_ps();
  for (int64_t j = 0; j < D; j += 8) {
    const __m256 c = zero_past_end(_mm256_sub_ps(load8(y + j, D - j), vmu), D - j);
    if (j % 16 == 0) lo = _mm256_fmadd_ps(c, c, lo);
    else hi = _mm256_fmadd_ps(c, c, hi);
  }
  const float rs = 1.0f / std::sqrt(hsum16(lo, hi) / (float)D + eps);
  *mean = mu;
  *rstd = rs;
  const __m256 vrs = _mm256_set1_ps(rs), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f),
               k = _mm256_set1_ps(kInvSqrt2);
  for (int64_t j = 0; j < D; j += 8) {
    const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(load8(y + j, D - j), vmu), vrs);
    __m256 z = _mm256_fmadd_ps(xh, load8(w + j, D - j), load8(b + j, D - j));
    if (gelu) z = _mm256_mul_ps(_mm256_mul_ps(half, z), _mm256_add_ps(one, erf8(_mm256_mul_ps(z, k))));
    store8(out + j, D - j, z);
  }
}

LM_AVX2 void backward_row_avx2(const float* g, const float* y, const float* w, const float* b, float mu, float rs,
                               int64_t D, bool gelu, float* gy, float* cw, float* cb, float* cc) {
  const __m256 vmu = _mm256_set1_ps(mu), vrs = _mm256_set1_ps(rs), half = _mm256_set1_ps(0.5f),
               one = _mm256_set1_ps(1.0f), k = _mm256_set1_ps(kInvSqrt2), kp = _mm256_set1_ps(kInvSqrt2Pi),
               mhalf = _mm256_set1_ps(-0.5f);
  __m256 s1_lo = _mm256_setzero_ps(), s1_hi = s1_lo, s2_lo = s1_lo, s2_hi = s1_lo;
  for (int64_t j = 0; j < D; j += 8) {
    const int64_t left = D - j;
    const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(load8(y + j, left), vmu), vrs);
    const __m256 wj = load8(w + j, left);
    __m256 gz = load8(g + j, left);  // zero past the end: every product below is 0 there
    if (gelu) {
      const __m256 z = _mm256_fmadd_ps(xh, wj, load8(b + j, left));
      const __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, erf8(_mm256_mul_ps(z, k))));
      const __m256 pdf = _mm256_mul_ps(kp, exp8_nonpos(_mm256_mul_ps(mhalf, _mm256_mul_ps(z, z))));
      gz = _mm256_mul_ps(gz, _mm256_fmadd_ps(z, pdf, cdf));
    }
    store8(cw + j, left, _mm256_fmadd_ps(gz, xh, load8(cw + j, left)));
    store8(cb + j, left, _mm256_add_ps(gz, load8(cb + j, left)));
    const __m256 gxh = _mm256_mul_ps(gz, wj);
    store8(gy + j, left, gxh);
    if (j % 16 == 0) {
      s1_lo = _mm256_add_ps(s1_lo, gxh);
      s2_lo = _mm256_fmadd_ps(gxh, xh, s2_lo);
    } else {
      s1_hi = _mm256_add_ps(s1_hi, gxh);
      s2_hi = _mm256_fmadd_ps(gxh, xh, s2_hi);
    }
  }
  const __m256 m1 = _mm256_set1_ps(hsum16(s1_lo, s1_hi) / (float)D),
               m2 = _mm256_set1_ps(hsum16(s2_lo, s2_hi) / (float)D);
  for (int64_t j = 0; j < D; j += 8) {
    const int64_t left = D - j;
    const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(load8(y + j, left), vmu), vrs);
    const __m256 v = _mm256_mul_ps(vrs, _mm256_fnmadd_ps(xh, m2, _mm256_sub_ps(load8(gy + j, left), m1)));
    store8(gy + j, left, v);
    store8(cc + j, left, _mm256_add_ps(v, load8(cc + j, left)));
  }
}

#endif  // LM_X86

}  // namespace

void layer_norm_gelu_forward(float* y, const float* lin_bias, const float* w, const float* b, float eps, int64_t rows,
                             int64_t D, bool gelu, float* out, float* mean, float* rstd) {
  [[maybe_unused]] const RowKernel kernel = row_kernel();  // unused off x86
#pragma omp parallel for schedule(static) if (rows * D > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
#if LM_X86
    if (kernel == RowKernel::Avx512) {
      forward_row_avx512(y + r * D, lin_bias, w, b, eps, D, gelu, out + r * D, mean + r, rstd + r);
      continue;
    }
    if (kernel == RowKernel::Avx2) {
      forward_row_avx2(y + r * D, lin_bias, w, b, eps, D, gelu, out + r * D, mean + r, rstd + r);
      continue;
    }
#endif
    forward_row(y + r * D, lin_bias, w, b, eps, D, gelu, out + r * D, mean + r, rstd + r);
  }
}

void layer_norm_gelu_backward_rows(const float* g, const float* y, const float* w, const float* b,
                                   const float* mean, const float* rstd, int64_t r0, int64_t r1, int64_t D, bool gelu,
                                   float* gy, float* part) {
  [[maybe_unused]] const RowKernel kernel = row_kernel();  // unused off x86
  for (int64_t c0 = r0; c0 < r1; c0 += kLnBackwardChunkRows) {
    float* cw = part + (c0 / kLnBackwardChunkRows) * 3 * D;
    std::fill(cw, cw + 3 * D, 0.0f);
    for (int64_t r = c0, end = std::min(r1, c0 + kLnBackwardChunkRows); r < end; ++r) {
      float* gyr = gy + (r - r0) * D;
#if LM_X86
      if (kernel == RowKernel::Avx512) {
        backward_row_avx512(g + r * D, y + r * D, w, b, mean[r], rstd[r], D, gelu, gyr, cw, cw + D, cw + 2 * D);
        continue;
      }
      if (kernel == RowKernel::Avx2) {
        backward_row_avx2(g + r * D, y + r * D, w, b, mean[r], rstd[r], D, gelu, gyr, cw, cw + D, cw + 2 * D);
        continue;
      }
#endif
      backward_row(g + r * D, y + r * D, w, b, mean[r], rstd[r], D, gelu, gyr, cw, cw + D, cw + 2 * D);
    }
  }
}

void layer_norm_gelu_backward_reduce(const float* part, int64_t rows, int64_t D, float* gw, float* gb, float* gcol) {
  const int64_t nchunks = (rows + kLnBackwardChunkRows - 1) / kLnBackwardChunkRows;
  // Chunk partials added in chunk order, in float64.
#pragma omp parallel for schedule(static) if (nchunks * D > kParallelGrain)
  for (int64_t j = 0; j < D; ++j) {
    double sw = 0, sb = 0, sc = 0;
    for (int64_t c = 0; c < nchunks; ++c) {
      const float* p = part + c * 3 * D;
      sw += p[j];
      sb += p[D + j];
      sc += p[2 * D + j];
    }
    if (gw) gw[j] = (float)sw;
    if (gb) gb[j] = (float)sb;
    if (gcol) gcol[j] = (float)sc;
  }
}

void layer_norm_gelu_backward(const float* g, const float* y, const float* w, const float* b, const float* mean,
                              const float* rstd, int64_t rows, int64_t D, bool gelu, float* gy, float* gw, float* gb,
                              float* gcol) {
  const int64_t nchunks = (rows + kLnBackwardChunkRows - 1) / kLnBackwardChunkRows;
  // Every chunk's partials are written (zeroed first) by layer_norm_gelu_backward_rows.
  std::unique_ptr<float[]> part(new float[(size_t)(nchunks * 3 * D)]);
#pragma omp parallel for schedule(static) if (rows * D > kParallelGrain)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t r0 = c * kLnBackwardChunkRows, r1 = std::min(rows, r0 + kLnBackwardChunkRows);
    layer_norm_gelu_backward_rows(g, y, w, b, mean, rstd, r0, r1, D, gelu, gy + r0 * D, part.get());
  }
  layer_norm_gelu_backward_reduce(part.get(), rows, D, gw, gb, gcol);
}

}  // namespace lm::cpu
