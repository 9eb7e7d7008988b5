// CUDA Sinkhorn, host side: batched plain-domain and log-domain forward and recompute backward,
// one thread block per problem (kernels in cuda/sinkhorn_kernels.cuh). Mirrors ops/cpu/sinkhorn.cpp step by step (same recurrence, same stored
// denominators S_t = Kmat w_{t-1} + 1e-8, R_t = Kmat^T u_t + 1e-8, same adjoint recurrence;
// derivation in docs/ops/sinkhorn.md). Interface and conventions: cuda/sinkhorn.cuh.
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "sinkhorn.cuh"
#include "sinkhorn_kernels.cuh"

namespace lm::cuda {
namespace {

using namespace sinkhorn_kernels;

bool bad_args(int64_t B, int64_t K1, int64_t K2, const SinkhornOptions& opt) {
  return B < 0 || K1 < 1 || K2 < 1 || sinkhorn_options_problem(opt) != nullptr;
}

template <typename Kernel>
cudaError_t allow_shared_bytes(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

int64_t grad_blocks(int64_t B) { return B < kSinkhornGradBlocks ? B : kSinkhornGradBlocks; }

size_t workspace_elements(int64_t B, int64_t K1, int64_t K2, int iterations, bool shared_cost) {
  const int64_t G = grad_blocks(B);
  const int64_t it = iterations > 0 ? iterations : 1;
  return static_cast<size_t>(G * it * (K1 + K2) + (shared_cost ? G * K1 * K2 : 0));
}

// What both backward wrappers do around their kernels: the checks, the empty batch, the
// workspace carve (each block's per-iteration slice, then the shared-cost partials), the main
// kernel (launch(G, shared bytes, slices, partials)) and, for a shared cost, the in-order sum
// of the partials (reduce(blocks, threads, partials, G)).
template <typename T, class Kernel, class Launch, class Reduce>
cudaError_t backward_steps(int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                           const SinkhornOptions& opt, T* grad_cost, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream, Kernel kernel,
                           int64_t shared_elements, Launch launch, Reduce reduce) {
  if (bad_args(B, K1, K2, opt)) return cudaErrorInvalidValue;
  const int64_t KK = K1 * K2;
  if (B == 0) {
    if (grad_cost && shared_cost) return cudaMemsetAsync(grad_cost, 0, KK * sizeof(T), stream);
    return cudaSuccess;
  }
  if (workspace == nullptr ||
      workspace_bytes < workspace_elements(B, K1, K2, opt.iterations, shared_cost) * sizeof(T))
    return cudaErrorInvalidValue;
  const int64_t G = grad_blocks(B);
  const int64_t it = opt.iterations > 0 ? opt.iterations : 1;
  T* slices = static_cast<T*>(workspace);          // (G, iterations, K1 + K2)
  T* partials = slices + G * it * (K1 + K2);       // (G, K1, K2) when shared_cost
  const size_t smem = static_cast<size_t>(shared_elements) * sizeof(T);
  cudaError_t err = allow_shared_bytes(kernel, smem);
  if (err != cudaSuccess) return err;
  launch(static_cast<unsigned>(G), smem, slices, partials);
  err = cudaGetLastError();
  if (err != cudaSuccess || !(grad_cost && shared_cost)) return err;
  const int threads = 256;
  reduce(static_cast<unsigned>((KK + threads - 1) / threads), threads, partials, G);
  return cudaGetLastError();
}

}  // namespace

size_t sinkhorn_backward_workspace_bytes(int64_t B, int64_t K1, int64_t K2, int iterations,
                                         bool shared_cost, size_t element_size) {
  return workspace_elements(B, K1, K2, iterations, shared_cost) * element_size;
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
  const T eps = static_cast<T>(opt.epsilon);
  return backward_steps<T>(
      B, K1, K2, shared_cost, opt, grad_cost, workspace, workspace_bytes, stream,
      sinkhorn_backward_kernel<T>, 2 * K1 * K2 + 6 * K1 + 6 * K2,
      [&](unsigned G, size_t smem, T* denominators, T* partials) {
        sinkhorn_backward_kernel<T><<<G, kSinkhornThreads, smem, stream>>>(
            a, b, cost, B, K1, K2, shared_cost, eps, opt.iterations, opt.tol, grad_plan,
            grad_col_sums, grad_row_sums, grad_u, grad_w, grad_a, grad_b, grad_cost, denominators,
            partials);
      },
      [&](unsigned blocks, int threads, const T* partials, int64_t G) {
        sinkhorn_reduce_cost_grad_kernel<T><<<blocks, threads, 0, stream>>>(partials, G, K1 * K2,
                                                                            cost, eps, grad_cost);
      });
}

template <typename T>
cudaError_t sinkhorn_log_forward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1,
                                 int64_t K2, bool shared_cost, const SinkhornOptions& opt,
                                 T* f_out, T* g_out, T* plan_out, T* col_sums_out,
                                 T* row_sums_out, int32_t* iterations_run, cudaStream_t stream) {
  if (bad_args(B, K1, K2, opt)) return cudaErrorInvalidValue;
  if (B == 0) return cudaSuccess;
  const size_t smem = static_cast<size_t>(K1 * K2 + 3 * K1 + 3 * K2) * sizeof(T);
  cudaError_t err = allow_shared_bytes(sinkhorn_log_forward_kernel<T>, smem);
  if (err != cudaSuccess) return err;
  const int64_t grid = B < 65535 ? B : 65535;
  sinkhorn_log_forward_kernel<T><<<static_cast<unsigned>(grid), kSinkhornThreads, smem, stream>>>(
      a, b, cost, B, K1, K2, shared_cost, static_cast<T>(opt.epsilon), opt.iterations, opt.tol,
      opt.log_domain_stabiliser, f_out, g_out, plan_out, col_sums_out, row_sums_out,
      iterations_run);
  return cudaGetLastError();
}

template <typename T>
cudaError_t sinkhorn_log_backward(const T* a, const T* b, const T* cost, int64_t B, int64_t K1,
                                  int64_t K2, bool shared_cost, const SinkhornOptions& opt,
                                  const T* grad_plan, const T* grad_col_sums,
                                  const T* grad_row_sums, const T* grad_f, const T* grad_g,
                                  T* grad_a, T* grad_b, T* grad_cost, void* workspace,
                                  size_t workspace_bytes, cudaStream_t stream) {
  return backward_steps<T>(
      B, K1, K2, shared_cost, opt, grad_cost, workspace, workspace_bytes, stream,
      sinkhorn_log_backward_kernel<T>, 2 * K1 * K2 + 5 * K1 + 6 * K2,
      [&](unsigned G, size_t smem, T* normalisers, T* partials) {
        sinkhorn_log_backward_kernel<T><<<G, kSinkhornThreads, smem, stream>>>(
            a, b, cost, B, K1, K2, shared_cost, static_cast<T>(opt.epsilon), opt.iterations,
            opt.tol, opt.log_domain_stabiliser, grad_plan, grad_col_sums, grad_row_sums, grad_f,
            grad_g, grad_a, grad_b, grad_cost, normalisers, partials);
      },
      [&](unsigned blocks, int threads, const T* partials, int64_t G) {
        sinkhorn_log_reduce_cost_grad_kernel<T><<<blocks, threads, 0, stream>>>(partials, G,
                                                                                K1 * K2, grad_cost);
      });
}

#define LM_CUDA_SINKHORN_INSTANTIATE(T)                                                            \
  template cudaError_t sinkhorn_forward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                           bool, const SinkhornOptions&, T*, T*, T*, T*, T*,        \
                                           int32_t*, cudaStream_t);                                 \
  template cudaError_t sinkhorn_backward<T>(const T*, const T*, const T*, int64_t, int64_t,         \
                                            int64_t, bool, const SinkhornOptions&, const T*,        \
                                            const T*, const T*, const T*, const T*, T*, T*, T*,     \
                                            void*, size_t, cudaStream_t);                           \
  template cudaError_t sinkhorn_log_forward<T>(const T*, const T*, const T*, int64_t, int64_t,      \
                                               int64_t, bool, const SinkhornOptions&, T*, T*, T*,   \
                                               T*, T*, int32_t*, cudaStream_t);                     \
  template cudaError_t sinkhorn_log_backward<T>(const T*, const T*, const T*, int64_t, int64_t,     \
                                                int64_t, bool, const SinkhornOptions&, const T*,    \
                                                const T*, const T*, const T*, const T*, T*, T*, T*, \
                                                void*, size_t, cudaStream_t);
