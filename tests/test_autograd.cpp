// The autograd engine (autograd/): gradient accumulation, explicit output gradients, deep
// graphs without recursion, freed buffers and retain_graph, no-grad mode, ops that add into a
// running gradient sum, and gradcheck itself catching a wrong backward.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "autograd/gradcheck.h"
#include "ops/ops.h"
#include "tests/test_util.h"

using namespace lm;
using Inputs = std::vector<Tensor>;


TEST_CASE("autograd: a leaf used twice accumulates both gradients") {
  Tensor x = Tensor::from_vector(std::vector<double>{1.0, -2.0, 3.0}, {3});
  x.set_requires_grad(true);
  Tensor y = sum(add(mul(x, x), mul(x, 3.0)));  // d/dx = 2x + 3
  backward(y);
  CHECK(x.grad().to_double_vector() == std::vector<double>{5.0, -1.0, 9.0});
  // A second, independent graph accumulates into the same .grad.
  backward(sum(x));
  CHECK(x.grad().to_double_vector() == std::vector<double>{6.0, 0.0, 10.0});
}

TEST_CASE("autograd: a .grad the caller holds is never changed by a later backward") {
  Tensor x = Tensor::from_vector(std::vector<double>{1.0, 2.0}, {2});
  x.set_requires_grad(true);
  backward(sum(mul(x, 2.0)));
  Tensor held = x.grad();  // the caller keeps the first gradient
  backward(sum(mul(x, 5.0)));
  CHECK(held.to_double_vector() == std::vector<double>{2.0, 2.0});
  CHECK(x.grad().to_double_vector() == std::vector<double>{7.0, 7.0});
  // Without a held reference the sum may be updated in place; the values are the same.
  backward(sum(mul(x, 1.0)));
  CHECK(x.grad().to_double_vector() == std::vector<double>{8.0, 8.0});
  // A gradient passed in by the caller is copied, not adopted.
  Tensor y = Tensor::from_vector(std::vector<double>{0.0, 0.0}, {2});
  y.set_requires_grad(true);
  Tensor g = Tensor::from_vector(std::vector<double>{1.0, -1.0}, {2});
  backward(y, g);
  CHECK_FALSE(y.grad().impl().storage == g.impl().storage);
}

TEST_CASE("autograd: gradients added into a running sum by the ops themselves (matmul, l2_norm_clamped, slice)") {
  // V feeds ops whose backwards can add into V's running gradient sum (GEMM with beta = 1, the
  // row-norm backward, a slice's region): as left and right matmul operand, through a
  // transposed product, l2_norm_clamped, and overlapping column slices and a strided row slice;
  // float64 central differences check the total.
  Generator gen(3);
  Tensor X = Tensor::randn({6, 5}, gen).to(DType::F64);
  Tensor A = Tensor::randn({5, 3}, gen).to(DType::F64), B = Tensor::randn({4, 6}, gen).to(DType::F64),
         Q = Tensor::randn({2, 5}, gen).to(DType::F64);
  // Both orders of the terms: which backward runs first (and so creates the running sum)
  // follows the graph, and every op must be seen adding into a sum made by another.
  for (bool norm_first : {true, false}) {
    CAPTURE(norm_first);
    auto f = [&](const std::vector<Tensor>& in) {
      Tensor V = mul(in[0], 1.5);  // a non-leaf: its gradients meet in the engine's running sum
      Tensor n = sum(l2_norm_clamped(V, 1e-12));
      Tensor y = add(sum(mul(matmul(V, A), matmul(V, A))), sum(matmul(B, V)));
      y = add(y, sum(mul(t(matmul(V, t(Q))), 0.5)));
      y = add(y, sum(mul(slice(V, 1, 0, 3), slice(V, 1, 2, 5))));  // column 2 in both
      y = add(y, sum(mul(slice(V, 0, 1, 6, 2), 2.0)));             // rows 1, 3, 5
      return norm_first ? add(n, y) : add(y, n);
    };
    X.set_requires_grad(true);
    const auto r = autograd::gradcheck(f, {X});
    INFO(r.message);
    CHECK(r.ok);
    CHECK(r.checked == X.numel());
  }
}

