// CUDA kernels run on the CPU through tests/cuda_emulator.h and compared with the CPU:
//   - Sinkhorn (cuda/sinkhorn_kernels.cuh: plain and log domain, forward and backward, shared
//     and batched cost) against the CPU kernels (ops/cpu/sinkhorn.h), which
//     test_sinkhorn_kernels checks against PyTorch autograd, POT and finite differences;
//   - fused attention (cuda/attention_kernels.cuh: forward with key splits and their merge,
//     the delta, dq and dk/dv kernels with their split sums), launched as cuda/attention.cu
//     launches them, against the composed CPU op (matmul, softmax, matmul, autograd), which
//     test_nn_ops checks against PyTorch;
//   - softmax / log_softmax, layer norm, cross-entropy and the reductions (cuda/{softmax,
//     layer_norm,loss,reduce}_kernels.cuh, with the block reductions of cuda/block_reduce.cuh),
//     launched as their .cu files launch them, against the CPU kernels of ops/cpu/ (checked
//     against PyTorch by the op table);
//   - the Adam / AdamW update (cuda/optim_kernels.cuh) against the CPU optimizer
//     (models/optim.h, checked against torch.optim by test_nn_optim);
//   - the elementwise kernels (cuda/elementwise_kernels.cuh: every unary op forward and
//     backward through the packed map, 16-byte vectors and scalar tail; binary ops packed and
//     broadcast through make_index2) against ops/cpu/elementwise.h;
//   - the copy kernels (cuda/copy_kernels.cuh: dtype conversion between float32, float64,
//     float16 and bfloat16, bit for bit against Tensor::to on the CPU over every 16-bit pattern
//     and rounding edge cases; the strided copy of a transposed view; fill; add);
//   - the GEMM kernels (cuda/gemm_kernels.cuh: the tiled SIMT kernel in float32 / float64 and
//     the tensor-core kernel with TF32 and BF16 inputs through the emulated wmma fragments, all
//     four transposes, edges, padded leading dimensions, vector / scalar loads and direct /
//     staged stores as the launch plan picks them) against a float64 GEMM of the same values
//     (TF32: of the inputs rounded by an independent cvt.rna);
//   - index_select's gather (any element size) and its CSR scatter-add backward
//     (cuda/index_kernels.cuh) against the CPU op and its autograd, bit for bit;
//   - the image resize passes (cuda/resize_kernels.cuh: bilinear / bicubic, antialias on / off,
//     up and down, forward and the transposed-table backward) and normalize_channels against
//     the CPU kernels of ops/cpu/resize.h (checked against torch by the op table and test_resize). Runs everywhere, GPU or not: it checks the kernels'
// logic (indexing, barriers, the recurrences, grid-stride over problems, the per-block partial
// cost gradients and their reduction). Whether they compile and run on a device is the op
// table's CUDA column and tools/gpu_check.sh.
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
#include "models/optim.h"
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
// Last: the emulator defines __device__, __shared__, ... as macros for what follows.
#include "tests/cuda_emulator.h"
#include "cuda/sinkhorn_kernels.cuh"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunknown-pragmas"  // #pragma unroll
#include "cuda/attention_kernels.cuh"
#include "cuda/gemm_kernels.cuh"
#pragma GCC diagnostic pop
#include "cuda/conv2d_kernels.cuh"
#include "cuda/copy_kernels.cuh"
#include "cuda/elementwise_kernels.cuh"
#include "cuda/index_kernels.cuh"
#include "cuda/layer_norm_kernels.cuh"
#include "cuda/loss_kernels.cuh"
#include "cuda/optim_kernels.cuh"
#include "cuda/reduce_kernels.cuh"
#include "cuda/resize_kernels.cuh"
#include "cuda/softmax_kernels.cuh"

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

// max |got - want| / max(1, max |want|); equal infinities and NaN in both are skipped.
double attn_err(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() >= want.size());
  double diff = 0, scale = 1;
  for (size_t x = 0; x < want.size(); ++x) {
    const double a = got[x], b = want[x];
    if (std::isnan(a) || std::isnan(b)) {
      if (std::isnan(a) != std::isnan(b)) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (std::isinf(a) || std::isinf(b)) {
      if (a != b) return std::numeric_limits<double>::infinity();
      continue;
    }
    diff = std::max(diff, std::abs(a - b));
    scale = std::max(scale, std::abs(b));
  }
  return diff / scale;
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

// ---- softmax, layer norm, cross-entropy ------------------------------------------------------

namespace {

constexpr unsigned kLibThreads = 256;  // cuda/common.cuh's kThreads: the library's block size

// Random values in [-4, 4) of a dtype, as a CPU tensor.
lm::Tensor rand_tensor(const lm::Shape& s, lm::DType dt, unsigned seed) {
  lm::Generator g(seed);
  return lm::Tensor::uniform(s, -4.0, 4.0, g, dt);
}

double tensor_err(const lm::Tensor& got, const lm::Tensor& want) {
  return attn_err(got.to_double_vector(), want.to_double_vector());
}

template <class T>
void check_softmax(int64_t outer, int64_t n, int64_t inner, bool log_out, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({outer, n, inner}, dt, 3);
  if (outer > 1 && inner == 1) {  // an all -inf row: the kernels use max 0 and give NaN (as torch)
    std::vector<double> v = x.to_double_vector();
    for (int64_t j = 0; j < n; ++j) v[static_cast<size_t>(n + j)] = -std::numeric_limits<double>::infinity();
    x = Tensor::from_vector(v, {outer, n, inner}).to(dt);
  }
  Tensor g = rand_tensor({outer, n, inner}, dt, 4);
  Tensor y_ref = Tensor::empty({outer, n, inner}, dt), gx_ref = Tensor::empty({outer, n, inner}, dt);
  lm::cpu::softmax_forward(x, outer, n, inner, log_out, y_ref);
  lm::cpu::softmax_backward(y_ref, g, outer, n, inner, log_out, gx_ref);
  Tensor y = Tensor::empty({outer, n, inner}, dt), gx = Tensor::empty({outer, n, inner}, dt);
  namespace sm = lm::cuda_emulated::softmax_kernels;
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  const sm::RowSplit sp = inner == 1 ? sm::row_split(outer, n) : sm::RowSplit{n, 1};
  if (sp.chunks > 1) {  // few long rows, as cuda/softmax.cu launches them; 3 blocks (grid-stride)
    std::vector<T> part_max(static_cast<size_t>(outer * sp.chunks));
    std::vector<double> part_sum(part_max.size()), part_dot(part_max.size());
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_max_kernel<T>(xp, outer, n, sp.per_chunk, sp.chunks, part_max.data());
    });
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_sum_kernel<T>(xp, outer, n, sp.per_chunk, sp.chunks, part_max.data(), part_sum.data());
    });
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_write_kernel<T>(xp, outer, n, sp.per_chunk, sp.chunks, part_max.data(), part_sum.data(),
                                        log_out, yp);
    });
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_backward_dot_kernel<T>(yp, g.data<T>(), outer, n, sp.per_chunk, sp.chunks, log_out,
                                               part_dot.data());
    });
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_backward_write_kernel<T>(yp, g.data<T>(), outer, n, sp.per_chunk, sp.chunks, log_out,
                                                 part_dot.data(), gx.data<T>());
    });
  } else if (inner == 1) {  // host: grid_rows(outer) blocks of kThreads; here fewer blocks (grid-stride)
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(outer, 2));
    emu::launch(grid, kLibThreads, 0, [&] { sm::softmax_rows_kernel<T>(xp, outer, n, log_out, yp); });
    emu::launch(grid, kLibThreads, 0, [&] {
      sm::softmax_backward_rows_kernel<T>(yp, g.data<T>(), outer, n, log_out, gx.data<T>());
    });
  } else {  // a thread per column: 1 block of 64 over more columns (grid-stride)
    emu::launch(1, 64, 0, [&] { sm::softmax_columns_kernel<T>(xp, outer, n, inner, log_out, yp); });
    emu::launch(1, 64, 0, [&] {
      sm::softmax_backward_columns_kernel<T>(yp, g.data<T>(), outer, n, inner, log_out, gx.data<T>());
    });
  }
  INFO("softmax outer " << outer << " n " << n << " inner " << inner << (log_out ? " log" : "") << " chunks "
                         << sp.chunks);
  CHECK(tensor_err(y, y_ref) < tol);
  CHECK(tensor_err(gx, gx_ref) < tol);
}

