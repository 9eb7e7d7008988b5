// Entropic optimal transport (Sinkhorn) as differentiable ops. The recurrence is SPEC's
// (docs: ../shared/docs/SPEC.md, paper mode step 5): Kmat = exp(-cost / eps), u = 1/K1,
// w = 1/K2, `iterations` times { u = a / (Kmat w + 1e-8); w = b / (Kmat^T u + 1e-8) },
// plan = diag(u) Kmat diag(w). Gradients are the exact gradients of the unrolled loop,
// computed by hand-written kernels that recompute the iterates (ops/cpu/sinkhorn.h,
// docs/ops/sinkhorn.md) instead of taping ~6 generic ops per iteration.
#pragma once
#include "tensor/op_kinds.h"
#include "tensor/tensor.h"

namespace lm {

// Settings: SinkhornOptions (tensor/op_kinds.h) -- epsilon, iterations, tol (> 0: stop a
// problem once its row-marginal L1 error is below it), log_domain (stabilised log-domain
// iterations for small epsilon, no 1e-8 terms); the same struct the kernels take.

// a (K1) or (B, K1); b (K2) or (B, K2); cost (K1, K2), shared by the batch, or (B, K1, K2).
// Returns the plan: (K1, K2) for unbatched marginals, else (B, K1, K2).
Tensor sinkhorn_plan(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& config);

// Column sums of the plan, (K2) or (B, K2), without ever storing a plan: memory O(B (K1 + K2))
// forward and backward. This is reference mode's per-instance transport.
Tensor sinkhorn_column_sums(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& config);

}  // namespace lm
