// The AVX2 + FMA row kernels (ops/cpu/avx2_math.h, chosen by row_kernel(): ops/cpu/row_kernel.h)
// against the portable C++ rows and the scalar reference functions (ops/cpu/fast_math.h):
// - exp and erf over dense sweeps of float32 bit patterns (their whole domain, subnormals,
//   infinities, NaN), against the scalar functions and against float64 exp / erf;
// - each row kernel -- fused LayerNorm + GELU forward and backward, softmax and log_softmax rows,
//   the l2 norms' sums of squares, bilinear_rows' row dots -- on rows of every length 1..70 (every
//   tail of an 8- and a 16-lane loop), with values from subnormal (1e-40) to 1e17, +-inf and NaN.
//   The tolerances are first-order error bounds of the float32 arithmetic, worked out at each
//   check; NaN must come out where the portable rows give NaN, and infinities must match.
// Where the CPU also has AVX-512, the AVX2 results must equal the AVX-512 ones bit for bit
// (avx2_math.h: the AVX2 rows keep the AVX-512 rows' 16-lane sums as two halves).
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/cpu/avx2_math.h"
#include "ops/cpu/avx512_math.h"
#include "ops/cpu/fast_math.h"
#include "ops/cpu/isa.h"
#include "ops/cpu/layer_norm_gelu.h"
#include "ops/cpu/normalize.h"
#include "ops/cpu/row_kernel.h"
#include "ops/cpu/softmax.h"
#include "ops/ops.h"

namespace {

using namespace lm;
using Vec = std::vector<float>;

constexpr double kEps = std::numeric_limits<float>::epsilon();  // 2^-23: a float32 ulp at 1
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

bool have_avx2() { return cpu::isa_allows(cpu::CpuIsa::Avx2); }
bool have_avx512() { return cpu::isa_allows(cpu::CpuIsa::Avx512); }
bool skip_without_avx2() {
  if (!have_avx2()) MESSAGE("skipped: no AVX2 + FMA here (or LIBRAMIL_CPU_ISA=scalar)");
  return !have_avx2();
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
float from_bits(uint32_t b) { return std::bit_cast<float>(b); }

// The spacing of float32 numbers at |v| (v finite, not 0): 2^(e - 23) for |v| in [2^e, 2^(e+1)).
double ulp(double v) {
  int e;
  std::frexp(v, &e);
  return std::ldexp(1.0, std::max(e - 24, -149));
}

// True when a and b are both NaN, equal, or within tol of each other.
bool agree(float a, float b, double tol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::abs((double)a - (double)b) <= tol;
}

bool same_bits(const Vec& a, const Vec& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (bits(a[i]) != bits(b[i]) && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
  return true;
}

// ---- exp and erf on whole arrays (length a multiple of 16) -----------------------------------

LM_AVX2 void exp8_all(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; i += 8) _mm256_storeu_ps(y + i, cpu::exp8_nonpos(_mm256_loadu_ps(x + i)));
}
LM_AVX2 void erf8_all(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; i += 8) _mm256_storeu_ps(y + i, cpu::erf8(_mm256_loadu_ps(x + i)));
}
LM_AVX512 void exp16_all(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; i += 16) _mm512_storeu_ps(y + i, cpu::exp16_nonpos(_mm512_loadu_ps(x + i)));
}
LM_AVX512 void erf16_all(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; i += 16) _mm512_storeu_ps(y + i, cpu::erf16(_mm512_loadu_ps(x + i)));
}

// Every `stride`-th bit pattern of [lo, hi] with the given sign, the `extra` values, padded with
// zeros to a multiple of 16.
Vec sweep(uint32_t lo, uint32_t hi, uint32_t stride, bool negative, const Vec& extra) {
  Vec x;
  for (uint64_t m = lo; m <= hi; m += stride) x.push_back(from_bits((uint32_t)m | (negative ? 0x80000000u : 0u)));
  x.insert(x.end(), extra.begin(), extra.end());
  while (x.size() % 16) x.push_back(0.0f);
  return x;
}

// Applies a vector function and, when the CPU has AVX-512, checks its 16-lane twin gives the same bits.
Vec apply(const Vec& x, void (*f8)(const float*, float*, size_t), void (*f16)(const float*, float*, size_t)) {
  Vec y(x.size());
  f8(x.data(), y.data(), x.size());
  if (have_avx512()) {
    Vec y16(x.size());
    f16(x.data(), y16.data(), x.size());
    CHECK(same_bits(y, y16));
  }
  return y;
}