template <class T>
void check_layer_norm(int64_t rows, int64_t D, bool affine, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({rows, D}, dt, 5), g = rand_tensor({rows, D}, dt, 6);
  Tensor w = affine ? rand_tensor({D}, dt, 7) : Tensor(), b = affine ? rand_tensor({D}, dt, 8) : Tensor();
  const double eps = 1e-5;
  Tensor y_ref = Tensor::empty({rows, D}, dt), mean_ref = Tensor::empty({rows}, dt), rstd_ref = Tensor::empty({rows}, dt);
  lm::cpu::layer_norm_forward(x, w, b, eps, rows, D, y_ref, mean_ref, rstd_ref);
  Tensor gx_ref = Tensor::empty({rows, D}, dt), gw_ref = Tensor::empty({D}, dt), gb_ref = Tensor::empty({D}, dt);
  lm::cpu::layer_norm_backward(g, x, w, mean_ref, rstd_ref, rows, D, gx_ref, gw_ref, gb_ref);

  namespace ln = lm::cuda_emulated::layer_norm_kernels;
  Tensor y = Tensor::empty({rows, D}, dt), mean = Tensor::empty({rows}, dt), rstd = Tensor::empty({rows}, dt);
  const T* wp = affine ? w.data<T>() : nullptr;
  const T* bp = affine ? b.data<T>() : nullptr;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, 3));
  emu::launch(grid, kLibThreads, 0, [&] {
    ln::layer_norm_forward_kernel<T>(x.data<T>(), wp, bp, eps, rows, D, y.data<T>(), mean.data<T>(), rstd.data<T>());
  });
  Tensor gx = Tensor::empty({rows, D}, dt), gw = Tensor::empty({D}, dt), gb = Tensor::empty({D}, dt);
  emu::launch(grid, kLibThreads, 0, [&] {
    ln::layer_norm_backward_x_kernel<T>(g.data<T>(), x.data<T>(), wp, mean.data<T>(), rstd.data<T>(), rows, D,
                                        gx.data<T>());
  });
  // Parameter gradients: cuda/layer_norm.cu's two kernels (partials per 32-row chunk, then the
  // chunks in order); its grid is (ceil(D / 128), chunks) of 128 threads; here y = 2 blocks.
  const int64_t nchunks = (rows + ln::kRowsPerChunk - 1) / ln::kRowsPerChunk;
  std::vector<double> pw(static_cast<size_t>(nchunks * D)), pb(static_cast<size_t>(nchunks * D));
  const unsigned threads = 128;
  const dim3 pgrid(static_cast<unsigned>((D + threads - 1) / threads), static_cast<unsigned>(std::min<int64_t>(nchunks, 2)));
  emu::launch(pgrid, threads, 0, [&] {
    ln::layer_norm_param_partials_kernel<T>(g.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(), rows, D,
                                            nchunks, pw.data(), pb.data());
  });
  emu::launch(1, 64, 0, [&] {
    ln::layer_norm_param_sum_kernel<T>(pw.data(), pb.data(), nchunks, D, gw.data<T>(), gb.data<T>());
  });
  INFO("layer_norm rows " << rows << " D " << D << (affine ? " affine" : ""));
  CHECK(tensor_err(y, y_ref) < tol);
  CHECK(tensor_err(mean, mean_ref) < tol);
  CHECK(tensor_err(rstd, rstd_ref) < tol);
  CHECK(tensor_err(gx, gx_ref) < tol);
  CHECK(tensor_err(gw, gw_ref) < tol);
  CHECK(tensor_err(gb, gb_ref) < tol);
}

template <class T>
void check_cross_entropy(int64_t B, int64_t C, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({B, C}, dt, 9);
  std::vector<int64_t> tv(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) tv[static_cast<size_t>(b)] = (b * 7 + 3) % C;
  Tensor t = Tensor::from_vector(tv, {B});
  Tensor loss_ref = Tensor::empty({1}, dt), lse_ref = Tensor::empty({B}, lm::DType::F64);
  lm::cpu::cross_entropy_forward(x, t, B, C, loss_ref, lse_ref);
  Tensor gl = Tensor::from_vector(std::vector<double>{0.75}, {1}).to(dt);
  Tensor gx_ref = Tensor::empty({B, C}, dt);
  lm::cpu::cross_entropy_backward(gl, x, t, lse_ref, B, C, gx_ref);

  namespace ce = lm::cuda_emulated::loss_kernels;
  Tensor loss = Tensor::empty({1}, dt), lse = Tensor::empty({B}, lm::DType::F64);
  std::vector<double> row_loss(static_cast<size_t>(B));
  emu::launch(static_cast<unsigned>(std::min<int64_t>(B, 2)), kLibThreads, 0, [&] {
    ce::cross_entropy_rows_kernel<T, double>(x.data<T>(), t.data<int64_t>(), B, C, lse.data<double>(),
                                             row_loss.data());
  });
  emu::launch(1, 1024, 0, [&] { ce::mean_kernel<T>(row_loss.data(), B, loss.data<T>()); });
  // Backward twice: the upstream gradient read on the device (g_dev) and passed by value.
  Tensor gx_dev = Tensor::empty({B, C}, dt), gx_host = Tensor::empty({B, C}, dt);
  emu::launch(2, 64, 0, [&] {
    ce::cross_entropy_backward_kernel<T, double>(gl.data<T>(), 0.0, x.data<T>(), t.data<int64_t>(),
                                                 lse.data<double>(), B, C, gx_dev.data<T>());
  });
  emu::launch(2, 64, 0, [&] {
    ce::cross_entropy_backward_kernel<T, double>(nullptr, 0.75, x.data<T>(), t.data<int64_t>(), lse.data<double>(), B,
                                                 C, gx_host.data<T>());
  });
  INFO("cross_entropy B " << B << " C " << C);
  CHECK(tensor_err(loss, loss_ref) < tol);
  CHECK(tensor_err(lse, lse_ref) < tol);
  CHECK(tensor_err(gx_dev, gx_ref) < tol);
  CHECK(tensor_err(gx_host, gx_ref) < tol);
}

}  // namespace

