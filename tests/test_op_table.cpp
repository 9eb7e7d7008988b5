// The op table (docs ARCHITECTURE.md, "Testing discipline"; modeled on ggml's
// test-backend-ops): every op of ops/ops.h is listed once below, with several cases each
// (odd sizes, size-1 dims, broadcasting, non-contiguous inputs made as transposed / strided
// views of bigger tensors). Each case is checked in three modes:
//   (a) float64 central-difference gradient check (autograd/gradcheck.h) on tiny shapes;
//   (b) forward and backward against PyTorch, float32 and float64: inputs and the upstream
//       gradient R are written to a scratch dir (index.json + raw little-endian .bin files),
//       tools/op_table_reference.py evaluates the same op *by name* with torch functions, and
//       outputs / input gradients are compared per case with per-dtype tolerances;
//   (c) CUDA against CPU when a GPU is present, counted and reported as skipped otherwise.
// A summary table (op, cases, max errors per mode) is printed at the end.
// Also here: autograd engine tests (accumulation, explicit gradients, deep graphs, freed
// buffers, retain_graph, no-grad mode).
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
#include <vector>

#include "autograd/gradcheck.h"
#include "ops/ops.h"
#include "tests/test_util.h"

// Rows are aggregate-initialised with only the leading fields; the rest keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

using namespace lm;
using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

// ---- input generation -------------------------------------------------------------------

// Value distributions, chosen so that float64 central differences are well defined.
enum class Dist {
  Normal,     // standard normal
  Pos,        // uniform [0.5, 2): log, sqrt, pow
  Away,       // normal pushed to |x| >= 0.3: abs, relu, divisors, l1 norms (kink at 0)
  ClampSafe,  // uniform [-2, 2) at least 0.1 from the clamp bounds -0.5 and 0.8
  Distinct,   // a random permutation of values 0.25 apart: amax / max without ties
  Ties,       // values from {-1, 0, 0.5, 1}: eq, and amax with tied maxima
  Relu6Safe,  // uniform [-2, 8) at least 0.1 from relu6's kinks 0 and 6
};
// Memory layout of the produced tensor (always a leaf with the requested logical shape).
enum class Lay {
  C,  // contiguous
  T,  // transposed view of a bigger-last-dims tensor: last two dims swapped (needs >= 2-d)
  S,  // strided view: every 2nd element along the last dim of a (.., 2n+1) tensor, offset 1
};

constexpr double kClampLo = -0.5, kClampHi = 0.8;

// Builds a case's inputs from one seeded generator. Values are drawn in float64 and then
// converted, so the float32 and float64 variants of a case hold the same (rounded) numbers.
struct Draw {
  Generator& g;
  DType dt;

  Tensor values(const Shape& s, Dist d) {
    int64_t n = shape_numel(s);
    std::vector<double> v((size_t)n);
    switch (d) {
      case Dist::Normal: v = Tensor::randn(s, g, DType::F64).to_double_vector(); break;
      case Dist::Pos: v = Tensor::uniform(s, 0.5, 2.0, g, DType::F64).to_double_vector(); break;
      case Dist::Away:
        v = Tensor::randn(s, g, DType::F64).to_double_vector();
        for (double& x : v)
          if (std::abs(x) < 0.3) x = x < 0 ? x - 0.3 : x + 0.3;
        break;
      case Dist::ClampSafe:
        v = Tensor::uniform(s, -2.0, 2.0, g, DType::F64).to_double_vector();
        for (double& x : v) {
          if (std::abs(x - kClampLo) < 0.1) x += x < kClampLo ? -0.2 : 0.2;
          if (std::abs(x - kClampHi) < 0.1) x += x < kClampHi ? -0.2 : 0.2;
        }
        break;
      case Dist::Distinct: {
        std::vector<int64_t> perm((size_t)n);
        for (int64_t i = 0; i < n; ++i) perm[i] = i;
        for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[g.next_below((uint64_t)i + 1)]);
        for (int64_t i = 0; i < n; ++i) v[i] = ((double)perm[i] - (double)n / 2) * 0.25 + 0.05 * g.next_uniform();
        break;
      }
      case Dist::Relu6Safe:
        v = Tensor::uniform(s, -2.0, 8.0, g, DType::F64).to_double_vector();
        for (double& x : v)
          for (double k : {0.0, 6.0})
            if (std::abs(x - k) < 0.1) x += x < k ? -0.2 : 0.2;
        break;
      case Dist::Ties: {
        const double levels[4] = {-1.0, 0.0, 0.5, 1.0};
        for (double& x : v) x = levels[g.next_below(4)];
        break;
      }
    }
    return Tensor::from_vector(v, s).to(dt);
  }

  Tensor operator()(const Shape& s, Dist d = Dist::Normal, Lay l = Lay::C) {
    if (l == Lay::T && s.size() < 2) l = Lay::C;
    if (l == Lay::S && s.empty()) l = Lay::C;
    Shape base = s;
    size_t nd = s.size();
    if (l == Lay::T) std::swap(base[nd - 2], base[nd - 1]);
    if (l == Lay::S) base[nd - 1] = 2 * s[nd - 1] + 1;
    Tensor b = values(base, d);
    if (l == Lay::T) {
      Shape st = b.strides();
      std::swap(st[nd - 2], st[nd - 1]);
      return b.as_strided(s, st, 0);
    }
    if (l == Lay::S) {
      Shape st = b.strides();
      st[nd - 1] = 2;
      return b.as_strided(s, st, 1);
    }
    return b;
  }

  // int64 class indices / row indices in [0, n).
  Tensor index(const Shape& s, int64_t n) {
    std::vector<int64_t> v((size_t)shape_numel(s));
    for (auto& x : v) x = (int64_t)g.next_below((uint64_t)n);
    return Tensor::from_vector(v, s);
  }

  // Additive attention mask of 0 / -inf; the first key is never masked, so no row is empty.
  Tensor mask(const Shape& s) {
    std::vector<double> v((size_t)shape_numel(s));
    int64_t last = s.back();
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = ((int64_t)i % last != 0 && g.next_uniform() < 0.4) ? -std::numeric_limits<double>::infinity() : 0.0;
    return Tensor::from_vector(v, s).to(dt);
  }
};

// ---- the table ----------------------------------------------------------------------------

struct Tol {
  double rtol, atol;
};
constexpr Tol kF32{1e-5, 1e-6};   // float32 vs torch float32 (and CUDA vs CPU)
constexpr Tol kF64{1e-9, 1e-12};  // float64 vs torch float64

struct OpCase {
  std::string op;    // the ops.h function (and the Python reference's op key)
  std::string name;  // unique: op + description
  json params;       // op parameters for the Python reference
  std::function<Inputs(Draw&)> make;
  std::function<Tensor(const Inputs&)> fn;
  Tol f32 = kF32;
  Tol f64 = kF64;
  std::vector<int> no_grad;   // float inputs that do not require grad (attention masks)
  bool forward_only = false;  // no gradient at all (argmax)
  bool skip_gradcheck = false;  // large cases: float64 finite differences too slow; smaller cases cover the op
};

std::string sh(const Shape& s) { return shape_str(s); }
const char* lay_name(Lay l) { return l == Lay::C ? "" : (l == Lay::T ? "T" : "S"); }