float exp8_one(float x) {
  Vec v(16, x);
  exp8_all(v.data(), v.data(), v.size());
  return v[0];
}

TEST_CASE("avx2 rows: exp8_nonpos against exp_nonpos and float64 exp over [-inf, 0], subnormals and NaN") {
  if (skip_without_avx2()) return;
  const float sub = 1e-40f, tiny = std::numeric_limits<float>::denorm_min();
  // Every 67th float in [-104, -0] (17 million), past the clamp at -87 and float32 exp's normal range.
  const Vec x = sweep(0, bits(104.0f), 67, true, {-sub, -tiny, 0.0f, -87.0f, -87.33654f, -1e30f, -kInf, kNaN});
  const Vec y = apply(x, exp8_all, exp16_all);
  const float clamped = exp8_one(-87.0f);
  double worst_exact = 0, worst_scalar = 0;
  int64_t bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float s = cpu::exp_nonpos(x[i]);
    if (std::isnan(x[i])) {
      bad += !std::isnan(y[i]);
      continue;
    }
    const double to_scalar = std::abs((double)y[i] - s) / ulp(s);
    worst_scalar = std::max(worst_scalar, to_scalar);
    bad += !(to_scalar <= 2.0);
    if (x[i] >= -87.0f) {  // above the clamp: float64 exp is the reference
      const double e = std::exp((double)x[i]);
      const double to_exact = std::abs(y[i] - e) / ulp(e);
      worst_exact = std::max(worst_exact, to_exact);
      bad += !(to_exact <= 2.0);
    } else {
      bad += y[i] != clamped;  // below -87 (and -inf): exp(-87)
    }
  }
  MESSAGE("exp8_nonpos: max " << worst_exact << " ulp from exp, " << worst_scalar << " ulp from exp_nonpos");
  CHECK(bad == 0);
  CHECK(exp8_one(-1e-40f) == 1.0f);  // rounds to 1
  CHECK(exp8_one(-0.0f) == 1.0f);
  CHECK(exp8_one(-kInf) == exp8_one(-87.0f));
  CHECK(std::isnan(exp8_one(kNaN)));
}

TEST_CASE("avx2 rows: erf8 against erf_poly and float64 erf over every binade, subnormals, infinities and NaN") {
  if (skip_without_avx2()) return;
  const float sub = 1e-40f;
  for (bool negative : {false, true}) {
    CAPTURE(negative);
    // Every 101st float of one sign from 0 to the largest finite one (21 million), plus specials.
    const Vec x = sweep(0, bits(std::numeric_limits<float>::max()), 101, negative, {sub, -sub, kInf, -kInf, kNaN});
    const Vec y = apply(x, erf8_all, erf16_all);
    double worst_exact = 0, worst_scalar = 0;
    int64_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float s = cpu::erf_poly(x[i]);
      if (std::isnan(x[i])) {
        bad += !std::isnan(y[i]);
        continue;
      }
      if (std::abs(x[i]) < std::numeric_limits<float>::min()) {  // zero and subnormal: the same operations
        bad += bits(y[i]) != bits(s);
        continue;
      }
      // The same rational function with and without FMA contraction (measured: at most 7 ulp, near
      // |x| = 2.7 where erf -> 1), and erf_poly's documented bound against the exact erf.
      const double to_scalar = std::abs((double)y[i] - s) / ulp(s);
      worst_scalar = std::max(worst_scalar, to_scalar);
      bad += !(to_scalar <= 8.0);
      const double to_exact = std::abs(y[i] - std::erf((double)x[i]));
      worst_exact = std::max(worst_exact, to_exact);
      bad += !(to_exact <= 4.2e-7);
    }
    MESSAGE("erf8: max abs error " << worst_exact << " against erf, " << worst_scalar << " ulp from erf_poly");
    CHECK(bad == 0);
  }
}

// ---- rows -------------------------------------------------------------------------------------

