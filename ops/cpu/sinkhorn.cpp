// Plain-domain Sinkhorn kernels (CPU): batched forward with plan or reduced outputs, and the
// exact backward of the unrolled recurrence by recomputation (the forward saves nothing).
// Derivation of the adjoint recurrence: docs/ops/sinkhorn.md. Log domain: sinkhorn_log.cpp.
//
// Layout: problems are processed in groups of L "lanes" (L = 16 floats / 8 doubles, one
// 64-byte vector), every per-problem vector stored lane-innermost, x[i * L + l]. Each lane is
// one problem and lanes never mix, so every loop below is a loop over lanes with the same
// scalar arithmetic in each: the compiler vectorises across problems, which needs no
// horizontal sums and no remainder handling for K1 = 46, K2 = 10. The last group is padded with
// copies of its first problem (zero upstream gradients), whose results are dropped. A
// problem's arithmetic is therefore the same wherever it sits in the batch and whatever the
// batch size: per-problem outputs are bit-identical to a single-problem call.
//
// The group kernels are compiled three times (portable, AVX2, AVX-512F) and one is chosen at
// run time (LIBRAMIL_SINKHORN_KERNEL=portable|avx2|avx512 overrides). No a*b+c is contracted
// into a fused multiply-add in this file (pragma below), so the three do the same IEEE
// operations in the same order and give the same bits.
#pragma GCC optimize("fp-contract=off")
// Lane vectors are passed only between always_inline helpers: no call crosses the vector ABI.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "ops/cpu/sinkhorn.h"
#include "ops/cpu/isa.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "ops/cpu/sinkhorn_internal.h"
#include "ops/cpu/sinkhorn_lanes.h"

