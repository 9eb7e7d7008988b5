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

// Kmat = exp(-C / eps) for one problem, stored row-major (K1, K2), or transposed (K2, K1) when
// Tr. The transposed layout is used when K1 > K2, so that every inner loop below runs over the
// longer dimension (reference mode is 46 x 10).
template <typename T, bool Tr>
void compute_kmat(const T* cost, int64_t K1, int64_t K2, T eps, T* kmat) {  // cost: (K1, K2)
  if constexpr (!Tr) {
#pragma omp simd
    for (int64_t k = 0; k < K1 * K2; ++k) kmat[k] = std::exp(-cost[k] / eps);
  } else {
    for (int64_t i = 0; i < K1; ++i)
      for (int64_t j = 0; j < K2; ++j) kmat[j * K1 + i] = std::exp(-cost[i * K2 + j] / eps);
  }
}

// Kmat_ij in either layout.
template <typename T, bool Tr>
inline T kat(const T* kmat, int64_t K1, int64_t K2, int64_t i, int64_t j) {
  return Tr ? kmat[j * K1 + i] : kmat[i * K2 + j];
}

// y = Kmat x  (y: (K1), x: (K2))
template <typename T, bool Tr>
void matvec(const T* kmat, int64_t K1, int64_t K2, const T* x, T* y) {
  if constexpr (!Tr) {
    for (int64_t i = 0; i < K1; ++i) {
      const T* row = kmat + i * K2;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < K2; ++j) acc += row[j] * x[j];
      y[i] = acc;
    }
  } else {
    for (int64_t i = 0; i < K1; ++i) y[i] = 0;
    for (int64_t j = 0; j < K2; ++j) {
      const T* col = kmat + j * K1;
      const T xj = x[j];
#pragma omp simd
      for (int64_t i = 0; i < K1; ++i) y[i] += col[i] * xj;
    }
  }
}

// y = Kmat^T x  (y: (K2), x: (K1))
template <typename T, bool Tr>
void matvec_t(const T* kmat, int64_t K1, int64_t K2, const T* x, T* y) {
  if constexpr (!Tr) {
    for (int64_t j = 0; j < K2; ++j) y[j] = 0;
    for (int64_t i = 0; i < K1; ++i) {
      const T* row = kmat + i * K2;
      const T xi = x[i];
#pragma omp simd
      for (int64_t j = 0; j < K2; ++j) y[j] += row[j] * xi;
    }
  } else {
    for (int64_t j = 0; j < K2; ++j) {
      const T* col = kmat + j * K1;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < K1; ++i) acc += col[i] * x[i];
      y[j] = acc;
    }
  }
}

// gk += x y^T + z v^T  (gk in the layout of Kmat; x, z: (K1); y, v: (K2))
template <typename T, bool Tr>
void rank2_update(T* gk, int64_t K1, int64_t K2, const T* x, const T* y, const T* z, const T* v) {
  if constexpr (!Tr) {
    for (int64_t i = 0; i < K1; ++i) {
      T* row = gk + i * K2;
      const T xi = x[i], zi = z[i];
#pragma omp simd
      for (int64_t j = 0; j < K2; ++j) row[j] += xi * y[j] + zi * v[j];
    }
  } else {
    for (int64_t j = 0; j < K2; ++j) {
      T* col = gk + j * K1;
      const T yj = y[j], vj = v[j];
#pragma omp simd
      for (int64_t i = 0; i < K1; ++i) col[i] += x[i] * yj + z[i] * vj;
    }
  }
}