// What a test row holds: Unit N(0, 9); Huge N(0, 1e34) (sums of squares stay finite); Tiny N(0,
// 1e-60); Subnormal N(0, 1e-80) (float32 subnormals, some +-0); Spread: random signs and
// magnitudes 10^U(-45, 17), every binade in one row; Inf and NaN: Unit with one +-inf / NaN.
enum class Regime { Unit, Huge, Tiny, Subnormal, Spread, Inf, NaN };
constexpr Regime kRegimes[] = {Regime::Unit, Regime::Huge,   Regime::Tiny, Regime::Subnormal,
                               Regime::Spread, Regime::Inf, Regime::NaN};
constexpr int kRows = 7;  // one row per regime

Vec make_row(Regime regime, int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> unit;
  const float scale = regime == Regime::Huge ? 1e17f : regime == Regime::Tiny ? 1e-30f
                      : regime == Regime::Subnormal ? 1e-40f : 3.0f;
  Vec row(n);
  for (float& v : row) {
    v = normal(rng) * scale;
    if (regime == Regime::Spread) v = (unit(rng) < 0.5f ? -1.0f : 1.0f) * std::pow(10.0f, -45.0f + 62.0f * unit(rng));
  }
  const int64_t at = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
  if (regime == Regime::Inf) row[at] = unit(rng) < 0.5f ? -kInf : kInf;
  if (regime == Regime::NaN) row[at] = kNaN;
  return row;
}

// kRows rows of length n, one per regime: (kRows, n) row-major.
Vec make_rows(int64_t n, std::mt19937& rng) {
  Vec x;
  for (Regime r : kRegimes) {
    const Vec row = make_row(r, n, rng);
    x.insert(x.end(), row.begin(), row.end());
  }
  return x;
}

Vec normal_vec(int64_t n, float scale, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  Vec v(n);
  for (float& x : v) x = normal(rng) * scale;
  return v;
}

// Runs f under the portable, AVX2 and (when present) AVX-512 rows; returns their results.
template <class F>
std::map<std::string, std::invoke_result_t<F>> under_each_kernel(F f) {
  std::map<std::string, std::invoke_result_t<F>> out;
  for (const char* k : {"portable", "avx2", "avx512"})
    if (cpu::set_row_kernel(k)) out.emplace(k, f());
  cpu::set_row_kernel("auto");
  return out;
}

// Checks AVX2 against portable (within tol(i) at element i) and AVX-512 (bit for bit).
template <class Tol>
void check_versions(const std::map<std::string, Vec>& r, Tol tol, const char* what) {
  const std::string name = what;
  CAPTURE(name);
  const Vec &p = r.at("portable"), &a = r.at("avx2");
  REQUIRE(a.size() == p.size());
  int64_t bad = 0;
  for (size_t i = 0; i < p.size(); ++i)
    if (!agree(a[i], p[i], tol(i))) {
      if (bad++ < 3) MESSAGE(name << "[" << i << "]: avx2 " << a[i] << ", portable " << p[i] << ", tolerance " << tol(i));
    }
  CHECK(bad == 0);
  if (r.count("avx512")) CHECK(same_bits(a, r.at("avx512")));
}

// gelu(z) and gelu'(z) in float64.
double gelu(double z) { return 0.5 * z * (1 + std::erf(z / std::sqrt(2.0))); }
double gelu_grad(double z) { return 0.5 * (1 + std::erf(z / std::sqrt(2.0))) + z * std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI); }

// One LayerNorm + GELU case: `rows` rows of length D; y0 (rows, D) before the linear bias.
struct LnCase {
  int64_t rows, D;
  bool gelu_on;
  const float* lin_bias;  // (D) or null
  Vec y0, w, b;           // (rows, D), (D), (D)
};
constexpr float kLnEps = 1e-5f;

// Forward: out (rows, D) | y with the bias added (rows, D) | mean (rows) | rstd (rows).
Vec ln_forward(const LnCase& c) {
  Vec y = c.y0, out(c.rows * c.D), mean(c.rows), rstd(c.rows);
  cpu::layer_norm_gelu_forward(y.data(), c.lin_bias, c.w.data(), c.b.data(), kLnEps, c.rows, c.D, c.gelu_on, out.data(),
                               mean.data(), rstd.data());
  for (const Vec* v : {&y, &mean, &rstd}) out.insert(out.end(), v->begin(), v->end());
  return out;
}