namespace lm::cpu {
namespace {

using namespace sinkhorn_detail;  // the lane kernels (sinkhorn_lanes.h), check_args, kGradChunks

// ---- the ISA variants of the group kernels -------------------------------------------------------
// Non-inlined wrappers with a target attribute; the group kernels above are always_inline, so
// each wrapper compiles a whole group's work for its target. (The OpenMP regions below stay in
// plain functions: an outlined parallel region would not inherit a wrapper's target.)

template <typename T>
using ForwardFn = void (*)(const Args<T>&, int64_t, int, Work<T>&);
template <typename T>
using BackwardFn = void (*)(const Args<T>&, int64_t, int, Work<T>&, bool);

template <typename T, int L, bool PL>
void forward_portable(const Args<T>& g, int64_t p0, int m, Work<T>& ws) { forward_group<T, L, PL>(g, p0, m, ws); }
template <typename T, int L, bool PL>
void backward_portable(const Args<T>& g, int64_t p0, int m, Work<T>& ws, bool gk) {
  backward_group<T, L, PL>(g, p0, m, ws, gk);
}
#if LM_X86
template <typename T, int L, bool PL>
[[gnu::target("avx2")]] void forward_avx2(const Args<T>& g, int64_t p0, int m, Work<T>& ws) {
  forward_group<T, L, PL>(g, p0, m, ws);
}
template <typename T, int L, bool PL>
[[gnu::target("avx2")]] void backward_avx2(const Args<T>& g, int64_t p0, int m, Work<T>& ws, bool gk) {
  backward_group<T, L, PL>(g, p0, m, ws, gk);
}
template <typename T, int L, bool PL>
[[gnu::target("avx512f")]] void forward_avx512(const Args<T>& g, int64_t p0, int m, Work<T>& ws) {
  forward_group<T, L, PL>(g, p0, m, ws);
}
template <typename T, int L, bool PL>
[[gnu::target("avx512f")]] void backward_avx512(const Args<T>& g, int64_t p0, int m, Work<T>& ws, bool gk) {
  backward_group<T, L, PL>(g, p0, m, ws, gk);
}
#endif  // LM_X86

// The variant in use: the best the CPU runs, LIBRAMIL_SINKHORN_KERNEL, or sinkhorn_set_kernel
// (isa.h's KernelChoice).
KernelChoice& kernel_choice() {
  static KernelChoice c("LIBRAMIL_SINKHORN_KERNEL");
  return c;
}
CpuIsa chosen_isa() { return kernel_choice().get(); }

// ---- drivers: OpenMP over groups ----------------------------------------------------------------

template <typename T, int L, bool PL>
void forward_all(const Args<T>& g, ForwardFn<T> fn) {
  const int64_t groups = (g.B + L - 1) / L;
  // One group (paper mode: a single problem) stays on the calling thread: a parallel region
  // would only add a barrier, which costs a time slice when the machine is busy.
#pragma omp parallel if (groups > 1)
  {
    Work<T> ws(g.K1, g.K2, L, g.opt.iterations, PL, false, false);
#pragma omp for schedule(dynamic, 2)
    for (int64_t q = 0; q < groups; ++q) fn(g, q * L, static_cast<int>(std::min<int64_t>(L, g.B - q * L)), ws);
  }
}

// Shared cost: grad_cost is summed over problems in min(S, 64) fixed chunks of whole sets of
// kSlots consecutive problems (S sets in all); within a chunk, problem p is added into slot
// p % kSlots in problem order, then the slots are added in order into the chunk's accumulator;
// finally the chunks in order. Neither the thread count nor the vector width changes a bit.
// Batched cost: each problem's grad_cost from its own lane.
template <typename T, int L, bool PL>
void backward_all(const Args<T>& g, BackwardFn<T> fn) {
  constexpr int64_t LS = kSlots<T>;
  const int64_t K1 = g.K1, K2 = g.K2, KK = K1 * K2;
  const T eps = static_cast<T>(g.opt.epsilon);
  const bool want_gk = g.gcost != nullptr;
  auto group_size = [&](int64_t p0) { return static_cast<int>(std::min<int64_t>(L, g.B - p0)); };
  if constexpr (!PL) {
    const int64_t sets = (g.B + LS - 1) / LS, chunks = std::min<int64_t>(sets, kGradChunks);
    std::vector<T> acc(want_gk ? chunks * KK : 0, T(0));
#pragma omp parallel if (chunks > 1)
    {
      Work<T> ws(K1, K2, L, g.opt.iterations, false, true, g.gP != nullptr);
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c) {
        if (want_gk) std::fill(ws.gk.p, ws.gk.p + KK * LS, T(0));
        const int64_t end = std::min(g.B, (c + 1) * sets / chunks * LS);
        for (int64_t p0 = c * sets / chunks * LS; p0 < end; p0 += L) fn(g, p0, group_size(p0), ws, want_gk);
        if (want_gk) {
          T* out = acc.data() + c * KK;
          for (int64_t x = 0; x < KK; ++x) {
            T sum = ws.gk.p[x * LS];
            for (int64_t l = 1; l < LS; ++l) sum += ws.gk.p[x * LS + l];
            out[x] = sum;
          }
        }
      }
    }
    if (want_gk) {
      for (int64_t c = 1; c < chunks; ++c)  // fixed order
        for (int64_t x = 0; x < KK; ++x) acc[x] += acc[c * KK + x];
      for (int64_t x = 0; x < KK; ++x) g.gcost[x] = -(acc[x] * g.kshared[x]) / eps;
    }
  } else {
    const int64_t groups = (g.B + L - 1) / L;
#pragma omp parallel if (groups > 1)
    {
      Work<T> ws(K1, K2, L, g.opt.iterations, true, true, g.gP != nullptr);
#pragma omp for schedule(dynamic, 1)
      for (int64_t q = 0; q < groups; ++q) {
        const int64_t p0 = q * L;
        const int m = group_size(p0);
        const int64_t off = p0 % LS;
        if (want_gk)
          for (int64_t x = 0; x < KK; ++x) std::fill(ws.gk.p + x * LS + off, ws.gk.p + x * LS + off + L, T(0));
        fn(g, p0, m, ws, want_gk);
        if (want_gk)
          for (int l = 0; l < m; ++l)
            lane_cost_grad<T, L>(ws.gk.p + off, ws.k.p, KK, l, eps, g.gcost + (p0 + l) * KK);
      }
    }
  }
}

template <typename T, int L, bool PL>
void drive(const Args<T>& g, bool backward, ForwardFn<T> f, BackwardFn<T> b) {
  if (backward) backward_all<T, L, PL>(g, b);
  else forward_all<T, L, PL>(g, f);
}

// The chosen ISA's kernels with one vector of lanes per group (16 / 8 / 4 floats for AVX-512 /
// AVX2 / portable SSE2), or one lane (scalar code) when early stopping lets each problem stop
// on its own.
template <typename T, bool PL>
void dispatch(const Args<T>& g, bool backward) {
  [[maybe_unused]] constexpr int L512 = 64 / sizeof(T), L256 = 32 / sizeof(T), L128 = 16 / sizeof(T);
  const bool scalar = g.opt.tol > 0.0;
  switch (chosen_isa()) {
#if LM_X86
    case CpuIsa::Avx512:
      if (scalar) return drive<T, 1, PL>(g, backward, forward_avx512<T, 1, PL>, backward_avx512<T, 1, PL>);
      return drive<T, L512, PL>(g, backward, forward_avx512<T, L512, PL>, backward_avx512<T, L512, PL>);
    case CpuIsa::Avx2:
      if (scalar) return drive<T, 1, PL>(g, backward, forward_avx2<T, 1, PL>, backward_avx2<T, 1, PL>);
      return drive<T, L256, PL>(g, backward, forward_avx2<T, L256, PL>, backward_avx2<T, L256, PL>);
#else
    case CpuIsa::Avx512:  // never chosen off x86 (isa_allows)
    case CpuIsa::Avx2:
#endif
    case CpuIsa::Scalar:
      break;
  }
  if (scalar) return drive<T, 1, PL>(g, backward, forward_portable<T, 1, PL>, backward_portable<T, 1, PL>);
  drive<T, L128, PL>(g, backward, forward_portable<T, L128, PL>, backward_portable<T, L128, PL>);
}

template <typename T>
void run(Args<T>& g, bool backward) {
  std::vector<T> kshared;
  if (g.shared) {  // Kmat = exp(-C / eps), once
    const T eps = static_cast<T>(g.opt.epsilon);
    kshared.resize(g.K1 * g.K2);
    for (int64_t x = 0; x < g.K1 * g.K2; ++x) kshared[x] = std::exp(-g.cost[x] / eps);
    g.kshared = kshared.data();
    dispatch<T, false>(g, backward);
  } else {
    dispatch<T, true>(g, backward);
  }
}

}  // namespace

