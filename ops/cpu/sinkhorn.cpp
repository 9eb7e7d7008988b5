// Plain-domain Sinkhorn kernels (CPU): batched forward with plan or reduced outputs, and the
// exact backward of the unrolled recurrence by recomputation (the forward saves nothing).
// Derivation of the adjoint recurrence: docs/ops/sinkhorn.md. Log domain: sinkhorn_log.cpp.
#include "ops/cpu/sinkhorn.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "ops/cpu/sinkhorn_internal.h"

namespace lm::cpu {
namespace {

using sinkhorn_detail::check_args;
using sinkhorn_detail::chunk_begin;
using sinkhorn_detail::chunk_count;

// Kmat = exp(-C / eps), elementwise, n entries.
template <typename T>
void compute_kmat(const T* cost, int64_t n, T eps, T* kmat) {  // cost, kmat: (n)
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) kmat[i] = std::exp(-cost[i] / eps);
}

// Runs the recurrence for one problem. Stores the denominators of every iteration:
// S[t] = Kmat w_{t} + 1e-8 (K1) and R[t] = Kmat^T u_{t+1} + 1e-8 (K2), t = 0..n-1, so that
// u_{t+1} = a / S[t] and w_{t+1} = b / R[t] are recomputed bit-exactly. Leaves the final u, w in
// u, w and returns n, the number of iterations done (< iterations only when tol stops it).
template <typename T>
int run_iterations(const T* a,     // a: (K1)
                   const T* b,     // b: (K2)
                   const T* kmat,  // kmat: (K1, K2)
                   int64_t K1, int64_t K2, int iterations, double tol,
                   T* S,           // S: (iterations, K1) out
                   T* R,           // R: (iterations, K2) out
                   T* u,           // u: (K1) out
                   T* w,           // w: (K2) out
                   T* kw) {        // kw: (K1) scratch
  const T delta = static_cast<T>(kSinkhornStabiliser);
  for (int64_t i = 0; i < K1; ++i) u[i] = T(1) / static_cast<T>(K1);
  for (int64_t j = 0; j < K2; ++j) w[j] = T(1) / static_cast<T>(K2);
  int n = 0;
  for (int t = 0; t < iterations; ++t) {
    for (int64_t i = 0; i < K1; ++i) {  // kw = Kmat w
      const T* row = kmat + i * K2;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < K2; ++j) acc += row[j] * w[j];
      kw[i] = acc;
    }
    if (tol > 0.0 && t > 0) {  // row-marginal error of the current (u, w)
      double err = 0.0;
      for (int64_t i = 0; i < K1; ++i) err += std::abs(static_cast<double>(u[i] * kw[i] - a[i]));
      if (err < tol) break;
    }
    T* s = S + t * K1;
    for (int64_t i = 0; i < K1; ++i) {
      s[i] = kw[i] + delta;
      u[i] = a[i] / s[i];
    }
    T* r = R + t * K2;
    for (int64_t j = 0; j < K2; ++j) r[j] = 0;
    for (int64_t i = 0; i < K1; ++i) {  // r = Kmat^T u, row by row (contiguous)
      const T* row = kmat + i * K2;
      const T ui = u[i];
#pragma omp simd
      for (int64_t j = 0; j < K2; ++j) r[j] += row[j] * ui;
    }
    for (int64_t j = 0; j < K2; ++j) {
      r[j] += delta;
      w[j] = b[j] / r[j];
    }
    n = t + 1;
  }
  return n;
}

// Per-thread scratch of one problem.
template <typename T>
struct Scratch {
  std::vector<T> S, R, u, w, kw, kmat, gu, gw, gw_next, gr, grow, ga, gb, ut, wprev, gk;
  Scratch(int64_t K1, int64_t K2, int iterations, bool own_kmat, bool own_gk)
      : S(static_cast<size_t>(std::max(iterations, 1) * K1)),
        R(static_cast<size_t>(std::max(iterations, 1) * K2)),
        u(K1), w(K2), kw(K1), kmat(own_kmat ? K1 * K2 : 0), gu(K1), gw(K2), gw_next(K2), gr(K2),
        grow(K2), ga(K1), gb(K2), ut(K1), wprev(K2), gk(own_gk ? K1 * K2 : 0) {}
};