std::vector<OpCase> build_table() {
  std::vector<OpCase> tab;
  auto add_case = [&](OpCase c) { tab.push_back(std::move(c)); };
  using D = Dist;
  using L = Lay;
  // Matmul-based ops accumulate K products in float32 in a different order than torch:
  // tolerances grow with K (stated here, per case).
  const Tol kMatmulF32{2e-5, 2e-6}, kLargeKF32{1e-4, 2e-5}, kAttnF32{1e-4, 1e-5};

  // -- binary elementwise, broadcasting both ways, scalar-shaped operands, views
  struct Pair {
    Shape a;
    L la;
    Shape b;
    L lb;
  };
  const std::vector<Pair> pairs = {
      {{3, 4}, L::C, {3, 4}, L::C},    {{3, 5}, L::T, {5}, L::C},        {{4}, L::C, {3, 4}, L::S},
      {{3, 1}, L::C, {1, 4}, L::C},    {{}, L::C, {2, 3}, L::C},         {{2, 3}, L::T, {}, L::C},
      {{1}, L::C, {2, 1, 3}, L::C},    {{2, 1, 4}, L::S, {3, 1}, L::T},  {{2, 3, 5}, L::T, {2, 3, 5}, L::S},
  };
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, const Tensor&)>>> binops = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
  };
  for (const auto& [op, f] : binops)
    for (const Pair& p : pairs) {
      D db = op == "div" ? D::Away : D::Normal;
      add_case({op, op + " " + sh(p.a) + lay_name(p.la) + " " + sh(p.b) + lay_name(p.lb), json::object(),
                [p, db](Draw& d) { return Inputs{d(p.a, D::Normal, p.la), d(p.b, db, p.lb)}; },
                [f](const Inputs& x) { return f(x[0], x[1]); }});
    }
  // eq: a step function (no gradient); tied values make both outcomes frequent.
  for (const Pair& p : pairs) {
    OpCase c{"eq", "eq " + sh(p.a) + lay_name(p.la) + " " + sh(p.b) + lay_name(p.lb), json::object(),
             [p](Draw& d) { return Inputs{d(p.a, D::Ties, p.la), d(p.b, D::Ties, p.lb)}; },
             [](const Inputs& x) { return eq(x[0], x[1]); }};
    c.forward_only = true;
    add_case(c);
  }

  // -- unary elementwise (and scalar arithmetic)
  struct Un {
    std::string op;
    json params;
    D dist;
    std::function<Tensor(const Tensor&)> f;
  };
  const std::vector<Un> unops = {
      {"add_scalar", {{"s", 1.5}}, D::Normal, [](const Tensor& x) { return add(x, 1.5); }},
      {"mul_scalar", {{"s", -2.5}}, D::Normal, [](const Tensor& x) { return mul(x, -2.5); }},
      {"rsub", {{"s", 3.0}}, D::Normal, [](const Tensor& x) { return rsub(3.0, x); }},
      {"neg", json::object(), D::Normal, [](const Tensor& x) { return neg(x); }},
      {"exp", json::object(), D::Normal, [](const Tensor& x) { return exp(x); }},
      {"log", json::object(), D::Pos, [](const Tensor& x) { return log(x); }},
      {"sqrt", json::object(), D::Pos, [](const Tensor& x) { return sqrt(x); }},
      {"pow", {{"e", 2.0}}, D::Pos, [](const Tensor& x) { return pow(x, 2.0); }},
      {"pow", {{"e", 3.0}}, D::Pos, [](const Tensor& x) { return pow(x, 3.0); }},
      {"pow", {{"e", 0.5}}, D::Pos, [](const Tensor& x) { return pow(x, 0.5); }},
      {"pow", {{"e", -1.5}}, D::Pos, [](const Tensor& x) { return pow(x, -1.5); }},
      {"abs", json::object(), D::Away, [](const Tensor& x) { return abs(x); }},
      {"clamp", {{"lo", kClampLo}, {"hi", kClampHi}}, D::ClampSafe, [](const Tensor& x) { return clamp(x, kClampLo, kClampHi); }},
      {"relu", json::object(), D::Away, [](const Tensor& x) { return relu(x); }},
      {"sigmoid", json::object(), D::Normal, [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", json::object(), D::Normal, [](const Tensor& x) { return tanh(x); }},
      {"gelu", json::object(), D::Normal, [](const Tensor& x) { return gelu(x); }},
  };
  const std::vector<std::pair<Shape, L>> ushapes = {{{3, 4}, L::C}, {{4, 3}, L::T}, {{2, 1, 5}, L::S}, {{}, L::C}};
  for (const Un& u : unops) {
    bool is_pow = u.op == "pow";
    for (size_t k = 0; k < ushapes.size(); ++k) {
      if (is_pow && k % 2 == 1) continue;  // pow: 4 exponents x 2 shapes
      auto [s, l] = ushapes[k];
      std::string nm = u.op + (is_pow ? "^" + u.params["e"].dump() : std::string()) + " " + sh(s) + lay_name(l);
      D dist = u.dist;
      auto f = u.f;
      add_case({u.op, nm, u.params, [s, l, dist](Draw& d) { return Inputs{d(s, dist, l)}; },
                [f](const Inputs& x) { return f(x[0]); }});
    }
  }

  // -- matmul: 2-d, batched, broadcast batch, transposed operand views, 1-d operands
  struct MM {
    Shape a;
    L la;
    Shape b;
    L lb;
    std::vector<int> pre_t;  // operands passed through transpose(x, -1, -2) inside the op
    Tol f32;
  };
  const std::vector<MM> mms = {
      {{3, 4}, L::C, {4, 5}, L::C, {}, kMatmulF32},
      {{1, 4}, L::C, {4, 1}, L::C, {}, kMatmulF32},
      {{3, 4}, L::T, {4, 5}, L::T, {}, kMatmulF32},        // both stored transposed (GEMM flags)
      {{3, 4}, L::C, {5, 4}, L::C, {1}, kMatmulF32},       // a @ t(b): no-copy transposed view
      {{4, 3}, L::C, {4, 5}, L::C, {0}, kMatmulF32},       // t(a) @ b
      {{3, 4}, L::S, {4, 5}, L::S, {}, kMatmulF32},        // strided: copied to packed
      {{2, 3, 4}, L::C, {2, 4, 5}, L::C, {}, kMatmulF32},  // batched
      {{2, 3, 4}, L::C, {2, 5, 4}, L::C, {1}, kMatmulF32}, // batched, transpose(b, -1, -2)
      {{2, 1, 3, 4}, L::C, {3, 4, 2}, L::T, {}, kMatmulF32},  // broadcast batch (2,1) x (3)
      {{3, 4}, L::C, {2, 4, 5}, L::C, {}, kMatmulF32},     // 2-d @ batched
      {{2, 3, 4}, L::T, {4, 5}, L::C, {}, kMatmulF32},     // batched @ 2-d
      {{4}, L::C, {4, 5}, L::C, {}, kMatmulF32},           // 1-d @ 2-d
      {{3, 4}, L::C, {4}, L::C, {}, kMatmulF32},           // 2-d @ 1-d
      {{4}, L::C, {4}, L::C, {}, kMatmulF32},              // dot
      {{4}, L::C, {2, 4, 3}, L::C, {}, kMatmulF32},        // 1-d @ batched
      {{3, 300}, L::C, {300, 4}, L::T, {}, kLargeKF32},    // large K
  };
  for (const MM& m : mms) {
    std::string nm = "matmul " + sh(m.a) + lay_name(m.la) + (std::count(m.pre_t.begin(), m.pre_t.end(), 0) ? ".mT" : "") +
                     " @ " + sh(m.b) + lay_name(m.lb) + (std::count(m.pre_t.begin(), m.pre_t.end(), 1) ? ".mT" : "");
    json p = json::object();
    if (!m.pre_t.empty()) p["pre_transpose"] = m.pre_t;
    bool ta = std::count(m.pre_t.begin(), m.pre_t.end(), 0), tb = std::count(m.pre_t.begin(), m.pre_t.end(), 1);
    OpCase c{"matmul", nm, p, [m](Draw& d) { return Inputs{d(m.a, D::Normal, m.la), d(m.b, D::Normal, m.lb)}; },
             [ta, tb](const Inputs& x) {
               auto tr = [](const Tensor& v) { return v.dim() == 2 ? t(v) : transpose(v, -1, -2); };
               return matmul(ta ? tr(x[0]) : x[0], tb ? tr(x[1]) : x[1]);
             }};
    c.f32 = m.f32;
    add_case(c);
  }

  // -- linear: with / without bias, 3-d input, non-contiguous input and weight
  struct Lin {
    Shape x;
    L lx;
    int64_t out;
    L lw;
    bool bias;
  };
  for (const Lin& q : std::vector<Lin>{{{3, 4}, L::C, 5, L::C, true},
                                       {{3, 4}, L::C, 5, L::C, false},
                                       {{2, 3, 4}, L::C, 2, L::C, true},
                                       {{2, 5, 3}, L::T, 4, L::T, true},
                                       {{1, 7}, L::S, 1, L::C, false}}) {
    int64_t in = q.x.back();
    OpCase c{"linear", "linear " + sh(q.x) + lay_name(q.lx) + " W" + sh({q.out, in}) + lay_name(q.lw) + (q.bias ? " +b" : " nobias"),
             json::object(),
             [q, in](Draw& d) {
               Inputs v{d(q.x, D::Normal, q.lx), d({q.out, in}, D::Normal, q.lw)};
               if (q.bias) v.push_back(d({q.out}));
               return v;
             },
             [](const Inputs& x) { return x.size() > 2 ? linear(x[0], x[1], x[2]) : linear(x[0], x[1]); }};
    c.f32 = kMatmulF32;
    add_case(c);
  }

  // -- reductions over dims, with and without keepdim, non-consecutive dims, dim 0, all
  struct Red {
    Shape s;
    L l;
    std::vector<int64_t> dims;  // empty = the all-elements overload
    bool keepdim;
  };
  const std::vector<Red> reds = {
      {{3, 4, 5}, L::C, {1}, false},     {{3, 4, 5}, L::C, {0}, true},      {{3, 4, 5}, L::S, {-1}, true},
      {{3, 4, 5}, L::T, {0, 2}, false},  {{3, 4, 5}, L::C, {0, 2}, true},   {{2, 1, 5}, L::C, {1, 2}, false},
      {{5, 3}, L::T, {0}, false},        {{3, 4}, L::C, {}, false},
  };
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, const Red&)>>> redops = {
      {"sum", [](const Tensor& x, const Red& r) { return r.dims.empty() ? sum(x) : sum(x, r.dims, r.keepdim); }},
      {"mean", [](const Tensor& x, const Red& r) { return r.dims.empty() ? mean(x) : mean(x, r.dims, r.keepdim); }},
      {"amax", [](const Tensor& x, const Red& r) {
         if (!r.dims.empty()) return amax(x, r.dims, r.keepdim);
         std::vector<int64_t> all;
         for (int64_t i = 0; i < x.dim(); ++i) all.push_back(i);
         return amax(x, all, false);
       }},
      {"logsumexp", [](const Tensor& x, const Red& r) {
         if (!r.dims.empty()) return logsumexp(x, r.dims, r.keepdim);
         std::vector<int64_t> all;
         for (int64_t i = 0; i < x.dim(); ++i) all.push_back(i);
         return logsumexp(x, all, false);
       }},
  };
  for (const auto& [op, f] : redops)
    for (const Red& r : reds) {
      json p = {{"keepdim", r.keepdim}};
      if (r.dims.empty()) p["dims"] = nullptr;
      else p["dims"] = r.dims;
      std::string dims = r.dims.empty() ? "all" : json(r.dims).dump();
      D dist = op == "amax" ? D::Distinct : D::Normal;
      auto ff = f;
      add_case({op, op + " " + sh(r.s) + lay_name(r.l) + " dims" + dims + (r.keepdim ? " keepdim" : ""), p,
                [r, dist](Draw& d) { return Inputs{d(r.s, dist, r.l)}; },
                [ff, r](const Inputs& x) { return ff(x[0], r); }});
      if (op == "amax") {  // tied maxima: the gradient is split evenly among them, as torch.amax does
        OpCase c{op, op + " ties " + sh(r.s) + lay_name(r.l) + " dims" + dims + (r.keepdim ? " keepdim" : ""), p,
                 [r](Draw& d) { return Inputs{d(r.s, D::Ties, r.l)}; },
                 [ff, r](const Inputs& x) { return ff(x[0], r); }};
        c.skip_gradcheck = true;  // not differentiable at ties: finite differences do not apply
        add_case(c);
      }
    }
  for (auto [s, l, dim, keep] : std::vector<std::tuple<Shape, L, int64_t, bool>>{
           {{3, 4, 5}, L::C, 1, false}, {{3, 4, 5}, L::T, 0, true}, {{4, 5}, L::S, -1, false}, {{1, 6}, L::C, 0, false}}) {
    add_case({"max", "max " + sh(s) + lay_name(l) + " dim" + std::to_string(dim) + (keep ? " keepdim" : ""),
              {{"dim", dim}, {"keepdim", keep}}, [s, l](Draw& d) { return Inputs{d(s, D::Distinct, l)}; },
              [dim, keep](const Inputs& x) { return max(x[0], dim, keep); }});
  }
  for (auto [s, l, dim, keep] : std::vector<std::tuple<Shape, L, int64_t, bool>>{
           {{3, 4, 5}, L::C, 1, false}, {{4, 5}, L::T, 0, true}, {{4, 5}, L::S, -1, false}}) {
    OpCase c{"argmax", "argmax " + sh(s) + lay_name(l) + " dim" + std::to_string(dim) + (keep ? " keepdim" : ""),
             {{"dim", dim}, {"keepdim", keep}}, [s, l](Draw& d) { return Inputs{d(s, D::Distinct, l)}; },
             [dim, keep](const Inputs& x) { return argmax(x[0], dim, keep); }};
    c.forward_only = true;
    add_case(c);
  }

  // -- softmax / log_softmax
  for (const std::string op : {"softmax", "log_softmax"})
    for (auto [s, l, dim] : std::vector<std::tuple<Shape, L, int64_t>>{
             {{3, 5}, L::C, -1}, {{3, 5}, L::C, 0}, {{2, 3, 4}, L::T, 1}, {{2, 3, 4}, L::S, -1}, {{4, 1}, L::C, -1}, {{1, 7}, L::C, 1}}) {
      add_case({op, op + " " + sh(s) + lay_name(l) + " dim" + std::to_string(dim), {{"dim", dim}},
                [s, l](Draw& d) { return Inputs{d(s, D::Normal, l)}; },
                [op, dim](const Inputs& x) { return op == "softmax" ? softmax(x[0], dim) : log_softmax(x[0], dim); }});
    }

  // -- layer_norm (normalises the last dim), with / without affine
  for (auto [s, l, affine] : std::vector<std::tuple<Shape, L, int>>{
           {{3, 5}, L::C, 2}, {{3, 5}, L::C, 0}, {{2, 3, 7}, L::S, 2}, {{4, 6}, L::T, 2}, {{2, 4}, L::C, 1}, {{3, 1}, L::C, 2}}) {
    // affine: 0 none, 1 weight only, 2 weight + bias
    OpCase c{"layer_norm", "layer_norm " + sh(s) + lay_name(l) + (affine == 2 ? " w+b" : affine == 1 ? " w" : " noaffine"),
              {{"eps", 1e-5}},
              [s, l, affine](Draw& d) {
                Inputs v{d(s, D::Normal, l)};
                if (affine >= 1) v.push_back(d({s.back()}, D::Normal));
                if (affine >= 2) v.push_back(d({s.back()}, D::Normal));
                return v;
              },
              [](const Inputs& x) {
                return layer_norm(x[0], x.size() > 1 ? x[1] : Tensor(), x.size() > 2 ? x[2] : Tensor(), 1e-5);
              }};
    // D = 1: x - mean is exactly 0, so the exact gradients of x and weight are 0; torch's
    // float32 kernel leaves ~4e-6 of rounding noise there (float64 torch: ~1e-16).
    if (s.back() == 1) c.f32 = Tol{1e-5, 1e-5};
    add_case(c);
  }

  // -- linear_layer_norm (fused Linear -> LayerNorm [-> GELU]; float32 CPU runs the fused kernels,
  //    float64 the composition). (300, 64) crosses the kernels' parallel threshold and row chunks.
  for (bool gelu : {true, false})
    for (auto [rows, din, dout, l, bias] : std::vector<std::tuple<int64_t, int64_t, int64_t, L, bool>>{
             {7, 5, 6, L::C, true}, {4, 3, 5, L::T, true}, {1, 4, 3, L::C, false}, {300, 64, 48, L::C, true}}) {
      const std::string op = gelu ? "linear_layer_norm_gelu" : "linear_layer_norm";
      OpCase c{op, op + " " + sh({rows, din}) + "->" + std::to_string(dout) + lay_name(l) + (bias ? " bias" : " nobias"),
               {{"eps", 1e-5}, {"bias", bias}},
               [rows, din, dout, l, bias](Draw& d) {
                 Inputs v{d({rows, din}, D::Normal, l), d({dout, din}, D::Normal), d({dout}, D::Normal), d({dout}, D::Normal)};
                 if (bias) v.push_back(d({dout}, D::Normal));
                 return v;
               },
               [gelu, bias](const Inputs& x) {
                 return linear_layer_norm(x[0], x[1], bias ? x[4] : Tensor(), x[2], x[3], 1e-5, gelu);
               }};
      if (rows >= 300) {
        c.skip_gradcheck = true;  // float64 finite differences over 20k inputs: the small cases cover the op
        // dW, dgamma, dbeta are float32 sums over 300 rows of terms that partly cancel, and the
        // fused GELU uses a polynomial erf (4e-7 abs): both sides carry ~1e-5 relative noise.
        c.f32 = Tol{1e-4, 1e-5};
      }
      add_case(c);
    }

  // -- l2_norm_clamped: max(||x_i||, eps) over the last dim (a zero row exercises the clamp in
  //    forward only: its gradient is 0, where finite differences of the kink are not defined)
  for (auto [s, l] : std::vector<std::tuple<Shape, L>>{{{5, 7}, L::C}, {{4, 3}, L::T}, {{2, 3, 4}, L::S}, {{6}, L::C}})
    add_case({"l2_norm_clamped", "l2_norm_clamped " + sh(s) + lay_name(l), {{"eps", 1e-12}},
              [s, l](Draw& d) { return Inputs{d(s, D::Normal, l)}; },
              [](const Inputs& x) { return l2_norm_clamped(x[0], 1e-12); }});

  // -- scale_rows: out[i, :] = w[i] x[i, :]
  for (auto [n, d, l] : std::vector<std::tuple<int64_t, int64_t, L>>{{5, 7, L::C}, {4, 3, L::T}, {1, 6, L::C}, {6, 1, L::S}})
    add_case({"scale_rows", "scale_rows " + sh({n, d}) + lay_name(l), json::object(),
              [n, d, l](Draw& dr) { return Inputs{dr({n, d}, D::Normal, l), dr({n}, D::Normal)}; },
              [](const Inputs& x) { return scale_rows(x[0], x[1]); }});

  // -- bilinear_rows: out[i] = a[i, :] M b[i, :]^T; strided rows as slices of a wider matrix
  for (auto [n, p, q, l] : std::vector<std::tuple<int64_t, int64_t, int64_t, L>>{
           {5, 3, 4, L::C}, {1, 2, 3, L::C}, {6, 1, 5, L::S}, {4, 3, 1, L::T}, {7, 2, 2, L::S}})
    add_case({"bilinear_rows", "bilinear_rows " + sh({n, p}) + sh({p, q}) + sh({n, q}) + lay_name(l), json::object(),
              [n, p, q, l](Draw& d) { return Inputs{d({n, p}, D::Normal, l), d({p, q}, D::Normal), d({n, q}, D::Normal, l)}; },
              [](const Inputs& x) { return bilinear_rows(x[0], x[1], x[2]); }});

  // -- cross_entropy: (B, C) logits with (B) targets, one sample (C) with a scalar / (1) target
  for (auto [s, l, tshape] : std::vector<std::tuple<Shape, L, Shape>>{
           {{4, 5}, L::C, {4}}, {{1, 3}, L::C, {1}}, {{7, 2}, L::T, {7}}, {{3, 6}, L::S, {3}}, {{5}, L::C, {}}, {{4}, L::C, {1}}}) {
    int64_t C = s.back();
    add_case({"cross_entropy", "cross_entropy " + sh(s) + lay_name(l) + " target" + sh(tshape), json::object(),
              [s, l, tshape, C](Draw& d) { return Inputs{d(s, D::Normal, l), d.index(tshape, C)}; },
              [](const Inputs& x) { return cross_entropy(x[0], x[1]); }});
  }

  // -- normalisation and cosine similarity
  for (const std::string op : {"l2_normalize", "l1_normalize"})
    for (auto [s, l, dim] : std::vector<std::tuple<Shape, L, int64_t>>{
             {{3, 5}, L::C, -1}, {{3, 5}, L::T, 0}, {{2, 3, 4}, L::S, 1}, {{4, 1}, L::C, -1}}) {
      D dist = op == "l1_normalize" ? D::Away : D::Normal;
      add_case({op, op + " " + sh(s) + lay_name(l) + " dim" + std::to_string(dim), {{"dim", dim}, {"eps", 1e-12}},
                [s, l, dist](Draw& d) { return Inputs{d(s, dist, l)}; },
                [op, dim](const Inputs& x) { return op == "l2_normalize" ? l2_normalize(x[0], dim) : l1_normalize(x[0], dim); }});
    }
  for (auto [n, m, D_, la, lb] : std::vector<std::tuple<int64_t, int64_t, int64_t, L, L>>{
           {3, 4, 5, L::C, L::C}, {1, 3, 7, L::T, L::C}, {5, 2, 3, L::S, L::T}, {4, 4, 1, L::C, L::C}}) {
    Shape sa{n, D_}, sb{m, D_};
    OpCase c{"cosine_similarity_matrix",
             "cosine_similarity_matrix " + sh(sa) + lay_name(la) + " " + sh(sb) + lay_name(lb), {{"eps", 1e-8}},
             [sa, sb, la, lb, D_](Draw& d) {
               // D = 1: the cosine is +-1 everywhere; keep the values away from 0.
               D dist = D_ == 1 ? D::Away : D::Normal;
               return Inputs{d(sa, dist, la), d(sb, dist, lb)};
             },
             [](const Inputs& x) { return cosine_similarity_matrix(x[0], x[1], 1e-8); }};
    c.f32 = kMatmulF32;
    add_case(c);
  }

  // -- scaled dot-product attention, with and without mask. On CUDA (mode c) this runs the
  // fused kernels of cuda/attention.cu, so the rows also cover their edge shapes: Lq = 1,
  // Lk = 1, d = 1, d not a multiple of 32, dv != d, broadcast masks, Lk and Lq longer than a
  // 32-item tile and than a 128-item split (the split-merge kernels), d = dv = 512.
  struct Att {
    int64_t B, H, Lq, Lk, d, dv;
    int mask;  // 0 none, 1 (Lq, Lk) broadcast, 2 (B, 1, Lq, Lk), 3 (1, H, 1, Lk)
    double scale;
    L lq;
    bool big = false;  // too many inputs for float64 central differences (torch + CUDA only)
  };
  for (const Att& a : std::vector<Att>{{1, 1, 3, 4, 5, 2, 0, 0.0, L::C},
                                       {2, 3, 4, 5, 3, 4, 0, 0.0, L::T},
                                       {2, 2, 3, 5, 4, 3, 1, 0.0, L::C},
                                       {2, 1, 2, 3, 3, 3, 2, 0.7, L::S},
                                       {1, 2, 1, 6, 2, 5, 2, 0.0, L::C},
                                       {1, 1, 1, 1, 1, 1, 0, 0.0, L::C},
                                       {2, 1, 3, 1, 7, 3, 1, 0.0, L::C},
                                       {1, 2, 5, 70, 37, 9, 3, 0.0, L::T},
                                       {2, 1, 2, 200, 5, 3, 1, 0.0, L::C},
                                       {1, 1, 150, 3, 4, 5, 0, 0.5, L::C},
                                       {1, 1, 3, 40, 512, 512, 2, 0.0, L::C, true}}) {
    json p = {{"scale", a.scale}};
    const char* mask_name[] = {" nomask", " mask[Lq,Lk]", " mask[B,1,Lq,Lk]", " mask[1,H,1,Lk]"};
    std::string nm = "sdpa q" + sh({a.B, a.H, a.Lq, a.d}) + lay_name(a.lq) + " k" + sh({a.B, a.H, a.Lk, a.d}) + " v" +
                     sh({a.B, a.H, a.Lk, a.dv}) + mask_name[a.mask] + (a.scale > 0 ? " scale" + json(a.scale).dump() : "");
    OpCase c{"scaled_dot_product_attention", nm, p,
             [a](Draw& d) {
               Inputs v{d({a.B, a.H, a.Lq, a.d}, D::Normal, a.lq), d({a.B, a.H, a.Lk, a.d}), d({a.B, a.H, a.Lk, a.dv}, D::Normal, L::T)};
               if (a.mask == 1) v.push_back(d.mask({a.Lq, a.Lk}));
               if (a.mask == 2) v.push_back(d.mask({a.B, 1, a.Lq, a.Lk}));
               if (a.mask == 3) v.push_back(d.mask({1, a.H, 1, a.Lk}));
               return v;
             },
             [a](const Inputs& x) {
               return scaled_dot_product_attention(x[0], x[1], x[2], x.size() > 3 ? x[3] : Tensor(), a.scale);
             }};
    c.f32 = kAttnF32;
    if (a.mask) c.no_grad = {3};
    c.skip_gradcheck = a.big;
    add_case(c);
  }

  // -- views and layout ops
  auto unary_case = [&](const std::string& op, const std::string& desc, json p, Shape s, L l,
                        std::function<Tensor(const Tensor&)> f) {
    add_case({op, op + " " + sh(s) + lay_name(l) + " " + desc, std::move(p),
              [s, l](Draw& d) { return Inputs{d(s, D::Normal, l)}; }, [f](const Inputs& x) { return f(x[0]); }});
  };
  for (auto [s, l, to] : std::vector<std::tuple<Shape, L, Shape>>{
           {{2, 3, 4}, L::C, {6, 4}}, {{2, 3, 4}, L::T, {-1}}, {{3, 4}, L::S, {4, 1, 3}}, {{1, 5}, L::C, {5}}, {{}, L::C, {1, 1}}})
    unary_case("reshape", "->" + sh(to), {{"shape", to}}, s, l, [to](const Tensor& x) { return reshape(x, to); });
  for (auto [s, l, pm] : std::vector<std::tuple<Shape, L, std::vector<int64_t>>>{
           {{2, 3, 4}, L::C, {2, 0, 1}}, {{2, 3, 4}, L::S, {1, 2, 0}}, {{3, 4}, L::T, {1, 0}}, {{2, 1, 3}, L::C, {-1, 0, 1}}})
    unary_case("permute", json(pm).dump(), {{"dims", pm}}, s, l, [pm](const Tensor& x) { return permute(x, pm); });
  for (auto [s, l, d0, d1] : std::vector<std::tuple<Shape, L, int64_t, int64_t>>{
           {{2, 3, 4}, L::C, 0, 2}, {{2, 3, 4}, L::T, -1, -2}, {{3, 5}, L::S, 1, 0}})
    unary_case("transpose", std::to_string(d0) + "," + std::to_string(d1), {{"d0", d0}, {"d1", d1}}, s, l,
               [d0, d1](const Tensor& x) { return transpose(x, d0, d1); });
  for (auto [s, l] : std::vector<std::pair<Shape, L>>{{{3, 5}, L::C}, {{3, 5}, L::T}, {{1, 4}, L::S}})
    unary_case("t", "", json::object(), s, l, [](const Tensor& x) { return t(x); });
  for (auto [s, l, to] : std::vector<std::tuple<Shape, L, Shape>>{
           {{3, 1}, L::C, {3, 4}}, {{4}, L::C, {2, 3, 4}}, {{3, 1}, L::T, {-1, 5}}, {{1, 3}, L::S, {2, 4, 3}}, {{}, L::C, {3, 2}}})
    unary_case("expand", "->" + sh(to), {{"shape", to}}, s, l, [to](const Tensor& x) { return expand(x, to); });
  for (auto [s, l, dim, a, b, step] : std::vector<std::tuple<Shape, L, int64_t, int64_t, int64_t, int64_t>>{
           {{5, 6}, L::C, 1, 1, 5, 2}, {{5, 6}, L::T, 0, -3, 5, 1}, {{7, 4}, L::C, 0, 0, 100, 3}, {{2, 9, 3}, L::S, -2, 2, -1, 4}, {{4, 3}, L::C, 1, 1, 2, 1}})
    unary_case("slice", "dim" + std::to_string(dim) + " " + std::to_string(a) + ":" + std::to_string(b) + ":" + std::to_string(step),
               {{"dim", dim}, {"start", a}, {"end", b}, {"step", step}}, s, l,
               [dim, a, b, step](const Tensor& x) { return slice(x, dim, a, b, step); });
  for (auto [s, l, dim, i] : std::vector<std::tuple<Shape, L, int64_t, int64_t>>{
           {{3, 4, 5}, L::C, 1, 2}, {{3, 4}, L::T, -1, -1}, {{4, 3}, L::S, 0, 0}, {{1, 3}, L::C, 0, 0}})
    unary_case("select", "dim" + std::to_string(dim) + " [" + std::to_string(i) + "]", {{"dim", dim}, {"index", i}}, s, l,
               [dim, i](const Tensor& x) { return select(x, dim, i); });
  for (auto [s, l, dim] : std::vector<std::tuple<Shape, L, int64_t>>{
           {{3, 4}, L::C, 0}, {{3, 4}, L::T, -1}, {{3, 4}, L::S, 1}, {{}, L::C, 0}})
    unary_case("unsqueeze", "dim" + std::to_string(dim), {{"dim", dim}}, s, l, [dim](const Tensor& x) { return unsqueeze(x, dim); });
  for (auto [s, l, dim] : std::vector<std::tuple<Shape, L, int64_t>>{
           {{3, 1, 4}, L::C, 1}, {{4, 1}, L::T, 0}, {{2, 1}, L::S, -1}, {{3, 4}, L::C, 0}})
    unary_case("squeeze", "dim" + std::to_string(dim), {{"dim", dim}}, s, l, [dim](const Tensor& x) { return squeeze(x, dim); });
  for (auto [s, l, a, b] : std::vector<std::tuple<Shape, L, int64_t, int64_t>>{
           {{2, 3, 4}, L::C, 0, -1}, {{2, 3, 4}, L::T, 1, 2}, {{2, 3, 4}, L::S, 0, 1}, {{3, 1, 2}, L::C, -2, -1}})
    unary_case("flatten", std::to_string(a) + ".." + std::to_string(b), {{"start", a}, {"end", b}}, s, l,
               [a, b](const Tensor& x) { return flatten(x, a, b); });
  for (auto [s, l] : std::vector<std::pair<Shape, L>>{{{3, 4}, L::T}, {{2, 3, 4}, L::S}, {{3, 4}, L::C}})
    unary_case("contiguous", "", json::object(), s, l, [](const Tensor& x) { return contiguous(x); });
  for (auto [shapes, lays, dim] : std::vector<std::tuple<std::vector<Shape>, std::vector<L>, int64_t>>{
           {{{2, 3}, {1, 3}, {4, 3}}, {L::C, L::T, L::S}, 0},
           {{{2, 3, 1}, {2, 3, 4}}, {L::C, L::T}, -1},
           {{{3, 2}, {3, 5}}, {L::S, L::C}, 1},
           {{{4}}, {L::C}, 0}}) {
    std::string desc;
    for (size_t i = 0; i < shapes.size(); ++i) desc += sh(shapes[i]) + lay_name(lays[i]) + " ";
    add_case({"cat", "cat " + desc + "dim" + std::to_string(dim), {{"dim", dim}},
              [shapes, lays](Draw& d) {
                Inputs v;
                for (size_t i = 0; i < shapes.size(); ++i) v.push_back(d(shapes[i], D::Normal, lays[i]));
                return v;
              },
              [dim](const Inputs& x) { return cat(x, dim); }});
  }
  for (auto [s, n, lays, dim] : std::vector<std::tuple<Shape, int, std::vector<L>, int64_t>>{
           {{2, 3}, 3, {L::C, L::T, L::S}, 0}, {{2, 3}, 2, {L::T, L::C}, 1}, {{3, 1}, 2, {L::C, L::S}, -1}, {{}, 3, {L::C, L::C, L::C}, 0}}) {
    add_case({"stack", "stack " + std::to_string(n) + "x" + sh(s) + " dim" + std::to_string(dim), {{"dim", dim}},
              [s, n, lays](Draw& d) {
                Inputs v;
                for (int i = 0; i < n; ++i) v.push_back(d(s, D::Normal, lays[i]));
                return v;
              },
              [dim](const Inputs& x) { return stack(x, dim); }});
  }
  for (auto [s, l, dim, idx] : std::vector<std::tuple<Shape, L, int64_t, std::vector<int64_t>>>{
           {{5, 3}, L::C, 0, {2, 0, 2, 4}}, {{3, 4}, L::T, 1, {3, 1}}, {{2, 5, 3}, L::S, -2, {4, 4, 4, 0, 1}}, {{4, 2}, L::C, 0, {1}}}) {
    add_case({"index_select", "index_select " + sh(s) + lay_name(l) + " dim" + std::to_string(dim) + " " + json(idx).dump(),
              {{"dim", dim}}, [s, l, idx](Draw& d) { return Inputs{d(s, D::Normal, l), Tensor::from_vector(idx, {(int64_t)idx.size()})}; },
              [dim](const Inputs& x) { return index_select(x[0], dim, x[1]); }});
  }
  // -- Sinkhorn (unrolled iterations; the reference in torch runs the same recurrence with
  // autograd). Errors compound over iterations: float32 tolerance is looser.
  struct Sk {
    int64_t B, K1, K2;  // B = 0: unbatched marginals
    bool batched_cost, log_domain, plan;
    double eps;
    int iters;
    L lc;
  };
  for (const Sk& k : std::vector<Sk>{{0, 3, 4, false, false, true, 0.5, 5, L::C},
                                     {2, 3, 5, false, false, true, 0.3, 4, L::T},
                                     {2, 4, 3, true, false, true, 0.5, 3, L::S},
                                     {0, 1, 3, false, false, true, 1.0, 2, L::C},
                                     {2, 4, 3, true, true, true, 0.5, 3, L::C},
                                     {0, 3, 4, false, false, false, 0.5, 5, L::C},
                                     {3, 2, 5, true, false, false, 0.4, 4, L::T},
                                     {2, 3, 4, false, true, false, 0.5, 3, L::C}}) {
    std::string op = k.plan ? "sinkhorn_plan" : "sinkhorn_column_sums";
    Shape sa = k.B ? Shape{k.B, k.K1} : Shape{k.K1}, sb = k.B ? Shape{k.B, k.K2} : Shape{k.K2};
    Shape sc = k.batched_cost ? Shape{k.B, k.K1, k.K2} : Shape{k.K1, k.K2};
    SinkhornConfig cfg;
    cfg.epsilon = k.eps;
    cfg.iterations = k.iters;
    cfg.log_domain = k.log_domain;
    OpCase c{op,
             op + " a" + sh(sa) + " b" + sh(sb) + " cost" + sh(sc) + lay_name(k.lc) + " eps" + json(k.eps).dump() + " it" +
                 std::to_string(k.iters) + (k.log_domain ? " log" : ""),
             {{"epsilon", k.eps}, {"iterations", k.iters}, {"log_domain", k.log_domain}},
             [sa, sb, sc, k](Draw& d) { return Inputs{d(sa, D::Pos), d(sb, D::Pos), d(sc, D::Pos, k.lc)}; },
             [cfg, k](const Inputs& x) {
               return k.plan ? sinkhorn_plan(x[0], x[1], x[2], cfg) : sinkhorn_column_sums(x[0], x[1], x[2], cfg);
             }};
    c.f32 = Tol{1e-4, 1e-5};
    c.f64 = Tol{1e-8, 1e-11};
    add_case(c);
  }

  for (auto [s, l, to] : std::vector<std::tuple<Shape, L, Shape>>{
           {{2, 3, 4}, L::C, {3, 1}}, {{2, 3, 4}, L::T, {1, 4}}, {{3, 5}, L::S, {3, 5}}, {{4, 3}, L::C, {1}}})
    unary_case("sum_to", "->" + sh(to), {{"shape", to}}, s, l, [to](const Tensor& x) { return sum_to(x, to); });

  // ---- convolution and pooling (ops/conv2d.h; relu6 in ops/elementwise.h)
  struct Cv {
    int64_t N, Ci, H, W, Co, KH, KW, sh, sw, pt, pb, pl, pr, groups;
    bool bias;
    L lx;  // layout of x
  };
  for (const Cv& v : std::vector<Cv>{
           {2, 3, 4, 5, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, L::C},   // 1x1: one GEMM per image
           {1, 2, 5, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, L::C},   // 3x3 stride 1 pad 1
           {2, 3, 7, 5, 2, 3, 3, 2, 2, 0, 1, 0, 1, 1, false, L::C},  // 3x3 stride 2, TF "same" (0,1,0,1)
           {2, 4, 7, 5, 4, 3, 3, 2, 2, 1, 1, 1, 1, 4, true, L::C},   // depthwise 3x3 stride 2
           {1, 3, 9, 8, 3, 5, 5, 2, 2, 1, 2, 1, 2, 3, false, L::C},  // depthwise 5x5 stride 2, TF "same"
           {2, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 0, 0, 2, true, L::C},   // groups 2
           {2, 3, 6, 7, 2, 2, 3, 2, 1, 1, 0, 0, 2, 1, true, L::T},   // 2x3 kernel, x a transposed view
           {1, 4, 5, 3, 2, 1, 1, 2, 2, 0, 0, 0, 0, 1, false, L::S},  // 1x1 stride 2 (im2col path), strided x
       }) {
    Conv2dOptions o{v.sh, v.sw, v.pt, v.pb, v.pl, v.pr, v.groups};
    const Shape sx{v.N, v.Ci, v.H, v.W}, sw{v.Co, v.Ci / v.groups, v.KH, v.KW};
    OpCase c{"conv2d",
             "conv2d x" + sh(sx) + lay_name(v.lx) + " w" + sh(sw) + " s" + std::to_string(v.sh) + std::to_string(v.sw) +
                 " p" + json({v.pt, v.pb, v.pl, v.pr}).dump() + " g" + std::to_string(v.groups) + (v.bias ? " +b" : ""),
             {{"stride_h", v.sh}, {"stride_w", v.sw}, {"pad_top", v.pt}, {"pad_bottom", v.pb}, {"pad_left", v.pl},
              {"pad_right", v.pr}, {"groups", v.groups}},
             [v, sx, sw](Draw& d) {
               Inputs in{d(sx, D::Normal, v.lx), d(sw)};
               if (v.bias) in.push_back(d({v.Co}));
               return in;
             },
             [o](const Inputs& x) { return conv2d(x[0], x[1], x.size() > 2 ? x[2] : Tensor(), o); }};
    c.f32 = kMatmulF32;
    add_case(c);
  }
  for (const auto& [s, l] : ushapes)
    add_case({"relu6", "relu6 " + sh(s) + lay_name(l), json::object(), [s, l](Draw& d) { return Inputs{d(s, D::Relu6Safe, l)}; },
              [](const Inputs& x) { return relu6(x[0]); }});
  for (auto [s, l, oh, ow] : std::vector<std::tuple<Shape, L, int64_t, int64_t>>{
           {{2, 3, 7, 5}, L::C, 1, 1}, {{2, 3, 7, 5}, L::C, 3, 2}, {{1, 2, 5, 6}, L::T, 2, 4}, {{1, 2, 3, 4}, L::S, 5, 6}})
    unary_case("adaptive_avg_pool2d", "->" + std::to_string(oh) + "x" + std::to_string(ow), {{"out_h", oh}, {"out_w", ow}},
               s, l, [oh, ow](const Tensor& x) { return adaptive_avg_pool2d(x, oh, ow); });
  // ---- image resize and normalisation
  // resize_image: torch's F.interpolate(align_corners=False); downscales with antialias (the
  // 512 -> 448 / 256 -> 224 encoder inputs in small), upscales with clamped bicubic borders,
  // a non-antialiased downscale (pixels no output reads: zero gradient there), mixed up / down
  // axes, a size-1 axis, and non-contiguous inputs.
  struct Rs {
    Shape s;
    int64_t oh, ow;
    ResizeMode mode;
    bool aa;
    L l;
  };
  for (const Rs& r : std::vector<Rs>{{{2, 3, 13, 11}, 7, 6, ResizeMode::bilinear, true, L::C},
                                     {{2, 3, 5, 4}, 9, 7, ResizeMode::bilinear, false, L::C},
                                     {{2, 3, 13, 11}, 7, 6, ResizeMode::bicubic, true, L::C},
                                     {{2, 3, 5, 4}, 9, 7, ResizeMode::bicubic, false, L::C},
                                     {{2, 3, 13, 11}, 6, 4, ResizeMode::bilinear, false, L::T},
                                     {{2, 3, 13, 11}, 6, 5, ResizeMode::bicubic, false, L::C},
                                     {{1, 2, 5, 9}, 8, 4, ResizeMode::bilinear, true, L::S},
                                     {{1, 2, 6, 9}, 11, 4, ResizeMode::bicubic, true, L::T},
                                     {{1, 1, 1, 3}, 2, 5, ResizeMode::bicubic, false, L::C}}) {
    const char* mode = r.mode == ResizeMode::bilinear ? "bilinear" : "bicubic";
    OpCase c{"resize_image",
             "resize_image " + sh(r.s) + lay_name(r.l) + "->" + std::to_string(r.oh) + "x" + std::to_string(r.ow) + " " +
                 mode + (r.aa ? " aa" : ""),
             {{"size", {r.oh, r.ow}}, {"mode", mode}, {"antialias", r.aa}},
             [r](Draw& d) { return Inputs{d(r.s, D::Normal, r.l)}; },
             [r](const Inputs& x) { return resize_image(x[0], r.oh, r.ow, r.mode, r.aa); }};
    // Keys' cubic pieces cancel (W(1.8) = -3.024 + 3), so float32 bicubic weights carry ~2e-7
    // absolute rounding, which torch (its kernels built with FMA contraction) rounds otherwise:
    // on these N(0, 1) inputs torch's own float32 output is ~2e-6 from its float64 one.
    if (r.mode == ResizeMode::bicubic) c.f32 = Tol{1e-5, 1e-5};
    add_case(c);
  }
  // normalize_channels: (x - mean[c]) / std[c] with fixed per-channel constants (not inputs).
  for (auto [s, l, mean, sd] : std::vector<std::tuple<Shape, L, std::vector<double>, std::vector<double>>>{
           {{2, 3, 4, 5}, L::C, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}},
           {{1, 3, 3, 2}, L::T, {0.5, -0.25, 0.0}, {2.0, 0.5, 1.0}},
           {{2, 1, 2, 3}, L::S, {0.3}, {0.7}}})
    add_case({"normalize_channels", "normalize_channels " + sh(s) + lay_name(l), {{"mean", mean}, {"std", sd}},
              [s, l](Draw& d) { return Inputs{d(s, D::Normal, l)}; },
              [mean, sd](const Inputs& x) { return normalize_channels(x[0], mean, sd); }});

  return tab;
}