// The versions differ in the order of the row sums behind mean and rstd; the rest is elementwise.
// mean: a sum of D terms, within D ulp of sum |y| / D; rstd: within 2 D eps (1 + mean|y| rstd)
// relative (the variance's own sum and mean's error through it). out: from each version's own
// mean and rstd, xh = (y - mean) rstd (two roundings each, and a subnormal ulp of y - mean), then
// z = xh w + b (FMA or not: two roundings), then gelu(z), which moves by gelu'(z) <= 1.13 times
// z's error plus |z| / 2 times the difference of erf8 and erf_poly (4.2e-7).
void check_ln_forward(const LnCase& c) {
  const int64_t n = c.rows * c.D, D = c.D;
  const auto r = under_each_kernel([&] { return ln_forward(c); });
  const Vec &P = r.at("portable"), &A = r.at("avx2");
  std::vector<double> tol(P.size(), 0.0);  // 0 for y + bias: the same float32 additions
  for (int64_t row = 0; row < c.rows; ++row) {
    double sum_abs = 0;
    for (int64_t j = 0; j < D; ++j) sum_abs += std::abs((double)P[n + row * D + j]);
    const double mu_p = P[2 * n + row], rs_p = P[2 * n + c.rows + row];
    const double mu_a = A[2 * n + row], rs_a = A[2 * n + c.rows + row];
    tol[2 * n + row] = kEps * sum_abs + 1e-45;
    tol[2 * n + c.rows + row] = 2 * D * kEps * (1 + sum_abs / D * rs_p) * rs_p;
    for (int64_t j = 0; j < D; ++j) {
      const size_t i = row * D + j;
      const double y = P[n + i], xh = (y - mu_p) * rs_p;
      const double dxh = std::abs((y - mu_a) * rs_a - xh) + 2 * kEps * std::abs(xh) + 2.9e-45 * rs_p;
      const double z = xh * c.w[j] + c.b[j];
      const double z_tol = std::abs(c.w[j]) * dxh + 2 * kEps * (std::abs(xh * c.w[j]) + std::abs(c.b[j])) + 1e-44;
      tol[i] = c.gelu_on ? 1.13 * z_tol + 2.1e-7 * std::abs(z) + 2 * kEps * std::abs(gelu(z)) : z_tol;
    }
  }
  check_versions(r, [&](size_t i) { return tol[i]; }, "forward out | y | mean | rstd");
}

