// Float32 polynomial forms of erf and exp that vectorise (scalar versions; avx512_math.h and
// avx2_math.h evaluate the same polynomials 16 and 8 lanes at a time for the row kernels).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace lm::cpu {

// The coefficients, one copy for the scalar, AVX2 and AVX-512 versions (Horner order, highest
// power first), so that the three evaluate the same polynomials.
inline constexpr float kErfP[7] = {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f,
                                   -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                                   -1.60960333262415e-02f};  // erf: x p(x^2) / q(x^2)
inline constexpr float kErfQ[5] = {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f,
                                   -7.37332916720468e-03f, -1.42647390514189e-02f};
inline constexpr float kExpP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                   4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};  // exp(r) - 1 - r = r^2 p(r)
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = 2.12194440e-4f;  // ln 2 = kLn2Hi - kLn2Lo

// erf as a rational function (Eigen's generic_fast_erf_float coefficients): max abs error
// 4.2e-7 on [-6, 6] against the exact erf (checked with Python's math.erf), a few float32 ulps.
inline float erf_poly(float x) {
  x = x < -4.f ? -4.f : (x > 4.f ? 4.f : x);
  const float x2 = x * x;
  float p = kErfP[0];
  for (int k = 1; k < 7; ++k) p = x2 * p + kErfP[k];
  p = x * p;
  float q = kErfQ[0];
  for (int k = 1; k < 5; ++k) q = x2 * q + kErfQ[k];
  return p / q;
}

// exp(x) for x <= 0 (Cephes' expf reduction and polynomial, ~2 ulp): x = n ln2 + r with
// |r| <= ln2/2, exp(r) by a degree-6 polynomial, 2^n assembled in the exponent bits.
// Below -87 the result is clamped to exp(-87) ~ 1.6e-38 instead of a denormal or 0.
inline float exp_nonpos(float x) {
  x = x < -87.f ? -87.f : x;
  const float n = std::floor(x * kLog2e + 0.5f);
  const float r = x - n * kLn2Hi + n * kLn2Lo;
  float p = kExpP[0];
  for (int k = 1; k < 6; ++k) p = p * r + kExpP[k];
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

}  // namespace lm::cpu
