// Tests of the nn op families: softmax / log_softmax, layer_norm, cross_entropy,
// l2 / l1 normalize and cosine_similarity_matrix, scaled_dot_product_attention; and
// linear_layer_norm's rows fused into the GEMM (its other checks: the op table).
//  (a) forward and backward against PyTorch: tools/nn_ops_fixtures.py runs each case in torch
//      at test time (float64 and float32) and writes inputs, outputs and the gradients of
//      sum(out * R) for a fixed random R; every case also runs with non-contiguous inputs.
//      Tolerances (relative, see rel_error): float64 1e-10; float32 1e-5 (attention backward
//      1e-4) against torch's float32 result or the float64 answer for the same inputs;
//  (b) float64 central differences on small shapes (a local helper, not autograd/gradcheck.h);
//  (c) bad arguments (clear errors), numerical edge cases, deterministic reductions.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "ops/cpu/gemm.h"
#include "ops/cpu/layer_norm_gelu.h"
#include "ops/linear_norm.h"
#include "ops/ops.h"
#include "tests/test_util.h"

namespace {

using namespace lm;
using Json = nlohmann::json;

// ---- fixtures ---------------------------------------------------------------------------------

const std::filesystem::path& fixture_dir() {
  static const std::filesystem::path dir = [] {
    auto d = lm::test::scratch_dir("nn_ops_fixtures");
    lm::test::run_python_tool("nn_ops_fixtures.py", d.string());
    return d;
  }();
  return dir;
}

const Json& fixture_index() {
  static const Json index = Json::parse(lm::test::read_text(fixture_dir() / "index.json"));
  return index;
}

// Reads <case>.<key>.bin as described in the index (raw little-endian float64/float32/int64).
Tensor read_tensor(const Json& c, const std::string& key) {
  const Json& meta = c.at("tensors").at(key);
  Shape shape = meta.at("shape").get<Shape>();
  const std::string dtype = meta.at("dtype").get<std::string>();
  const std::string bytes = lm::test::read_text(fixture_dir() / (c.at("name").get<std::string>() + "." + key + ".bin"));
  const size_t n = (size_t)shape_numel(shape);
  auto load = [&](auto zero) {
    using T = decltype(zero);
    REQUIRE(bytes.size() == n * sizeof(T));
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), bytes.data(), bytes.size());
    return Tensor::from_vector(v, shape);
  };
  if (dtype == "float64") return load(double{});
  if (dtype == "float32") return load(float{});
  if (dtype == "int64") return load(int64_t{});
  FAIL("unknown dtype " << dtype);
  return Tensor();
}

// ---- comparison -------------------------------------------------------------------------------

// Largest relative error of `got` against `want`, elementwise, each difference measured
// against max(|want_i|, floor * max|want|, floor): elements far below the tensor's scale (or
// below the O(1) scale of the inputs) are compared on that scale instead, since their own
// relative error is dominated by cancellation in either implementation (e.g. torch's layer_norm
// dweight for D = 1 is 2e-14 where the exact value is 0). floor: 1e-3 for float64 references;
// 1e-2 for float32 references, whose own rounding (torch's float32 kernels, or our float32
// inputs to a cancelling difference such as g - sum(g y)) is ~1e-7 of the tensor's scale. Infinities must match exactly; NaN must meet NaN; a shape mismatch is +inf.
double rel_error(const Tensor& got, const Tensor& want, double floor = 1e-3) {
  if (got.shape() != want.shape()) return std::numeric_limits<double>::infinity();
  auto a = got.to_double_vector(), b = want.to_double_vector();
  double scale = 0;
  for (double v : b)
    if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  const double denom_min = std::max(floor * scale, floor);
  double err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i]) || std::isnan(a[i])) {
      if (!(std::isnan(a[i]) && std::isnan(b[i]))) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (std::isinf(b[i]) || std::isinf(a[i])) {
      if (a[i] != b[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    err = std::max(err, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), denom_min));
  }
  return err;
}

// ---- running a fixture case -------------------------------------------------------------------

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