// Runs the recurrence for one problem. Stores the denominators of every iteration:
// S[t] = Kmat w_{t} + 1e-8 (K1) and R[t] = Kmat^T u_{t+1} + 1e-8 (K2), t = 0..n-1, so that
// u_{t+1} = a / S[t] and w_{t+1} = b / R[t] are recomputed bit-exactly. Leaves the final u, w in
// u, w and returns n, the number of iterations done (< iterations only when tol stops it).
template <typename T, bool Tr>
int run_iterations(const T* a,     // a: (K1)
                   const T* b,     // b: (K2)
                   const T* kmat,  // kmat: (K1, K2), or (K2, K1) when Tr
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
    matvec<T, Tr>(kmat, K1, K2, w, kw);
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
    matvec_t<T, Tr>(kmat, K1, K2, u, r);
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
  std::vector<T> S, R, u, w, kw, kmat, gu, gw, gw_next, gr, gs, grow, ga, gb, ut, wprev, gk, ktu;
  Scratch(int64_t K1, int64_t K2, int iterations, bool own_kmat, bool own_gk)
      : S(static_cast<size_t>(std::max(iterations, 1) * K1)),
        R(static_cast<size_t>(std::max(iterations, 1) * K2)),
        u(K1), w(K2), kw(K1), kmat(own_kmat ? K1 * K2 : 0), gu(K1), gw(K2), gw_next(K2), gr(K2),
        gs(K1), grow(K2), ga(K1), gb(K2), ut(K1), wprev(K2), gk(own_gk ? K1 * K2 : 0), ktu(K2) {}
};

// Writes the requested outputs of one problem from its final u, w.
template <typename T, bool Tr>
void write_outputs(const T* kmat, int64_t K1, int64_t K2, const T* u, const T* w, T* u_out,
                   T* w_out, T* plan, T* col_sums, T* row_sums, Scratch<T>& s) {
  if (u_out) std::copy(u, u + K1, u_out);
  if (w_out) std::copy(w, w + K2, w_out);
  if (plan)
    for (int64_t i = 0; i < K1; ++i)
      for (int64_t j = 0; j < K2; ++j) plan[i * K2 + j] = u[i] * kat<T, Tr>(kmat, K1, K2, i, j) * w[j];
  if (row_sums) {  // u o (Kmat w)
    matvec<T, Tr>(kmat, K1, K2, w, s.kw.data());
    for (int64_t i = 0; i < K1; ++i) row_sums[i] = u[i] * s.kw[i];
  }
  if (col_sums) {  // w o (Kmat^T u)
    matvec_t<T, Tr>(kmat, K1, K2, u, s.ktu.data());
    for (int64_t j = 0; j < K2; ++j) col_sums[j] = w[j] * s.ktu[j];
  }
}

// Backward of one problem. Adds d loss / d Kmat into gk (layout of kmat) when gk != nullptr;
// writes d loss / d a, d b into s.ga, s.gb. Upstream gradient pointers are per-problem (or
// nullptr).
template <typename T, bool Tr>
void backward_problem(const T* a, const T* b, const T* kmat, int64_t K1, int64_t K2,
                      const SinkhornOptions& opt, const T* gP, const T* gc, const T* grho,
                      const T* gu_out, const T* gw_out, Scratch<T>& s, T* gk) {
  const int n = run_iterations<T, Tr>(a, b, kmat, K1, K2, opt.iterations, opt.tol, s.S.data(),
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
  // gK_ij += G_ij u_i w_j. (Once per problem: plain row-major loops in either layout.)
  if (gP || gc || grho) {
    T* grow = s.grow.data();
    for (int64_t i = 0; i < K1; ++i) {
      const T gri = grho ? grho[i] : T(0);
      for (int64_t j = 0; j < K2; ++j)
        grow[j] = (gP ? gP[i * K2 + j] : T(0)) + (gc ? gc[j] : T(0)) + gri;
      const T ui = u[i];
      T acc = 0;
      for (int64_t j = 0; j < K2; ++j) {
        const T k = kat<T, Tr>(kmat, K1, K2, i, j);
        acc += grow[j] * k * w[j];
        gw[j] += grow[j] * k * ui;
      }
      gu[i] += acc;
      if (gk)
        for (int64_t j = 0; j < K2; ++j) (Tr ? gk[j * K1 + i] : gk[i * K2 + j]) += grow[j] * ui * w[j];
    }
  }

  // Adjoint recurrence, t = n..1 (S[t-1], R[t-1] are iteration t's denominators).
  T* ut = s.ut.data();
  T* wprev = s.wprev.data();
  T* gr = s.gr.data();
  T* gs = s.gs.data();
  T* gwn = s.gw_next.data();
  T* kgr = s.kw.data();
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
    // w_t = b / R_t:          gb += gw / R_t;  gr = -gw * w_t / R_t
    for (int64_t j = 0; j < K2; ++j) {
      const T wt = b[j] / Rt[j];
      gb[j] += gw[j] / Rt[j];
      gr[j] = -gw[j] * wt / Rt[j];
    }
    // R_t = Kmat^T u_t + d:   gu += Kmat gr;  gK += u_t gr^T
    matvec<T, Tr>(kmat, K1, K2, gr, kgr);
    // u_t = a / S_t:          ga += gu / S_t;  gs = -gu * u_t / S_t
    for (int64_t i = 0; i < K1; ++i) {
      const T gui = gu[i] + kgr[i];
      ga[i] += gui / St[i];
      gs[i] = -gui * ut[i] / St[i];
      gu[i] = 0;  // u_{t-1} feeds only R_{t-1}
    }
    // S_t = Kmat w_{t-1} + d: gw_{t-1} = Kmat^T gs;  gK += gs w_{t-1}^T
    matvec_t<T, Tr>(kmat, K1, K2, gs, gwn);
    if (gk) rank2_update<T, Tr>(gk, K1, K2, ut, gr, gs, wprev);
    std::swap(gw, gwn);
  }
}

