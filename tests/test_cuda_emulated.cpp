// The CUDA Sinkhorn kernels (cuda/sinkhorn_kernels.cuh: plain and log domain, forward and
// backward, shared and batched cost) run on the CPU through tests/cuda_emulator.h and compared
// with the CPU kernels (ops/cpu/sinkhorn.h), which test_sinkhorn_kernels checks against PyTorch
// autograd, POT and finite differences. Runs everywhere, GPU or not: it checks the kernels'
// logic (indexing, barriers, the recurrences, grid-stride over problems, the per-block partial
// cost gradients and their reduction). Whether they compile and run on a device is the op
// table's CUDA column and tools/gpu_check.sh.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/sinkhorn.h"
// Last: the emulator defines __device__, __shared__, ... as macros for what follows.
#include "tests/cuda_emulator.h"
#include "cuda/sinkhorn_kernels.cuh"

namespace {

namespace sk = lm::cuda::sinkhorn_kernels;

struct Problem {
  int64_t B, K1, K2;
  bool shared;
  double eps;
  int iters;
  double tol = 0.0;
  bool stab = false;
  bool zeros = false;  // a zero in a and in b
};

template <class T>
struct Data {
  std::vector<T> a, b, cost;
};

template <class T>
Data<T> make(const Problem& p, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.05, 1.0);
  Data<T> d;
  d.a.resize(p.B * p.K1);
  d.b.resize(p.B * p.K2);
  d.cost.resize((p.shared ? 1 : p.B) * p.K1 * p.K2);
  for (int64_t q = 0; q < p.B; ++q) {  // marginals summing to 1
    double sa = 0, sb = 0;
    for (int64_t i = 0; i < p.K1; ++i) sa += d.a[q * p.K1 + i] = static_cast<T>(u(rng));
    for (int64_t j = 0; j < p.K2; ++j) sb += d.b[q * p.K2 + j] = static_cast<T>(u(rng));
    if (p.zeros) {
      sa -= d.a[q * p.K1 + 1];
      d.a[q * p.K1 + 1] = 0;
      sb -= d.b[q * p.K2];
      d.b[q * p.K2] = 0;
    }
    for (int64_t i = 0; i < p.K1; ++i) d.a[q * p.K1 + i] = static_cast<T>(d.a[q * p.K1 + i] / sa);
    for (int64_t j = 0; j < p.K2; ++j) d.b[q * p.K2 + j] = static_cast<T>(d.b[q * p.K2 + j] / sb);
  }
  for (auto& c : d.cost) c = static_cast<T>(u(rng));
  return d;
}

template <class T>
std::vector<T> random_vec(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(rng));
  return v;
}

// max |x - y| / (|y| + 1) over entries; +inf where exactly one is non-finite or they differ in
// non-finite value.
template <class T>
double max_err(const std::vector<T>& x, const std::vector<T>& y) {
  REQUIRE(x.size() == y.size());
  double e = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    const double a = x[k], b = y[k];
    if (!std::isfinite(a) || !std::isfinite(b)) {
      if (!(a == b || (std::isnan(a) && std::isnan(b)))) return std::numeric_limits<double>::infinity();
      continue;
    }
    e = std::max(e, std::abs(a - b) / (std::abs(b) + 1.0));
  }
  return e;
}

lm::cpu::SinkhornOptions cpu_options(const Problem& p) {
  lm::cpu::SinkhornOptions o;
  o.epsilon = p.eps;
  o.iterations = p.iters;
  o.tol = p.tol;
  o.log_domain_stabiliser = p.stab;
  return o;
}

constexpr unsigned kThreads = 32;  // < K1 of most cases: the strided loops run more than once

