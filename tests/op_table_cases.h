// The op table's rows (test_op_table.cpp runs them): the input generator (value
// distributions and layouts: contiguous, transposed, strided views) and one OpCase per case,
// naming the ops.h function, its parameters for tools/op_table_reference.py and its tolerances.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace lm::test::op_table {

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


// Case names: a shape as "(2, 3)" and a layout's suffix ("", "T", "S").
inline std::string sh(const Shape& s) { return shape_str(s); }
inline const char* lay_name(Lay l) { return l == Lay::C ? "" : (l == Lay::T ? "T" : "S"); }

// The image rows (op_table_image_cases.cpp), appended to `tab`.
void add_image_cases(std::vector<OpCase>& tab);

// The table, built once; and every public op of ops/ops.h (the table must list each).
const std::vector<OpCase>& table();
extern const std::vector<std::string> kAllOps;

}  // namespace lm::test::op_table
