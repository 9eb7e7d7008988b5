// Sinkhorn kernels (device code only): the plain-domain forward and recompute backward of
// cuda/sinkhorn.cu and the log-domain ones of the same file, one thread block per problem.
// Self-contained (CUDA headers + cuda/device_math.cuh) so that tests/test_cuda_emulated.cpp can
// also compile them for the CPU with tests/cuda_emulator.h, which runs a block's threads as
// std::threads with a barrier for __syncthreads: a check of the kernels' logic (indexing,
// synchronisation, the recurrences) on machines without a GPU. Host side and conventions:
// cuda/sinkhorn.cuh.
#pragma once
#include "device_math.cuh"
#include "sinkhorn.cuh"

namespace LM_CUDA_NS::sinkhorn_kernels {


// Kmat = exp(-C / eps), (K1, K2) row-major, into shared memory.
template <typename T>
__device__ void load_kmat(const T* cost, int64_t KK, T eps, T* kmat) {
  for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) kmat[k] = d_exp(-cost[k] / eps);
}

// y = Kmat x, one thread per row (y: (K1), x: (K2)). Caller synchronises.
template <typename T>
__device__ void block_matvec(const T* kmat, int64_t K1, int64_t K2, const T* x, T* y) {
  for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
    const T* row = kmat + i * K2;
    T acc = 0;
    for (int64_t j = 0; j < K2; ++j) acc += row[j] * x[j];
    y[i] = acc;
  }
}

// y = Kmat^T x, one thread per column (y: (K2), x: (K1)). Caller synchronises.
template <typename T>
__device__ void block_matvec_t(const T* kmat, int64_t K1, int64_t K2, const T* x, T* y) {
  for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
    T acc = 0;
    for (int64_t i = 0; i < K1; ++i) acc += kmat[i * K2 + j] * x[i];
    y[j] = acc;
  }
}

// The recurrence for one problem, by the whole block. Leaves the final u, w in shared memory;
// when S, R are given (backward) stores the denominators S: (iterations, K1), R: (iterations,
// K2). Returns the number of iterations done (same value in every thread).
template <typename T>
__device__ int block_iterations(const T* a, const T* b, const T* kmat, int64_t K1, int64_t K2,
                                int iterations, double tol, T* u, T* w, T* kw, T* S, T* R) {
  __shared__ int stop;
  const T delta = static_cast<T>(kSinkhornStabiliser);
  for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) u[i] = T(1) / static_cast<T>(K1);
  for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) w[j] = T(1) / static_cast<T>(K2);
  __syncthreads();
  int n = 0;
  for (int t = 0; t < iterations; ++t) {
    block_matvec(kmat, K1, K2, w, kw);
    __syncthreads();
    if (tol > 0.0 && t > 0) {  // row-marginal error of the current (u, w), summed in order
      if (threadIdx.x == 0) {
        double err = 0.0;
        for (int64_t i = 0; i < K1; ++i) err += d_abs(static_cast<double>(u[i] * kw[i] - a[i]));
        stop = err < tol ? 1 : 0;
      }
      __syncthreads();
      const bool done = stop != 0;
      __syncthreads();  // everyone has read `stop` before thread 0 may write it again
      if (done) break;
    }
    for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
      const T s = kw[i] + delta;
      u[i] = a[i] / s;
      if (S) S[t * K1 + i] = s;
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
      T acc = 0;
      for (int64_t i = 0; i < K1; ++i) acc += kmat[i * K2 + j] * u[i];
      const T r = acc + delta;
      w[j] = b[j] / r;
      if (R) R[t * K2 + j] = r;
    }
    __syncthreads();
    n = t + 1;
  }
  return n;
}

