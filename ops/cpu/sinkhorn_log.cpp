// Log-domain (stabilised) Sinkhorn kernels (CPU): forward on the potentials f = eps log u,
// g = eps log w with log-sum-exp updates, and the exact backward of that unrolled recurrence by
// recomputation. Declared in ops/cpu/sinkhorn.h; derivation in docs/ops/sinkhorn.md.
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/sinkhorn.h"
#include "ops/cpu/sinkhorn_internal.h"

namespace lm::cpu {
namespace {

using sinkhorn_detail::check_args;
using sinkhorn_detail::chunk_begin;
using sinkhorn_detail::chunk_count;

template <typename T>
constexpr T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// log(exp(x) + exp(y)), either may be -inf.
template <typename T>
T log_add_exp(T x, T y) {
  const T m = std::max(x, y);
  if (m == neg_inf<T>()) return m;
  return m + std::log(std::exp(x - m) + std::exp(y - m));
}

// Per-thread scratch of one problem.
template <typename T>
struct LogScratch {
  std::vector<T> L, M, f, g, loga, logb, x, colmax, colsum, gf, gg, gg_next, ga, gb, gprev, gc;
  LogScratch(int64_t K1, int64_t K2, int iterations, bool own_gc)
      : L(static_cast<size_t>(std::max(iterations, 1) * K1)),
        M(static_cast<size_t>(std::max(iterations, 1) * K2)),
        f(K1), g(K2), loga(K1), logb(K2), x(K1 * K2), colmax(K2), colsum(K2), gf(K1), gg(K2),
        gg_next(K2), ga(K1), gb(K2), gprev(K2), gc(own_gc ? K1 * K2 : 0) {}
};

// Runs the log-domain recurrence for one problem. Stores the log normalisers of every
// iteration, L[t] (K1) and M[t] (K2), t = 0..n-1 (in units of 1/eps):
//   f_{t+1} = eps (log a - L[t]),  L[t]_i = LSE_j((g_t[j] - C_ij) / eps [, log 1e-8])
//   g_{t+1} = eps (log b - M[t]),  M[t]_j = LSE_i((f_{t+1}[i] - C_ij) / eps [, log 1e-8])
// Leaves the final potentials in s.f, s.g; returns n.
template <typename T>
int run_log_iterations(const T* a, const T* b, const T* C, int64_t K1, int64_t K2,
                       const SinkhornOptions& opt, LogScratch<T>& s) {
  const T eps = static_cast<T>(opt.epsilon);
  const bool stab = opt.log_domain_stabiliser;
  const T ld = static_cast<T>(std::log(kSinkhornStabiliser));
  T* f = s.f.data();
  T* g = s.g.data();
  T* loga = s.loga.data();
  T* logb = s.logb.data();
  T* x = s.x.data();
  for (int64_t i = 0; i < K1; ++i) loga[i] = std::log(a[i]);
  for (int64_t j = 0; j < K2; ++j) logb[j] = std::log(b[j]);
  for (int64_t i = 0; i < K1; ++i) f[i] = eps * std::log(T(1) / static_cast<T>(K1));
  for (int64_t j = 0; j < K2; ++j) g[j] = eps * std::log(T(1) / static_cast<T>(K2));
  int n = 0;
  for (int t = 0; t < opt.iterations; ++t) {
    T* L = s.L.data() + t * K1;
    for (int64_t i = 0; i < K1; ++i) {  // L'_i = LSE_j (g_j - C_ij) / eps  (without 1e-8)
      const T* c = C + i * K2;
      T* xr = x + i * K2;
      T m = neg_inf<T>();
      for (int64_t j = 0; j < K2; ++j) {
        xr[j] = (g[j] - c[j]) / eps;
        m = std::max(m, xr[j]);
      }
      T sum = 0;
      if (m != neg_inf<T>()) {
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < K2; ++j) sum += std::exp(xr[j] - m);
      }
      L[i] = m == neg_inf<T>() ? m : m + std::log(sum);
    }
    if (opt.tol > 0.0 && t > 0) {  // row marginal of the current (f, g): exp(f_i/eps + L'_i)
      double err = 0.0;
      for (int64_t i = 0; i < K1; ++i)
        err += std::abs(static_cast<double>(std::exp(f[i] / eps + L[i]) - a[i]));
      if (err < opt.tol) break;
    }
    for (int64_t i = 0; i < K1; ++i) {
      if (stab) L[i] = log_add_exp(L[i], ld);
      f[i] = eps * (loga[i] - L[i]);
    }
    T* M = s.M.data() + t * K2;
    T* cm = s.colmax.data();
    T* cs = s.colsum.data();
    for (int64_t j = 0; j < K2; ++j) {
      cm[j] = neg_inf<T>();
      cs[j] = 0;
    }
    for (int64_t i = 0; i < K1; ++i) {  // column max of (f_i - C_ij) / eps
      const T* c = C + i * K2;
      T* xr = x + i * K2;
      const T fi = f[i];
      for (int64_t j = 0; j < K2; ++j) {
        xr[j] = (fi - c[j]) / eps;
        cm[j] = std::max(cm[j], xr[j]);
      }
    }
    for (int64_t i = 0; i < K1; ++i) {
      const T* xr = x + i * K2;
      for (int64_t j = 0; j < K2; ++j)
        if (cm[j] != neg_inf<T>()) cs[j] += std::exp(xr[j] - cm[j]);
    }
    for (int64_t j = 0; j < K2; ++j) {
      M[j] = cm[j] == neg_inf<T>() ? cm[j] : cm[j] + std::log(cs[j]);
      if (stab) M[j] = log_add_exp(M[j], ld);
      g[j] = eps * (logb[j] - M[j]);
    }
    n = t + 1;
  }
  return n;
}

// Backward of one problem (derivation: docs/ops/sinkhorn.md, "log domain"). Adds d loss / d C
// into gC (K1, K2) when gC != nullptr; writes d loss / d a, d b into s.ga, s.gb.
template <typename T>
void log_backward_problem(const T* a, const T* b, const T* C, int64_t K1, int64_t K2,
                          const SinkhornOptions& opt, const T* gP, const T* gcs, const T* grho,
                          const T* gf_out, const T* gg_out, LogScratch<T>& s, T* gC) {
  const int n = run_log_iterations(a, b, C, K1, K2, opt, s);
  const T eps = static_cast<T>(opt.epsilon);
  T* gf = s.gf.data();
  T* gg = s.gg.data();
  T* ggn = s.gg_next.data();
  T* ga = s.ga.data();
  T* gb = s.gb.data();
  T* f = s.f.data();  // f_t, updated as t goes down
  T* gprev = s.gprev.data();
  const T* loga = s.loga.data();
  const T* logb = s.logb.data();
  for (int64_t i = 0; i < K1; ++i) gf[i] = gf_out ? gf_out[i] : T(0);
  for (int64_t j = 0; j < K2; ++j) gg[j] = gg_out ? gg_out[j] : T(0);
  for (int64_t i = 0; i < K1; ++i) ga[i] = 0;
  for (int64_t j = 0; j < K2; ++j) gb[j] = 0;
  // Direct gradients of f, g at zero marginal entries: d f_i / d a_i = eps / a_i = inf.
  if (n > 0) {
    for (int64_t i = 0; i < K1; ++i)
      if (a[i] == 0 && gf[i] != 0) ga[i] += eps * gf[i] / a[i];
    for (int64_t j = 0; j < K2; ++j)
      if (b[j] == 0 && gg[j] != 0) gb[j] += eps * gg[j] / b[j];
  }

  // Outputs: P_ij = exp((f_i + g_j - C_ij) / eps), G_ij = gP_ij + gc_j + grho_i, q = G P / eps:
  // gf_i += sum_j q_ij, gg_j += sum_i q_ij, gC_ij -= q_ij.
  if (gP || gcs || grho) {
    const T* g = s.g.data();
    const T* Ln = n > 0 ? s.L.data() + (n - 1) * K1 : nullptr;
    const T* Mn = n > 0 ? s.M.data() + (n - 1) * K2 : nullptr;
    for (int64_t i = 0; i < K1; ++i) {
      const T* c = C + i * K2;
      const T gri = grho ? grho[i] : T(0);
      const T fi = f[i];
      T acc = 0;
      for (int64_t j = 0; j < K2; ++j) {
        const T G = (gP ? gP[i * K2 + j] : T(0)) + (gcs ? gcs[j] : T(0)) + gri;
        const T q = G * std::exp((fi + g[j] - c[j]) / eps) / eps;
        acc += q;
        gg[j] += q;
        if (gC) gC[i * K2 + j] -= q;
        // Limits at zero marginal entries: (eps / a_i) q_ij = G exp((g_j - C_ij)/eps - L_i).
        if (n > 0 && a[i] == 0) ga[i] += G * std::exp((g[j] - c[j]) / eps - Ln[i]);
        if (n > 0 && b[j] == 0) gb[j] += G * std::exp((fi - c[j]) / eps - Mn[j]);
      }
      gf[i] += acc;
    }
  }

  // Adjoint recurrence, t = n..1 (L[t-1], M[t-1] belong to iteration t).
  for (int t = n; t >= 1; --t) {
    const T* Lt = s.L.data() + (t - 1) * K1;
    const T* Mt = s.M.data() + (t - 1) * K2;
    const T* Mp = t >= 2 ? s.M.data() + (t - 2) * K2 : nullptr;
    for (int64_t i = 0; i < K1; ++i) f[i] = eps * (loga[i] - Lt[i]);  // f_t
    for (int64_t j = 0; j < K2; ++j)                                    // g_{t-1}
      gprev[j] = Mp ? eps * (logb[j] - Mp[j]) : eps * std::log(T(1) / static_cast<T>(K2));
    // g_t = eps (log b - M_t):  gb_j += eps gg_j / b_j  (b_j = 0: limit terms, added elsewhere)
    for (int64_t j = 0; j < K2; ++j) {
      if (b[j] > 0) gb[j] += eps * gg[j] / b[j];
      ggn[j] = 0;
    }
    for (int64_t i = 0; i < K1; ++i) {
      const T* c = C + i * K2;
      T* gCr = gC ? gC + i * K2 : nullptr;
      // M_t: beta_ij = exp((f_t[i] - C_ij)/eps - M_t[j]);  gf_i -= sum_j gg_j beta_ij;
      //      gC_ij += gg_j beta_ij
      const T fi = f[i];
      T acc = 0;
      for (int64_t j = 0; j < K2; ++j) {
        const T beta = std::exp((fi - c[j]) / eps - Mt[j]);
        acc += gg[j] * beta;
        if (gCr) gCr[j] += gg[j] * beta;
      }
      const T gfi = gf[i] - acc;
      if (a[i] == 0) {  // limit of (eps / a_i) * (-sum_j gg_j beta_ij)
        T lim = 0;
        for (int64_t j = 0; j < K2; ++j) lim += gg[j] * std::exp(-c[j] / eps - Mt[j] - Lt[i]);
        ga[i] -= eps * lim;
      } else {
        ga[i] += eps * gfi / a[i];  // f_t = eps (log a - L_t)
      }
      // L_t: alpha_ij = exp((g_{t-1}[j] - C_ij)/eps - L_t[i]);  gg_{t-1}[j] -= gf_i alpha_ij;
      //      gC_ij += gf_i alpha_ij
      const T Li = Lt[i];
      for (int64_t j = 0; j < K2; ++j) {
        const T alpha = std::exp((gprev[j] - c[j]) / eps - Li);
        ggn[j] -= gfi * alpha;
        if (gCr) gCr[j] += gfi * alpha;
        if (Mp && b[j] == 0)  // limit of (eps / b_j) * (-gf_i alpha_ij) for g_{t-1}
          gb[j] -= eps * gfi * std::exp(-c[j] / eps - Li - Mp[j]);
      }
      gf[i] = 0;  // f_{t-1} feeds only M_{t-1}
    }
    std::swap(gg, ggn);
  }
}

template <typename T>
void write_log_outputs(const T* C, int64_t K1, int64_t K2, T eps, const T* f, const T* g,
                       T* f_out, T* g_out, T* plan, T* col_sums, T* row_sums) {
  if (f_out) std::copy(f, f + K1, f_out);
  if (g_out) std::copy(g, g + K2, g_out);
  if (!plan && !col_sums && !row_sums) return;
  if (col_sums)
    for (int64_t j = 0; j < K2; ++j) col_sums[j] = 0;
  for (int64_t i = 0; i < K1; ++i) {
    const T* c = C + i * K2;
    T acc = 0;
    for (int64_t j = 0; j < K2; ++j) {
      const T p = std::exp((f[i] + g[j] - c[j]) / eps);
      if (plan) plan[i * K2 + j] = p;
      if (col_sums) col_sums[j] += p;
      acc += p;
    }
    if (row_sums) row_sums[i] = acc;
  }
}

}  // namespace