TEST_CASE("cuda emulated: softmax, layer norm and cross-entropy kernels equal the CPU kernels") {
  for (bool log_out : {false, true}) {
    check_softmax<double>(5, 300, 1, log_out, 1e-12);  // rows (n > block: strided), an all -inf row
    check_softmax<double>(3, 7, 1, log_out, 1e-12);
    check_softmax<double>(3, 5, 40, log_out, 1e-12);   // columns: 120 > 64 threads (grid-stride)
    check_softmax<float>(5, 300, 1, log_out, 1e-5);
    check_softmax<float>(3, 5, 40, log_out, 1e-5);
    // Few long rows: the split kernels (2 chunks of 1250; 4 of 1025 with an all -inf row).
    check_softmax<double>(1, 2500, 1, log_out, 1e-12);
    check_softmax<double>(3, 4100, 1, log_out, 1e-12);
    check_softmax<float>(3, 4100, 1, log_out, 1e-5);
  }
  {  // the split rule: few long rows split, many rows or short ones not
    namespace sm = lm::cuda_emulated::softmax_kernels;
    CHECK(sm::row_split(1, 2500).chunks == 2);
    CHECK(sm::row_split(1, 2500).per_chunk == 1250);
    CHECK(sm::row_split(3, 4100).chunks == 4);
    CHECK(sm::row_split(1, 100000).chunks == 97);    // ~1024-element chunks, 97 blocks
    CHECK(sm::row_split(24, 100000).chunks == 43);   // 24 rows x 43 chunks = 1032 blocks
    CHECK(sm::row_split(1, 2047).chunks == 1);       // short row
    CHECK(sm::row_split(1024, 100000).chunks == 1);  // many rows fill the device already
  }
  for (bool affine : {true, false}) {
    check_layer_norm<double>(70, 300, affine, 1e-11);  // 3 chunks of 32 rows; D > 256 and > 128
    check_layer_norm<double>(1, 5, affine, 1e-11);
    check_layer_norm<float>(70, 300, affine, 1e-4);
  }
  check_cross_entropy<double>(5, 300, 1e-12);
  check_cross_entropy<double>(1, 3, 1e-12);
  check_cross_entropy<float>(5, 300, 1e-5);
  // Targets out of [0, C) (unchecked under a CUDA graph capture, ops/loss.cpp): their rows' loss
  // is NaN, never a read outside the row; the other rows are the CPU's.
  {
    const int64_t B = 4, C = 6;
    lm::Tensor x = rand_tensor({B, C}, lm::DType::F64, 4);
    const std::vector<int64_t> tv{2, C, -1, 5};
    lm::Tensor t = lm::Tensor::from_vector(tv, {B});
    lm::Tensor lse = lm::Tensor::empty({B}, lm::DType::F64);
    std::vector<double> row_loss(static_cast<size_t>(B));
    emu::launch(2, kLibThreads, 0, [&] {
      lm::cuda_emulated::loss_kernels::cross_entropy_rows_kernel<double, double>(
          x.data<double>(), t.data<int64_t>(), B, C, lse.data<double>(), row_loss.data());
    });
    CHECK(std::isnan(row_loss[1]));
    CHECK(std::isnan(row_loss[2]));
    for (int64_t b : {0, 3}) {
      const double want = lse.data<double>()[b] - x.data<double>()[b * C + tv[static_cast<size_t>(b)]];
      CHECK(row_loss[static_cast<size_t>(b)] == doctest::Approx(want).epsilon(1e-15));
    }
  }
}

namespace {

template <class T>
void check_reduce(lm::cpu::ReduceOp op, int64_t outer, int64_t red, int64_t inner, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({outer, red, inner}, dt, 21);
  {  // an all -inf row / column, a NaN, a +inf: the kernels' edge paths
    std::vector<double> v = x.to_double_vector();
    const double inf = std::numeric_limits<double>::infinity();
    for (int64_t r = 0; r < red; ++r) v[static_cast<size_t>(r * inner)] = -inf;  // outer 0, inner 0
    if (outer > 1) v[static_cast<size_t>(red * inner + 1)] = std::numeric_limits<double>::quiet_NaN();
    if (outer > 2) v[static_cast<size_t>(2 * red * inner)] = inf;
    x = Tensor::from_vector(v, {outer, red, inner}).to(dt);
  }
  Tensor ref = Tensor::empty({outer, inner}, dt), got = Tensor::empty({outer, inner}, dt);
  lm::cpu::reduce_forward(op, x, outer, red, inner, ref);
  Tensor aref = Tensor::empty({outer, inner}, lm::DType::I64), agot = Tensor::empty({outer, inner}, lm::DType::I64);
  lm::cpu::argmax_forward(x, outer, red, inner, aref);
  namespace rk = lm::cuda_emulated::reduce_kernels;
  if (inner == 1)
    emu::launch(static_cast<unsigned>(std::min<int64_t>(outer, 2)), kLibThreads, 0,
                [&] { rk::reduce_rows_kernel<T>(op, x.data<T>(), outer, red, got.data<T>()); });
  // Columns as cuda/reduce.cu launches them: split into chunks (Sum, Max) when column_split
  // says so, else one thread per output.
  const rk::ColumnSplit split = rk::column_split_for(op, outer, red, inner);
  if (inner > 1 && split.chunks > 1) {
    std::vector<double> partial(static_cast<size_t>(outer * split.chunks * inner));
    emu::launch(2, 64, 0, [&] {
      rk::reduce_column_chunks_kernel<T>(op, x.data<T>(), outer, red, inner, split.rows_per_chunk, split.chunks,
                                         partial.data());
    });
    emu::launch(1, 64, 0,
                [&] { rk::reduce_column_partials_kernel<T>(op, partial.data(), outer, inner, split.chunks, got.data<T>()); });
  } else if (inner > 1) {
    emu::launch(1, 64, 0, [&] { rk::reduce_columns_kernel<T>(op, x.data<T>(), outer, red, inner, got.data<T>()); });
  }
  emu::launch(1, 64, 0, [&] { rk::argmax_kernel<T>(x.data<T>(), outer, red, inner, agot.data<int64_t>()); });
  INFO("reduce op " << static_cast<int>(op) << " outer " << outer << " red " << red << " inner " << inner
                    << " chunks " << split.chunks);
  CHECK(tensor_err(got, ref) < tol);
  CHECK(agot.to_double_vector() == aref.to_double_vector());
}

// Three steps of the CPU optimizer vs the kernel with adam_consts' constants (models/optim.cpp:
// step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t), decay = 1 - lr wd for AdamW).
template <class T>
void check_adam(bool decoupled, double wd, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  const int64_t n = 300;
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  Tensor p0 = rand_tensor({n}, dt, 31);
  std::vector<Tensor> grads = {rand_tensor({n}, dt, 32), rand_tensor({n}, dt, 33), rand_tensor({n}, dt, 34)};
  Tensor ref = p0.clone();
  {
    std::unique_ptr<lm::optim::Adam> opt;
    if (decoupled) opt = std::make_unique<lm::optim::AdamW>(std::vector<Tensor>{ref}, lr, std::make_pair(b1, b2), eps, wd);
    else opt = std::make_unique<lm::optim::Adam>(std::vector<Tensor>{ref}, lr, std::make_pair(b1, b2), eps, wd);
    for (const Tensor& g : grads) {
      ref.set_grad(g.clone());
      opt->step();
    }
  }
  Tensor p = p0.clone(), m = Tensor::zeros({n}, dt), v = Tensor::zeros({n}, dt);
  const int mode = decoupled ? 1 : (wd != 0.0 ? 2 : 0);
  for (int t = 1; t <= 3; ++t) {
    const double step_size = lr / (1.0 - std::pow(b1, t)), bc2_sqrt = std::sqrt(1.0 - std::pow(b2, t));
    const double decay = decoupled ? 1.0 - lr * wd : 1.0;
    const Tensor& g = grads[static_cast<size_t>(t - 1)];
    emu::launch(2, 64, 0, [&] {
      lm::cuda_emulated::optim_kernels::adam_kernel<T>(n, p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), step_size,
                                              bc2_sqrt, b1, b2, eps, wd, decay, mode);
    });
  }
  INFO((decoupled ? "AdamW" : "Adam") << " wd " << wd);
  CHECK(tensor_err(p, ref) < tol);
}

}  // namespace

