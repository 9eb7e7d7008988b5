// CUDA Sinkhorn kernels: batched plain-domain forward and recompute backward, one thread block
// per problem. Mirrors ops/cpu/sinkhorn.cpp step by step (same recurrence, same stored
// denominators S_t = Kmat w_{t-1} + 1e-8, R_t = Kmat^T u_t + 1e-8, same adjoint recurrence;
// derivation in docs/ops/sinkhorn.md). Interface and conventions: cuda/sinkhorn.cuh.
#include "sinkhorn.cuh"

namespace lm::cuda {
namespace {

__device__ inline float dev_exp(float x) { return expf(x); }
__device__ inline double dev_exp(double x) { return exp(x); }
__device__ inline double dev_abs(double x) { return fabs(x); }

// Kmat = exp(-C / eps), (K1, K2) row-major, into shared memory.
template <typename T>
__device__ void load_kmat(const T* cost, int64_t KK, T eps, T* kmat) {
  for (int64_t k = threadIdx.x; k < KK; k += blockDim.x) kmat[k] = dev_exp(-cost[k] / eps);
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
        for (int64_t i = 0; i < K1; ++i) err += dev_abs(static_cast<double>(u[i] * kw[i] - a[i]));
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
  extern __shared__ unsigned char smem_raw[];
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
  extern __shared__ unsigned char smem_raw[];
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
  grad_cost[k] = -(s * dev_exp(-cost[k] / eps)) / eps;
}

bool bad_args(int64_t B, int64_t K1, int64_t K2, const SinkhornOptions& opt) {
  return B < 0 || K1 < 1 || K2 < 1 || !(opt.epsilon > 0.0) || opt.iterations < 0 || !(opt.tol >= 0.0);
}

template <typename Kernel>
cudaError_t allow_shared_bytes(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

int64_t grad_blocks(int64_t B) { return B < kSinkhornGradBlocks ? B : kSinkhornGradBlocks; }

}  // namespace

size_t sinkhorn_backward_workspace_bytes(int64_t B, int64_t K1, int64_t K2, int iterations,
                                         bool shared_cost, size_t element_size) {
  const int64_t G = grad_blocks(B);
  const int64_t it = iterations > 0 ? iterations : 1;
  const int64_t elems = G * it * (K1 + K2) + (shared_cost ? G * K1 * K2 : 0);
  return static_cast<size_t>(elems) * element_size;
}

template <typename T>
cudaError_t sinkhorn_forward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1,
                             int64_t K2, bool shared_cost, const SinkhornOptions& opt, T* u_out,
                             T* w_out, T* plan_out, T* col_sums_out, T* row_sums_out,
                             int32_t* iterations_run, cudaStream_t stream) {
  if (bad_args(B, K1, K2, opt)) return cudaErrorInvalidValue;
  if (B == 0) return cudaSuccess;
  const size_t smem = static_cast<size_t>(K1 * K2 + 2 * K1 + 2 * K2) * sizeof(T);
  cudaError_t err = allow_shared_bytes(sinkhorn_forward_kernel<T>, smem);
  if (err != cudaSuccess) return err;
  const int64_t grid = B < 65535 ? B : 65535;
  sinkhorn_forward_kernel<T><<<static_cast<unsigned>(grid), kSinkhornThreads, smem, stream>>>(
      a, b, cost, B, K1, K2, shared_cost, static_cast<T>(opt.epsilon), opt.iterations, opt.tol,
      u_out, w_out, plan_out, col_sums_out, row_sums_out, iterations_run);
  return cudaGetLastError();
}

template <typename T>
cudaError_t sinkhorn_backward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1,
                              int64_t K2, bool shared_cost, const SinkhornOptions& opt,
                              const T* grad_plan, const T* grad_col_sums, const T* grad_row_sums,
                              const T* grad_u, const T* grad_w, T* grad_a, T* grad_b,
                              T* grad_cost, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
  if (bad_args(B, K1, K2, opt)) return cudaErrorInvalidValue;
  const int64_t KK = K1 * K2;
  if (B == 0) {
    if (grad_cost && shared_cost) return cudaMemsetAsync(grad_cost, 0, KK * sizeof(T), stream);
    return cudaSuccess;
  }
  if (workspace == nullptr ||
      workspace_bytes < sinkhorn_backward_workspace_bytes(B, K1, K2, opt.iterations, shared_cost, sizeof(T)))
    return cudaErrorInvalidValue;
  const int64_t G = grad_blocks(B);
  const int64_t it = opt.iterations > 0 ? opt.iterations : 1;
  T* denominators = static_cast<T*>(workspace);          // (G, iterations, K1 + K2)
  T* partials = denominators + G * it * (K1 + K2);        // (G, K1, K2) when shared_cost
  const size_t smem = static_cast<size_t>(2 * KK + 6 * K1 + 6 * K2) * sizeof(T);
  cudaError_t err = allow_shared_bytes(sinkhorn_backward_kernel<T>, smem);
  if (err != cudaSuccess) return err;
  const T eps = static_cast<T>(opt.epsilon);
  sinkhorn_backward_kernel<T><<<static_cast<unsigned>(G), kSinkhornThreads, smem, stream>>>(
      a, b, cost, B, K1, K2, shared_cost, eps, opt.iterations, opt.tol, grad_plan, grad_col_sums,
      grad_row_sums, grad_u, grad_w, grad_a, grad_b, grad_cost, denominators, partials);
  err = cudaGetLastError();
  if (err != cudaSuccess || !(grad_cost && shared_cost)) return err;
  const int threads = 256;
  const int64_t blocks = (KK + threads - 1) / threads;
  sinkhorn_reduce_cost_grad_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
      partials, G, KK, cost, eps, grad_cost);
  return cudaGetLastError();
}

#define LM_CUDA_SINKHORN_INSTANTIATE(T)                                                            \
  template cudaError_t sinkhorn_forward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                           bool, const SinkhornOptions&, T*, T*, T*, T*, T*,        \
                                           int32_t*, cudaStream_t);                                 \
  template cudaError_t sinkhorn_backward<T>(const T*, const T*, const T*, int64_t, int64_t,         \
                                            int64_t, bool, const SinkhornOptions&, const T*,        \
                                            const T*, const T*, const T*, const T*, T*, T*, T*,     \
                                            void*, size_t, cudaStream_t);
LM_CUDA_SINKHORN_INSTANTIATE(float)
LM_CUDA_SINKHORN_INSTANTIATE(double)
#undef LM_CUDA_SINKHORN_INSTANTIATE

}  // namespace lm::cuda