template <typename T>
__global__ void sinkhorn_forward_kernel(const T* a, const T* b, const T* cost, int64_t B,
                                        int64_t K1, int64_t K2, bool shared_cost, T eps,
                                        int iterations, double tol, T* u_out, T* w_out,
                                        T* plan_out, T* col_sums_out, T* row_sums_out,
                                        int32_t* iterations_run) {
  LM_DYNAMIC_SHARED(smem_raw);
  T* kmat = reinterpret_cast<T*>(smem_raw);  // (K1, K2)
  T* u = kmat + K1 * K2;                      // (K1)
  T* w = u + K1;                              // (K2)
  T* kw = w + K2;                             // (K1)
  T* ktu = kw + K1;                           // (K2)
  const int64_t KK = K1 * K2;
  for (int64_t p = blockIdx.x; p < B; p += gridDim.x) {
    load_kmat(shared_cost ? cost : cost + p * KK, KK, eps, kmat);
    __syncthreads();
    const int n = block_iterations(a + p * K1, b + p * K2, kmat, K1, K2, iterations, tol, u, w,
                                   kw, static_cast<T*>(nullptr), static_cast<T*>(nullptr));
    if (iterations_run && threadIdx.x == 0) iterations_run[p] = n;
    if (u_out)
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) u_out[p * K1 + i] = u[i];
    if (w_out)
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) w_out[p * K2 + j] = w[j];
    if (plan_out)
      for (int64_t k = threadIdx.x; k < KK; k += blockDim.x)
        plan_out[p * KK + k] = u[k / K2] * kmat[k] * w[k % K2];
    if (row_sums_out) block_matvec(kmat, K1, K2, w, kw);
    if (col_sums_out) block_matvec_t(kmat, K1, K2, u, ktu);
    __syncthreads();
    if (row_sums_out)
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) row_sums_out[p * K1 + i] = u[i] * kw[i];
    if (col_sums_out)
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) col_sums_out[p * K2 + j] = w[j] * ktu[j];
    __syncthreads();  // shared memory is reused by the next problem
  }
}