TEST_CASE("cuda emulated: reductions, argmax and the Adam update equal the CPU") {
  using lm::cpu::ReduceOp;
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::LogSumExp}) {
    check_reduce<double>(op, 4, 300, 1, 1e-12);  // rows: n > block (strided), edge rows
    check_reduce<double>(op, 3, 7, 40, 1e-12);   // columns: 120 > 64 threads (grid-stride)
    check_reduce<float>(op, 4, 300, 1, 1e-5);
    check_reduce<float>(op, 3, 7, 40, 1e-5);
    // Long columns, few outputs: the split path for Sum and Max (11 chunks of 64 rows, the last
    // one short; 32 chunks of 63), grid-stride over (outer, chunk, inner).
    check_reduce<double>(op, 3, 700, 3, 1e-12);
    check_reduce<float>(op, 3, 700, 3, 1e-5);
    check_reduce<double>(op, 1, 2000, 50, 1e-12);
  }
  {  // the split rule: few outputs and a long axis split, many outputs or a short axis not
    namespace rk = lm::cuda_emulated::reduce_kernels;
    const rk::ColumnSplit a = rk::column_split(3, 700, 3), b = rk::column_split(1, 2000, 50);
    CHECK(a.chunks == 11);
    CHECK(a.rows_per_chunk == 64);
    CHECK(b.chunks == 32);  // 2000 rows in runs of about 64 (the thread target would allow more)
    CHECK(b.rows_per_chunk == 63);
    CHECK(rk::column_split(1, 100000, 512).chunks == 256);
    CHECK(rk::column_split(1, 100000, 512).rows_per_chunk == 391);
    CHECK(rk::column_split(1, 127, 512).chunks == 1);      // short axis
    CHECK(rk::column_split(200, 5000, 512).chunks == 1);   // 102400 outputs fill the device already
  }
  for (auto [decoupled, wd] : std::vector<std::pair<bool, double>>{{false, 0.0}, {false, 0.1}, {true, 0.01}}) {
    check_adam<double>(decoupled, wd, 1e-12);
    check_adam<float>(decoupled, wd, 1e-6);
  }
}

namespace {

namespace ew = lm::cuda_emulated::elementwise_kernels;

// Every unary op, forward and backward, through map_kernel with and without 16-byte vectors
// (n = 1027: a scalar tail after the vectors), 2 blocks of 64 threads (grid-stride).
template <class T>
void check_unary(double tol) {
  using lm::Tensor;
  using lm::cpu::UnaryOp;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  const int64_t n = 1027;
  const std::vector<std::pair<UnaryOp, lm::cpu::UnaryParams>> ops = {
      {UnaryOp::Neg, {}},          {UnaryOp::Exp, {}},           {UnaryOp::Log, {}},
      {UnaryOp::Sqrt, {}},         {UnaryOp::Pow, {2.0, 0}},     {UnaryOp::Pow, {1.5, 0}},
      {UnaryOp::Abs, {}},          {UnaryOp::Clamp, {0.5, 2.5}}, {UnaryOp::Relu, {}},
      {UnaryOp::Relu6, {}},        {UnaryOp::Sigmoid, {}},      {UnaryOp::Tanh, {}},          {UnaryOp::Gelu, {}},
      {UnaryOp::AddScalar, {0.25, 0}}, {UnaryOp::MulScalar, {-3.0, 0}}, {UnaryOp::RSubScalar, {2.0, 0}}};
  lm::Generator gen(41);
  const Tensor x = Tensor::uniform({n}, 0.1, 3.0, gen, dt);  // positive: log, sqrt, pow defined
  const Tensor gy = rand_tensor({n}, dt, 42);
  for (const auto& [op, prm] : ops) {
    Tensor y_ref = Tensor::empty({n}, dt), gx_ref = Tensor::empty({n}, dt);
    lm::cpu::unary_forward(op, prm, x, y_ref);
    lm::cpu::unary_backward(op, prm, x, y_ref, gy, gx_ref);
    for (bool vec : {true, false}) {
      Tensor y = Tensor::empty({n}, dt), gx = Tensor::empty({n}, dt);
      const ew::UnaryF f{op, prm.p0, prm.p1};
      const ew::UnaryGradF fg{op, prm.p0, prm.p1};
      emu::launch(2, 64, 0, [&] {
        ew::map_kernel<T, 1>(n, vec, x.data<T>(), static_cast<const T*>(nullptr), static_cast<const T*>(nullptr),
                             y.data<T>(), f);
      });
      emu::launch(2, 64, 0, [&] {
        ew::map_kernel<T, 3>(n, vec, x.data<T>(), y.data<T>(), gy.data<T>(), gx.data<T>(), fg);
      });
      INFO("unary op " << static_cast<int>(op) << " p0 " << prm.p0 << (vec ? " vec" : " scalar"));
      CHECK(tensor_err(y, y_ref) < tol);
      CHECK(tensor_err(gx, gx_ref) < tol);
    }
  }
}

// Binary ops: packed through the map, broadcast / strided through make_index2 and the index
// kernel (a (3, 1, 5) by a transposed (4, 5)^T view, b (1, 4, 5) -> (3, 4, 5)).
template <class T>
void check_binary(double tol) {
  using lm::Tensor;
  using lm::cpu::BinaryOp;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Eq}) {
    const Tensor a = rand_tensor({3, 4, 5}, dt, 51);
    Tensor b = lm::add(rand_tensor({3, 4, 5}, dt, 52), 5.0);
    if (op == BinaryOp::Eq) {  // b differs from a at every third element
      b = a.clone();
      for (int64_t i = 0; i < 60; i += 3) b.data<T>()[i] += 1;
    }
    Tensor ref = Tensor::empty({3, 4, 5}, dt), got = Tensor::empty({3, 4, 5}, dt);
    lm::cpu::binary_forward(op, a, b, ref);
    emu::launch(2, 64, 0, [&] {
      ew::map_kernel<T, 2>(60, true, a.data<T>(), b.data<T>(), static_cast<const T*>(nullptr), got.data<T>(),
                           ew::BinaryF{op});
    });
    INFO("binary op " << static_cast<int>(op));
    CHECK(tensor_err(got, ref) < tol);

    const Tensor a3 = rand_tensor({3, 1, 5}, dt, 53);
    Tensor bsrc = lm::add(rand_tensor({5, 4}, dt, 54), 5.0);
    if (op == BinaryOp::Eq)  // equal to a3[1, 0, :] in column 2 of b's (4, 5) view
      for (int64_t j = 0; j < 5; ++j) bsrc.data<T>()[j * 4 + 2] = a3.data<T>()[5 + j];
    const Tensor bt = lm::transpose(bsrc, 0, 1);  // (4, 5), strided
    const Tensor b3 = lm::unsqueeze(bt, 0);                                            // (1, 4, 5)
    Tensor bref = Tensor::empty({3, 4, 5}, dt), bgot = Tensor::empty({3, 4, 5}, dt);
    lm::cpu::binary_forward(op, a3, b3, bref);
    const lm::Shape shape{3, 4, 5};
    auto strides_of = [&](const Tensor& t) {
      lm::Shape st(3, 0);
      for (int64_t i = 0; i < 3; ++i) st[i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
      return st;
    };
    const lm::cuda_emulated::Index2 ix = lm::cuda_emulated::make_index2(shape, strides_of(a3), strides_of(b3), "test");
    emu::launch(1, 32, 0, [&] {
      ew::binary_index_kernel<T>(60, ix, a3.data<T>(), b3.data<T>(), bgot.data<T>(), ew::BinaryF{op});
    });
    CHECK(tensor_err(bgot, bref) < tol);
    if (op == BinaryOp::Eq) {  // both outcomes occur
      CHECK(lm::sum(got).item() == 40);
      CHECK(lm::sum(bgot).item() == 5);
    }
  }
}

}  // namespace

TEST_CASE("cuda emulated: elementwise kernels equal the CPU kernels (unary forward / backward, binary packed / broadcast)") {
  check_unary<double>(1e-12);
  check_unary<float>(1e-5);
  check_binary<double>(1e-15);
  check_binary<float>(1e-6);
}