// Writes the requested outputs of one problem from its final u, w.
template <typename T>
void write_outputs(const T* kmat, int64_t K1, int64_t K2, const T* u, const T* w, T* u_out,
                   T* w_out, T* plan, T* col_sums, T* row_sums, T* kw) {
  if (u_out) std::copy(u, u + K1, u_out);
  if (w_out) std::copy(w, w + K2, w_out);
  if (plan) {
    for (int64_t i = 0; i < K1; ++i) {
      const T* row = kmat + i * K2;
      T* prow = plan + i * K2;
      const T ui = u[i];
#pragma omp simd
      for (int64_t j = 0; j < K2; ++j) prow[j] = ui * row[j] * w[j];
    }
  }
  if (row_sums) {
    for (int64_t i = 0; i < K1; ++i) {
      const T* row = kmat + i * K2;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < K2; ++j) acc += row[j] * w[j];
      row_sums[i] = u[i] * acc;
    }
  }
  if (col_sums) {
    T* ktu = kw;  // reuse as (K2) scratch: caller gives max(K1, K2) room
    for (int64_t j = 0; j < K2; ++j) ktu[j] = 0;
    for (int64_t i = 0; i < K1; ++i) {
      const T* row = kmat + i * K2;
      const T ui = u[i];
#pragma omp simd
      for (int64_t j = 0; j < K2; ++j) ktu[j] += row[j] * ui;
    }
    for (int64_t j = 0; j < K2; ++j) col_sums[j] = w[j] * ktu[j];
  }
}

// Backward of one problem. Adds d loss / d Kmat into gk (K1, K2) when gk != nullptr; writes
// d loss / d a, d b into ga, gb. Upstream gradient pointers are per-problem (or nullptr).
template <typename T>
void backward_problem(const T* a, const T* b, const T* kmat, int64_t K1, int64_t K2,
                      const SinkhornOptions& opt, const T* gP, const T* gc, const T* grho,
                      const T* gu_out, const T* gw_out, Scratch<T>& s, T* gk) {
  const int n = run_iterations(a, b, kmat, K1, K2, opt.iterations, opt.tol, s.S.data(),
                               s.R.data(), s.u.data(), s.w.data(), s.kw.data());
  T* gu = s.gu.data();
  T* gw = s.gw.data();
  T* ga = s.ga.data();
  T* gb = s.gb.data();
  const T* u = s.u.data();
  const T* w = s.w.data();
  for (int64_t i = 0; i < K1; ++i) gu[i] = gu_out ? gu_out[i] : T(0);
  for (int64_t j = 0; j < K2; ++j) gw[j] = gw_out ? gw_out[j] : T(0);
  for (int64_t i = 0; i < K1; ++i) ga[i] = 0;
  for (int64_t j = 0; j < K2; ++j) gb[j] = 0;

  // Outputs: plan P = u_i K_ij w_j, col sums c_j = sum_i P_ij, row sums rho_i = sum_j P_ij.
  // With G_ij = gP_ij + gc_j + grho_i:  gu_i += sum_j G_ij K_ij w_j,  gw_j += sum_i G_ij K_ij u_i,
  // gK_ij += G_ij u_i w_j.
  if (gP || gc || grho) {
    T* grow = s.grow.data();
    for (int64_t i = 0; i < K1; ++i) {
      const T gri = grho ? grho[i] : T(0);
      for (int64_t j = 0; j < K2; ++j) grow[j] = (gP ? gP[i * K2 + j] : T(0)) + (gc ? gc[j] : T(0)) + gri;
      const T* row = kmat + i * K2;
      const T ui = u[i];
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < K2; ++j) {
        acc += grow[j] * row[j] * w[j];
        gw[j] += grow[j] * row[j] * ui;
      }
      gu[i] += acc;
      if (gk) {
        T* gkrow = gk + i * K2;
#pragma omp simd
        for (int64_t j = 0; j < K2; ++j) gkrow[j] += grow[j] * ui * w[j];
      }
    }
  }

  // Adjoint recurrence, t = n..1 (S[t-1], R[t-1] are iteration t's denominators).
  T* ut = s.ut.data();
  T* wprev = s.wprev.data();
  T* gr = s.gr.data();
  T* gwn = s.gw_next.data();
  for (int t = n; t >= 1; --t) {
    const T* St = s.S.data() + (t - 1) * K1;
    const T* Rt = s.R.data() + (t - 1) * K2;
    for (int64_t i = 0; i < K1; ++i) ut[i] = a[i] / St[i];
    if (t >= 2) {
      const T* Rp = s.R.data() + (t - 2) * K2;
      for (int64_t j = 0; j < K2; ++j) wprev[j] = b[j] / Rp[j];
    } else {
      for (int64_t j = 0; j < K2; ++j) wprev[j] = T(1) / static_cast<T>(K2);
    }
    // w_t = b / R_t:  gb += gw / R_t;  gr = -gw * w_t / R_t   (w_t = b / R_t)
    for (int64_t j = 0; j < K2; ++j) {
      const T wt = b[j] / Rt[j];
      gb[j] += gw[j] / Rt[j];
      gr[j] = -gw[j] * wt / Rt[j];
      gwn[j] = 0;
    }
    // R_t = Kmat^T u_t + d:  gu_i += sum_j K_ij gr_j;  gK_ij += u_t[i] gr_j
    // u_t = a / S_t:         ga += gu / S_t;  gs = -gu * u_t / S_t
    // S_t = Kmat w_{t-1} + d: gw_{t-1} = Kmat^T gs;  gK_ij += gs_i w_{t-1}[j]
    for (int64_t i = 0; i < K1; ++i) {
      const T* row = kmat + i * K2;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < K2; ++j) acc += row[j] * gr[j];
      const T gui = gu[i] + acc;
      ga[i] += gui / St[i];
      const T gsi = -gui * ut[i] / St[i];
#pragma omp simd
      for (int64_t j = 0; j < K2; ++j) gwn[j] += row[j] * gsi;
      if (gk) {
        T* gkrow = gk + i * K2;
        const T uti = ut[i];
#pragma omp simd
        for (int64_t j = 0; j < K2; ++j) gkrow[j] += uti * gr[j] + gsi * wprev[j];
      }
      gu[i] = 0;  // u_{t-1} feeds only R_{t-1}
    }
    std::swap(gw, gwn);
  }
}

