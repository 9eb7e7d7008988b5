// The op table's rows (see op_table_cases.h): every op of ops/ops.h with several cases each
// (odd sizes, size-1 dims, broadcasting, non-contiguous inputs).
#include "tests/op_table_cases.h"

#include <cmath>
#include <limits>

// Rows are aggregate-initialised with only the leading fields; the rest keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace lm::test::op_table {

namespace {


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

  // -- weighted_attention_pool: (softmax_n(keys^T * w * scale) * w) V; keys strided / transposed as
  // the columns of a wider product, w of either sign (literal fusion), N = 1
  for (auto [n, r, d_, lk, lv] : std::vector<std::tuple<int64_t, int64_t, int64_t, L, L>>{
           {5, 3, 4, L::C, L::C}, {1, 2, 3, L::C, L::C}, {6, 1, 5, L::S, L::C}, {4, 3, 2, L::T, L::T}, {7, 4, 3, L::S, L::S}}) {
    OpCase c{"weighted_attention_pool",
             "weighted_attention_pool keys" + sh({n, r}) + lay_name(lk) + " V" + sh({n, d_}) + lay_name(lv), {{"scale", 0.7}},
             [n, r, d_, lk, lv](Draw& d) { return Inputs{d({n, r}, D::Normal, lk), d({n}), d({n, d_}, D::Normal, lv)}; },
             [](const Inputs& x) { return weighted_attention_pool(x[0], x[1], x[2], 0.7); }};
    c.f32 = kMatmulF32;
    add_case(c);
  }

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
    SinkhornOptions cfg;
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

  add_image_cases(tab);  // op_table_image_cases.cpp
  return tab;
}


}  // namespace

const std::vector<OpCase>& table() {
  static const std::vector<OpCase> t = build_table();
  return t;
}

// Every public op of ops/ops.h; the table must list each at least once.
extern const std::vector<std::string> kAllOps;
const std::vector<std::string> kAllOps = {
    "add", "sub", "mul", "div", "eq", "add_scalar", "mul_scalar", "rsub", "neg", "exp", "log", "sqrt", "pow", "abs", "clamp",
    "relu", "sigmoid", "tanh", "gelu", "sum_to", "matmul", "linear", "sum", "mean", "amax", "max", "argmax", "logsumexp",
    "softmax", "log_softmax", "layer_norm", "linear_layer_norm", "linear_layer_norm_gelu", "scale_rows", "bilinear_rows", "weighted_attention_pool", "l2_norm_clamped", "cross_entropy", "l2_normalize", "l1_normalize", "cosine_similarity_matrix",
    "scaled_dot_product_attention", "reshape", "permute", "transpose", "t", "expand", "slice", "select", "unsqueeze",
    "squeeze", "flatten", "contiguous", "cat", "stack", "index_select", "sinkhorn_plan", "sinkhorn_column_sums",
    "conv2d", "relu6", "adaptive_avg_pool2d", "resize_image", "normalize_channels"};

}  // namespace lm::test::op_table