Tensor run_op(const Json& c, const std::map<std::string, Tensor>& in) {
  const std::string op = c.at("op");
  const Json& p = c.at("params");
  auto get = [&](const std::string& k) { return in.count(k) ? in.at(k) : Tensor(); };
  if (op == "softmax") return softmax(get("x"), p.at("dim").get<int64_t>());
  if (op == "log_softmax") return log_softmax(get("x"), p.at("dim").get<int64_t>());
  if (op == "layer_norm") return layer_norm(get("x"), get("weight"), get("bias"), p.at("eps").get<double>());
  if (op == "cross_entropy") return cross_entropy(get("logits"), get("target"));
  if (op == "l2_normalize") return l2_normalize(get("x"), p.at("dim").get<int64_t>(), p.at("eps").get<double>());
  if (op == "l1_normalize") return l1_normalize(get("x"), p.at("dim").get<int64_t>(), p.at("eps").get<double>());
  if (op == "cosine_similarity_matrix") return cosine_similarity_matrix(get("a"), get("b"), p.at("eps").get<double>());
  if (op == "attention")
    return scaled_dot_product_attention(get("q"), get("k"), get("v"), get("mask"), p.at("scale").get<double>());
  FAIL("unknown op " << op);
  return Tensor();
}

std::vector<int64_t> reversed_dims(int64_t n) {
  std::vector<int64_t> d(n);
  for (int64_t i = 0; i < n; ++i) d[i] = n - 1 - i;
  return d;
}

struct ErrorTable {  // op/dtype/part -> worst error seen, printed at the end of the test
  std::map<std::string, double> worst;
  void add(const std::string& key, double e) { worst[key] = std::max(worst[key], e); }
  std::string str() const {
    std::ostringstream s;
    for (auto& [k, v] : worst) s << "  " << k << ": " << v << "\n";
    return s.str();
  }
};

// Runs one case; noncontig: every float input of >= 2 dims is passed as a non-contiguous
// view (a reversed permutation of a packed, reversed copy) whose gradient is mapped back.
void check_case(const Json& c, bool noncontig, ErrorTable& table) {
  const std::string name = c.at("name"), op = c.at("op"), dtype = c.at("dtype");
  const auto inputs = c.at("inputs").get<std::vector<std::string>>();
  const auto grads = c.at("grads").get<std::vector<std::string>>();
  const std::string label = "case " + name + (noncontig ? " (non-contiguous inputs)" : "");
  INFO(label);
  std::map<std::string, Tensor> leaves, args;
  for (const auto& k : inputs) {
    Tensor t = read_tensor(c, k);
    const bool view = noncontig && t.dtype() != DType::I64 && t.dim() >= 2;
    if (view) t = permute(t, reversed_dims(t.dim())).contiguous();
    if (has(grads, k)) t.set_requires_grad(true);
    leaves[k] = t;
    args[k] = view ? permute(t, reversed_dims(t.dim())) : t;
  }
  const double tol = dtype == "float64" ? 1e-10 : 1e-5;
  const double tol_bwd = dtype == "float32" && op == "attention" ? 1e-4 : tol;
  const double floor = dtype == "float64" ? 1e-3 : 1e-2;
  const bool f32 = dtype == "float32";
  // float32: the error against torch's float32 result, or, where torch's own float32 rounding
  // is the larger, against the float64 answer for the same inputs (the smaller of the two).
  auto error = [&](const Tensor& got, const std::string& key, const std::string& part) {
    const double e = rel_error(got, read_tensor(c, key), floor);
    table.add(op + " " + dtype + " " + part + " vs torch", e);
    if (!f32) return e;
    const double e64 = rel_error(got, read_tensor(c, key + "64"), floor);
    table.add(op + " " + dtype + " " + part + " vs float64 answer", e64);
    return std::min(e, e64);
  };
  Tensor out = run_op(c, args);
  REQUIRE(out.dtype() == leaves.at(inputs[0]).dtype());
  const double e_out = error(out, "out", "forward");
  CHECK_MESSAGE(e_out <= tol, "forward error " << e_out);
  backward(out, read_tensor(c, "R"));
  for (const auto& k : grads) {
    const Tensor& leaf = leaves.at(k);
    REQUIRE_MESSAGE(leaf.grad().defined(), "no gradient for " << k);
    Tensor g = args.at(k).same(leaf) ? leaf.grad() : permute(leaf.grad(), reversed_dims(leaf.dim()));
    const double e = error(g, "grad_" + k, "grad");
    CHECK_MESSAGE(e <= tol_bwd, "gradient of " << k << ": error " << e);
  }
  for (const auto& k : inputs)
    if (!has(grads, k)) CHECK_FALSE(leaves.at(k).grad().defined());
}

// ---- float64 central differences --------------------------------------------------------------

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

double dot(const Tensor& a, const std::vector<double>& r) {
  auto v = a.to_double_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * r[i];
  return s;
}

