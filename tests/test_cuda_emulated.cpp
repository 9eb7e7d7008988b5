// CUDA kernels run on the CPU through tests/cuda_emulator.h and compared with the CPU (the
// transport and attention kernels; test_cuda_emulated_rows and test_cuda_emulated_gemm_image
// hold the others):
//   - Sinkhorn (cuda/sinkhorn_kernels.cuh: plain and log domain, forward and backward, shared
//     and batched cost) against the CPU kernels (ops/cpu/sinkhorn.h), which
//     test_sinkhorn_kernels checks against PyTorch autograd, POT and finite differences;
//   - fused attention (cuda/attention_kernels.cuh: forward with key splits and their merge,
//     the delta, dq and dk/dv kernels with their split sums), launched as cuda/attention.cu
//     launches them, against the composed CPU op (matmul, softmax, matmul, autograd), which
//     test_nn_ops checks against PyTorch;
// Runs everywhere, GPU or not: it checks the kernels' logic (indexing, barriers, the
// recurrences, grid-stride loops, block reductions). Whether they compile and run on a device
// is the op table's CUDA column and tools/gpu_check.sh.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/conv2d.h"
#include "ops/cpu/elementwise.h"
#include "ops/index_csr.h"
#include "ops/cpu/layer_norm.h"
#include "models/nn/optim.h"
#include "ops/cpu/loss.h"
#include "ops/cpu/pool.h"
#include "ops/cpu/reduce.h"
#include "ops/cpu/resize.h"
#include "ops/cpu/resize_table.h"
#include "ops/cpu/sinkhorn.h"
#include "ops/cpu/softmax.h"
#include "ops/ops.h"
#include "tensor/rng.h"
#include "tests/attention_cases.h"
#include "tests/cuda_emulated_util.h"
// Last: the emulator defines __device__, __shared__, ... as macros for what follows.
#include "tests/cuda_emulator.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunknown-pragmas"  // #pragma unroll
#include "cuda/attention_kernels.cuh"
#pragma GCC diagnostic pop
#include "cuda/sinkhorn_kernels.cuh"

using namespace lm::test::emulated;

