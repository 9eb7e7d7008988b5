// The plain-domain Sinkhorn lane kernels (internal to ops/cpu/sinkhorn.cpp, which includes this
// header once, after `#pragma GCC optimize("fp-contract=off")`): the per-group arguments and
// workspace, and the always-inline group forward / backward that sinkhorn.cpp compiles once per
// ISA. Layout and bit-identity rules: the comment at the top of sinkhorn.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include "ops/cpu/sinkhorn.h"
#include "ops/cpu/sinkhorn_internal.h"

namespace lm::cpu::sinkhorn_detail {

#define LM_SK_INLINE [[gnu::always_inline]] inline

// ---- arguments and per-thread workspace -------------------------------------------------------

// Slots of the shared-cost grad_cost accumulators: problem p is summed into slot p % kSlots, so
// the order of every sum is the same whatever the vector width L (a divisor of kSlots) of the
// kernel that runs (16 floats / 8 doubles: the widest, AVX-512).
template <typename T>
constexpr int kSlots = 64 / sizeof(T);

template <typename T>
struct Args {
  const T *a = nullptr, *b = nullptr, *cost = nullptr;
  int64_t B = 0, K1 = 0, K2 = 0;
  bool shared = true;
  SinkhornOptions opt;
  const T* kshared = nullptr;  // shared cost: Kmat (K1, K2), computed once
  // forward outputs
  T *u_out = nullptr, *w_out = nullptr, *plan_out = nullptr, *col_out = nullptr, *row_out = nullptr;
  int32_t* iters_out = nullptr;
  // backward: upstream gradients and outputs
  const T *gP = nullptr, *gC = nullptr, *gRho = nullptr, *gU = nullptr, *gW = nullptr;
  T *ga = nullptr, *gb = nullptr, *gcost = nullptr;
};

// 64-byte aligned array of T (vector loads on lane rows never split a cache line).
template <typename T>
struct Buf {
  T* p = nullptr;
  Buf() = default;
  explicit Buf(int64_t n) {
    if (n > 0) p = static_cast<T*>(::operator new[](static_cast<size_t>(n) * sizeof(T), std::align_val_t(64)));
  }
  ~Buf() {
    if (p) ::operator delete[](p, std::align_val_t(64));
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

// Everything one thread needs for one group of L problems; n = max(iterations, 1).
template <typename T>
struct Work {
  int64_t K1, K2, L, n;
  Buf<T> A, Bm, k, S, R, U, W, u, w, kw, ktu;                                  // forward
  Buf<T> up_c, up_rho, up_P, gu, gw, gwn, gr, gs, kgr, ga, gb, w0, gk;  // backward
  Work(int64_t K1_, int64_t K2_, int64_t L_, int iterations, bool per_lane_k, bool backward, bool plan_grad)
      : K1(K1_), K2(K2_), L(L_), n(std::max(iterations, 1)),
        A(K1 * L), Bm(K2 * L), k(per_lane_k ? K1 * K2 * L : 0),
        S(n * K1 * L), R(n * K2 * L), U(backward ? n * K1 * L : 0), W(backward ? n * K2 * L : 0),
        u(K1 * L), w(K2 * L), kw(K1 * L), ktu(K2 * L),
        up_c(backward ? K2 * L : 0), up_rho(backward ? K1 * L : 0), up_P(plan_grad ? K1 * K2 * L : 0),
        gu(backward ? K1 * L : 0),
        gw(backward ? K2 * L : 0), gwn(backward ? K2 * L : 0), gr(backward ? K2 * L : 0),
        gs(backward ? K1 * L : 0), kgr(backward ? K1 * L : 0), ga(backward ? K1 * L : 0),
        gb(backward ? K2 * L : 0), w0(backward ? K2 * L : 0), gk(backward ? K1 * K2 * kSlots<T> : 0) {}
};

// Work's size for a backward with a batched cost (no plan gradient) and L = kSlots lanes:
// S, R, U, W; 8 vectors of K1 and 9 of K2; the lanes' Kmat and the dKmat slots.
int64_t work_elements(int64_t K1, int64_t K2, int64_t L, int iterations) {
  const int64_t n = std::max(iterations, 1);
  return L * (2 * n * (K1 + K2) + 8 * K1 + 9 * K2 + 2 * K1 * K2);
}

// ---- lane kernels (always inlined into the ISA-specific group functions) -----------------------

// One lane row (L problems' values of one entry) as a GCC vector; L = 1: the scalar itself.
template <typename T, int L>
struct LaneVec {
  typedef T type __attribute__((vector_size(L * sizeof(T)), may_alias));
};
template <typename T>
struct LaneVec<T, 1> {
  using type = T;
};
template <typename T, int L>
using V = typename LaneVec<T, L>::type;

// Lane rows live in 64-byte aligned buffers at multiples of L entries: aligned vector access.
template <typename T, int L>
LM_SK_INLINE V<T, L> ld(const T* p) {
  return *reinterpret_cast<const V<T, L>*>(p);
}
template <typename T, int L>
LM_SK_INLINE void st(T* p, V<T, L> v) {
  *reinterpret_cast<V<T, L>*>(p) = v;
}

// Kmat_ij times a lane row: one Kmat for all lanes (shared cost, a scalar times the row) or
// one per lane (k lane-major, elementwise).
template <typename T, int L, bool PL>
LM_SK_INLINE V<T, L> kmul(const T* k, int64_t idx, V<T, L> x) {
  if constexpr (PL) return ld<T, L>(k + idx * L) * x;
  else return k[idx] * x;
}

// Splits [0, K) into blocks of 4..8 (fewer only when K < 4) and calls f.template
// operator()<NB>(start) for each: NB independent accumulation chains per block keep the
// adders busy (one chain is bound by the add latency).
template <typename F>
LM_SK_INLINE void for_blocks(int64_t K, F&& f) {
  const int64_t nb = (K + 7) / 8;
  int64_t start = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t size = K / nb + (b < K % nb ? 1 : 0);
    switch (size) {
      case 8: f.template operator()<8>(start); break;
      case 7: f.template operator()<7>(start); break;
      case 6: f.template operator()<6>(start); break;
      case 5: f.template operator()<5>(start); break;
      case 4: f.template operator()<4>(start); break;
      case 3: f.template operator()<3>(start); break;
      case 2: f.template operator()<2>(start); break;
      default: f.template operator()<1>(start); break;
    }
    start += size;
  }
}

// y = Kmat x per lane: y_i = sum_j Kmat_ij x_j, j in order.  (y: K1 x L, x: K2 x L)
template <typename T, int L, bool PL>
LM_SK_INLINE void matvec(const T* __restrict k, int64_t K1, int64_t K2, const T* __restrict x, T* __restrict y) {
  for_blocks(K1, [&]<int NB>(int64_t i0) __attribute__((always_inline)) {
    V<T, L> acc[NB];
    for (int b = 0; b < NB; ++b) acc[b] = V<T, L>{};
    for (int64_t j = 0; j < K2; ++j) {
      const V<T, L> xj = ld<T, L>(x + j * L);
      for (int b = 0; b < NB; ++b) acc[b] += kmul<T, L, PL>(k, (i0 + b) * K2 + j, xj);
    }
    for (int b = 0; b < NB; ++b) st<T, L>(y + (i0 + b) * L, acc[b]);
  });
}

// y = Kmat^T x per lane: y_j = sum_i Kmat_ij x_i, i in order.  (y: K2 x L, x: K1 x L)
template <typename T, int L, bool PL>
LM_SK_INLINE void matvec_t(const T* __restrict k, int64_t K1, int64_t K2, const T* __restrict x, T* __restrict y) {
  for_blocks(K2, [&]<int NB>(int64_t j0) __attribute__((always_inline)) {
    V<T, L> acc[NB];
    for (int b = 0; b < NB; ++b) acc[b] = V<T, L>{};
    for (int64_t i = 0; i < K1; ++i) {
      const V<T, L> xi = ld<T, L>(x + i * L);
      for (int b = 0; b < NB; ++b) acc[b] += kmul<T, L, PL>(k, i * K2 + j0 + b, xi);
    }
    for (int b = 0; b < NB; ++b) st<T, L>(y + (j0 + b) * L, acc[b]);
  });
}

// gk += x y^T + z v^T per lane, each entry gk_ij += x_i y_j + z_i v_j (gk: (K1, K2) x kSlots<T>,
// this group's lanes at gk[(i K2 + j) kSlots + l]; x, z: K1 x L; y, v: K2 x L). Blocks of columns
// keep y, v in registers.
template <typename T, int L>
LM_SK_INLINE void rank2_update(T* __restrict gk, int64_t K1, int64_t K2, const T* __restrict x,
                               const T* __restrict y, const T* __restrict z, const T* __restrict v) {
  for_blocks(K2, [&]<int NB>(int64_t j0) __attribute__((always_inline)) {
    V<T, L> yb[NB], vb[NB];
    for (int b = 0; b < NB; ++b) yb[b] = ld<T, L>(y + (j0 + b) * L), vb[b] = ld<T, L>(v + (j0 + b) * L);
    for (int64_t i = 0; i < K1; ++i) {
      const V<T, L> xi = ld<T, L>(x + i * L), zi = ld<T, L>(z + i * L);
      T* row = gk + (i * K2 + j0) * kSlots<T>;
      for (int b = 0; b < NB; ++b)
        st<T, L>(row + b * kSlots<T>, ld<T, L>(row + b * kSlots<T>) + (xi * yb[b] + zi * vb[b]));
    }
  });
}

// Runs the recurrence for the L problems of a group. Stores the denominators of every
// iteration, S[t] = Kmat w_t + 1e-8 (K1) and R[t] = Kmat^T u_{t+1} + 1e-8 (K2), t = 0..n-1, and,
// when U, W are given, the iterates U[t] = u_{t+1} = a / S[t], W[t] = w_{t+1} = b / R[t]. Leaves
// the final u, w in u, w; returns n, the number of iterations done (early stopping: L == 1 only).
template <typename T, int L, bool PL>
LM_SK_INLINE int iterate(const T* __restrict A, const T* __restrict Bm, const T* __restrict k, int64_t K1, int64_t K2,
                         int iterations, double tol, T* __restrict S, T* __restrict R, T* __restrict U,
                         T* __restrict W, T* __restrict u, T* __restrict w, T* __restrict kw) {
  const T delta = static_cast<T>(kSinkhornStabiliser);
  const T u0 = T(1) / static_cast<T>(K1), w0 = T(1) / static_cast<T>(K2);
  for (int64_t x = 0; x < K1 * L; ++x) u[x] = u0;
  for (int64_t x = 0; x < K2 * L; ++x) w[x] = w0;
  int n = 0;
  for (int t = 0; t < iterations; ++t) {
    matvec<T, L, PL>(k, K1, K2, w, kw);
    if constexpr (L == 1) {
      if (tol > 0.0 && t > 0) {  // row-marginal error of the current (u, w)
        double err = 0.0;
        for (int64_t i = 0; i < K1; ++i) err += std::abs(static_cast<double>(u[i] * kw[i] - A[i]));
        if (err < tol) break;
      }
    }
    T* s = S + t * K1 * L;
    for (int64_t x = 0; x < K1 * L; x += L) {
      const V<T, L> sx = ld<T, L>(kw + x) + delta;
      st<T, L>(s + x, sx);
      st<T, L>(u + x, ld<T, L>(A + x) / sx);
    }
    if (U) std::memcpy(U + t * K1 * L, u, sizeof(T) * K1 * L);
    T* r = R + t * K2 * L;
    matvec_t<T, L, PL>(k, K1, K2, u, r);
    for (int64_t x = 0; x < K2 * L; x += L) {
      const V<T, L> rx = ld<T, L>(r + x) + delta;
      st<T, L>(r + x, rx);
      st<T, L>(w + x, ld<T, L>(Bm + x) / rx);
    }
    if (W) std::memcpy(W + t * K2 * L, w, sizeof(T) * K2 * L);
    n = t + 1;
  }
  return n;
}

// Lane-major copy of m problems' rows (src: m rows of `len`); lanes m..L-1 get a copy of lane 0
// when pad_with_first, else zero.
template <typename T, int L>
LM_SK_INLINE void gather(const T* src, int64_t len, int m, T* dst, bool pad_with_first) {
  for (int64_t x = 0; x < len; ++x) {
    for (int l = 0; l < m; ++l) dst[x * L + l] = src[l * len + x];
    const T pad = pad_with_first ? src[x] : T(0);
    for (int l = m; l < L; ++l) dst[x * L + l] = pad;
  }
}

template <typename T, int L>
LM_SK_INLINE void scatter(const T* src, int64_t len, int m, T* dst) {
  for (int l = 0; l < m; ++l)
    for (int64_t x = 0; x < len; ++x) dst[l * len + x] = src[x * L + l];
}

// Inputs of the group starting at problem p0 (m real problems): marginals and, with a batched
// cost, each lane's Kmat = exp(-C / eps). Returns the Kmat the lane kernels read.
template <typename T, int L, bool PL>
LM_SK_INLINE const T* load_group(const Args<T>& g, int64_t p0, int m, Work<T>& ws) {
  const int64_t K1 = g.K1, K2 = g.K2, KK = K1 * K2;
  gather<T, L>(g.a + p0 * K1, K1, m, ws.A.p, true);
  gather<T, L>(g.b + p0 * K2, K2, m, ws.Bm.p, true);
  if constexpr (!PL) {
    return g.kshared;
  } else {
    const T eps = static_cast<T>(g.opt.epsilon);
    gather<T, L>(g.cost + p0 * KK, KK, m, ws.k.p, true);
    T* k = ws.k.p;
    for (int64_t x = 0; x < KK * L; ++x) k[x] = std::exp(-k[x] / eps);
    return k;
  }
}

// Forward of one group: the requested outputs of problems p0 .. p0+m-1.
template <typename T, int L, bool PL>
LM_SK_INLINE void forward_group(const Args<T>& g, int64_t p0, int m, Work<T>& ws) {
  const int64_t K1 = g.K1, K2 = g.K2, KK = K1 * K2;
  const T* k = load_group<T, L, PL>(g, p0, m, ws);
  const int n = iterate<T, L, PL>(ws.A.p, ws.Bm.p, k, K1, K2, g.opt.iterations, g.opt.tol, ws.S.p, ws.R.p, nullptr,
                                  nullptr, ws.u.p, ws.w.p, ws.kw.p);
  const T* u = ws.u.p;
  const T* w = ws.w.p;
  if (g.iters_out)
    for (int l = 0; l < m; ++l) g.iters_out[p0 + l] = n;
  if (g.u_out) scatter<T, L>(u, K1, m, g.u_out + p0 * K1);
  if (g.w_out) scatter<T, L>(w, K2, m, g.w_out + p0 * K2);
  if (g.plan_out) {  // (u_i Kmat_ij) w_j
    T* P = ws.ktu.p;  // one row of the plan at a time, (K2 x L)
    for (int64_t i = 0; i < K1; ++i) {
      const V<T, L> ui = ld<T, L>(u + i * L);
      for (int64_t j = 0; j < K2; ++j) st<T, L>(P + j * L, kmul<T, L, PL>(k, i * K2 + j, ui) * ld<T, L>(w + j * L));
      for (int l = 0; l < m; ++l)
        for (int64_t j = 0; j < K2; ++j) g.plan_out[(p0 + l) * KK + i * K2 + j] = P[j * L + l];
    }
  }
  if (g.row_out) {  // u o (Kmat w)
    matvec<T, L, PL>(k, K1, K2, w, ws.kw.p);
    for (int64_t x = 0; x < K1 * L; x += L) st<T, L>(ws.kw.p + x, ld<T, L>(u + x) * ld<T, L>(ws.kw.p + x));
    scatter<T, L>(ws.kw.p, K1, m, g.row_out + p0 * K1);
  }
  if (g.col_out) {  // w o (Kmat^T u)
    matvec_t<T, L, PL>(k, K1, K2, u, ws.ktu.p);
    for (int64_t x = 0; x < K2 * L; x += L) st<T, L>(ws.ktu.p + x, ld<T, L>(w + x) * ld<T, L>(ws.ktu.p + x));
    scatter<T, L>(ws.ktu.p, K2, m, g.col_out + p0 * K2);
  }
}

// Backward of one group. Writes d loss / d a, d b of its problems; adds d loss / d Kmat of
// problem p into slot p % kSlots of ws.gk ((K1, K2) x kSlots) when `want_gk`.
template <typename T, int L, bool PL>
LM_SK_INLINE void backward_group(const Args<T>& g, int64_t p0, int m, Work<T>& ws, bool want_gk) {
  using Vt = V<T, L>;
  const int64_t K1 = g.K1, K2 = g.K2, KK = K1 * K2;
  const T* k = load_group<T, L, PL>(g, p0, m, ws);
  const int n = iterate<T, L, PL>(ws.A.p, ws.Bm.p, k, K1, K2, g.opt.iterations, g.opt.tol, ws.S.p, ws.R.p, ws.U.p,
                                  ws.W.p, ws.u.p, ws.w.p, ws.kw.p);
  const T* u = ws.u.p;
  const T* w = ws.w.p;
  T* gu = ws.gu.p;
  T* gw = ws.gw.p;
  T* gwn = ws.gwn.p;
  T* ga = ws.ga.p;
  T* gb = ws.gb.p;
  T* gk = ws.gk.p + p0 % kSlots<T>;  // this group's slots (p0 is a multiple of L)
  // Upstream gradients of final u, w (padding lanes: zero).
  if (g.gU) gather<T, L>(g.gU + p0 * K1, K1, m, gu, false);
  else std::fill(gu, gu + K1 * L, T(0));
  if (g.gW) gather<T, L>(g.gW + p0 * K2, K2, m, gw, false);
  else std::fill(gw, gw + K2 * L, T(0));
  std::fill(ga, ga + K1 * L, T(0));
  std::fill(gb, gb + K2 * L, T(0));

  // Outputs: plan P = u_i K_ij w_j, col sums c_j = sum_i P_ij, row sums rho_i = sum_j P_ij.
  // With G_ij = gP_ij + gc_j + grho_i:  gu_i += sum_j G_ij K_ij w_j,  gw_j += sum_i G_ij K_ij u_i,
  // gK_ij += G_ij u_i w_j.
  if (g.gP || g.gC || g.gRho) {
    T* up_c = ws.up_c.p;
    T* up_rho = ws.up_rho.p;
    if (g.gC) gather<T, L>(g.gC + p0 * K2, K2, m, up_c, false);
    else std::fill(up_c, up_c + K2 * L, T(0));
    if (g.gRho) gather<T, L>(g.gRho + p0 * K1, K1, m, up_rho, false);
    else std::fill(up_rho, up_rho + K1 * L, T(0));
    const T* up_P = nullptr;
    if (g.gP) gather<T, L>(g.gP + p0 * KK, KK, m, ws.up_P.p, false), up_P = ws.up_P.p;
    T* grow = ws.ktu.p;  // G row (K2 x L)
    for (int64_t i = 0; i < K1; ++i) {
      const Vt ui = ld<T, L>(u + i * L), rho = ld<T, L>(up_rho + i * L);
      for (int64_t j = 0; j < K2; ++j) {
        const Vt p = up_P ? ld<T, L>(up_P + (i * K2 + j) * L) : Vt{};
        st<T, L>(grow + j * L, (p + ld<T, L>(up_c + j * L)) + rho);
      }
      Vt acc{};
      for (int64_t j = 0; j < K2; ++j) {
        const Vt gkij = kmul<T, L, PL>(k, i * K2 + j, ld<T, L>(grow + j * L));  // G_ij K_ij
        acc += gkij * ld<T, L>(w + j * L);
        st<T, L>(gw + j * L, ld<T, L>(gw + j * L) + gkij * ui);
      }
      st<T, L>(gu + i * L, ld<T, L>(gu + i * L) + acc);
      if (want_gk)
        for (int64_t j = 0; j < K2; ++j) {
          T* e = gk + (i * K2 + j) * kSlots<T>;
          st<T, L>(e, ld<T, L>(e) + (ld<T, L>(grow + j * L) * ui) * ld<T, L>(w + j * L));
        }
    }
  }

  // Adjoint recurrence, t = n..1 (S[t-1], R[t-1] are iteration t's denominators, U[t-1] = u_t,
  // W[t-1] = w_t, W[t-2] = w_{t-1}; w_0 = 1/K2).
  const T w0v = T(1) / static_cast<T>(K2);
  std::fill(ws.w0.p, ws.w0.p + K2 * L, w0v);
  T* gr = ws.gr.p;
  T* gs = ws.gs.p;
  T* kgr = ws.kgr.p;
  for (int t = n; t >= 1; --t) {
    const T* St = ws.S.p + (t - 1) * K1 * L;
    const T* Rt = ws.R.p + (t - 1) * K2 * L;
    const T* ut = ws.U.p + (t - 1) * K1 * L;
    const T* wt = ws.W.p + (t - 1) * K2 * L;
    const T* wprev = t >= 2 ? ws.W.p + (t - 2) * K2 * L : ws.w0.p;
    // w_t = b / R_t:          gb += gw / R_t;  gr = -gw * w_t / R_t
    for (int64_t x = 0; x < K2 * L; x += L) {
      const Vt gwx = ld<T, L>(gw + x), r = ld<T, L>(Rt + x);
      st<T, L>(gb + x, ld<T, L>(gb + x) + gwx / r);
      st<T, L>(gr + x, (-gwx * ld<T, L>(wt + x)) / r);
    }
    // R_t = Kmat^T u_t + d:   gu += Kmat gr;  gK += u_t gr^T
    matvec<T, L, PL>(k, K1, K2, gr, kgr);
    // u_t = a / S_t:          ga += gu / S_t;  gs = -gu * u_t / S_t
    for (int64_t x = 0; x < K1 * L; x += L) {
      const Vt gui = ld<T, L>(gu + x) + ld<T, L>(kgr + x), sx = ld<T, L>(St + x);
      st<T, L>(ga + x, ld<T, L>(ga + x) + gui / sx);
      st<T, L>(gs + x, (-gui * ld<T, L>(ut + x)) / sx);
      st<T, L>(gu + x, Vt{});  // u_{t-1} feeds only R_{t-1}
    }
    // S_t = Kmat w_{t-1} + d: gw_{t-1} = Kmat^T gs;  gK += gs w_{t-1}^T
    matvec_t<T, L, PL>(k, K1, K2, gs, gwn);
    if (want_gk) rank2_update<T, L>(gk, K1, K2, ut, gr, gs, wprev);
    std::swap(gw, gwn);
  }
  if (g.ga) scatter<T, L>(ga, K1, m, g.ga + p0 * K1);
  if (g.gb) scatter<T, L>(gb, K2, m, g.gb + p0 * K2);
}

// grad_cost of one lane from d loss / d Kmat: dC = -dKmat o Kmat / eps (gk: slot l of (K1, K2) x
// kSlots; k: lane l of this group's lane-major Kmat).
template <typename T, int L>
LM_SK_INLINE void lane_cost_grad(const T* gk, const T* k, int64_t KK, int l, T eps, T* gc) {
  for (int64_t x = 0; x < KK; ++x) gc[x] = -(gk[x * kSlots<T> + l] * k[x * L + l]) / eps;
}

}  // namespace lm::cpu::sinkhorn_detail