// Backward from the portable forward's y, mean, rstd (so xh is the same float32 number in every
// version) for the upstream gradient g (rows, D): gy (rows, D) | gw (D) | gb (D) | gcol (D).
void check_ln_backward(const LnCase& c, const Vec& g) {
  const int64_t rows = c.rows, D = c.D;
  REQUIRE(cpu::set_row_kernel("portable"));
  const Vec fwd = ln_forward(c);
  cpu::set_row_kernel("auto");
  const float* y = fwd.data() + rows * D;
  const float* mean = y + rows * D;
  const float* rstd = mean + rows;
  const auto r = under_each_kernel([&] {
    Vec gy(rows * D), gw(D), gb(D), gcol(D);
    cpu::layer_norm_gelu_backward(g.data(), y, c.w.data(), c.b.data(), mean, rstd, rows, D, c.gelu_on, gy.data(),
                                  gw.data(), gb.data(), gcol.data());
    for (const Vec* v : {&gw, &gb, &gcol}) gy.insert(gy.end(), v->begin(), v->end());
    return gy;
  });
  // z = xh w + b differs by two roundings (FMA or not); gz = g gelu'(z) by |g| times
  // (|gelu''| <= 0.8) z's difference, the erf and exp polynomials' differences (2.1e-7 and
  // 2 ulp of z phi(z) <= 0.25) and three roundings. gy = rs (gxh - m1 - xh m2) by rs times its
  // terms' differences: the means m1 of gxh = gz w and m2 of gxh xh, sums of D terms in different
  // orders, by D ulp of their terms. A column sum (the same order in every version) by the sum
  // of its terms' differences plus a rounding per row.
  std::vector<double> xh(rows * D), gz(rows * D), gz_tol(rows * D), gy_tol(rows * D), gy_mag(rows * D);
  for (int64_t row = 0; row < rows; ++row) {
    const double rs = rstd[row];
    double m1 = 0, m2 = 0, dm1 = 0, dm2 = 0;  // mean |gxh|, mean |gxh xh| and their differences
    for (int64_t j = 0; j < D; ++j) {
      const size_t i = row * D + j;
      xh[i] = ((double)y[i] - mean[row]) * rs;
      const double z = xh[i] * c.w[j] + c.b[j], gp = c.gelu_on ? gelu_grad(z) : 1.0;
      const double z_tol = 2 * kEps * (std::abs(xh[i] * c.w[j]) + std::abs(c.b[j])) + 1e-44;
      gz[i] = g[i] * gp;
      gz_tol[i] = c.gelu_on ? std::abs(g[i]) * (0.8 * z_tol + 2.7e-7 + 3 * kEps * std::abs(gp)) : 0.0;
      const double gxh = std::abs(gz[i] * c.w[j]), dgxh = std::abs(c.w[j]) * gz_tol[i] + kEps * gxh;
      m1 += gxh / D, dm1 += (dgxh + D * kEps * gxh) / D;
      m2 += gxh * std::abs(xh[i]) / D, dm2 += (dgxh + D * kEps * gxh) * std::abs(xh[i]) / D;
    }
    for (int64_t j = 0; j < D; ++j) {
      const size_t i = row * D + j;
      const double gxh = std::abs(gz[i] * c.w[j]), ax = std::abs(xh[i]);
      gy_mag[i] = rs * (gxh + m1 + ax * m2);
      gy_tol[i] = rs * (std::abs(c.w[j]) * gz_tol[i] + dm1 + ax * dm2) + 4 * kEps * gy_mag[i] + 1e-44;
    }
  }
  check_versions(r, [&](size_t i) {
    if (i < size_t(rows * D)) return gy_tol[i];
    const int64_t part = i / D - rows, j = i % D;  // 0: gw, 1: gb, 2: gcol
    double tol = 0, mag = 0;  // the terms' differences and magnitudes
    for (int64_t row = 0; row < rows; ++row) {
      const size_t e = row * D + j;
      if (part == 0) tol += gz_tol[e] * std::abs(xh[e]), mag += std::abs(gz[e] * xh[e]);
      else if (part == 1) tol += gz_tol[e], mag += std::abs(gz[e]);
      else tol += gy_tol[e], mag += gy_mag[e];
    }
    return tol + (rows + 1) * kEps * mag + 1e-44;
  }, "backward gy | gw | gb | gcol");
}

TEST_CASE("avx2 rows: fused LayerNorm + GELU forward and backward against the portable rows, lengths 1..70") {
  if (skip_without_avx2()) return;
  std::mt19937 rng(27);
  constexpr int kFinite = 5;  // the regimes before Inf and NaN
  for (int64_t D = 1; D <= 70; ++D)
    for (bool gelu_on : {true, false})
      for (bool with_bias : {true, false}) {
        CAPTURE(D);
        CAPTURE(gelu_on);
        CAPTURE(with_bias);
        const Vec lin_bias = normal_vec(D, 1.0f, rng);
        // |z| up to ~60: GELU's erf clamp (|z| > 5.7) and exp's clamp (|z| > 13.2) are reached.
        LnCase c{kRows, D, gelu_on, with_bias ? lin_bias.data() : nullptr, make_rows(D, rng), normal_vec(D, 20.0f, rng),
                 normal_vec(D, 5.0f, rng)};
        check_ln_forward(c);
        // Backward: the finite rows (their column sums must agree in value), then every row with a
        // NaN in row 0's upstream gradient (NaN and inf rows: NaN where the portable rows give it).
        Vec g = normal_vec(kRows * D, 1.0f, rng);
        LnCase finite = c;
        finite.rows = kFinite;
        finite.y0.resize(kFinite * D);
        check_ln_backward(finite, g);
        g[std::uniform_int_distribution<int64_t>(0, D - 1)(rng)] = kNaN;
        check_ln_backward(c, g);
      }
}