// Compares autograd's gradient of sum(f(inputs) * R) (R fixed random) with central differences
// (step h = 1e-6) for every input flagged in `wrt`. Inputs: packed float64 tensors.
// Returns the worst |numeric - analytic| / (1 + |analytic|).
double gradcheck(const Fn& f, std::vector<Tensor> inputs, const std::vector<bool>& wrt, uint64_t seed = 7) {
  const double h = 1e-6;
  for (size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE(inputs[i].dtype() == DType::F64);
    inputs[i] = inputs[i].clone();
    inputs[i].set_requires_grad(wrt[i]);
  }
  Tensor out = f(inputs);
  Generator gen(seed);
  Tensor R = Tensor::randn(out.shape(), gen, DType::F64);
  backward(out, R);
  const std::vector<double> r = R.to_double_vector();
  double worst = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!wrt[i]) continue;
    REQUIRE(inputs[i].grad().defined());
    const std::vector<double> analytic = inputs[i].grad().to_double_vector();
    double* p = inputs[i].data<double>();
    for (int64_t j = 0; j < inputs[i].numel(); ++j) {
      const double v = p[j];
      NoGradGuard ng;
      p[j] = v + h;
      const double lp = dot(f(inputs), r);
      p[j] = v - h;
      const double lm = dot(f(inputs), r);
      p[j] = v;
      const double numeric = (lp - lm) / (2 * h);
      const double e = std::abs(numeric - analytic[j]) / (1 + std::abs(analytic[j]));
      worst = std::max(worst, e);
      if (e > 1e-6) {
        INFO("input " << i << " element " << j << ": numeric " << numeric << " autograd " << analytic[j]);
        CHECK(e <= 1e-6);
      }
    }
  }
  return worst;
}