template <typename T>
__global__ void sinkhorn_backward_kernel(const T* a, const T* b, const T* cost, int64_t B,
                                         int64_t K1, int64_t K2, bool shared_cost, T eps,
                                         int iterations, double tol, const T* grad_plan,
                                         const T* grad_col_sums, const T* grad_row_sums,
                                         const T* grad_u, const T* grad_w, T* grad_a, T* grad_b,
                                         T* grad_cost, T* denominators, T* partials) {
  LM_DYNAMIC_SHARED(smem_raw);
  const int64_t KK = K1 * K2;
  T* kmat = reinterpret_cast<T*>(smem_raw);  // (K1, K2)
  T* gk = kmat + KK;                          // (K1, K2) d loss / d Kmat
  T* u = gk + KK;                             // (K1)
  T* kw = u + K1;                             // (K1)
  T* gu = kw + K1;                            // (K1)
  T* gs = gu + K1;                            // (K1)
  T* ut = gs + K1;                            // (K1)
  T* ga = ut + K1;                            // (K1)
  T* w = ga + K1;                             // (K2)
  T* gw0 = w + K2;                            // (K2)
  T* gw1 = gw0 + K2;                          // (K2)
  T* gr = gw1 + K2;                           // (K2)
  T* wprev = gr + K2;                         // (K2)
  T* gb = wprev + K2;                         // (K2)
  const int64_t it = iterations > 0 ? iterations : 1;
  T* S = denominators + blockIdx.x * it * (K1 + K2);  // (iterations, K1), this block's slice
  T* R = S + it * K1;                                 // (iterations, K2)
  const bool want_gk = grad_cost != nullptr;
  const bool have_G = grad_plan || grad_col_sums || grad_row_sums;

  if (want_gk && shared_cost)  // block accumulator over this block's problems
    for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) gk[k] = 0;

  for (int64_t p = blockIdx.x; p < B; p += gridDim.x) {
    const T* ap = a + p * K1;
    const T* bp = b + p * K2;
    load_kmat(shared_cost ? cost : cost + p * KK, KK, eps, kmat);
    if (want_gk && !shared_cost)
      for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) gk[k] = 0;
    __syncthreads();
    const int n = block_iterations(ap, bp, kmat, K1, K2, iterations, tol, u, w, kw, S, R);
    for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
      gu[i] = grad_u ? grad_u[p * K1 + i] : T(0);
      ga[i] = 0;
    }
    for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
      gw0[j] = grad_w ? grad_w[p * K2 + j] : T(0);
      gb[j] = 0;
    }
    __syncthreads();

    // Outputs, G_ij = gP_ij + gc_j + grho_i: gu_i += sum_j G K w, gw_j += sum_i G K u,
    // gK += G o u w^T.
    if (have_G) {
      const T* gP = grad_plan ? grad_plan + p * KK : nullptr;
      const T* gc = grad_col_sums ? grad_col_sums + p * K2 : nullptr;
      const T* grho = grad_row_sums ? grad_row_sums + p * K1 : nullptr;
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
        T acc = 0;
        for (int64_t j = 0; j < K2; ++j) {
          const T G = (gP ? gP[i * K2 + j] : T(0)) + (gc ? gc[j] : T(0)) + (grho ? grho[i] : T(0));
          acc += G * kmat[i * K2 + j] * w[j];
        }
        gu[i] += acc;
      }
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
        T acc = 0;
        for (int64_t i = 0; i < K1; ++i) {
          const T G = (gP ? gP[i * K2 + j] : T(0)) + (gc ? gc[j] : T(0)) + (grho ? grho[i] : T(0));
          acc += G * kmat[i * K2 + j] * u[i];
        }
        gw0[j] += acc;
      }
      if (want_gk)
        for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) {
          const int64_t i = k / K2, j = k % K2;
          const T G = (gP ? gP[k] : T(0)) + (gc ? gc[j] : T(0)) + (grho ? grho[i] : T(0));
          gk[k] += G * u[i] * w[j];
        }
      __syncthreads();
    }

    // Adjoint recurrence, t = n..1.
    T* gw = gw0;
    T* gwn = gw1;
    for (int t = n; t >= 1; --t) {
      const T* St = S + (t - 1) * K1;
      const T* Rt = R + (t - 1) * K2;
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) ut[i] = ap[i] / St[i];
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
        wprev[j] = t >= 2 ? bp[j] / R[(t - 2) * K2 + j] : T(1) / static_cast<T>(K2);
        const T wt = bp[j] / Rt[j];  // w_t = b / R_t
        gb[j] += gw[j] / Rt[j];
        gr[j] = -gw[j] * wt / Rt[j];
      }
      __syncthreads();
      // R_t = Kmat^T u_t + d: gu += Kmat gr;  u_t = a / S_t: ga += gu / S_t, gs = -gu u_t / S_t
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
        T acc = 0;
        for (int64_t j = 0; j < K2; ++j) acc += kmat[i * K2 + j] * gr[j];
        const T gui = gu[i] + acc;
        ga[i] += gui / St[i];
        gs[i] = -gui * ut[i] / St[i];
        gu[i] = 0;  // u_{t-1} feeds only R_{t-1}
      }
      __syncthreads();
      // S_t = Kmat w_{t-1} + d: gw_{t-1} = Kmat^T gs;  gK += u_t gr^T + gs w_{t-1}^T
      block_matvec_t(kmat, K1, K2, gs, gwn);
      if (want_gk)
        for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) {
          const int64_t i = k / K2, j = k % K2;
          gk[k] += ut[i] * gr[j] + gs[i] * wprev[j];
        }
      __syncthreads();
      T* tmp = gw;
      gw = gwn;
      gwn = tmp;
    }

    if (grad_a)
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) grad_a[p * K1 + i] = ga[i];
    if (grad_b)
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) grad_b[p * K2 + j] = gb[j];
    if (want_gk && !shared_cost)  // dC = -dKmat o Kmat / eps
      for (int64_t k = threadIdx.x; k < KK; k += blockDim.x)
        grad_cost[p * KK + k] = -(gk[k] * kmat[k]) / eps;
    __syncthreads();  // shared memory is reused by the next problem
  }
  if (want_gk && shared_cost)
    for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) partials[blockIdx.x * KK + k] = gk[k];
}

// grad_cost = -(sum over blocks, in block order, of dKmat) o Kmat / eps.
template <typename T>
__global__ void sinkhorn_reduce_cost_grad_kernel(const T* partials, int64_t G, int64_t KK,
                                                 const T* cost, T eps, T* grad_cost) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= KK) return;
  T s = 0;
  for (int64_t g = 0; g < G; ++g) s += partials[g * KK + k];
  grad_cost[k] = -(s * d_exp(-cost[k] / eps)) / eps;
}