const std::vector<OpCase>& table() {
  static const std::vector<OpCase> t = build_table();
  return t;
}

// Every public op of ops/ops.h; the table must list each at least once.
const std::vector<std::string> kAllOps = {
    "add", "sub", "mul", "div", "eq", "add_scalar", "mul_scalar", "rsub", "neg", "exp", "log", "sqrt", "pow", "abs", "clamp",
    "relu", "sigmoid", "tanh", "gelu", "sum_to", "matmul", "linear", "sum", "mean", "amax", "max", "argmax", "logsumexp",
    "softmax", "log_softmax", "layer_norm", "linear_layer_norm", "linear_layer_norm_gelu", "scale_rows", "bilinear_rows", "l2_norm_clamped", "cross_entropy", "l2_normalize", "l1_normalize", "cosine_similarity_matrix",
    "scaled_dot_product_attention", "reshape", "permute", "transpose", "t", "expand", "slice", "select", "unsqueeze",
    "squeeze", "flatten", "contiguous", "cat", "stack", "index_select", "sinkhorn_plan", "sinkhorn_column_sums",
    "conv2d", "relu6", "adaptive_avg_pool2d",
    "resize_image", "normalize_channels"};

// ---- running a case -------------------------------------------------------------------------

uint64_t case_seed(const std::string& name) {  // FNV-1a: stable across runs and table edits
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

Inputs make_inputs(const OpCase& c, DType dt) {
  Generator g(case_seed(c.name));
  Draw d{g, dt};
  Inputs in = c.make(d);
  if (!c.forward_only)
    for (size_t i = 0; i < in.size(); ++i)
      if (is_floating(in[i].dtype()) && std::find(c.no_grad.begin(), c.no_grad.end(), (int)i) == c.no_grad.end())
        in[i].set_requires_grad(true);
  return in;
}

Tensor upstream_grad(const OpCase& c, const Shape& s, DType dt) {
  Generator g(case_seed(c.name) ^ 0x9e3779b97f4a7c15ull);
  return Tensor::randn(s, g, dt);
}

struct Run {
  Tensor out, R;
  std::vector<Tensor> grads;  // per input; undefined where the input needs no gradient
};

// Forward, then backward(out, R). Gradients that never arrived count as zeros.
Run run_case(const OpCase& c, const Inputs& in) {
  Run r;
  r.out = c.fn(in);
  r.grads.resize(in.size());
  if (c.forward_only) return r;
  r.R = upstream_grad(c, r.out.shape(), r.out.dtype()).to(r.out.device());
  backward(r.out, r.R);
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i].requires_grad())
      r.grads[i] = in[i].grad().defined() ? in[i].grad() : Tensor::zeros(in[i].shape(), in[i].dtype());
  return r;
}