namespace {

namespace ck = lm::cuda_emulated::copy_kernels;

int code_of(lm::DType t) {
  switch (t) {
    case lm::DType::F32: return ck::kF32;
    case lm::DType::F64: return ck::kF64;
    case lm::DType::F16: return ck::kF16;
    default: return ck::kBF16;
  }
}

// Sources of every dtype: all 65536 bit patterns for float16 / bfloat16; for float32 / float64
// zeros, infinities, NaN, half / bfloat16 rounding ties, overflow, subnormals, and random values.
lm::Tensor conversion_source(lm::DType t) {
  using lm::Tensor;
  if (t == lm::DType::F16 || t == lm::DType::BF16) {
    Tensor x = Tensor::empty({65536}, t);
    auto* p = static_cast<uint16_t*>(x.raw_data());
    for (uint32_t i = 0; i < 65536; ++i) p[i] = static_cast<uint16_t>(i);
    return x;
  }
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v = {0.0, -0.0, 1.0, -1.0, inf, -inf, std::numeric_limits<double>::quiet_NaN(),
                           65504.0, 65519.99, 65520.0, 1e5, -1e5, 6.103515625e-05, 5.960464477539063e-08,
                           2.9802322387695312e-08, 2.98023223876953125e-08 * 1.5, 1e-9, 1.0 + 1.0 / 2048,
                           1.0 + 3.0 / 2048, 1.0 + 1.0 / 256, 1.0 + 3.0 / 256, 3.0e38, -3.4e38, 1e-40, 1e300};
  std::mt19937 rng(61);
  std::uniform_real_distribution<double> u(-70000.0, 70000.0);
  for (int i = 0; i < 500; ++i) v.push_back(u(rng) * std::pow(10.0, (i % 13) - 8));
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).to(t);
}

}  // namespace

TEST_CASE("cuda emulated: copy kernels (dtype conversion bit for bit, strided copy, fill, add) equal the CPU") {
  using lm::DType;
  using lm::Tensor;
  int pairs = 0;
  for (DType from : {DType::F32, DType::F64, DType::F16, DType::BF16}) {
    const Tensor x = conversion_source(from);
    const int64_t n = x.numel();
    for (DType to : {DType::F32, DType::F64, DType::F16, DType::BF16}) {
      if (to == from) continue;
      const Tensor ref = x.to(to);
      Tensor got = Tensor::empty({n}, to);
      emu::launch(2, 64, 0, [&] { ck::convert_kernel(n, x.raw_data(), code_of(from), got.raw_data(), code_of(to)); });
      const std::string what = std::string("convert ") + lm::dtype_name(from) + " -> " + lm::dtype_name(to);
      INFO(what);
      CHECK(std::memcmp(got.raw_data(), ref.raw_data(), ref.nbytes()) == 0);
      ++pairs;
    }
  }
  CHECK(pairs == 12);

  // Strided copy: a transposed (6, 5) float64 view into a packed tensor, and back into a
  // strided destination.
  const Tensor src = lm::transpose(rand_tensor({5, 6}, DType::F64, 71), 0, 1);  // (6, 5), strides (1, 6)
  const Tensor want = src.contiguous();
  Tensor packed = Tensor::empty({6, 5}, DType::F64);
  const lm::cuda_emulated::Index2 ix =
      lm::cuda_emulated::make_index2(src.shape(), src.strides(), packed.strides(), "test");
  emu::launch(1, 16, 0, [&] {
    ck::strided_copy_kernel<uint64_t>(30, ix, static_cast<const uint64_t*>(src.raw_data()),
                                      static_cast<uint64_t*>(packed.raw_data()));
  });
  CHECK(std::memcmp(packed.raw_data(), want.raw_data(), want.nbytes()) == 0);

  // fill (the bits of 2.5f) and add (z aliasing x).
  Tensor f = Tensor::empty({77}, DType::F32);
  const float val = 2.5f;
  uint32_t bits;
  std::memcpy(&bits, &val, sizeof bits);
  emu::launch(2, 32, 0, [&] { ck::fill_kernel<uint32_t>(77, static_cast<uint32_t*>(f.raw_data()), bits); });
  CHECK(f.to_double_vector() == std::vector<double>(77, 2.5));
  Tensor a = rand_tensor({77}, DType::F32, 72), b = rand_tensor({77}, DType::F32, 73);
  const Tensor sum_ref = lm::add(a, b);
  emu::launch(2, 32, 0, [&] { ck::add_kernel<float>(77, a.data<float>(), a.data<float>(), b.data<float>()); });
  CHECK(std::memcmp(a.raw_data(), sum_ref.raw_data(), sum_ref.nbytes()) == 0);
}

namespace {
namespace gk = lm::cuda_emulated::gemm_kernels;

// A buffer whose data starts `offset` elements past a 64-byte boundary.
template <class T>
struct Buffer {
  std::vector<T> storage;
  T* p = nullptr;
  Buffer(size_t n, size_t offset, T fill) : storage(n + offset + 64 / sizeof(T), fill) {
    const auto addr = reinterpret_cast<uintptr_t>(storage.data());
    p = storage.data() + ((64 - addr % 64) % 64) / sizeof(T) + offset;
  }
};

// TF32 rounding written independently of the emulator's bit trick: x = m 2^e with |m| in
// [0.5, 1); keep 11 significant bits, half-way cases away from zero (std::round).
double tf32_round_ref(double x) {
  if (x == 0 || !std::isfinite(x)) return x;
  int e;
  const double m = std::frexp(x, &e);
  return std::ldexp(std::round(std::ldexp(m, 11)), e - 11);
}

struct GemmCase {
  int64_t M, N, K;
  size_t a_offset = 0;  // elements past 64-byte alignment (1: A misaligned, no 16-byte vectors)
  int64_t ldc_pad = 4;  // ldc = N + ldc_pad (odd: the tensor-core kernel stages its stores)
};

// Inputs of element type E made from uniform(-1, 1) floats by make(f), read back as doubles by
// widen(e). run(A, lda, B, ldb, C, ldc) computes C = op(A) op(B); C is compared with a float64
// GEMM of round_in(widen(inputs)) within tol * sum_k |a b| (+1e-300), and every row's columns
// past N must keep their fill value. Returns the largest error over that bound (<= 1 passes).
template <class E, class Out, class Make, class Widen, class Round, class Run>
double check_gemm(const GemmCase& g, bool ta, bool tb, double tol, Make make, Widen widen, Round round_in,
                  uint64_t seed, Run run) {
  const int64_t M = g.M, N = g.N, K = g.K;
  const int64_t lda = (ta ? M : K) + 4, ldb = (tb ? K : N) + 8, ldc = N + g.ldc_pad;
  const int64_t a_rows = ta ? K : M, b_rows = tb ? N : K;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  Buffer<E> A(static_cast<size_t>(std::max<int64_t>(a_rows * lda, 1)), g.a_offset, make(0.f));
  Buffer<E> B(static_cast<size_t>(std::max<int64_t>(b_rows * ldb, 1)), 0, make(0.f));
  for (auto& v : A.storage) v = make(dist(rng));
  for (auto& v : B.storage) v = make(dist(rng));
  const Out fill = static_cast<Out>(12345);
  Buffer<Out> C(static_cast<size_t>(M * ldc), 0, fill);
  run(A.p, lda, B.p, ldb, C.p, ldc);
  double worst = 0;
  int bad = 0;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = round_in(widen(ta ? A.p[k * lda + m] : A.p[m * lda + k]));
        const double b = round_in(widen(tb ? B.p[n * ldb + k] : B.p[k * ldb + n]));
        ref += a * b;
        mag += std::abs(a * b);
      }
      const double got = static_cast<double>(C.p[m * ldc + n]);
      const double err = std::abs(got - ref) / (tol * mag + 1e-300);
      worst = std::max(worst, err);
      if (!(err <= 1) && ++bad <= 3)
        FAIL_CHECK("C(" << m << ", " << n << ") = " << got << ", float64 reference " << ref);
    }
    for (int64_t n = N; n < ldc; ++n)
      if (C.p[m * ldc + n] != fill && ++bad <= 3) FAIL_CHECK("C(" << m << ", " << n << ") past N was written");
  }
  CHECK(bad == 0);
  return worst;
}