template <typename T>
void sinkhorn_log_forward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1,
                          int64_t K2, bool shared_cost, const SinkhornOptions& opt, T* f_out,
                          T* g_out, T* plan_out, T* col_sums_out, T* row_sums_out,
                          int32_t* iterations_run) {
  check_args("sinkhorn_log_forward", a, b, cost, B, K1, K2, opt);
  const int64_t KK = K1 * K2;
  const T eps = static_cast<T>(opt.epsilon);
#pragma omp parallel if (B > 1)  // one problem: no region, no barrier
  {
    LogScratch<T> s(K1, K2, opt.iterations, false);
#pragma omp for schedule(dynamic, 32)
    for (int64_t p = 0; p < B; ++p) {
      const T* C = shared_cost ? cost : cost + p * KK;
      const int n = run_log_iterations(a + p * K1, b + p * K2, C, K1, K2, opt, s);
      if (iterations_run) iterations_run[p] = n;
      write_log_outputs(C, K1, K2, eps, s.f.data(), s.g.data(), f_out ? f_out + p * K1 : nullptr,
                        g_out ? g_out + p * K2 : nullptr, plan_out ? plan_out + p * KK : nullptr,
                        col_sums_out ? col_sums_out + p * K2 : nullptr,
                        row_sums_out ? row_sums_out + p * K1 : nullptr);
    }
  }
}