struct Cmp {
  bool ok = true;
  double max_abs = 0, max_rel = 0;
  std::string detail;
};

// Elementwise |got - want| <= atol + rtol |want|; rel err = |got - want| / max(|want|, atol / rtol).
Cmp compare(const std::vector<double>& got, const std::vector<double>& want, Tol tol) {
  Cmp c;
  if (got.size() != want.size()) {
    c.ok = false;
    c.detail = "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
    c.max_rel = c.max_abs = std::numeric_limits<double>::infinity();
    return c;
  }
  int64_t worst = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    double a = got[i], b = want[i];
    double err;
    if (std::isnan(a) || std::isnan(b)) err = (std::isnan(a) && std::isnan(b)) ? 0 : std::numeric_limits<double>::infinity();
    else if (std::isinf(a) || std::isinf(b)) err = a == b ? 0 : std::numeric_limits<double>::infinity();
    else err = std::abs(a - b);
    double rel = err / std::max(std::abs(b), tol.atol / tol.rtol);
    if (!(err <= tol.atol + tol.rtol * (std::isfinite(b) ? std::abs(b) : 0.0)) && err != 0) c.ok = false;
    c.max_abs = std::max(c.max_abs, err);
    if (rel > c.max_rel || worst < 0) {
      c.max_rel = std::max(c.max_rel, rel);
      worst = (int64_t)i;
    }
  }
  if (worst >= 0) {
    std::ostringstream ss;
    ss.precision(17);
    ss << "max abs err " << c.max_abs << ", max rel err " << c.max_rel << " (rtol " << tol.rtol << ", atol " << tol.atol
       << "); worst element " << worst << ": got " << got[worst] << " want " << want[worst];
    c.detail = ss.str();
  }
  return c;
}

