// weighted_attention_pool (ops/attention_pool.h) at the sizes the op table does not reach: bags of
// thousands of instances (several 256-instance blocks, a partial last block, the OpenMP passes),
// 24 queries and keys read as a strided slice of a wider product, as Libra-MIL's step 8 does.
// - forward, attention and the gradients of keys, w and V against the same function composed of
//   separate ops (each checked against PyTorch by the op table) in float64;
// - the same bits for 1, 2 and 3 threads;
// - V's gradient added into a running sum when V feeds another op too;
// - the forward without autograd gives the same bits;
// - bad shapes give one clear error naming the op.
// The small cases (gradcheck and PyTorch, float32 and float64) are in the op table.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ops/ops.h"

namespace {

using namespace lm;

// max |got - want| / max |want|.
double max_rel(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  const auto a = got.to_double_vector(), b = want.to_double_vector();
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale > 0 ? err / scale : err;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const auto x = a.to_float_vector(), y = b.to_float_vector();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

// The inputs of one case: `wide` (N, 80) whose last R columns are the keys, w, V and the
// upstream gradient G (R, D).
struct Case {
  int64_t N, R, D;
  bool signed_w;  // w of either sign (the literal fusion) instead of softmax-like positive weights
};

struct Result {
  Tensor out, attention, g_wide, g_w, g_v;
};

// Runs the op (or the composed form) on copies of the inputs, with loss sum(out * G) plus, when
// `v_twice`, sum(V X) so that V's gradient has a running sum before the op's backward adds to it.
Result run(const Case& c, const std::vector<Tensor>& in, DType dt, bool composed, bool v_twice, int threads) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(threads);
  Tensor wide = in[0].to(dt).clone(), w = in[1].to(dt).clone(), V = in[2].to(dt).clone();
  for (Tensor* x : {&wide, &w, &V}) x->set_requires_grad(true);
  const double scale = 1.0 / std::sqrt(64.0);
  Tensor keys = slice(wide, 1, 80 - c.R, 80);  // (N, R), row stride 80
  Result r;
  if (composed) {
    Tensor wrow = unsqueeze(w, 0);
    r.attention = softmax(mul(t(keys), mul(wrow, scale)), -1);
    r.out = matmul(mul(r.attention, wrow), V);
  } else {
    r.out = weighted_attention_pool(keys, w, V, scale, &r.attention);
  }
  Tensor loss = sum(mul(r.out, in[3].to(dt)));
  if (v_twice) loss = add(loss, sum(matmul(V, in[4].to(dt))));
  backward(loss);
  omp_set_num_threads(prev);
  r.g_wide = wide.grad();
  r.g_w = w.grad();
  r.g_v = V.grad();
  r.attention = r.attention.detach();
  return r;
}

// A run's five results with their names, in one order for the checks below.
std::vector<std::pair<const char*, Tensor>> named(const Result& r) {
  return {{"out", r.out}, {"attention", r.attention}, {"keys' gradient", r.g_wide}, {"w's gradient", r.g_w},
          {"V's gradient", r.g_v}};
}

// Each result of `got` within tol[i] of `want`'s (max_rel), in named()'s order.
void check_close(const Result& got, const Result& want, const std::array<double, 5>& tol) {
  const auto g = named(got), w = named(want);
  for (size_t i = 0; i < g.size(); ++i) {
    INFO(g[i].first);
    CHECK(max_rel(g[i].second, w[i].second) < tol[i]);
  }
}

void check_same_bits(const Result& a, const Result& b) {
  const auto x = named(a), y = named(b);
  for (size_t i = 0; i < x.size(); ++i) {
    INFO(x[i].first);
    CHECK(same_bits(x[i].second, y[i].second));
  }
}

std::vector<Tensor> inputs(const Case& c, uint64_t seed) {
  Generator g(seed);
  Tensor wide = Tensor::randn({c.N, 80}, g, DType::F64);
  Tensor w = c.signed_w ? Tensor::randn({c.N}, g, DType::F64) : Tensor::uniform({c.N}, 0.2, 2.0, g, DType::F64);
  return {wide, w, Tensor::randn({c.N, c.D}, g, DType::F64), Tensor::randn({c.R, c.D}, g, DType::F64),
          Tensor::randn({c.D, 3}, g, DType::F64)};
}

}  // namespace

TEST_CASE("weighted_attention_pool: large bags against the composed ops in float64, any thread count the same bits") {
  for (const Case c : {Case{2000, 24, 40, false}, Case{4099, 24, 16, true}, Case{700, 5, 33, false}}) {
    INFO("N=" << c.N << " R=" << c.R << " D=" << c.D << " signed w=" << c.signed_w);
    const auto in = inputs(c, 7 + c.N);
    for (bool v_twice : {false, true}) {
      INFO("V also in a second product: " << v_twice);
      const Result ref = run(c, in, DType::F64, true, v_twice, 2);
      const Result f64 = run(c, in, DType::F64, false, v_twice, 2);
      check_close(f64, ref, {1e-12, 1e-12, 1e-12, 1e-12, 1e-12});
      // The columns of `wide` outside the keys get no gradient from the op.
      const auto gw = f64.g_wide.to_double_vector();
      double outside = 0;
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t j = 0; j < 80 - c.R; ++j) outside = std::max(outside, std::abs(gw[n * 80 + j]));
      CHECK(outside == 0.0);

      const Result f32 = run(c, in, DType::F32, false, v_twice, 2);
      check_close(f32, ref, {1e-5, 1e-5, 1e-4, 1e-4, 1e-5});
      {  // without autograd (nothing kept for a backward): the same forward bits
        NoGradGuard no_grad;
        Tensor keys = slice(in[0].to(DType::F32), 1, 80 - c.R, 80);
        Tensor attention;
        Tensor out = weighted_attention_pool(keys, in[1].to(DType::F32), in[2].to(DType::F32), 1.0 / std::sqrt(64.0),
                                             &attention);
        CHECK(same_bits(out, f32.out));
        CHECK(same_bits(attention, f32.attention));
      }
      for (int threads : {1, 3}) {
        INFO("threads=" << threads);
        check_same_bits(run(c, in, DType::F32, false, v_twice, threads), f32);
      }
    }
  }
}

TEST_CASE("weighted_attention_pool: bad shapes give one clear error") {
  Generator g(3);
  Tensor keys = Tensor::randn({6, 4}, g, DType::F32), w = Tensor::randn({6}, g, DType::F32),
         V = Tensor::randn({6, 5}, g, DType::F32);
  auto message = [](auto f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string counts = message([&] { weighted_attention_pool(keys, w, slice(V, 0, 0, 5), 1.0); });
  CHECK(counts.find("weighted_attention_pool") != std::string::npos);
  CHECK(counts.find("instance counts differ") != std::string::npos);
  CHECK(message([&] { weighted_attention_pool(keys, unsqueeze(w, 1), V, 1.0); }).find("weighted_attention_pool") !=
        std::string::npos);
  CHECK(message([&] { weighted_attention_pool(keys, w, V.to(DType::F64), 1.0); }).find("weighted_attention_pool") !=
        std::string::npos);
}