// grad_cost from d loss / d Kmat: dC = -dKmat o Kmat / eps.
template <typename T>
void kmat_grad_to_cost_grad(const T* gk, const T* kmat, int64_t n, T eps, T* gc) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) gc[i] = -(gk[i] * kmat[i]) / eps;
}

}  // namespace

int64_t sinkhorn_backward_scratch_elements(int64_t K1, int64_t K2, int iterations, bool log_domain) {
  const int64_t it = std::max(iterations, 1);
  // log: L_t, M_t per iteration; f, log a, gf, ga (K1); g, log b, col max/sum, gg, gg', gb,
  // g_{t-1} (K2); one (K1, K2) exponent buffer.
  if (log_domain) return it * (K1 + K2) + 4 * K1 + 8 * K2 + K1 * K2;
  // plain: S_t, R_t per iteration; u, Kw, gu, ga, u_t (K1); w, gw, gw', gr, G row, gb, w_{t-1}
  // (K2); with a batched cost also this problem's Kmat and dKmat (K1, K2) each.
  return it * (K1 + K2) + 5 * K1 + 7 * K2 + 2 * K1 * K2;
}

template <typename T>
void sinkhorn_forward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1, int64_t K2,
                      bool shared_cost, const SinkhornOptions& opt, T* u_out, T* w_out,
                      T* plan_out, T* col_sums_out, T* row_sums_out, int32_t* iterations_run) {
  check_args("sinkhorn_forward", a, b, cost, B, K1, K2, opt);
  if (B == 0) return;
  const T eps = static_cast<T>(opt.epsilon);
  const int64_t KK = K1 * K2;
  std::vector<T> shared_kmat(shared_cost ? KK : 0);
  if (shared_cost) compute_kmat(cost, KK, eps, shared_kmat.data());
#pragma omp parallel
  {
    Scratch<T> s(K1, K2, opt.iterations, !shared_cost, false);
    std::vector<T> kw(std::max(K1, K2));
#pragma omp for schedule(dynamic, 32)
    for (int64_t p = 0; p < B; ++p) {
      const T* kmat = shared_kmat.data();
      if (!shared_cost) {
        compute_kmat(cost + p * KK, KK, eps, s.kmat.data());
        kmat = s.kmat.data();
      }
      const int n = run_iterations(a + p * K1, b + p * K2, kmat, K1, K2, opt.iterations, opt.tol,
                                   s.S.data(), s.R.data(), s.u.data(), s.w.data(), kw.data());
      if (iterations_run) iterations_run[p] = n;
      write_outputs(kmat, K1, K2, s.u.data(), s.w.data(), u_out ? u_out + p * K1 : nullptr,
                    w_out ? w_out + p * K2 : nullptr, plan_out ? plan_out + p * KK : nullptr,
                    col_sums_out ? col_sums_out + p * K2 : nullptr,
                    row_sums_out ? row_sums_out + p * K1 : nullptr, kw.data());
    }
  }
}