Tensor randn64(const Shape& s, uint64_t seed, double scale = 1.0) {
  Generator g(seed);
  return mul(Tensor::randn(s, g, DType::F64), scale);
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

// =================================================================================================

TEST_CASE("nn ops: forward and backward match PyTorch (fixtures from tools/nn_ops_fixtures.py)") {
  const Json& cases = fixture_index().at("cases");
  REQUIRE(cases.size() >= 80);
  ErrorTable table;
  std::map<std::string, int> count;
  for (const Json& c : cases) {
    check_case(c, false, table);
    check_case(c, true, table);
    count[c.at("op").get<std::string>()]++;
  }
  for (const char* op : {"softmax", "log_softmax", "layer_norm", "cross_entropy", "l2_normalize", "l1_normalize",
                         "cosine_similarity_matrix", "attention"})
    CHECK_MESSAGE(count[op] >= 4, "too few fixture cases for " << op);
  MESSAGE("worst relative error vs torch, by op / dtype:\n" << table.str());
}

TEST_CASE("nn ops: float64 central differences") {
  std::map<std::string, double> worst;
  SUBCASE("softmax / log_softmax, dims 0, 1, -1") {
    for (int64_t dim : {0, 1, -1}) {
      worst["softmax"] = std::max(worst["softmax"], gradcheck([&](auto& in) { return softmax(in[0], dim); }, {randn64({3, 4, 2}, 1, 2.0)}, {true}));
      worst["log_softmax"] = std::max(worst["log_softmax"], gradcheck([&](auto& in) { return log_softmax(in[0], dim); }, {randn64({3, 4, 2}, 2, 2.0)}, {true}));
    }
  }
  SUBCASE("layer_norm") {
    worst["layer_norm"] = gradcheck([](auto& in) { return layer_norm(in[0], in[1], in[2], 1e-5); },
                                    {randn64({3, 5}, 3), randn64({5}, 4), randn64({5}, 5)}, {true, true, true});
    worst["layer_norm (no affine)"] =
        gradcheck([](auto& in) { return layer_norm(in[0], Tensor(), Tensor(), 1e-3); }, {randn64({2, 1, 4}, 6)}, {true});
  }
  SUBCASE("cross_entropy") {
    Tensor target = Tensor::from_vector(std::vector<int64_t>{2, 0, 3}, {3});
    worst["cross_entropy"] = gradcheck([&](auto& in) { return cross_entropy(in[0], target); }, {randn64({3, 4}, 7)}, {true});
    Tensor t1 = Tensor::from_vector(std::vector<int64_t>{1}, {1});
    worst["cross_entropy (C)"] = gradcheck([&](auto& in) { return cross_entropy(in[0], t1); }, {randn64({5}, 8)}, {true});
  }
  SUBCASE("l2 / l1 normalize, cosine similarity matrix") {
    worst["l2_normalize"] = gradcheck([](auto& in) { return l2_normalize(in[0], 0); }, {randn64({3, 4}, 9)}, {true});
    worst["l1_normalize"] = gradcheck([](auto& in) { return l1_normalize(in[0], -1); }, {randn64({3, 4}, 10)}, {true});
    worst["cosine_similarity_matrix"] = gradcheck([](auto& in) { return cosine_similarity_matrix(in[0], in[1]); },
                                                  {randn64({3, 4}, 11), randn64({2, 4}, 12)}, {true, true});
  }
  SUBCASE("attention, with a -inf causal mask and with a differentiable float mask") {
    std::vector<double> causal(3 * 4, 0.0);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        if (j > i + 1) causal[i * 4 + j] = -std::numeric_limits<double>::infinity();
    Tensor cm = Tensor::from_vector(causal, {3, 4});
    worst["attention (causal)"] = gradcheck([&](auto& in) { return scaled_dot_product_attention(in[0], in[1], in[2], cm); },
                                            {randn64({1, 2, 3, 5}, 13), randn64({1, 2, 4, 5}, 14), randn64({1, 2, 4, 2}, 15)},
                                            {true, true, true});
    worst["attention (float mask)"] =
        gradcheck([&](auto& in) { return scaled_dot_product_attention(in[0], in[1], in[2], in[3], 0.7); },
                  {randn64({2, 1, 2, 3}, 16), randn64({2, 1, 3, 3}, 17), randn64({2, 1, 3, 4}, 18), randn64({2, 1, 1, 3}, 19)},
                  {true, true, true, true});
  }
  for (auto& [k, v] : worst) MESSAGE(k << ": worst |numeric - autograd| / (1 + |autograd|) = " << v);
}

TEST_CASE("nn ops: bad arguments give clear errors") {
  Tensor x = Tensor::zeros({2, 3});
  CHECK_THROWS(softmax(x, 2));
  CHECK(error_of([&] { softmax(Tensor::zeros({2}, DType::I64), 0); }).find("softmax") != std::string::npos);
  CHECK(error_of([&] { layer_norm(x, Tensor::ones({4}), Tensor()); }).find("weight must have shape [3]") != std::string::npos);
  CHECK(error_of([&] { layer_norm(x, Tensor(), Tensor::ones({3}, DType::F64)); }).find("dtype mismatch") != std::string::npos);

  Tensor logits = Tensor::zeros({3, 5});
  std::string e = error_of([&] { cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{0, 7, 1}, {3})); });
  CHECK(e.find("target 7") != std::string::npos);
  CHECK(e.find("[0, 5)") != std::string::npos);
  CHECK(error_of([&] { cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{0, 1, -1}, {3})); }).find("target -1") !=
        std::string::npos);
  CHECK(error_of([&] { cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{0, 1}, {2})); }).find("target of shape [3]") !=
        std::string::npos);
  CHECK(error_of([&] { cross_entropy(logits, Tensor::zeros({3})); }).find("int64") != std::string::npos);
  CHECK(error_of([&] { cross_entropy(Tensor::zeros({2, 3, 4}), Tensor::zeros({2}, DType::I64)); }).find("(B, C) or (C)") !=
        std::string::npos);

  Tensor q = Tensor::zeros({1, 2, 3, 4}), k = Tensor::zeros({1, 2, 5, 4}), v = Tensor::zeros({1, 2, 5, 6});
  CHECK_NOTHROW(scaled_dot_product_attention(q, k, v));
  CHECK(error_of([&] { scaled_dot_product_attention(Tensor::zeros({2, 3, 4}), k, v); }).find("must be 4-d") != std::string::npos);
  CHECK(error_of([&] { scaled_dot_product_attention(q, Tensor::zeros({1, 2, 5, 3}), v); }).find("head dims d differ") !=
        std::string::npos);
  CHECK(error_of([&] { scaled_dot_product_attention(q, k, Tensor::zeros({1, 2, 4, 6})); }).find("key lengths Lk differ") !=
        std::string::npos);
  CHECK(error_of([&] { scaled_dot_product_attention(q, Tensor::zeros({2, 2, 5, 4}), v); }).find("batch sizes B differ") !=
        std::string::npos);
  CHECK(error_of([&] { scaled_dot_product_attention(q, k, Tensor::zeros({1, 3, 5, 6})); }).find("head counts H differ") !=
        std::string::npos);
  CHECK(error_of([&] { scaled_dot_product_attention(q, k, v, Tensor::zeros({3, 4})); }).find("does not broadcast") !=
        std::string::npos);
  CHECK(error_of([&] { scaled_dot_product_attention(q, k, v, Tensor::zeros({2, 1, 3, 5})); }).find("does not broadcast") !=
        std::string::npos);
  CHECK(error_of([&] { scaled_dot_product_attention(q, k, v, Tensor(), -1.0); }).find("scale") != std::string::npos);

  CHECK(error_of([&] { cosine_similarity_matrix(Tensor::zeros({2, 3}), Tensor::zeros({2, 4})); }).find("share D") !=
        std::string::npos);
  CHECK(error_of([&] { l2_normalize(x, -1, 0.0); }).find("eps") != std::string::npos);
  CHECK_THROWS(l1_normalize(x, 5));
}

