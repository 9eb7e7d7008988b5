// Float32 polynomial forms of erf and exp that vectorise (scalar versions; avx512_math.h and
// avx2_math.h evaluate the same polynomials 16 and 8 lanes at a time for the row kernels).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace lm::cpu {

// erf as a rational function (Eigen's generic_fast_erf_float coefficients): max abs error
// 4.2e-7 on [-6, 6] against the exact erf (checked with Python's math.erf), a few float32 ulps.
inline float erf_poly(float x) {
  x = x < -4.f ? -4.f : (x > 4.f ? 4.f : x);
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = x2 * p + 2.77068142495902e-08f;
  p = x2 * p - 2.10102402082508e-06f;
  p = x2 * p - 5.69250639462346e-05f;
  p = x2 * p - 7.34990630326855e-04f;
  p = x2 * p - 2.95459980854025e-03f;
  p = x2 * p - 1.60960333262415e-02f;
  p = x * p;
  float q = -1.45660718464996e-05f;
  q = x2 * q - 2.13374055278905e-04f;
  q = x2 * q - 1.68282697438203e-03f;
  q = x2 * q - 7.37332916720468e-03f;
  q = x2 * q - 1.42647390514189e-02f;
  return p / q;
}

// exp(x) for x <= 0 (Cephes' expf reduction and polynomial, ~2 ulp): x = n ln2 + r with
// |r| <= ln2/2, exp(r) by a degree-6 polynomial, 2^n assembled in the exponent bits.
// Below -87 the result is clamped to exp(-87) ~ 1.6e-38 instead of a denormal or 0.
inline float exp_nonpos(float x) {
  x = x < -87.f ? -87.f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

}  // namespace lm::cpu