// ---- raw tensor files for the Python reference ----------------------------------------------

const char* file_dtype(DType t) { return dtype_name(t); }  // float32 / float64 / int64

void write_bin(const std::filesystem::path& p, const Tensor& t) {
  Tensor c = t.detach().contiguous();
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(c.raw_data()), (std::streamsize)c.nbytes());
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::vector<double> read_bin(const std::filesystem::path& p, const std::string& dtype) {
  std::string raw = test::read_text(p);
  std::vector<double> v;
  if (dtype == "float32") {
    std::vector<float> f(raw.size() / 4);
    std::memcpy(f.data(), raw.data(), f.size() * 4);
    v.assign(f.begin(), f.end());
  } else if (dtype == "float64") {
    v.resize(raw.size() / 8);
    std::memcpy(v.data(), raw.data(), v.size() * 8);
  } else if (dtype == "int64") {
    std::vector<int64_t> f(raw.size() / 8);
    std::memcpy(f.data(), raw.data(), f.size() * 8);
    v.assign(f.begin(), f.end());
  } else {
    throw std::runtime_error("read_bin: unknown dtype " + dtype);
  }
  return v;
}

// A copy on `dev` with the same strides and offset (the whole storage is moved), so
// non-contiguous inputs stay non-contiguous on the device.
Tensor to_device_same_layout(const Tensor& x, Device dev) {
  auto st = x.impl().storage;
  int64_t n = (int64_t)(st->nbytes() / dtype_size(x.dtype()));
  Tensor flat = Tensor::from_storage(st, {n}, x.dtype(), 0).to(dev);
  return flat.as_strided(x.shape(), x.strides(), x.offset());
}