// The per-problem Kmat layout: transposed when K1 > K2 (inner loops over the longer side).
inline bool transposed_layout(int64_t K1, int64_t K2) { return K1 > K2; }

// grad_cost (K1, K2) from d loss / d Kmat (layout of kmat): dC = -dKmat o Kmat / eps.
template <typename T, bool Tr>
void kmat_grad_to_cost_grad(const T* gk, const T* kmat, int64_t K1, int64_t K2, T eps, T* gc) {
  for (int64_t i = 0; i < K1; ++i)
    for (int64_t j = 0; j < K2; ++j) {
      const int64_t k = Tr ? j * K1 + i : i * K2 + j;
      gc[i * K2 + j] = -(gk[k] * kmat[k]) / eps;
    }
}

template <typename T, bool Tr>
void forward_impl(const T* a, const T* b, const T* cost, int64_t B, int64_t K1, int64_t K2,
                  bool shared_cost, const SinkhornOptions& opt, T* u_out, T* w_out, T* plan_out,
                  T* col_sums_out, T* row_sums_out, int32_t* iterations_run) {
  const T eps = static_cast<T>(opt.epsilon);
  const int64_t KK = K1 * K2;
  std::vector<T> shared_kmat(shared_cost ? KK : 0);
  if (shared_cost) compute_kmat<T, Tr>(cost, K1, K2, eps, shared_kmat.data());
#pragma omp parallel
  {
    Scratch<T> s(K1, K2, opt.iterations, !shared_cost, false);
#pragma omp for schedule(dynamic, 32)
    for (int64_t p = 0; p < B; ++p) {
      const T* kmat = shared_kmat.data();
      if (!shared_cost) {
        compute_kmat<T, Tr>(cost + p * KK, K1, K2, eps, s.kmat.data());
        kmat = s.kmat.data();
      }
      const int n = run_iterations<T, Tr>(a + p * K1, b + p * K2, kmat, K1, K2, opt.iterations,
                                          opt.tol, s.S.data(), s.R.data(), s.u.data(), s.w.data(),
                                          s.kw.data());
      if (iterations_run) iterations_run[p] = n;
      write_outputs<T, Tr>(kmat, K1, K2, s.u.data(), s.w.data(), u_out ? u_out + p * K1 : nullptr,
                           w_out ? w_out + p * K2 : nullptr, plan_out ? plan_out + p * KK : nullptr,
                           col_sums_out ? col_sums_out + p * K2 : nullptr,
                           row_sums_out ? row_sums_out + p * K1 : nullptr, s);
    }
  }
}