bool sinkhorn_set_kernel(const std::string& name) { return kernel_choice().set(name); }

const char* sinkhorn_kernel_name() { return KernelChoice::name(chosen_isa()); }

int64_t sinkhorn_backward_scratch_elements(int64_t K1, int64_t K2, int iterations, bool log_domain) {
  const int64_t it = std::max(iterations, 1);
  // log: L_t, M_t per iteration; f, log a, gf, ga (K1); g, log b, col max/sum, gg, gg', gb,
  // g_{t-1} (K2); one (K1, K2) exponent buffer.
  if (log_domain) return it * (K1 + K2) + 4 * K1 + 8 * K2 + K1 * K2;
  // plain, float32 lanes (a group of 16 problems): S_t, R_t, u_t, w_t per iteration and the
  // group's vectors, with a batched cost also the lanes' Kmat and dKmat (K1, K2).
  return work_elements(K1, K2, kSlots<float>, iterations);
}

template <typename T>
void sinkhorn_forward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1, int64_t K2,
                      bool shared_cost, const SinkhornOptions& opt, T* u_out, T* w_out,
                      T* plan_out, T* col_sums_out, T* row_sums_out, int32_t* iterations_run) {
  check_args("sinkhorn_forward", a, b, cost, B, K1, K2, opt);
  if (B == 0) return;
  Args<T> g;
  g.a = a, g.b = b, g.cost = cost, g.B = B, g.K1 = K1, g.K2 = K2, g.shared = shared_cost, g.opt = opt;
  g.u_out = u_out, g.w_out = w_out, g.plan_out = plan_out, g.col_out = col_sums_out, g.row_out = row_sums_out;
  g.iters_out = iterations_run;
  run(g, false);
}

template <typename T>
void sinkhorn_backward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1, int64_t K2,
                       bool shared_cost, const SinkhornOptions& opt, const T* grad_plan,
                       const T* grad_col_sums, const T* grad_row_sums, const T* grad_u,
                       const T* grad_w, T* grad_a, T* grad_b, T* grad_cost) {
  check_args("sinkhorn_backward", a, b, cost, B, K1, K2, opt);
  if (B == 0) {
    if (grad_cost && shared_cost) std::fill(grad_cost, grad_cost + K1 * K2, T(0));
    return;
  }
  Args<T> g;
  g.a = a, g.b = b, g.cost = cost, g.B = B, g.K1 = K1, g.K2 = K2, g.shared = shared_cost, g.opt = opt;
  g.gP = grad_plan, g.gC = grad_col_sums, g.gRho = grad_row_sums, g.gU = grad_u, g.gW = grad_w;
  g.ga = grad_a, g.gb = grad_b, g.gcost = grad_cost;
  run(g, true);
}

#define LM_SINKHORN_INSTANTIATE(T)                                                              \
  template void sinkhorn_forward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t,    \
                                    bool, const SinkhornOptions&, T*, T*, T*, T*, T*, int32_t*); \
  template void sinkhorn_backward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t,   \
                                     bool, const SinkhornOptions&, const T*, const T*, const T*, \
                                     const T*, const T*, T*, T*, T*);
LM_SINKHORN_INSTANTIATE(float)
LM_SINKHORN_INSTANTIATE(double)
#undef LM_SINKHORN_INSTANTIATE

}  // namespace lm::cpu