// The tensor-core kernel with its transposes as template arguments, as launch_gemm_tc picks it.
template <class T>
void run_tc(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
            float* C, int64_t ldc, gk::TcPlan* plan_out) {
  const gk::TcPlan p = gk::tc_plan(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
  *plan_out = p;
  auto go = [&](auto ta_c, auto tb_c) {
    emu::launch(p.blocks, gk::kTcThreads, 0, [&] {
      gk::gemm_tc_kernel<T, decltype(ta_c)::value, decltype(tb_c)::value>(M, N, K, A, lda, B, ldb, C, ldc, p.tiles_n,
                                                                          p.tiles, p.vec_a, p.vec_b, p.direct_c);
    });
  };
  using F = std::false_type;
  using Tr = std::true_type;
  if (!ta && !tb) go(F{}, F{});
  else if (!ta && tb) go(F{}, Tr{});
  else if (ta && !tb) go(Tr{}, F{});
  else go(Tr{}, Tr{});
}

// body(g, ta, tb) for every case and transpose pair, with the case in doctest's failure context.
template <class Body>
void for_each_gemm_case(const std::vector<GemmCase>& cases, Body body) {
  for (const GemmCase& g : cases)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      CAPTURE(g.M);
      CAPTURE(g.N);
      CAPTURE(g.K);
      CAPTURE(ta);
      CAPTURE(tb);
      body(g, ta, tb);
    }
}

}  // namespace

TEST_CASE("cuda emulated: GEMM kernels (tiled SIMT f32 / f64, tensor-core TF32 / BF16) equal a float64 GEMM") {
  auto identity = [](double x) { return x; };
  uint64_t seed = 100;

  SUBCASE("tiled SIMT kernel") {
    // Edges on every side of the 64 x 64 x 16 tiles, K = 0 (zeros), a grid smaller than the tiles.
    const std::vector<GemmCase> cases = {{1, 1, 1}, {70, 65, 33}, {64, 64, 16}, {20, 130, 0}, {3, 70, 17}};
    for_each_gemm_case(cases, [&](const GemmCase& g, bool ta, bool tb) {
        const gk::TiledPlan p = gk::tiled_plan(g.M, g.N);
        for (unsigned blocks : {p.blocks, 1u}) {
          auto tiled = [&](const auto* A, int64_t lda, const auto* B, int64_t ldb, auto* C, int64_t ldc) {
            using T = std::remove_cv_t<std::remove_pointer_t<decltype(A)>>;
            emu::launch(blocks, gk::kThreadsX * gk::kThreadsY, 0, [&] {
              gk::gemm_tiled_kernel<T>(ta, tb, g.M, g.N, g.K, A, lda, B, ldb, C, ldc, p.tiles_m, p.tiles_n);
            });
          };
          check_gemm<float, float>(g, ta, tb, 1e-5, [](float f) { return f; }, identity, identity, ++seed, tiled);
          if (blocks == p.blocks)  // (the one-block grid-stride run in float32 only: emulation is slow)
            check_gemm<double, double>(g, ta, tb, 1e-13, [](float f) { return static_cast<double>(f); }, identity,
                                       identity, ++seed, tiled);
        }
      });
  }

  SUBCASE("tensor-core kernel, TF32 and BF16 inputs") {
    // Two tiles each way with K not a multiple of the 32-step; whole tiles stored directly; a
    // tiny problem (no vectors: K = 7); A misaligned by one element (no vectors for A); an odd
    // ldc (staged stores).
    const std::vector<GemmCase> cases = {
        {130, 150, 40}, {128, 128, 64}, {5, 3, 7}, {33, 20, 24, 1}, {40, 36, 16, 0, 3}};
    bool seen_vec_a[2] = {}, seen_direct[2] = {};
    for_each_gemm_case(cases, [&](const GemmCase& g, bool ta, bool tb) {
        gk::TcPlan plan{};
        auto tc = [&](const auto* A, int64_t lda, const auto* B, int64_t ldb, float* C, int64_t ldc) {
          run_tc(ta, tb, g.M, g.N, g.K, A, lda, B, ldb, C, ldc, &plan);
        };
        // TF32: products of inputs rounded to 11 significant bits, float accumulation.
        check_gemm<float, float>(g, ta, tb, 1e-5, [](float f) { return f; }, identity, tf32_round_ref, ++seed, tc);
        seen_vec_a[plan.vec_a] = true;
        seen_direct[plan.direct_c] = true;
        // BF16: inputs are bfloat16 values (the float's top 16 bits), exact products.
        auto make_bf16 = [](float f) {
          uint32_t u;
          std::memcpy(&u, &f, sizeof u);
          return __nv_bfloat16{static_cast<uint16_t>(u >> 16)};
        };
        auto widen_bf16 = [](__nv_bfloat16 v) {
          const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
          float f;
          std::memcpy(&f, &u, sizeof f);
          return static_cast<double>(f);
        };
        check_gemm<__nv_bfloat16, float>(g, ta, tb, 1e-5, make_bf16, widen_bf16, identity, ++seed, tc);
      });
    CHECK((seen_vec_a[0] && seen_vec_a[1]));
    CHECK((seen_direct[0] && seen_direct[1]));
  }

  SUBCASE("the TF32 tolerance tells rounded from unrounded inputs") {
    // Else the TF32 cases above could not catch a kernel that skips the rounding: a float64 GEMM
    // of unrounded inputs must miss the rounded reference by more than 1e-5 sum |a b| somewhere.
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    const int K = 40;
    double worst = 0;
    for (int entry = 0; entry < 64; ++entry) {
      double rounded = 0, plain = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        const float a = dist(rng), b = dist(rng);
        rounded += tf32_round_ref(a) * tf32_round_ref(b);
        plain += static_cast<double>(a) * b;
        mag += std::abs(tf32_round_ref(a) * tf32_round_ref(b));
      }
      worst = std::max(worst, std::abs(plain - rounded) / (1e-5 * mag));
    }
    CHECK(worst > 2);
  }
}

TEST_CASE("cuda emulated: index_select gather and CSR scatter-add kernels equal the CPU op bit for bit") {
  namespace ik = lm::cuda_emulated::index_kernels;
  using lm::DType;
  using lm::Tensor;
  // (outer, n, inner) views of a (2, 7, 3, 5) tensor along dims 0..3, indices with repeats,
  // an unused row, and (dim 3) K = 0.
  const lm::Shape shape{2, 7, 3, 5};
  const std::vector<std::vector<int64_t>> indices = {{1, 0, 1}, {6, 0, 6, 6, 2, 0}, {2}, {}};
  int checked = 0;
  for (DType dt : {DType::F64, DType::F32, DType::BF16}) {
    const Tensor x = rand_tensor(shape, DType::F64, 91).to(dt);
    for (int64_t d = 0; d < 4; ++d) {
      const std::vector<int64_t>& idx = indices[(size_t)d];
      int64_t outer = 1, inner = 1;
      for (int64_t a = 0; a < d; ++a) outer *= shape[(size_t)a];
      for (int64_t a = d + 1; a < 4; ++a) inner *= shape[(size_t)a];
      const int64_t n = shape[(size_t)d], K = (int64_t)idx.size();
      INFO("dtype " << std::string(lm::dtype_name(dt)) << ", dim " << d);
      // Forward against the CPU op.
      Tensor xg = x.detach();
      const bool grad = dt != DType::BF16;
      if (grad) xg.set_requires_grad(true);
      const Tensor want = lm::index_select(xg, d, Tensor::from_vector(idx, {K}));
      Tensor got = Tensor::empty(want.shape(), dt);
      const int64_t total = outer * K * inner;
      if (dt == DType::BF16)
        emu::launch(2, 64, 0, [&] {
          ik::gather_rows_kernel<uint16_t>(outer, n, K, inner, idx.data(), static_cast<const uint16_t*>(x.raw_data()),
                                           static_cast<uint16_t*>(got.raw_data()));
        });
      else if (dt == DType::F32)
        emu::launch(2, 64, 0, [&] {
          ik::gather_rows_kernel<uint32_t>(outer, n, K, inner, idx.data(), static_cast<const uint32_t*>(x.raw_data()),
                                           static_cast<uint32_t*>(got.raw_data()));
        });
      else
        emu::launch(2, 64, 0, [&] {
          ik::gather_rows_kernel<uint64_t>(outer, n, K, inner, idx.data(), static_cast<const uint64_t*>(x.raw_data()),
                                           static_cast<uint64_t*>(got.raw_data()));
        });
      CHECK(total == want.numel());
      CHECK(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0);
      ++checked;
      if (!grad) continue;
      // Backward against the CPU autograd (rows added in ascending k from zero in both).
      const Tensor g = rand_tensor(want.shape(), dt, 92 + (unsigned)d);
      lm::backward(want, g);
      const lm::IndexCsr csr = lm::invert_index(idx, n);  // what the op uploads (ops/index_csr.h)
      const std::vector<int64_t>& offsets = csr.offsets;
      const std::vector<int64_t>& ks = csr.ks;
      Tensor gx = Tensor::full(shape, 7.0, dt);  // every element must be overwritten
      if (dt == DType::F32)
        emu::launch(3, 32, 0, [&] {
          ik::scatter_add_rows_kernel<float>(outer, n, K, inner, offsets.data(), ks.data(), g.data<float>(),
                                             gx.data<float>());
        });
      else
        emu::launch(3, 32, 0, [&] {
          ik::scatter_add_rows_kernel<double>(outer, n, K, inner, offsets.data(), ks.data(), g.data<double>(),
                                              gx.data<double>());
        });
      const Tensor gw = xg.grad();
      REQUIRE(gw.defined());
      CHECK(std::memcmp(gx.raw_data(), gw.raw_data(), gw.nbytes()) == 0);
      ++checked;
    }
  }
  CHECK(checked == 4 * 3 + 4 * 2);
}

