// Batched Sinkhorn (entropic optimal transport) kernels, CUDA: plain-domain forward (plan or
// reduced outputs) and the exact backward of the unrolled recurrence by recomputation. Mirrors
// ops/cpu/sinkhorn.h (same arguments, same meaning; see there and docs/ops/sinkhorn.md).
// Log-domain variant: sinkhorn_log_forward / sinkhorn_log_backward (potentials f = eps log u,
// g = eps log w; mirrors ops/cpu/sinkhorn_log.cpp). Kernels: cuda/sinkhorn_kernels.cuh.
//
// Layout: one thread block per problem (grid-stride over problems), the problem's Kmat, u, w
// and gradient vectors in shared memory; the backward's per-iteration denominators S_t, R_t
// live in a global workspace slice per block. Raw device pointers, row-major; every output
// pointer may be nullptr. Outputs are overwritten. These launch functions return the launch's
// cudaError_t; the op's entry points (sinkhorn_tensor_forward / _backward, cuda/kernels.h,
// defined in cuda/sinkhorn.cu) call them and throw on an error, like every kernel file.
//
// grad_cost with a shared cost: block g sums its problems (g, g + G, g + 2G, ...) in order into
// its own (K1, K2) slice of the workspace, G = min(B, kSinkhornGradBlocks); a second kernel adds
// the G slices in order. No atomics: same inputs give the same bits on any device.
#pragma once
#ifndef LM_CUDA_EMULATION  // tests/cuda_emulator.h provides the CUDA names on the CPU
#include <cuda_runtime.h>
#endif

#include <cstddef>
#include <cstdint>

#include "tensor/op_kinds.h"

namespace lm::cuda {

inline constexpr int64_t kSinkhornGradBlocks = 1024;  // G above
inline constexpr int kSinkhornThreads = 128;          // threads per block
// kSinkhornStabiliser (the 1e-8 terms) and SinkhornOptions: tensor/op_kinds.h, shared with the
// CPU kernels.

template <typename T>
cudaError_t sinkhorn_forward(const T* a,          // a: (B, K1) row-major
                             const T* b,          // b: (B, K2) row-major
                             const T* cost,       // cost: (K1, K2) if shared_cost else (B, K1, K2)
                             int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                             const SinkhornOptions& opt,
                             T* u_out,            // u_out: (B, K1), or nullptr
                             T* w_out,            // w_out: (B, K2), or nullptr
                             T* plan_out,         // plan_out: (B, K1, K2), or nullptr
                             T* col_sums_out,     // col_sums_out: (B, K2) w o (Kmat^T u), or nullptr
                             T* row_sums_out,     // row_sums_out: (B, K1) u o (Kmat w), or nullptr
                             int32_t* iterations_run,  // iterations_run: (B), or nullptr
                             cudaStream_t stream);

// Bytes of device workspace sinkhorn_backward needs (element_size = sizeof(T)).
size_t sinkhorn_backward_workspace_bytes(int64_t B, int64_t K1, int64_t K2, int iterations,
                                         bool shared_cost, size_t element_size);

template <typename T>
cudaError_t sinkhorn_backward(const T* a,             // a: (B, K1) row-major
                              const T* b,             // b: (B, K2) row-major
                              const T* cost,          // cost: (K1, K2) if shared else (B, K1, K2)
                              int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                              const SinkhornOptions& opt,
                              const T* grad_plan,     // grad_plan: (B, K1, K2), or nullptr
                              const T* grad_col_sums, // grad_col_sums: (B, K2), or nullptr
                              const T* grad_row_sums, // grad_row_sums: (B, K1), or nullptr
                              const T* grad_u,        // grad_u: (B, K1), or nullptr
                              const T* grad_w,        // grad_w: (B, K2), or nullptr
                              T* grad_a,              // grad_a: (B, K1), or nullptr
                              T* grad_b,              // grad_b: (B, K2), or nullptr
                              T* grad_cost,           // grad_cost: (K1, K2) summed over the batch
                                                      //   if shared_cost else (B, K1, K2), or nullptr
                              void* workspace,        // workspace: >= workspace_bytes, device
                              size_t workspace_bytes, cudaStream_t stream);

// ---- log domain (same layout: one block per problem; backward workspace as above, holding the
// per-iteration normalisers L_t, M_t instead of S_t, R_t, and the same partial slices) ----------

template <typename T>
cudaError_t sinkhorn_log_forward(const T* a,          // a: (B, K1) row-major
                                 const T* b,          // b: (B, K2) row-major
                                 const T* cost,       // cost: (K1, K2) if shared_cost else (B, K1, K2)
                                 int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                                 const SinkhornOptions& opt,
                                 T* f_out,            // f_out: (B, K1) final eps log u, or nullptr
                                 T* g_out,            // g_out: (B, K2) final eps log w, or nullptr
                                 T* plan_out,         // plan_out: (B, K1, K2), or nullptr
                                 T* col_sums_out,     // col_sums_out: (B, K2), or nullptr
                                 T* row_sums_out,     // row_sums_out: (B, K1), or nullptr
                                 int32_t* iterations_run,  // iterations_run: (B), or nullptr
                                 cudaStream_t stream);

template <typename T>
cudaError_t sinkhorn_log_backward(const T* a,             // a: (B, K1) row-major
                                  const T* b,             // b: (B, K2) row-major
                                  const T* cost,          // cost: (K1, K2) if shared else (B, K1, K2)
                                  int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                                  const SinkhornOptions& opt,
                                  const T* grad_plan,     // grad_plan: (B, K1, K2), or nullptr
                                  const T* grad_col_sums, // grad_col_sums: (B, K2), or nullptr
                                  const T* grad_row_sums, // grad_row_sums: (B, K1), or nullptr
                                  const T* grad_f,        // grad_f: (B, K1), or nullptr
                                  const T* grad_g,        // grad_g: (B, K2), or nullptr
                                  T* grad_a,              // grad_a: (B, K1), or nullptr
                                  T* grad_b,              // grad_b: (B, K2), or nullptr
                                  T* grad_cost,           // grad_cost: (K1, K2) summed over the
                                                          //   batch if shared_cost else (B, K1, K2)
                                  void* workspace,        // sinkhorn_backward_workspace_bytes
                                  size_t workspace_bytes, cudaStream_t stream);

}  // namespace lm::cuda
