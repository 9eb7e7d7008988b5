// Batched entropic optimal transport (Sinkhorn) kernels, CPU: forward and exact backward of
// the unrolled recurrence fixed by docs SPEC "Forward, paper mode" step 5, plus a log-domain
// (stabilised) variant for small epsilon. Raw pointers, row-major, float and double.
// Math (adjoint recurrence, what is stored / recomputed, memory): docs/ops/sinkhorn.md.
//
// The recurrence (plain domain), for each problem of the batch:
//   Kmat = exp(-C / eps);  u = 1/K1 (all entries);  w = 1/K2
//   repeat n times { u = a / (Kmat w + 1e-8);  w = b / (Kmat^T u + 1e-8) }
//   plan T = diag(u) Kmat diag(w)
// n = opt.iterations, or fewer when opt.tol > 0 (see SinkhornOptions::tol).
//
// Log domain: f = eps log u, g = eps log w, updated by log-sum-exp; omits the 1e-8 terms
// unless opt.log_domain_stabiliser is set (then it is the same function as the plain one).
//
// Conventions shared by every function below:
// - B problems; K1 rows (size of a), K2 columns (size of b).
// - shared_cost: cost is (K1, K2), the same for every problem (Kmat is computed once);
//   otherwise cost is (B, K1, K2).
// - Every output pointer may be nullptr (that output is not produced). Outputs are
//   overwritten, never accumulated into.
// - Backward recomputes the forward iterates from the inputs, a few problems at a time, in a
//   small per-thread buffer: the forward saves nothing. Call it with the same inputs and options
//   as the forward (it re-runs the same arithmetic, so early stopping picks the same iteration).
// - Plain domain: problems run in groups, one per SIMD lane (16 floats / 8 doubles with
//   AVX-512), lanes never mixing; each problem's outputs are bit-identical to a call with that
//   problem alone. Log domain: problem by problem.
// - OpenMP over problems (groups). Results do not depend on the number of threads (grad_cost
//   with a shared cost is summed in a fixed number of fixed chunks, then the chunks in order).
// - Marginals must be >= 0 with a positive sum; zero entries are allowed.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/op_kinds.h"
#include "tensor/tensor.h"