namespace {

namespace cv = lm::cuda_emulated::conv2d_kernels;

// A conv geometry for both sides: the CPU kernels' struct and the device kernels' plain copy.
lm::cpu::Conv2dGeometry conv_geom(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                                  int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t groups) {
  lm::cpu::Conv2dGeometry g;
  g.N = N, g.C_in = C, g.H = H, g.W = W, g.C_out = C, g.KH = KH, g.KW = KW;
  g.OH = (H + pt + pb - KH) / sh + 1, g.OW = (W + pl + pr - KW) / sw + 1;
  g.stride_h = sh, g.stride_w = sw, g.pad_top = pt, g.pad_left = pl, g.groups = groups;
  return g;
}
cv::ConvGeom dev_geom(const lm::cpu::Conv2dGeometry& g) {
  return {g.N, g.C_in, g.H, g.W, g.C_out, g.KH, g.KW, g.OH, g.OW, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
          g.groups};
}

// im2col / col2im of one image, and (groups == C) the depthwise forward / grad_x / grad_weight,
// against the CPU kernels; 2 blocks of 64 threads (grid-stride loops run several rounds).
template <class T>
void check_conv_kernels(const lm::cpu::Conv2dGeometry& g, double tol) {
  INFO("C " << g.C_in << ", " << g.H << "x" << g.W << ", kernel " << g.KH << "x" << g.KW << ", stride " << g.stride_h
            << "," << g.stride_w << ", pad top/left " << g.pad_top << "," << g.pad_left << " -> " << g.OH << "x" << g.OW);
  const cv::ConvGeom dg = dev_geom(g);
  const int64_t CHW = g.C_in * g.H * g.W, rows = g.C_in * g.KH * g.KW, P = g.OH * g.OW;
  const auto x = random_vec<T>((size_t)(g.N * CHW), 61);
  const auto col_in = random_vec<T>((size_t)(rows * P), 62);
  std::vector<T> col((size_t)(rows * P), (T)7), rcol = col, im((size_t)CHW, (T)7), rim = im;
  lm::cpu::im2col<T>(x.data(), g.C_in, g, rcol.data());
  emu::launch(2, 64, 0, [&] { cv::im2col_kernel<T>(x.data(), g.C_in, dg, col.data()); });
  CHECK(col == rcol);  // a copy: bit for bit
  lm::cpu::col2im<T>(col_in.data(), g.C_in, g, rim.data());
  emu::launch(2, 64, 0, [&] { cv::col2im_kernel<T>(col_in.data(), g.C_in, dg, im.data()); });
  CHECK(max_err(im, rim) <= tol);
  if (!g.depthwise()) return;
  const auto w = random_vec<T>((size_t)(g.C_in * g.KH * g.KW), 63), b = random_vec<T>((size_t)g.C_in, 64);
  const auto gout = random_vec<T>((size_t)(g.N * g.C_in * P), 65);
  std::vector<T> out((size_t)(g.N * g.C_in * P), (T)7), rout = out;
  lm::cpu::depthwise_forward<T>(x.data(), w.data(), b.data(), g, rout.data());
  emu::launch(2, 64, 0, [&] { cv::depthwise_forward_kernel<T>(x.data(), w.data(), b.data(), dg, out.data()); });
  CHECK(max_err(out, rout) <= tol);
  std::vector<T> gx(x.size(), (T)7), rgx = gx, gw(w.size(), (T)7), rgw = gw;
  lm::cpu::depthwise_backward<T>(gout.data(), x.data(), w.data(), g, rgx.data(), rgw.data());
  emu::launch(2, 64, 0, [&] { cv::depthwise_backward_x_kernel<T>(gout.data(), w.data(), dg, gx.data()); });
  emu::launch(3, 64, 0, [&] { cv::depthwise_backward_w_kernel<T>(gout.data(), x.data(), dg, gw.data()); });
  CHECK(max_err(gx, rgx) <= tol);
  CHECK(max_err(gw, rgw) <= tol);
}

template <class T>
void check_pool_kernels(int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW, double tol) {
  INFO(H << "x" << W << " -> " << OH << "x" << OW);
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  const lm::Tensor x = rand_tensor({rows, H, W}, dt, 71), g = rand_tensor({rows, OH, OW}, dt, 72);
  lm::Tensor rout = lm::Tensor::empty({rows, OH, OW}, dt), rgx = lm::Tensor::empty({rows, H, W}, dt);
  lm::cpu::adaptive_avg_pool2d_forward(x, rows, H, W, OH, OW, rout);
  lm::cpu::adaptive_avg_pool2d_backward(g, rows, H, W, OH, OW, rgx);
  lm::Tensor out = lm::Tensor::full({rows, OH, OW}, 7.0, dt), gx = lm::Tensor::full({rows, H, W}, 7.0, dt);
  emu::launch(2, 64, 0, [&] {
    cv::adaptive_avg_pool2d_forward_kernel<T>(x.data<T>(), rows, H, W, OH, OW, out.data<T>());
  });
  emu::launch(2, 64, 0, [&] {
    cv::adaptive_avg_pool2d_backward_kernel<T>(g.data<T>(), rows, H, W, OH, OW, gx.data<T>());
  });
  CHECK(tensor_err(out, rout) <= tol);
  CHECK(tensor_err(gx, rgx) <= tol);
}

}  // namespace

// ---- image resize and normalize_channels -------------------------------------------------------