// Forward: plan, row and column sums, final scaling vectors / potentials, iterations.
template <class T>
void check_forward(const Problem& p, bool log_domain, unsigned grid, double tol) {
  const Data<T> d = make<T>(p, 7);
  const int64_t KK = p.K1 * p.K2;
  std::vector<T> plan(p.B * KK), cols(p.B * p.K2), rows(p.B * p.K1), x(p.B * p.K1), y(p.B * p.K2);
  std::vector<int32_t> its(p.B);
  auto rplan = plan, rcols = cols, rrows = rows, rx = x, ry = y;
  std::vector<int32_t> rits(p.B);
  const auto o = cpu_options(p);
  if (log_domain) {
    lm::cpu::sinkhorn_log_forward<T>(d.a.data(), d.b.data(), d.cost.data(), p.B, p.K1, p.K2, p.shared, o, rx.data(),
                                     ry.data(), rplan.data(), rcols.data(), rrows.data(), rits.data());
    const size_t smem = (KK + 3 * p.K1 + 3 * p.K2) * sizeof(T);
    emu::launch(grid, kThreads, smem, [&] {
      sk::sinkhorn_log_forward_kernel<T>(d.a.data(), d.b.data(), d.cost.data(), p.B, p.K1, p.K2, p.shared,
                                         static_cast<T>(p.eps), p.iters, p.tol, p.stab, x.data(), y.data(),
                                         plan.data(), cols.data(), rows.data(), its.data());
    });
  } else {
    lm::cpu::sinkhorn_forward<T>(d.a.data(), d.b.data(), d.cost.data(), p.B, p.K1, p.K2, p.shared, o, rx.data(),
                                 ry.data(), rplan.data(), rcols.data(), rrows.data(), rits.data());
    const size_t smem = (KK + 2 * p.K1 + 2 * p.K2) * sizeof(T);
    emu::launch(grid, kThreads, smem, [&] {
      sk::sinkhorn_forward_kernel<T>(d.a.data(), d.b.data(), d.cost.data(), p.B, p.K1, p.K2, p.shared,
                                     static_cast<T>(p.eps), p.iters, p.tol, x.data(), y.data(), plan.data(),
                                     cols.data(), rows.data(), its.data());
    });
  }
  CHECK(its == rits);
  const double e = std::max({max_err(plan, rplan), max_err(cols, rcols), max_err(rows, rrows), max_err(x, rx),
                             max_err(y, ry)});
  INFO("forward max rel err " << e);
  CHECK(e < tol);
}

// Backward: gradients of a, b, cost for random upstream gradients of plan, sums and the final
// vectors; the shared cost through per-block partials and the reduction kernel.
template <class T>
void check_backward(const Problem& p, bool log_domain, unsigned grid, double tol) {
  const Data<T> d = make<T>(p, 11);
  const int64_t KK = p.K1 * p.K2;
  const auto gP = random_vec<T>(p.B * KK, 1), gcs = random_vec<T>(p.B * p.K2, 2), grs = random_vec<T>(p.B * p.K1, 3);
  // Upstream gradients of the final f (log) are zero where a is zero: there d f / d a is
  // infinite in both kernels (tested on the CPU side; here the finite parts are compared).
  auto gx = random_vec<T>(p.B * p.K1, 4), gy = random_vec<T>(p.B * p.K2, 5);
  for (int64_t q = 0; q < p.B; ++q) {
    for (int64_t i = 0; i < p.K1; ++i)
      if (d.a[q * p.K1 + i] == 0) gx[q * p.K1 + i] = 0;
    for (int64_t j = 0; j < p.K2; ++j)
      if (d.b[q * p.K2 + j] == 0) gy[q * p.K2 + j] = 0;
  }
  std::vector<T> ga(p.B * p.K1), gb(p.B * p.K2), gc((p.shared ? 1 : p.B) * KK);
  auto rga = ga, rgb = gb, rgc = gc;
  const auto o = cpu_options(p);
  if (log_domain)
    lm::cpu::sinkhorn_log_backward<T>(d.a.data(), d.b.data(), d.cost.data(), p.B, p.K1, p.K2, p.shared, o, gP.data(),
                                      gcs.data(), grs.data(), gx.data(), gy.data(), rga.data(), rgb.data(),
                                      rgc.data());
  else
    lm::cpu::sinkhorn_backward<T>(d.a.data(), d.b.data(), d.cost.data(), p.B, p.K1, p.K2, p.shared, o, gP.data(),
                                  gcs.data(), grs.data(), gx.data(), gy.data(), rga.data(), rgb.data(), rgc.data());
  const int64_t it = std::max(p.iters, 1);
  std::vector<T> work(grid * it * (p.K1 + p.K2)), partials(p.shared ? grid * KK : 0);
  // Poison the outputs: every entry must be written.
  std::fill(ga.begin(), ga.end(), std::numeric_limits<T>::quiet_NaN());
  std::fill(gb.begin(), gb.end(), std::numeric_limits<T>::quiet_NaN());
  std::fill(gc.begin(), gc.end(), std::numeric_limits<T>::quiet_NaN());
  const T eps = static_cast<T>(p.eps);
  if (log_domain) {
    const size_t smem = (2 * KK + 5 * p.K1 + 6 * p.K2) * sizeof(T);
    emu::launch(grid, kThreads, smem, [&] {
      sk::sinkhorn_log_backward_kernel<T>(d.a.data(), d.b.data(), d.cost.data(), p.B, p.K1, p.K2, p.shared, eps,
                                          p.iters, p.tol, p.stab, gP.data(), gcs.data(), grs.data(), gx.data(),
                                          gy.data(), ga.data(), gb.data(), gc.data(), work.data(), partials.data());
    });
    if (p.shared)
      emu::launch(static_cast<unsigned>((KK + 63) / 64), 64, 0, [&] {
        sk::sinkhorn_log_reduce_cost_grad_kernel<T>(partials.data(), grid, KK, gc.data());
      });
  } else {
    const size_t smem = (2 * KK + 6 * p.K1 + 6 * p.K2) * sizeof(T);
    emu::launch(grid, kThreads, smem, [&] {
      sk::sinkhorn_backward_kernel<T>(d.a.data(), d.b.data(), d.cost.data(), p.B, p.K1, p.K2, p.shared, eps, p.iters,
                                      p.tol, gP.data(), gcs.data(), grs.data(), gx.data(), gy.data(), ga.data(),
                                      gb.data(), gc.data(), work.data(), partials.data());
    });
    if (p.shared)
      emu::launch(static_cast<unsigned>((KK + 63) / 64), 64, 0, [&] {
        sk::sinkhorn_reduce_cost_grad_kernel<T>(partials.data(), grid, KK, d.cost.data(), eps, gc.data());
      });
  }
  const double e = std::max({max_err(ga, rga), max_err(gb, rgb), max_err(gc, rgc)});
  INFO("backward max rel err " << e);
  CHECK(e < tol);
}