// ---- log domain ------------------------------------------------------------------------------
// Mirrors ops/cpu/sinkhorn_log.cpp step by step: potentials f = eps log u, g = eps log w,
// log-sum-exp updates, the normalisers L_t (K1), M_t (K2) of every iteration stored for the
// backward, and the same adjoint recurrence (docs/ops/sinkhorn.md, "log domain"). Rows (index i)
// are one thread each, columns (index j) one thread each; every sum runs in index order inside
// one thread, so results do not depend on the block size.

// log(exp(x) + exp(y)), either may be -inf.
template <typename T>
__device__ T log_add_exp(T x, T y) {
  const T m = x > y ? x : y;
  if (m == neg_inf<T>()) return m;
  return m + d_log(d_exp(x - m) + d_exp(y - m));
}

// L_i = LSE_j (g_j - C_ij) / eps for the rows of this thread (-inf when every term is).
template <typename T>
__device__ void block_row_lse(const T* C, int64_t K1, int64_t K2, T eps, const T* g, T* L) {
  for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
    const T* c = C + i * K2;
    T m = neg_inf<T>();
    for (int64_t j = 0; j < K2; ++j) {
      const T x = (g[j] - c[j]) / eps;
      m = x > m ? x : m;
    }
    T sum = 0;
    if (m != neg_inf<T>())
      for (int64_t j = 0; j < K2; ++j) sum += d_exp((g[j] - c[j]) / eps - m);
    L[i] = m == neg_inf<T>() ? m : m + d_log(sum);
  }
}

// M_j = LSE_i (f_i - C_ij) / eps for the columns of this thread.
template <typename T>
__device__ void block_col_lse(const T* C, int64_t K1, int64_t K2, T eps, const T* f, T* M) {
  for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
    T m = neg_inf<T>();
    for (int64_t i = 0; i < K1; ++i) {
      const T x = (f[i] - C[i * K2 + j]) / eps;
      m = x > m ? x : m;
    }
    T sum = 0;
    if (m != neg_inf<T>())
      for (int64_t i = 0; i < K1; ++i) sum += d_exp((f[i] - C[i * K2 + j]) / eps - m);
    M[j] = m == neg_inf<T>() ? m : m + d_log(sum);
  }
}

// The log-domain recurrence for one problem, by the whole block (C, f, g, loga, logb in shared
// memory). L, M: (iterations, K1) and (iterations, K2) when store_all (backward), else one
// row each (forward). Leaves the final potentials in f, g; returns the iterations done.
template <typename T>
__device__ int block_log_iterations(const T* a, const T* b, const T* C, int64_t K1, int64_t K2,
                                    T eps, int iterations, double tol, bool stab, T* f, T* g,
                                    T* loga, T* logb, T* L, T* M, bool store_all) {
  __shared__ int stop;
  const T ld = d_log(static_cast<T>(kSinkhornStabiliser));
  for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
    loga[i] = d_log(a[i]);
    f[i] = eps * d_log(T(1) / static_cast<T>(K1));
  }
  for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
    logb[j] = d_log(b[j]);
    g[j] = eps * d_log(T(1) / static_cast<T>(K2));
  }
  __syncthreads();
  int n = 0;
  for (int t = 0; t < iterations; ++t) {
    T* Lt = store_all ? L + t * K1 : L;
    T* Mt = store_all ? M + t * K2 : M;
    block_row_lse(C, K1, K2, eps, g, Lt);
    __syncthreads();
    if (tol > 0.0 && t > 0) {  // row marginal of the current (f, g): exp(f_i / eps + L_i)
      if (threadIdx.x == 0) {
        double err = 0.0;
        for (int64_t i = 0; i < K1; ++i)
          err += d_abs(static_cast<double>(d_exp(f[i] / eps + Lt[i]) - a[i]));
        stop = err < tol ? 1 : 0;
      }
      __syncthreads();
      const bool done = stop != 0;
      __syncthreads();  // everyone has read `stop` before thread 0 may write it again
      if (done) break;
    }
    for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
      if (stab) Lt[i] = log_add_exp(Lt[i], ld);
      f[i] = eps * (loga[i] - Lt[i]);
    }
    __syncthreads();
    block_col_lse(C, K1, K2, eps, f, Mt);
    for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {  // same thread wrote Mt[j]
      if (stab) Mt[j] = log_add_exp(Mt[j], ld);
      g[j] = eps * (logb[j] - Mt[j]);
    }
    __syncthreads();
    n = t + 1;
  }
  return n;
}