TEST_CASE("bilinear_rows: row-sliced inputs read in place equal the composed ops, values and gradients") {
  auto max_abs_diff = [](const Tensor& a, const Tensor& b) {
    const std::vector<double> x = a.to_double_vector(), y = b.to_double_vector();
    REQUIRE(x.size() == y.size());
    double m = 0;
    for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
    return m;
  };
  Generator gen(11);
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor S = Tensor::randn({300, 9}, gen).to(dt);  // 300 rows: more than one row block
    Tensor T = Tensor::randn({3, 6}, gen).to(dt);
    S.set_requires_grad(true);
    T.set_requires_grad(true);
    Tensor g = Tensor::randn({300}, gen).to(dt);
    backward(bilinear_rows(slice(S, 1, 0, 3), T, slice(S, 1, 3, 9)), g);
    Tensor gS = S.grad().clone(), gT = T.grad().clone();
    S.set_grad(Tensor());
    T.set_grad(Tensor());
    Tensor ref = sum(mul(matmul(slice(S, 1, 0, 3), T), slice(S, 1, 3, 9)), {1});
    backward(ref, g);
    const double tol = dt == DType::F64 ? 1e-12 : 1e-4;
    {
      NoGradGuard ng;
      CHECK(max_abs_diff(bilinear_rows(slice(S, 1, 0, 3), T, slice(S, 1, 3, 9)), ref) < tol);
    }
    CHECK(max_abs_diff(gS, S.grad()) < tol);
    CHECK(max_abs_diff(gT, T.grad()) < tol * 10);
  }
}

TEST_CASE("autograd: backward with an explicit output gradient") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  x.set_requires_grad(true);
  Tensor y = mul(x, 3.0);
  Tensor g = Tensor::from_vector(std::vector<double>{1, 0, -1, 2, 0.5, 0}, {2, 3});
  backward(y, g);
  CHECK(x.grad().to_double_vector() == std::vector<double>{3, 0, -3, 6, 1.5, 0});
  CHECK_THROWS_WITH_AS(backward(mul(x, 2.0)), doctest::Contains("non-scalar"), std::runtime_error);
  CHECK_THROWS_AS(backward(mul(x, 2.0), Tensor::ones({3, 2}, DType::F64)), std::runtime_error);
}

TEST_CASE("autograd: a 2000-op chain runs backward, a 100000-op graph is destroyed without recursion") {
  Tensor x0 = Tensor::from_vector(std::vector<double>{1.0, 2.0}, {2});
  x0.set_requires_grad(true);
  Tensor x = x0;
  for (int i = 0; i < 2000; ++i) x = mul(x, 1.0001);
  backward(sum(x));
  double want = std::pow(1.0001, 2000);
  auto g = x0.grad().to_double_vector();
  CHECK(g[0] == doctest::Approx(want).epsilon(1e-12));
  CHECK(g[1] == doctest::Approx(want).epsilon(1e-12));
  CHECK(x.to_double_vector()[1] == doctest::Approx(2.0 * want).epsilon(1e-12));
  {
    Tensor y = x0;
    for (int i = 0; i < 100000; ++i) y = add(y, 1.0);
    CHECK(y.grad_fn() != nullptr);
    CHECK(y.to_double_vector()[0] == 100001.0);
    y = Tensor();  // the whole chain dies here
  }
  // Deep and wide: a 20000-op chain with a side branch at every step, backward then destruction.
  Tensor z = x0;
  for (int i = 0; i < 20000; ++i) z = add(z, mul(z, 0.0));
  backward(sum(z));
  CHECK(x0.grad().to_double_vector()[0] == doctest::Approx(want + 1.0).epsilon(1e-12));
  {
    // Destruction of a 100000-deep graph in which every node is shared by two consumers.
    Tensor w = x0;
    for (int i = 0; i < 100000; ++i) w = add(w, mul(w, 0.0));
    CHECK(w.to_double_vector()[0] == 1.0);
    w = Tensor();
  }
}