// Libra-MIL's shape (Kt = 46, Kv = 10), K = 1 edges, a non-square batch; grid < B so blocks
// take several problems (grid-stride) and the shared-cost gradient has several partials.
const std::vector<Problem> kProblems = {
    {5, 46, 10, true, 0.1, 20},  {4, 46, 10, false, 0.1, 20}, {3, 1, 7, true, 0.5, 5},
    {3, 9, 1, false, 0.5, 5},    {6, 33, 40, true, 0.2, 8},   {1, 46, 10, true, 0.05, 20},
};

}  // namespace

TEST_CASE("cuda emulated: plain-domain Sinkhorn kernels equal the CPU kernels") {
  for (const auto& p : kProblems) {
    for (unsigned grid : {1u, 2u, static_cast<unsigned>(p.B)}) {
      CAPTURE(p.B); CAPTURE(p.K1); CAPTURE(p.K2); CAPTURE(p.shared); CAPTURE(grid);
      check_forward<double>(p, false, grid, 1e-12);
      check_backward<double>(p, false, grid, 1e-10);
    }
    check_forward<float>(p, false, 2, 2e-5);
    check_backward<float>(p, false, 2, 2e-4);
  }
  // Early stopping: each problem stops at its own iteration, in both.
  Problem p{4, 46, 10, false, 0.5, 200};
  p.tol = 1e-7;
  check_forward<double>(p, false, 2, 1e-12);
  check_backward<double>(p, false, 2, 1e-10);
}

TEST_CASE("cuda emulated: log-domain Sinkhorn kernels equal the CPU kernels") {
  for (const auto& p : kProblems) {
    for (unsigned grid : {1u, 2u, static_cast<unsigned>(p.B)}) {
      CAPTURE(p.B); CAPTURE(p.K1); CAPTURE(p.K2); CAPTURE(p.shared); CAPTURE(grid);
      check_forward<double>(p, true, grid, 1e-12);
      check_backward<double>(p, true, grid, 1e-10);
    }
    check_forward<float>(p, true, 2, 2e-5);
    check_backward<float>(p, true, 2, 2e-4);
  }
  SUBCASE("stabiliser, early stopping, zero marginal entries, small epsilon") {
    Problem p{4, 46, 10, false, 0.5, 200};
    p.tol = 1e-7;
    check_forward<double>(p, true, 2, 1e-12);
    check_backward<double>(p, true, 2, 1e-10);
    Problem s{3, 46, 10, true, 0.1, 20};
    s.stab = true;
    check_forward<double>(s, true, 2, 1e-12);
    check_backward<double>(s, true, 2, 1e-10);
    Problem z{3, 12, 7, false, 0.2, 10};
    z.zeros = true;
    check_forward<double>(z, true, 2, 1e-12);
    check_backward<double>(z, true, 2, 1e-10);
    Problem tiny{2, 46, 10, true, 1e-3, 30};  // the plain kernel underflows here
    check_forward<double>(tiny, true, 2, 1e-12);
    check_backward<double>(tiny, true, 2, 1e-9);
  }
}

TEST_CASE("cuda emulated: a kernel that skips a barrier in some threads is reported, not hung") {
  // The emulator's own check: half the threads return before the barrier.
  CHECK_THROWS_WITH_AS(emu::launch(1, 4, 0, [] {
                         if (threadIdx.x < 2) return;
                         __syncthreads();
                       }, std::chrono::seconds(2)),
                       doctest::Contains("did not finish"), std::runtime_error);
}