template <typename T>
__global__ void sinkhorn_log_forward_kernel(const T* a, const T* b, const T* cost, int64_t B,
                                            int64_t K1, int64_t K2, bool shared_cost, T eps,
                                            int iterations, double tol, bool stab, T* f_out,
                                            T* g_out, T* plan_out, T* col_sums_out,
                                            T* row_sums_out, int32_t* iterations_run) {
  LM_DYNAMIC_SHARED(smem_raw);
  const int64_t KK = K1 * K2;
  T* C = reinterpret_cast<T*>(smem_raw);  // (K1, K2)
  T* f = C + KK;                           // (K1)
  T* loga = f + K1;                        // (K1)
  T* L = loga + K1;                        // (K1)
  T* g = L + K1;                           // (K2)
  T* logb = g + K2;                        // (K2)
  T* M = logb + K2;                        // (K2)
  for (int64_t p = blockIdx.x; p < B; p += gridDim.x) {
    const T* cp = shared_cost ? cost : cost + p * KK;
    for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) C[k] = cp[k];
    __syncthreads();
    const int n = block_log_iterations(a + p * K1, b + p * K2, C, K1, K2, eps, iterations, tol,
                                       stab, f, g, loga, logb, L, M, false);
    if (iterations_run && threadIdx.x == 0) iterations_run[p] = n;
    if (f_out)
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) f_out[p * K1 + i] = f[i];
    if (g_out)
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) g_out[p * K2 + j] = g[j];
    if (plan_out)
      for (int64_t k = threadIdx.x; k < KK; k += blockDim.x)
        plan_out[p * KK + k] = d_exp((f[k / K2] + g[k % K2] - C[k]) / eps);
    if (row_sums_out)
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
        T acc = 0;
        for (int64_t j = 0; j < K2; ++j) acc += d_exp((f[i] + g[j] - C[i * K2 + j]) / eps);
        row_sums_out[p * K1 + i] = acc;
      }
    if (col_sums_out)
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
        T acc = 0;
        for (int64_t i = 0; i < K1; ++i) acc += d_exp((f[i] + g[j] - C[i * K2 + j]) / eps);
        col_sums_out[p * K2 + j] = acc;
      }
    __syncthreads();  // shared memory is reused by the next problem
  }
}