TEST_CASE("nn ops: numerical edge cases") {
  // Large logits: max subtraction keeps softmax finite.
  Tensor big = Tensor::from_vector(std::vector<float>{1000.f, 1001.f, 1002.f}, {3});
  auto y = softmax(big, 0).to_double_vector();
  const double z = 1 + std::exp(-1.0) + std::exp(-2.0);
  CHECK(y[2] == doctest::Approx(1 / z).epsilon(1e-6));
  CHECK(y[0] == doctest::Approx(std::exp(-2.0) / z).epsilon(1e-6));
  auto ly = log_softmax(big, 0).to_double_vector();
  CHECK(ly[2] == doctest::Approx(-std::log(z)).epsilon(1e-6));
  // 0-d input is one row of one element.
  CHECK(softmax(Tensor::scalar(3.0, DType::F64), 0).item() == 1.0);
  CHECK(log_softmax(Tensor::scalar(3.0, DType::F64), -1).item() == 0.0);
  // Empty dims are fine.
  CHECK(softmax(Tensor::zeros({0, 3}), -1).numel() == 0);
  // An all -inf row gives NaN (as torch), other rows unaffected.
  const double ninf = -std::numeric_limits<double>::infinity();
  auto s = softmax(Tensor::from_vector(std::vector<double>{ninf, ninf, 0.0, 0.0}, {2, 2}), 1).to_double_vector();
  CHECK(std::isnan(s[0]));
  CHECK(s[2] == 0.5);
  // cross_entropy of huge logits stays finite.
  Tensor hl = Tensor::from_vector(std::vector<double>{1e4, 0.0, -1e4}, {1, 3});
  CHECK(cross_entropy(hl, Tensor::from_vector(std::vector<int64_t>{1}, {1})).item() == doctest::Approx(1e4));
  // cross_entropy gradient scales with the upstream scalar.
  Tensor lg = randn64({4, 3}, 21).set_requires_grad(true);
  Tensor tg = Tensor::from_vector(std::vector<int64_t>{0, 2, 1, 1}, {4});
  backward(cross_entropy(lg, tg), Tensor::scalar(2.5, DType::F64));
  auto gv = lg.grad().to_double_vector();
  auto pv = softmax(lg.detach(), 1).to_double_vector();
  auto tv = tg.to_int_vector();
  for (int b = 0; b < 4; ++b)
    for (int c = 0; c < 3; ++c) CHECK(gv[b * 3 + c] == doctest::Approx(2.5 / 4 * (pv[b * 3 + c] - (c == tv[b]))).epsilon(1e-12));
  // Zero row of l2_normalize: output 0, gradient g / eps (torch's rule), never NaN.
  Tensor zx = Tensor::zeros({2, 3}, DType::F64).set_requires_grad(true);
  Tensor zo = l2_normalize(zx, 1, 1e-6);
  for (double val : zo.to_double_vector()) CHECK(val == 0.0);
  backward(sum(zo));
  for (double val : zx.grad().to_double_vector()) CHECK(val == doctest::Approx(1e6));
  // layer_norm with only some inputs requiring grad gives the same partial gradients.
  {
    Tensor lx = randn64({6, 5}, 24), lw = randn64({5}, 25), lb = randn64({5}, 26), lr = randn64({6, 5}, 27);
    Tensor ax = lx.clone().set_requires_grad(true), aw = lw.clone().set_requires_grad(true), ab = lb.clone().set_requires_grad(true);
    backward(layer_norm(ax, aw, ab), lr);
    Tensor ow = lw.clone().set_requires_grad(true);
    backward(layer_norm(lx, ow, lb), lr);
    CHECK(rel_error(ow.grad(), aw.grad()) == 0.0);
    Tensor ox = lx.clone().set_requires_grad(true);
    backward(layer_norm(ox, lw, lb), lr);
    CHECK(rel_error(ox.grad(), ax.grad()) == 0.0);
    CHECK_FALSE(lb.grad().defined());
  }
  // softmax over a size-1 dim is 1 with zero gradient.
  Tensor one = randn64({4, 1}, 22).set_requires_grad(true);
  backward(softmax(one, 1), randn64({4, 1}, 23));
  for (double val : one.grad().to_double_vector()) CHECK(val == 0.0);
}