TEST_CASE("avx2 rows: softmax and log_softmax rows against the portable rows, lengths 1..70") {
  if (skip_without_avx2()) return;
  std::mt19937 rng(28);
  for (int64_t n = 1; n <= 70; ++n) {
    CAPTURE(n);
    // The regimes' rows, then -inf (masked) every third entry of a Unit row, an all -inf row
    // (NaN, as torch), and logits of +-3e38.
    Vec x = make_rows(n, rng);
    Vec masked = make_row(Regime::Unit, n, rng), all_masked(n, -kInf), extreme(n);
    for (int64_t j = 0; j < n; j += 3) masked[j] = -kInf;
    for (float& v : extreme) v = std::uniform_real_distribution<float>(-3e38f, 3e38f)(rng);
    for (const Vec* v : {&masked, &all_masked, &extreme}) x.insert(x.end(), v->begin(), v->end());
    const int64_t rows = (int64_t)x.size() / n;
    const Tensor xt = Tensor::from_vector(x, {rows, n});
    for (bool log : {false, true}) {
      CAPTURE(log);
      const auto r = under_each_kernel([&] {
        Tensor out = Tensor::empty({rows, n});
        cpu::softmax_forward(xt, rows, n, 1, log, out);
        return out.to_float_vector();
      });
      // exp8_nonpos is within 2 ulp of exp and libm's expf within 1: each term of the (float64)
      // sum, and so the sum, within 3 ulp; a softmax value within 7 ulp; log_softmax's log(sum)
      // within 3 ulp of 1 plus the roundings of log(sum) and of (x - max) - log(sum). exp8_nonpos
      // returns exp(-87) where x - max is in (-87.34, -87) and libm a value below 1.2e-38.
      const Vec& p = r.at("portable");
      check_versions(r, [&](size_t i) {
        return log ? 7 * kEps + 2 * ulp(std::abs(p[i]) + 1) : 7 * kEps * std::abs(p[i]) + 1.7e-38;
      }, log ? "log_softmax" : "softmax");
    }
  }
}

TEST_CASE("avx2 rows: l2 norms (float64 sums of squares) and bilinear_rows dots against the portable rows") {
  if (skip_without_avx2()) return;
  std::mt19937 rng(29);
  for (int64_t n = 1; n <= 70; ++n) {
    CAPTURE(n);
    // Norms: float64 sums of exact squares differ in order only, so the float32 norms by at most
    // one rounding; 3e38 entries overflow the float32 norm to inf in every version.
    Vec x = make_rows(n, rng), big(n, 3e38f);
    x.insert(x.end(), big.begin(), big.end());
    const int64_t rows = (int64_t)x.size() / n;
    for (double eps : {0.0, 1e-12}) {
      CAPTURE(eps);
      const auto norms = under_each_kernel([&] {
        Vec out(rows);
        cpu::l2_norm_rows_forward<float>(x.data(), rows, n, eps, out.data());
        return out;
      });
      check_versions(norms, [&](size_t i) { return ulp(std::abs(norms.at("portable")[i]) + 1e-45); }, "l2 norm");
    }
    // bilinear_rows: out_i = <U_i, b_i> with U = a M. The vector rows round each product
    // U_iq b_iq to float32 before the float64 sum, the portable rows do not: they differ by
    // at most half an ulp of each product.
    const int64_t p = 3;
    const Tensor a = Tensor::from_vector(make_rows(p, rng), {kRows, p});
    const Tensor M = Tensor::from_vector(normal_vec(p * n, 1.0f, rng), {p, n});
    const Vec bv = make_rows(n, rng);
    const Tensor b = Tensor::from_vector(bv, {kRows, n});
    const Vec U = matmul(a, M).to_float_vector();
    const auto dots = under_each_kernel([&] { return bilinear_rows(a, M, b).to_float_vector(); });
    check_versions(dots, [&](size_t i) {
      double mag = 0;
      for (int64_t q = 0; q < n; ++q) mag += std::abs((double)U[i * n + q] * bv[i * n + q]);
      return 0.5 * kEps * mag + ulp(std::abs(dots.at("portable")[i]) + 1e-45);
    }, "bilinear_rows");
  }
}

TEST_CASE("avx2 rows: set_row_kernel names and refusals") {
  CHECK(cpu::set_row_kernel("portable"));
  CHECK(cpu::row_kernel() == cpu::RowKernel::Portable);
  CHECK_FALSE(cpu::set_row_kernel("sse9"));
  CHECK(cpu::row_kernel() == cpu::RowKernel::Portable);  // a refusal changes nothing
  CHECK(cpu::set_row_kernel("avx2") == have_avx2());
  CHECK(cpu::set_row_kernel("avx512") == have_avx512());
  CHECK(cpu::set_row_kernel("auto"));
  MESSAGE("row kernels in use: " << std::string(cpu::row_kernel_name(cpu::row_kernel())));
}

}  // namespace