namespace {

namespace sk = lm::cuda_emulated::sinkhorn_kernels;

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


lm::SinkhornOptions cpu_options(const Problem& p) {
  lm::SinkhornOptions o;
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

// ---- fused attention -----------------------------------------------------------------------

namespace {

namespace ak = lm::cuda_emulated::attention_kernels;

using AttnCase = lm::test::AttentionCase;

// cuda/attention.cu's mask_view.
template <class T>
ak::Mask<T> attn_mask_view(const lm::Tensor& m) {
  if (!m.defined()) return ak::Mask<T>{nullptr, 0, 0, 0, 0};
  return ak::make_mask<T>(m.data<T>(), m.dim(), m.shape().data(), m.strides().data());
}

template <class T>
std::vector<T> zeros(int64_t n) {
  return std::vector<T>(static_cast<size_t>(std::max<int64_t>(n, 1)), T(0));
}


template <class T>
std::vector<double> as_double(const std::vector<T>& v, size_t n) {
  return std::vector<double>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
}

// One case: the launch sequence of cuda/attention.cu (forward_typed, backward_typed) with the
// split choice of a device with `sms` multiprocessors, against the composed CPU op.
template <class T>
void check_attention(const AttnCase& c, int sms, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  lm::Generator gen(1234);
  Tensor q = Tensor::randn({c.B, c.H, c.Lq, c.d}, gen, dt), k = Tensor::randn({c.B, c.H, c.Lk, c.d}, gen, dt),
         v = Tensor::randn({c.B, c.H, c.Lk, c.dv}, gen, dt), R = Tensor::randn({c.B, c.H, c.Lq, c.dv}, gen, dt);
  Tensor mask = lm::test::attention_case_mask(c, gen);
  if (mask.defined()) mask = mask.to(dt).contiguous();
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));

  // Reference: the composed CPU op and autograd; lse = logsumexp(q k^T scale + mask).
  Tensor qr = q.detach(), kr = k.detach(), vr = v.detach();
  qr.set_requires_grad(true);
  kr.set_requires_grad(true);
  vr.set_requires_grad(true);
  Tensor ref = lm::scaled_dot_product_attention(qr, kr, vr, mask);
  lm::backward(ref, R);
  Tensor scores = lm::mul(lm::matmul(q, lm::transpose(k, 2, 3)), scale);
  if (mask.defined()) scores = lm::add(scores, mask);
  const Tensor ref_lse = lm::logsumexp(scores, {3});

  const int64_t BH = c.B * c.H, rows = BH * c.Lq, krows = BH * c.Lk;
  const int d = static_cast<int>(c.d), dv = static_cast<int>(c.dv);
  constexpr int CW = ak::Cfg<T>::CW;
  const ak::Mask<T> mv = attn_mask_view<T>(mask);
  const T* qp = q.data<T>();
  const T* kp = k.data<T>();
  const T* vp = v.data<T>();
  const T* rp = R.data<T>();
  const unsigned aux_block = 64;  // the grid-stride helper kernels: 2 warps, 2 blocks
  std::vector<T> out = zeros<T>(rows * dv), lse = zeros<T>(rows);

  {  // forward
    const int64_t row_blocks = (c.Lq + ak::kRows - 1) / ak::kRows;
    const int zc = (dv + CW - 1) / CW;
    const int64_t kps = ak::items_per_split_for(c.Lk, BH * row_blocks * zc, sms);
    const int64_t splits = (c.Lk + kps - 1) / kps;
    const dim3 grid(static_cast<unsigned>(BH * row_blocks), static_cast<unsigned>(splits), static_cast<unsigned>(zc));
    if (splits == 1) {
      emu::launch(grid, ak::kBlock, 0, [&] {
        ak::attention_forward_kernel<T>(qp, kp, vp, mv, c.H, c.Lq, c.Lk, d, dv, static_cast<T>(scale), kps,
                                        out.data(), lse.data(), nullptr, nullptr, nullptr);
      });
    } else {
      std::vector<T> po = zeros<T>(splits * rows * dv), pm = zeros<T>(splits * rows), pl = zeros<T>(splits * rows);
      emu::launch(grid, ak::kBlock, 0, [&] {
        ak::attention_forward_kernel<T>(qp, kp, vp, mv, c.H, c.Lq, c.Lk, d, dv, static_cast<T>(scale), kps, nullptr,
                                        nullptr, po.data(), pm.data(), pl.data());
      });
      emu::launch(2, aux_block, 0, [&] {
        ak::attention_combine_kernel<T>(po.data(), pm.data(), pl.data(), static_cast<int>(splits), rows, dv,
                                        out.data(), lse.data());
      });
    }
    INFO(c.what << ", sms " << sms << ", key splits " << splits);
    CHECK(attn_err(as_double(out, rows * dv), ref.to_double_vector()) < tol);
    CHECK(attn_err(as_double(lse, rows), ref_lse.to_double_vector()) < tol);
  }

  std::vector<T> delta = zeros<T>(rows), dq = zeros<T>(rows * d), dk = zeros<T>(krows * d), dvv = zeros<T>(krows * dv);
  emu::launch(2, aux_block, 0, [&] { ak::attention_delta_kernel<T>(rp, out.data(), rows, dv, delta.data()); });
  {  // dq
    const int64_t row_blocks = (c.Lq + ak::kRows - 1) / ak::kRows;
    const int zc = (d + CW - 1) / CW;
    const int64_t kps = ak::items_per_split_for(c.Lk, BH * row_blocks * zc, sms);
    const int64_t splits = (c.Lk + kps - 1) / kps;
    const dim3 grid(static_cast<unsigned>(BH * row_blocks), static_cast<unsigned>(splits), static_cast<unsigned>(zc));
    std::vector<T> part = zeros<T>(splits > 1 ? splits * rows * d : 0);
    emu::launch(grid, ak::kBlock, 0, [&] {
      ak::attention_backward_dq_kernel<T>(qp, kp, vp, mv, rp, lse.data(), delta.data(), c.H, c.Lq, c.Lk, d, dv,
                                          static_cast<T>(scale), kps, dq.data(), splits > 1 ? part.data() : nullptr);
    });
    if (splits > 1)
      emu::launch(2, aux_block, 0, [&] {
        ak::attention_sum_splits_kernel<T>(part.data(), static_cast<int>(splits), rows * d, scale, dq.data());
      });
    INFO(c.what << ", sms " << sms << ", dq key splits " << splits);
    CHECK(attn_err(as_double(dq, rows * d), qr.grad().to_double_vector()) < tol);
  }
  {  // dk, dv
    const int64_t key_blocks = (c.Lk + ak::kRows - 1) / ak::kRows;
    const int zc = (std::max(d, dv) + CW - 1) / CW;
    const int64_t qps = ak::items_per_split_for(c.Lq, BH * key_blocks * zc, sms);
    const int64_t splits = (c.Lq + qps - 1) / qps;
    const dim3 grid(static_cast<unsigned>(BH * key_blocks), static_cast<unsigned>(splits), static_cast<unsigned>(zc));
    std::vector<T> pk = zeros<T>(splits > 1 ? splits * krows * d : 0), pv = zeros<T>(splits > 1 ? splits * krows * dv : 0);
    emu::launch(grid, ak::kBlock, 0, [&] {
      ak::attention_backward_dkdv_kernel<T>(qp, kp, vp, mv, rp, lse.data(), delta.data(), c.H, c.Lq, c.Lk, d, dv,
                                            static_cast<T>(scale), qps, dk.data(), dvv.data(),
                                            splits > 1 ? pk.data() : nullptr, splits > 1 ? pv.data() : nullptr);
    });
    if (splits > 1) {
      emu::launch(2, aux_block, 0, [&] {
        ak::attention_sum_splits_kernel<T>(pk.data(), static_cast<int>(splits), krows * d, scale, dk.data());
      });
      emu::launch(2, aux_block, 0, [&] {
        ak::attention_sum_splits_kernel<T>(pv.data(), static_cast<int>(splits), krows * dv, 1.0, dvv.data());
      });
    }
    INFO(c.what << ", sms " << sms << ", dk/dv query splits " << splits);
    CHECK(attn_err(as_double(dk, krows * d), kr.grad().to_double_vector()) < tol);
    CHECK(attn_err(as_double(dvv, krows * dv), vr.grad().to_double_vector()) < tol);
  }
}

}  // namespace

TEST_CASE("cuda emulated: fused attention kernels equal the composed CPU op (f64 and f32, with and without splits)") {
  for (const AttnCase& c : lm::test::attention_cases()) {
    if (c.Lk > 1000) continue;  // the 56 x 5000 x 512 Libra-MIL shape: too slow to emulate
    for (int sms : {1, 132})  // one split everywhere; an H100/H200's split choice
      check_attention<double>(c, sms, 1e-10);
    check_attention<float>(c, 132, 2e-5);
  }
}