TEST_CASE("nn ops: softmax over an inner dim agrees with exp(x - logsumexp) on a large tensor") {
  Tensor x = randn64({37, 53, 19}, 31, 3.0);
  Tensor want = exp(sub(x, logsumexp(x, {1}, true)));
  CHECK(rel_error(softmax(x, 1), want) <= 1e-13);
  CHECK(rel_error(log_softmax(x, 1), sub(x, logsumexp(x, {1}, true))) <= 1e-13);
}

TEST_CASE("nn ops: float32 softmax rows (AVX-512 or portable) against a float64 reference, with -inf, NaN, underflow") {
  // Rows of several lengths (vector tails), logits spread over +-60 so that many exp() terms
  // fall below float32's normal range, some -inf entries (masked: weight exactly 0), one
  // all -inf row (NaN, as torch) and one row holding a NaN (NaN).
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t n : {1, 15, 16, 17, 100, 8000}) {
    CAPTURE(n);
    std::vector<float> x = randn64({4, n}, 40 + n, 30.0).to(DType::F32).to_float_vector();
    for (int64_t j = 0; n > 1 && j < n; j += 3) x[j] = ninf;  // row 0: every third entry masked
    for (int64_t j = 0; j < n; ++j) x[2 * n + j] = ninf;      // row 2: all masked
    x[3 * n + n / 2] = std::numeric_limits<float>::quiet_NaN();  // row 3: a NaN
    if (n > 1) x[0] = ninf, x[1] = 5.0f;                      // row 0 keeps a finite entry
    Tensor xt = Tensor::from_vector(x, {4, n});
    for (bool lg : {false, true}) {
      CAPTURE(lg);
      const std::vector<float> y = (lg ? log_softmax(xt, 1) : softmax(xt, 1)).to_float_vector();
      for (int64_t r = 0; r < 4; ++r) {
        double m = -INFINITY;
        for (int64_t j = 0; j < n; ++j) m = std::max(m, (double)x[r * n + j]);
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += std::exp((double)x[r * n + j] - m);
        for (int64_t j = 0; j < n; ++j) {
          const float got = y[r * n + j];
          const double xv = x[r * n + j];
          if (r >= 2) {  // the all -inf row and the NaN row: NaN everywhere
            CHECK(std::isnan(got));
            continue;
          }
          if (lg) {
            if (std::isinf(xv)) CHECK(got == ninf);
            else CHECK(std::abs(got - ((xv - m) - std::log(s))) <= 1e-6 * std::max(1.0, std::abs(xv - m)) + 1e-6);
          } else {
            const double want = std::exp(xv - m) / s;
            if (std::isinf(xv)) CHECK(got == 0.0f);
            // x - m is rounded to float32 first (as in torch): a relative error of |x - m| ulps.
            else CHECK(std::abs(got - want) <= (1e-6 + 1.2e-7 * std::abs(xv - m)) * want + 1e-37);
          }
        }
      }
    }
  }
}

