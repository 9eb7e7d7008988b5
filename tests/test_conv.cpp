// conv2d at encoder sizes against a float64 reference loop written here (independent of the
// kernels: the definition of the convolution and of its three gradients, term by term), the
// argument errors of conv2d / adaptive_avg_pool2d, relu6 at its kinks, and a small
// conv -> relu6 -> pool chain through autograd. The op table (tests/test_op_table.cpp) covers
// the small shapes against PyTorch and by finite differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace {

using namespace lm;

struct Case {
  int64_t N, Ci, H, W, Co, KH, KW;
  Conv2dOptions o;
  bool bias;
};

struct Ref {
  std::vector<double> out, gx, gw, gb;
};

// The definition, in float64: out = bias + sum w x over each window; and, for the upstream
// gradient R, gx / gw / gb as the sums of R * (the partial derivative of each output term).
Ref reference(const Case& c, const std::vector<double>& x, const std::vector<double>& w,
              const std::vector<double>& b, const std::vector<double>& R, int64_t OH, int64_t OW) {
  const int64_t Cig = c.Ci / c.o.groups, Cog = c.Co / c.o.groups;
  Ref r;
  r.out.assign((size_t)(c.N * c.Co * OH * OW), 0.0);
  r.gx.assign(x.size(), 0.0);
  r.gw.assign(w.size(), 0.0);
  r.gb.assign((size_t)c.Co, 0.0);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t co = 0; co < c.Co; ++co)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const size_t oi = (size_t)(((n * c.Co + co) * OH + oh) * OW + ow);
          double s = c.bias ? b[(size_t)co] : 0.0;
          const double rg = R[oi];
          r.gb[(size_t)co] += rg;
          for (int64_t ci = 0; ci < Cig; ++ci)
            for (int64_t kh = 0; kh < c.KH; ++kh)
              for (int64_t kw = 0; kw < c.KW; ++kw) {
                const int64_t ih = oh * c.o.stride_h - c.o.pad_top + kh, iw = ow * c.o.stride_w - c.o.pad_left + kw;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                const int64_t cin = (co / Cog) * Cig + ci;
                const size_t xi = (size_t)(((n * c.Ci + cin) * c.H + ih) * c.W + iw);
                const size_t wi = (size_t)(((co * Cig + ci) * c.KH + kh) * c.KW + kw);
                s += w[wi] * x[xi];
                r.gx[xi] += rg * w[wi];
                r.gw[wi] += rg * x[xi];
              }
          r.out[oi] = s;
        }
  return r;
}

// max |got - want| / max |want|: the error relative to the result's scale.
double rel_err(const Tensor& got, const std::vector<double>& want) {
  const std::vector<double> g = got.to_double_vector();
  REQUIRE(g.size() == want.size());
  double e = 0, m = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    e = std::max(e, std::abs(g[i] - want[i]));
    m = std::max(m, std::abs(want[i]));
  }
  return e / std::max(m, 1e-300);
}

void check_against_reference(const Case& c, uint64_t seed) {
  Generator gen(seed);
  const Shape sx{c.N, c.Ci, c.H, c.W}, sw{c.Co, c.Ci / c.o.groups, c.KH, c.KW};
  Tensor x = Tensor::randn(sx, gen, DType::F32), w = Tensor::randn(sw, gen, DType::F32);
  Tensor b = c.bias ? Tensor::randn({c.Co}, gen, DType::F32) : Tensor();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  if (c.bias) b.set_requires_grad(true);
  Tensor y = conv2d(x, w, b, c.o);
  const int64_t OH = (c.H + c.o.pad_top + c.o.pad_bottom - c.KH) / c.o.stride_h + 1;
  const int64_t OW = (c.W + c.o.pad_left + c.o.pad_right - c.KW) / c.o.stride_w + 1;
  REQUIRE(y.shape() == Shape{c.N, c.Co, OH, OW});
  Tensor R = Tensor::randn(y.shape(), gen, DType::F32);
  backward(y, R);
  const Ref ref = reference(c, x.detach().to_double_vector(), w.detach().to_double_vector(),
                            c.bias ? b.detach().to_double_vector() : std::vector<double>{}, R.to_double_vector(), OH, OW);
  const double e_out = rel_err(y, ref.out), e_gx = rel_err(x.grad(), ref.gx), e_gw = rel_err(w.grad(), ref.gw);
  const double e_gb = c.bias ? rel_err(b.grad(), ref.gb) : 0.0;
  MESSAGE("conv2d x" << shape_str(sx) << " w" << shape_str(sw) << " groups " << c.o.groups << ": rel err out "
                     << e_out << ", grad x " << e_gx << ", grad w " << e_gw << ", grad b " << e_gb);
  CHECK(e_out < 1e-5);
  CHECK(e_gx < 1e-5);
  CHECK(e_gw < 1e-5);
  CHECK(e_gb < 1e-5);
}

// The message of the std::invalid_argument that f throws ("" if none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("conv2d: 3x3 stride 2 TF-same, 32 -> 64 channels at 28x28, float32 against a float64 loop") {
  Conv2dOptions o;
  o.stride_h = o.stride_w = 2;
  o.pad_bottom = o.pad_right = 1;  // TF "same": out 14, total padding (14 - 1) * 2 + 3 - 28 = 1
  check_against_reference({2, 32, 28, 28, 64, 3, 3, o, true}, 1);
}