namespace lm::cpu {

// kSinkhornStabiliser, SinkhornOptions and their validation: tensor/op_kinds.h (shared with
// the CUDA kernels).

// ---- plain domain ---------------------------------------------------------------------------

// Forward. Returns nothing; writes the requested outputs.
template <typename T>
void sinkhorn_forward(const T* a,          // a: (B, K1) row-major, row marginals
                      const T* b,          // b: (B, K2) row-major, column marginals
                      const T* cost,       // cost: (K1, K2) if shared_cost else (B, K1, K2)
                      int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                      const SinkhornOptions& opt,
                      T* u_out,            // u_out: (B, K1) final u, or nullptr
                      T* w_out,            // w_out: (B, K2) final w, or nullptr
                      T* plan_out,         // plan_out: (B, K1, K2) u_i Kmat_ij w_j, or nullptr
                      T* col_sums_out,     // col_sums_out: (B, K2) w o (Kmat^T u), or nullptr
                      T* row_sums_out,     // row_sums_out: (B, K1) u o (Kmat w), or nullptr
                      int32_t* iterations_run);  // iterations_run: (B) iterations done, or nullptr

// Backward: exact gradient of the unrolled recurrence (as autograd through the loop would
// give, 1e-8 terms included) for the upstream gradients given (each may be nullptr = zero).
template <typename T>
void sinkhorn_backward(const T* a,          // a: (B, K1) row-major
                       const T* b,          // b: (B, K2) row-major
                       const T* cost,       // cost: (K1, K2) if shared_cost else (B, K1, K2)
                       int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                       const SinkhornOptions& opt,
                       const T* grad_plan,      // grad_plan: (B, K1, K2), or nullptr
                       const T* grad_col_sums,  // grad_col_sums: (B, K2), or nullptr
                       const T* grad_row_sums,  // grad_row_sums: (B, K1), or nullptr
                       const T* grad_u,         // grad_u: (B, K1) grad of final u, or nullptr
                       const T* grad_w,         // grad_w: (B, K2) grad of final w, or nullptr
                       T* grad_a,               // grad_a: (B, K1), or nullptr
                       T* grad_b,               // grad_b: (B, K2), or nullptr
                       T* grad_cost);           // grad_cost: (K1, K2) summed over the batch if
                                                //   shared_cost else (B, K1, K2), or nullptr

// ---- log domain -----------------------------------------------------------------------------
// f = eps log u, g = eps log w (potentials; -inf where the marginal entry is 0);
//   f_i = eps log a_i - eps LSE_j((g_j - C_ij) / eps)   [LSE also over log 1e-8 if stabiliser]
//   g_j = eps log b_j - eps LSE_i((f_i - C_ij) / eps)
//   plan_ij = exp((f_i + g_j - C_ij) / eps)
// Starts from f = -eps log K1, g = -eps log K2 (the plain u = 1/K1, w = 1/K2).

template <typename T>
void sinkhorn_log_forward(const T* a,       // a: (B, K1) row-major
                          const T* b,       // b: (B, K2) row-major
                          const T* cost,    // cost: (K1, K2) if shared_cost else (B, K1, K2)
                          int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                          const SinkhornOptions& opt,
                          T* f_out,         // f_out: (B, K1) final f = eps log u, or nullptr
                          T* g_out,         // g_out: (B, K2) final g = eps log w, or nullptr
                          T* plan_out,      // plan_out: (B, K1, K2), or nullptr
                          T* col_sums_out,  // col_sums_out: (B, K2) plan column sums, or nullptr
                          T* row_sums_out,  // row_sums_out: (B, K1) plan row sums, or nullptr
                          int32_t* iterations_run);  // iterations_run: (B), or nullptr

// Exact gradient of the unrolled log-domain recurrence. Where a_i = 0 (f_i = -inf) the
// derivative w.r.t. a_i through the plan / sums is returned as its finite limit (what the plain
// recurrence gives); a nonzero grad_f_i there has an infinite derivative (returned as inf/NaN).
// Same for b_j = 0.
template <typename T>
void sinkhorn_log_backward(const T* a,          // a: (B, K1) row-major
                           const T* b,          // b: (B, K2) row-major
                           const T* cost,       // cost: (K1, K2) if shared_cost else (B, K1, K2)
                           int64_t B, int64_t K1, int64_t K2, bool shared_cost,
                           const SinkhornOptions& opt,
                           const T* grad_plan,      // grad_plan: (B, K1, K2), or nullptr
                           const T* grad_col_sums,  // grad_col_sums: (B, K2), or nullptr
                           const T* grad_row_sums,  // grad_row_sums: (B, K1), or nullptr
                           const T* grad_f,         // grad_f: (B, K1) grad of final f, or nullptr
                           const T* grad_g,         // grad_g: (B, K2) grad of final g, or nullptr
                           T* grad_a,               // grad_a: (B, K1), or nullptr
                           T* grad_b,               // grad_b: (B, K2), or nullptr
                           T* grad_cost);           // grad_cost: (K1, K2) if shared_cost
                                                    //   else (B, K1, K2), or nullptr

// Per-thread scratch the backward uses, in elements of T (for docs/tests): one problem in the
// log domain; one group of 16 problems (float32 lanes of the AVX-512 variant) in the plain one.
int64_t sinkhorn_backward_scratch_elements(int64_t K1, int64_t K2, int iterations, bool log_domain);

// The plain-domain kernels exist in three variants, "portable" (SSE2), "avx2" and "avx512",
// which give the same bits (no fused multiply-adds; per-problem arithmetic and every sum's order
// do not depend on the vector width). The best one the CPU supports runs, unless the environment
// variable LIBRAMIL_SINKHORN_KERNEL names another. sinkhorn_set_kernel (tests, benchmarks)
// overrides both ("auto" restores them); false, and nothing changes, for an unknown or
// unsupported name. sinkhorn_kernel_name: the variant in use.
bool sinkhorn_set_kernel(const std::string& name);
const char* sinkhorn_kernel_name();

// ---- the op's entry points (ops/sinkhorn.cpp dispatches here or to cuda/kernels.h) ----------
// Packed float32 / float64 tensors on the CPU: a (B, K1), b (B, K2), cost (K1, K2) shared by
// the batch or (B, K1, K2). The plain or log-domain kernels above, as o.log_domain says.
// Forward: exactly one of plan (B, K1, K2) / col_sums (B, K2) is defined and is written.
void sinkhorn_tensor_forward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                             Tensor& plan, Tensor& col_sums);
// Backward: exactly one of grad_plan / grad_col_sums is defined (the forward's output's
// gradient); grad_a, grad_b written; grad_cost written when defined.
void sinkhorn_tensor_backward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                              const Tensor& grad_plan, const Tensor& grad_col_sums, Tensor& grad_a, Tensor& grad_b,
                              Tensor& grad_cost);

}  // namespace lm::cpu
