// Float32 polynomial forms of erf and exp that vectorise (scalar versions; the AVX-512 row
// kernels of layer_norm_gelu.cpp evaluate the same polynomials 16 lanes at a time).
#pragma once
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

}  // namespace lm::cpu