LM_CUDA_SINKHORN_INSTANTIATE(float)
LM_CUDA_SINKHORN_INSTANTIATE(double)
#undef LM_CUDA_SINKHORN_INSTANTIATE

// ---- the op's entry points (cuda/kernels.h; the CPU twins are in ops/cpu/sinkhorn.h) ----------

namespace {

template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
void tensor_forward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o, Tensor& plan,
                    Tensor& cols) {
  KernelScope scope(a);
  const int64_t B = a.shape()[0], K1 = a.shape()[1], K2 = b.shape()[1];
  const bool shared = cost.dim() == 2;
  if (o.log_domain)
    check(sinkhorn_log_forward<T>(a.data<T>(), b.data<T>(), cost.data<T>(), B, K1, K2, shared, o, nullptr, nullptr,
                                  ptr_or_null<T>(plan), ptr_or_null<T>(cols), nullptr, nullptr, scope.stream),
          "sinkhorn_log_forward");
  else
    check(sinkhorn_forward<T>(a.data<T>(), b.data<T>(), cost.data<T>(), B, K1, K2, shared, o, nullptr, nullptr,
                              ptr_or_null<T>(plan), ptr_or_null<T>(cols), nullptr, nullptr, scope.stream),
          "sinkhorn_forward");
}

template <class T>
void tensor_backward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                     const Tensor& gplan, const Tensor& gcols, Tensor& ga, Tensor& gb, Tensor& gc) {
  KernelScope scope(a);
  const int64_t B = a.shape()[0], K1 = a.shape()[1], K2 = b.shape()[1];
  const bool shared = cost.dim() == 2;
  const size_t ws = sinkhorn_backward_workspace_bytes(B, K1, K2, o.iterations, shared, sizeof(T));
  Tensor work = Tensor::empty({(int64_t)((ws + 7) / 8)}, DType::I64, a.device());
  if (o.log_domain)
    check(sinkhorn_log_backward<T>(a.data<T>(), b.data<T>(), cost.data<T>(), B, K1, K2, shared, o, ptr_or_null<T>(gplan),
                                   ptr_or_null<T>(gcols), nullptr, nullptr, nullptr, ga.data<T>(), gb.data<T>(),
                                   ptr_or_null<T>(gc), work.raw_data(), work.nbytes(), scope.stream),
          "sinkhorn_log_backward");
  else
    check(sinkhorn_backward<T>(a.data<T>(), b.data<T>(), cost.data<T>(), B, K1, K2, shared, o, ptr_or_null<T>(gplan),
                               ptr_or_null<T>(gcols), nullptr, nullptr, nullptr, ga.data<T>(), gb.data<T>(),
                               ptr_or_null<T>(gc), work.raw_data(), work.nbytes(), scope.stream),
          "sinkhorn_backward");
}

}  // namespace

void sinkhorn_tensor_forward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                             Tensor& plan, Tensor& col_sums) {
  if (a.dtype() == DType::F32) tensor_forward<float>(a, b, cost, o, plan, col_sums);
  else tensor_forward<double>(a, b, cost, o, plan, col_sums);
}

void sinkhorn_tensor_backward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                              const Tensor& grad_plan, const Tensor& grad_col_sums, Tensor& grad_a, Tensor& grad_b,
                              Tensor& grad_cost) {
  if (a.dtype() == DType::F32)
    tensor_backward<float>(a, b, cost, o, grad_plan, grad_col_sums, grad_a, grad_b, grad_cost);
  else
    tensor_backward<double>(a, b, cost, o, grad_plan, grad_col_sums, grad_a, grad_b, grad_cost);
}

}  // namespace lm::cuda