TEST_CASE("autograd: a second backward through freed buffers throws; retain_graph keeps them") {
  Tensor x = Tensor::from_vector(std::vector<double>{0.5, -1.0}, {2});
  x.set_requires_grad(true);
  Tensor y = sum(exp(x));
  backward(y);
  auto g1 = x.grad().to_double_vector();
  CHECK(g1[0] == doctest::Approx(std::exp(0.5)).epsilon(1e-15));
  CHECK_THROWS_WITH_AS(backward(y), doctest::Contains("second time"), std::runtime_error);

  x.set_grad(Tensor());
  Tensor z = sum(mul(exp(x), x));  // d/dx = e^x (1 + x)
  backward(z, Tensor(), /*retain_graph=*/true);
  backward(z, Tensor(), true);
  auto g = x.grad().to_double_vector();
  CHECK(g[0] == doctest::Approx(2 * std::exp(0.5) * 1.5).epsilon(1e-14));
  CHECK(g[1] == doctest::Approx(0.0).epsilon(1e-14));
  backward(z);  // the last pass may free the buffers
  CHECK(x.grad().to_double_vector()[0] == doctest::Approx(3 * std::exp(0.5) * 1.5).epsilon(1e-14));
  CHECK_THROWS_WITH_AS(backward(z), doctest::Contains("second time"), std::runtime_error);
}

TEST_CASE("autograd: NoGradGuard prevents recording; int tensors cannot require grad") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2});
  x.set_requires_grad(true);
  {
    NoGradGuard guard;
    CHECK_FALSE(autograd::grad_enabled());
    Tensor y = mul(exp(x), x);
    CHECK(y.grad_fn() == nullptr);
    CHECK_FALSE(y.requires_grad());
    CHECK_THROWS_AS(backward(sum(y)), std::runtime_error);
    {
      NoGradGuard nested;
    }
    CHECK_FALSE(autograd::grad_enabled());
  }
  CHECK(autograd::grad_enabled());
  Tensor y = mul(x, x);
  CHECK(y.grad_fn() != nullptr);
  CHECK(y.requires_grad());

  Tensor i = Tensor::arange(3);
  CHECK_THROWS_AS(i.set_requires_grad(true), std::invalid_argument);
  CHECK_FALSE(i.requires_grad());
  CHECK_THROWS_AS(y.set_requires_grad(true), std::invalid_argument);  // not a leaf
}

// gradcheck's trailing arguments: a step size compiles, a braced list of flags (which would
// once have become eps = 1) does not.
template <class Step>
concept gradcheck_accepts = requires(const Inputs& in, Step step) {
  autograd::gradcheck([](const Inputs& v) { return v[0]; }, in, step);
};
template <class Flag>  // a constant flag: {true} converts to a double without narrowing
concept gradcheck_accepts_flag_list = requires(const Inputs& in) {
  autograd::gradcheck([](const Inputs& v) { return v[0]; }, in, {Flag(true)});
};
static_assert(gradcheck_accepts<double>);
static_assert(!gradcheck_accepts_flag_list<bool>);

TEST_CASE("gradcheck: catches a wrong gradient and reports the worst element") {
  // An op with a deliberately wrong backward (d/dx x^2 recorded as x instead of 2x).
  auto bad_square = [](const Inputs& in) {
    const Tensor& x = in[0];
    Tensor out = Tensor::from_vector(std::vector<double>(x.numel()), x.shape());
    {
      auto v = x.to_double_vector();
      for (auto& e : v) e *= e;
      out = Tensor::from_vector(v, x.shape());
    }
    if (autograd::needs_grad({x})) {
      Tensor xd = x.detach();
      autograd::record("bad_square", {x}, out, [xd](const Tensor& g) -> std::vector<Tensor> { return {mul(g, xd)}; });
    }
    return out;
  };
  Tensor x = Tensor::from_vector(std::vector<double>{1.0, -2.0, 0.5}, {3});
  x.set_requires_grad(true);
  auto r = autograd::gradcheck(bad_square, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.checked == 3);
  CHECK(r.worst_input == 0);
  CHECK(r.worst_element >= 0);
  CHECK(r.worst_element < 3);
  CHECK(r.max_abs_err > 0.01);
  // The recorded gradient is half the true one (x instead of 2x), element by element.
  CHECK(r.worst_analytic == doctest::Approx(r.worst_numeric / 2).epsilon(1e-6));
  CHECK(r.message.find("FAILED") != std::string::npos);

  // A correct op passes; inputs without requires_grad are skipped.
  Tensor y = Tensor::from_vector(std::vector<double>{0.3, 0.7, -1.1}, {3});
  auto ok = autograd::gradcheck([](const Inputs& in) { return mul(exp(in[0]), in[1]); }, {x, y});
  CHECK(ok.ok);
  CHECK(ok.checked == 3);
  CHECK(ok.max_rel_err < 1e-6);
}