TEST_CASE("nn ops: layer_norm backward is bit-identical for any thread count") {
  Generator g(41);
  // 9000 x 64 is above the kernels' parallel threshold (2^19 elements), so 2 and 3 threads run.
  Tensor x = Tensor::randn({9000, 64}, g, DType::F32);
  Tensor w = Tensor::randn({64}, g, DType::F32), b = Tensor::randn({64}, g, DType::F32);
  Tensor R = Tensor::randn({9000, 64}, g, DType::F32);
  auto run = [&](int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor xl = x.clone().set_requires_grad(true), wl = w.clone().set_requires_grad(true), bl = b.clone().set_requires_grad(true);
    backward(layer_norm(xl, wl, bl), R);
    omp_set_num_threads(prev);
    return std::vector<std::vector<float>>{xl.grad().to_float_vector(), wl.grad().to_float_vector(), bl.grad().to_float_vector()};
  };
  auto r1 = run(1), r2 = run(2), r3 = run(3);
  for (int i = 0; i < 3; ++i) {
    CHECK(std::memcmp(r1[i].data(), r2[i].data(), r1[i].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(r1[i].data(), r3[i].data(), r1[i].size() * sizeof(float)) == 0);
  }
}

// A linear_layer_norm problem: x (rows, Din) through W (D, Din), with or without GELU.
struct LinearNormCase {
  int64_t rows, Din, D;
  bool gelu;
};

// linear_layer_norm on a large y (rows x D >= 2^20) runs LayerNorm (+ GELU) as the GEMM's row
// epilogue (cpu::sgemm_rows). Its output must be the bits of the GEMM followed by the same row
// kernel over all rows (the path smaller products take), for 1 and 2 threads; and output and
// gradients must match the composed op (linear, layer_norm, gelu) in float64. Shapes reach the
// GEMM's three ways of calling the epilogue: per A block (threads split M), once at the end
// (threads split N: 128 rows x 8192 columns), and after a skinny form (17000 x 64).
TEST_CASE("nn ops: linear_layer_norm with the rows fused into the GEMM equals GEMM then rows; float64 agreement") {
  using Case = LinearNormCase;
  for (const Case c : {Case{2100, 64, 512, true}, Case{128, 16, 8192, false}, Case{17000, 8, 64, true}}) {
    INFO("rows=" << c.rows << " Din=" << c.Din << " D=" << c.D << " gelu=" << c.gelu);
    Generator g(43);
    Tensor x = Tensor::randn({c.rows, c.Din}, g, DType::F32), W = Tensor::randn({c.D, c.Din}, g, DType::F32);
    Tensor b = Tensor::randn({c.D}, g, DType::F32), gamma = Tensor::randn({c.D}, g, DType::F32),
           beta = Tensor::randn({c.D}, g, DType::F32), R = Tensor::randn({c.rows, c.D}, g, DType::F32);
    // GEMM, then the rows over all of y: what linear_layer_norm does below the fusion threshold.
    std::vector<float> y(c.rows * c.D), want(c.rows * c.D), mean(c.rows), rstd(c.rows);
    lm::cpu::sgemm(false, true, c.rows, c.D, c.Din, 1.0f, x.data<float>(), c.Din, W.data<float>(), c.Din, 0.0f,
                   y.data(), c.D);
    lm::cpu::layer_norm_gelu_forward(y.data(), b.data<float>(), gamma.data<float>(), beta.data<float>(), 1e-5f, c.rows,
                                     c.D, c.gelu, want.data(), mean.data(), rstd.data());
    for (int threads : {1, 2}) {
      const int prev = omp_get_max_threads();
      omp_set_num_threads(threads);
      const std::vector<float> got = linear_layer_norm(x, W, b, gamma, beta, 1e-5, c.gelu).to_float_vector();
      omp_set_num_threads(prev);
      CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
    }
    // float64: the composed op on the same values; gradients of sum(out * R).
    auto leaves = [](std::vector<Tensor> ts, DType dt) {
      for (Tensor& t : ts) t = t.to(dt).set_requires_grad(true);
      return ts;
    };
    auto l32 = leaves({x, W, b, gamma, beta}, DType::F32), l64 = leaves({x, W, b, gamma, beta}, DType::F64);
    Tensor out32 = linear_layer_norm(l32[0], l32[1], l32[2], l32[3], l32[4], 1e-5, c.gelu);
    Tensor out64 = linear_layer_norm_composed(l64[0], l64[1], l64[2], l64[3], l64[4], 1e-5, c.gelu);
    backward(out32, R);
    backward(out64, R.to(DType::F64));
    // Float32 against float64 of the same inputs: floor 1e-2 as for the fixtures' float32 cases
    // (rel_error's note); the float32 GEMM's rounding over Din products leaves ~1e-6 of y's scale.
    // Sums over up to 17000 rows or 8192 columns in float32: measured up to 5.2e-5 for the output
    // (the portable rows' LayerNorm statistics at D = 8192, LIBRAMIL_CPU_ISA=scalar; 1e-5 with the
    // AVX rows) and 1.2e-4 for a gradient (dx at D = 8192); a row processed before its last K
    // block would be off by O(1).
    CHECK(rel_error(out32.to(DType::F64), out64, 1e-2) < 1e-4);
    for (int i = 0; i < 5; ++i) {
      INFO("gradient of input " << i);
      CHECK(rel_error(l32[i].grad().to(DType::F64), l64[i].grad(), 1e-2) < 5e-4);
    }
  }
}

// linear_layer_norm's backward when x needs no gradient and dW takes the GEMM's K-split form:
// gy made in blocks that go straight into dW's product (ops/cpu/layer_norm_gelu_dw.cpp). The
// LayerNorm and bias gradients must be the bits of the unfused backward (same rows, same
// partials), dW must match it to float32 rounding and the composed op in float64, and all of
// them must be the same bits on 1, 2, 3 and 5 threads (3 and 5 threads exceed the 2 and 4 chunks
// of the first two shapes: the path that makes gy first, then the blocks' products).
TEST_CASE("nn ops: linear_layer_norm backward with dW fused into the rows (x without gradient)") {
  using Case = LinearNormCase;
  for (const Case c : {Case{4100, 64, 512, true}, Case{8300, 24, 128, false}, Case{5000, 8, 64, true}}) {
    INFO("rows=" << c.rows << " Din=" << c.Din << " D=" << c.D << " gelu=" << c.gelu);
    REQUIRE(lm::cpu::detail::k_split_chunks(c.D, c.Din, c.rows) > 1);  // the shape takes the fused path
    Generator g(44);
    Tensor x = Tensor::randn({c.rows, c.Din}, g, DType::F32), W = Tensor::randn({c.D, c.Din}, g, DType::F32);
    Tensor b = Tensor::randn({c.D}, g, DType::F32), gamma = Tensor::randn({c.D}, g, DType::F32),
           beta = Tensor::randn({c.D}, g, DType::F32), R = Tensor::randn({c.rows, c.D}, g, DType::F32);
    // Gradients of W, b, gamma, beta for sum(out * R), x needing a gradient or not.
    auto grads = [&](bool x_grad, int threads) {
      const int prev = omp_get_max_threads();
      omp_set_num_threads(threads);
      std::vector<Tensor> ls = {x.detach().clone(), W.detach().clone(), b.detach().clone(), gamma.detach().clone(),
                                beta.detach().clone()};
      for (size_t i = x_grad ? 0 : 1; i < ls.size(); ++i) ls[i].set_requires_grad(true);
      backward(linear_layer_norm(ls[0], ls[1], ls[2], ls[3], ls[4], 1e-5, c.gelu), R);
      omp_set_num_threads(prev);
      std::vector<std::vector<float>> out;
      for (size_t i = 1; i < ls.size(); ++i) out.push_back(ls[i].grad().to_float_vector());
      return out;
    };
    const auto unfused = grads(true, 2), fused = grads(false, 1);
    for (int i = 1; i < 4; ++i) {  // b, gamma, beta: the same rows, partials and reduction
      INFO("gradient of input " << i + 1);
      CHECK(std::memcmp(fused[i].data(), unfused[i].data(), fused[i].size() * sizeof(float)) == 0);
    }
    double worst = 0, scale = 0;  // dW: the same products summed in another order
    for (size_t j = 0; j < fused[0].size(); ++j) {
      worst = std::max(worst, (double)std::abs(fused[0][j] - unfused[0][j]));
      scale = std::max(scale, (double)std::abs(unfused[0][j]));
    }
    CHECK(worst <= 1e-5 * scale);
    for (int threads : {2, 3, 5}) {
      INFO("threads=" << threads);
      const auto again = grads(false, threads);
      for (int i = 0; i < 4; ++i)
        CHECK(std::memcmp(again[i].data(), fused[i].data(), fused[i].size() * sizeof(float)) == 0);
    }
    // float64: the composed op's gradients.
    std::vector<Tensor> l64 = {x.to(DType::F64), W.to(DType::F64), b.to(DType::F64), gamma.to(DType::F64),
                               beta.to(DType::F64)};
    for (size_t i = 1; i < l64.size(); ++i) l64[i].set_requires_grad(true);
    backward(linear_layer_norm_composed(l64[0], l64[1], l64[2], l64[3], l64[4], 1e-5, c.gelu), R.to(DType::F64));
    for (int i = 0; i < 4; ++i) {
      INFO("gradient of input " << i + 1 << " against float64");
      const Shape sh = l64[i + 1].shape();
      CHECK(rel_error(Tensor::from_vector(std::vector<double>(fused[i].begin(), fused[i].end()), sh),
                      l64[i + 1].grad(), 1e-2) < 5e-4);
    }
  }
}