template <typename T>
void sinkhorn_backward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1, int64_t K2,
                       bool shared_cost, const SinkhornOptions& opt, const T* grad_plan,
                       const T* grad_col_sums, const T* grad_row_sums, const T* grad_u,
                       const T* grad_w, T* grad_a, T* grad_b, T* grad_cost) {
  check_args("sinkhorn_backward", a, b, cost, B, K1, K2, opt);
  const int64_t KK = K1 * K2;
  const T eps = static_cast<T>(opt.epsilon);
  if (B == 0) {
    if (grad_cost && shared_cost) std::fill(grad_cost, grad_cost + KK, T(0));
    return;
  }
  auto one = [&](int64_t p, const T* kmat, Scratch<T>& s, T* gk) {
    backward_problem(a + p * K1, b + p * K2, kmat, K1, K2, opt,
                     grad_plan ? grad_plan + p * KK : nullptr,
                     grad_col_sums ? grad_col_sums + p * K2 : nullptr,
                     grad_row_sums ? grad_row_sums + p * K1 : nullptr,
                     grad_u ? grad_u + p * K1 : nullptr, grad_w ? grad_w + p * K2 : nullptr, s, gk);
    if (grad_a) std::copy(s.ga.begin(), s.ga.end(), grad_a + p * K1);
    if (grad_b) std::copy(s.gb.begin(), s.gb.end(), grad_b + p * K2);
  };

  if (shared_cost) {
    std::vector<T> kmat(KK);
    compute_kmat(cost, KK, eps, kmat.data());
    const int64_t chunks = chunk_count(B);
    std::vector<T> acc(grad_cost ? chunks * KK : 0, T(0));
#pragma omp parallel
    {
      Scratch<T> s(K1, K2, opt.iterations, false, false);
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c) {
        T* gk = grad_cost ? acc.data() + c * KK : nullptr;
        for (int64_t p = chunk_begin(c, B, chunks); p < chunk_begin(c + 1, B, chunks); ++p)
          one(p, kmat.data(), s, gk);
      }
    }
    if (grad_cost) {
      for (int64_t c = 1; c < chunks; ++c)  // fixed order
        for (int64_t k = 0; k < KK; ++k) acc[k] += acc[c * KK + k];
      kmat_grad_to_cost_grad(acc.data(), kmat.data(), KK, eps, grad_cost);
    }
    return;
  }
#pragma omp parallel
  {
    Scratch<T> s(K1, K2, opt.iterations, true, grad_cost != nullptr);
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < B; ++p) {
      compute_kmat(cost + p * KK, KK, eps, s.kmat.data());
      if (grad_cost) std::fill(s.gk.begin(), s.gk.end(), T(0));
      one(p, s.kmat.data(), s, grad_cost ? s.gk.data() : nullptr);
      if (grad_cost) kmat_grad_to_cost_grad(s.gk.data(), s.kmat.data(), KK, eps, grad_cost + p * KK);
    }
  }
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