namespace {

template <class T>
lm::cpu::ResizeAxis axis_of(const lm::cpu::ResizeTable<T>& t) {
  lm::cpu::ResizeAxis a;
  a.src_size = t.src_size;
  a.dst_size = t.dst_size;
  a.offsets = lm::Tensor::from_vector(t.offsets, {static_cast<int64_t>(t.offsets.size())});
  a.src = lm::Tensor::from_vector(t.src, {static_cast<int64_t>(t.src.size())});
  a.weight = lm::Tensor::from_vector(t.weight, {static_cast<int64_t>(t.weight.size())});
  return a;
}

// The forward (rows, then columns) and the backward (transposed columns, then transposed rows)
// of a (planes, H, W) -> (planes, oh, ow) resize, as ops/resize.cpp runs them: CPU kernels vs
// the emulated CUDA kernels on 2 blocks of 64 threads (grid-stride over the rest).
template <class T>
void check_resize(int64_t planes, int64_t H, int64_t W, int64_t oh, int64_t ow, bool cubic, bool aa, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  const auto th = lm::cpu::make_resize_table<T>(H, oh, cubic, aa), tw = lm::cpu::make_resize_table<T>(W, ow, cubic, aa);
  const lm::cpu::ResizeAxis rows = axis_of(th), cols = axis_of(tw);
  const lm::cpu::ResizeAxis rows_t = axis_of(lm::cpu::transpose_resize_table(th));
  const lm::cpu::ResizeAxis cols_t = axis_of(lm::cpu::transpose_resize_table(tw));
  Tensor x = rand_tensor({planes, H, W}, dt, 41), g = rand_tensor({planes, oh, ow}, dt, 42);
  Tensor tmp_ref = Tensor::empty({planes, H, ow}, dt), y_ref = Tensor::empty({planes, oh, ow}, dt);
  lm::cpu::resize_horizontal_pass(x, planes * H, cols, tmp_ref);
  lm::cpu::resize_vertical_pass(tmp_ref, planes, ow, rows, y_ref);
  Tensor gtmp_ref = Tensor::empty({planes, H, ow}, dt), gx_ref = Tensor::empty({planes, H, W}, dt);
  lm::cpu::resize_vertical_pass(g, planes, ow, rows_t, gtmp_ref);
  lm::cpu::resize_horizontal_pass(gtmp_ref, planes * H, cols_t, gx_ref);

  namespace rk = lm::cuda_emulated::resize_kernels;
  auto horizontal = [&](const Tensor& in, int64_t nrows, const lm::cpu::ResizeAxis& a, Tensor& out) {
    emu::launch(2, 64, 0, [&] {
      rk::resize_horizontal_kernel<T>(in.data<T>(), nrows, a.src_size, a.dst_size, a.offsets.data<int64_t>(),
                                      a.src.data<int64_t>(), a.weight.data<T>(), out.data<T>());
    });
  };
  auto vertical = [&](const Tensor& in, int64_t width, const lm::cpu::ResizeAxis& a, Tensor& out) {
    emu::launch(2, 64, 0, [&] {
      rk::resize_vertical_kernel<T>(in.data<T>(), planes, a.src_size, a.dst_size, width, a.offsets.data<int64_t>(),
                                    a.src.data<int64_t>(), a.weight.data<T>(), out.data<T>());
    });
  };
  Tensor tmp = Tensor::empty({planes, H, ow}, dt), y = Tensor::empty({planes, oh, ow}, dt);
  horizontal(x, planes * H, cols, tmp);
  vertical(tmp, ow, rows, y);
  Tensor gtmp = Tensor::empty({planes, H, ow}, dt), gx = Tensor::empty({planes, H, W}, dt);
  vertical(g, ow, rows_t, gtmp);
  horizontal(gtmp, planes * H, cols_t, gx);
  INFO("resize " << planes << "x" << H << "x" << W << " -> " << oh << "x" << ow << (cubic ? " bicubic" : " bilinear")
                 << (aa ? " aa" : "") << " " << lm::dtype_name(dt));
  CHECK(tensor_err(y, y_ref) < tol);
  CHECK(tensor_err(gx, gx_ref) < tol);
  // The forward is a resampling: a constant image stays constant (every table row sums to 1).
  Tensor ones = Tensor::ones({planes, H, W}, dt), ones_tmp = Tensor::empty({planes, H, ow}, dt);
  Tensor ones_y = Tensor::empty({planes, oh, ow}, dt);
  horizontal(ones, planes * H, cols, ones_tmp);
  vertical(ones_tmp, ow, rows, ones_y);
  CHECK(tensor_err(ones_y, Tensor::ones({planes, oh, ow}, dt)) < 10 * tol);
}

template <class T>
void check_normalize_channels(int64_t N, int64_t C, int64_t hw, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({N * C, hw}, dt, 43), g = rand_tensor({N * C, hw}, dt, 44);
  std::vector<double> mv, sv;
  for (int64_t c = 0; c < C; ++c) {
    mv.push_back(0.1 * static_cast<double>(c) - 0.2);
    sv.push_back(0.5 + 0.25 * static_cast<double>(c));
  }
  Tensor mean = Tensor::from_vector(mv, {C}).to(dt), sd = Tensor::from_vector(sv, {C}).to(dt);
  Tensor y_ref = Tensor::empty({N * C, hw}, dt), gx_ref = Tensor::empty({N * C, hw}, dt);
  lm::cpu::normalize_channels_forward(x, N * C, C, hw, mean, sd, y_ref);
  lm::cpu::normalize_channels_backward(g, N * C, C, hw, sd, gx_ref);
  Tensor y = Tensor::empty({N * C, hw}, dt), gx = Tensor::empty({N * C, hw}, dt);
  namespace rk = lm::cuda_emulated::resize_kernels;
  emu::launch(2, 64, 0, [&] {
    rk::normalize_channels_kernel<T>(x.data<T>(), N * C, C, hw, mean.data<T>(), sd.data<T>(), y.data<T>());
  });
  emu::launch(2, 64, 0, [&] {
    rk::normalize_channels_backward_kernel<T>(g.data<T>(), N * C, C, hw, sd.data<T>(), gx.data<T>());
  });
  INFO("normalize_channels N " << N << " C " << C << " hw " << hw);
  CHECK(tensor_err(y, y_ref) < tol);
  CHECK(tensor_err(gx, gx_ref) < tol);
}

}  // namespace

TEST_CASE("cuda emulated: conv2d kernels (im2col, col2im, depthwise forward / backward) and adaptive pooling equal the CPU") {
  using lm::cpu::Conv2dGeometry;
  const std::vector<Conv2dGeometry> geoms = {
      conv_geom(1, 3, 7, 5, 3, 3, 2, 2, 0, 1, 0, 1, 1),  // stride 2, TF "same" (0, 1, 0, 1)
      conv_geom(1, 2, 6, 9, 2, 3, 1, 2, 1, 0, 0, 2, 1),  // 2x3 kernel, strides (1, 2), asymmetric padding
      conv_geom(2, 3, 7, 5, 3, 3, 2, 2, 0, 1, 0, 1, 3),  // depthwise 3x3 stride 2
      conv_geom(2, 3, 9, 8, 5, 5, 2, 2, 1, 2, 1, 2, 3),  // depthwise 5x5 stride 2, TF "same"
      conv_geom(1, 2, 5, 7, 5, 5, 1, 1, 2, 2, 2, 2, 2),  // depthwise 5x5 stride 1
  };
  for (const Conv2dGeometry& g : geoms) {
    check_conv_kernels<double>(g, 1e-12);
    check_conv_kernels<float>(g, 1e-5);
  }
  for (auto [H, W, OH, OW] : std::vector<std::array<int64_t, 4>>{{7, 5, 3, 2}, {5, 6, 2, 4}, {3, 4, 5, 6}, {7, 5, 1, 1}}) {
    check_pool_kernels<double>(3, H, W, OH, OW, 1e-12);
    check_pool_kernels<float>(3, H, W, OH, OW, 1e-6);
  }
}

TEST_CASE("cuda emulated: image resize passes (bilinear / bicubic, antialias on / off, up / down) and normalize_channels equal the CPU kernels") {
  for (bool cubic : {false, true})
    for (bool aa : {false, true}) {
      check_resize<double>(3, 13, 11, 7, 6, cubic, aa, 1e-12);   // down
      check_resize<double>(2, 5, 4, 9, 7, cubic, aa, 1e-12);     // up
      check_resize<double>(1, 6, 17, 11, 5, cubic, aa, 1e-12);   // up one axis, down the other
      check_resize<double>(1, 40, 3, 7, 1, cubic, aa, 1e-12);    // strong downscale, a size-1 output axis
      check_resize<float>(3, 32, 32, 28, 28, cubic, aa, 1e-6);   // the 256 -> 224 ratio
      check_resize<float>(2, 5, 4, 9, 7, cubic, aa, 1e-6);
    }
  check_normalize_channels<double>(2, 3, 37, 1e-12);
  check_normalize_channels<float>(3, 3, 50, 1e-6);
  check_normalize_channels<double>(1, 1, 5, 1e-12);
}