// ---- summary ----------------------------------------------------------------------------------

struct OpStats {
  int cases = 0, failures = 0;
  double gc = -1;                                  // gradcheck max rel err (-1: not run)
  double f64_fwd = -1, f64_bwd = -1, f32_fwd = -1, f32_bwd = -1;
  double cuda = -1;
};

std::string fmt_err(double e) {
  if (e < 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1e", e);
  return b;
}

}  // namespace

TEST_CASE("op table: every op of ops/ops.h (gradcheck, vs PyTorch f32/f64, CUDA vs CPU)") {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  const auto& tab = table();
  std::map<std::string, OpStats> stats;
  std::vector<std::string> order;
  auto stat = [&](const std::string& op) -> OpStats& {
    if (!stats.count(op)) order.push_back(op);
    return stats[op];
  };

  // The table covers every op, and case names are unique (they key the fixtures).
  {
    std::set<std::string> ops, names;
    for (const OpCase& c : tab) {
      ops.insert(c.op);
      CHECK_MESSAGE(names.insert(c.name).second, "duplicate case name " << c.name);
      stat(c.op).cases++;
    }
    for (const std::string& op : kAllOps) CHECK_MESSAGE(ops.count(op) == 1, "op table has no case for " << op);
    for (const std::string& op : ops)
      CHECK_MESSAGE(std::find(kAllOps.begin(), kAllOps.end(), op) != kAllOps.end(), "unknown op " << op);
  }

  // (a) float64 central differences.
  int gc_cases = 0;
  for (const OpCase& c : tab) {
    if (c.forward_only || c.skip_gradcheck) continue;
    Inputs in = make_inputs(c, DType::F64);
    autograd::GradcheckResult r;
    try {
      r = autograd::gradcheck(c.fn, in);
    } catch (const std::exception& e) {
      r.ok = false;
      r.max_rel_err = std::numeric_limits<double>::infinity();
      r.message = std::string("threw: ") + e.what();
    }
    ++gc_cases;
    CHECK_MESSAGE(r.ok, "gradcheck " << c.name << ": " << r.message);
    if (!r.ok) stat(c.op).failures++;
    stat(c.op).gc = std::max(stat(c.op).gc, r.max_rel_err);
  }
  auto t1 = clock::now();

  // (b) against PyTorch: write inputs and R for float32 and float64, run the script once.
  auto dir = test::scratch_dir("op_table");
  json index = {{"cases", json::array()}};
  struct Pending {
    const OpCase* c;
    DType dt;
    std::string key;
    Run run;
    Inputs in;
    std::string error;
  };
  std::vector<Pending> pend;
  for (size_t k = 0; k < tab.size(); ++k) {
    const OpCase& c = tab[k];
    for (DType dt : {DType::F32, DType::F64}) {
      Pending p{&c, dt, "c" + std::to_string(k) + "_" + dtype_name(dt), {}, {}, {}};
      try {
        p.in = make_inputs(c, dt);
        p.run = run_case(c, p.in);
        json e = {{"key", p.key}, {"op", c.op}, {"params", c.params}, {"name", c.name}, {"inputs", json::array()}};
        for (size_t i = 0; i < p.in.size(); ++i) {
          std::string f = p.key + ".in" + std::to_string(i) + ".bin";
          write_bin(dir / f, p.in[i]);
          e["inputs"].push_back({{"file", f}, {"dtype", file_dtype(p.in[i].dtype())}, {"shape", p.in[i].shape()},
                                 {"grad", p.in[i].requires_grad()}});
        }
        if (c.forward_only) {
          e["grad_out"] = nullptr;
        } else {
          std::string f = p.key + ".R.bin";
          write_bin(dir / f, p.run.R);
          e["grad_out"] = {{"file", f}, {"dtype", file_dtype(p.run.R.dtype())}, {"shape", p.run.R.shape()}};
        }
        index["cases"].push_back(e);
      } catch (const std::exception& ex) {
        p.error = ex.what();
      }
      pend.push_back(std::move(p));
    }
  }
  {
    std::ofstream f(dir / "index.json");
    f << index.dump(1);
  }
  auto t1b = clock::now();
  json results;
  bool have_torch = false;
  try {
    test::run_python_tool("op_table_reference.py", dir.string());
    results = json::parse(test::read_text(dir / "results.json"));
    have_torch = true;
  } catch (const std::exception& e) {
    FAIL_CHECK("op table: the PyTorch reference did not run: " << std::string(e.what()));
  }
  auto t2 = clock::now();
  int torch_checked = 0;
  for (Pending& p : pend) {
    const OpCase& c = *p.c;
    OpStats& s = stat(c.op);
    bool f64 = p.dt == DType::F64;
    Tol tol = f64 ? c.f64 : c.f32;
    if (!p.error.empty()) {
      FAIL_CHECK(c.name << " [" << std::string(dtype_name(p.dt)) << "]: libramil threw: " << p.error);
      s.failures++;
      continue;
    }
    if (!have_torch) continue;
    const json& r = results[p.key];
    if (r.is_null() || !r["error"].is_null()) {
      FAIL_CHECK(c.name << " [" << std::string(dtype_name(p.dt)) << "]: the torch reference failed: " << (r.is_null() ? "no result" : r["error"].get<std::string>()));
      s.failures++;
      continue;
    }
    ++torch_checked;
    bool case_ok = true;
    Shape tshape = r["out_shape"].get<Shape>();
    CHECK_MESSAGE(tshape == p.run.out.shape(), c.name << ": output shape " << shape_str(p.run.out.shape()) << ", torch " << shape_str(tshape));
    case_ok = case_ok && tshape == p.run.out.shape();
    std::string odt = r["out_dtype"].get<std::string>();
    Cmp fw = compare(p.run.out.to_double_vector(), read_bin(dir / (p.key + ".out.bin"), odt), tol);
    CHECK_MESSAGE(fw.ok, c.name << " [" << std::string(dtype_name(p.dt)) << "] forward vs torch: " << fw.detail);
    case_ok = case_ok && fw.ok;
    double& fs = f64 ? s.f64_fwd : s.f32_fwd;
    fs = std::max(fs, fw.max_rel);
    for (size_t i = 0; i < p.in.size(); ++i) {
      if (!p.run.grads[i].defined()) continue;
      Cmp bw = compare(p.run.grads[i].to_double_vector(),
                       read_bin(dir / (p.key + ".gin" + std::to_string(i) + ".bin"), file_dtype(p.dt)), tol);
      CHECK_MESSAGE(bw.ok, c.name << " [" << std::string(dtype_name(p.dt)) << "] grad of input " << i << " vs torch: " << bw.detail);
      case_ok = case_ok && bw.ok;
      double& bs = f64 ? s.f64_bwd : s.f32_bwd;
      bs = std::max(bs, bw.max_rel);
    }
    if (!case_ok) s.failures++;
  }
  auto t3 = clock::now();

  // (c) CUDA against CPU (float32), when a GPU is present.
  const DeviceHooks* hooks = device_hooks(DeviceType::CUDA);
  bool gpu = hooks && hooks->device_count && hooks->device_count() > 0;
  int cuda_cases = 0, cuda_skipped = 0;
  for (const OpCase& c : tab) {
    if (!gpu) {
      ++cuda_skipped;
      continue;
    }
    ++cuda_cases;
    OpStats& s = stat(c.op);
    try {
      Inputs cpu_in = make_inputs(c, DType::F32);
      Run ref = run_case(c, cpu_in);
      Inputs gin;
      for (size_t i = 0; i < cpu_in.size(); ++i) {
        Tensor g = to_device_same_layout(cpu_in[i].detach(), Device::cuda(0));
        if (cpu_in[i].requires_grad()) g.set_requires_grad(true);
        gin.push_back(g);
      }
      Run got;
      got.out = c.fn(gin);
      got.grads.resize(gin.size());
      if (!c.forward_only) {
        backward(got.out, ref.R.to(Device::cuda(0)));
        for (size_t i = 0; i < gin.size(); ++i)
          if (gin[i].requires_grad()) got.grads[i] = gin[i].grad();
      }
      CHECK_MESSAGE(got.out.device().is_cuda(), c.name << ": CUDA output lives on " << got.out.device().str());
      Tol tol{std::max(1e-5, c.f32.rtol), std::max(1e-6, c.f32.atol)};
      Cmp fw = compare(got.out.to_double_vector(), ref.out.to_double_vector(), tol);
      CHECK_MESSAGE(fw.ok, c.name << " CUDA vs CPU forward: " << fw.detail);
      double worst = fw.max_rel;
      bool ok = fw.ok;
      for (size_t i = 0; i < gin.size(); ++i) {
        if (!ref.grads[i].defined()) continue;
        CHECK_MESSAGE(got.grads[i].defined(), c.name << " CUDA: no gradient for input " << i);
        if (!got.grads[i].defined()) { ok = false; continue; }
        Cmp bw = compare(got.grads[i].to_double_vector(), ref.grads[i].to_double_vector(), tol);
        CHECK_MESSAGE(bw.ok, c.name << " CUDA vs CPU grad of input " << i << ": " << bw.detail);
        ok = ok && bw.ok;
        worst = std::max(worst, bw.max_rel);
      }
      if (!ok) s.failures++;
      s.cuda = std::max(s.cuda, worst);
    } catch (const std::exception& e) {
      FAIL_CHECK(c.name << " on CUDA threw: " << std::string(e.what()));
      s.failures++;
    }
  }
  if (!gpu) MESSAGE("op table: " << cuda_skipped << " CUDA cases skipped (no GPU)");
  auto t4 = clock::now();

  // Summary.
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::ostringstream ss;
  char line[256];
  std::snprintf(line, sizeof line, "%-30s %5s %9s %9s %9s %9s %9s %9s %5s\n", "op", "cases", "gradchk", "f64 fwd",
                "f64 bwd", "f32 fwd", "f32 bwd", "cuda", "fail");
  ss << "\nop table summary (max rel err = |got - want| / max(|want|, atol/rtol); '-' = not run)\n" << line;
  int total = 0, failed = 0;
  for (const std::string& op : order) {
    const OpStats& s = stats[op];
    std::snprintf(line, sizeof line, "%-30s %5d %9s %9s %9s %9s %9s %9s %5d\n", op.c_str(), s.cases, fmt_err(s.gc).c_str(),
                  fmt_err(s.f64_fwd).c_str(), fmt_err(s.f64_bwd).c_str(), fmt_err(s.f32_fwd).c_str(), fmt_err(s.f32_bwd).c_str(),
                  gpu ? fmt_err(s.cuda).c_str() : "skipped", s.failures);
    ss << line;
    total += s.cases;
    failed += s.failures;
  }
  ss << order.size() << " ops, " << total << " cases: " << gc_cases << " gradchecks, " << torch_checked
     << " torch comparisons (f32 + f64), " << cuda_cases << " CUDA comparisons, " << cuda_skipped << " CUDA skipped; "
     << failed << " failing checks.\n";
  std::snprintf(line, sizeof line, "time: gradcheck %.1fs, run + write %.1fs, torch %.1fs, compare %.1fs, cuda %.1fs\n",
                secs(t0, t1), secs(t1, t1b), secs(t1b, t2), secs(t2, t3), secs(t3, t4));
  ss << line;
  MESSAGE(ss.str());
}

// ---- autograd engine ----------------------------------------------------------------------------

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

TEST_CASE("autograd: gradients added into a running sum by the ops themselves (matmul, l2_norm_clamped)") {
  // V feeds four ops whose backwards can add into V's running gradient sum (GEMM with
  // beta = 1, the row-norm backward): as left and right matmul operand, through a transposed
  // product, and l2_norm_clamped; float64 central differences check the total.
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