// Exact backward of the unrolled log-domain recurrence, recomputing it (the L_t, M_t of every
// iteration go to this block's workspace slice). Zero marginal entries get the finite limits
// the CPU kernel gives (ops/cpu/sinkhorn.h).
template <typename T>
__global__ void sinkhorn_log_backward_kernel(const T* a, const T* b, const T* cost, int64_t B,
                                             int64_t K1, int64_t K2, bool shared_cost, T eps,
                                             int iterations, double tol, bool stab,
                                             const T* grad_plan, const T* grad_col_sums,
                                             const T* grad_row_sums, const T* grad_f,
                                             const T* grad_g, T* grad_a, T* grad_b, T* grad_cost,
                                             T* normalisers, T* partials) {
  LM_DYNAMIC_SHARED(smem_raw);
  const int64_t KK = K1 * K2;
  T* C = reinterpret_cast<T*>(smem_raw);  // (K1, K2)
  T* gC = C + KK;                          // (K1, K2) d loss / d C of this problem (or block)
  T* f = gC + KK;                          // (K1)
  T* loga = f + K1;                        // (K1)
  T* gf = loga + K1;                       // (K1)
  T* ga = gf + K1;                         // (K1)
  T* gfi = ga + K1;                        // (K1) gf_i after the M_t step, read by columns
  T* g = gfi + K1;                         // (K2)
  T* logb = g + K2;                        // (K2)
  T* gg0 = logb + K2;                      // (K2)
  T* gg1 = gg0 + K2;                       // (K2)
  T* gb = gg1 + K2;                        // (K2)
  T* gprev = gb + K2;                      // (K2) g_{t-1}
  const int64_t it = iterations > 0 ? iterations : 1;
  T* Lall = normalisers + blockIdx.x * it * (K1 + K2);  // (iterations, K1), this block's slice
  T* Mall = Lall + it * K1;                             // (iterations, K2)
  const bool want_gc = grad_cost != nullptr;
  const bool have_G = grad_plan || grad_col_sums || grad_row_sums;

  if (want_gc && shared_cost)  // block accumulator over this block's problems
    for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) gC[k] = 0;

  for (int64_t p = blockIdx.x; p < B; p += gridDim.x) {
    const T* ap = a + p * K1;
    const T* bp = b + p * K2;
    const T* cp = shared_cost ? cost : cost + p * KK;
    for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) {
      C[k] = cp[k];
      if (want_gc && !shared_cost) gC[k] = 0;
    }
    __syncthreads();
    const int n = block_log_iterations(ap, bp, C, K1, K2, eps, iterations, tol, stab, f, g, loga,
                                       logb, Lall, Mall, true);
    const T* Ln = n > 0 ? Lall + (n - 1) * K1 : nullptr;
    const T* Mn = n > 0 ? Mall + (n - 1) * K2 : nullptr;
    // Gradients of the final potentials; direct terms at zero marginal entries (inf).
    for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
      gf[i] = grad_f ? grad_f[p * K1 + i] : T(0);
      ga[i] = 0;
      if (n > 0 && ap[i] == 0 && gf[i] != 0) ga[i] += eps * gf[i] / ap[i];
    }
    for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
      gg0[j] = grad_g ? grad_g[p * K2 + j] : T(0);
      gb[j] = 0;
      if (n > 0 && bp[j] == 0 && gg0[j] != 0) gb[j] += eps * gg0[j] / bp[j];
    }
    __syncthreads();

    // Outputs: P_ij = exp((f_i + g_j - C_ij) / eps), G_ij = gP_ij + gc_j + grho_i,
    // q_ij = G_ij P_ij / eps: gf_i += sum_j q_ij, gg_j += sum_i q_ij, gC_ij -= q_ij.
    if (have_G) {
      const T* gP = grad_plan ? grad_plan + p * KK : nullptr;
      const T* gcs = grad_col_sums ? grad_col_sums + p * K2 : nullptr;
      const T* grho = grad_row_sums ? grad_row_sums + p * K1 : nullptr;
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {  // rows: gf, ga limits, gC row
        const T gri = grho ? grho[i] : T(0);
        T acc = 0;
        for (int64_t j = 0; j < K2; ++j) {
          const T G = (gP ? gP[i * K2 + j] : T(0)) + (gcs ? gcs[j] : T(0)) + gri;
          const T q = G * d_exp((f[i] + g[j] - C[i * K2 + j]) / eps) / eps;
          acc += q;
          if (want_gc) gC[i * K2 + j] -= q;
          // (eps / a_i) q_ij -> G exp((g_j - C_ij) / eps - L_i) at a_i = 0
          if (n > 0 && ap[i] == 0) ga[i] += G * d_exp((g[j] - C[i * K2 + j]) / eps - Ln[i]);
        }
        gf[i] += acc;
      }
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {  // columns: gg, gb limits
        T acc = gg0[j];
        for (int64_t i = 0; i < K1; ++i) {
          const T G = (gP ? gP[i * K2 + j] : T(0)) + (gcs ? gcs[j] : T(0)) + (grho ? grho[i] : T(0));
          acc += G * d_exp((f[i] + g[j] - C[i * K2 + j]) / eps) / eps;
          if (n > 0 && bp[j] == 0) gb[j] += G * d_exp((f[i] - C[i * K2 + j]) / eps - Mn[j]);
        }
        gg0[j] = acc;
      }
      __syncthreads();
    }

    // Adjoint recurrence, t = n..1 (L_{t-1 in memory}, M likewise belong to iteration t).
    T* gg = gg0;
    T* ggn = gg1;
    for (int t = n; t >= 1; --t) {
      const T* Lt = Lall + (t - 1) * K1;
      const T* Mt = Mall + (t - 1) * K2;
      const T* Mp = t >= 2 ? Mall + (t - 2) * K2 : nullptr;
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) f[i] = eps * (loga[i] - Lt[i]);  // f_t
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
        gprev[j] = Mp ? eps * (logb[j] - Mp[j]) : eps * d_log(T(1) / static_cast<T>(K2));
        if (bp[j] > 0) gb[j] += eps * gg[j] / bp[j];  // g_t = eps (log b - M_t)
        ggn[j] = 0;
      }
      __syncthreads();
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) {
        T* gCr = want_gc ? gC + i * K2 : nullptr;
        const T* c = C + i * K2;
        // M_t: beta_ij = exp((f_t[i] - C_ij) / eps - M_t[j]); gf_i -= sum_j gg_j beta_ij;
        //      gC_ij += gg_j beta_ij
        T acc = 0;
        for (int64_t j = 0; j < K2; ++j) {
          const T beta = d_exp((f[i] - c[j]) / eps - Mt[j]);
          acc += gg[j] * beta;
          if (gCr) gCr[j] += gg[j] * beta;
        }
        const T gfv = gf[i] - acc;
        if (ap[i] == 0) {  // limit of (eps / a_i) * (-sum_j gg_j beta_ij)
          T lim = 0;
          for (int64_t j = 0; j < K2; ++j) lim += gg[j] * d_exp(-c[j] / eps - Mt[j] - Lt[i]);
          ga[i] -= eps * lim;
        } else {
          ga[i] += eps * gfv / ap[i];  // f_t = eps (log a - L_t)
        }
        // L_t: alpha_ij = exp((g_{t-1}[j] - C_ij) / eps - L_t[i]); gC_ij += gf_i alpha_ij
        if (gCr)
          for (int64_t j = 0; j < K2; ++j) gCr[j] += gfv * d_exp((gprev[j] - c[j]) / eps - Lt[i]);
        gfi[i] = gfv;
        gf[i] = 0;  // f_{t-1} feeds only M_{t-1}
      }
      __syncthreads();
      // L_t, by columns: gg_{t-1}[j] -= sum_i gf_i alpha_ij (+ the limit at b_j = 0)
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) {
        T acc = 0;
        for (int64_t i = 0; i < K1; ++i) {
          const T cij = C[i * K2 + j];
          acc -= gfi[i] * d_exp((gprev[j] - cij) / eps - Lt[i]);
          if (Mp && bp[j] == 0) gb[j] -= eps * gfi[i] * d_exp(-cij / eps - Lt[i] - Mp[j]);
        }
        ggn[j] = acc;
      }
      __syncthreads();
      T* tmp = gg;
      gg = ggn;
      ggn = tmp;
    }

    if (grad_a)
      for (int64_t i = threadIdx.x; i < K1; i += blockDim.x) grad_a[p * K1 + i] = ga[i];
    if (grad_b)
      for (int64_t j = threadIdx.x; j < K2; j += blockDim.x) grad_b[p * K2 + j] = gb[j];
    if (want_gc && !shared_cost)
      for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) grad_cost[p * KK + k] = gC[k];
    __syncthreads();  // shared memory is reused by the next problem
  }
  if (want_gc && shared_cost)
    for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) partials[blockIdx.x * KK + k] = gC[k];
}

// grad_cost = sum over blocks, in block order, of the partial d loss / d C.
template <typename T>
__global__ void sinkhorn_log_reduce_cost_grad_kernel(const T* partials, int64_t G, int64_t KK,
                                                     T* grad_cost) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= KK) return;
  T s = 0;
  for (int64_t g = 0; g < G; ++g) s += partials[g * KK + k];
  grad_cost[k] = s;
}

}  // namespace LM_CUDA_NS::sinkhorn_kernels