TEST_CASE("conv2d: depthwise 5x5 over 96 channels (stride 2 TF-same and stride 1), float32 against a float64 loop") {
  Conv2dOptions o;
  o.groups = 96;
  o.stride_h = o.stride_w = 2;
  o.pad_top = o.pad_left = 1;  // out 14 from 28: total padding 13 * 2 + 5 - 28 = 3
  o.pad_bottom = o.pad_right = 2;
  check_against_reference({2, 96, 28, 28, 96, 5, 5, o, true}, 2);
  Conv2dOptions o1;
  o1.groups = 96;
  o1.pad_top = o1.pad_bottom = o1.pad_left = o1.pad_right = 2;
  check_against_reference({1, 96, 15, 13, 96, 5, 5, o1, false}, 3);
}

TEST_CASE("conv2d: 1x1 (GEMM path) and grouped 3x3, float32 against a float64 loop") {
  check_against_reference({3, 40, 14, 14, 24, 1, 1, {}, true}, 4);
  Conv2dOptions g;
  g.groups = 4;
  g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = 1;
  check_against_reference({2, 16, 9, 11, 8, 3, 3, g, false}, 5);
}

TEST_CASE("conv2d / adaptive_avg_pool2d: argument errors name the op and the shapes") {
  const Tensor x = Tensor::zeros({1, 4, 5, 5}), w = Tensor::zeros({2, 4, 3, 3});
  auto has = [](const std::string& msg, const std::string& part) {
    INFO(msg);
    CHECK(msg.rfind("conv2d: ", 0) == 0);
    CHECK(msg.find(part) != std::string::npos);
  };
  has(error_of([&] { conv2d(Tensor::zeros({4, 5, 5}), w, Tensor()); }), "input (N, C_in, H, W) must be 4-d");
  has(error_of([&] { conv2d(x, Tensor::zeros({2, 4, 3}), Tensor()); }), "weight (C_out, C_in / groups, KH, KW) must be 4-d");
  Conv2dOptions g3;
  g3.groups = 3;
  has(error_of([&] { conv2d(x, w, Tensor(), g3); }), "C_in 4 is not divisible by groups 3");
  has(error_of([&] { conv2d(x, Tensor::zeros({2, 3, 3, 3}), Tensor()); }), "weight dim 1 must be C_in / groups = 4 / 1 = 4");
  has(error_of([&] { conv2d(x, Tensor::zeros({2, 4, 7, 3}), Tensor()); }), "non-positive output size");
  Conv2dOptions neg;
  neg.pad_left = -1;
  has(error_of([&] { conv2d(x, w, Tensor(), neg); }), "paddings must be >= 0");
  Conv2dOptions zero;
  zero.stride_w = 0;
  has(error_of([&] { conv2d(x, w, Tensor(), zero); }), "strides must be >= 1");
  has(error_of([&] { conv2d(x, w, Tensor::zeros({3})); }), "bias must have shape [2]");
  const std::string pool = error_of([&] { adaptive_avg_pool2d(Tensor::zeros({4, 5, 5}), 1, 1); });
  CHECK(pool.rfind("adaptive_avg_pool2d: ", 0) == 0);
  CHECK(error_of([&] { adaptive_avg_pool2d(x, 0, 1); }).find("output size must be >= 1") != std::string::npos);
}

TEST_CASE("relu6: values and torch's gradient convention at the kinks 0 and 6") {
  Tensor x = Tensor::from_vector(std::vector<double>{-1.0, 0.0, 3.0, 6.0, 7.0}, {5});
  x.set_requires_grad(true);
  Tensor y = relu6(x);
  CHECK(y.to_double_vector() == std::vector<double>{0.0, 0.0, 3.0, 6.0, 6.0});
  backward(sum(y));
  CHECK(x.grad().to_double_vector() == std::vector<double>{0.0, 0.0, 1.0, 0.0, 0.0});
}

TEST_CASE("conv2d -> relu6 -> adaptive_avg_pool2d: a chain's gradient equals the composed reference") {
  // The pooled mean of relu6(conv(x)) over the whole map: d/dbias = (share of the map inside (0, 6)).
  Generator gen(9);
  Tensor x = Tensor::randn({2, 3, 6, 5}, gen, DType::F64), w = Tensor::randn({4, 3, 3, 3}, gen, DType::F64);
  Tensor b = Tensor::randn({4}, gen, DType::F64);
  b.set_requires_grad(true);
  Conv2dOptions o;
  o.pad_top = o.pad_bottom = o.pad_left = o.pad_right = 1;
  Tensor z = conv2d(x, w, b, o);
  Tensor p = adaptive_avg_pool2d(relu6(z), 1, 1);
  REQUIRE(p.shape() == Shape{2, 4, 1, 1});
  backward(sum(p));
  const std::vector<double> zv = z.detach().to_double_vector(), gb = b.grad().to_double_vector();
  for (int64_t c = 0; c < 4; ++c) {
    double want = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t i = 0; i < 30; ++i) {
        const double v = zv[(size_t)((n * 4 + c) * 30 + i)];
        want += (v > 0 && v < 6) ? 1.0 / 30.0 : 0.0;
      }
    CHECK(gb[(size_t)c] == doctest::Approx(want).epsilon(1e-12));
  }
}