template <typename T, bool Tr>
void backward_impl(const T* a, const T* b, const T* cost, int64_t B, int64_t K1, int64_t K2,
                   bool shared_cost, const SinkhornOptions& opt, const T* grad_plan,
                   const T* grad_col_sums, const T* grad_row_sums, const T* grad_u,
                   const T* grad_w, T* grad_a, T* grad_b, T* grad_cost) {
  const int64_t KK = K1 * K2;
  const T eps = static_cast<T>(opt.epsilon);
  auto one = [&](int64_t p, const T* kmat, Scratch<T>& s, T* gk) {
    backward_problem<T, Tr>(a + p * K1, b + p * K2, kmat, K1, K2, opt,
                            grad_plan ? grad_plan + p * KK : nullptr,
                            grad_col_sums ? grad_col_sums + p * K2 : nullptr,
                            grad_row_sums ? grad_row_sums + p * K1 : nullptr,
                            grad_u ? grad_u + p * K1 : nullptr, grad_w ? grad_w + p * K2 : nullptr,
                            s, gk);
    if (grad_a) std::copy(s.ga.begin(), s.ga.end(), grad_a + p * K1);
    if (grad_b) std::copy(s.gb.begin(), s.gb.end(), grad_b + p * K2);
  };

  if (shared_cost) {
    std::vector<T> kmat(KK);
    compute_kmat<T, Tr>(cost, K1, K2, eps, kmat.data());
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
      kmat_grad_to_cost_grad<T, Tr>(acc.data(), kmat.data(), K1, K2, eps, grad_cost);
    }
    return;
  }
#pragma omp parallel
  {
    Scratch<T> s(K1, K2, opt.iterations, true, grad_cost != nullptr);
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < B; ++p) {
      compute_kmat<T, Tr>(cost + p * KK, K1, K2, eps, s.kmat.data());
      if (grad_cost) std::fill(s.gk.begin(), s.gk.end(), T(0));
      one(p, s.kmat.data(), s, grad_cost ? s.gk.data() : nullptr);
      if (grad_cost)
        kmat_grad_to_cost_grad<T, Tr>(s.gk.data(), s.kmat.data(), K1, K2, eps, grad_cost + p * KK);
    }
  }
}

}  // namespace

int64_t sinkhorn_backward_scratch_elements(int64_t K1, int64_t K2, int iterations, bool log_domain) {
  const int64_t it = std::max(iterations, 1);
  // log: L_t, M_t per iteration; f, log a, gf, ga (K1); g, log b, col max/sum, gg, gg', gb,
  // g_{t-1} (K2); one (K1, K2) exponent buffer.
  if (log_domain) return it * (K1 + K2) + 4 * K1 + 8 * K2 + K1 * K2;
  // plain: S_t, R_t per iteration; u, Kw, gu, gs, ga, u_t (K1); w, gw, gw', gr, G row, gb,
  // w_{t-1}, Kmat^T u (K2); with a batched cost also this problem's Kmat and dKmat (K1, K2).
  return it * (K1 + K2) + 6 * K1 + 8 * K2 + 2 * K1 * K2;
}

template <typename T>
void sinkhorn_forward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1, int64_t K2,
                      bool shared_cost, const SinkhornOptions& opt, T* u_out, T* w_out,
                      T* plan_out, T* col_sums_out, T* row_sums_out, int32_t* iterations_run) {
  check_args("sinkhorn_forward", a, b, cost, B, K1, K2, opt);
  if (B == 0) return;
  auto impl = transposed_layout(K1, K2) ? forward_impl<T, true> : forward_impl<T, false>;
  impl(a, b, cost, B, K1, K2, shared_cost, opt, u_out, w_out, plan_out, col_sums_out, row_sums_out,
       iterations_run);
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
  auto impl = transposed_layout(K1, K2) ? backward_impl<T, true> : backward_impl<T, false>;
  impl(a, b, cost, B, K1, K2, shared_cost, opt, grad_plan, grad_col_sums, grad_row_sums, grad_u,
       grad_w, grad_a, grad_b, grad_cost);
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