template <typename T>
void sinkhorn_log_backward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1,
                           int64_t K2, bool shared_cost, const SinkhornOptions& opt,
                           const T* grad_plan, const T* grad_col_sums, const T* grad_row_sums,
                           const T* grad_f, const T* grad_g, T* grad_a, T* grad_b, T* grad_cost) {
  check_args("sinkhorn_log_backward", a, b, cost, B, K1, K2, opt);
  const int64_t KK = K1 * K2;
  auto one = [&](int64_t p, LogScratch<T>& s, T* gC) {
    log_backward_problem(a + p * K1, b + p * K2, shared_cost ? cost : cost + p * KK, K1, K2, opt,
                         grad_plan ? grad_plan + p * KK : nullptr,
                         grad_col_sums ? grad_col_sums + p * K2 : nullptr,
                         grad_row_sums ? grad_row_sums + p * K1 : nullptr,
                         grad_f ? grad_f + p * K1 : nullptr, grad_g ? grad_g + p * K2 : nullptr,
                         s, gC);
    if (grad_a) std::copy(s.ga.begin(), s.ga.end(), grad_a + p * K1);
    if (grad_b) std::copy(s.gb.begin(), s.gb.end(), grad_b + p * K2);
  };
  if (shared_cost) {
    const int64_t chunks = chunk_count(B);
    std::vector<T> acc(grad_cost ? chunks * KK : 0, T(0));
#pragma omp parallel if (chunks > 1)
    {
      LogScratch<T> s(K1, K2, opt.iterations, false);
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c) {
        T* gC = grad_cost ? acc.data() + c * KK : nullptr;
        for (int64_t p = chunk_begin(c, B, chunks); p < chunk_begin(c + 1, B, chunks); ++p)
          one(p, s, gC);
      }
    }
    if (grad_cost) {
      std::fill(grad_cost, grad_cost + KK, T(0));
      for (int64_t c = 0; c < chunks; ++c)  // fixed order
        for (int64_t k = 0; k < KK; ++k) grad_cost[k] += acc[c * KK + k];
    }
    return;
  }
#pragma omp parallel if (B > 1)
  {
    LogScratch<T> s(K1, K2, opt.iterations, false);
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < B; ++p) {
      T* gC = grad_cost ? grad_cost + p * KK : nullptr;
      if (gC) std::fill(gC, gC + KK, T(0));
      one(p, s, gC);
    }
  }
}

#define LM_SINKHORN_LOG_INSTANTIATE(T)                                                           \
  template void sinkhorn_log_forward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                        bool, const SinkhornOptions&, T*, T*, T*, T*, T*,        \
                                        int32_t*);                                               \
  template void sinkhorn_log_backward<T>(const T*, const T*, const T*, int64_t, int64_t,         \
                                         int64_t, bool, const SinkhornOptions&, const T*,        \
                                         const T*, const T*, const T*, const T*, T*, T*, T*);
LM_SINKHORN_LOG_INSTANTIATE(float)
LM_SINKHORN_LOG_INSTANTIATE(double)
#undef LM_SINKHORN_LOG_INSTANTIATE

}  // namespace lm::cpu
